//! Check: everything the body may not do, all reported in one compilation, each at its tokens.
//!
//! Also the name resolution that lowering shares: a single identifier is a `let` binding (the
//! latest one), else an argument; anything else (`C`, `std::f64::consts::PI`) is a `const` the
//! macro cannot see into and keeps as an opaque constant.

use super::ast::{Expr, ExprKind, Function, Param};
use super::errors::{Errors, SUPPORTED};

/// What a name refers to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Name {
    /// Variable `i` of the input point (a scalar argument or a destructured element).
    Var(usize),
    /// The array argument, of length `n`.
    Array(usize),
    /// A `let` binding.
    Let,
    /// A `const` item (or any other path): opaque.
    Const,
}

/// The names in scope at a point of the body.
pub struct Scope<'a> {
    params: &'a [Param],
    lets: Vec<String>,
}

impl<'a> Scope<'a> {
    pub fn new(params: &'a [Param]) -> Self {
        Scope { params, lets: Vec::new() }
    }

    pub fn bind(&mut self, name: &syn::Ident) {
        self.lets.push(name.to_string());
    }

    pub fn resolve(&self, path: &syn::Path) -> Name {
        let Some(ident) = path.get_ident() else { return Name::Const };
        let name = ident.to_string();
        if self.lets.contains(&name) {
            return Name::Let;
        }
        let mut var = 0;
        for param in self.params {
            match param {
                Param::Scalar(p) if *p == name => return Name::Var(var),
                Param::Array(p, n) if *p == name => return Name::Array(*n),
                Param::Destructured(names) => {
                    if let Some(i) = names.iter().position(|p| *p == name) {
                        return Name::Var(var + i);
                    }
                    var += names.len();
                    continue;
                }
                _ => {}
            }
            var += 1;
        }
        Name::Const
    }
}

/// The methods the differentiator knows, with their number of arguments.
pub const METHODS: &[(&str, usize)] = &[
    ("powi", 1),
    ("powf", 1),
    ("sqrt", 0),
    ("exp", 0),
    ("ln", 0),
    ("sin", 0),
    ("cos", 0),
    ("tan", 0),
    ("sinh", 0),
    ("cosh", 0),
    ("tanh", 0),
    ("abs", 0),
];

/// Reports every problem of `f`'s body.
pub fn check(f: &Function, errors: &mut Errors) {
    for (loc, message) in &f.others {
        errors.at(*loc, message);
    }
    let mut checker = Checker { scope: Scope::new(&f.params), errors };
    for binding in &f.lets {
        checker.scalar(&binding.expr);
        checker.scope.bind(&binding.name);
    }
    if let Some(tail) = &f.tail {
        checker.scalar(tail);
    }
}

struct Checker<'a, 'e> {
    scope: Scope<'a>,
    errors: &'e mut Errors,
}

/// The integer of `e` if it is an integer literal, possibly negated.
pub fn int_literal(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Lit { int: Some(n), .. } => Some(*n),
        ExprKind::Neg(inner) => int_literal(inner).map(|n| -n),
        _ => None,
    }
}

