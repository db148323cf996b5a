//! Running a method: stopping rules, trajectories and their CSV.

use std::fmt;
use std::io::{self, Write};

use super::methods::{Method, Point};
use super::{all_finite, norm, Objective};
use crate::Float;
use num_traits::Float as _;

/// When [`minimize`] stops: after `max_steps` steps, or earlier once the gradient norm is at most
/// `grad_tol` (if set).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stopping {
    pub max_steps: usize,
    pub grad_tol: Option<f64>,
}

impl Stopping {
    /// Exactly `max_steps` steps (unless a method fails).
    pub fn steps(max_steps: usize) -> Self {
        Stopping { max_steps, grad_tol: None }
    }
    /// Also stop at the first point with `|∇f(x)| <= tol`.
    pub fn grad_tol(self, tol: f64) -> Self {
        Stopping { grad_tol: Some(tol), ..self }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It took [`Stopping::max_steps`] steps.
    MaxSteps,
    /// The gradient norm at the last point is at most [`Stopping::grad_tol`].
    Converged,
    /// The value or gradient at the last point (or the Hessian a method asked for there) is
    /// infinite or NaN.
    NonFinite,
    /// A Newton-type method met a Hessian it cannot invert at the last point.
    SingularHessian,
    /// A line search found no acceptable step from the last point.
    LineSearchFailed,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::MaxSteps => "reached the step limit",
            Stop::Converged => "converged (gradient norm within tolerance)",
            Stop::NonFinite => "stopped at a non-finite value, gradient or Hessian",
            Stop::SingularHessian => "stopped at a singular Hessian",
            Stop::LineSearchFailed => "stopped: the line search found no acceptable step",
        })
    }
}

/// The iterates of one run: `points[0]` is the start, `points[t]` the point after step `t`, and
/// `values[t] = f(points[t])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory<T, const N: usize> {
    /// The method's label (rename it freely: it is what [`write_csv`] prints).
    pub method: String,
    pub points: Vec<[T; N]>,
    pub values: Vec<T>,
    pub stop: Stop,
}

impl<T: Float, const N: usize> Trajectory<T, N> {
    /// The number of steps taken.
    pub fn steps(&self) -> usize {
        self.points.len() - 1
    }
    /// The last point.
    pub fn last(&self) -> [T; N] {
        self.points[self.points.len() - 1]
    }
    /// The value at the last point.
    pub fn last_value(&self) -> T {
        self.values[self.values.len() - 1]
    }
}

/// Runs `method` on `f` from `x0` and returns every iterate.
///
/// Before each step, the run stops if the value or gradient at the current point is not finite
/// ([`Stop::NonFinite`]), if the gradient norm is within [`Stopping::grad_tol`]
/// ([`Stop::Converged`]) or after [`Stopping::max_steps`] steps ([`Stop::MaxSteps`]); a method
/// may also refuse to step ([`Stop::SingularHessian`], [`Stop::LineSearchFailed`]). It never
/// panics on the objective's values.
///
/// ```
/// use hdm_runtime::optim::Sgd;
/// use hdm_runtime::scalar::{minimize, Numerical, Stop, Stopping};
/// let square = Numerical::new("square", |[x]: [f64; 1]| x * x);
/// let run = minimize(&square, &Sgd::new(0.2), [10.0], Stopping::steps(10));
/// assert_eq!((run.steps(), run.stop), (10, Stop::MaxSteps));
/// assert_eq!(format!("{:.6}", run.last()[0]), "0.060466"); // 10 * 0.6^10
/// ```
pub fn minimize<O, M, const N: usize>(
    f: &O,
    method: &M,
    x0: [O::Scalar; N],
    stopping: Stopping,
) -> Trajectory<O::Scalar, N>
where
    O: Objective<N> + ?Sized,
    M: Method<O::Scalar, N>,
{
    let mut x = x0;
    let (mut value, mut grad) = f.value_and_grad(x);
    let mut points = vec![x];
    let mut values = vec![value];
    let mut state = method.start(&x);
    let mut t = 0;
    let stop = loop {
        if !(value.is_finite() && all_finite(&grad) && all_finite(&x)) {
            break Stop::NonFinite;
        }
        if let Some(tol) = stopping.grad_tol {
            if norm(&grad).to_f64() <= tol {
                break Stop::Converged;
            }
        }
        if t >= stopping.max_steps {
            break Stop::MaxSteps;
        }
        t += 1;
        match method.step(f, &Point { t: t as u64, x, value, grad }, &mut state) {
            Ok(next) => x = next,
            Err(stop) => break stop,
        }
        (value, grad) = f.value_and_grad(x);
        points.push(x);
        values.push(value);
    };
    Trajectory { method: method.label().to_string(), points, values, stop }
}

/// Writes trajectories as CSV: the header `method,step,x0,x1,...,value`, then one row per
/// iterate (step 0 is the start), numbers in Rust's shortest round-trip form.
///
/// ```
/// use hdm_runtime::scalar::{write_csv, Stop, Trajectory};
/// let run = Trajectory { method: "gd".into(), points: vec![[1.0, 2.0]], values: vec![5.0], stop: Stop::MaxSteps };
/// let mut out = Vec::new();
/// write_csv(&mut out, &[run]).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), "method,step,x0,x1,value\ngd,0,1,2,5\n");
/// ```
pub fn write_csv<W: Write, T: Float, const N: usize>(mut out: W, trajectories: &[Trajectory<T, N>]) -> io::Result<()> {
    let mut header = String::from("method,step");
    for i in 0..N {
        header.push_str(&format!(",x{i}"));
    }
    writeln!(out, "{header},value")?;
    for run in trajectories {
        for (step, (point, value)) in run.points.iter().zip(&run.values).enumerate() {
            write!(out, "{},{step}", run.method)?;
            for xi in point {
                write!(out, ",{xi}")?;
            }
            writeln!(out, ",{value}")?;
        }
    }
    Ok(())
}
