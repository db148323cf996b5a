//! Max and average pooling over images (PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d` without
//! padding, floor mode).
//!
//! A batch is a row-major `[batch, channels * height * width]` matrix (NCHW). Every pass works
//! sample by sample, so it is split over threads by samples, each computed as on one thread.
//!
//! Max pooling takes each window's largest value, the first one on ties, and NaN if the window
//! holds one (PyTorch's rule: a value replaces the maximum when it is larger or NaN). The
//! backward pass finds each window's maximum again with the same rule (no indices are kept) and
//! routes the gradient to it; where windows overlap, a value receives the gradients of every
//! window it is the maximum of, in the order of the windows.

use crate::gemm::{MatMut, MatRef, Pool, SharedRows};
use crate::Float;

/// Below this many input values a pass is not split over threads.
const MIN_SPLIT: usize = 1 << 15;

/// The sizes of a pooling over images of one size.
///
/// ```
/// use hdm_runtime::pooling::Pool2dGeometry;
/// let g = Pool2dGeometry::new([32, 24, 24], 2, 2);
/// assert_eq!((g.out_height, g.out_width), (12, 12));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    pub channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along the height and the width.
    pub stride: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
}

impl Pool2dGeometry {
    /// Square `kernel x kernel` windows every `stride` positions over `input = [channels,
    /// height, width]`. Panics when the window is larger than the image or the stride is 0
    /// (checked while compiling a `#[network]`).
    pub const fn new(input: [usize; 3], kernel: usize, stride: usize) -> Self {
        let [c, h, w] = input;
        assert!(kernel > 0 && stride > 0 && kernel <= h && kernel <= w, "a pooling window must fit in its input");
        Pool2dGeometry {
            channels: c,
            in_height: h,
            in_width: w,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            out_height: (h - kernel) / stride + 1,
            out_width: (w - kernel) / stride + 1,
        }
    }

    /// Elements of one input image.
    pub const fn in_len(&self) -> usize {
        self.channels * self.in_height * self.in_width
    }

    /// Elements of one output image.
    pub const fn out_len(&self) -> usize {
        self.channels * self.out_height * self.out_width
    }
}

/// Runs `f` on blocks of samples of `out` (its rows), split over the pool when large.
fn by_samples<T: Float>(
    pool: &Pool<T>,
    values: usize,
    out: MatMut<'_, T>,
    f: impl Fn(std::ops::Range<usize>, MatMut<'_, T>) + Sync,
) {
    let n = out.nrows();
    let parts = if values >= MIN_SPLIT { pool.threads().min(n).max(1) } else { 1 };
    let per = n.div_ceil(parts).max(1);
    let shared = SharedRows::new(out);
    pool.run_parts(parts, |part, _| {
        let rows = (part * per).min(n)..((part + 1) * per).min(n);
        // SAFETY: parts take disjoint rows.
        let block = unsafe { shared.block(rows.start, rows.len()) };
        f(rows, block);
    });
}

/// Element `i` of row `r` of `x`, whatever its strides.
#[inline(always)]
fn read<T: Copy>(x: &MatRef<'_, T>, row: &[T], stride: usize, i: usize) -> T {
    let _ = x;
    row[i * stride]
}

/// The index (in the input image) of the maximum of window `(c, oh, ow)`, by PyTorch's rule.
#[inline(always)]
fn argmax<T: Float>(
    g: &Pool2dGeometry,
    x: &MatRef<'_, T>,
    row: &[T],
    stride: usize,
    c: usize,
    oh: usize,
    ow: usize,
) -> usize {
    let (ih0, iw0) = (oh * g.stride[0], ow * g.stride[1]);
    let base = c * g.in_height * g.in_width;
    let mut best = base + ih0 * g.in_width + iw0;
    let mut max = T::neg_infinity();
    for i in 0..g.kernel[0] {
        for j in 0..g.kernel[1] {
            let at = base + (ih0 + i) * g.in_width + iw0 + j;
            let v = read(x, row, stride, at);
            if v > max || v.is_nan() {
                max = v;
                best = at;
            }
        }
    }
    best
}

fn check<T>(g: &Pool2dGeometry, x: &MatRef<'_, T>, y: &MatMut<'_, T>) {
    assert!(
        x.ncols() == g.in_len() && y.ncols() == g.out_len() && x.nrows() == y.nrows(),
        "pooling of [{}, {}] into [{}, {}] for {g:?}",
        x.nrows(),
        x.ncols(),
        y.nrows(),
        y.ncols()
    );
}

/// Max pooling: `y` (`[batch, g.out_len()]`) from `x` (`[batch, g.in_len()]`).
pub fn max_forward<T: Float>(pool: &Pool<T>, g: Pool2dGeometry, x: MatRef<'_, T>, y: MatMut<'_, T>) {
    check(&g, &x, &y);
    by_samples(pool, x.nrows() * g.in_len(), y, |rows, mut yb| {
        for (i, r) in rows.enumerate() {
            let (row, stride) = x.row_strided(r);
            let out = yb.row_mut(i);
            for c in 0..g.channels {
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let at = argmax(&g, &x, row, stride, c, oh, ow);
                        out[(c * g.out_height + oh) * g.out_width + ow] = read(&x, row, stride, at);
                    }
                }
            }
        }
    });
}

