//! Scalar objectives: functions `f: R^N -> R` of a few variables, their exact derivatives, and
//! the methods the optimizer tutorials run on them.
//!
//! An [`Objective<N>`](Objective) knows its value, gradient and Hessian at a point `x: [T; N]`.
//! The `#[objective]` attribute of the `hdm` crate writes the implementation for you: it
//! differentiates the function's body symbolically at compile time, so the gradient and Hessian
//! are exact closed forms (no finite differences, no tape). For a function you wrote by hand,
//! [`Numerical`] gives central differences and [`check_derivatives`] compares an implementation
//! against them.
//!
//! A [`Method`] moves a point downhill. Every [`Optimizer<T>`](crate::Optimizer) of
//! [`optim`](crate::optim) is a method (any other optimizer through [`Descent`]): the point is
//! one parameter tensor of `N` elements, and the update is literally the code a network's
//! training step runs (`Sgd` gives gradient descent, Momentum and Nesterov). The second-order and line-search methods live here:
//! [`Newton`], [`NewtonAbs`], [`Preconditioned`], [`LineSearch`] and [`Armijo`].
//! [`minimize`] runs a method from a start point until a [`Stopping`] rule says stop, and returns
//! the whole [`Trajectory`]; [`write_csv`] prints trajectories as `method,step,x0,...,value`.
//!
//! | method | update of `x` with gradient `g`, Hessian `H` |
//! |---|---|
//! | [`Sgd`](crate::optim::Sgd) | `x <- x - lr g` (plus momentum, Nesterov: torch semantics) |
//! | [`Newton`] | `x <- x - lr H^-1 g` |
//! | [`NewtonAbs`] | `x <- x - lr |H|^-1 g`, `|H| = V |Λ| V^T` from `H = V Λ V^T` |
//! | [`Preconditioned`] | `x_i <- x_i - lr g_i / (|H_ii| + eps)` |
//! | [`LineSearch`] | `x <- x - a g`, `a` a root of `d/da f(x - a g)` found by bisection |
//! | [`Armijo`] | `x <- x - a g`, `a = lr shrink^k`, the first with `f(x - a g) <= f(x) - c a |g|^2` |
//!
//! ```
//! use hdm_runtime::optim::Sgd;
//! use hdm_runtime::scalar::{minimize, Newton, Objective, Stopping};
//!
//! /// f(x, y) = x^2 + 2 y^2, written by hand (`#[objective]` would generate this impl).
//! struct Bowl;
//!
//! impl Objective<2> for Bowl {
//!     type Scalar = f64;
//!     fn value(&self, [x, y]: [f64; 2]) -> f64 {
//!         x * x + 2.0 * y * y
//!     }
//!     fn value_and_grad(&self, [x, y]: [f64; 2]) -> (f64, [f64; 2]) {
//!         (self.value([x, y]), [2.0 * x, 4.0 * y])
//!     }
//!     fn value_grad_hess(&self, [x, y]: [f64; 2]) -> (f64, [f64; 2], [[f64; 2]; 2]) {
//!         let (v, g) = self.value_and_grad([x, y]);
//!         (v, g, [[2.0, 0.0], [0.0, 4.0]])
//!     }
//! }
//!
//! // Gradient descent, 20 steps of lr 0.1 from (-5, -2): the tutorial's (-0.057646, -0.000073).
//! let gd = minimize(&Bowl, &Sgd::new(0.1), [-5.0, -2.0], Stopping::steps(20));
//! let [x, y] = gd.last();
//! assert_eq!(format!("{x:.6} {y:.6}"), "-0.057646 -0.000073");
//!
//! // Newton's method solves a quadratic in one step, then stops on the gradient norm.
//! let newton = minimize(&Bowl, &Newton::new(1.0), [-5.0, -2.0], Stopping::steps(10).grad_tol(1e-12));
//! assert_eq!(newton.last(), [0.0, 0.0]);
//! assert_eq!(newton.steps(), 1);
//! ```
//!
//! ## Singular Hessians and non-finite values
//! Nothing here panics on a bad point. [`minimize`] stops, keeps the trajectory so far and says
//! why in [`Trajectory::stop`]: [`Stop::NonFinite`] when the value, gradient or Hessian at the
//! current point is infinite or NaN (the offending point is the trajectory's last);
//! [`Stop::SingularHessian`] when a Newton-type method meets a Hessian it cannot invert (an
//! eigenvalue, after the method's own modification, at most `N * epsilon` times the largest in
//! magnitude, or a zero diagonal entry for [`Preconditioned`] with `eps = 0`);
//! [`Stop::LineSearchFailed`] when a line search finds no acceptable step.

mod linalg;
mod line_search;
mod methods;
mod numeric;
mod run;

pub use linalg::symmetric_eigen;
pub use line_search::{Armijo, LineSearch};
pub use methods::{Descent, Method, Newton, NewtonAbs, Point, Preconditioned};
pub use numeric::{
    check_derivatives, numerical_gradient, numerical_gradient_with_step, numerical_hessian,
    numerical_hessian_with_step, DerivativeCheck, Numerical,
};
pub use run::{minimize, write_csv, Stop, Stopping, Trajectory};

