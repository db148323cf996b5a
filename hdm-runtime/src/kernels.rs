//! Fused elementwise kernels: bias plus activation over a GEMM output, activation derivatives
//! folded into the backward pass (with the bias gradient in the same pass), and the fused losses.
//!
//! Every kernel works row by row on strided matrix views whose rows are contiguous, so the inner
//! loops are plain loops over slices that the compiler vectorises. None allocates.
//!
//! # Activations and their derivatives
//!
//! | activation | `f(z)` | `f'` computed from |
//! |---|---|---|
//! | [`Relu`] | `z < 0 ? 0 : z` (NaN stays NaN) | output: `y <= 0 ? 0 : 1` |
//! | [`LeakyRelu`] | `z` if `z > 0`, else `slope * z` (NaN stays NaN) | output: `y > 0 ? 1 : slope` |
//! | [`Sigmoid`] | `1 / (1 + e^-z)` | output: `y (1 - y)` |
//! | [`Tanh`] | `tanh z` | output: `1 - y^2` |
//! | [`Softplus`] | `ln(1 + e^z)` | output: `1 - e^-y` (= sigmoid z) |
//! | [`Gelu`] | `z Phi(z)` | input: `Phi(z) + z phi(z)` |
//! | [`Identity`] | `z` | `1` |
//!
//! Where the derivative can be computed from the output, the generated step keeps only the
//! output; GELU's needs its input, so the step keeps both.

use crate::gemm::{MatMut, MatRef};
use crate::Float;

pub use crate::layers::{Gelu, Identity, LeakyRelu, Relu, Sigmoid, Softplus, Tanh};

/// An elementwise activation function and its derivative.
pub trait Activation: Copy + Send + Sync {
    /// `true` when [`derivative`](Activation::derivative) needs only the output `y`.
    const FROM_OUTPUT: bool;
    /// `false` when the derivative is the constant 1 ([`Identity`]): a backward pass then reads
    /// neither `y` nor `z`.
    const NEEDS_VALUES: bool = true;
    /// `f(z)`.
    fn apply<T: Float>(&self, z: T) -> T;
    /// `f'(z)`, given the input `z` (meaningless, and unused, when [`FROM_OUTPUT`] is set) and
    /// the output `y = f(z)`.
    ///
    /// [`FROM_OUTPUT`]: Activation::FROM_OUTPUT
    fn derivative<T: Float>(&self, z: T, y: T) -> T;
}

impl Activation for Relu {
    const FROM_OUTPUT: bool = true;
    /// `z < 0 ? 0 : z`, which is `torch.relu`'s value everywhere: NaN stays NaN (a NaN input must
    /// not become a finite loss) and `-0.0` stays `-0.0`. Still one vectorised `max`.
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        if z < T::zero() {
            T::zero()
        } else {
            z
        }
    }
    /// `y <= 0 ? 0 : 1`, as `torch.relu`'s backward (`threshold_backward`): 1 at NaN.
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, y: T) -> T {
        if y <= T::zero() {
            T::zero()
        } else {
            T::one()
        }
    }
}

impl LeakyRelu {
    /// A leaky ReLU with the given slope for negative inputs. The slope must be finite and not
    /// negative (the derivative is read off the output's sign).
    pub const fn new(slope: f64) -> Self {
        assert!(slope >= 0.0 && slope.is_finite(), "LeakyRelu's slope must be finite and >= 0");
        LeakyRelu { slope }
    }
    /// The slope for negative inputs.
    pub fn slope(&self) -> f64 {
        self.slope
    }
}

impl Activation for LeakyRelu {
    const FROM_OUTPUT: bool = true;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        if z > T::zero() {
            z
        } else {
            T::of(self.slope) * z
        }
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, y: T) -> T {
        if y > T::zero() {
            T::one()
        } else {
            T::of(self.slope)
        }
    }
}

impl Activation for Sigmoid {
    const FROM_OUTPUT: bool = true;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        T::one() / (T::one() + (-z).exp())
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, y: T) -> T {
        y * (T::one() - y)
    }
}

impl Activation for Tanh {
    const FROM_OUTPUT: bool = true;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        z.tanh()
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, y: T) -> T {
        T::one() - y * y
    }
}

