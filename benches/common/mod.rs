//! What the benchmarks share with `examples/bench.rs` (which includes this file with `#[path]`):
//! the "GEMM floor", the matrix products of a step of dense layers alone, to time beside the
//! generated step of the same shapes: with hdm's GEMM on the same threads, or with
//! `matrixmultiply::sgemm` (crates.io) on one thread, the reference the speed goals are set against.
// Each includer uses part of it: `benches/step.rs` the dense floors, `bench` all of it.
#![allow(dead_code)]

use std::hint::black_box;

use hdm::gemm::{gemm, MatMut, MatRef};

/// Whose GEMM computes the products of a [`Floor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gemm {
    /// `hdm::gemm::gemm`: the kernels the generated step calls, on the default pool (the step's
    /// threads).
    Hdm,
    /// `matrixmultiply::sgemm` 0.3 from crates.io, on one thread (its `threading` feature off).
    Matrixmultiply,
}

/// `c <- alpha a b + beta c` with `gemm`.
fn product(with: Gemm, alpha: f32, a: MatRef<'_, f32>, b: MatRef<'_, f32>, beta: f32, mut c: MatMut<'_, f32>) {
    match with {
        Gemm::Hdm => gemm(alpha, a, b, beta, c),
        Gemm::Matrixmultiply => {
            assert!(a.ncols() == b.nrows() && a.nrows() == c.nrows() && b.ncols() == c.ncols());
            let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
            let ((rsa, csa), (rsb, csb), (rsc, csc)) = (a.strides(), b.strides(), c.strides());
            let s = |x: usize| x as isize;
            // SAFETY: the views were checked to fit their buffers when they were made, the
            // shapes agree (asserted above), and `c` is borrowed mutably, so it aliases nothing.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    alpha,
                    a.as_ptr(),
                    s(rsa),
                    s(csa),
                    b.as_ptr(),
                    s(rsb),
                    s(csb),
                    beta,
                    c.as_mut_ptr(),
                    s(rsc),
                    s(csc),
                )
            }
        }
    }
}

/// The products of one step of a chain of dense layers (`sizes[0]` inputs): forward
/// `[b, in] x [in, out]`, and for training `dW = dY^T X` for every layer and `dX = dY W` for
/// every layer but the first.
pub struct Floor {
    gemm: Gemm,
    sizes: Vec<usize>,
    batch: usize,
    train: bool,
    h: Vec<Vec<f32>>,
    w: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
    dx: Vec<Vec<f32>>,
}

impl Floor {
    pub fn new(sizes: &[usize], batch: usize, train: bool, gemm: Gemm) -> Self {
        let fill = |n: usize| (0..n).map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0).collect::<Vec<f32>>();
        let l = sizes.len() - 1;
        Floor {
            gemm,
            sizes: sizes.to_vec(),
            batch,
            train,
            h: sizes.iter().map(|&s| fill(batch * s)).collect(),
            w: (0..l).map(|i| fill(sizes[i + 1] * sizes[i])).collect(),
            dw: (0..l).map(|i| vec![0.0; sizes[i + 1] * sizes[i]]).collect(),
            dx: sizes.iter().map(|&s| vec![0.0; batch * s]).collect(),
        }
    }

    pub fn flops(&self) -> f64 {
        let b = self.batch as f64;
        let l = self.sizes.len() - 1;
        (0..l)
            .map(|i| {
                let mk = (self.sizes[i] * self.sizes[i + 1]) as f64;
                let per = if !self.train {
                    1.0
                } else if i == 0 {
                    2.0
                } else {
                    3.0
                };
                2.0 * b * mk * per
            })
            .sum()
    }

    pub fn run(&mut self) {
        let (b, l) = (self.batch, self.sizes.len() - 1);
        for i in 0..l {
            let (lo, hi) = self.h.split_at_mut(i + 1);
            let (n_in, n_out) = (self.sizes[i], self.sizes[i + 1]);
            product(
                self.gemm,
                1.0,
                MatRef::row_major(&lo[i], b, n_in),
                MatRef::row_major(&self.w[i], n_out, n_in).t(),
                0.0,
                MatMut::row_major(&mut hi[0], b, n_out),
            );
        }
        if !self.train {
            return;
        }
        for i in (0..l).rev() {
            let (n_in, n_out) = (self.sizes[i], self.sizes[i + 1]);
            let dy = MatRef::row_major(&self.h[i + 1], b, n_out);
            product(
                self.gemm,
                1.0,
                dy.t(),
                MatRef::row_major(&self.h[i], b, n_in),
                0.0,
                MatMut::row_major(&mut self.dw[i], n_out, n_in),
            );
            if i > 0 {
                product(
                    self.gemm,
                    1.0,
                    dy,
                    MatRef::row_major(&self.w[i], n_out, n_in),
                    0.0,
                    MatMut::row_major(&mut self.dx[i], b, n_in),
                );
            }
        }
        black_box(&self.dw);
    }
}

