//! What the benchmarks share with `examples/bench.rs` (which includes this file with `#[path]`):
//! the "GEMM floor", the matrix products of a step of dense layers alone, to time beside the
//! generated step of the same shapes: with hdm's GEMM on the same threads, or with
//! `matrixmultiply::sgemm` (crates.io) on one thread, the reference the speed goals are set against.

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