impl Activation for Softplus {
    const FROM_OUTPUT: bool = true;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        // max(z, 0) + ln(1 + e^-|z|): no overflow for large |z|.
        z.max(T::zero()) + (-z.abs()).exp().ln_1p()
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, y: T) -> T {
        // sigmoid(z) = 1 - e^-y, written with expm1 so that tiny y keeps its precision.
        -(-y).exp_m1()
    }
}

impl Activation for Gelu {
    const FROM_OUTPUT: bool = false;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        z * normal_cdf(z)
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, z: T, _y: T) -> T {
        let pdf = (-(z * z) * T::of(0.5)).exp() * T::of(1.0 / (2.0 * std::f64::consts::PI).sqrt());
        normal_cdf(z) + z * pdf
    }
}

#[inline(always)]
fn normal_cdf<T: Float>(z: T) -> T {
    T::of(0.5 * (1.0 + libm::erf(z.to_f64() * std::f64::consts::FRAC_1_SQRT_2)))
}

impl Activation for Identity {
    const FROM_OUTPUT: bool = true;
    const NEEDS_VALUES: bool = false;
    #[inline(always)]
    fn apply<T: Float>(&self, z: T) -> T {
        z
    }
    #[inline(always)]
    fn derivative<T: Float>(&self, _z: T, _y: T) -> T {
        T::one()
    }
}

fn same_shape<T>(a: &MatRef<'_, T>, rows: usize, cols: usize, what: &str) {
    assert!(
        a.nrows() == rows && a.ncols() == cols,
        "{what}: {}x{} where {rows}x{cols} was expected",
        a.nrows(),
        a.ncols()
    );
}

/// `y <- f(y + bias)` in place, over a GEMM output; `bias` is empty for a layer without one.
pub fn bias_act<T: Float, A: Activation>(mut y: MatMut<'_, T>, bias: &[T], act: A) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let cols = y.ncols();
            assert!(bias.is_empty() || bias.len() == cols, "bias of {} for {cols} columns", bias.len());
            // `*v = relu(*v)` stores back what it loaded wherever `*v > 0`, so LLVM makes it a
            // store of 0 under a mask (`vmaskmovps`, microcoded and 5x slower on AMD). Multiplying
            // by an opaque 1 (exact for every value, -0 and NaN included) makes the stored value
            // always a new one, and the loop a plain vectorised max.
            let one = std::hint::black_box(T::one());
            for i in 0..y.nrows() {
                let row = y.row_mut(i);
                if bias.is_empty() {
                    for v in row.iter_mut() {
                        *v = act.apply(*v * one);
                    }
                } else {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v = act.apply(*v + b);
                    }
                }
            }
        },
    )
}

/// `z <- z + bias; y <- f(z)`: keeps the pre-activation for activations whose derivative needs it.
pub fn bias_act_keep_input<T: Float, A: Activation>(mut z: MatMut<'_, T>, mut y: MatMut<'_, T>, bias: &[T], act: A) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let cols = z.ncols();
            same_shape(&y.as_ref(), z.nrows(), cols, "bias_act_keep_input output");
            assert!(bias.is_empty() || bias.len() == cols, "bias of {} for {cols} columns", bias.len());
            for i in 0..z.nrows() {
                let (zr, yr) = (z.row_mut(i), y.row_mut(i));
                if bias.is_empty() {
                    for (zv, yv) in zr.iter_mut().zip(yr) {
                        *yv = act.apply(*zv);
                    }
                } else {
                    for ((zv, yv), &b) in zr.iter_mut().zip(yr).zip(bias) {
                        let z = *zv + b;
                        *zv = z;
                        *yv = act.apply(z);
                    }
                }
            }
        },
    )
}

/// `out[j] = f(out[j], src[i, j])` over row `i`, for a source that may be any strided view (the
/// network's input, as the user gave it); buffers made by hdm take the contiguous path.
#[inline(always)]
fn map_row<T: Float>(src: &MatRef<'_, T>, i: usize, out: &mut [T], f: impl Fn(&mut T, T)) {
    if src.strides().1 == 1 {
        for (o, &v) in out.iter_mut().zip(src.row(i)) {
            f(o, v);
        }
    } else {
        for (o, v) in out.iter_mut().zip(src.at_row(i)) {
            f(o, v);
        }
    }
}

