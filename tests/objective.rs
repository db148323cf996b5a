//! `#[objective]`: every supported operation against its hand-derived gradient and Hessian, and
//! against central differences.

use hdm::prelude::*;
use hdm::scalar::check_derivatives;

const C: f64 = 0.15 * std::f64::consts::PI;
const K: f64 = 2.5;
const A: [[f64; 2]; 2] = [[2.0, 1.0], [-3.0, 4.0]];
const W: [f64; 3] = [0.5, -1.0, 2.0];

/// Compares `f` at `x` with the closed forms, checks the value returned with the derivatives is
/// the function's own, and checks the derivatives against central differences.
#[track_caller]
fn assert_exact<O: Objective<N, Scalar = f64>, const N: usize>(
    f: &O,
    x: [f64; N],
    grad: [f64; N],
    hess: [[f64; N]; N],
) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    let (v1, g1) = f.value_and_grad(x);
    let (v2, g2, h2) = f.value_grad_hess(x);
    assert_eq!(v1.to_bits(), f.value(x).to_bits(), "value_and_grad's value at {x:?}");
    assert_eq!(v2.to_bits(), f.value(x).to_bits(), "value_grad_hess's value at {x:?}");
    assert_eq!(g1, f.gradient(x));
    assert_eq!(g2, f.gradient(x));
    assert_eq!(h2, f.hessian(x));
    for i in 0..N {
        assert!(close(g1[i], grad[i]), "{}: gradient[{i}] at {x:?}: {} vs {}", f.name(), g1[i], grad[i]);
        for j in 0..N {
            assert!(
                close(h2[i][j], hess[i][j]),
                "{}: hessian[{i}][{j}] at {x:?}: {} vs {}",
                f.name(),
                h2[i][j],
                hess[i][j]
            );
        }
    }
    let check = check_derivatives(f, x);
    assert!(check.gradient_error < 1e-7 && check.hessian_error < 1e-4, "{}: {check:?} at {x:?}", f.name());
}

#[objective]
fn arithmetic(x: [f64; 3]) -> f64 {
    x[0] * x[1] - x[2] / x[0] + 3.0 - -x[1]
}

#[test]
fn arithmetic_operators() {
    for [a, b, c] in [[1.5f64, -2.0, 0.5], [-0.7, 3.0, 2.0]] {
        let grad = [b + c / (a * a), a + 1.0, -1.0 / a];
        let hess = [[-2.0 * c / (a * a * a), 1.0, 1.0 / (a * a)], [1.0, 0.0, 0.0], [1.0 / (a * a), 0.0, 0.0]];
        assert_exact(&Arithmetic, [a, b, c], grad, hess);
    }
    assert_eq!(Arithmetic.name(), "arithmetic");
}

#[objective]
fn powers(x: [f64; 2]) -> f64 {
    x[0].powi(3) + x[1].powi(-2) + x[0].powi(0) + x[0].powf(2.5)
}

#[test]
fn integer_and_constant_powers() {
    for [a, b] in [[1.5f64, -2.0], [0.3, 0.8]] {
        let grad = [3.0 * a * a + 2.5 * a.powf(1.5), -2.0 / (b * b * b)];
        let hess = [[6.0 * a + 3.75 * a.sqrt(), 0.0], [0.0, 6.0 / b.powi(4)]];
        assert_exact(&Powers, [a, b], grad, hess);
    }
}

#[objective]
fn general_power(x: [f64; 2]) -> f64 {
    x[0].powf(x[1])
}

#[test]
fn powers_with_a_variable_exponent() {
    for [a, b] in [[1.5f64, -2.0], [0.3, 0.8], [2.0, 3.0]] {
        let ln = a.ln();
        let grad = [b * a.powf(b - 1.0), a.powf(b) * ln];
        let cross = a.powf(b - 1.0) * (1.0 + b * ln);
        let hess = [[b * (b - 1.0) * a.powf(b - 2.0), cross], [cross, a.powf(b) * ln * ln]];
        assert_exact(&GeneralPower, [a, b], grad, hess);
    }
}

#[objective]
fn roots_and_logs(x: f64) -> f64 {
    x.sqrt() + x.ln() + x.exp()
}

#[test]
fn sqrt_ln_exp() {
    for x in [0.25f64, 1.0, 3.5] {
        let grad = [0.5 / x.sqrt() + 1.0 / x + x.exp()];
        let hess = [[-0.25 / x.powf(1.5) - 1.0 / (x * x) + x.exp()]];
        assert_exact(&RootsAndLogs, [x], grad, hess);
        assert_eq!(RootsAndLogs.derivative(x), RootsAndLogs.gradient([x])[0]);
        assert_eq!(RootsAndLogs.second_derivative(x), RootsAndLogs.hessian([x])[0][0]);
    }
}

