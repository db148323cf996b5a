//! Initialisation schemes, as `torch.nn.init` offers them, for a whole network or one layer.
//!
//! A network made by `#[network]` starts with PyTorch's default initialisation
//! ([`Network::init`](crate::Network::init)). To start elsewhere, redraw its tensors with
//! [`apply`] (every weight of a `Linear` or convolution, and their biases) or [`apply_with`] (a
//! rule per tensor, by name and shape). A layer is [`Parameters`] too, so `apply(&mut
//! model.fc1, ...)` redraws one layer. Batch normalisations keep their own initialisation
//! (weight 1, bias 0) under [`apply`], as they do in PyTorch.
//!
//! | [`Init`] | `torch.nn.init` | values |
//! |---|---|---|
//! | `Default` | (the layers' own `reset_parameters`) | `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` |
//! | `Constant(c)` | `constant_`, `zeros_`, `ones_` | `c` |
//! | `Uniform { low, high }` | `uniform_(a, b)` | `U(low, high)` |
//! | `Normal { mean, std }` | `normal_(mean, std)` | `N(mean, std^2)` |
//! | `XavierUniform { gain }` | `xavier_uniform_` | `U(-b, b)`, `b = gain * sqrt(6 / (fan_in + fan_out))` |
//! | `XavierNormal { gain }` | `xavier_normal_` | `N(0, s^2)`, `s = gain * sqrt(2 / (fan_in + fan_out))` |
//! | `KaimingUniform { gain, mode }` | `kaiming_uniform_` | `U(-b, b)`, `b = gain * sqrt(3 / fan)` |
//! | `KaimingNormal { gain, mode }` | `kaiming_normal_` | `N(0, s^2)`, `s = gain / sqrt(fan)` |
//!
//! The fans are PyTorch's (`_calculate_fan_in_and_fan_out`): for a tensor of shape
//! `[d0, d1, k...]`, `fan_in = d1 * prod(k)` and `fan_out = d0 * prod(k)`; a bias (one dimension)
//! takes the fan of its layer's weight. [`gain`] is `torch.nn.init.calculate_gain`.
//!
//! Glorot and Bengio, *Understanding the difficulty of training deep feedforward neural networks*
//! (2010); He et al., *Delving deep into rectifiers* (2015).
//!
//! ```
//! use hdm_runtime::init::{self, gain, Init, Mode, Nonlinearity};
//! use hdm_runtime::{Linear, Parameters, Rng};
//!
//! # fn main() -> hdm_runtime::Result<()> {
//! let mut layer: Linear<f32, 784, 500> = Linear::zeros();
//! let mut rng = Rng::new(0);
//! // He initialisation for a ReLU network, zero biases.
//! let he = Init::KaimingNormal { gain: gain(Nonlinearity::Relu), mode: Mode::FanIn };
//! init::apply(&mut layer, &mut rng, he, Init::Constant(0.0))?;
//! let std = (layer.weight().iter().map(|w| w * w).sum::<f32>() / (784.0 * 500.0)).sqrt();
//! assert!((std - (2.0f32 / 784.0).sqrt()).abs() < 1e-3);
//! assert!(layer.bias().unwrap().iter().all(|&b| b == 0.0));
//!
//! // A rule per tensor: the tutorial MLP's torch.randn weights, and its biases left alone.
//! init::apply_with(&mut layer, &mut rng, |name, _shape| {
//!     name.ends_with("weight").then_some(Init::Normal { mean: 0.0, std: 1.0 })
//! })?;
//! # Ok(())
//! # }
//! ```

use crate::{Error, Float, Parameters, Result, Rng};

/// How a tensor's values are drawn. See the [module](self) for the table of formulas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default for `Linear` and convolutions: uniform in `±1/sqrt(fan_in)`.
    Default,
    /// Every value `c`.
    Constant(f64),
    /// Uniform in `[low, high)`.
    Uniform { low: f64, high: f64 },
    /// Normal with mean `mean` and standard deviation `std`.
    Normal { mean: f64, std: f64 },
    /// Xavier (Glorot) uniform: `±gain * sqrt(6 / (fan_in + fan_out))`.
    XavierUniform { gain: f64 },
    /// Xavier (Glorot) normal: standard deviation `gain * sqrt(2 / (fan_in + fan_out))`.
    XavierNormal { gain: f64 },
    /// Kaiming (He) uniform: `±gain * sqrt(3 / fan)`, the fan chosen by `mode`.
    KaimingUniform { gain: f64, mode: Mode },
    /// Kaiming (He) normal: standard deviation `gain / sqrt(fan)`.
    KaimingNormal { gain: f64, mode: Mode },
}