/// `y <- f(z)`, an activation on its own.
pub fn act_forward<T: Float, A: Activation>(z: MatRef<'_, T>, mut y: MatMut<'_, T>, act: A) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            same_shape(&z, y.nrows(), y.ncols(), "act_forward input");
            for i in 0..z.nrows() {
                map_row(&z, i, y.row_mut(i), |y, z| *y = act.apply(z));
            }
        },
    )
}

/// Backward through an activation, in place: `g <- g * f'(z)`, where `g` held the gradient
/// with respect to the output `y` and ends holding the gradient with respect to the input `z`.
///
/// `z` is read only when the activation needs it (pass `y` again otherwise). When `bias_grad` is
/// given, the same pass sums the new gradient over the rows into it: the bias gradient of the
/// layer before the activation (added to the old value when `accumulate`, else written).
pub fn act_backward_in_place<T: Float, A: Activation>(
    mut g: MatMut<'_, T>,
    y: MatRef<'_, T>,
    z: MatRef<'_, T>,
    act: A,
    bias_grad: Option<(&mut [T], bool)>,
) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let (rows, cols) = (g.nrows(), g.ncols());
            same_shape(&y, rows, cols, "act_backward output");
            same_shape(&z, rows, cols, "act_backward input");
            match bias_grad {
                Some((db, accumulate)) => {
                    assert_eq!(db.len(), cols, "bias gradient length");
                    if !accumulate {
                        db.fill(T::zero());
                    }
                    for i in 0..rows {
                        let (gr, yr, zr) = (g.row_mut(i), y.row(i), z.row(i));
                        for (((gv, &yv), &zv), d) in gr.iter_mut().zip(yr).zip(zr).zip(db.iter_mut()) {
                            let gi = *gv * act.derivative(zv, yv);
                            *gv = gi;
                            *d += gi;
                        }
                    }
                }
                None => {
                    for i in 0..rows {
                        let (gr, yr, zr) = (g.row_mut(i), y.row(i), z.row(i));
                        for ((gv, &yv), &zv) in gr.iter_mut().zip(yr).zip(zr) {
                            *gv *= act.derivative(zv, yv);
                        }
                    }
                }
            }
        },
    )
}

/// Backward through an activation into another buffer: `out <- g * f'(z)`, or
/// `out <- out + g * f'(z)` when `accumulate`.
pub fn act_backward<T: Float, A: Activation>(
    g: MatRef<'_, T>,
    y: MatRef<'_, T>,
    z: MatRef<'_, T>,
    act: A,
    mut out: MatMut<'_, T>,
    accumulate: bool,
) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let (rows, cols) = (g.nrows(), g.ncols());
            same_shape(&y, rows, cols, "act_backward output");
            same_shape(&z, rows, cols, "act_backward input");
            same_shape(&out.as_ref(), rows, cols, "act_backward gradient");
            for i in 0..rows {
                let (o, gr, yr, zr) = (out.row_mut(i), g.row(i), y.row(i), z.row(i));
                if accumulate {
                    for (((o, &gv), &yv), &zv) in o.iter_mut().zip(gr).zip(yr).zip(zr) {
                        *o += gv * act.derivative(zv, yv);
                    }
                } else {
                    for (((o, &gv), &yv), &zv) in o.iter_mut().zip(gr).zip(yr).zip(zr) {
                        *o = gv * act.derivative(zv, yv);
                    }
                }
            }
        },
    )
}

/// `out <- column sums of g` (the bias gradient of a layer), or `out += ...` when `accumulate`.
pub fn column_sums<T: Float>(g: MatRef<'_, T>, out: &mut [T], accumulate: bool) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            assert_eq!(out.len(), g.ncols(), "column_sums output length");
            if !accumulate {
                out.fill(T::zero());
            }
            for i in 0..g.nrows() {
                for (o, &v) in out.iter_mut().zip(g.row(i)) {
                    *o += v;
                }
            }
        },
    )
}

/// `sum f(i)` for `i` in `0..n`, over 8 interleaved partial sums added in order at the end.
#[inline(always)]
pub(crate) fn lanes_sum<T: Float>(n: usize, f: impl Fn(usize) -> T) -> T {
    const LANES: usize = 8;
    let mut lanes = [T::zero(); LANES];
    let whole = n / LANES * LANES;
    let mut i = 0;
    while i < whole {
        for (k, l) in lanes.iter_mut().enumerate() {
            *l += f(i + k);
        }
        i += LANES;
    }
    let tail = (whole..n).fold(T::zero(), |s, i| s + f(i));
    lanes.iter().fold(tail, |s, &l| s + l)
}

