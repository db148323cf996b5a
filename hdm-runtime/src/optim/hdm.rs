//! Hamiltonian Descent Methods: momentum with friction, moved through the gradient of a kinetic
//! energy.

use super::{in_use, in_use_mut, split_point, Flush, Optimizer, OptimizerState, Reduction, SPLIT_LEN};
use crate::aligned::AlignedVec;
use crate::Float;

/// The kinetic energy `k(p)` of [`Hdm`]: the parameters move along its gradient.
///
/// `|p|` is the norm chosen by [`MomentumNorm`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Kinetic {
    /// `k(p) = sqrt(|p|^2 + 1) - 1`, `grad k(p) = p / sqrt(|p|^2 + 1)`: the step is bounded by the
    /// step size `e` (a "relativistic" speed limit), whatever the size of the gradients.
    #[default]
    Relativistic,
    /// `k(p) = |p|^2 / 2`, `grad k(p) = p`: classical momentum. HDM is then the heavy ball,
    /// `torch.optim.SGD` with `lr = e^2 * d`, `momentum = d` and no dampening, whatever the norm.
    Quadratic,
    /// `k(p) = |p|^a / a`, `grad k(p) = |p|^(a - 2) * p` (and `grad k(0) = 0`), for `a > 1`.
    /// `a = 2` is [`Quadratic`](Kinetic::Quadratic).
    Power { a: f64 },
}

impl Kinetic {
    /// [`Kinetic::Power`]. `a` must be finite and above 1 ([`Optimizer::validate`] says so
    /// otherwise): `grad k` is not continuous at `p = 0` for `a <= 1` (for `a = 1` it is the
    /// sign of `p`, below 1 it is unbounded there), and the method is not defined.
    pub fn power(a: f64) -> Self {
        Kinetic::Power { a }
    }

    /// The kinetic energy's name as reports write it.
    pub fn name(&self) -> &'static str {
        match self {
            Kinetic::Relativistic => "relativistic",
            Kinetic::Quadratic => "quadratic",
            Kinetic::Power { .. } => "power",
        }
    }

    /// The code [`Optimizer::hyperparameters`] writes: 0, 1, 2 in declaration order.
    fn code(&self) -> f64 {
        match self {
            Kinetic::Relativistic => 0.0,
            Kinetic::Quadratic => 1.0,
            Kinetic::Power { .. } => 2.0,
        }
    }
}

/// Over what the norm `|p|` of the momentum in [`Kinetic`] is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MomentumNorm {
    /// The Euclidean norm of the momentum of all parameters together: the paper's definition.
    /// The update is then a two-phase one ([`Optimizer::is_global`]).
    #[default]
    Global,
    /// The norm of each parameter tensor's momentum on its own, as the reference Chainer
    /// implementation does.
    PerTensor,
    /// The absolute value of each element: the kinetic energy acts on every coordinate apart.
    PerElement,
}

impl MomentumNorm {
    /// The norm's name as reports write it.
    pub fn name(&self) -> &'static str {
        match self {
            MomentumNorm::Global => "global",
            MomentumNorm::PerTensor => "per_tensor",
            MomentumNorm::PerElement => "per_element",
        }
    }

    fn code(&self) -> f64 {
        match self {
            MomentumNorm::Global => 0.0,
            MomentumNorm::PerTensor => 1.0,
            MomentumNorm::PerElement => 2.0,
        }
    }
}

