//! `#[objective]`: a scalar function of a few variables, differentiated at compile time.
//!
//! The phases, each its own module:
//!
//! 1. [`ast`] parses the attribute and the function into our own syntax tree (with the location
//!    of every node) and reports signature errors;
//! 2. [`check`] reports every construct of the body that the differentiator does not know, all
//!    at once, each at its tokens;
//! 3. [`ir`] lowers the body to a hash-consed expression graph, exactly as written;
//! 4. [`diff`] adds the gradient and the Hessian to the graph by a table of derivative rules,
//!    memoised per node and variable: forward mode, run symbolically, so the derivative of a `let`
//!    (or of any repeated subexpression) is built once and then referred to;
//! 5. [`simplify`] is the algebra (constant folding, `x * 1`, `x * 0`, `x + 0`, signs) that
//!    every derivative node goes through as it is built;
//! 6. [`codegen`] writes the function as given, a unit struct named after it, and the struct's
//!    `hdm::scalar::Objective` impl, binding shared nodes to `let`s.
//!
//! On an error the function, the struct and a stub impl are still emitted beside the
//! `compile_error!`s, so the user sees the errors about their function and nothing else.

mod ast;
mod check;
mod codegen;
mod diff;
mod errors;
mod ir;
mod simplify;

use proc_macro2::TokenStream;
use quote::quote;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = errors::Errors::default();
    let Some(function) = ast::parse(args, input.clone(), &mut errors) else {
        let errors = errors.into_compile_errors();
        return quote!(#errors #input);
    };
    check::check(&function, &mut errors);
    match &function.input {
        Some(point) if errors.is_empty() => {
            let (mut graph, value) = ir::lower(&function, point);
            let (grad, hess) = diff::derivatives(&mut graph, value, point.len());
            codegen::generate(&function, point, &graph, value, &grad, &hess)
        }
        Some(point) => {
            let stub = codegen::stub(&function, point);
            let errors = errors.into_compile_errors();
            quote!(#errors #stub)
        }
        None => {
            let item = &function.item;
            let errors = errors.into_compile_errors();
            quote!(#errors #item)
        }
    }
}