/// `out <- channel sums of g` (the bias gradient of a convolution), or `out += ...` when
/// `accumulate`: `g` is `[batch, channels * positions]` and `out[c]` the sum of channel `c` over
/// the rows, each row's `positions` values summed first over 8 interleaved partial sums (a fixed
/// order, the same bits at every vector width). With one position this is [`column_sums`].
pub fn channel_sums<T: Float>(g: MatRef<'_, T>, positions: usize, out: &mut [T], accumulate: bool) {
    channel_sums_of(g, positions, 0, out, accumulate)
}

/// [`channel_sums`] of the channels `first..first + out.len()`.
fn channel_sums_of<T: Float>(g: MatRef<'_, T>, positions: usize, first: usize, out: &mut [T], accumulate: bool) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            assert!(
                positions > 0 && g.ncols().is_multiple_of(positions),
                "{} columns in channels of {positions}",
                g.ncols()
            );
            assert!(
                first + out.len() <= g.ncols() / positions,
                "channels {first}..{} of {}",
                first + out.len(),
                g.ncols() / positions
            );
            if !accumulate {
                out.fill(T::zero());
            }
            for i in 0..g.nrows() {
                let row = g.row(i);
                for (c, o) in out.iter_mut().enumerate() {
                    let seg = &row[(first + c) * positions..(first + c + 1) * positions];
                    *o += lanes_sum(positions, |p| seg[p]);
                }
            }
        },
    )
}

/// `sum x_i^2`, kept as 32 interleaved partial sums (so that the loop vectorises and is not held
/// up by one chain of additions) added in order at the end: the same bits at every vector width.
pub fn sum_of_squares<T: Float>(x: &[T]) -> T {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            const LANES: usize = 32;
            let mut lanes = [T::zero(); LANES];
            let mut chunks = x.chunks_exact(LANES);
            for c in &mut chunks {
                for (s, &v) in lanes.iter_mut().zip(c) {
                    *s += v * v;
                }
            }
            let tail = chunks.remainder().iter().fold(T::zero(), |s, &v| s + v * v);
            lanes.iter().fold(tail, |s, &l| s + l)
        },
    )
}

/// `out <- a + b`.
pub fn add<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, mut out: MatMut<'_, T>) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let (rows, cols) = (out.nrows(), out.ncols());
            same_shape(&a, rows, cols, "add lhs");
            same_shape(&b, rows, cols, "add rhs");
            let contiguous = a.strides().1 == 1 && b.strides().1 == 1;
            for i in 0..rows {
                let o = out.row_mut(i);
                if contiguous {
                    for ((o, &x), &y) in o.iter_mut().zip(a.row(i)).zip(b.row(i)) {
                        *o = x + y;
                    }
                } else {
                    map_row(&a, i, o, |o, a| *o = a);
                    map_row(&b, i, o, |o, b| *o += b);
                }
            }
        },
    )
}

/// `out <- src`, or `out <- out + src` when `accumulate`.
pub fn copy<T: Float>(src: MatRef<'_, T>, mut out: MatMut<'_, T>, accumulate: bool) {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            same_shape(&src, out.nrows(), out.ncols(), "copy source");
            for i in 0..src.nrows() {
                if accumulate {
                    map_row(&src, i, out.row_mut(i), |o, s| *o += s);
                } else {
                    map_row(&src, i, out.row_mut(i), |o, s| *o = s);
                }
            }
        },
    )
}

/// Softmax cross-entropy over class `labels`, averaged over the rows (PyTorch's
/// `cross_entropy(logits, labels)`), fused with its gradient: when `grad` is given it receives
/// `(softmax(logits) - onehot(labels)) / rows`.
///
/// The labels must be below the number of columns (checked by the caller; see
/// [`crate::network::check_labels`]); a label out of range panics.
pub fn softmax_cross_entropy<T: Float>(
    logits: MatRef<'_, T>,
    labels: impl Fn(usize) -> usize,
    grad: Option<MatMut<'_, T>>,
) -> T {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            let (rows, cols) = (logits.nrows(), logits.ncols());
            let inv = T::one() / T::of(rows as f64);
            let mut total = T::zero();
            let mut grad = grad;
            for i in 0..rows {
                let z = logits.row(i);
                let label = labels(i);
                assert!(label < cols, "label {label} out of range for {cols} classes");
                let max = z.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                let sum: T = z.iter().map(|&v| (v - max).exp()).sum();
                let log_sum = sum.ln();
                total += log_sum + max - z[label];
                if let Some(g) = grad.as_mut() {
                    let g = g.row_mut(i);
                    let scale = inv / sum;
                    for (gv, &v) in g.iter_mut().zip(z) {
                        *gv = (v - max).exp() * scale;
                    }
                    g[label] -= inv;
                }
            }
            total * inv
        },
    )
}

