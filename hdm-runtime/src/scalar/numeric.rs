//! Central differences: numerical gradients and Hessians, for checking derivatives written by
//! hand and for functions no macro has seen.

use std::marker::PhantomData;

use super::Objective;
use crate::Float;

/// The default step of [`numerical_gradient`]: `epsilon^(1/3)`, which balances the `h^2`
/// truncation error of a central difference against the `epsilon / h` rounding error
/// (about `6e-6` for `f64`, `5e-3` for `f32`).
fn gradient_step<T: Float>() -> T {
    T::epsilon().cbrt()
}

/// The default step of [`numerical_hessian`]: `epsilon^(1/4)` (about `1.2e-4` for `f64`).
fn hessian_step<T: Float>() -> T {
    T::epsilon().sqrt().sqrt()
}

/// The step along coordinate `i`: `h * max(1, |x_i|)`, so that large coordinates are not
/// perturbed below their own rounding.
fn scaled<T: Float>(h: T, xi: T) -> T {
    h * xi.abs().max(T::one())
}

/// The central-difference gradient of `f` at `x`, with the default step (see
/// [`numerical_gradient_with_step`]).
///
/// ```
/// use hdm_runtime::scalar::numerical_gradient;
/// let g = numerical_gradient(|[x, y]: [f64; 2]| x * x * y + y.sin(), [1.5, 0.5]);
/// assert!((g[0] - 2.0 * 1.5 * 0.5).abs() < 1e-9);
/// assert!((g[1] - (1.5 * 1.5 + 0.5f64.cos())).abs() < 1e-9);
/// ```
pub fn numerical_gradient<T: Float, const N: usize>(f: impl Fn([T; N]) -> T, x: [T; N]) -> [T; N] {
    numerical_gradient_with_step(f, x, gradient_step())
}

/// `∂f/∂x_i ≈ (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)` with `h_i = h * max(1, |x_i|)`.
pub fn numerical_gradient_with_step<T: Float, const N: usize>(f: impl Fn([T; N]) -> T, x: [T; N], h: T) -> [T; N] {
    let mut g = [T::zero(); N];
    for (i, gi) in g.iter_mut().enumerate() {
        let hi = scaled(h, x[i]);
        let (mut up, mut down) = (x, x);
        up[i] += hi;
        down[i] -= hi;
        // Divide by the step actually taken, which rounding may have changed.
        *gi = (f(up) - f(down)) / (up[i] - down[i]);
    }
    g
}

/// The central-difference Hessian of `f` at `x`, with the default step (see
/// [`numerical_hessian_with_step`]).
///
/// ```
/// use hdm_runtime::scalar::numerical_hessian;
/// let h = numerical_hessian(|[x, y]: [f64; 2]| x * x * y, [1.5, 0.5]);
/// assert!((h[0][0] - 1.0).abs() < 1e-6 && (h[0][1] - 3.0).abs() < 1e-6 && h[1][1].abs() < 1e-6);
/// ```
pub fn numerical_hessian<T: Float, const N: usize>(f: impl Fn([T; N]) -> T, x: [T; N]) -> [[T; N]; N] {
    numerical_hessian_with_step(f, x, hessian_step())
}

/// Second central differences with `h_i = h * max(1, |x_i|)`:
///
/// ```text
/// H_ii = (f(x + h_i e_i) - 2 f(x) + f(x - h_i e_i)) / h_i^2
/// H_ij = (f(x + h_i e_i + h_j e_j) - f(x + h_i e_i - h_j e_j)
///       - f(x - h_i e_i + h_j e_j) + f(x - h_i e_i - h_j e_j)) / (4 h_i h_j)
/// ```
///
/// The result is exactly symmetric.
pub fn numerical_hessian_with_step<T: Float, const N: usize>(f: impl Fn([T; N]) -> T, x: [T; N], h: T) -> [[T; N]; N] {
    let mut hess = [[T::zero(); N]; N];
    let f0 = f(x);
    let shifted = |i: usize, si: T, j: usize, sj: T| {
        let mut y = x;
        y[i] += si;
        y[j] += sj;
        f(y)
    };
    for i in 0..N {
        let hi = scaled(h, x[i]);
        let (mut up, mut down) = (x, x);
        up[i] += hi;
        down[i] -= hi;
        hess[i][i] = (f(up) - T::of(2.0) * f0 + f(down)) / (hi * hi);
        for j in i + 1..N {
            let hj = scaled(h, x[j]);
            let value = (shifted(i, hi, j, hj) - shifted(i, hi, j, -hj) - shifted(i, -hi, j, hj)
                + shifted(i, -hi, j, -hj))
                / (T::of(4.0) * hi * hj);
            hess[i][j] = value;
            hess[j][i] = value;
        }
    }
    hess
}

/// An [`Objective`] from a plain closure, with central-difference derivatives.
///
/// Use it to run the methods of this module on a function `#[objective]` cannot take, or as the
/// reference that [`check_derivatives`] compares against.
///
/// ```
/// use hdm_runtime::scalar::{Numerical, Objective};
/// let f = Numerical::new("sin_xy", |[x, y]: [f64; 2]| (x * y).sin());
/// let g = f.gradient([1.0, 2.0]);
/// assert!((g[0] - 2.0 * 2.0f64.cos()).abs() < 1e-9);
/// assert_eq!(f.name(), "sin_xy");
/// ```
pub struct Numerical<T, F> {
    name: String,
    f: F,
    _scalar: PhantomData<fn() -> T>,
}