/// Which fan Kaiming initialisation keeps the variance of: the forward pass's (`FanIn`,
/// PyTorch's default) or the backward pass's (`FanOut`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    FanIn,
    FanOut,
}

/// The nonlinearities of `torch.nn.init.calculate_gain`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Linear, convolutions, sigmoid: 1.
    Linear,
    /// `tanh`: 5/3.
    Tanh,
    /// `relu`: sqrt(2).
    Relu,
    /// `leaky_relu` with this negative slope: sqrt(2 / (1 + slope^2)).
    LeakyRelu(f64),
    /// SELU: 3/4.
    Selu,
}

/// The recommended gain for a nonlinearity, as `torch.nn.init.calculate_gain`.
pub fn gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// PyTorch's fans of a tensor of `shape` (at least two dimensions): `(fan_in, fan_out)`.
pub fn fans(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            Some((inp * field, out * field))
        }
        _ => None,
    }
}

impl Init {
    /// Checks the scheme's numbers: finite, `std >= 0`, `low <= high`, `gain >= 0`.
    fn validate(&self) -> std::result::Result<(), String> {
        let finite =
            |what: &str, v: f64| if v.is_finite() { Ok(()) } else { Err(format!("{what} = {v} is not finite")) };
        let at_least_zero = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{what} = {v} must be >= 0"))
            }
        };
        match *self {
            Init::Default => Ok(()),
            Init::Constant(c) => finite("constant", c),
            Init::Uniform { low, high } => {
                finite("low", low)?;
                finite("high", high)?;
                if low <= high {
                    Ok(())
                } else {
                    Err(format!("low = {low} is above high = {high}"))
                }
            }
            Init::Normal { mean, std } => finite("mean", mean).and(at_least_zero("std", std)),
            Init::XavierUniform { gain }
            | Init::XavierNormal { gain }
            | Init::KaimingUniform { gain, .. }
            | Init::KaimingNormal { gain, .. } => at_least_zero("gain", gain),
        }
    }

    /// Whether the scheme needs the layer's fans.
    fn uses_fans(&self) -> bool {
        !matches!(self, Init::Constant(_) | Init::Uniform { .. } | Init::Normal { .. })
    }

    /// Fills `data` (the tensor `name`, whose layer's weight has the fans `fans`) in row-major
    /// order from `rng`.
    fn fill<T: Float>(&self, data: &mut [T], fans: Option<(usize, usize)>, rng: &mut Rng) {
        let (fan_in, fan_out) = fans.map_or((1.0, 1.0), |(i, o)| (i.max(1) as f64, o.max(1) as f64));
        let fan = |mode: Mode| if mode == Mode::FanIn { fan_in } else { fan_out };
        let uniform = |data: &mut [T], rng: &mut Rng, low: f64, high: f64| {
            data.iter_mut().for_each(|v| *v = T::of(rng.uniform_in(low, high)))
        };
        let normal = |data: &mut [T], rng: &mut Rng, mean: f64, std: f64| {
            data.iter_mut().for_each(|v| *v = T::of(mean + std * rng.normal()))
        };
        match *self {
            Init::Default => {
                let bound = 1.0 / fan_in.sqrt();
                uniform(data, rng, -bound, bound)
            }
            Init::Constant(c) => data.fill(T::of(c)),
            Init::Uniform { low, high } => uniform(data, rng, low, high),
            Init::Normal { mean, std } => normal(data, rng, mean, std),
            Init::XavierUniform { gain } => {
                let bound = gain * (6.0 / (fan_in + fan_out)).sqrt();
                uniform(data, rng, -bound, bound)
            }
            Init::XavierNormal { gain } => normal(data, rng, 0.0, gain * (2.0 / (fan_in + fan_out)).sqrt()),
            Init::KaimingUniform { gain, mode } => {
                let bound = gain * (3.0 / fan(mode)).sqrt();
                uniform(data, rng, -bound, bound)
            }
            Init::KaimingNormal { gain, mode } => normal(data, rng, 0.0, gain / fan(mode).sqrt()),
        }
    }
}