/// Squared error `sum (y - t)^2` scaled by `scale`, fused with its gradient
/// `2 * scale * (y - t)`. Mean squared error is `scale = 1 / (rows * cols)` (PyTorch's
/// `mse_loss`), the sum of squares `scale = 1`.
pub fn squared_error<T: Float>(y: MatRef<'_, T>, target: MatRef<'_, T>, scale: T, grad: Option<MatMut<'_, T>>) -> T {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            same_shape(&target, y.nrows(), y.ncols(), "squared_error target");
            let mut total = T::zero();
            let mut grad = grad;
            let two_scale = scale + scale;
            for i in 0..y.nrows() {
                let (yr, tr) = (y.row(i), target.at_row(i));
                let mut row_total = T::zero();
                match grad.as_mut() {
                    Some(g) => {
                        for ((gv, &a), b) in g.row_mut(i).iter_mut().zip(yr).zip(tr) {
                            let d = a - b;
                            row_total += d * d;
                            *gv = two_scale * d;
                        }
                    }
                    None => {
                        for (&a, b) in yr.iter().zip(tr) {
                            let d = a - b;
                            row_total += d * d;
                        }
                    }
                }
                total += row_total;
            }
            total * scale
        },
    )
}

/// Binary cross-entropy on logits, averaged over every element (PyTorch's
/// `binary_cross_entropy_with_logits`), in the stable form `max(z, 0) - z t + ln(1 + e^-|z|)`,
/// fused with its gradient `(sigmoid(z) - t) / n`.
pub fn bce_with_logits<T: Float>(z: MatRef<'_, T>, target: MatRef<'_, T>, grad: Option<MatMut<'_, T>>) -> T {
    crate::simd::dispatch(
        #[inline(always)]
        move || {
            same_shape(&target, z.nrows(), z.ncols(), "bce_with_logits target");
            let inv = T::one() / T::of((z.nrows() * z.ncols()) as f64);
            let mut total = T::zero();
            let mut grad = grad;
            for i in 0..z.nrows() {
                let (zr, tr) = (z.row(i), target.at_row(i));
                for (j, (&v, t)) in zr.iter().zip(tr).enumerate() {
                    total += v.max(T::zero()) - v * t + (-v.abs()).exp().ln_1p();
                    if let Some(g) = grad.as_mut() {
                        g.row_mut(i)[j] = (Sigmoid.apply(v) - t) * inv;
                    }
                }
            }
            total * inv
        },
    )
}

/// The elementwise kernels on a thread pool: a large matrix is split by rows into two halves
/// computed side by side. Each element is computed as on one thread, so the bits do not depend on
/// the number of threads. Sums over rows (the bias gradient) are split by columns instead, so
/// that each column is still summed over its rows in order. (The losses, which sum everything,
/// stay on the calling thread: splitting them would change the order of their sums.)
pub mod par {
    use super::Activation;
    use crate::gemm::{MatMut, MatRef, Pool};
    use crate::Float;

    /// Below this many elements, waking a thread costs more than it saves.
    const MIN_ELEMENTS: usize = 1 << 15;

    /// Whether a pass over `elements` is worth sharing on `pool`.
    fn share<T: Float>(pool: &Pool<T>, elements: usize) -> bool {
        pool.threads() > 1 && elements >= MIN_ELEMENTS
    }

    /// Whether to split `rows x cols` on `pool` by rows, and where.
    fn split<T: Float>(pool: &Pool<T>, rows: usize, cols: usize) -> Option<usize> {
        (rows >= 2 && share(pool, rows * cols)).then_some(rows / 2)
    }

