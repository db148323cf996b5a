//! Times the eight products of one training step of the MLP 784-500-500-10 at batch 100 (f32):
//! hdm's GEMM (`gemm_with`, one thread) against `matrixmultiply::sgemm` (one thread, the same
//! loops with its own kernels; the same bits), and on a `Pool` of 2 threads, splitting each product by columns, or
//! running each layer's weight gradient beside its input gradient (`Pool::join`).
//!
//! ```text
//! cargo run --release -p hdm-runtime --example gemm_mlp [rounds]
//! ```
//!
//! The variants take turns, round after round, so that a change in the machine's load touches
//! all of them; the median and the best round are printed.

use std::hint::black_box;
use std::time::Instant;

use hdm_runtime::gemm::{gemm_with, kernel_info, MatMut, MatRef, Pool, Workspace};

const BATCH: usize = 100;
const SIZES: [usize; 4] = [784, 500, 500, 10];

/// Activations, weights ([out, in], as `Linear` stores them), output gradients and gradients of
/// one step.
struct Step {
    h: [Vec<f32>; 4],  // h[0] = x, h[l + 1] = output of layer l: [BATCH, SIZES[l]]
    w: [Vec<f32>; 3],  // [SIZES[l + 1], SIZES[l]]
    dy: [Vec<f32>; 3], // gradient of layer l's output: [BATCH, SIZES[l + 1]]
    dw: [Vec<f32>; 3], // [SIZES[l + 1], SIZES[l]]
    dx: [Vec<f32>; 3], // gradient of layer l's input (layers 1 and 2): [BATCH, SIZES[l]]
}

impl Step {
    fn new() -> Self {
        let fill =
            |n: usize, seed: usize| (0..n).map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0).collect();
        let h = std::array::from_fn(|l| fill(BATCH * SIZES[l], l));
        let w = std::array::from_fn(|l| fill(SIZES[l + 1] * SIZES[l], 10 + l));
        let dy = std::array::from_fn(|l| fill(BATCH * SIZES[l + 1], 20 + l));
        let dw = std::array::from_fn(|l| vec![0.0; SIZES[l + 1] * SIZES[l]]);
        let dx = std::array::from_fn(|l| vec![0.0; BATCH * SIZES[l]]);
        Step { h, w, dy, dw, dx }
    }

    /// Runs the eight products with `gemm`: forward `h[l + 1] = h[l] W_l^T` for l = 0, 1, 2, then
    /// backward, layer 3 to 1, `dW_l = dY_l^T h[l]` and, for layers 3 and 2, `dX_l = dY_l W_l`.
    fn run(&mut self, gemm: &mut impl FnMut(MatRef<'_, f32>, MatRef<'_, f32>, MatMut<'_, f32>)) {
        for l in 0..3 {
            let (lo, hi) = self.h.split_at_mut(l + 1);
            let (i, o) = (SIZES[l], SIZES[l + 1]);
            gemm(
                MatRef::row_major(&lo[l], BATCH, i),
                MatRef::row_major(&self.w[l], o, i).t(),
                MatMut::row_major(&mut hi[0], BATCH, o),
            );
        }
        for l in (0..3).rev() {
            let (i, o) = (SIZES[l], SIZES[l + 1]);
            let dy = MatRef::row_major(&self.dy[l], BATCH, o);
            gemm(dy.t(), MatRef::row_major(&self.h[l], BATCH, i), MatMut::row_major(&mut self.dw[l], o, i));
            if l > 0 {
                gemm(dy, MatRef::row_major(&self.w[l], o, i), MatMut::row_major(&mut self.dx[l], BATCH, i));
            }
        }
    }

    /// The same products on a pool, each layer's weight and input gradients side by side.
    fn run_joined(&mut self, pool: &Pool<f32>) {
        for l in 0..3 {
            let (lo, hi) = self.h.split_at_mut(l + 1);
            let (i, o) = (SIZES[l], SIZES[l + 1]);
            pool.gemm(
                1.0,
                MatRef::row_major(&lo[l], BATCH, i),
                MatRef::row_major(&self.w[l], o, i).t(),
                0.0,
                MatMut::row_major(&mut hi[0], BATCH, o),
            );
        }
        for l in (0..3).rev() {
            let (i, o) = (SIZES[l], SIZES[l + 1]);
            let dy = MatRef::row_major(&self.dy[l], BATCH, o);
            let (h, w) = (MatRef::row_major(&self.h[l], BATCH, i), MatRef::row_major(&self.w[l], o, i));
            let (dw, dx) = (MatMut::row_major(&mut self.dw[l], o, i), MatMut::row_major(&mut self.dx[l], BATCH, i));
            if l > 0 {
                pool.join(|ws| gemm_with(ws, 1.0, dy.t(), h, 0.0, dw), |ws| gemm_with(ws, 1.0, dy, w, 0.0, dx));
            } else {
                pool.gemm(1.0, dy.t(), h, 0.0, dw);
            }
        }
    }
}