#[objective]
fn trigonometry(x: [f64; 3]) -> f64 {
    x[0].sin() + x[1].cos() + x[2].tan()
}

#[test]
fn sin_cos_tan() {
    for [a, b, c] in [[0.3f64, -1.2, 0.7], [2.0, 0.1, -1.3]] {
        let sec2 = 1.0 + c.tan() * c.tan();
        let grad = [a.cos(), -b.sin(), sec2];
        let hess = [[-a.sin(), 0.0, 0.0], [0.0, -b.cos(), 0.0], [0.0, 0.0, 2.0 * c.tan() * sec2]];
        assert_exact(&Trigonometry, [a, b, c], grad, hess);
    }
}

#[objective]
fn hyperbolic(x: [f64; 3]) -> f64 {
    x[0].sinh() * x[1].cosh() + x[2].tanh()
}

#[test]
fn sinh_cosh_tanh() {
    for [a, b, c] in [[0.3f64, -1.2, 0.7], [1.1, 0.4, -2.0]] {
        let sech2 = 1.0 - c.tanh() * c.tanh();
        let grad = [a.cosh() * b.cosh(), a.sinh() * b.sinh(), sech2];
        let hess = [
            [a.sinh() * b.cosh(), a.cosh() * b.sinh(), 0.0],
            [a.cosh() * b.sinh(), a.sinh() * b.cosh(), 0.0],
            [0.0, 0.0, -2.0 * c.tanh() * sech2],
        ];
        assert_exact(&Hyperbolic, [a, b, c], grad, hess);
    }
}

#[objective]
fn absolute(x: [f64; 2]) -> f64 {
    (x[0] - x[1]).abs() * x[1]
}

#[test]
fn abs_uses_the_sign() {
    for [a, b] in [[1.5f64, -2.0], [-0.5, 0.8]] {
        let s = (a - b).signum();
        let grad = [s * b, -s * b + (a - b).abs()];
        let hess = [[0.0, s], [s, -2.0 * s]];
        assert_exact(&Absolute, [a, b], grad, hess);
    }
    // At the kink the derivative of |u| is signum(u) = +1 (a subgradient).
    assert_eq!(Absolute.gradient([1.0, 1.0]), [1.0, -1.0]);
}

#[objective]
fn constants(x: f64) -> f64 {
    K * x * x + (C * x).sin() + std::f64::consts::E * W[1] * x
}

#[test]
fn const_items_are_opaque_constants() {
    for x in [0.0f64, 1.3, -4.0] {
        let grad = [2.0 * K * x + C * (C * x).cos() + std::f64::consts::E * W[1]];
        let hess = [[2.0 * K - C * C * (C * x).sin()]];
        assert_exact(&Constants, [x], grad, hess);
    }
}

#[objective]
fn bindings(x: [f64; 2]) -> f64 {
    let u = x[0] * x[1];
    let v = u.exp();
    let u = u + v;
    u * u
}

#[test]
fn let_bindings_and_shadowing() {
    for [a, b] in [[0.5f64, -0.3], [0.2, 0.9]] {
        let u1 = a * b;
        let v = u1.exp();
        let u2 = u1 + v;
        let du = [b, a];
        let grad = [2.0 * u2 * (1.0 + v) * du[0], 2.0 * u2 * (1.0 + v) * du[1]];
        let mut hess = [[0.0; 2]; 2];
        for k in 0..2 {
            for l in 0..2 {
                let second = if k == l { 0.0 } else { 1.0 };
                hess[k][l] = 2.0 * ((1.0 + v) * (1.0 + v) + u2 * v) * du[k] * du[l] + 2.0 * u2 * (1.0 + v) * second;
            }
        }
        assert_exact(&Bindings, [a, b], grad, hess);
    }
}

#[objective]
fn quadratic_form(x: [f64; 2]) -> f64 {
    quad(&A, &x)
}

#[test]
fn quadratic_form_of_the_argument() {
    // A + A^T = [[4, -2], [-2, 8]].
    for [x, y] in [[1.0f64, 2.0], [-0.5, 3.0]] {
        assert_exact(&QuadraticForm, [x, y], [4.0 * x - 2.0 * y, -2.0 * x + 8.0 * y], [[4.0, -2.0], [-2.0, 8.0]]);
        assert_eq!(QuadraticForm.value([x, y]), 2.0 * x * x + 4.0 * y * y - 2.0 * x * y);
    }
}

