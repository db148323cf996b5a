//! Path-SGD's passes over the squared weights, and which networks they are defined for.
//!
//! For a network of dense layers, `gamma_in(u)` is the sum over every path from an input unit
//! (or a bias, an edge from a unit that is always 1) to unit `u` of the product of the squared
//! weights along it, and `gamma_out(v)` the same from `v` to the output units. One forward pass
//! of the squared weights from all-ones inputs (no activations) gives every `gamma_in`; one
//! backward pass from all-ones outputs gives every `gamma_out`. The generated code calls the
//! kernels below on one buffer per pass, each value of the network at its own offset.
//!
//! Additions and concatenations are edges of weight 1: `gamma_in` of a sum is the sum of the
//! `gamma_in`s, and `gamma_out` flows back to both terms.
//!
//! In a convolutional network a unit is one position of one channel (of one sample). A
//! convolution's weight lies on one edge per output position it reaches, so its scale is the sum
//! over those edges, `sum gamma_in(u) gamma_out(v)`: the weight gradient of the convolution with
//! `gamma_out` as the output gradient and `gamma_in` as the input ([`conv_factors`]). A pooling
//! window is a set of edges of weight 1 (max: rescaling every unit of a channel by `c > 0`
//! rescales the max by `c`) or `1 / K^2` (average). Batch normalisation is not positively
//! homogeneous (it undoes any rescaling of its input), so Path-SGD is not defined with it.

use std::marker::PhantomData;

use crate::gemm::Pool;
use crate::optim::{OptimizerState, PathScaled, Plain};
use crate::Float;

/// Path scales are defined for the network: every activation is positively homogeneous
/// (relu, leaky_relu, identity) and no layer is applied twice.
#[derive(Clone, Copy, Debug)]
pub struct Homogeneous;

/// Path scales are not defined for the network: it applies the activation `A`, which is not
/// positively homogeneous (`f(c z) != c f(z)` for some `c > 0`).
#[derive(Clone, Copy, Debug)]
pub struct NotHomogeneous<A>(PhantomData<A>);

/// Path scales are not defined for the network: it applies a layer twice, so one weight lies on
/// several edges.
#[derive(Clone, Copy, Debug)]
pub struct SharedLayer;

/// Path scales are not defined for the network: it normalises a batch (`BatchNorm1d`,
/// `BatchNorm2d`), which divides by a statistic of its input and so is not positively
/// homogeneous in its weights.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormalized;

/// Whether a network with this capability accepts an optimizer with requirement `R`.
#[diagnostic::on_unimplemented(
    message = "Path-SGD is not defined for this network (`{Self}`)",
    label = "this needs Path-SGD's path scales",
    note = "Path-SGD needs a network whose activations are positively homogeneous (relu, leaky_relu, \
            identity: f(c z) = c f(z) for every c > 0), so that rescaling a hidden unit leaves the function \
            unchanged; sigmoid, tanh, softplus and gelu are not, batch normalisation is not, and a layer \
            applied twice puts one weight on several edges"
)]
pub trait Accepts<R> {}

impl Accepts<Plain> for Homogeneous {}
impl Accepts<PathScaled> for Homogeneous {}
impl<A> Accepts<Plain> for NotHomogeneous<A> {}
impl Accepts<Plain> for SharedLayer {}
impl Accepts<Plain> for BatchNormalized {}

// With a single impl for a capability, rustc would answer a mismatch with "expected `Plain`,
// found `PathScaled`" instead of the message above; a second impl, for a requirement no optimizer
// has, keeps the diagnostic ours.
#[doc(hidden)]
pub enum NoOptimizerRequiresThis {}
impl<A> Accepts<NoOptimizerRequiresThis> for NotHomogeneous<A> {}
impl Accepts<NoOptimizerRequiresThis> for SharedLayer {}
impl Accepts<NoOptimizerRequiresThis> for BatchNormalized {}

/// Layers with fewer weights than this run their passes on the calling thread.
const MIN_SPLIT: usize = 1 << 14;

/// Whether a pass over an `outputs x inputs` weight is split in two halves on `pool`.
fn split<T: Float>(pool: &Pool<T>, outputs: usize, inputs: usize) -> bool {
    pool.threads() > 1 && outputs * inputs >= MIN_SPLIT && outputs > 1 && inputs > 1
}

