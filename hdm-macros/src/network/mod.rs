//! `#[network]`: parse -> check -> lower -> backward -> plan -> codegen, each phase its own
//! module.

mod ast;
mod check;
mod codegen;
mod errors;
mod grad;
mod ir;
mod path;
mod plan;
mod shape;
#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = errors::Errors::default();
    if let Ok(item) = syn::parse2::<syn::ItemStruct>(input.clone()) {
        if item.ident == "T" {
            // Generated code names the element type `T`: `struct T<T>` cannot be. One error, and
            // no item (its layer types mean nothing outside the macro).
            return syn::Error::new_spanned(
                &item.ident,
                "a #[network] struct cannot be named `T`: hdm gives the struct an element type \
                 parameter of that name (`Net<f32>`); rename the struct",
            )
            .to_compile_error();
        }
    }
    let Some(net) = ast::parse(args, input.clone(), &mut errors) else {
        // Not a struct: nothing to build on; give back the item untouched beside the error.
        let errs = errors.to_compile_errors();
        return quote::quote!(#errs #input);
    };
    let checked = check::check(&net, &mut errors);
    match checked {
        Some(checked) if errors.is_empty() => {
            let graph = ir::lower(checked);
            let steps = grad::backward(&graph);
            let plan = plan::plan(&graph, steps);
            let path = path::plan(&graph);
            codegen::generate(&net, &graph, &plan, &path)
        }
        _ => {
            let loss = net.loss.as_ref().and_then(|l| check::Loss::from_name(&l.to_string()));
            let stub = codegen::stub(&net, loss);
            let errs = errors.to_compile_errors();
            quote::quote!(#errs #stub)
        }
    }
}