fn flops() -> f64 {
    let mut f = 0;
    for l in 0..3 {
        let (i, o) = (SIZES[l], SIZES[l + 1]);
        f += BATCH * i * o * 2; // forward, weight gradient
        if l > 0 {
            f += BATCH * i * o; // input gradient
        }
    }
    2.0 * f as f64
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let steps_per_round = 10;
    let k = kernel_info::<f32>();
    println!(
        "MLP 784-500-500-10, batch {BATCH}, f32: 8 products, {:.1} MFLOP per step; kernel {} ({}x{}, mc {} kc {} nc {})",
        flops() / 1e6,
        k.name,
        k.mr,
        k.nr,
        k.mc,
        k.kc,
        k.nc
    );
    println!(
        "{rounds} rounds of {steps_per_round} steps, variants in turn; HDM_NUM_THREADS={:?}",
        std::env::var("HDM_NUM_THREADS").ok()
    );

    let mut ws = Workspace::<f32>::new();
    let pool1 = Pool::<f32>::new(1);
    let pool2 = Pool::<f32>::new(2);
    let mut step = Step::new();

    type Variant<'a> = (&'a str, Box<dyn FnMut(&mut Step) + 'a>);
    let mut variants: Vec<Variant<'_>> = vec![
        (
            "matrixmultiply::sgemm, 1 thread",
            Box::new(|s: &mut Step| {
                s.run(&mut |a: MatRef<'_, f32>, b: MatRef<'_, f32>, mut c: MatMut<'_, f32>| {
                    let ((rsa, csa), (rsb, csb), (rsc, csc)) = (a.strides(), b.strides(), c.strides());
                    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
                    // SAFETY: the pointers and strides describe the three views; `c` is borrowed
                    // uniquely, so it aliases neither `a` nor `b`.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            rsa as isize,
                            csa as isize,
                            b.as_ptr(),
                            rsb as isize,
                            csb as isize,
                            0.0,
                            c.as_mut_ptr(),
                            rsc as isize,
                            csc as isize,
                        )
                    }
                })
            }),
        ),
        (
            "vendored gemm_with, 1 thread",
            Box::new(|s: &mut Step| s.run(&mut |a, b, c| gemm_with(&mut ws, 1.0, a, b, 0.0, c))),
        ),
        ("Pool(1).gemm", Box::new(|s: &mut Step| s.run(&mut |a, b, c| pool1.gemm(1.0, a, b, 0.0, c)))),
        (
            "Pool(2).gemm, split by columns",
            Box::new(|s: &mut Step| s.run(&mut |a, b, c| pool2.gemm(1.0, a, b, 0.0, c))),
        ),
        ("Pool(2): columns + join(dW, dX)", Box::new(|s: &mut Step| s.run_joined(&pool2))),
    ];

    // Same results: every variant gives the bits of the first.
    let outputs = |s: &Step| s.h.iter().chain(&s.dw).chain(&s.dx).flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut reference = None;
    for (name, run) in variants.iter_mut() {
        let mut s = Step::new();
        run(&mut s);
        let bits = outputs(&s);
        match &reference {
            None => reference = Some(bits),
            Some(r) => assert!(*r == bits, "{name} gives other bits"),
        }
    }

    let mut times = vec![Vec::new(); variants.len()];
    for round in 0..rounds + 2 {
        for (v, (_, run)) in variants.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..steps_per_round {
                run(black_box(&mut step));
            }
            if round >= 2 {
                // the first two rounds warm up caches, pages and the pool
                times[v].push(t.elapsed().as_secs_f64() / steps_per_round as f64);
            }
        }
    }
    let base = median(&mut times[0].clone());
    println!("{:<34} {:>10} {:>10} {:>9} {:>11}", "variant", "median ms", "best ms", "GFLOP/s", "vs sgemm");
    for ((name, _), t) in variants.iter().zip(&mut times) {
        let med = median(t);
        let best = t.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<34} {:>10.3} {:>10.3} {:>9.1} {:>10.3}x",
            med * 1e3,
            best * 1e3,
            flops() / med / 1e9,
            base / med
        );
    }
}

fn median(t: &mut [f64]) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}