/// Max pooling's backward pass: `dx (+)= ...` (added when `accumulate`), each window's gradient
/// `dy` routed to its maximum in `x` (the forward input).
pub fn max_backward<T: Float>(
    pool: &Pool<T>,
    g: Pool2dGeometry,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    dx: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(dy.ncols() == g.out_len() && dy.nrows() == x.nrows() && dx.ncols() == g.in_len());
    by_samples(pool, x.nrows() * g.in_len(), dx, |rows, mut db| {
        for (i, r) in rows.enumerate() {
            let (row, stride) = x.row_strided(r);
            let out = db.row_mut(i);
            if !accumulate {
                out.fill(T::zero());
            }
            let grad = dy.row(r);
            for c in 0..g.channels {
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let at = argmax(&g, &x, row, stride, c, oh, ow);
                        out[at] += grad[(c * g.out_height + oh) * g.out_width + ow];
                    }
                }
            }
        }
    });
}

/// Average pooling: `y` from `x`, each window's sum (in row order) divided by its size.
pub fn avg_forward<T: Float>(pool: &Pool<T>, g: Pool2dGeometry, x: MatRef<'_, T>, y: MatMut<'_, T>) {
    check(&g, &x, &y);
    let inv = T::one() / T::of((g.kernel[0] * g.kernel[1]) as f64);
    by_samples(pool, x.nrows() * g.in_len(), y, |rows, mut yb| {
        for (i, r) in rows.enumerate() {
            let (row, stride) = x.row_strided(r);
            let out = yb.row_mut(i);
            for c in 0..g.channels {
                let base = c * g.in_height * g.in_width;
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let (ih0, iw0) = (oh * g.stride[0], ow * g.stride[1]);
                        let mut sum = T::zero();
                        for a in 0..g.kernel[0] {
                            for b in 0..g.kernel[1] {
                                sum += read(&x, row, stride, base + (ih0 + a) * g.in_width + iw0 + b);
                            }
                        }
                        out[(c * g.out_height + oh) * g.out_width + ow] = sum * inv;
                    }
                }
            }
        }
    });
}

/// Average pooling's backward pass: `dx (+)= ...`, each window's gradient divided by its size
/// and added to each of its values.
pub fn avg_backward<T: Float>(
    pool: &Pool<T>,
    g: Pool2dGeometry,
    dy: MatRef<'_, T>,
    dx: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(dy.ncols() == g.out_len() && dy.nrows() == dx.nrows() && dx.ncols() == g.in_len());
    let inv = T::one() / T::of((g.kernel[0] * g.kernel[1]) as f64);
    by_samples(pool, dx.nrows() * g.in_len(), dx, |rows, mut db| {
        for (i, r) in rows.enumerate() {
            let out = db.row_mut(i);
            if !accumulate {
                out.fill(T::zero());
            }
            let grad = dy.row(r);
            for c in 0..g.channels {
                let base = c * g.in_height * g.in_width;
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let v = grad[(c * g.out_height + oh) * g.out_width + ow] * inv;
                        let (ih0, iw0) = (oh * g.stride[0], ow * g.stride[1]);
                        for a in 0..g.kernel[0] {
                            for b in 0..g.kernel[1] {
                                out[base + (ih0 + a) * g.in_width + iw0 + b] += v;
                            }
                        }
                    }
                }
            }
        }
    });
}
