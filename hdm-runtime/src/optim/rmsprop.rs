//! RMSProp: steps divided by a running root mean square of the gradients.

use super::{in_use, in_use_mut, split_buffer, Optimizer, OptimizerState};
use crate::aligned::AlignedVec;
use crate::Float;

/// RMSProp with `torch.optim.RMSprop`'s update rule and defaults (Hinton's Coursera lecture 6e;
/// the centered form from Graves 2013, "Generating Sequences With Recurrent Neural Networks").
///
/// With gradient `g` of parameter `x`, every buffer starting at zero:
///
/// ```text
/// g <- g + weight_decay * x
/// v <- alpha * v + (1 - alpha) * g^2                    (square_avg)
/// m <- alpha * m + (1 - alpha) * g   if centered        (grad_avg)
/// s <- sqrt(v - m^2) if centered, else sqrt(v)
/// b <- momentum * b + g / (s + eps)   if momentum > 0   (momentum_buffer)
/// x <- x - lr * b                     if momentum > 0
/// x <- x - lr * g / (s + eps)         otherwise
/// ```
///
/// As in torch, `eps` is added after the square root (TensorFlow adds it inside).
///
/// ```
/// use hdm_runtime::optim::{Optimizer, RmsProp};
/// let rmsprop = RmsProp::new(0.01).alpha(0.75);
/// let (mut x, g) = ([1.0f64], [0.5]);
/// let mut state = rmsprop.init(1);
/// let step = Optimizer::<f64>::prepare(&rmsprop, 1, 1.0);
/// rmsprop.update(&step, &mut x, &g, &mut state);
/// // v = 0.25 * 0.5^2, so the step is lr * 0.5 / (0.5 * 0.5) = 2 * lr.
/// assert!((x[0] - (1.0 - 0.02)).abs() < 1e-9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
}

impl Default for RmsProp {
    /// torch's defaults: lr = 1e-2, alpha = 0.99, eps = 1e-8, no momentum, not centered.
    fn default() -> Self {
        RmsProp::new(1e-2)
    }
}

impl RmsProp {
    /// RMSProp with learning rate `lr` and torch's other defaults.
    pub fn new(lr: f64) -> Self {
        RmsProp { lr, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
    /// Sets the smoothing constant of the running averages.
    pub fn alpha(self, alpha: f64) -> Self {
        RmsProp { alpha, ..self }
    }
    /// Sets the term added to the denominator (after the square root).
    pub fn eps(self, eps: f64) -> Self {
        RmsProp { eps, ..self }
    }
    /// Sets the L2 penalty added to the gradient.
    pub fn weight_decay(self, weight_decay: f64) -> Self {
        RmsProp { weight_decay, ..self }
    }
    /// Sets the momentum factor.
    pub fn momentum(self, momentum: f64) -> Self {
        RmsProp { momentum, ..self }
    }
    /// Normalises by an estimate of the gradient's variance instead of its second moment.
    pub fn centered(self, centered: bool) -> Self {
        RmsProp { centered, ..self }
    }
}

/// RMSProp's state. `grad_avg` is empty unless centered, `momentum_buffer` unless momentum > 0.
#[derive(Clone, Debug)]
pub struct RmsPropState<T> {
    pub square_avg: AlignedVec<T>,
    pub momentum_buffer: AlignedVec<T>,
    pub grad_avg: AlignedVec<T>,
}

impl<T: Float> OptimizerState<T> for RmsPropState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        in_use([
            ("square_avg", &self.square_avg),
            ("momentum_buffer", &self.momentum_buffer),
            ("grad_avg", &self.grad_avg),
        ])
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        in_use_mut([
            ("square_avg", &mut self.square_avg),
            ("momentum_buffer", &mut self.momentum_buffer),
            ("grad_avg", &mut self.grad_avg),
        ])
    }
}

/// Elements `a..b` of every buffer of an [`RmsPropState`] (see [`Optimizer::Chunk`]); a buffer
/// that is not in use is empty.
#[derive(Debug)]
pub struct RmsPropChunk<'a, T> {
    pub square_avg: &'a mut [T],
    pub momentum_buffer: &'a mut [T],
    pub grad_avg: &'a mut [T],
}

/// RMSProp's per-step scalars.
#[derive(Clone, Copy, Debug)]
pub struct RmsPropStep<T> {
    lr: T,
    alpha: T,
    one_minus_alpha: T,
    eps: T,
    weight_decay: T,
    momentum: T,
    /// Whether subnormal values are flushed ([`Optimizer::flush_subnormals`]).
    flush: bool,
}

