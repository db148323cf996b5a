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

/// Differentiates a scalar function at compile time: keeps `fn f` and adds a unit struct `F`
/// implementing `hdm::scalar::Objective` with the exact gradient and Hessian. See the `hdm`
/// crate's documentation of `objective` for the language and an example.
#[proc_macro_attribute]
pub fn objective(args: TokenStream, input: TokenStream) -> TokenStream {
    objective::expand(args.into(), input.into()).into()
}
