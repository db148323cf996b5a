//! Gradient descent with a line search along `-g`: exact (bisection on the directional
//! derivative) and backtracking (Armijo's sufficient decrease).

use super::methods::{Method, Point};
use super::run::Stop;
use super::{dot, Objective};
use crate::Float;

/// Gradient descent with an exact line search: `x <- x - a g`, where `a > 0` is a root of the
/// directional derivative `φ'(a) = -∇f(x - a g) · g`, found by bisection.
///
/// `φ'(0) = -|g|^2 < 0`, so the search first brackets a sign change by doubling `a` from
/// `initial_step` (at most 64 times; a function still decreasing after that is taken to be
/// unbounded below along the ray and the run stops with [`Stop::LineSearchFailed`]), then halves
/// the bracket until `|φ'(a)| <= tol |g|^2` or `max_iters` bisections. A trial point where the
/// gradient is not finite counts as overshooting. On a quadratic each step lands on the minimum
/// along the line, so successive steps are orthogonal (the classic zig-zag).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineSearch {
    pub initial_step: f64,
    pub tol: f64,
    pub max_iters: usize,
}

impl LineSearch {
    /// Starts each search at step `initial_step`, with `tol = 1e-12` and 100 bisections at most.
    pub fn new(initial_step: f64) -> Self {
        LineSearch { initial_step, tol: 1e-12, max_iters: 100 }
    }
    /// Stops bisecting once `|φ'(a)| <= tol |g|^2`.
    pub fn tol(self, tol: f64) -> Self {
        LineSearch { tol, ..self }
    }
    /// Bisects at most `max_iters` times.
    pub fn max_iters(self, max_iters: usize) -> Self {
        LineSearch { max_iters, ..self }
    }
}

/// Gradient descent with backtracking: `x <- x - a g` with `a = initial_step * shrink^k` for the
/// smallest `k` such that `f(x - a g) <= f(x) - c a |g|^2` (Armijo's sufficient-decrease
/// condition; a non-finite trial value fails it). After `max_iters` reductions without success,
/// or once the step is too small to change `x`, the run stops with [`Stop::LineSearchFailed`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Armijo {
    pub initial_step: f64,
    pub c: f64,
    pub shrink: f64,
    pub max_iters: usize,
}

impl Armijo {
    /// Backtracking from `initial_step` with the usual `c = 1e-4`, `shrink = 0.5`, and 60 halvings at most.
    pub fn new(initial_step: f64) -> Self {
        Armijo { initial_step, c: 1e-4, shrink: 0.5, max_iters: 60 }
    }
    /// The sufficient-decrease constant `c` in `(0, 1)`.
    pub fn c(self, c: f64) -> Self {
        Armijo { c, ..self }
    }
    /// The factor in `(0, 1)` applied to the step after each failure.
    pub fn shrink(self, shrink: f64) -> Self {
        Armijo { shrink, ..self }
    }
}

fn along<T: Float, const N: usize>(x: &[T; N], a: T, g: &[T; N]) -> [T; N] {
    let mut y = *x;
    for (yi, &gi) in y.iter_mut().zip(g) {
        *yi -= a * gi;
    }
    y
}

impl<T: Float, const N: usize> Method<T, N> for LineSearch {
    type State = ();
    fn label(&self) -> &'static str {
        "linesearch"
    }
    fn start(&self, _x: &[T; N]) {}
    fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, f: &F, at: &Point<T, N>, _: &mut ()) -> Result<[T; N], Stop> {
        let (x, grad) = (&at.x, &at.grad);
        let g2 = dot(grad, grad);
        if g2 == T::zero() {
            return Ok(at.x);
        }
        // φ'(a), or None where the gradient is not finite (treated as past the minimum).
        let slope = |a: T| {
            let s = -dot(&f.gradient(along(x, a, grad)), grad);
            s.is_finite().then_some(s)
        };
        let (mut lo, mut hi) = (T::zero(), T::of(self.initial_step));
        let mut bracketed = false;
        for _ in 0..64 {
            match slope(hi) {
                Some(s) if s < T::zero() => {
                    lo = hi;
                    hi *= T::of(2.0);
                }
                _ => {
                    bracketed = true;
                    break;
                }
            }
        }
        if !bracketed || !hi.is_finite() {
            return Err(Stop::LineSearchFailed);
        }
        let tol = T::of(self.tol) * g2;
        let mut a = (lo + hi) * T::of(0.5);
        for _ in 0..self.max_iters {
            a = (lo + hi) * T::of(0.5);
            match slope(a) {
                Some(s) if s.abs() <= tol => break,
                Some(s) if s < T::zero() => lo = a,
                _ => hi = a,
            }
        }
        Ok(along(x, a, grad))
    }
}

impl<T: Float, const N: usize> Method<T, N> for Armijo {
    type State = ();
    fn label(&self) -> &'static str {
        "armijo"
    }
    fn start(&self, _x: &[T; N]) {}
    fn step<F: Objective<N, Scalar = T> + ?Sized>(&self, f: &F, at: &Point<T, N>, _: &mut ()) -> Result<[T; N], Stop> {
        let (x, value, grad) = (&at.x, at.value, &at.grad);
        let g2 = dot(grad, grad);
        if g2 == T::zero() {
            return Ok(at.x);
        }
        let mut a = T::of(self.initial_step);
        let c = T::of(self.c);
        for _ in 0..=self.max_iters {
            let y = along(x, a, grad);
            if y == *x {
                // The step is lost to rounding: no decrease is possible along -g.
                break;
            }
            let fy = f.value(y);
            if fy.is_finite() && fy <= value - c * a * g2 {
                return Ok(y);
            }
            a *= T::of(self.shrink);
        }
        Err(Stop::LineSearchFailed)
    }
}
