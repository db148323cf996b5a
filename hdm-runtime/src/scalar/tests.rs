//! The methods against closed forms, on objectives written by hand (the `#[objective]` tests live
//! in the `hdm` crate, which owns the macro).

use super::*;
use crate::optim::Sgd;

/// `f = a x^2 + b y^2 + c x y`, with exact derivatives.
struct Quadratic {
    a: f64,
    b: f64,
    c: f64,
}

impl Objective<2> for Quadratic {
    type Scalar = f64;
    fn value(&self, [x, y]: [f64; 2]) -> f64 {
        self.a * x * x + self.b * y * y + self.c * x * y
    }
    fn value_and_grad(&self, [x, y]: [f64; 2]) -> (f64, [f64; 2]) {
        (self.value([x, y]), [2.0 * self.a * x + self.c * y, 2.0 * self.b * y + self.c * x])
    }
    fn value_grad_hess(&self, x: [f64; 2]) -> (f64, [f64; 2], [[f64; 2]; 2]) {
        let (v, g) = self.value_and_grad(x);
        (v, g, [[2.0 * self.a, self.c], [self.c, 2.0 * self.b]])
    }
}

/// `f = x^2` reporting the gradient with the wrong sign: no step along `-g` decreases it.
struct WrongSign;

impl Objective<1> for WrongSign {
    type Scalar = f64;
    fn value(&self, [x]: [f64; 1]) -> f64 {
        x * x
    }
    fn value_and_grad(&self, [x]: [f64; 1]) -> (f64, [f64; 1]) {
        (x * x, [-2.0 * x])
    }
    fn value_grad_hess(&self, [x]: [f64; 1]) -> (f64, [f64; 1], [[f64; 1]; 1]) {
        (x * x, [-2.0 * x], [[2.0]])
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn gradient_descent_and_momentum_follow_their_recurrences() {
    let f = Numerical::new("square", |[x]: [f64; 1]| x * x);
    // Plain GD on x^2: x_t = x_0 (1 - 2 lr)^t.
    let run = minimize(&f, &Sgd::new(0.05), [10.0], Stopping::steps(10));
    assert!(close(run.last()[0], 10.0 * 0.9f64.powi(10), 1e-9));
    // Heavy ball, torch form: b <- mu b + g, x <- x - lr b (b = g on the first step).
    let exact = Quadratic { a: 1.0, b: 0.0, c: 0.0 };
    let run = minimize(&exact, &Sgd::new(0.1).momentum(0.9), [3.0, 0.0], Stopping::steps(5));
    let (mut x, mut b) = (3.0f64, 0.0f64);
    for t in 0..5 {
        let g = 2.0 * x;
        b = if t == 0 { g } else { 0.9 * b + g };
        x -= 0.1 * b;
        assert_eq!(run.points[t + 1][0], x);
    }
    // The wrapper runs the same code.
    let wrapped = minimize(&exact, &Descent(Sgd::new(0.1).momentum(0.9)), [3.0, 0.0], Stopping::steps(5));
    assert_eq!(wrapped.points, run.points);
    assert_eq!(wrapped.method, "sgd");
}

#[test]
fn newton_solves_a_quadratic_in_one_step() {
    let f = Quadratic { a: 1.0, b: 3.0, c: 1.5 };
    let run = minimize(&f, &Newton::new(1.0), [4.0, -7.0], Stopping::steps(3).grad_tol(1e-12));
    assert_eq!(run.stop, Stop::Converged);
    assert_eq!(run.steps(), 1);
    assert!(run.last().iter().all(|x| x.abs() < 1e-14), "{:?}", run.last());
    // With a learning rate, the distance to the minimum shrinks by (1 - lr) per step.
    let run = minimize(&f, &Newton::new(0.5), [4.0, -7.0], Stopping::steps(3));
    assert!(close(run.last()[0], 4.0 * 0.125, 1e-13) && close(run.last()[1], -7.0 * 0.125, 1e-13));
}

#[test]
fn newton_abs_leaves_a_saddle_that_newton_converges_to() {
    // f = x^2 - y^2: H = diag(2, -2), H^-1 g = (x, y), |H|^-1 g = (x, -y).
    let f = Quadratic { a: 1.0, b: -1.0, c: 0.0 };
    let newton = minimize(&f, &Newton::new(1.0), [1.0, 1.0], Stopping::steps(1));
    assert_eq!(newton.last(), [0.0, 0.0]);
    let abs = minimize(&f, &NewtonAbs::new(1.0), [1.0, 1.0], Stopping::steps(1));
    assert!(close(abs.last()[0], 0.0, 1e-15) && close(abs.last()[1], 2.0, 1e-15), "{:?}", abs.last());
    assert!(abs.last_value() < abs.values[0]);
}

#[test]
fn newton_abs_on_a_rotated_indefinite_quadratic() {
    // H = R diag(2, -8) R^T with R the rotation by 45 degrees: [[-3, 5], [5, -3]],
    // |H| = R diag(2, 8) R^T = [[5, -3], [-3, 5]], |H|^-1 = [[5, 3], [3, 5]] / 16.
    let f = Quadratic { a: -1.5, b: -1.5, c: 5.0 };
    let x0 = [1.0, 0.5];
    let g = f.gradient(x0);
    let expected = [x0[0] - (5.0 * g[0] + 3.0 * g[1]) / 16.0, x0[1] - (3.0 * g[0] + 5.0 * g[1]) / 16.0];
    let run = minimize(&f, &NewtonAbs::new(1.0), x0, Stopping::steps(1));
    assert!(close(run.last()[0], expected[0], 1e-14) && close(run.last()[1], expected[1], 1e-14));
    // Damping adds to every |eigenvalue|: |H| + I = [[6, -3], [-3, 6]], inverse [[6, 3], [3, 6]] / 27.
    let run = minimize(&f, &NewtonAbs::new(1.0).damping(1.0), x0, Stopping::steps(1));
    let expected = [x0[0] - (6.0 * g[0] + 3.0 * g[1]) / 27.0, x0[1] - (3.0 * g[0] + 6.0 * g[1]) / 27.0];
    assert!(close(run.last()[0], expected[0], 1e-14) && close(run.last()[1], expected[1], 1e-14));
}

#[test]
fn diagonal_preconditioning_fixes_axis_aligned_scaling_only() {
    let elliptic = Quadratic { a: 1.0 / 20.0, b: 1.0, c: 0.0 };
    let run = minimize(&elliptic, &Preconditioned::new(1.0), [-8.0, 3.0], Stopping::steps(1));
    assert_eq!(run.last(), [0.0, 0.0]);
    let half = minimize(&elliptic, &Preconditioned::new(0.5), [-8.0, 3.0], Stopping::steps(2));
    assert_eq!(half.last(), [-2.0, 0.75]);
    // eps enters the denominator: x <- x - g / (|H_ii| + eps).
    let eps = minimize(&elliptic, &Preconditioned::new(1.0).eps(0.1), [-8.0, 3.0], Stopping::steps(1));
    assert!(close(eps.last()[0], -8.0 + 0.8 / 0.2, 1e-15) && close(eps.last()[1], 3.0 - 6.0 / 2.1, 1e-15));
}

#[test]
fn singular_hessians_stop_the_run_without_moving() {
    let flat_in_y = Quadratic { a: 1.0, b: 0.0, c: 0.0 };
    for run in [
        minimize(&flat_in_y, &Newton::new(1.0), [1.0, 1.0], Stopping::steps(5)),
        minimize(&flat_in_y, &NewtonAbs::new(1.0), [1.0, 1.0], Stopping::steps(5)),
        minimize(&flat_in_y, &Preconditioned::new(1.0), [1.0, 1.0], Stopping::steps(5)),
    ] {
        assert_eq!((run.stop, run.steps(), run.last()), (Stop::SingularHessian, 0, [1.0, 1.0]), "{}", run.method);
    }
    // Damping or eps make the same Hessian usable.
    let run = minimize(&flat_in_y, &NewtonAbs::new(1.0).damping(1.0), [1.0, 1.0], Stopping::steps(1));
    assert_eq!(run.stop, Stop::MaxSteps);
    // 1-D: f = x^3 at x = 0 has f'' = 0 (and f' = 0, but no tolerance was asked for).
    let cube = Numerical::new("cube", |[x]: [f64; 1]| x * x * x);
    let run = minimize(&cube, &Newton::new(1.0), [1.0], Stopping::steps(100));
    assert!(matches!(run.stop, Stop::SingularHessian | Stop::MaxSteps));
}

#[test]
fn non_finite_values_stop_the_run() {
    let log = Numerical::new("ln", |[x]: [f64; 1]| x.ln());
    let run = minimize(&log, &Sgd::new(0.1), [-1.0], Stopping::steps(5));
    assert_eq!((run.stop, run.steps()), (Stop::NonFinite, 0));
    // Divergent gradient descent overflows to infinity and stops there, keeping every iterate.
    let square = Quadratic { a: 1.0, b: 1.0, c: 0.0 };
    let run = minimize(&square, &Sgd::new(1e10), [1.0, 1.0], Stopping::steps(1000));
    assert_eq!(run.stop, Stop::NonFinite);
    assert!(run.steps() < 100 && !run.last_value().is_finite());
    assert!(run.values[..run.steps()].iter().all(|v| v.is_finite()));
}

#[test]
fn exact_line_search_takes_the_closed_form_step() {
    // On a quadratic the exact step along -g is a = g.g / g.H.g.
    let f = Quadratic { a: 0.5, b: 5.0, c: 0.0 };
    let x0 = [1.0, 1.0];
    let g = f.gradient(x0);
    let a = (g[0] * g[0] + g[1] * g[1]) / (g[0] * g[0] * 1.0 + g[1] * g[1] * 10.0);
    let run = minimize(&f, &LineSearch::new(0.01), x0, Stopping::steps(1));
    assert!(close(run.last()[0], 1.0 - a * g[0], 1e-12) && close(run.last()[1], 1.0 - a * g[1], 1e-12));
    // Successive directions are orthogonal, and the run converges.
    let run = minimize(&f, &LineSearch::new(0.01), x0, Stopping::steps(200).grad_tol(1e-10));
    assert_eq!(run.stop, Stop::Converged);
    let g1 = f.gradient(run.points[1]);
    assert!((g[0] * g1[0] + g[1] * g1[1]).abs() < 1e-10);
}

#[test]
fn line_searches_fail_cleanly() {
    // Unbounded below along -g: no bracket.
    let linear = Numerical::new("linear", |[x]: [f64; 1]| -x);
    let run = minimize(&linear, &LineSearch::new(1.0), [0.0], Stopping::steps(3));
    assert_eq!((run.stop, run.steps()), (Stop::LineSearchFailed, 0));
    // Armijo happily follows it.
    let run = minimize(&linear, &Armijo::new(1.0), [0.0], Stopping::steps(3));
    assert_eq!((run.stop, run.last()), (Stop::MaxSteps, [3.0]));
    // A direction that is not a descent direction: no step satisfies Armijo.
    let run = minimize(&WrongSign, &Armijo::new(1.0), [1.0], Stopping::steps(3));
    assert_eq!((run.stop, run.last()), (Stop::LineSearchFailed, [1.0]));
}

#[test]
fn armijo_backtracks_to_the_first_sufficient_decrease() {
    // f = x^2 from 1, g = 2: a = 1 gives f(-1) = 1 > 1 - 1e-4 * 4 (rejected), a = 0.5 gives f(0) = 0.
    let f = Numerical::new("square", |[x]: [f64; 1]| x * x);
    let exact = Quadratic { a: 1.0, b: 1.0, c: 0.0 };
    let run = minimize(&exact, &Armijo::new(1.0), [1.0, 1.0], Stopping::steps(1));
    assert_eq!(run.last(), [0.0, 0.0]);
    let run = minimize(&f, &Armijo::new(0.3), [1.0], Stopping::steps(1));
    assert!(close(run.last()[0], 0.4, 1e-8));
}

#[test]
fn stopping_on_the_gradient_norm() {
    let f = Quadratic { a: 1.0, b: 1.0, c: 0.0 };
    // GD with lr 0.25 halves x: |g| = 2 sqrt(2) * 2^-t <= 1e-3 first at t = 12.
    let run = minimize(&f, &Sgd::new(0.25), [1.0, 1.0], Stopping::steps(100).grad_tol(1e-3));
    assert_eq!((run.stop, run.steps()), (Stop::Converged, 12));
    // A start at the minimum converges at step 0.
    let run = minimize(&f, &Sgd::new(0.25), [0.0, 0.0], Stopping::steps(100).grad_tol(0.0));
    assert_eq!((run.stop, run.steps()), (Stop::Converged, 0));
}

#[test]
fn runs_in_f32() {
    let f = Numerical::new("square", |[x]: [f32; 1]| x * x);
    let run = minimize(&f, &Newton::new(1.0), [3.0f32], Stopping::steps(1));
    assert!(run.last()[0].abs() < 1e-2);
    assert_eq!(f.derivative(1.0f32).round(), 2.0);
}

#[test]
fn csv_has_one_row_per_iterate() {
    let f = Quadratic { a: 1.0, b: 2.0, c: 0.0 };
    let mut run = minimize(&f, &Sgd::new(0.1), [-5.0, -2.0], Stopping::steps(2));
    run.method = "gd".into();
    let mut out = Vec::new();
    write_csv(&mut out, &[run]).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "method,step,x0,x1,value");
    assert_eq!(lines[1], "gd,0,-5,-2,33");
    assert_eq!(lines.len(), 4);
    assert!(lines[3].starts_with("gd,2,-3.2"));
}

#[test]
fn quad_is_the_quadratic_form() {
    const A: [[f64; 3]; 3] = [[1.0, 2.0, 0.0], [0.5, -1.0, 4.0], [0.0, 0.0, 3.0]];
    let x = [1.0, 2.0, -1.0];
    let mut expected = 0.0;
    for i in 0..3 {
        for j in 0..3 {
            expected += A[i][j] * x[i] * x[j];
        }
    }
    assert_eq!(quad(&A, &x), expected);
}

#[test]
fn every_optimizer_of_optim_is_a_method() {
    use crate::optim::{AdaGrad, Adam, AdamW, Hdm, MomentumNorm, Optimizer, RmsProp};
    // One step of each from the same point must equal the optimizer's own update of that tensor.
    fn same_as_optimizer<O: Optimizer<f64> + Method<f64, 2>>(opt: O) {
        let f = Quadratic { a: 1.0, b: 2.0, c: 0.5 };
        let x0 = [-1.5, 2.0];
        let run = minimize(&f, &opt, x0, Stopping::steps(3));
        let (mut x, mut state) = (x0, opt.init(2));
        for t in 1..=3 {
            let g = f.gradient(x);
            let step = opt.prepare(t, 1.0);
            let total = opt.update(&step, &mut x, &g, &mut state);
            if opt.is_global() {
                opt.apply(&step, total, &mut x, &mut state);
            }
            assert_eq!(run.points[t as usize], x, "{} step {t}", run.method);
        }
        assert_ne!(run.last(), x0);
    }
    same_as_optimizer(AdaGrad::new(0.5));
    same_as_optimizer(RmsProp::new(0.1));
    same_as_optimizer(Adam::new(0.1));
    same_as_optimizer(AdamW::new(0.1).weight_decay(0.1));
    same_as_optimizer(Hdm::new(0.5).gamma(1.0));
    same_as_optimizer(Hdm::new(0.5).gamma(1.0).norm(MomentumNorm::PerElement));
    // HDM with the global norm is two-phase; on one tensor it is the per-tensor method.
    let f = Quadratic { a: 1.0, b: 2.0, c: 0.5 };
    let global = minimize(&f, &Hdm::new(0.5), [-1.5, 2.0], Stopping::steps(5));
    let per_tensor = minimize(&f, &Hdm::new(0.5).norm(MomentumNorm::PerTensor), [-1.5, 2.0], Stopping::steps(5));
    for (a, b) in global.points.iter().zip(&per_tensor.points) {
        assert!((a[0] - b[0]).abs() < 1e-15 && (a[1] - b[1]).abs() < 1e-15);
    }
    assert!(global.last_value() < global.values[0]);
}
