//! # hdm
//!
//! Neural-network training compiled at compile time. See the README.
#![doc = include_str!("../README.md")]

extern crate self as hdm;

pub use hdm_macros::{network, objective};
pub use hdm_runtime::*;

/// Everything a model definition and a training loop need.
pub mod prelude {
    pub use hdm_macros::{network, objective};
    pub use hdm_runtime::optim::*;
    pub use hdm_runtime::scalar::{quad, Objective, Univariate};
    pub use hdm_runtime::{
        Bias, Float, Gelu, Identity, LeakyRelu, Linear, NoBias, Parameters, Relu, Sigmoid, Softplus, Tanh,
    };
    pub use hdm_runtime::{Error, Network, Result, Rng, Schedule, Trainer};
}
