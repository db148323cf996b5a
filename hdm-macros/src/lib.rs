//! The compilers behind hdm's attributes. Use them through the `hdm` crate.

mod network;
mod objective;

use proc_macro::TokenStream;

/// Compiles a network definition into a model with `init`, `forward`, `loss`, `gradients` and a
/// fused training step. See the `hdm` crate's documentation for the syntax.
#[proc_macro_attribute]
pub fn network(args: TokenStream, input: TokenStream) -> TokenStream {
    network::expand(args.into(), input.into()).into()
}

/// Differentiates a scalar function at compile time into an implementation of
/// `hdm::scalar::Objective`. (Compiled by `hdm-macros`; use it through the `hdm` crate.)
#[proc_macro_attribute]
pub fn objective(args: TokenStream, input: TokenStream) -> TokenStream {
    objective::expand(args.into(), input.into()).into()
}
