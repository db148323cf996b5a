//! Adam and AdamW: one implementation, with the weight decay coupled to the gradient (L2) or
//! decoupled from it.

use super::{in_use, in_use_mut, split_buffer, Optimizer, OptimizerState};
use crate::aligned::AlignedVec;
use crate::Float;

/// Adam with `torch.optim.Adam`'s update rule and defaults (Kingma and Ba 2015, "Adam: A Method for
/// Stochastic Optimization"; AMSGrad from Reddi, Kale and Kumar 2018, "On the Convergence of Adam
/// and Beyond"). The weight decay is an L2 penalty added to the gradient.
///
/// ```
/// use hdm_runtime::optim::{Adam, Optimizer};
/// let adam = Adam::new(0.1);
/// let (mut x, g) = ([1.0f64, -2.0], [0.5, -0.25]);
/// let mut state = adam.init(2);
/// let step = Optimizer::<f64>::prepare(&adam, 1, 1.0);
/// adam.update(&step, &mut x, &g, &mut state);
/// // After bias correction the first step is lr * g / |g|.
/// assert!((x[0] - 0.9).abs() < 1e-6 && (x[1] + 1.9).abs() < 1e-6);
/// ```
pub type Adam = AdamFamily<false>;

/// AdamW with `torch.optim.AdamW`'s update rule and defaults (Loshchilov and Hutter 2019,
/// "Decoupled Weight Decay Regularization"): Adam, with the parameters shrunk by
/// `1 - lr * weight_decay` before the step instead of an L2 penalty in the gradient.
///
/// ```
/// use hdm_runtime::optim::{AdamW, Optimizer};
/// let adamw = AdamW::new(0.1).weight_decay(0.5);
/// let (mut x, g) = ([1.0f64], [0.5]);
/// let mut state = adamw.init(1);
/// let step = Optimizer::<f64>::prepare(&adamw, 1, 1.0);
/// adamw.update(&step, &mut x, &g, &mut state);
/// assert!((x[0] - (1.0 * (1.0 - 0.1 * 0.5) - 0.1)).abs() < 1e-6);
/// ```
pub type AdamW = AdamFamily<true>;

/// Adam ([`Adam`], `DECOUPLED = false`) and AdamW ([`AdamW`], `DECOUPLED = true`).
///
/// With gradient `g` of parameter `x` at step `t` (counting from 1), `m`, `v` and `v_max`
/// starting at zero (`lambda` is `weight_decay`):
///
/// ```text
/// x     <- x * (1 - lr * lambda)          AdamW only
/// g     <- g + lambda * x                 Adam only
/// m     <- beta1 * m + (1 - beta1) * g                  (exp_avg)
/// v     <- beta2 * v + (1 - beta2) * g^2                (exp_avg_sq)
/// v_max <- max(v_max, v)                  amsgrad only  (max_exp_avg_sq)
/// x     <- x - lr / (1 - beta1^t) * m / (sqrt(w) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// where `w` is `v_max` with amsgrad and `v` without. As in torch, AMSGrad takes the maximum of
/// the *uncorrected* second moment and then divides it by the bias correction of step `t`.
/// The step size `lr / (1 - beta1^t)` and `1 / sqrt(1 - beta2^t)` are computed once per step by
/// [`prepare`](Optimizer::prepare).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamFamily<const DECOUPLED: bool> {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
}

impl Default for Adam {
    /// torch's defaults: lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, no weight decay.
    fn default() -> Self {
        Adam::new(1e-3)
    }
}

impl Default for AdamW {
    /// torch's defaults: lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, weight decay 1e-2.
    fn default() -> Self {
        AdamW::new(1e-3)
    }
}

