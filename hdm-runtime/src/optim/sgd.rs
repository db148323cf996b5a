//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

use super::{in_use, in_use_mut, split_buffer, Optimizer, OptimizerState};
use crate::aligned::AlignedVec;
use crate::Float;

/// SGD with `torch.optim.SGD`'s update rule and defaults.
///
/// With gradient `g` of parameter `x` at step `t`:
///
/// ```text
/// g <- g + weight_decay * x
/// b <- g                                   (t = 1)
/// b <- momentum * b + (1 - dampening) * g  (t > 1)
/// g <- g + momentum * b   if nesterov, else   g <- b      (when momentum != 0)
/// x <- x - lr * g
/// ```
///
/// ```
/// use hdm_runtime::optim::{Optimizer, Sgd};
/// let sgd = Sgd::new(0.1).momentum(0.9);
/// let (mut x, g) = ([1.0f64, -2.0], [0.5, 0.25]);
/// let mut state = sgd.init(2);
/// let step = Optimizer::<f64>::prepare(&sgd, 1, 1.0);
/// sgd.update(&step, &mut x, &g, &mut state);
/// assert_eq!(x, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Default for Sgd {
    /// lr = 1e-3 (torch has no default learning rate; this is a common one), no momentum.
    fn default() -> Self {
        Sgd::new(1e-3)
    }
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd { lr, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
    /// Sets the momentum factor.
    pub fn momentum(self, momentum: f64) -> Self {
        Sgd { momentum, ..self }
    }
    /// Sets the dampening of the momentum.
    pub fn dampening(self, dampening: f64) -> Self {
        Sgd { dampening, ..self }
    }
    /// Uses Nesterov momentum.
    pub fn nesterov(self, nesterov: bool) -> Self {
        Sgd { nesterov, ..self }
    }
    /// Sets the L2 penalty added to the gradient.
    pub fn weight_decay(self, weight_decay: f64) -> Self {
        Sgd { weight_decay, ..self }
    }
}

/// SGD's state: the momentum buffer (empty without momentum).
#[derive(Clone, Debug)]
pub struct SgdState<T> {
    pub momentum_buffer: AlignedVec<T>,
}

impl<T: Float> OptimizerState<T> for SgdState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        in_use([("momentum_buffer", &self.momentum_buffer)])
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        in_use_mut([("momentum_buffer", &mut self.momentum_buffer)])
    }
}

/// SGD's per-step scalars.
#[derive(Clone, Copy, Debug)]
pub struct SgdStep<T> {
    lr: T,
    first: bool,
    /// Whether subnormal values are flushed ([`Optimizer::flush_subnormals`]).
    flush: bool,
}

impl<T: Float> Optimizer<T> for Sgd {
    type Requires = super::Plain;
    type State = SgdState<T>;
    type Step = SgdStep<T>;
    /// The momentum buffer's elements (empty without momentum).
    type Chunk<'a> = &'a mut [T];

    fn name(&self) -> &'static str {
        "sgd"
    }

    fn validate(&self) -> crate::Result<()> {
        let c = super::Check("sgd");
        c.non_negative("lr", self.lr)?;
        c.non_negative("momentum", self.momentum)?;
        c.unit_interval("dampening", self.dampening)?;
        c.non_negative("weight_decay", self.weight_decay)?;
        c.rule(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "Nesterov momentum requires a momentum and zero dampening",
        )
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("nesterov", self.nesterov as u8 as f64),
            ("weight_decay", self.weight_decay),
        ]
    }

    fn init(&self, len: usize) -> SgdState<T> {
        let len = if self.momentum != 0.0 { len } else { 0 };
        SgdState { momentum_buffer: AlignedVec::zeroed(len) }
    }

    fn prepare(&self, t: u64, lr_scale: f64) -> SgdStep<T> {
        SgdStep { lr: T::of(self.lr * lr_scale), first: t <= 1, flush: false }
    }

    fn flush_subnormals(step: SgdStep<T>) -> SgdStep<T> {
        SgdStep { flush: true, ..step }
    }

    /// True: every element moves on its own.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut SgdState<T>) -> &mut [T] {
        &mut state.momentum_buffer
    }

    fn split_chunk<'a>(momentum_buffer: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        split_buffer(momentum_buffer, mid)
    }

    fn update_chunk(&self, step: &SgdStep<T>, x: &mut [T], g: &[T], momentum_buffer: &mut [T]) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let lr = step.lr;
                let l2 = super::L2::new(T::of(self.weight_decay));
                let mu = T::of(self.momentum);
                let keep = T::of(1.0 - self.dampening);
                assert_eq!(x.len(), g.len());
                if self.momentum == 0.0 {
                    flushing!(step.flush, f => for (x, &g) in x.iter_mut().zip(g) {
                        *x -= lr * l2.grad(f.flush(g), *x);
                    });
                    return T::zero();
                }
                let b = &mut momentum_buffer[..x.len()];
                // On the first step torch sets the buffer to the gradient itself (no dampening):
                // b = 0 * b + 1 * g.
                let (mu_b, keep) = if step.first { (T::zero(), T::one()) } else { (mu, keep) };
                flushing!(step.flush, f => if self.nesterov {
                    for ((x, &g), b) in x.iter_mut().zip(g).zip(b) {
                        let g = l2.grad(f.flush(g), *x);
                        let bi = f.flush(mu_b * *b + keep * g);
                        *b = bi;
                        *x -= lr * (g + mu * bi);
                    }
                } else {
                    for ((x, &g), b) in x.iter_mut().zip(g).zip(b) {
                        let g = l2.grad(f.flush(g), *x);
                        let bi = f.flush(mu_b * *b + keep * g);
                        *b = bi;
                        *x -= f.product(lr, bi);
                    }
                });
                T::zero()
            },
        )
    }
}