    /// [`super::bias_act`] on `pool`.
    pub fn bias_act<T: Float, A: Activation>(pool: &Pool<T>, y: MatMut<'_, T>, bias: &[T], act: A) {
        match split(pool, y.nrows(), y.ncols()) {
            Some(mid) => {
                let (y0, y1) = y.split_rows_at(mid);
                pool.join(|_| super::bias_act(y0, bias, act), move |_| super::bias_act(y1, bias, act));
            }
            None => super::bias_act(y, bias, act),
        }
    }

    /// [`super::bias_act_keep_input`] on `pool`.
    pub fn bias_act_keep_input<T: Float, A: Activation>(
        pool: &Pool<T>,
        z: MatMut<'_, T>,
        y: MatMut<'_, T>,
        bias: &[T],
        act: A,
    ) {
        match split(pool, z.nrows(), z.ncols()) {
            Some(mid) => {
                let ((z0, z1), (y0, y1)) = (z.split_rows_at(mid), y.split_rows_at(mid));
                pool.join(
                    |_| super::bias_act_keep_input(z0, y0, bias, act),
                    move |_| super::bias_act_keep_input(z1, y1, bias, act),
                );
            }
            None => super::bias_act_keep_input(z, y, bias, act),
        }
    }

    /// [`super::act_forward`] on `pool`.
    pub fn act_forward<T: Float, A: Activation>(pool: &Pool<T>, z: MatRef<'_, T>, y: MatMut<'_, T>, act: A) {
        match split(pool, y.nrows(), y.ncols()) {
            Some(mid) => {
                let (n, (y0, y1)) = (z.nrows(), y.split_rows_at(mid));
                let (z0, z1) = (z.rows(0, mid), z.rows(mid, n - mid));
                pool.join(|_| super::act_forward(z0, y0, act), move |_| super::act_forward(z1, y1, act));
            }
            None => super::act_forward(z, y, act),
        }
    }

    /// [`super::add`] on `pool`.
    pub fn add<T: Float>(pool: &Pool<T>, a: MatRef<'_, T>, b: MatRef<'_, T>, out: MatMut<'_, T>) {
        match split(pool, out.nrows(), out.ncols()) {
            Some(mid) => {
                let (n, (o0, o1)) = (out.nrows(), out.split_rows_at(mid));
                let (a0, a1, b0, b1) = (a.rows(0, mid), a.rows(mid, n - mid), b.rows(0, mid), b.rows(mid, n - mid));
                pool.join(|_| super::add(a0, b0, o0), move |_| super::add(a1, b1, o1));
            }
            None => super::add(a, b, out),
        }
    }

    /// [`super::column_sums`] on `pool`: a wide matrix is split into two blocks of columns.
    pub fn column_sums<T: Float>(pool: &Pool<T>, g: MatRef<'_, T>, out: &mut [T], accumulate: bool) {
        // whole vectors of columns on each side (16 f32 or 8 f64 in 64 bytes)
        let lanes = 64 / core::mem::size_of::<T>();
        let mid = g.ncols() / 2 / lanes * lanes;
        if mid > 0 && share(pool, g.nrows() * g.ncols()) {
            let (n, (o0, o1)) = (g.ncols(), out.split_at_mut(mid));
            let (g0, g1) = (g.cols(0, mid), g.cols(mid, n - mid));
            pool.join(|_| super::column_sums(g0, o0, accumulate), move |_| super::column_sums(g1, o1, accumulate));
        } else {
            super::column_sums(g, out, accumulate)
        }
    }

    /// [`super::channel_sums`] on `pool`: split into blocks of channels.
    pub fn channel_sums<T: Float>(pool: &Pool<T>, g: MatRef<'_, T>, positions: usize, out: &mut [T], accumulate: bool) {
        let channels = out.len();
        if channels >= 2 && share(pool, g.nrows() * g.ncols()) {
            let mid = channels / 2;
            let (o0, o1) = out.split_at_mut(mid);
            pool.join(
                |_| super::channel_sums_of(g, positions, 0, o0, accumulate),
                move |_| super::channel_sums_of(g, positions, mid, o1, accumulate),
            );
        } else {
            super::channel_sums(g, positions, out, accumulate)
        }
    }

