//! The compilers behind hdm's attributes. Use them through the `hdm` crate.

mod network;

use proc_macro::TokenStream;

/// Compiles a network definition into a model with `init`, `forward`, `loss`, `gradients` and a
/// fused training step. See the `hdm` crate's documentation for the syntax.
#[proc_macro_attribute]
pub fn network(args: TokenStream, input: TokenStream) -> TokenStream {
    network::expand(args.into(), input.into()).into()
}
