//! Codegen: the graph as Rust, with quote. No analysis beyond deciding which nodes get a `let`.
//!
//! Each generated method computes only what its results need. A node gets a `let` when the user
//! named it, when it is a result (`value`, `df_dx0`, `d2f_dx0dx1`), or when it is used more than
//! once (the derivative of a `let` is then called `da_dx0`, any other shared piece `t0`, `t1`,
//! ...); everything else is written inline, with parentheses exactly where the graph's grouping
//! needs them.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};

use super::ast::{Float, Form, Function, Input};
use super::ir::{var_name, var_tokens, Graph, Id, Node};

/// Operator precedence, loosest first.
const ADD: u8 = 1;
const MUL: u8 = 2;
const UNARY: u8 = 3;
const POSTFIX: u8 = 4;
const ATOM: u8 = 5;

/// The function as written, the unit struct and its `Objective` impl.
pub fn generate(f: &Function, input: &Input, graph: &Graph, value: Id, grad: &[Id], hess: &[Vec<Id>]) -> TokenStream {
    let taken = taken_names(f, input);
    let n = Literal::usize_unsuffixed(input.len());
    let (n, len) = (&n, input.len());
    let float = input.float.ident();
    let method = |roots: Vec<(Id, String)>, shape: &dyn Fn(&[TokenStream]) -> TokenStream| {
        let ids: Vec<Id> = roots.iter().map(|r| r.0).collect();
        let body = Body::new(graph, input, &taken, &roots);
        let (stmts, results) = body.emit(&ids);
        let result = shape(&results);
        (body.pattern(), quote!(#(#stmts)* #result))
    };
    let value_root = || (value, "value".to_string());
    let grad_roots = || (0..len).map(|k| (grad[k], format!("df_d{}", var_name(input, k)))).collect::<Vec<_>>();
    let hess_roots = || {
        let mut roots = Vec::new();
        for l in 0..len {
            for (k, row) in hess.iter().enumerate().take(l + 1) {
                roots.push((row[l], format!("d2f_d{}d{}", var_name(input, k), var_name(input, l))));
            }
        }
        roots
    };
    // Results in `hess_roots` order back into a full symmetric matrix.
    let matrix = move |upper: &[TokenStream]| {
        let at = |k: usize, l: usize| {
            let (k, l) = if k <= l { (k, l) } else { (l, k) };
            upper[l * (l + 1) / 2 + k].clone()
        };
        let rows = (0..len).map(|k| {
            let row = (0..len).map(|l| at(k, l));
            quote!([#(#row),*])
        });
        quote!([#(#rows),*])
    };

    let (p1, vg) = method([vec![value_root()], grad_roots()].concat(), &|r| {
        let (v, g) = (&r[0], &r[1..]);
        quote!((#v, [#(#g),*]))
    });
    let (p2, g) = method(grad_roots(), &|r| quote!([#(#r),*]));
    let (p3, h) = method(hess_roots(), &|r| matrix(r));
    let (p4, vgh) = method([vec![value_root()], grad_roots(), hess_roots()].concat(), &|r| {
        let (v, g, h) = (&r[0], &r[1..=len], matrix(&r[len + 1..]));
        quote!((#v, [#(#g),*], #h))
    });

    objective_impl(
        f,
        input,
        quote! {
            fn value_and_grad(&self, #p1: [#float; #n]) -> (#float, [#float; #n]) {
                #vg
            }

            fn gradient(&self, #p2: [#float; #n]) -> [#float; #n] {
                #g
            }

            fn hessian(&self, #p3: [#float; #n]) -> [[#float; #n]; #n] {
                #h
            }

            fn value_grad_hess(&self, #p4: [#float; #n]) -> (#float, [#float; #n], [[#float; #n]; #n]) {
                #vgh
            }
        },
    )
}

/// Stands in when the body has errors: the function, the struct and an impl whose derivatives
/// are never reached (the crate does not compile), so that uses of the struct raise no errors of
/// their own.
pub fn stub(f: &Function, input: &Input) -> TokenStream {
    let n = Literal::usize_unsuffixed(input.len());
    let float = input.float.ident();
    let name = f.item.sig.ident.to_string();
    let message = format!("#[objective] could not differentiate `{name}`: see the compile errors");
    objective_impl(
        f,
        input,
        quote! {
            fn value_and_grad(&self, _: [#float; #n]) -> (#float, [#float; #n]) {
                ::core::unimplemented!(#message)
            }
            fn value_grad_hess(&self, _: [#float; #n]) -> (#float, [#float; #n], [[#float; #n]; #n]) {
                ::core::unimplemented!(#message)
            }
        },
    )
}

/// The function as written, the struct, and its `Objective` impl with `name`, `value` (a call of
/// the function) and `methods`.
fn objective_impl(f: &Function, input: &Input, methods: TokenStream) -> TokenStream {
    let (item, header) = (&f.item, header(f, input));
    let (n, float) = (Literal::usize_unsuffixed(input.len()), input.float.ident());
    let (struct_name, name) = (&f.struct_name, f.item.sig.ident.to_string());
    let (value_pattern, call) = (full_pattern(input), call_user(f, input));
    quote! {
        #item
        #header
        impl ::hdm::scalar::Objective<#n> for #struct_name {
            type Scalar = #float;

            fn name(&self) -> &str {
                #name
            }

            fn value(&self, #value_pattern: [#float; #n]) -> #float {
                #call
            }

            #methods
        }
    }
}

/// The struct's docs and declaration.
fn header(f: &Function, input: &Input) -> TokenStream {
    let name = f.item.sig.ident.to_string();
    let doc = format!(
        " The objective [`{name}`] of {n} variable{s} with its exact gradient and Hessian, generated by \
         `#[objective]`: an implementation of `hdm::scalar::Objective<{n}>`.",
        n = input.len(),
        s = if input.len() == 1 { "" } else { "s" },
    );
    let (vis, struct_name) = (&f.item.vis, &f.struct_name);
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #struct_name;
    }
}

/// The argument pattern that names every variable: `x` or `[a, b]`.
fn full_pattern(input: &Input) -> TokenStream {
    match &input.form {
        Form::Array(name, _) => name.to_token_stream(),
        Form::Destructured(names) | Form::Scalars(names) => quote!([#(#names),*]),
    }
}

/// The call of the user's function on the point bound by [`full_pattern`].
fn call_user(f: &Function, input: &Input) -> TokenStream {
    let name = &f.item.sig.ident;
    match &input.form {
        Form::Array(x, _) => quote!(#name(#x)),
        Form::Destructured(names) => quote!(#name([#(#names),*])),
        Form::Scalars(names) => quote!(#name(#(#names),*)),
    }
}

/// Every identifier of the function except its `let` names: generated names avoid them, so they
/// never shadow a `const`, an argument or the function. (A `let` that shadows an argument is
/// renamed, since the generated code still reads the argument after it.)
fn taken_names(f: &Function, input: &Input) -> HashSet<String> {
    fn walk(tokens: TokenStream, out: &mut HashSet<String>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    out.insert(ident.to_string());
                }
                TokenTree::Group(group) => walk(group.stream(), out),
                _ => {}
            }
        }
    }
    let mut taken = HashSet::new();
    walk(f.item.to_token_stream(), &mut taken);
    for binding in &f.lets {
        taken.remove(&binding.name.to_string());
    }
    let arguments = match &input.form {
        Form::Array(name, _) => vec![name.to_string()],
        Form::Destructured(names) | Form::Scalars(names) => names.iter().map(Ident::to_string).collect(),
    };
    taken.extend(arguments);
    taken.insert(f.item.sig.ident.to_string());
    taken.insert("self".to_string());
    taken
}

/// One generated method body.
struct Body<'a> {
    graph: &'a Graph,
    input: &'a Input,
    float: Float,
    reachable: Vec<bool>,
    /// The `let` name of every bound node.
    bound: HashMap<Id, Ident>,
}

impl<'a> Body<'a> {
    /// Decides the `let`s of a body computing `roots` (each with its result name).
    fn new(graph: &'a Graph, input: &'a Input, taken: &HashSet<String>, roots: &[(Id, String)]) -> Self {
        let len = graph.nodes.len();
        let mut reachable = vec![false; len];
        let mut stack: Vec<Id> = roots.iter().map(|r| r.0).collect();
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut reachable[id], true) {
                stack.extend(children(&graph.nodes[id]));
            }
        }
        let mut uses = vec![0usize; len];
        for id in (0..len).filter(|&id| reachable[id]) {
            for child in children(&graph.nodes[id]) {
                uses[child] += 1;
            }
        }
        for &(id, _) in roots {
            uses[id] += 1;
        }
        let trivial = |id: Id| matches!(graph.nodes[id], Node::Lit(_) | Node::Var(_) | Node::Const(_));
        let mut names = Namer { taken: taken.clone() };
        let mut bound = HashMap::new();
        // User names first, then result names, then names of derivatives and temporaries.
        for id in (0..len).filter(|&id| reachable[id] && !trivial(id)) {
            if let Some(origin) = graph.origins.get(&id).filter(|o| o.vars.is_empty()) {
                bound.insert(id, names.fresh(&origin.base));
            }
        }
        for (id, name) in roots {
            if !trivial(*id) && !bound.contains_key(id) {
                bound.insert(*id, names.fresh(name));
            }
        }
        for id in (0..len).filter(|&id| reachable[id] && uses[id] > 1 && !trivial(id)) {
            if bound.contains_key(&id) || matches!(graph.nodes[id], Node::Neg(a) if trivial(a)) {
                continue;
            }
            let name = match graph.origins.get(&id) {
                Some(origin) => {
                    let vars: String = origin.vars.iter().map(|&v| format!("d{}", var_name(input, v))).collect();
                    match origin.vars.len() {
                        1 => format!("d{}_{vars}", origin.base),
                        order => format!("d{order}{}_{vars}", origin.base),
                    }
                }
                None => "t".to_string(),
            };
            bound.insert(id, names.fresh(&name));
        }
        Body { graph, input, float: input.float, reachable, bound }
    }

    /// The argument pattern: every variable the body uses by name, `_` for the others.
    fn pattern(&self) -> TokenStream {
        let used = |i: usize| {
            self.graph.nodes.iter().enumerate().any(|(id, node)| {
                self.reachable[id]
                    && match node {
                        Node::Var(v) => *v == i,
                        Node::Quad(_, v) => self.vector_is_input(v),
                        _ => false,
                    }
            })
        };
        match &self.input.form {
            Form::Array(name, n) => {
                if (0..*n).any(used) {
                    name.to_token_stream()
                } else {
                    quote!(_)
                }
            }
            Form::Destructured(names) | Form::Scalars(names) => {
                let names = names.iter().enumerate().map(|(i, name)| if used(i) { quote!(#name) } else { quote!(_) });
                quote!([#(#names),*])
            }
        }
    }

    /// The `let` statements, in dependency order, and the expressions of the results.
    fn emit(&self, roots: &[Id]) -> (Vec<TokenStream>, Vec<TokenStream>) {
        let mut stmts = Vec::new();
        for id in 0..self.graph.nodes.len() {
            if let (true, Some(name)) = (self.reachable[id], self.bound.get(&id)) {
                let (value, _) = self.op(id);
                stmts.push(quote!(let #name = #value;));
            }
        }
        let results = roots.iter().map(|&id| self.expr(id, 0)).collect();
        (stmts, results)
    }

    /// Node `id` where an operand of precedence at least `min` is expected.
    fn expr(&self, id: Id, min: u8) -> TokenStream {
        if let Some(name) = self.bound.get(&id) {
            return name.to_token_stream();
        }
        let (tokens, precedence) = self.op(id);
        if precedence < min {
            quote!((#tokens))
        } else {
            tokens
        }
    }

    /// Node `id` itself, with its precedence.
    fn op(&self, id: Id) -> (TokenStream, u8) {
        match &self.graph.nodes[id] {
            Node::Lit(bits) => {
                let value = f64::from_bits(*bits);
                if value < 0.0 {
                    let literal = float_literal(-value, self.float, false);
                    (quote!(-#literal), UNARY)
                } else {
                    (float_literal(value, self.float, false).into_token_stream(), ATOM)
                }
            }
            Node::Var(i) => (var_tokens(self.input, *i), POSTFIX),
            Node::Const(c) => (self.graph.consts[*c].tokens.clone(), POSTFIX),
            Node::Neg(a) => {
                let a = self.expr(*a, POSTFIX);
                (quote!(-#a), UNARY)
            }
            Node::Add(a, b) => (self.binary(*a, quote!(+), *b, ADD), ADD),
            Node::Sub(a, b) => (self.binary(*a, quote!(-), *b, ADD), ADD),
            Node::Mul(a, b) => (self.binary(*a, quote!(*), *b, MUL), MUL),
            Node::Div(a, b) => (self.binary(*a, quote!(/), *b, MUL), MUL),
            Node::Powi(a, n) => {
                let (a, n) = (self.receiver(*a), Literal::i32_unsuffixed(*n));
                (quote!(#a.powi(#n)), POSTFIX)
            }
            Node::Powf(a, b) => {
                let (a, b) = (self.receiver(*a), self.expr(*b, 0));
                (quote!(#a.powf(#b)), POSTFIX)
            }
            Node::Call(func, a) => {
                let (a, method) = (self.receiver(*a), format_ident!("{}", func.name()));
                (quote!(#a.#method()), POSTFIX)
            }
            Node::Quad(matrix, v) => {
                let matrix = &self.graph.consts[*matrix].tokens;
                let vector = match &self.input.form {
                    Form::Array(name, _) if self.vector_is_input(v) => quote!(#name),
                    _ => {
                        let elems = v.iter().map(|&e| self.expr(e, 0));
                        quote!([#(#elems),*])
                    }
                };
                (quote!(::hdm::scalar::quad(&#matrix, &#vector)), POSTFIX)
            }
        }
    }

    /// `a op b` for a left-associative operator of precedence `precedence`.
    fn binary(&self, a: Id, op: TokenStream, b: Id, precedence: u8) -> TokenStream {
        let (a, b) = (self.expr(a, precedence), self.expr(b, precedence + 1));
        quote!(#a #op #b)
    }

    /// The receiver of a method call; a literal gets its type suffix (`2.0_f64.ln()`).
    fn receiver(&self, id: Id) -> TokenStream {
        match (self.bound.contains_key(&id), self.graph.value(id)) {
            (false, Some(value)) if value >= 0.0 => float_literal(value, self.float, true).into_token_stream(),
            (false, Some(value)) => {
                let literal = float_literal(-value, self.float, true);
                quote!((-#literal))
            }
            _ => self.expr(id, POSTFIX),
        }
    }

    /// Whether `v` is exactly the input point, `[x[0], x[1], ...]`.
    fn vector_is_input(&self, v: &[Id]) -> bool {
        v.len() == self.input.len() && v.iter().enumerate().all(|(i, &e)| self.graph.nodes[e] == Node::Var(i))
    }
}

/// The operands of a node.
fn children(node: &Node) -> Vec<Id> {
    match node {
        Node::Lit(_) | Node::Var(_) | Node::Const(_) => vec![],
        Node::Neg(a) | Node::Powi(a, _) | Node::Call(_, a) => vec![*a],
        Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Powf(a, b) => vec![*a, *b],
        Node::Quad(_, v) => v.clone(),
    }
}

/// A non-negative float literal in the shortest form that reads back as the same `float`
/// (`2.0`, `0.1`, `1e-7`), with the type suffix if asked (`2.0_f64`, for a method's receiver).
fn float_literal(value: f64, float: Float, suffixed: bool) -> syn::LitFloat {
    let mut text = match float {
        Float::F64 => format!("{value:?}"),
        Float::F32 => format!("{:?}", value as f32),
    };
    if suffixed {
        text.push('_');
        text.push_str(float.name());
    }
    syn::LitFloat::new(&text, Span::call_site())
}

/// Fresh names that avoid the user's identifiers and each other.
struct Namer {
    taken: HashSet<String>,
}

impl Namer {
    fn fresh(&mut self, base: &str) -> Ident {
        let numbered = base == "t";
        let mut candidate = if numbered { "t0".to_string() } else { base.to_string() };
        let mut i = if numbered { 0 } else { 1 };
        while self.taken.contains(&candidate) {
            i += 1;
            candidate = if numbered { format!("t{i}") } else { format!("{base}_{i}") };
        }
        self.taken.insert(candidate.clone());
        Ident::new(&candidate, Span::call_site())
    }
}