/// Forward pass of a Linear layer over squared weights:
/// `g[y + v] = sum_u w[v, u]^2 g[x + u] + b[v]^2`, for `w` `[outputs, inputs]` row-major and
/// `b` empty or of length `outputs`. The input region must come before the output region.
///
/// Each sum runs over 8 interleaved partial sums, added in a fixed order, so it vectorises and
/// gives the same bits at every vector width. On two threads, each computes half of the outputs:
/// every sum is the same as on one.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    pool: &Pool<T>,
    w: &[T],
    outputs: usize,
    inputs: usize,
    bias: &[T],
    g: &mut [T],
    x: usize,
    y: usize,
) {
    assert!(x + inputs <= y && w.len() == outputs * inputs && (bias.is_empty() || bias.len() == outputs));
    let (lo, hi) = g.split_at_mut(y);
    let (gx, gy) = (&lo[x..x + inputs], &mut hi[..outputs]);
    if !split(pool, outputs, inputs) {
        return forward_rows(w, inputs, bias, gx, gy);
    }
    let mid = outputs / 2;
    let ((w0, w1), (y0, y1)) = (w.split_at(mid * inputs), gy.split_at_mut(mid));
    let (b0, b1) = if bias.is_empty() { (bias, bias) } else { bias.split_at(mid) };
    pool.join(|_| forward_rows(w0, inputs, b0, gx, y0), move |_| forward_rows(w1, inputs, b1, gx, y1));
}

/// [`forward`] of the outputs `gy` (rows `w`, biases `bias` or none).
fn forward_rows<T: Float>(w: &[T], inputs: usize, bias: &[T], gx: &[T], gy: &mut [T]) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for (v, out) in gy.iter_mut().enumerate() {
                let row = &w[v * inputs..(v + 1) * inputs];
                let mut lanes = [T::zero(); 8];
                let (rows, gs) = (row.chunks_exact(8), gx.chunks_exact(8));
                let (row_rest, g_rest) = (rows.remainder(), gs.remainder());
                for (r, gu) in rows.zip(gs) {
                    for ((s, &wv), &gv) in lanes.iter_mut().zip(r).zip(gu) {
                        *s += wv * wv * gv;
                    }
                }
                let mut s = bias.get(v).map_or(T::zero(), |&b| b * b);
                for (&wv, &gv) in row_rest.iter().zip(g_rest) {
                    s += wv * wv * gv;
                }
                *out = lanes.iter().fold(s, |acc, &l| acc + l);
            }
        },
    )
}

/// Backward pass of a Linear layer over squared weights:
/// `g[x + u] += sum_v w[v, u]^2 g[y + v]`. The input region must come before the output region.
/// On two threads, each computes half of the inputs, summing over `v` in the same order.
pub fn backward<T: Float>(pool: &Pool<T>, w: &[T], outputs: usize, inputs: usize, g: &mut [T], y: usize, x: usize) {
    assert!(x + inputs <= y && w.len() == outputs * inputs);
    let (lo, hi) = g.split_at_mut(y);
    let (gx, gy) = (&mut lo[x..x + inputs], &hi[..outputs]);
    if !split(pool, outputs, inputs) {
        return backward_columns(w, inputs, 0, gx, gy);
    }
    let mid = inputs / 2;
    let (x0, x1) = gx.split_at_mut(mid);
    pool.join(|_| backward_columns(w, inputs, 0, x0, gy), move |_| backward_columns(w, inputs, mid, x1, gy));
}

/// [`backward`] into the inputs `start..start + gx.len()`.
fn backward_columns<T: Float>(w: &[T], inputs: usize, start: usize, gx: &mut [T], gy: &[T]) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            let cols = gx.len();
            for (v, &gv) in gy.iter().enumerate() {
                let row = &w[v * inputs + start..v * inputs + start + cols];
                for (o, &wv) in gx.iter_mut().zip(row) {
                    *o += wv * wv * gv;
                }
            }
        },
    )
}

/// `g[y..y + width] = g[a..] + g[b..]` (an addition, forward), `y` after both.
pub fn add<T: Float>(g: &mut [T], a: usize, b: usize, y: usize, width: usize) {
    assert!(a + width <= y && b + width <= y);
    let (lo, hi) = g.split_at_mut(y);
    for (i, o) in hi[..width].iter_mut().enumerate() {
        *o = lo[a + i] + lo[b + i];
    }
}

