//! Path-SGD: steepest descent with respect to the path regulariser (p = 2).

use super::{Optimizer, OptimizerState, PathScaled};
use crate::Float;

/// Path-SGD (Neyshabur, Salakhutdinov and Srebro 2015, "Path-SGD: Path-Normalized Optimization in
/// Deep Neural Networks"), for p = 2.
///
/// Each weight `w_e` of an edge `u -> v` is moved against its gradient scaled by
/// `gamma_e = gamma_in(u) * gamma_out(v)`:
///
/// ```text
/// w_e <- w_e - lr * g_e / gamma_e        (w_e unchanged where gamma_e = 0)
/// ```
///
/// where `gamma_in(u)` is the sum, over every path from an input (or a bias) to `u`, of the
/// product of the squared weights on it, and `gamma_out(v)` the same from `v` to the outputs. A
/// bias is an edge from a unit that is always 1, so its scale is `gamma_out(v)`. The network's
/// compiler generates the two passes over the squared weights that compute them, every step.
///
/// The update is invariant to rescaling a hidden unit of a ReLU network (its incoming weights and
/// bias times `c`, its outgoing weights divided by `c`), which leaves the function unchanged; SGD's
/// update is not. Path-SGD is defined for networks whose activations are positively homogeneous
/// (`relu`, `leaky_relu`, `identity`): making a trainer with it for any other network is a
/// compile error.
///
/// ```
/// use hdm_runtime::optim::{Optimizer, OptimizerState, PathSgd};
/// let opt = PathSgd::new(0.5);
/// let mut state = Optimizer::<f64>::init(&opt, 3);
/// state.path_scales().unwrap().copy_from_slice(&[2.0, 4.0, 0.0]);
/// let mut w = [1.0, 1.0, 1.0];
/// let step = Optimizer::<f64>::prepare(&opt, 1, 1.0);
/// opt.update(&step, &mut w, &[1.0, 1.0, 1.0], &mut state);
/// assert_eq!(w, [0.75, 0.875, 1.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathSgd {
    pub lr: f64,
}

impl PathSgd {
    /// Path-SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        PathSgd { lr }
    }
}

impl Default for PathSgd {
    /// lr = 1e-2.
    fn default() -> Self {
        PathSgd::new(1e-2)
    }
}

/// Path-SGD's state: the path scales of the tensor, recomputed every step (not saved in
/// checkpoints).
#[derive(Clone, Debug)]
pub struct PathSgdState<T> {
    pub scale: Vec<T>,
}

impl<T: Float> OptimizerState<T> for PathSgdState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        Vec::new()
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        Vec::new()
    }
    fn path_scales(&mut self) -> Option<&mut [T]> {
        Some(&mut self.scale)
    }
}

impl<T: Float> Optimizer<T> for PathSgd {
    type Requires = PathScaled;
    type State = PathSgdState<T>;
    type Step = T;
    /// The path scales' elements (the update only reads them).
    type Chunk<'a> = &'a [T];

    fn name(&self) -> &'static str {
        "path-sgd"
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![("lr", self.lr)]
    }

    fn init(&self, len: usize) -> PathSgdState<T> {
        PathSgdState { scale: vec![T::zero(); len] }
    }

    fn prepare(&self, _t: u64, lr_scale: f64) -> T {
        T::of(self.lr * lr_scale)
    }

    /// True: every element moves on its own, by its own scale.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut PathSgdState<T>) -> &[T] {
        &state.scale
    }

    fn split_chunk<'a>(scale: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        scale.split_at(mid)
    }

    fn update_chunk(&self, lr: &T, x: &mut [T], g: &[T], scale: &[T]) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let lr = *lr;
                assert_eq!(x.len(), g.len());
                let scale = &scale[..x.len()];
                for ((x, &g), &s) in x.iter_mut().zip(g).zip(scale) {
                    let step = if s > T::zero() { g / s } else { T::zero() };
                    *x -= lr * step;
                }
                T::zero()
            },
        )
    }
}