/// Which products of a layer a pass computes: its forward product, its weight gradient, its
/// input gradient.
#[derive(Clone, Copy, Debug)]
pub struct Parts {
    pub forward: bool,
    pub weight: bool,
    pub input: bool,
}

impl Parts {
    pub const FORWARD: Parts = Parts { forward: true, weight: false, input: false };
    /// A backward pass's products: the weight gradient, and the input gradient when `input`.
    pub const fn backward(weight: bool, input: bool) -> Parts {
        Parts { forward: false, weight, input }
    }
}

/// One matrix product of a floor: `[m, k] x [k, n]`, with `A` or `B` read transposed.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `A` is stored `[k, m]` and read transposed.
    pub a_t: bool,
    /// `B` is stored `[n, k]` and read transposed.
    pub b_t: bool,
    /// The operand (0: `A`, 1: `B`, 2: `C`) that is the group's own part of an activation (its
    /// rows of `y` or `dY`): a buffer of its own for every product of the shape, as in the step.
    /// The others are shared by the products of the same shape, as the step's scratch memory
    /// and weights are.
    pub fresh: Option<usize>,
}

impl Shape {
    pub const fn new(m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Self {
        Shape { m, k, n, a_t, b_t, fresh: None }
    }

    const fn fresh(self, operand: usize) -> Self {
        Shape { fresh: Some(operand), ..self }
    }
}

/// The products of one training step of a convolutional network, lowered to GEMM: per
/// convolution and group of samples `W P` (forward), `D P^T` (weight gradient) and, but for the
/// first layer, `W^T D` (input gradient), with `P` the group's patches and `D` its output
/// gradient; per Linear layer the products of [`Floor`].
pub struct Products {
    gemm: Gemm,
    shapes: Vec<Shape>,
    /// The operands of each distinct shape: the products of one layer's groups share them, as
    /// the step's groups share their scratch memory.
    buffers: Vec<[Vec<f32>; 3]>,
    /// The operands that are each product's own (see [`Shape::fresh`]).
    fresh: Vec<Vec<f32>>,
    /// The index in `buffers` of each shape's operands, and in `fresh` of its own one.
    operands: Vec<(usize, Option<usize>)>,
}

impl Products {
    pub fn new(shapes: Vec<Shape>, gemm: Gemm) -> Self {
        let fill = |n: usize| (0..n).map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0).collect::<Vec<f32>>();
        let mut keys: Vec<(usize, usize, usize, bool, bool)> = Vec::new();
        let mut buffers: Vec<[Vec<f32>; 3]> = Vec::new();
        let mut fresh = Vec::new();
        let operands = shapes
            .iter()
            .map(|s| {
                let key = (s.m, s.k, s.n, s.a_t, s.b_t);
                let shared = keys.iter().position(|&k| k == key).unwrap_or_else(|| {
                    keys.push(key);
                    buffers.push([fill(s.m * s.k), fill(s.k * s.n), vec![0.0; s.m * s.n]]);
                    buffers.len() - 1
                });
                let own = s.fresh.map(|i| {
                    fresh.push(buffers[shared][i].clone());
                    fresh.len() - 1
                });
                (shared, own)
            })
            .collect();
        Products { gemm, shapes, buffers, fresh, operands }
    }