use crate::Float;

/// A scalar function of `N` variables with its gradient and Hessian: what the `#[objective]`
/// attribute implements for a function `fn f(x: [f64; N]) -> f64` (or of `N` scalar arguments).
///
/// JAX users will recognise `value` (the function), [`value_and_grad`](Objective::value_and_grad),
/// [`gradient`](Objective::gradient) (`jax.grad`) and [`hessian`](Objective::hessian)
/// (`jax.hessian`). Points are passed by value: `[T; N]` is `Copy`, and `N` is small.
pub trait Objective<const N: usize> {
    /// The element type, `f64` or `f32`.
    type Scalar: Float;

    /// A name for reports and plots; `#[objective]` uses the function's name.
    fn name(&self) -> &str {
        "objective"
    }

    /// `f(x)`.
    fn value(&self, x: [Self::Scalar; N]) -> Self::Scalar;

    /// `f(x)` and `∇f(x)`, computed together.
    fn value_and_grad(&self, x: [Self::Scalar; N]) -> (Self::Scalar, [Self::Scalar; N]);

    /// `f(x)`, `∇f(x)` and the Hessian `∇²f(x)` (symmetric; `hess[i][j] = ∂²f / ∂x_i ∂x_j`).
    #[allow(clippy::type_complexity)]
    fn value_grad_hess(&self, x: [Self::Scalar; N]) -> (Self::Scalar, [Self::Scalar; N], [[Self::Scalar; N]; N]);

    /// `∇f(x)`.
    fn gradient(&self, x: [Self::Scalar; N]) -> [Self::Scalar; N] {
        self.value_and_grad(x).1
    }

    /// The Hessian `∇²f(x)`.
    fn hessian(&self, x: [Self::Scalar; N]) -> [[Self::Scalar; N]; N] {
        self.value_grad_hess(x).2
    }
}

impl<O: Objective<N> + ?Sized, const N: usize> Objective<N> for &O {
    type Scalar = O::Scalar;
    fn name(&self) -> &str {
        (**self).name()
    }
    fn value(&self, x: [O::Scalar; N]) -> O::Scalar {
        (**self).value(x)
    }
    fn value_and_grad(&self, x: [O::Scalar; N]) -> (O::Scalar, [O::Scalar; N]) {
        (**self).value_and_grad(x)
    }
    fn value_grad_hess(&self, x: [O::Scalar; N]) -> (O::Scalar, [O::Scalar; N], [[O::Scalar; N]; N]) {
        (**self).value_grad_hess(x)
    }
    fn gradient(&self, x: [O::Scalar; N]) -> [O::Scalar; N] {
        (**self).gradient(x)
    }
    fn hessian(&self, x: [O::Scalar; N]) -> [[O::Scalar; N]; N] {
        (**self).hessian(x)
    }
}

/// The derivatives of a function of one variable as scalars, for every `Objective<1>`:
/// `Xcos.derivative(2.0)` rather than `Xcos.gradient([2.0])[0]`.
pub trait Univariate: Objective<1> {
    /// `f'(x)`.
    fn derivative(&self, x: Self::Scalar) -> Self::Scalar {
        self.gradient([x])[0]
    }
    /// `f''(x)`.
    fn second_derivative(&self, x: Self::Scalar) -> Self::Scalar {
        self.hessian([x])[0][0]
    }
}

impl<O: Objective<1> + ?Sized> Univariate for O {}

/// The quadratic form `x^T A x = Σ_ij A[i][j] x[i] x[j]`.
///
/// In an `#[objective]` function, `quad(&A, &x)` with a `const A: [[f64; N]; N]` and the
/// function's array argument `x` (or an array of expressions, `&[u, v]`) is differentiated as a
/// whole: the gradient is `(A + A^T) x` and the Hessian `A + A^T`, written out entry by entry.
///
/// ```
/// use hdm_runtime::scalar::quad;
/// const A: [[f64; 2]; 2] = [[1.0, 2.0], [0.0, 3.0]];
/// assert_eq!(quad(&A, &[1.0, -1.0]), 1.0 - 2.0 + 3.0);
/// ```
pub fn quad<T: Float, const N: usize>(a: &[[T; N]; N], x: &[T; N]) -> T {
    let mut sum = T::zero();
    for (row, &xi) in a.iter().zip(x) {
        for (&aij, &xj) in row.iter().zip(x) {
            sum += aij * xi * xj;
        }
    }
    sum
}

/// The Euclidean norm `|v|`.
pub(crate) fn norm<T: Float, const N: usize>(v: &[T; N]) -> T {
    dot(v, v).sqrt()
}

/// `u · v`.
pub(crate) fn dot<T: Float, const N: usize>(u: &[T; N], v: &[T; N]) -> T {
    u.iter().zip(v).fold(T::zero(), |acc, (&a, &b)| acc + a * b)
}

/// Whether every entry is finite.
pub(crate) fn all_finite<T: Float>(v: &[T]) -> bool {
    v.iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests;
