//! Parse: the attribute's argument, the function's signature and its body into the objective's
//! own syntax tree.
//!
//! Parsing is forgiving. The signature must be right to generate anything, so its mistakes are
//! reported here; the body is translated whatever it contains (a construct the objective
//! language lacks becomes [`ExprKind::Unsupported`]), and [`check`](super::check) reports all of
//! its problems at once. Every node keeps its [`Loc`] for those reports.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{BinOp, FnArg, Ident, ItemFn, Lit, Pat, Stmt as SynStmt, Type, UnOp};

use super::errors::{Errors, Loc};

/// A parsed `#[objective] fn`.
pub struct Function {
    /// The function as written; it is emitted unchanged.
    pub item: ItemFn,
    /// The unit struct that implements `Objective`.
    pub struct_name: Ident,
    /// The arguments, as far as they could be understood.
    pub params: Vec<Param>,
    /// The whole input, when the signature is valid.
    pub input: Option<Input>,
    pub lets: Vec<Let>,
    /// Statements that are not `let` bindings, with the message that says so.
    pub others: Vec<(Loc, String)>,
    /// The final expression, the function's value.
    pub tail: Option<Expr>,
}

/// `f64` or `f32`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Float {
    F64,
    F32,
}

impl Float {
    pub fn ident(self) -> Ident {
        Ident::new(self.name(), Span::call_site())
    }
    pub fn name(self) -> &'static str {
        match self {
            Float::F64 => "f64",
            Float::F32 => "f32",
        }
    }
}

/// One argument of the function.
pub enum Param {
    /// `x: f64`
    Scalar(Ident),
    /// `x: [f64; N]`
    Array(Ident, usize),
    /// `[a, b]: [f64; 2]`
    Destructured(Vec<Ident>),
}

/// The function's input: a point of `R^N`.
pub struct Input {
    pub float: Float,
    pub form: Form,
}

/// How the function takes its point.
pub enum Form {
    /// One array argument, `fn f(x: [f64; N])`; element `i` is `x[i]`.
    Array(Ident, usize),
    /// One destructured array argument, `fn f([a, b]: [f64; 2])`.
    Destructured(Vec<Ident>),
    /// `N` scalar arguments, `fn f(a: f64, b: f64)`.
    Scalars(Vec<Ident>),
}

impl Input {
    /// `N`.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Array(_, n) => *n,
            Form::Destructured(names) | Form::Scalars(names) => names.len(),
        }
    }
}

/// `let name = expr;`
pub struct Let {
    pub name: Ident,
    pub expr: Expr,
}

pub struct Expr {
    pub kind: ExprKind,
    pub loc: Loc,
}