/// `g[y..y + width] = g[x..]` (a part of a concatenation, forward), `y` after `x`.
pub fn copy<T: Float>(g: &mut [T], x: usize, y: usize, width: usize) {
    assert!(x + width <= y);
    g.copy_within(x..x + width, y);
}

/// `g[x..x + width] += g[y..]` (backward through an activation, an addition or a part of a
/// concatenation), `x` before `y`.
pub fn route<T: Float>(g: &mut [T], y: usize, x: usize, width: usize) {
    assert!(x + width <= y);
    let (lo, hi) = g.split_at_mut(y);
    for (o, &v) in lo[x..x + width].iter_mut().zip(&hi[..width]) {
        *o += v;
    }
}

/// Sets the path factors (see [`OptimizerState::path_factors`]) of a layer's weight
/// (`states[weight]`): `gamma_in` of its inputs and `gamma_out` of its outputs; and, when
/// `has_bias`, of its bias (`states[weight + 1]`, the next tensor): `[1]` and `gamma_out`. The
/// scale of weight `[v, u]` is `gamma_in[u] * gamma_out[v]`, and of bias `v` `gamma_out[v]`.
///
/// Writes into the factors' existing buffers: it allocates only the first time, when the trainer
/// is made.
pub fn layer_factors<T: Float, S: OptimizerState<T>>(
    states: &mut [S],
    weight: usize,
    has_bias: bool,
    gamma_in: &[T],
    gamma_out: &[T],
) {
    fn set<T: Float>(state: &mut impl OptimizerState<T>, gamma_in: &[T], gamma_out: &[T]) {
        let (i, o) = state.path_factors().expect("a state with path factors");
        for (factor, values) in [(i, gamma_in), (o, gamma_out)] {
            factor.clear();
            factor.extend_from_slice(values);
        }
    }
    set(&mut states[weight], gamma_in, gamma_out);
    if has_bias {
        set(&mut states[weight + 1], &[T::one()], gamma_out);
    }
}

/// Splits `g` at `y`, giving the regions `x..x + x_len` (before `y`) and `y..y + y_len`.
fn regions<T>(g: &mut [T], x: usize, x_len: usize, y: usize, y_len: usize) -> (&mut [T], &mut [T]) {
    assert!(x + x_len <= y, "the input region must come before the output region");
    let (lo, hi) = g.split_at_mut(y);
    (&mut lo[x..x + x_len], &mut hi[..y_len])
}

/// [`regions`] of a convolution layer's input `x..` and output `y..` (a transposed layer's input
/// is the size of its convolution's output, and its output of the convolution's input).
fn conv_regions<T>(
    g: &mut [T],
    geom: crate::conv::Conv2dGeometry,
    transposed: bool,
    x: usize,
    y: usize,
) -> (&mut [T], &mut [T]) {
    let (in_len, out_len) = if transposed { (geom.out_len(), geom.in_len()) } else { (geom.in_len(), geom.out_len()) };
    regions(g, x, in_len, y, out_len)
}

/// Forward pass of a convolution over squared weights, one sample: `g[y..] = conv(g[x..], W^2) +
/// bias^2` per output channel (`transposed`: the transposed convolution of geometry `geom`, see
/// [`Conv2dGeometry::transposed`](crate::conv::Conv2dGeometry::transposed)).
#[allow(clippy::too_many_arguments)]
pub fn conv_forward<T: Float>(
    pool: &Pool<T>,
    geom: crate::conv::Conv2dGeometry,
    transposed: bool,
    w: &[T],
    bias: &[T],
    g: &mut [T],
    x: usize,
    y: usize,
) {
    let (gx, gy) = conv_regions(g, geom, transposed, x, y);
    crate::conv::single::squared(pool, geom, transposed, w, bias, gx, gy, false);
}

/// Backward pass of a convolution over squared weights, one sample: `g[x..] += conv^T(g[y..],
/// W^2)` (the transposed convolution's: its convolution).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward<T: Float>(
    pool: &Pool<T>,
    geom: crate::conv::Conv2dGeometry,
    transposed: bool,
    w: &[T],
    g: &mut [T],
    y: usize,
    x: usize,
) {
    let (gx, gy) = conv_regions(g, geom, transposed, x, y);
    crate::conv::single::squared(pool, geom, !transposed, w, &[], gy, gx, true);
}

