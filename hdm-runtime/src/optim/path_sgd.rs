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
/// The state keeps the two factors of the scales, `gamma_in` per column and `gamma_out` per row
/// of the tensor, not a scale per weight: the update multiplies them as it goes, which gives the
/// same bits as a materialised scale without writing and reading one more value per weight.
///
/// ```
/// use hdm_runtime::optim::{Optimizer, OptimizerState, PathSgd};
/// let opt = PathSgd::new(0.5);
/// // a 2 x 3 weight: gamma_in of its 3 inputs, gamma_out of its 2 outputs
/// let mut state = Optimizer::<f64>::init(&opt, 6);
/// let (gamma_in, gamma_out) = state.path_factors().unwrap();
/// *gamma_in = vec![1.0, 2.0, 0.0];
/// *gamma_out = vec![2.0, 4.0];
/// let mut w = [1.0; 6];
/// let step = Optimizer::<f64>::prepare(&opt, 1, 1.0);
/// opt.update(&step, &mut w, &[1.0; 6], &mut state);
/// assert_eq!(w, [0.75, 0.875, 1.0, 0.875, 0.9375, 1.0]);
/// assert_eq!(state.scales().collect::<Vec<_>>(), [2.0, 4.0, 0.0, 4.0, 8.0, 0.0]);
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

/// Path-SGD's state: the path factors of the tensor (see [`OptimizerState::path_factors`]),
/// recomputed every step (not saved in checkpoints).
#[derive(Clone, Debug, Default)]
pub struct PathSgdState<T> {
    /// `gamma_in` of each column (input) of the tensor; `[1]` for a bias.
    pub gamma_in: Vec<T>,
    /// `gamma_out` of each row (output) of the tensor.
    pub gamma_out: Vec<T>,
}

impl<T: Float> PathSgdState<T> {
    /// The scale of every element, in the tensor's row-major order: `gamma_in[u] * gamma_out[v]`.
    pub fn scales(&self) -> impl Iterator<Item = T> + '_ {
        self.gamma_out.iter().flat_map(|&go| self.gamma_in.iter().map(move |&gi| gi * go))
    }
}

impl<T: Float> OptimizerState<T> for PathSgdState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        Vec::new()
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        Vec::new()
    }
    fn path_factors(&mut self) -> Option<(&mut Vec<T>, &mut Vec<T>)> {
        Some((&mut self.gamma_in, &mut self.gamma_out))
    }
}

/// A part of a tensor's [`PathSgdState`]: the tensor's factors, and where the part starts in the
/// tensor (its elements' rows and columns follow from it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathSgdChunk<'a, T> {
    pub gamma_in: &'a [T],
    pub gamma_out: &'a [T],
    /// The part's first element, as an index into the whole tensor.
    pub start: usize,
}

impl<T: Float> Optimizer<T> for PathSgd {
    type Requires = PathScaled;
    type State = PathSgdState<T>;
    type Step = T;
    type Chunk<'a> = PathSgdChunk<'a, T>;

    fn name(&self) -> &'static str {
        "path-sgd"
    }

    fn validate(&self) -> crate::Result<()> {
        super::Check("path_sgd").non_negative("lr", self.lr)
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![("lr", self.lr)]
    }

    /// Empty factors: the trainer sizes them to the tensor's shape, which `len` does not give.
    fn init(&self, _len: usize) -> PathSgdState<T> {
        PathSgdState::default()
    }

    fn prepare(&self, _t: u64, lr_scale: f64) -> T {
        T::of(self.lr * lr_scale)
    }

    /// True: every element moves on its own, by its own scale.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut PathSgdState<T>) -> PathSgdChunk<'_, T> {
        PathSgdChunk { gamma_in: &state.gamma_in, gamma_out: &state.gamma_out, start: 0 }
    }

    fn split_chunk<'a>(chunk: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        (chunk, PathSgdChunk { start: chunk.start + mid, ..chunk })
    }

    /// # Panics
    /// If `grad` is not as long as `x`, or the factors' product does not cover the chunk's
    /// elements (`gamma_in.len() * gamma_out.len() < start + x.len()`: factors not set).
    fn update_chunk(&self, lr: &T, x: &mut [T], g: &[T], chunk: PathSgdChunk<'_, T>) -> T {
        let PathSgdChunk { gamma_in, gamma_out, start } = chunk;
        assert_eq!(x.len(), g.len());
        let cols = gamma_in.len();
        assert!(
            cols * gamma_out.len() >= start + x.len(),
            "Path-SGD: path factors of {} x {} for elements {start}..{} (factors not set?)",
            gamma_out.len(),
            cols,
            start + x.len()
        );
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let lr = *lr;
                // Row by row: the part of row `start / cols` from column `start % cols`, then whole
                // rows, the last one cut where the chunk ends.
                let (mut x, mut g, mut col) = (x, g, start % cols.max(1));
                for &go in &gamma_out[start / cols.max(1)..] {
                    if x.is_empty() {
                        break;
                    }
                    let n = (cols - col).min(x.len());
                    let (row_x, rest_x) = std::mem::take(&mut x).split_at_mut(n);
                    let (row_g, rest_g) = g.split_at(n);
                    for ((x, &g), &gi) in row_x.iter_mut().zip(row_g).zip(&gamma_in[col..]) {
                        let s = gi * go;
                        let step = if s > T::zero() { g / s } else { T::zero() };
                        *x -= lr * step;
                    }
                    (x, g, col) = (rest_x, rest_g, 0);
                }
                T::zero()
            },
        )
    }
}