pub enum ExprKind {
    /// A float or integer literal; `int` is set for an integer literal.
    Lit {
        value: f64,
        int: Option<i64>,
    },
    /// A name: an argument, a `let`, or (anything else) a `const` item.
    Path(syn::Path),
    Neg(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `base[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `receiver.method(args)`, or `f64::method(receiver, args)`.
    Method {
        receiver: Box<Expr>,
        method: Ident,
        args: Vec<Expr>,
        turbofish: bool,
    },
    /// `quad(args)`.
    Quad(Vec<Expr>),
    /// A call of any other function (an error).
    Call(String),
    /// `&expr`.
    Ref(Box<Expr>),
    /// `[a, b, ...]`.
    Array(Vec<Expr>),
    /// Something the objective language does not have, described for the error message.
    Unsupported(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// Parses the attribute's arguments (empty, or `name = StructName`) and the function.
pub fn parse(args: TokenStream, input: TokenStream, errors: &mut Errors) -> Option<Function> {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.spanned(&input, "#[objective] applies to a function such as `fn f(x: [f64; 2]) -> f64 { ... }`");
            return None;
        }
    };
    let struct_name = struct_name(args, &item.sig.ident, errors);
    let (params, input) = signature(&item, errors);
    let mut lets = Vec::new();
    let mut others = Vec::new();
    let mut tail = None;
    let count = item.block.stmts.len();
    let mut returned = false;
    for (i, stmt) in item.block.stmts.iter().enumerate() {
        match stmt {
            SynStmt::Local(local) => match let_binding(local) {
                Ok(binding) => lets.push(binding),
                Err((loc, message)) => others.push((loc, message.to_string())),
            },
            SynStmt::Expr(e, None) if i + 1 == count => tail = Some(expr(e)),
            SynStmt::Expr(syn::Expr::Return(r), _) => {
                returned = true;
                others.push((Loc::of(r), "`return` is not supported; end the function with its value".into()))
            }
            SynStmt::Expr(e, _) => others.push((Loc::of(e), format!("{STATEMENT}, not this statement"))),
            SynStmt::Item(item) => others.push((
                Loc::of(item),
                "items inside an #[objective] function are not supported; define `const`s outside the function".into(),
            )),
            SynStmt::Macro(m) => others.push((Loc::of(m), format!("{STATEMENT}, not a macro"))),
        }
    }
    if tail.is_none() && !returned {
        let end = item.block.brace_token.span.close();
        errors
            .at(Loc { start: end, end }, "an #[objective] function must end with its value, an expression without `;`");
    }
    Some(Function { item, struct_name, params, input, lets, others, tail })
}

/// `#[objective]` names the struct after the function in CamelCase; `#[objective(name = S)]`
/// chooses `S`.
fn struct_name(args: TokenStream, fn_name: &Ident, errors: &mut Errors) -> Ident {
    let default = Ident::new(&camel_case(&fn_name.to_string()), fn_name.span());
    if args.is_empty() {
        return default;
    }
    let parser = |input: syn::parse::ParseStream| {
        let key: Ident = input.parse()?;
        if key != "name" {
            return Err(syn::Error::new(key.span(), "unknown argument"));
        }
        input.parse::<syn::Token![=]>()?;
        let name: Ident = input.parse()?;
        Ok(name)
    };
    match parser.parse2(args.clone()) {
        Ok(name) => name,
        Err(_) => {
            errors.spanned(
                &args,
                "expected `#[objective]` or `#[objective(name = StructName)]` (the unit struct that \
                 implements `Objective`)",
            );
            default
        }
    }
}

/// `ill_rotated` -> `IllRotated`.
fn camel_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        out.push_str("Objective");
    }
    out
}

const STATEMENT: &str = "the body of an #[objective] function is `let` bindings and a final value";

const SIGNATURE: &str = "#[objective] takes `fn f(x: [f64; N]) -> f64` (N a literal), \
     `fn f([x, y]: [f64; 2]) -> f64` or `fn f(x: f64, y: f64) -> f64`, with f32 in place of f64 \
     throughout if you like";