    /// [`act_backward_in_place`] then [`channel_sums`]: the backward pass of a convolution's
    /// activation, and the convolution's bias gradient (`positions` values per channel).
    #[allow(clippy::too_many_arguments)]
    pub fn act_backward_in_place_channel_bias<T: Float, A: Activation>(
        pool: &Pool<T>,
        mut g: MatMut<'_, T>,
        y: MatRef<'_, T>,
        z: MatRef<'_, T>,
        act: A,
        positions: usize,
        bias_grad: &mut [T],
        accumulate: bool,
    ) {
        act_backward_in_place(pool, g.rb(), y, z, act);
        channel_sums(pool, g.as_ref(), positions, bias_grad, accumulate);
    }

    /// [`super::act_backward_in_place`] with a bias gradient, on `pool`. On one thread, or for a
    /// small matrix, this is the fused pass; otherwise the activation's backward pass split by
    /// rows, then [`column_sums`] split by columns: two passes, but no thread waits for a
    /// serial sum, and each column is summed over its rows in the same order (the same bits).
    pub fn act_backward_in_place_bias<T: Float, A: Activation>(
        pool: &Pool<T>,
        mut g: MatMut<'_, T>,
        y: MatRef<'_, T>,
        z: MatRef<'_, T>,
        act: A,
        bias_grad: &mut [T],
        accumulate: bool,
    ) {
        match split(pool, g.nrows(), g.ncols()) {
            Some(_) => {
                act_backward_in_place(pool, g.rb(), y, z, act);
                column_sums(pool, g.as_ref(), bias_grad, accumulate);
            }
            None => super::act_backward_in_place(g, y, z, act, Some((bias_grad, accumulate))),
        }
    }

    /// [`super::act_backward_in_place`] without a bias gradient, on `pool`.
    pub fn act_backward_in_place<T: Float, A: Activation>(
        pool: &Pool<T>,
        g: MatMut<'_, T>,
        y: MatRef<'_, T>,
        z: MatRef<'_, T>,
        act: A,
    ) {
        match split(pool, g.nrows(), g.ncols()) {
            Some(mid) => {
                let (n, (g0, g1)) = (g.nrows(), g.split_rows_at(mid));
                let (y0, y1, z0, z1) = (y.rows(0, mid), y.rows(mid, n - mid), z.rows(0, mid), z.rows(mid, n - mid));
                pool.join(
                    |_| super::act_backward_in_place(g0, y0, z0, act, None),
                    move |_| super::act_backward_in_place(g1, y1, z1, act, None),
                );
            }
            None => super::act_backward_in_place(g, y, z, act, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::Pool;
    use crate::Rng;

    /// The pool's bias-gradient kernels (split by rows, then by columns) give the bits of the
    /// fused one-thread pass, for widths around the column split and with `accumulate`.
    #[test]
    fn pool_bias_gradients_match_the_fused_pass() {
        let pool = Pool::<f32>::new(2);
        let mut rng = Rng::new(3);
        for (rows, cols) in [(128, 300), (7, 5000), (300, 17), (64, 512), (2, 20000)] {
            let fill = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
            let (z, g0, db0) = (fill(&mut rng, rows * cols), fill(&mut rng, rows * cols), fill(&mut rng, cols));
            let mut y = z.clone();
            act_forward(MatRef::row_major(&z, rows, cols), MatMut::row_major(&mut y, rows, cols), Gelu);
            for accumulate in [false, true] {
                let (mut g1, mut db1) = (g0.clone(), db0.clone());
                act_backward_in_place(
                    MatMut::row_major(&mut g1, rows, cols),
                    MatRef::row_major(&y, rows, cols),
                    MatRef::row_major(&z, rows, cols),
                    Gelu,
                    Some((&mut db1, accumulate)),
                );
                let (mut g2, mut db2) = (g0.clone(), db0.clone());
                par::act_backward_in_place_bias(
                    &pool,
                    MatMut::row_major(&mut g2, rows, cols),
                    MatRef::row_major(&y, rows, cols),
                    MatRef::row_major(&z, rows, cols),
                    Gelu,
                    &mut db2,
                    accumulate,
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&g1), bits(&g2), "{rows}x{cols}");
                assert_eq!(bits(&db1), bits(&db2), "{rows}x{cols} accumulate {accumulate}");
                let mut db3 = db0.clone();
                column_sums(MatRef::row_major(&g1, rows, cols), &mut db3, accumulate);
                let mut db4 = db0.clone();
                par::column_sums(&pool, MatRef::row_major(&g1, rows, cols), &mut db4, accumulate);
                assert_eq!(bits(&db3), bits(&db4), "{rows}x{cols} column sums");
            }
        }
    }
}