    /// The products of a convolution of geometry `g` over `batch` samples, as the step computes
    /// them: in groups of `g.group()` samples, each group's forward product `W P` (`out x q` by
    /// `q x group * positions`, `q` the patch rows), weight gradient `D P^T` and, unless `first`,
    /// input gradient `W^T D`. (Where the step computes the input gradient as the forward pass
    /// of the flipped convolution, `hdm::conv::Conv2dGeometry::flipped`, the floor keeps `W^T D`:
    /// alone, with its operands in memory, it is the faster product of the two, so the stricter
    /// floor; LeNet at batch 64 on the Intel Xeon, 31-32 against 34-35 ms.)
    pub fn conv(g: hdm::conv::Conv2dGeometry, batch: usize, first: bool) -> Vec<Shape> {
        Self::conv_parts(g, batch, Parts { forward: true, weight: true, input: !first })
    }

    /// The products of `parts` of a convolution of geometry `g` (see [`conv`](Products::conv)).
    /// A `ConvTranspose2d` is the convolution it transposes run backwards: its forward pass is
    /// that convolution's input gradient, its input gradient that convolution's forward pass.
    pub fn conv_parts(g: hdm::conv::Conv2dGeometry, batch: usize, parts: Parts) -> Vec<Shape> {
        let (q, out, size) = (g.patch_len(), g.out_channels, g.group());
        let mut v = Vec::new();
        for start in (0..batch).step_by(size) {
            let cols = g.positions() * size.min(batch - start);
            if parts.forward {
                // forward: W (shared) P (scratch) into the group's rows of y
                v.push(Shape::new(out, q, cols, false, false).fresh(2));
            }
            if parts.weight {
                // weight gradient: the group's rows of dY times P^T (scratch) into dW (shared)
                v.push(Shape::new(out, cols, q, false, true).fresh(0));
            }
            if parts.input {
                // input gradient: W^T (shared) times the group's rows of dY into dP (scratch)
                v.push(Shape::new(q, out, cols, true, false).fresh(1));
            }
        }
        v
    }

    /// The products of a Linear layer from `n_in` to `n_out` over `batch` rows.
    pub fn linear(n_in: usize, n_out: usize, batch: usize, first: bool) -> Vec<Shape> {
        Self::linear_parts(n_in, n_out, batch, Parts { forward: true, weight: true, input: !first })
    }

    /// The products of `parts` of a Linear layer: `X W^T`, `dY^T X`, `dY W`.
    pub fn linear_parts(n_in: usize, n_out: usize, batch: usize, parts: Parts) -> Vec<Shape> {
        let mut v = Vec::new();
        if parts.forward {
            v.push(Shape::new(batch, n_in, n_out, false, true));
        }
        if parts.weight {
            v.push(Shape::new(n_out, batch, n_in, true, false));
        }
        if parts.input {
            v.push(Shape::new(batch, n_out, n_in, false, false));
        }
        v
    }

    pub fn flops(&self) -> f64 {
        self.shapes.iter().map(|s| 2.0 * (s.m * s.k * s.n) as f64).sum()
    }

    pub fn run(&mut self) {
        for (s, &(i, own)) in self.shapes.iter().zip(&self.operands) {
            let [a, b, c] = &mut self.buffers[i];
            let mine = own.map(|o| &mut self.fresh[o]);
            let (a, b, c) = match (s.fresh, mine) {
                (Some(0), Some(m)) => (&*m, &*b, c),
                (Some(1), Some(m)) => (&*a, &*m, c),
                (Some(_), Some(m)) => (&*a, &*b, m),
                _ => (&*a, &*b, c),
            };
            let a = if s.a_t { MatRef::row_major(a, s.k, s.m).t() } else { MatRef::row_major(a, s.m, s.k) };
            let b = if s.b_t { MatRef::row_major(b, s.n, s.k).t() } else { MatRef::row_major(b, s.k, s.n) };
            product(self.gemm, 1.0, a, b, 0.0, MatMut::row_major(c, s.m, s.n));
        }
        black_box((&self.buffers, &self.fresh));
    }
}