fn signature(item: &ItemFn, errors: &mut Errors) -> (Vec<Param>, Option<Input>) {
    let sig = &item.sig;
    let mut valid = true;
    let mut reject = |errors: &mut Errors, loc: Loc, what: &str| {
        errors.at(loc, format!("{what} is not supported: {SIGNATURE}"));
        valid = false;
    };
    if let Some(a) = &sig.asyncness {
        reject(errors, Loc::of(a), "an `async fn`");
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        reject(errors, Loc::of(u), "an `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        reject(errors, Loc::of(abi), "an `extern` function");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        reject(errors, Loc::of(&sig.generics), "a generic function");
    }
    if let Some(v) = &sig.variadic {
        reject(errors, Loc::of(v), "a variadic function");
    }
    let mut params = Vec::new();
    let mut floats = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(arg) = arg else {
            reject(errors, Loc::of(arg), "a `self` argument");
            continue;
        };
        let Some((float, len)) = param_type(&arg.ty) else {
            reject(errors, Loc::of(&arg.ty), &format!("the argument type `{}`", tokens_text(&arg.ty)));
            continue;
        };
        floats.push((float, Loc::of(&arg.ty)));
        match (&*arg.pat, len) {
            (Pat::Ident(p), len) if p.by_ref.is_none() && p.subpat.is_none() => params.push(match len {
                Some(n) => Param::Array(p.ident.clone(), n),
                None => Param::Scalar(p.ident.clone()),
            }),
            (Pat::Slice(s), Some(n)) => {
                let names: Vec<Ident> = s
                    .elems
                    .iter()
                    .filter_map(|p| match p {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
                        _ => None,
                    })
                    .collect();
                if names.len() != s.elems.len() {
                    reject(errors, Loc::of(s), "this pattern (name every element: `[x, y]`)");
                } else if names.len() != n {
                    reject(errors, Loc::of(s), &format!("a pattern of {} names for an array of {n}", names.len()));
                } else {
                    params.push(Param::Destructured(names));
                }
            }
            (pat, _) => reject(errors, Loc::of(pat), "this argument pattern"),
        }
    }
    if sig.inputs.is_empty() {
        let paren = sig.paren_token.span.join();
        reject(errors, Loc { start: paren, end: paren }, "a function without arguments");
    }
    match &sig.output {
        syn::ReturnType::Type(_, ty) => match param_type(ty) {
            Some((float, None)) => floats.push((float, Loc::of(ty))),
            _ => reject(errors, Loc::of(ty), &format!("the return type `{}`", tokens_text(ty))),
        },
        syn::ReturnType::Default => {
            let at = sig.paren_token.span.close();
            reject(errors, Loc { start: at, end: at }, "a function without a return type");
        }
    }
    if let Some(&(first, _)) = floats.first() {
        for &(float, loc) in &floats[1..] {
            if float != first {
                errors.at(
                    loc,
                    format!("expected `{}` like the first argument: one function, one float type", first.name()),
                );
                valid = false;
            }
        }
    }
    let arrays = params.iter().filter(|p| !matches!(p, Param::Scalar(_))).count();
    if arrays > 0 && params.len() > 1 {
        errors.at(
            Loc::of(&sig.inputs),
            format!("either one array argument or scalar arguments, not both or several arrays: {SIGNATURE}"),
        );
        valid = false;
    }
    let input = match (valid, floats.first(), params.as_slice()) {
        (true, Some(&(float, _)), [Param::Array(name, n)]) => {
            Some(Input { float, form: Form::Array(name.clone(), *n) })
        }
        (true, Some(&(float, _)), [Param::Destructured(names)]) => {
            Some(Input { float, form: Form::Destructured(names.clone()) })
        }
        (true, Some(&(float, _)), params) if !params.is_empty() => {
            let names = params
                .iter()
                .map(|p| match p {
                    Param::Scalar(name) => name.clone(),
                    _ => unreachable!("arrays were rejected above"),
                })
                .collect();
            Some(Input { float, form: Form::Scalars(names) })
        }
        _ => None,
    };
    (params, input)
}

/// `f64` -> `(F64, None)`; `[f64; 3]` -> `(F64, Some(3))`.
fn param_type(ty: &Type) -> Option<(Float, Option<usize>)> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let float = match p.path.get_ident()?.to_string().as_str() {
                "f64" => Float::F64,
                "f32" => Float::F32,
                _ => return None,
            };
            Some((float, None))
        }
        Type::Array(a) => {
            let (float, None) = param_type(&a.elem)? else { return None };
            match &a.len {
                syn::Expr::Lit(syn::ExprLit { lit: Lit::Int(n), .. }) => {
                    let n = n.base10_parse::<usize>().ok().filter(|&n| n > 0)?;
                    Some((float, Some(n)))
                }
                _ => None,
            }
        }
        Type::Paren(p) => param_type(&p.elem),
        Type::Group(g) => param_type(&g.elem),
        _ => None,
    }
}

fn tokens_text(tokens: &impl quote::ToTokens) -> String {
    tokens.to_token_stream().to_string()
}

fn let_binding(local: &syn::Local) -> Result<Let, (Loc, &'static str)> {
    const ONE_NAME: &str = "only `let name = ...;` is supported: bind one value to one name";
    let pat = match &local.pat {
        Pat::Type(t) => &*t.pat,
        pat => pat,
    };
    let name = match pat {
        Pat::Ident(p) if p.mutability.is_some() => {
            return Err((Loc::of(p), "`let mut` is not supported: an #[objective] function has no assignments"));
        }
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
        pat => return Err((Loc::of(pat), ONE_NAME)),
    };
    let Some(init) = &local.init else {
        return Err((Loc::of(local), "a `let` needs a value: `let name = ...;`"));
    };
    if let Some((else_token, _)) = &init.diverge {
        return Err((Loc::of(else_token), ONE_NAME));
    }
    Ok(Let { name, expr: expr(&init.expr) })
}