impl Checker<'_, '_> {
    /// `e` must be a scalar expression.
    fn scalar(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Lit { .. } => {}
            ExprKind::Path(path) => {
                if let Name::Array(n) = self.scope.resolve(path) {
                    let name = quote::quote!(#path).to_string();
                    self.errors.at(
                        e.loc,
                        format!(
                            "`{name}` is the array argument (`[_; {n}]`); use one element such as `{name}[0]`, \
                             or `quad(&A, &{name})` for a quadratic form"
                        ),
                    );
                }
            }
            ExprKind::Neg(a) => self.scalar(a),
            ExprKind::Binary(_, a, b) => {
                self.scalar(a);
                self.scalar(b);
            }
            ExprKind::Index(base, index) => self.index(base, index),
            ExprKind::Method { receiver, method, args, turbofish } => {
                self.scalar(receiver);
                let name = method.to_string();
                let Some(&(_, arity)) = METHODS.iter().find(|(m, _)| *m == name) else {
                    self.errors.spanned(
                        method,
                        format!(
                            "#[objective] cannot differentiate the method `{name}`; it knows powi, powf, sqrt, \
                             exp, ln, sin, cos, tan, sinh, cosh, tanh and abs"
                        ),
                    );
                    return;
                };
                if *turbofish {
                    self.errors.spanned(method, format!("`{name}` takes no generic arguments"));
                }
                if args.len() != arity {
                    let expected = if arity == 0 { "no arguments".to_string() } else { format!("{arity} argument") };
                    self.errors.at(e.loc, format!("`{name}` takes {expected}, got {}", args.len()));
                    return;
                }
                if name == "powi" {
                    match int_literal(&args[0]) {
                        Some(n) if i32::try_from(n).is_ok() => {}
                        _ => self.errors.at(
                            args[0].loc,
                            "the exponent of `powi` must be an integer literal such as `2` or `-1`; use \
                             `powf` for any other exponent",
                        ),
                    }
                } else {
                    for arg in args {
                        self.scalar(arg);
                    }
                }
            }
            ExprKind::Quad(args) => self.quad(e, args),
            ExprKind::Call(name) => self.errors.at(e.loc, format!("a call of `{name}` is not supported; {SUPPORTED}")),
            ExprKind::Ref(_) => self.errors.at(e.loc, "`&` belongs only in the arguments of `quad(&A, &x)`"),
            ExprKind::Array(_) => self.errors.at(
                e.loc,
                "an array belongs only in the second argument of `quad(&A, &[...])`; the value must be a scalar",
            ),
            ExprKind::Unsupported(what) => self.errors.at(e.loc, format!("{what} is not supported; {SUPPORTED}")),
        }
    }

    /// `base[index]`: an element of the array argument, or of a `const` array.
    fn index(&mut self, base: &Expr, index: &Expr) {
        let i = match &index.kind {
            ExprKind::Lit { int: Some(i), .. } if *i >= 0 => Some(*i as usize),
            _ => {
                self.errors.at(
                    index.loc,
                    "index with an integer literal such as `x[0]`: #[objective] differentiates each element \
                     separately",
                );
                None
            }
        };
        match &base.kind {
            ExprKind::Path(path) => match self.scope.resolve(path) {
                Name::Array(n) => {
                    if let Some(i) = i.filter(|&i| i >= n) {
                        let name = quote::quote!(#path).to_string();
                        self.errors.at(
                            index.loc,
                            format!("index {i} is out of range: `{name}` has {n} elements (0 to {})", n - 1),
                        );
                    }
                }
                Name::Const => {}
                Name::Var(_) | Name::Let => {
                    let name = quote::quote!(#path).to_string();
                    self.errors.at(base.loc, format!("`{name}` is a scalar; it cannot be indexed"));
                }
            },
            _ if self.is_const(base) => {}
            _ => self
                .errors
                .at(base.loc, "only the array argument and `const` arrays can be indexed (with integer literals)"),
        }
    }

    /// Whether `e` is a `const` item or an element of one (`A`, `A[1]`).
    fn is_const(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Path(path) => self.scope.resolve(path) == Name::Const,
            ExprKind::Index(base, index) => {
                matches!(index.kind, ExprKind::Lit { int: Some(i), .. } if i >= 0) && self.is_const(base)
            }
            _ => false,
        }
    }

    /// `quad(&A, &x)` or `quad(&A, &[e0, e1, ...])`.
    fn quad(&mut self, e: &Expr, args: &[Expr]) {
        let [matrix, vector] = args else {
            self.errors.at(e.loc, format!("`quad` takes two arguments, `quad(&A, &x)`, got {}", args.len()));
            return;
        };
        match &matrix.kind {
            ExprKind::Ref(inner) if self.is_const(inner) => {}
            _ => self
                .errors
                .at(matrix.loc, "the first argument of `quad` must be a reference to a `const` matrix, such as `&A`"),
        }
        let vector_ok = match &vector.kind {
            ExprKind::Ref(inner) => match &inner.kind {
                ExprKind::Path(path) => matches!(self.scope.resolve(path), Name::Array(_)),
                ExprKind::Array(elems) if !elems.is_empty() => {
                    for elem in elems {
                        self.scalar(elem);
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !vector_ok {
            self.errors.at(
                vector.loc,
                "the second argument of `quad` must be the array argument, `&x`, or an array of \
                 expressions, `&[a, b]`",
            );
        }
    }
}