/// Redraws every weight of a `Linear` or convolution in `model` (a tensor named `*.weight`, or
/// `weight`, with two dimensions or more) with `weights`, and each such layer's bias with
/// `biases` (a bias takes its weight's fans: `Init::Default` gives PyTorch's own bias
/// initialisation). Other tensors (batch normalisations) are left as they are. Tensors are drawn
/// in the network's order, each in row-major order, so a seed gives the same network on every
/// machine.
pub fn apply<T: Float, M: Parameters<T> + ?Sized>(
    model: &mut M,
    rng: &mut Rng,
    weights: Init,
    biases: Init,
) -> Result<()> {
    // The layers with a weight of two dimensions or more: a `Linear` or a convolution.
    let layers: Vec<String> = model
        .params()
        .iter()
        .filter(|p| p.shape.len() >= 2 && split_name(&p.name).1 == "weight")
        .map(|p| split_name(&p.name).0.to_string())
        .collect();
    apply_with(model, rng, |name, _| {
        let (layer, kind) = split_name(name);
        let of_a_layer = layers.iter().any(|l| l == layer);
        match kind {
            "weight" if of_a_layer => Some(weights),
            "bias" if of_a_layer => Some(biases),
            _ => None,
        }
    })
}

/// A tensor's name as its layer and its kind: `("fc1", "weight")` for `fc1.weight`, `("",
/// "weight")` for a layer's own `weight`.
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or(("", name))
}

