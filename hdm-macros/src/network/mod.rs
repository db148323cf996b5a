//! `#[network]`: parse -> check -> lower -> backward -> plan -> codegen.

use proc_macro2::TokenStream;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}