impl<T: Float> Optimizer<T> for RmsProp {
    type Requires = super::Plain;
    type State = RmsPropState<T>;
    type Step = RmsPropStep<T>;
    type Chunk<'a> = RmsPropChunk<'a, T>;

    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn validate(&self) -> crate::Result<()> {
        let c = super::Check("rmsprop");
        c.non_negative("lr", self.lr)?;
        c.non_negative("eps", self.eps)?;
        c.non_negative("momentum", self.momentum)?;
        c.unit_interval("alpha", self.alpha)?;
        c.non_negative("weight_decay", self.weight_decay)
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("alpha", self.alpha),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("momentum", self.momentum),
            ("centered", self.centered as u8 as f64),
        ]
    }

    fn init(&self, len: usize) -> RmsPropState<T> {
        let sized = |used: bool| AlignedVec::zeroed(if used { len } else { 0 });
        RmsPropState {
            square_avg: sized(true),
            momentum_buffer: sized(self.momentum > 0.0),
            grad_avg: sized(self.centered),
        }
    }

    fn prepare(&self, _t: u64, lr_scale: f64) -> RmsPropStep<T> {
        RmsPropStep {
            lr: T::of(self.lr * lr_scale),
            alpha: T::of(self.alpha),
            one_minus_alpha: T::of(1.0 - self.alpha),
            eps: T::of(self.eps),
            weight_decay: T::of(self.weight_decay),
            momentum: T::of(self.momentum),
            flush: false,
        }
    }

    fn flush_subnormals(step: RmsPropStep<T>) -> RmsPropStep<T> {
        RmsPropStep { flush: true, ..step }
    }

    /// True: every element moves on its own.
    fn elementwise(&self) -> bool {
        true
    }

    fn chunk(state: &mut RmsPropState<T>) -> RmsPropChunk<'_, T> {
        RmsPropChunk {
            square_avg: &mut state.square_avg,
            momentum_buffer: &mut state.momentum_buffer,
            grad_avg: &mut state.grad_avg,
        }
    }

    fn split_chunk<'a>(chunk: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        let (square_avg, square_avg_tail) = chunk.square_avg.split_at_mut(mid);
        let (momentum_buffer, momentum_buffer_tail) = split_buffer(chunk.momentum_buffer, mid);
        let (grad_avg, grad_avg_tail) = split_buffer(chunk.grad_avg, mid);
        (
            RmsPropChunk { square_avg, momentum_buffer, grad_avg },
            RmsPropChunk {
                square_avg: square_avg_tail,
                momentum_buffer: momentum_buffer_tail,
                grad_avg: grad_avg_tail,
            },
        )
    }

    fn update_chunk(&self, step: &RmsPropStep<T>, x: &mut [T], g: &[T], chunk: RmsPropChunk<'_, T>) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let RmsPropStep { lr, alpha: a, one_minus_alpha: a1, eps, weight_decay, momentum: mu, flush } = *step;
                let l2 = super::L2::new(weight_decay);
                let n = x.len();
                assert_eq!(n, g.len());
                let v = &mut chunk.square_avg[..n];
                flushing!(flush, f => match (self.centered, self.momentum > 0.0) {
                    (false, false) => {
                        for ((x, &g), v) in x.iter_mut().zip(g).zip(v) {
                            let g = l2.grad(f.flush(g), *x);
                            let vi = f.flush(a * *v + f.weighted_square(a1, g));
                            *v = vi;
                            *x -= lr * g / (vi.sqrt() + eps);
                        }
                    }
                    (false, true) => {
                        let b = &mut chunk.momentum_buffer[..n];
                        for (((x, &g), v), b) in x.iter_mut().zip(g).zip(v).zip(b) {
                            let g = l2.grad(f.flush(g), *x);
                            let vi = f.flush(a * *v + f.weighted_square(a1, g));
                            let bi = f.flush(mu * *b + g / (vi.sqrt() + eps));
                            (*v, *b) = (vi, bi);
                            *x -= lr * bi;
                        }
                    }
                    (true, false) => {
                        let m = &mut chunk.grad_avg[..n];
                        for (((x, &g), v), m) in x.iter_mut().zip(g).zip(v).zip(m) {
                            let g = l2.grad(f.flush(g), *x);
                            let (vi, mi) = (f.flush(a * *v + f.weighted_square(a1, g)), f.flush(a * *m + a1 * g));
                            (*v, *m) = (vi, mi);
                            *x -= lr * g / ((vi - mi * mi).sqrt() + eps);
                        }
                    }
                    (true, true) => {
                        let (m, b) = (&mut chunk.grad_avg[..n], &mut chunk.momentum_buffer[..n]);
                        for ((((x, &g), v), m), b) in x.iter_mut().zip(g).zip(v).zip(m).zip(b) {
                            let g = l2.grad(f.flush(g), *x);
                            let (vi, mi) = (f.flush(a * *v + f.weighted_square(a1, g)), f.flush(a * *m + a1 * g));
                            let bi = f.flush(mu * *b + g / ((vi - mi * mi).sqrt() + eps));
                            (*v, *m, *b) = (vi, mi, bi);
                            *x -= lr * bi;
                        }
                    }
                });
                T::zero()
            },
        )
    }
}