impl Adam {
    /// Adam with learning rate `lr` and torch's other defaults (no weight decay).
    pub fn new(lr: f64) -> Self {
        AdamFamily { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }
}

impl AdamW {
    /// AdamW with learning rate `lr` and torch's other defaults (weight decay 1e-2).
    pub fn new(lr: f64) -> Self {
        AdamFamily { weight_decay: 1e-2, ..Adam::new(lr).decoupled() }
    }
}

impl<const DECOUPLED: bool> AdamFamily<DECOUPLED> {
    /// Sets the decay rates of the first and second moment averages.
    pub fn betas(self, beta1: f64, beta2: f64) -> Self {
        AdamFamily { betas: (beta1, beta2), ..self }
    }
    /// Sets the term added to the denominator (after the square root).
    pub fn eps(self, eps: f64) -> Self {
        AdamFamily { eps, ..self }
    }
    /// Sets the weight decay: an L2 penalty for [`Adam`], the decoupled shrinkage for [`AdamW`].
    pub fn weight_decay(self, weight_decay: f64) -> Self {
        AdamFamily { weight_decay, ..self }
    }
    /// Uses the AMSGrad variant.
    pub fn amsgrad(self, amsgrad: bool) -> Self {
        AdamFamily { amsgrad, ..self }
    }
    /// The same hyperparameters with decoupled weight decay (AdamW).
    pub fn decoupled(self) -> AdamW {
        let AdamFamily { lr, betas, eps, weight_decay, amsgrad } = self;
        AdamFamily { lr, betas, eps, weight_decay, amsgrad }
    }
}

/// The state of [`Adam`] and [`AdamW`]: the moment averages (`max_exp_avg_sq` is empty without
/// amsgrad).
#[derive(Clone, Debug)]
pub struct AdamState<T> {
    pub exp_avg: AlignedVec<T>,
    pub exp_avg_sq: AlignedVec<T>,
    pub max_exp_avg_sq: AlignedVec<T>,
}

impl<T: Float> OptimizerState<T> for AdamState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        in_use([("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq), ("max_exp_avg_sq", &self.max_exp_avg_sq)])
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        in_use_mut([
            ("exp_avg", &mut self.exp_avg),
            ("exp_avg_sq", &mut self.exp_avg_sq),
            ("max_exp_avg_sq", &mut self.max_exp_avg_sq),
        ])
    }
}

/// Elements `a..b` of every buffer of an [`AdamState`] (see [`Optimizer::Chunk`]);
/// `max_exp_avg_sq` is empty without amsgrad.
#[derive(Debug)]
pub struct AdamChunk<'a, T> {
    pub exp_avg: &'a mut [T],
    pub exp_avg_sq: &'a mut [T],
    pub max_exp_avg_sq: &'a mut [T],
}

/// The per-step scalars of [`Adam`] and [`AdamW`].
#[derive(Clone, Copy, Debug)]
pub struct AdamStep<T> {
    /// `lr / (1 - beta1^t)`.
    step_size: T,
    /// `1 / sqrt(1 - beta2^t)`.
    inv_sqrt_bc2: T,
    beta1: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    eps: T,
    /// The L2 penalty added to the gradient: `weight_decay` for Adam, 0 for AdamW.
    l2: T,
    /// What the parameters are multiplied by first: 1 for Adam, `1 - lr * weight_decay` for AdamW.
    shrink: T,
    /// Whether subnormal values are flushed ([`Optimizer::flush_subnormals`]).
    flush: bool,
}

impl<T: Float, const DECOUPLED: bool> Optimizer<T> for AdamFamily<DECOUPLED> {
    type Requires = super::Plain;
    type State = AdamState<T>;
    type Step = AdamStep<T>;
    type Chunk<'a> = AdamChunk<'a, T>;

    fn name(&self) -> &'static str {
        if DECOUPLED {
            "adamw"
        } else {
            "adam"
        }
    }