/// Translates one expression; anything outside the language becomes `Unsupported`.
pub fn expr(e: &syn::Expr) -> Expr {
    let loc = Loc::of(e);
    let unsupported = |what: &str| ExprKind::Unsupported(what.to_string());
    let kind = match e {
        syn::Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) => match f.base10_parse::<f64>() {
                Ok(value) if value.is_finite() => ExprKind::Lit { value, int: None },
                _ => unsupported("a literal that is not a finite float"),
            },
            Lit::Int(i) => match i.base10_parse::<i64>() {
                Ok(n) => ExprKind::Lit { value: n as f64, int: Some(n) },
                Err(_) => unsupported("this literal"),
            },
            _ => unsupported("a non-numeric literal"),
        },
        syn::Expr::Paren(p) => return expr(&p.expr),
        syn::Expr::Group(g) => return expr(&g.expr),
        syn::Expr::Path(p) if p.qself.is_none() => ExprKind::Path(p.path.clone()),
        syn::Expr::Unary(u) => match u.op {
            UnOp::Neg(_) => ExprKind::Neg(Box::new(expr(&u.expr))),
            UnOp::Not(_) => unsupported("`!`"),
            _ => unsupported("`*` (dereference)"),
        },
        syn::Expr::Binary(b) => {
            let op = match b.op {
                BinOp::Add(_) => Op::Add,
                BinOp::Sub(_) => Op::Sub,
                BinOp::Mul(_) => Op::Mul,
                BinOp::Div(_) => Op::Div,
                op => {
                    let text = tokens_text(&op);
                    return Expr { kind: ExprKind::Unsupported(format!("the operator `{text}`")), loc: Loc::of(&op) };
                }
            };
            ExprKind::Binary(op, Box::new(expr(&b.left)), Box::new(expr(&b.right)))
        }
        syn::Expr::Index(i) => ExprKind::Index(Box::new(expr(&i.expr)), Box::new(expr(&i.index))),
        syn::Expr::MethodCall(m) => ExprKind::Method {
            receiver: Box::new(expr(&m.receiver)),
            method: m.method.clone(),
            args: m.args.iter().map(expr).collect(),
            turbofish: m.turbofish.is_some(),
        },
        syn::Expr::Call(call) => {
            let args: Vec<Expr> = call.args.iter().map(expr).collect();
            let path = match &*call.func {
                syn::Expr::Path(p) if p.qself.is_none() => Some(&p.path),
                _ => None,
            };
            let segments: Vec<String> =
                path.map(|p| p.segments.iter().map(|s| s.ident.to_string()).collect()).unwrap_or_default();
            match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                [.., "quad"] => ExprKind::Quad(args),
                // `f64::sin(a)` is `a.sin()`.
                ["f64" | "f32", _] | ["std" | "core", "f64" | "f32", _] if !args.is_empty() => {
                    let method = path.and_then(|p| p.segments.last()).map(|s| s.ident.clone());
                    let mut args = args.into_iter();
                    ExprKind::Method {
                        receiver: Box::new(args.next().expect("checked non-empty")),
                        method: method.expect("a path has a last segment"),
                        args: args.collect(),
                        turbofish: false,
                    }
                }
                [] => unsupported("a call of a computed function"),
                _ => ExprKind::Call(segments.join("::")),
            }
        }
        syn::Expr::Reference(r) if r.mutability.is_none() => ExprKind::Ref(Box::new(expr(&r.expr))),
        syn::Expr::Array(a) => ExprKind::Array(a.elems.iter().map(expr).collect()),
        syn::Expr::If(_) => unsupported("`if`"),
        syn::Expr::Match(_) => unsupported("`match`"),
        syn::Expr::Cast(_) => unsupported("an `as` cast"),
        syn::Expr::Closure(_) => unsupported("a closure"),
        syn::Expr::Block(_) | syn::Expr::Unsafe(_) => unsupported("a block"),
        syn::Expr::ForLoop(_) | syn::Expr::While(_) | syn::Expr::Loop(_) => unsupported("a loop"),
        syn::Expr::Macro(_) => unsupported("a macro"),
        syn::Expr::Field(_) => unsupported("a field access"),
        syn::Expr::Tuple(_) => unsupported("a tuple"),
        syn::Expr::Assign(_) => unsupported("an assignment"),
        syn::Expr::Range(_) => unsupported("a range"),
        syn::Expr::Return(_) => unsupported("`return`"),
        _ => unsupported("this expression"),
    };
    Expr { kind, loc }
}
