//! The optimizer tutorials' results, reproduced to the printed 6 decimals with objectives
//! differentiated by `#[objective]` and the methods of `hdm::scalar`.
//!
//! The objectives are the `trajectories` example's own (included from `examples/`), so the
//! example draws exactly these runs.

#[allow(dead_code)] // the example's `main` and command line are not used here
#[path = "../examples/trajectories.rs"]
mod trajectories;

use hdm::optim::Sgd;
use hdm::prelude::*;
use hdm::scalar::{minimize, Armijo, LineSearch, Newton, NewtonAbs, Stop, Stopping};
use trajectories::{Cosh, Logexp, Quadratic, Square, Xcos};

fn six(x: f64) -> String {
    format!("{x:.6}")
}

#[test]
fn gradient_descent_on_a_parabola() {
    // x <- x - lr * 2x from 10, 10 steps: 10 (1 - 2 lr)^10.
    for (lr, expected) in [(0.2, "0.060466"), (0.05, "3.486784"), (1.1, "61.917364")] {
        let run = minimize(&Square, &Sgd::new(lr), [10.0], Stopping::steps(10));
        assert_eq!((run.steps(), run.stop), (10, Stop::MaxSteps));
        assert_eq!(six(run.last()[0]), expected, "lr {lr}");
    }
}

#[test]
fn gradient_descent_on_x_cos_cx() {
    // The tutorial's setting: from x = 10, 10 steps of lr 2 (the same start and step count as
    // the parabola); it ends in the basin of the minimum near -1.9, still oscillating.
    let run = minimize(&Xcos, &Sgd::new(2.0), [10.0], Stopping::steps(10));
    assert_eq!(six(run.last()[0]), "-1.528166");
}

#[test]
fn gradient_descent_on_an_elliptic_quadratic() {
    let run = minimize(&Quadratic, &Sgd::new(0.1), [-5.0, -2.0], Stopping::steps(20));
    let [x1, x2] = run.last();
    assert_eq!((six(x1), six(x2)), ("-0.057646".into(), "-0.000073".into()));
    // Each coordinate contracts by its own factor: (1 - 0.2)^20 and (1 - 0.4)^20.
    assert!((x1 - -5.0 * 0.8f64.powi(20)).abs() < 1e-15 && (x2 - -2.0 * 0.6f64.powi(20)).abs() < 1e-15);
}

#[test]
fn newton_on_cosh_reaches_zero_within_ten_steps() {
    // x <- x - f'/f'' = x - 2 tanh(x / 2): about 2 per step far out, then cubic convergence.
    let run = minimize(&Cosh, &Newton::new(1.0), [10.0], Stopping::steps(10));
    let first_zero = run.points.iter().position(|p| six(p[0].abs()) == "0.000000").expect("reaches 0");
    assert!(first_zero <= 10, "{:?}", run.points);
    assert_eq!(six(run.last()[0].abs()), "0.000000");
    // The first step, by hand.
    assert!((run.points[1][0] - (10.0 - 2.0 * 5.0f64.tanh())).abs() < 1e-12);
}

#[test]
fn newton_on_x_cos_cx_finds_the_wrong_stationary_point() {
    // Pure Newton climbs to the local maximum near 26.83: f'(x) = 0 there, f''(x) < 0.
    let run = minimize(&Xcos, &Newton::new(1.0), [10.0], Stopping::steps(10));
    let x = run.last()[0];
    assert_eq!(six(x), "26.834133");
    assert!(Xcos.derivative(x).abs() < 1e-9 && Xcos.second_derivative(x) < 0.0);
    // Half steps end elsewhere after 10 steps.
    let run = minimize(&Xcos, &Newton::new(0.5), [10.0], Stopping::steps(10));
    assert_eq!(six(run.last()[0]), "7.269860");
    // Newton with |f''| goes downhill instead: every step lowers f.
    let run = minimize(&Xcos, &NewtonAbs::new(0.5), [10.0], Stopping::steps(10));
    assert!(run.values.windows(2).all(|w| w[1] < w[0]), "{:?}", run.values);
}

#[test]
fn line_searches_reach_the_minimiser_of_logexp() {
    // f' = (e^x - 2 e^(-2x-3)) / (e^x + e^(-2x-3)) = 0  <=>  e^(3x+3) = 2.
    let minimiser = (2f64.ln() - 3.0) / 3.0;
    for (name, run) in [
        ("bisection", minimize(&Logexp, &LineSearch::new(1.0), [2.0], Stopping::steps(50).grad_tol(1e-12))),
        // Armijo compares values, which are flat to rounding within ~1e-8 of the minimum; there
        // its unit step (f'' = 2 at the minimum) oscillates around it at a distance of ~1e-11.
        ("armijo", minimize(&Logexp, &Armijo::new(1.0), [2.0], Stopping::steps(50).grad_tol(1e-9))),
    ] {
        assert_eq!(run.stop, Stop::Converged, "{name}");
        assert!((run.last()[0] - minimiser).abs() < 1e-9, "{name}: {} vs {minimiser}", run.last()[0]);
        assert_eq!(six(run.last()[0]), six(minimiser));
    }
    // An exact line search in one dimension lands on the minimiser in one step.
    let run = minimize(&Logexp, &LineSearch::new(1.0), [2.0], Stopping::steps(1));
    assert!((run.last()[0] - minimiser).abs() < 1e-9, "{}", run.last()[0]);
}