#[objective]
fn quadratic_form_of_expressions([x, y]: [f64; 2]) -> f64 {
    quad(&A, &[x * y, y])
}

#[test]
fn quadratic_form_of_expressions_and_destructuring() {
    for [x, y] in [[1.0f64, 2.0], [-0.5, 3.0]] {
        let grad = [4.0 * x * y * y - 2.0 * y * y, 4.0 * x * x * y - 4.0 * x * y + 8.0 * y];
        let hess = [[4.0 * y * y, 8.0 * x * y - 4.0 * y], [8.0 * x * y - 4.0 * y, 4.0 * x * x - 4.0 * x + 8.0]];
        assert_exact(&QuadraticFormOfExpressions, [x, y], grad, hess);
    }
}

#[objective]
fn scalar_arguments(x: f64, y: f64) -> f64 {
    f64::exp(x) * f64::sin(y)
}

#[test]
fn scalar_arguments_and_function_call_syntax() {
    for [x, y] in [[0.5f64, -0.3], [-1.0, 2.0]] {
        let (s, c) = (x.exp() * y.sin(), x.exp() * y.cos());
        assert_exact(&ScalarArguments, [x, y], [s, c], [[s, c], [c, -s]]);
        assert_eq!(ScalarArguments.value([x, y]), scalar_arguments(x, y));
    }
}

#[objective(name = Renamed)]
fn custom_name(x: f64) -> f64 {
    x
}

#[objective]
fn constant_function(_x: [f64; 2]) -> f64 {
    3.0
}

#[test]
fn linear_and_constant_functions() {
    assert_exact(&Renamed, [4.0], [1.0], [[0.0]]);
    assert_eq!(Renamed.name(), "custom_name");
    assert_exact(&ConstantFunction, [4.0, 1.0], [0.0, 0.0], [[0.0; 2]; 2]);
}

#[objective]
fn single_precision(x: [f32; 2]) -> f32 {
    x[0] * x[0] * x[1] + x[1].sqrt()
}

#[test]
fn f32_objectives() {
    let [a, b] = [1.5f32, 4.0];
    let (value, grad, hess) = SinglePrecision.value_grad_hess([a, b]);
    assert_eq!(value, single_precision([a, b]));
    assert_eq!(grad, [2.0 * a * b, a * a + 0.25]);
    assert_eq!(hess, [[2.0 * b, 2.0 * a], [2.0 * a, -1.0 / 32.0]]);
}

mod visibility {
    use hdm::prelude::*;

    /// A public objective: the struct is as public as the function.
    #[objective]
    pub fn public(x: f64) -> f64 {
        x * x
    }
}

#[test]
fn the_struct_has_the_function_visibility() {
    assert_eq!(visibility::Public.gradient([3.0]), [6.0]);
    assert_eq!(visibility::public(3.0), 9.0);
}

#[test]
fn objectives_defined_inside_a_function() {
    #[objective]
    fn local(x: [f64; 2]) -> f64 {
        let r = x[0] * x[0] + x[1] * x[1];
        r.sqrt()
    }
    let (v, g, h) = Local.value_grad_hess([3.0, 4.0]);
    assert_eq!((v, g), (5.0, [0.6, 0.8]));
    assert_exact(&Local, [3.0, 4.0], [0.6, 0.8], [[16.0 / 125.0, -12.0 / 125.0], [-12.0 / 125.0, 9.0 / 125.0]]);
    assert!(h[0][0] > 0.0);
}

#[objective]
fn shadowing_arguments(x: [f64; 2]) -> f64 {
    let x = x[0] * x[1];
    x * x
}

#[objective]
fn shadowing_scalars(a: f64, b: f64) -> f64 {
    let a = a * b;
    let b = a.sin();
    a + b
}

#[test]
fn lets_that_shadow_arguments() {
    for [u, v] in [[0.5f64, -0.3], [2.0, 1.5]] {
        let p = u * v;
        assert_exact(
            &ShadowingArguments,
            [u, v],
            [2.0 * p * v, 2.0 * p * u],
            [[2.0 * v * v, 4.0 * p], [4.0 * p, 2.0 * u * u]],
        );
        let (c, s) = (p.cos(), p.sin());
        let grad = [v * (1.0 + c), u * (1.0 + c)];
        let hess = [[-v * v * s, 1.0 + c - p * s], [1.0 + c - p * s, -u * u * s]];
        assert_exact(&ShadowingScalars, [u, v], grad, hess);
    }
}