    fn validate(&self) -> crate::Result<()> {
        let c = super::Check(Optimizer::<T>::name(self));
        c.non_negative("lr", self.lr)?;
        c.non_negative("eps", self.eps)?;
        c.fraction("beta1", self.betas.0)?;
        c.fraction("beta2", self.betas.1)?;
        c.non_negative("weight_decay", self.weight_decay)
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("beta1", self.betas.0),
            ("beta2", self.betas.1),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("amsgrad", self.amsgrad as u8 as f64),
        ]
    }

    fn init(&self, len: usize) -> AdamState<T> {
        AdamState {
            exp_avg: AlignedVec::zeroed(len),
            exp_avg_sq: AlignedVec::zeroed(len),
            max_exp_avg_sq: AlignedVec::zeroed(if self.amsgrad { len } else { 0 }),
        }
    }

    fn prepare(&self, t: u64, lr_scale: f64) -> AdamStep<T> {
        let lr = self.lr * lr_scale;
        let (beta1, beta2) = self.betas;
        let t = t.max(1) as f64;
        let (l2, shrink) = if DECOUPLED { (0.0, 1.0 - lr * self.weight_decay) } else { (self.weight_decay, 1.0) };
        AdamStep {
            step_size: T::of(lr / (1.0 - beta1.powf(t))),
            inv_sqrt_bc2: T::of(1.0 / (1.0 - beta2.powf(t)).sqrt()),
            beta1: T::of(beta1),
            one_minus_beta1: T::of(1.0 - beta1),
            beta2: T::of(beta2),
            one_minus_beta2: T::of(1.0 - beta2),
            eps: T::of(self.eps),
            l2: T::of(l2),
            shrink: T::of(shrink),
            flush: false,
        }
    }

    fn flush_subnormals(step: AdamStep<T>) -> AdamStep<T> {
        AdamStep { flush: true, ..step }
    }

    /// True: every element moves on its own.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut AdamState<T>) -> AdamChunk<'_, T> {
        AdamChunk {
            exp_avg: &mut state.exp_avg,
            exp_avg_sq: &mut state.exp_avg_sq,
            max_exp_avg_sq: &mut state.max_exp_avg_sq,
        }
    }

    fn split_chunk<'a>(chunk: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        let (exp_avg, exp_avg_tail) = chunk.exp_avg.split_at_mut(mid);
        let (exp_avg_sq, exp_avg_sq_tail) = chunk.exp_avg_sq.split_at_mut(mid);
        let (max_exp_avg_sq, max_exp_avg_sq_tail) = split_buffer(chunk.max_exp_avg_sq, mid);
        (
            AdamChunk { exp_avg, exp_avg_sq, max_exp_avg_sq },
            AdamChunk { exp_avg: exp_avg_tail, exp_avg_sq: exp_avg_sq_tail, max_exp_avg_sq: max_exp_avg_sq_tail },
        )
    }

    fn update_chunk(&self, step: &AdamStep<T>, x: &mut [T], g: &[T], chunk: AdamChunk<'_, T>) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let AdamStep {
                    step_size,
                    inv_sqrt_bc2,
                    beta1: b1,
                    one_minus_beta1: c1,
                    beta2: b2,
                    one_minus_beta2: c2,
                    eps,
                    l2,
                    shrink,
                    flush,
                } = *step;
                let l2 = super::L2::new(l2);
                let n = x.len();
                assert_eq!(n, g.len());
                let (m, v) = (&mut chunk.exp_avg[..n], &mut chunk.exp_avg_sq[..n]);
                // New values stay in locals: reading `*m` back after storing it makes the load
                // wait for the store (DEVELOPERS.md, "Notes for the next session").
                flushing!(flush, f => if self.amsgrad {
                    let v_max = &mut chunk.max_exp_avg_sq[..n];
                    for ((((x, &g), m), v), v_max) in x.iter_mut().zip(g).zip(m).zip(v).zip(v_max) {
                        let xi = *x;
                        let g = l2.grad(f.flush(g), xi);
                        let (mi, vi) = (f.flush(b1 * *m + c1 * g), f.flush(b2 * *v + f.weighted_square(c2, g)));
                        let vmax = v_max.max(vi);
                        (*m, *v, *v_max) = (mi, vi, vmax);
                        *x = shrink * xi - f.product(step_size, mi) / (vmax.sqrt() * inv_sqrt_bc2 + eps);
                    }
                } else {
                    for (((x, &g), m), v) in x.iter_mut().zip(g).zip(m).zip(v) {
                        let xi = *x;
                        let g = l2.grad(f.flush(g), xi);
                        let (mi, vi) = (f.flush(b1 * *m + c1 * g), f.flush(b2 * *v + f.weighted_square(c2, g)));
                        (*m, *v) = (mi, vi);
                        *x = shrink * xi - f.product(step_size, mi) / (vi.sqrt() * inv_sqrt_bc2 + eps);
                    }
                });
                T::zero()
            },
        )
    }
}
