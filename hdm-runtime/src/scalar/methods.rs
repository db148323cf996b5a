//! Methods: one step from a point, given its value and gradient. Every optimizer of
//! [`optim`](crate::optim) is one; Newton's method and its variants are defined here.

use super::linalg::symmetric_eigen;
use super::run::Stop;
use super::{all_finite, Objective};
use crate::{Float, Optimizer};

/// Where a run is when a method takes its next step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point<T, const N: usize> {
    /// The step about to be taken, counting from 1.
    pub t: u64,
    pub x: [T; N],
    /// `f(x)`.
    pub value: T,
    /// `∇f(x)`.
    pub grad: [T; N],
}

/// A method that moves a point `x: [T; N]` downhill, one step at a time.
///
/// [`minimize`](super::minimize) calls [`start`](Method::start) once and then
/// [`step`](Method::step) with the value and gradient at the current point (it computes them
/// anyway, for the trajectory and the stopping rule). A method that needs more (the Hessian, trial
/// points of a line search) asks the objective itself.
pub trait Method<T: Float, const N: usize> {
    /// What the method carries from step to step (moment buffers; `()` for Newton).
    type State;

    /// The method's name in trajectories (`"sgd"`, `"newton"`).
    fn label(&self) -> &'static str;

    /// Fresh state for a run starting at `x`.
    fn start(&self, x: &[T; N]) -> Self::State;

    /// The point after `at`, or the reason there is none (the run then stops at `at`).
    fn step<F: Objective<N, Scalar = T> + ?Sized>(
        &self,
        f: &F,
        at: &Point<T, N>,
        state: &mut Self::State,
    ) -> Result<[T; N], Stop>;
}

/// Any network optimizer as a method on a point: the point is a single parameter tensor of `N`
/// elements and each step is the optimizer's `prepare` / `update` (/ `apply` for a global
/// optimizer such as HDM), the same code a network's training step calls. The learning rate is
/// not scheduled (`lr_scale = 1`).
///
/// The optimizers of [`optim`](crate::optim) are methods themselves (`minimize(&f, &Sgd::new(0.1),
/// ..)`); the wrapper is for optimizers defined elsewhere.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Descent<O>(pub O);

impl<T: Float, O: Optimizer<T>, const N: usize> Method<T, N> for Descent<O> {
    type State = O::State;

    fn label(&self) -> &'static str {
        self.0.name()
    }

    fn start(&self, _x: &[T; N]) -> O::State {
        self.0.init(N)
    }

    fn step<F: Objective<N, Scalar = T> + ?Sized>(
        &self,
        _: &F,
        at: &Point<T, N>,
        state: &mut O::State,
    ) -> Result<[T; N], Stop> {
        Ok(optimizer_step(&self.0, at, state))
    }
}

fn optimizer_step<T: Float, O: Optimizer<T>, const N: usize>(
    opt: &O,
    at: &Point<T, N>,
    state: &mut O::State,
) -> [T; N] {
    let mut x = at.x;
    let step = opt.prepare(at.t, 1.0);
    let total = opt.update(&step, &mut x, &at.grad, state);
    if opt.is_global() {
        opt.apply(&step, total, &mut x, state);
    }
    x
}

/// Makes optimizers of [`optim`](crate::optim) methods, as [`Descent`] does for any optimizer.
macro_rules! optimizer_methods {
    ($($opt:ty),* $(,)?) => {$(
        impl<T: Float, const N: usize> Method<T, N> for $opt {
            type State = <$opt as Optimizer<T>>::State;

            fn label(&self) -> &'static str {
                Optimizer::<T>::name(self)
            }

            fn start(&self, _x: &[T; N]) -> Self::State {
                self.init(N)
            }

            fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, _: &F, at: &Point<T, N>, state: &mut Self::State) -> Result<[T; N], Stop> {
                Ok(optimizer_step(self, at, state))
            }
        }
    )*};
}

optimizer_methods!(
    crate::optim::Sgd,
    crate::optim::AdaGrad,
    crate::optim::RmsProp,
    crate::optim::Adam,
    crate::optim::AdamW,
    crate::optim::Hdm,
);

/// Newton's method with a learning rate: `x <- x - lr H^-1 g`.
///
/// On a quadratic with a positive definite Hessian, `lr = 1` lands on the minimum in one step.
/// Elsewhere it goes to the nearest stationary point, whatever its kind: on `x cos(0.15 pi x)`
/// from 10 it climbs to the local maximum near 26.83 (see [`NewtonAbs`] for the fix). The step is
/// solved through the eigen-decomposition of the (symmetric) Hessian, `H^-1 g = V Λ^-1 V^T g`; an
/// eigenvalue at most `N * epsilon` times the largest in magnitude stops the run with
/// [`Stop::SingularHessian`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Newton {
    pub lr: f64,
}

impl Newton {
    /// Newton's method with step size `lr` (`1.0` is the pure method).
    pub fn new(lr: f64) -> Self {
        Newton { lr }
    }
}