/// Hamiltonian descent, the first explicit method of Maddison, Paulin, Teh, O'Donoghue and Doucet
/// (2018), "Hamiltonian Descent Methods", [arXiv:1809.05042](https://arxiv.org/abs/1809.05042).
///
/// The momentum `p` starts at zero. With step size `e` (`lr`, times the schedule's factor),
/// friction `gamma` and gradient `g` of parameter `x`:
///
/// ```text
/// d <- 1 / (1 + gamma * e)
/// p <- d * p - e * d * g                                 (momentum)
/// x <- x + e * grad k(p)
/// ```
///
/// with the kinetic energy `k` of [`Kinetic`] and its norm `|p|` taken as [`MomentumNorm`] says.
///
/// The default norm is [`MomentumNorm::Global`], the paper's (its analysis is for the norm of the
/// whole parameter vector): the method then does not depend on how the model is split into
/// tensors, and with the relativistic kinetic energy the whole model moves by less than `e` per
/// step (`|grad k(p)| < 1`). It costs the same two passes over memory as
/// [`PerTensor`](MomentumNorm::PerTensor), which the reference MNIST experiment (after the Chainer
/// implementation) selects explicitly.
///
/// With [`MomentumNorm::Global`], [`update`](Optimizer::update) moves only the momentum and
/// returns the tensor's sum of `p^2`; [`apply`](Optimizer::apply) moves the parameters once the
/// total is known. The quadratic kinetic energy needs no norm, so it is never global.
///
/// # Panics
/// [`Optimizer::validate`] refuses [`Kinetic::Power`] with `a <= 1`.
///
/// ```
/// use hdm_runtime::optim::{Hdm, MomentumNorm, Optimizer};
/// let hdm = Hdm::new(1.0).gamma(1.0).norm(MomentumNorm::PerTensor);
/// let (mut x, g) = ([0.0f64, 0.0], [3.0, 4.0]);
/// let mut state = hdm.init(2);
/// let step = Optimizer::<f64>::prepare(&hdm, 1, 1.0);
/// hdm.update(&step, &mut x, &g, &mut state);
/// // d = 1/2, so p = -g/2 = (-1.5, -2), |p| = 2.5, and x = p / sqrt(|p|^2 + 1).
/// let r = (2.5f64 * 2.5 + 1.0).sqrt();
/// assert!((x[0] + 1.5 / r).abs() < 1e-15 && (x[1] + 2.0 / r).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hdm {
    /// The step size `e`.
    pub lr: f64,
    /// The friction `gamma`.
    pub gamma: f64,
    pub kinetic: Kinetic,
    pub norm: MomentumNorm,
}

impl Default for Hdm {
    /// The paper's MNIST settings: `e = 1`, `gamma = 2/3`, relativistic kinetic energy, global norm.
    fn default() -> Self {
        Hdm::new(1.0)
    }
}

impl Hdm {
    /// HDM with step size `e` (`lr`), friction 2/3, the relativistic kinetic energy and the global
    /// norm.
    pub fn new(lr: f64) -> Self {
        Hdm { lr, gamma: 2.0 / 3.0, kinetic: Kinetic::Relativistic, norm: MomentumNorm::Global }
    }
    /// Sets the friction `gamma`.
    pub fn gamma(self, gamma: f64) -> Self {
        Hdm { gamma, ..self }
    }
    /// Sets the kinetic energy.
    pub fn kinetic(self, kinetic: Kinetic) -> Self {
        Hdm { kinetic, ..self }
    }
    /// Sets over what the norm of the momentum is taken.
    pub fn norm(self, norm: MomentumNorm) -> Self {
        Hdm { norm, ..self }
    }

    /// [`Optimizer::is_global`]: the global norm, except for the quadratic kinetic energy, which
    /// does not use the norm.
    fn needs_global_sum(&self) -> bool {
        self.norm == MomentumNorm::Global && self.kinetic != Kinetic::Quadratic
    }
}

/// HDM's state: the momentum `p`.
#[derive(Clone, Debug)]
pub struct HdmState<T> {
    pub momentum: AlignedVec<T>,
}

impl<T: Float> OptimizerState<T> for HdmState<T> {
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        in_use([("momentum", &self.momentum)])
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        in_use_mut([("momentum", &mut self.momentum)])
    }
}

/// HDM's per-step scalars.
#[derive(Clone, Copy, Debug)]
pub struct HdmStep<T> {
    /// The step size `e`.
    e: T,
    /// The friction factor `d = 1 / (1 + gamma * e)`.
    d: T,
    /// `e * d`.
    ed: T,
    /// `a - 1` for the power kinetic energy: `grad k(p) = sign(p) |p|^(a-1)` per element.
    a_minus_1: T,
    /// `(a - 2) / 2` for the power kinetic energy: `grad k(p) = (|p|^2)^((a-2)/2) * p`.
    half_a_minus_2: T,
    /// Whether subnormal values are flushed ([`Optimizer::flush_subnormals`]).
    flush: bool,
}

