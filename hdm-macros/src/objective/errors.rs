//! Where a piece of the user's function is, and the list of everything wrong with it.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, TokenStreamExt};
use std::fmt::Display;

/// The first and last token of a piece of syntax. An error built from it underlines the whole
/// range (syn's `Error::new_spanned` takes the first and last spans of what it is given), without
/// our syntax tree having to keep the tokens themselves.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    pub start: Span,
    pub end: Span,
}

impl Loc {
    /// The range covered by `syntax`.
    pub fn of(syntax: &impl ToTokens) -> Loc {
        let mut tokens = syntax.to_token_stream().into_iter();
        let start = tokens.next().map_or_else(Span::call_site, |t| t.span());
        let end = tokens.last().map_or(start, |t: TokenTree| t.span());
        Loc { start, end }
    }
}

impl ToTokens for Loc {
    fn to_tokens(&self, out: &mut TokenStream) {
        out.append(Ident::new("start", self.start));
        out.append(Ident::new("end", self.end));
    }
}

/// Every error found in one function, reported together.
#[derive(Default)]
pub struct Errors {
    list: Vec<syn::Error>,
}

impl Errors {
    /// Records `message` at `loc`.
    pub fn at(&mut self, loc: Loc, message: impl Display) {
        self.list.push(syn::Error::new_spanned(loc, message));
    }

    /// Records `message` at the tokens of `syntax`.
    pub fn spanned(&mut self, syntax: &impl ToTokens, message: impl Display) {
        self.at(Loc::of(syntax), message);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The errors as `compile_error!` invocations, each at its own tokens.
    pub fn into_compile_errors(self) -> TokenStream {
        self.list.into_iter().map(syn::Error::into_compile_error).collect()
    }
}

/// What an `#[objective]` body may contain, appended to messages about what it may not.
pub const SUPPORTED: &str = "#[objective] supports `let` bindings, + - * / and unary -, float \
     literals, `const` items, `x[i]` with a literal `i`, `quad(&A, &x)`, and the methods powi, \
     powf, sqrt, exp, ln, sin, cos, tan, sinh, cosh, tanh and abs";