/// Newton's method with the absolute value of the Hessian: `x <- x - lr |H|^-1 g`, where
/// `|H| = V (|Λ| + damping) V^T` for the eigen-decomposition `H = V Λ V^T`.
///
/// Taking absolute values of the eigenvalues keeps Newton's rescaling of each direction but
/// always goes downhill, so it runs away from maxima and saddle points instead of converging to
/// them (the "saddle-free Newton" of Dauphin et al., 2014). On a convex function it is Newton's
/// method. `damping` (default 0) is added to every `|λ|`; with a (near) zero eigenvalue and no
/// damping the run stops with [`Stop::SingularHessian`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonAbs {
    pub lr: f64,
    pub damping: f64,
}

impl NewtonAbs {
    /// `|H|`-Newton with step size `lr` and no damping.
    pub fn new(lr: f64) -> Self {
        NewtonAbs { lr, damping: 0.0 }
    }
    /// Adds `damping` to the absolute value of every eigenvalue.
    pub fn damping(self, damping: f64) -> Self {
        NewtonAbs { damping, ..self }
    }
}

/// Gradient descent preconditioned by the diagonal of the Hessian:
/// `x_i <- x_i - lr g_i / (|H_ii| + eps)`.
///
/// Each coordinate gets its own step size, the inverse curvature along it, which cures the
/// ill-conditioning of an axis-aligned quadratic (and not of a rotated one: the diagonal does not
/// see the rotation). The absolute value keeps the step a descent direction where the curvature
/// is negative. With `eps = 0` (the default) a zero diagonal entry stops the run with
/// [`Stop::SingularHessian`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preconditioned {
    pub lr: f64,
    pub eps: f64,
}

impl Preconditioned {
    /// Diagonal preconditioning with step size `lr` and `eps = 0`.
    pub fn new(lr: f64) -> Self {
        Preconditioned { lr, eps: 0.0 }
    }
    /// Adds `eps` to every `|H_ii|`.
    pub fn eps(self, eps: f64) -> Self {
        Preconditioned { eps, ..self }
    }
}

/// `H^-1 g` with the eigenvalues of `H` replaced by `modify(λ)`.
fn solve_modified<T: Float, const N: usize>(
    hess: [[T; N]; N],
    grad: &[T; N],
    modify: impl Fn(T) -> T,
) -> Result<[T; N], Stop> {
    if !hess.iter().all(|row| all_finite(row)) {
        return Err(Stop::NonFinite);
    }
    let (values, vectors) = symmetric_eigen(hess);
    let values = values.map(modify);
    let largest = values.iter().fold(T::zero(), |m, v| m.max(v.abs()));
    let tiny = T::of(N as f64) * T::epsilon() * largest;
    if largest == T::zero() || values.iter().any(|v| v.abs() <= tiny) {
        return Err(Stop::SingularHessian);
    }
    let mut d = [T::zero(); N];
    for (k, &lambda) in values.iter().enumerate() {
        let along = vectors.iter().zip(grad).fold(T::zero(), |acc, (row, &g)| acc + row[k] * g) / lambda;
        for (di, row) in d.iter_mut().zip(&vectors) {
            *di += row[k] * along;
        }
    }
    if all_finite(&d) {
        Ok(d)
    } else {
        Err(Stop::NonFinite)
    }
}

/// `x - lr d`.
fn move_against<T: Float, const N: usize>(mut x: [T; N], lr: f64, d: &[T; N]) -> [T; N] {
    let lr = T::of(lr);
    for (xi, &di) in x.iter_mut().zip(d) {
        *xi -= lr * di;
    }
    x
}

impl<T: Float, const N: usize> Method<T, N> for Newton {
    type State = ();
    fn label(&self) -> &'static str {
        "newton"
    }
    fn start(&self, _x: &[T; N]) {}
    fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, f: &F, at: &Point<T, N>, _: &mut ()) -> Result<[T; N], Stop> {
        let d = solve_modified(f.hessian(at.x), &at.grad, |l| l)?;
        Ok(move_against(at.x, self.lr, &d))
    }
}

impl<T: Float, const N: usize> Method<T, N> for NewtonAbs {
    type State = ();
    fn label(&self) -> &'static str {
        "newton-abs"
    }
    fn start(&self, _x: &[T; N]) {}
    fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, f: &F, at: &Point<T, N>, _: &mut ()) -> Result<[T; N], Stop> {
        let damping = T::of(self.damping);
        let d = solve_modified(f.hessian(at.x), &at.grad, |l| l.abs() + damping)?;
        Ok(move_against(at.x, self.lr, &d))
    }
}

impl<T: Float, const N: usize> Method<T, N> for Preconditioned {
    type State = ();
    fn label(&self) -> &'static str {
        "precond"
    }
    fn start(&self, _x: &[T; N]) {}
    fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, f: &F, at: &Point<T, N>, _: &mut ()) -> Result<[T; N], Stop> {
        let hess = f.hessian(at.x);
        let eps = T::of(self.eps);
        let mut d = [T::zero(); N];
        for (i, di) in d.iter_mut().enumerate() {
            let scale = hess[i][i].abs() + eps;
            if !scale.is_finite() {
                return Err(Stop::NonFinite);
            }
            if scale == T::zero() {
                return Err(Stop::SingularHessian);
            }
            *di = at.grad[i] / scale;
        }
        Ok(move_against(at.x, self.lr, &d))
    }
}
