//! # hdm
//!
//! Neural-network training compiled at compile time. See the README.
#![doc = include_str!("../README.md")]

extern crate self as hdm;

pub use hdm_macros::network;
/// Differentiates a scalar function of a few variables at compile time.
///
/// `#[objective]` keeps the function as written and adds a unit struct, named after it in
/// CamelCase, that implements [`scalar::Objective<N>`](scalar::Objective): the value, and the
/// gradient and Hessian as exact closed forms derived from the function's body while compiling
/// (no finite differences, no tape). The methods of [`scalar`] (gradient descent and the
/// optimizers of [`optim`], Newton, line searches) run on it.
///
/// ```
/// use hdm::prelude::*;
/// use hdm::scalar::{minimize, Newton, Stopping};
///
/// #[objective]
/// fn rosenbrock([x, y]: [f64; 2]) -> f64 {
///     let a = 1.0 - x;
///     let b = y - x * x;
///     a * a + 100.0 * b * b
/// }
///
/// // The function is unchanged; `Rosenbrock` is its objective.
/// assert_eq!(rosenbrock([1.0, 1.0]), 0.0);
/// let (value, grad, hess) = Rosenbrock.value_grad_hess([0.0, 0.0]);
/// assert_eq!((value, grad, hess), (1.0, [-2.0, 0.0], [[2.0, 0.0], [0.0, 200.0]]));
/// assert_eq!(Rosenbrock.gradient([1.0, 1.0]), [0.0, 0.0]);
///
/// // Newton's method from the classic start.
/// let run = minimize(&Rosenbrock, &Newton::new(1.0), [-1.2, 1.0], Stopping::steps(50).grad_tol(1e-10));
/// assert!((run.last()[0] - 1.0).abs() < 1e-9 && (run.last()[1] - 1.0).abs() < 1e-9);
/// ```
///
/// # Signatures
/// `fn f(x: [f64; N]) -> f64` with a literal `N` (element `i` is `x[i]`),
/// `fn f([x, y]: [f64; 2]) -> f64`, or `fn f(x: f64, y: f64) -> f64` (`N` scalar arguments);
/// `f32` instead of `f64` throughout works the same. The struct has the function's visibility;
/// `#[objective(name = Other)]` names it. [`Univariate`](scalar::Univariate) gives a function of
/// one variable `derivative(x)` and `second_derivative(x)`.
///
/// # The language
/// The body is `let` bindings followed by the value. Expressions may use:
///
/// | syntax | notes |
/// |---|---|
/// | `a + b`, `a - b`, `a * b`, `a / b`, `-a` | |
/// | `2.0`, `1e-3` | literals |
/// | `C`, `std::f64::consts::PI`, `W[1]`, `M[0][1]` | `const` items (any path that is not an argument or a `let`): opaque constants, referred to by path in the generated code, since their value is not visible to a macro |
/// | `x[0]` | the array argument, indexed with integer literals |
/// | `let u = ...;` | evaluated once; its derivatives are computed once and reused |
/// | `a.powi(3)`, `a.powi(-1)` | integer literal exponents |
/// | `a.powf(b)` | any exponent; a constant one gets the simpler rule `b a^(b-1)` |
/// | `sqrt exp ln sin cos tan sinh cosh tanh abs` | as methods, `a.exp()`, or as `f64::exp(a)`; `abs` has derivative `signum` (`+1` at `0`) |
/// | `quad(&A, &x)`, `quad(&A, &[u, v])` | the quadratic form `v^T A v` ([`scalar::quad`]) of a `const` matrix `A` |
///
/// Anything else (`if`, loops, other functions and methods, casts, assignments) is a compile
/// error at its tokens that says what is supported, and every error of the function is reported
/// in one compilation.
///
/// # What it generates
/// For `fn xcos(x: f64) -> f64 { x * (C * x).cos() }`, `cargo expand` shows, beside the function:
///
/// ```text
/// /// The objective [`xcos`] of 1 variable with its exact gradient and Hessian, ...
/// #[derive(Clone, Copy, Debug, Default)]
/// struct Xcos;
///
/// impl ::hdm::scalar::Objective<1> for Xcos {
///     type Scalar = f64;
///     fn name(&self) -> &str { "xcos" }
///     fn value(&self, [x]: [f64; 1]) -> f64 { xcos(x) }
///     fn value_and_grad(&self, [x]: [f64; 1]) -> (f64, [f64; 1]) {
///         let t0 = C * x;
///         let t1 = t0.cos();
///         let value = x * t1;
///         let df_dx = t1 - x * (C * t0.sin());
///         (value, [df_dx])
///     }
///     fn value_grad_hess(&self, [x]: [f64; 1]) -> (f64, [f64; 1], [[f64; 1]; 1]) {
///         let t0 = C * x;
///         let t1 = t0.cos();
///         let value = x * t1;
///         let t2 = C * t0.sin();
///         let df_dx = t1 - x * t2;
///         let d2f_dxdx = -t2 - (t2 + x * (C * (C * t1)));
///         (value, [df_dx], [[d2f_dxdx]])
///     }
///     // and `gradient`, `hessian` on their own
/// }
/// ```
///
/// The value is computed exactly as the function computes it (bit for bit); derivatives are
/// simplified (`x * 1`, `x + 0`, constant folding) and every subexpression used more than once,
/// including a `let`'s derivative (`da_dx0`), is computed once.
#[doc(inline)]
pub use hdm_macros::objective;
pub use hdm_runtime::*;

/// Everything a model definition and a training loop need.
pub mod prelude {
    pub use hdm_macros::{network, objective};
    pub use hdm_runtime::optim::*;
    pub use hdm_runtime::scalar::{quad, Objective, Univariate};
    pub use hdm_runtime::{
        AvgPool2d, BatchNorm1d, BatchNorm2d, Bias, Conv2d, ConvTranspose2d, Flatten, Float, Gelu, Identity, LeakyRelu,
        Linear, MaxPool2d, NoBias, Parameters, Relu, Reshape, Sigmoid, Softplus, Tanh,
    };
    pub use hdm_runtime::{Error, Input, Network, OnNonFinite, Predictor, Result, Rng, Schedule, Then, Trainer};
}
