//! Collects every error of a network definition, so that one compilation reports them all.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

#[derive(Default)]
pub struct Errors {
    list: Vec<syn::Error>,
}

impl Errors {
    /// Records an error pointing at `tokens`.
    pub fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.list.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an already built error.
    pub fn push(&mut self, error: syn::Error) {
        self.list.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// One `compile_error!` per recorded error, each at its own span.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.list.iter().map(syn::Error::to_compile_error).collect()
    }
}
