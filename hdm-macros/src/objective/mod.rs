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

#[cfg(test)]
mod tests {
    use super::expand;
    use quote::quote;

    /// The tokens without whitespace, for comparing with code as a person would lay it out.
    fn squash(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[track_caller]
    fn assert_contains(out: &str, code: &str) {
        assert!(squash(out).contains(&squash(code)), "expected\n{code}\nin\n{out}");
    }

    /// The expansion shown in the documentation of `hdm::objective`.
    #[test]
    fn expansion_reads_like_handwritten_code() {
        let out = expand(
            quote!(),
            quote!(
                fn xcos(x: f64) -> f64 {
                    x * (C * x).cos()
                }
            ),
        )
        .to_string();
        assert_contains(&out, "fn xcos(x: f64) -> f64 { x * (C * x).cos() }");
        assert_contains(&out, "#[derive(Clone, Copy, Debug, Default)] struct Xcos;");
        assert_contains(&out, "impl ::hdm::scalar::Objective<1> for Xcos { type Scalar = f64;");
        assert_contains(&out, r#"fn name(&self) -> &str { "xcos" }"#);
        assert_contains(&out, "fn value(&self, [x]: [f64; 1]) -> f64 { xcos(x) }");
        assert_contains(
            &out,
            "fn value_and_grad(&self, [x]: [f64; 1]) -> (f64, [f64; 1]) {
                let t0 = C * x;
                let t1 = t0.cos();
                let value = x * t1;
                let df_dx = t1 - x * (C * t0.sin());
                (value, [df_dx])
            }",
        );
        assert_contains(
            &out,
            "fn value_grad_hess(&self, [x]: [f64; 1]) -> (f64, [f64; 1], [[f64; 1]; 1]) {
                let t0 = C * x;
                let t1 = t0.cos();
                let value = x * t1;
                let t2 = C * t0.sin();
                let df_dx = t1 - x * t2;
                let d2f_dxdx = -t2 - (t2 + x * (C * (C * t1)));
                (value, [df_dx], [[d2f_dxdx]])
            }",
        );
    }

    /// A `let`'s derivative used twice is bound once, under its own name.
    #[test]
    fn derivatives_of_lets_are_named_and_shared() {
        let out = expand(
            quote!(),
            quote!(
                fn rosenbrock(x: [f64; 2]) -> f64 {
                    let a = 1.0 - x[0];
                    let b = x[1] - x[0] * x[0];
                    a * a + 100.0 * b * b
                }
            ),
        )
        .to_string();
        let hess = &out[out.find("fn value_grad_hess").expect("generated")..];
        assert_contains(hess, "let a = 1.0 - x[0]; let b = x[1] - x[0] * x[0];");
        assert_contains(hess, "let db_dx0 = -2.0 * x[0];");
        assert_eq!(hess.matches("db_dx0").count(), 3, "{hess}");
        assert_contains(hess, "let df_dx1 = 200.0 * b;");
        assert_contains(hess, "[[d2f_dx0dx0, d2f_dx0dx1], [d2f_dx0dx1, 200.0]]");
    }

    /// Generated names never shadow the user's constants.
    #[test]
    fn generated_names_avoid_the_users_identifiers() {
        let out = expand(
            quote!(),
            quote!(
                fn f(x: f64) -> f64 {
                    (t0 * x).exp() + (t0 * x).exp() * value
                }
            ),
        )
        .to_string();
        assert!(!squash(&out).contains("lett0="), "{out}");
        assert_contains(&out, "let t1 = (t0 * x).exp();");
        assert!(!squash(&out).contains("letvalue="), "{out}");
        assert_contains(&out, "let value_2 =");
    }

    #[test]
    fn a_non_function_is_an_error_that_keeps_the_item() {
        let out = expand(
            quote!(),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(out.contains("compile_error") && out.contains("struct S"), "{out}");
    }
}