impl<T, F> Numerical<T, F> {
    /// Wraps `f`, named `name` in reports.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Numerical { name: name.into(), f, _scalar: PhantomData }
    }
}

impl<T: Float, F: Fn([T; N]) -> T, const N: usize> Objective<N> for Numerical<T, F> {
    type Scalar = T;
    fn name(&self) -> &str {
        &self.name
    }
    fn value(&self, x: [T; N]) -> T {
        (self.f)(x)
    }
    fn value_and_grad(&self, x: [T; N]) -> (T, [T; N]) {
        ((self.f)(x), numerical_gradient(&self.f, x))
    }
    fn value_grad_hess(&self, x: [T; N]) -> (T, [T; N], [[T; N]; N]) {
        ((self.f)(x), numerical_gradient(&self.f, x), numerical_hessian(&self.f, x))
    }
}

/// How far an objective's derivatives are from central differences of its value, from
/// [`check_derivatives`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DerivativeCheck {
    /// `max_i |g_i - n_i| / max(1, |n_i|)` over the gradient `g` and its central difference `n`.
    pub gradient_error: f64,
    /// The same over the entries of the Hessian.
    pub hessian_error: f64,
    /// `|value_and_grad(x).0 - value(x)|` (and the same for `value_grad_hess`): the values the
    /// derivative methods return must be the function's own.
    pub value_error: f64,
}

impl DerivativeCheck {
    /// Whether every error is at most `tol`.
    pub fn within(&self, tol: f64) -> bool {
        self.gradient_error <= tol && self.hessian_error <= tol && self.value_error <= tol
    }
}

/// Compares `f`'s gradient and Hessian at `x` with central differences of `f.value` (and checks
/// that the values returned alongside the derivatives agree with `value`).
///
/// With the default steps, correct `f64` derivatives of a smooth function typically give errors
/// below `1e-6` (gradient) and `1e-4` (Hessian) at points of moderate size; a wrong derivative
/// gives errors of order one.
///
/// ```
/// use hdm_runtime::scalar::{check_derivatives, Numerical};
/// let f = Numerical::new("f", |[x]: [f64; 1]| x.exp());
/// assert!(check_derivatives(&f, [0.3]).within(1e-6));
/// ```
pub fn check_derivatives<O: Objective<N> + ?Sized, const N: usize>(f: &O, x: [O::Scalar; N]) -> DerivativeCheck {
    let value = f.value(x);
    let (v1, g) = f.value_and_grad(x);
    let (v2, _, h) = f.value_grad_hess(x);
    let ng = numerical_gradient(|y| f.value(y), x);
    let nh = numerical_hessian(|y| f.value(y), x);
    let rel = |a: O::Scalar, n: O::Scalar| {
        let (a, n) = (a.to_f64(), n.to_f64());
        let e = (a - n).abs() / n.abs().max(1.0);
        // A NaN must not pass as a small error.
        if e.is_nan() {
            f64::INFINITY
        } else {
            e
        }
    };
    let gradient_error = g.iter().zip(&ng).map(|(&a, &n)| rel(a, n)).fold(0.0, f64::max);
    let hessian_error = h.iter().flatten().zip(nh.iter().flatten()).map(|(&a, &n)| rel(a, n)).fold(0.0, f64::max);
    let value_error = rel(v1, value).max(rel(v2, value));
    DerivativeCheck { gradient_error, hessian_error, value_error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_on_quadratics_up_to_rounding() {
        let f = |[x, y]: [f64; 2]| 3.0 * x * x - 2.0 * x * y + 0.5 * y * y + x;
        let g = numerical_gradient(f, [2.0, -1.0]);
        assert!((g[0] - (12.0 + 2.0 + 1.0)).abs() < 1e-8 && (g[1] - (-4.0 - 1.0)).abs() < 1e-8);
        let h = numerical_hessian(f, [2.0, -1.0]);
        let expected = [[6.0, -2.0], [-2.0, 1.0]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((h[i][j] - expected[i][j]).abs() < 1e-6, "{h:?}");
            }
        }
    }

    #[test]
    fn steps_scale_with_large_coordinates() {
        // At x = 1e6 a fixed step of 6e-6 would be lost to rounding; the scaled one is not.
        let g = numerical_gradient(|[x]: [f64; 1]| x * x, [1e6]);
        assert!((g[0] - 2e6).abs() / 2e6 < 1e-9);
    }

    #[test]
    fn check_flags_a_wrong_derivative() {
        struct Wrong;
        impl Objective<1> for Wrong {
            type Scalar = f64;
            fn value(&self, [x]: [f64; 1]) -> f64 {
                x.sin()
            }
            fn value_and_grad(&self, [x]: [f64; 1]) -> (f64, [f64; 1]) {
                (x.sin(), [-x.cos()])
            }
            fn value_grad_hess(&self, [x]: [f64; 1]) -> (f64, [f64; 1], [[f64; 1]; 1]) {
                (x.sin(), [-x.cos()], [[-x.sin()]])
            }
        }
        let check = check_derivatives(&Wrong, [0.5]);
        assert!(check.gradient_error > 1.0 && check.hessian_error < 1e-6 && check.value_error == 0.0);
        assert!(!check.within(1e-3));
    }

    #[test]
    fn f32_works() {
        let g = numerical_gradient(|[x]: [f32; 1]| x * x * x, [2.0f32]);
        assert!((g[0] - 12.0).abs() < 1e-2);
    }
}
