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

use std::marker::PhantomData;

use crate::optim::{PathScaled, Plain};
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

/// Whether a network with this capability accepts an optimizer with requirement `R`.
#[diagnostic::on_unimplemented(
    message = "Path-SGD is not defined for this network (`{Self}`)",
    label = "this needs Path-SGD's path scales",
    note = "Path-SGD needs a network of dense layers whose activations are positively homogeneous \
            (relu, leaky_relu, identity: f(c z) = c f(z) for every c > 0), so that rescaling a hidden \
            unit leaves the function unchanged; sigmoid, tanh, softplus and gelu are not, and a layer \
            applied twice puts one weight on several edges"
)]
pub trait Accepts<R> {}

impl Accepts<Plain> for Homogeneous {}
impl Accepts<PathScaled> for Homogeneous {}
impl<A> Accepts<Plain> for NotHomogeneous<A> {}
impl Accepts<Plain> for SharedLayer {}

// With a single impl for a capability, rustc would answer a mismatch with "expected `Plain`,
// found `PathScaled`" instead of the message above; a second impl, for a requirement no optimizer
// has, keeps the diagnostic ours.
#[doc(hidden)]
pub enum NoOptimizerRequiresThis {}
impl<A> Accepts<NoOptimizerRequiresThis> for NotHomogeneous<A> {}
impl Accepts<NoOptimizerRequiresThis> for SharedLayer {}

/// Forward pass of a Linear layer over squared weights:
/// `g[y + v] = sum_u w[v, u]^2 g[x + u] + b[v]^2`, for `w` `[outputs, inputs]` row-major and
/// `b` empty or of length `outputs`. The input region must come before the output region.
///
/// Each sum runs over 8 interleaved partial sums, added in a fixed order, so it vectorises and
/// gives the same bits at every vector width.
pub fn forward<T: Float>(w: &[T], outputs: usize, inputs: usize, bias: &[T], g: &mut [T], x: usize, y: usize) {
    assert!(x + inputs <= y && w.len() == outputs * inputs && (bias.is_empty() || bias.len() == outputs));
    crate::simd::dispatch(
        #[inline(always)]
        || {
            let (lo, hi) = g.split_at_mut(y);
            let gx = &lo[x..x + inputs];
            for (v, out) in hi[..outputs].iter_mut().enumerate() {
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
pub fn backward<T: Float>(w: &[T], outputs: usize, inputs: usize, g: &mut [T], y: usize, x: usize) {
    assert!(x + inputs <= y && w.len() == outputs * inputs);
    crate::simd::dispatch(
        #[inline(always)]
        || {
            let (lo, hi) = g.split_at_mut(y);
            let gx = &mut lo[x..x + inputs];
            for (v, &gv) in hi[..outputs].iter().enumerate() {
                let row = &w[v * inputs..(v + 1) * inputs];
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

/// The path scales of a Linear layer: `w_scale[v, u] = gamma_in[u] * gamma_out[v]` and
/// `b_scale[v] = gamma_out[v]` (empty for a layer without bias).
pub fn scales<T: Float>(gamma_in: &[T], gamma_out: &[T], w_scale: &mut [T], b_scale: &mut [T]) {
    assert_eq!(w_scale.len(), gamma_in.len() * gamma_out.len());
    crate::simd::dispatch(
        #[inline(always)]
        || scales_body(gamma_in, gamma_out, w_scale, b_scale),
    )
}

#[inline(always)]
fn scales_body<T: Float>(gamma_in: &[T], gamma_out: &[T], w_scale: &mut [T], b_scale: &mut [T]) {
    for (row, &go) in w_scale.chunks_exact_mut(gamma_in.len().max(1)).zip(gamma_out) {
        for (s, &gi) in row.iter_mut().zip(gamma_in) {
            *s = gi * go;
        }
    }
    if !b_scale.is_empty() {
        b_scale.copy_from_slice(gamma_out);
    }
}

/// Writes [`scales`] into the optimizer states of a layer's weight (`states[weight]`) and, when
/// `has_bias`, of its bias (`states[weight + 1]`, the next tensor).
pub fn layer_scales<T: Float, S: crate::OptimizerState<T>>(
    states: &mut [S],
    weight: usize,
    has_bias: bool,
    gamma_in: &[T],
    gamma_out: &[T],
) {
    let (w, rest) = states[weight..].split_first_mut().expect("the weight's state");
    let w = w.path_scales().expect("a state with path scales");
    match rest.first_mut().filter(|_| has_bias) {
        Some(b) => scales(gamma_in, gamma_out, w, b.path_scales().expect("a state with path scales")),
        None => scales(gamma_in, gamma_out, w, &mut []),
    }
}