/// Redraws each tensor of `model` for which `rule(name, shape)` gives a scheme (`None` leaves it
/// as it is). A one-dimensional tensor (a bias) takes the fans of the weight of its layer
/// (`fc1.bias` those of `fc1.weight`); a scheme that needs fans for a tensor without them is an
/// error, as is a scheme with impossible numbers (a negative `std`). Nothing changes on error.
pub fn apply_with<T: Float, M: Parameters<T> + ?Sized>(
    model: &mut M,
    rng: &mut Rng,
    mut rule: impl FnMut(&str, &[usize]) -> Option<Init>,
) -> Result<()> {
    // Decide everything first, so that an error leaves the model untouched.
    let params = model.params();
    let weight_fans = |name: &str| -> Option<(usize, usize)> {
        let layer = split_name(name).0;
        params.iter().find(|p| split_name(&p.name) == (layer, "weight")).and_then(|p| fans(&p.shape))
    };
    let mut plan = Vec::with_capacity(params.len());
    for p in &params {
        let Some(init) = rule(&p.name, &p.shape) else {
            plan.push(None);
            continue;
        };
        init.validate().map_err(|problem| Error::Other(format!("initialising {}: {problem}", p.name)))?;
        let fans = fans(&p.shape).or_else(|| weight_fans(&p.name));
        if init.uses_fans() && fans.is_none() {
            return Err(Error::Other(format!(
                "initialising {} {:?} with {init:?}: its fans cannot be computed (fewer than 2 dimensions, \
                 and no weight of its layer), as in torch.nn.init",
                p.name, p.shape
            )));
        }
        plan.push(Some((init, fans)));
    }
    drop(params);
    for (p, step) in model.params_mut().into_iter().zip(plan) {
        if let Some((init, fans)) = step {
            init.fill(p.data, fans, rng);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchNorm, Conv2d, ConvTranspose2d, Linear};

    fn moments(v: &[f64]) -> (f64, f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        (mean, var.sqrt(), max)
    }

    /// Each scheme's spread against its formula, on tensors large enough for 2% accuracy.
    #[test]
    fn each_scheme_has_the_spread_of_its_formula() {
        let (fan_in, fan_out) = (300.0f64, 200.0f64);
        let cases: [(Init, f64, f64); 8] = [
            // (scheme, standard deviation, bound or 0 for none)
            (Init::Default, (1.0 / fan_in).sqrt() / 3f64.sqrt(), 1.0 / fan_in.sqrt()),
            (Init::Uniform { low: -0.5, high: 0.5 }, 1.0 / 12f64.sqrt(), 0.5),
            (Init::Normal { mean: 0.0, std: 0.02 }, 0.02, 0.0),
            (Init::XavierUniform { gain: 1.0 }, (2.0 / (fan_in + fan_out)).sqrt(), (6.0 / (fan_in + fan_out)).sqrt()),
            (Init::XavierNormal { gain: 2.0 }, 2.0 * (2.0 / (fan_in + fan_out)).sqrt(), 0.0),
            (
                Init::KaimingUniform { gain: 2f64.sqrt(), mode: Mode::FanIn },
                (2.0 / fan_in).sqrt(),
                (6.0 / fan_in).sqrt(),
            ),
            (Init::KaimingNormal { gain: 2f64.sqrt(), mode: Mode::FanIn }, (2.0 / fan_in).sqrt(), 0.0),
            (Init::KaimingNormal { gain: 1.0, mode: Mode::FanOut }, (1.0 / fan_out).sqrt(), 0.0),
        ];
        for (init, std, bound) in cases {
            let mut layer: Linear<f64, 300, 200> = Linear::zeros();
            apply(&mut layer, &mut Rng::new(1), init, Init::Constant(0.25)).unwrap();
            let (mean, s, max) = moments(layer.weight().as_slice().unwrap());
            assert!(mean.abs() < 0.02 * std * 10.0, "{init:?}: mean {mean}");
            assert!((s / std - 1.0).abs() < 0.02, "{init:?}: std {s} against {std}");
            if bound > 0.0 {
                assert!(max <= bound && max > 0.99 * bound, "{init:?}: max {max} against bound {bound}");
            }
            assert!(layer.bias().unwrap().iter().all(|&b| b == 0.25));
        }
    }

    /// `Init::Default` is the layers' own initialisation, bit for bit, from the same generator.
    #[test]
    fn default_is_pytorchs_layer_initialisation() {
        let own: Linear<f32, 7, 5> = Linear::init(&mut Rng::new(3));
        let mut redrawn: Linear<f32, 7, 5> = Linear::zeros();
        apply(&mut redrawn, &mut Rng::new(3), Init::Default, Init::Default).unwrap();
        assert_eq!(own, redrawn);
        let own: Conv2d<f64, 3, 4, 3> = Conv2d::init(&mut Rng::new(4));
        let mut redrawn: Conv2d<f64, 3, 4, 3> = Conv2d::zeros();
        apply(&mut redrawn, &mut Rng::new(4), Init::Default, Init::Default).unwrap();
        assert_eq!(own, redrawn);
    }

    /// PyTorch's fans, including its reading of a transposed convolution's `[IN, OUT, K, K]`.
    #[test]
    fn fans_are_pytorchs() {
        assert_eq!(fans(&[500, 784]), Some((784, 500)));
        assert_eq!(fans(&[32, 3, 5, 5]), Some((75, 800)));
        assert_eq!(fans(&ConvTranspose2d::<f32, 8, 4, 3>::WEIGHT_SHAPE), Some((36, 72)));
        assert_eq!(fans(&[10]), None);
        assert_eq!(gain(Nonlinearity::LeakyRelu(0.2)), (2.0f64 / 1.04).sqrt());
        assert_eq!(gain(Nonlinearity::Tanh), 5.0 / 3.0);
    }

    /// Batch normalisations keep weight 1 and bias 0 under `apply`; a scheme needing fans for a
    /// tensor without them, or impossible numbers, is an error that changes nothing.
    #[test]
    fn batch_norms_are_kept_and_bad_schemes_are_errors() {
        let mut bn: BatchNorm<f32, 3> = BatchNorm::init(&mut Rng::new(0));
        apply(&mut bn, &mut Rng::new(0), Init::XavierUniform { gain: 1.0 }, Init::Constant(9.0)).unwrap();
        assert_eq!(bn, BatchNorm::init(&mut Rng::new(0)));
        let e = apply_with(&mut bn, &mut Rng::new(0), |_, _| Some(Init::XavierNormal { gain: 1.0 })).unwrap_err();
        assert!(e.to_string().contains("initialising weight [3] with XavierNormal"), "{e}");
        let mut layer: Linear<f32, 3, 2> = Linear::init(&mut Rng::new(0));
        let before = layer.clone();
        for (init, problem) in [
            (Init::Normal { mean: 0.0, std: -1.0 }, "std = -1 must be >= 0"),
            (Init::Uniform { low: 1.0, high: 0.0 }, "low = 1 is above high = 0"),
            (Init::Constant(f64::NAN), "constant = NaN is not finite"),
            (Init::KaimingUniform { gain: f64::INFINITY, mode: Mode::FanIn }, "gain = inf must be >= 0"),
        ] {
            let e = apply(&mut layer, &mut Rng::new(0), Init::Default, init).unwrap_err().to_string();
            assert!(e.contains("initialising bias") && e.contains(problem), "{e}");
            assert_eq!(layer, before);
        }
    }
}