impl<T: Float> HdmStep<T> {
    /// The factor `c` with `grad k(p) = c * p`, from `s = |p|^2` (for a norm over several
    /// elements).
    fn grad_k_factor(&self, kinetic: Kinetic, s: T) -> T {
        match kinetic {
            Kinetic::Relativistic => (s + T::one()).sqrt().recip(),
            Kinetic::Quadratic => T::one(),
            // grad k(0) = 0: with p = 0 the factor does not matter, but must not be infinite.
            Kinetic::Power { .. } if s > T::zero() => s.powf(self.half_a_minus_2),
            Kinetic::Power { .. } => T::zero(),
        }
    }
}

/// One element's kick, `p <- d * p - ed * g`, returning the new `p` (kept in a register: the
/// callers use it, and reading it back through `p` would wait for the store).
#[inline(always)]
fn kick_one<T: Float, const F: bool>(f: Flush<F>, p: &mut T, g: T, d: T, ed: T) -> T {
    let pi = f.flush(d * *p - ed * f.flush(g));
    *p = pi;
    pi
}

/// `p <- d * p - ed * g`, returning the new `|p|^2`. The sum runs over eight lanes so that it
/// vectorises.
#[inline(always)]
fn kick<T: Float, const F: bool>(f: Flush<F>, p: &mut [T], g: &[T], d: T, ed: T) -> T {
    const LANES: usize = 8;
    let mut lanes = [T::zero(); LANES];
    let mut p_chunks = p.chunks_exact_mut(LANES);
    let mut g_chunks = g.chunks_exact(LANES);
    for (p, g) in (&mut p_chunks).zip(&mut g_chunks) {
        for ((p, &g), s) in p.iter_mut().zip(g).zip(&mut lanes) {
            let pi = kick_one(f, p, g, d, ed);
            *s += pi * pi;
        }
    }
    let mut sum = T::zero();
    for (p, &g) in p_chunks.into_remainder().iter_mut().zip(g_chunks.remainder()) {
        let pi = kick_one(f, p, g, d, ed);
        sum += pi * pi;
    }
    lanes.iter().fold(sum, |sum, &s| sum + s)
}

/// [`kick`] summed as a binary tree: a slice of at least [`SPLIT_LEN`] elements is split at
/// [`split_point`] and its halves' sums added, so that two threads doing one half each get the
/// same bits as one thread doing both.
#[inline(always)]
fn kick_tree<T: Float, const F: bool>(f: Flush<F>, p: &mut [T], g: &[T], d: T, ed: T) -> T {
    if p.len() < SPLIT_LEN {
        return kick(f, p, g, d, ed);
    }
    let mid = split_point(p.len());
    let (p0, p1) = p.split_at_mut(mid);
    let (g0, g1) = g.split_at(mid);
    kick_tree(f, p0, g0, d, ed) + kick_tree(f, p1, g1, d, ed)
}

/// `x <- x + c * p`.
#[inline(always)]
fn drift<T: Float>(x: &mut [T], p: &[T], c: T) {
    for (x, &p) in x.iter_mut().zip(p) {
        *x += c * p;
    }
}

impl<T: Float> Optimizer<T> for Hdm {
    type Requires = super::Plain;
    type State = HdmState<T>;
    type Step = HdmStep<T>;
    /// The momentum's elements.
    type Chunk<'a> = &'a mut [T];