/// Sets the path factors of a convolution's weight (`states[weight]`) and bias: the weight's
/// scale is the sum over its edges of `gamma_in(u) gamma_out(v)` (kept as `gamma_in`, with
/// `gamma_out = [1]`); a bias's is the sum of `gamma_out` over its channel's positions.
///
/// Writes into the factors' existing buffers: it allocates only the first time, when the trainer
/// is made.
#[allow(clippy::too_many_arguments)]
pub fn conv_factors<T: Float, S: OptimizerState<T>>(
    pool: &Pool<T>,
    states: &mut [S],
    weight: usize,
    has_bias: bool,
    geom: crate::conv::Conv2dGeometry,
    transposed: bool,
    gamma_in: &[T],
    gamma_out: &[T],
) {
    {
        let (i, o) = states[weight].path_factors().expect("a state with path factors");
        i.clear();
        i.resize(geom.weight_len(), T::zero());
        o.clear();
        o.push(T::one());
        // On the convolution's sides: a transposed layer's input is its convolution's output.
        let (dy, x) = if transposed { (gamma_in, gamma_out) } else { (gamma_out, gamma_in) };
        crate::conv::single::weight_grad(pool, geom, dy, x, i);
    }
    if has_bias {
        let (i, o) = states[weight + 1].path_factors().expect("a state with path factors");
        i.clear();
        i.push(T::one());
        let channels = if transposed { geom.in_channels } else { geom.out_channels };
        let per = gamma_out.len() / channels;
        o.clear();
        o.extend(gamma_out.chunks_exact(per).map(|c| c.iter().fold(T::zero(), |s, &v| s + v)));
    }
}

/// The squared weight of a pooling window's edges: 1 for max, `1 / K^4` for average.
fn pool_edge<T: Float>(geom: &crate::pooling::Pool2dGeometry, max: bool) -> T {
    if max {
        T::one()
    } else {
        let k = (geom.kernel[0] * geom.kernel[1]) as f64;
        T::of(1.0 / (k * k))
    }
}

/// Forward pass of a pooling over its edges' squared weights: `g[y + (c, oh, ow)] = e *
/// sum over the window of g[x + ...]`.
pub fn pool_forward<T: Float>(geom: crate::pooling::Pool2dGeometry, max: bool, g: &mut [T], x: usize, y: usize) {
    let (gx, gy) = regions(g, x, geom.in_len(), y, geom.out_len());
    let e = pool_edge::<T>(&geom, max);
    let (ih, iw) = (geom.in_height, geom.in_width);
    for c in 0..geom.channels {
        for oh in 0..geom.out_height {
            for ow in 0..geom.out_width {
                let mut s = T::zero();
                for a in 0..geom.kernel[0] {
                    for b in 0..geom.kernel[1] {
                        s += gx[c * ih * iw + (oh * geom.stride[0] + a) * iw + ow * geom.stride[1] + b];
                    }
                }
                gy[(c * geom.out_height + oh) * geom.out_width + ow] = e * s;
            }
        }
    }
}

/// Backward pass of a pooling over its edges' squared weights: `g[x + ...] += e * g[y + (c, oh,
/// ow)]` over each window.
pub fn pool_backward<T: Float>(geom: crate::pooling::Pool2dGeometry, max: bool, g: &mut [T], y: usize, x: usize) {
    let (gx, gy) = regions(g, x, geom.in_len(), y, geom.out_len());
    let e = pool_edge::<T>(&geom, max);
    let (ih, iw) = (geom.in_height, geom.in_width);
    for c in 0..geom.channels {
        for oh in 0..geom.out_height {
            for ow in 0..geom.out_width {
                let v = e * gy[(c * geom.out_height + oh) * geom.out_width + ow];
                for a in 0..geom.kernel[0] {
                    for b in 0..geom.kernel[1] {
                        gx[c * ih * iw + (oh * geom.stride[0] + a) * iw + ow * geom.stride[1] + b] += v;
                    }
                }
            }
        }
    }
}
