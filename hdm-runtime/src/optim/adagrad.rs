//! AdaGrad: per-coordinate step sizes from the sum of squared gradients.

use super::{in_use, in_use_mut, Optimizer, OptimizerState};
use crate::aligned::AlignedVec;
use crate::Float;

/// AdaGrad with `torch.optim.Adagrad`'s update rule and defaults (Duchi, Hazan and Singer 2011,
/// "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization").
///
/// With gradient `g` of parameter `x` at step `t` (counting from 1), and the accumulator `sum`
/// starting at `initial_accumulator_value`:
///
/// ```text
/// lr_t <- lr / (1 + (t - 1) * lr_decay)
/// g    <- g + weight_decay * x
/// sum  <- sum + g^2
/// x    <- x - lr_t * g / (sqrt(sum) + eps)
/// ```
///
/// ```
/// use hdm_runtime::optim::{AdaGrad, Optimizer};
/// let adagrad = AdaGrad::new(0.1);
/// let (mut x, g) = ([1.0f64, -2.0], [0.5, -0.25]);
/// let mut state = adagrad.init(2);
/// let step = Optimizer::<f64>::prepare(&adagrad, 1, 1.0);
/// adagrad.update(&step, &mut x, &g, &mut state);
/// // The first step moves every coordinate by about lr, against its gradient.
/// assert!((x[0] - 0.9).abs() < 1e-9 && (x[1] + 1.9).abs() < 1e-9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaGrad {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
}

impl Default for AdaGrad {
    /// torch's defaults: lr = 1e-2, no decay, accumulator from 0, eps = 1e-10.
    fn default() -> Self {
        AdaGrad::new(1e-2)
    }
}

impl AdaGrad {
    /// AdaGrad with learning rate `lr` and torch's other defaults.
    pub fn new(lr: f64) -> Self {
        AdaGrad { lr, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
    /// Sets the learning-rate decay: step `t` uses `lr / (1 + (t - 1) * lr_decay)`.
    pub fn lr_decay(self, lr_decay: f64) -> Self {
        AdaGrad { lr_decay, ..self }
    }
    /// Sets the L2 penalty added to the gradient.
    pub fn weight_decay(self, weight_decay: f64) -> Self {
        AdaGrad { weight_decay, ..self }
    }
    /// Sets the value the sum of squared gradients starts from.
    pub fn initial_accumulator_value(self, initial_accumulator_value: f64) -> Self {
        AdaGrad { initial_accumulator_value, ..self }
    }
    /// Sets the term added to the denominator (after the square root).
    pub fn eps(self, eps: f64) -> Self {
        AdaGrad { eps, ..self }
    }
}

/// AdaGrad's state: the sum of squared gradients.
#[derive(Clone, Debug)]
pub struct AdaGradState<T> {
    pub sum: AlignedVec<T>,
}

impl<T: Float> OptimizerState<T> for AdaGradState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        in_use([("sum", &self.sum)])
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        in_use_mut([("sum", &mut self.sum)])
    }
}

/// AdaGrad's per-step scalars.
#[derive(Clone, Copy, Debug)]
pub struct AdaGradStep<T> {
    lr: T,
    weight_decay: T,
    eps: T,
    /// Whether subnormal values are flushed ([`Optimizer::flush_subnormals`]).
    flush: bool,
}

impl<T: Float> Optimizer<T> for AdaGrad {
    type Requires = super::Plain;
    type State = AdaGradState<T>;
    type Step = AdaGradStep<T>;
    /// The sum's elements.
    type Chunk<'a> = &'a mut [T];

    fn name(&self) -> &'static str {
        "adagrad"
    }

    fn validate(&self) -> crate::Result<()> {
        let c = super::Check("adagrad");
        c.non_negative("lr", self.lr)?;
        c.non_negative("lr_decay", self.lr_decay)?;
        c.non_negative("weight_decay", self.weight_decay)?;
        c.non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        c.non_negative("eps", self.eps)
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("lr_decay", self.lr_decay),
            ("weight_decay", self.weight_decay),
            ("initial_accumulator_value", self.initial_accumulator_value),
            ("eps", self.eps),
        ]
    }

    fn init(&self, len: usize) -> AdaGradState<T> {
        AdaGradState { sum: AlignedVec::filled(T::of(self.initial_accumulator_value), len) }
    }

    fn prepare(&self, t: u64, lr_scale: f64) -> AdaGradStep<T> {
        let decayed = 1.0 + t.saturating_sub(1) as f64 * self.lr_decay;
        AdaGradStep {
            lr: T::of(self.lr * lr_scale / decayed),
            weight_decay: T::of(self.weight_decay),
            eps: T::of(self.eps),
            flush: false,
        }
    }

    fn flush_subnormals(step: AdaGradStep<T>) -> AdaGradStep<T> {
        AdaGradStep { flush: true, ..step }
    }

    /// True: every element moves on its own.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut AdaGradState<T>) -> &mut [T] {
        &mut state.sum
    }

    fn split_chunk<'a>(sum: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        sum.split_at_mut(mid)
    }

    fn update_chunk(&self, step: &AdaGradStep<T>, x: &mut [T], g: &[T], sum: &mut [T]) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let AdaGradStep { lr, weight_decay, eps, flush } = *step;
                let l2 = super::L2::new(weight_decay);
                assert_eq!(x.len(), g.len());
                let sum = &mut sum[..x.len()];
                flushing!(flush, f => for ((x, &g), s) in x.iter_mut().zip(g).zip(sum) {
                    let g = l2.grad(f.flush(g), *x);
                    let si = f.flush(*s + f.weighted_square(T::one(), g));
                    *s = si;
                    *x -= lr * g / (si.sqrt() + eps);
                });
                T::zero()
            },
        )
    }
}