    fn name(&self) -> &'static str {
        "hdm"
    }

    /// `lr`, `gamma`, `kinetic` (0 relativistic, 1 quadratic, 2 power), `norm` (0 global,
    /// 1 per tensor, 2 per element) and, for the power kinetic energy, `power` (`a`).
    fn validate(&self) -> crate::Result<()> {
        let c = super::Check("hdm");
        c.non_negative("lr", self.lr)?;
        c.non_negative("gamma", self.gamma)?;
        if let Kinetic::Power { a } = self.kinetic {
            c.rule(
                a > 1.0 && a.is_finite(),
                &format!("the power kinetic energy |p|^a / a needs a finite a > 1, got {a}"),
            )?;
        }
        Ok(())
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        let mut h =
            vec![("lr", self.lr), ("gamma", self.gamma), ("kinetic", self.kinetic.code()), ("norm", self.norm.code())];
        if let Kinetic::Power { a } = self.kinetic {
            h.push(("power", a));
        }
        h
    }

    fn init(&self, len: usize) -> HdmState<T> {
        HdmState { momentum: AlignedVec::zeroed(len) }
    }

    fn prepare(&self, _t: u64, lr_scale: f64) -> HdmStep<T> {
        let e = self.lr * lr_scale;
        let d = 1.0 / (1.0 + self.gamma * e);
        let a = if let Kinetic::Power { a } = self.kinetic { a } else { 2.0 };
        HdmStep {
            e: T::of(e),
            d: T::of(d),
            ed: T::of(e * d),
            a_minus_1: T::of(a - 1.0),
            half_a_minus_2: T::of((a - 2.0) / 2.0),
            flush: false,
        }
    }

    fn flush_subnormals(step: HdmStep<T>) -> HdmStep<T> {
        HdmStep { flush: true, ..step }
    }

    fn is_global(&self) -> bool {
        self.needs_global_sum()
    }

    fn reduction(&self) -> Reduction {
        match (self.kinetic, self.norm) {
            (Kinetic::Quadratic, _) | (_, MomentumNorm::PerElement) => Reduction::None,
            (_, MomentumNorm::PerTensor) => Reduction::PerTensor,
            (_, MomentumNorm::Global) => Reduction::Global,
        }
    }

    /// True for the quadratic kinetic energy, which needs no norm, and for the norm per element;
    /// false for a norm per tensor or over all parameters, a sum over the whole tensor.
    fn elementwise(&self) -> bool {
        self.kinetic == Kinetic::Quadratic || self.norm == MomentumNorm::PerElement
    }

    fn chunk(state: &mut HdmState<T>) -> &mut [T] {
        &mut state.momentum
    }

    fn split_chunk<'a>(momentum: Self::Chunk<'a>, mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        momentum.split_at_mut(mid)
    }

    fn update_chunk(&self, step: &HdmStep<T>, x: &mut [T], g: &[T], momentum: &mut [T]) -> T {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let HdmStep { e, d, ed, a_minus_1, flush, .. } = *step;
                let n = x.len();
                assert_eq!(n, g.len());
                let p = &mut momentum[..n];
                flushing!(flush, f => match (self.kinetic, self.norm) {
                    (Kinetic::Quadratic, _) => {
                        for ((x, &g), p) in x.iter_mut().zip(g).zip(p) {
                            let pi = kick_one(f, p, g, d, ed);
                            *x += e * pi;
                        }
                    }
                    // The parameters move in `apply_chunk`, once the sum is complete.
                    (_, MomentumNorm::Global | MomentumNorm::PerTensor) => return kick_tree(f, p, g, d, ed),
                    (Kinetic::Relativistic, MomentumNorm::PerElement) => {
                        for ((x, &g), p) in x.iter_mut().zip(g).zip(p) {
                            let pi = kick_one(f, p, g, d, ed);
                            *x += e * pi / (pi * pi + T::one()).sqrt();
                        }
                    }
                    (Kinetic::Power { .. }, MomentumNorm::PerElement) => {
                        // |p|^(a-2) p = sign(p) |p|^(a-1), which is 0 at p = 0 for a > 1.
                        for ((x, &g), p) in x.iter_mut().zip(g).zip(p) {
                            let pi = kick_one(f, p, g, d, ed);
                            *x += e * pi.signum() * pi.abs().powf(a_minus_1);
                        }
                    }
                });
                T::zero()
            },
        )
    }

    fn apply_chunk(&self, step: &HdmStep<T>, total: T, x: &mut [T], momentum: &mut [T]) {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                if Optimizer::<T>::reduction(self) != Reduction::None {
                    let p = &momentum[..x.len()];
                    drift(x, p, step.e * step.grad_k_factor(self.kinetic, total));
                }
            },
        )
    }
}
