//! Lower: the checked body into an expression graph, and the graph itself.
//!
//! The graph is hash-consed: building a node that already exists returns the existing one, so
//! every distinct subexpression exists once, whether the user named it with `let` or repeated it,
//! and whether it came from the body or from differentiation. Children are always built before
//! their parents, so node order is a topological order. Lowering keeps the user's expression
//! exactly as written (no simplification), so the value computed beside the derivatives is the
//! function's own, to the bit.

use std::collections::HashMap;

use proc_macro2::{Delimiter, Group, Literal, TokenStream, TokenTree};
use quote::ToTokens;

use super::ast::{Expr, ExprKind, Form, Function, Input, Op};
use super::check::{int_literal, Name as Resolved, Scope};

pub type Id = usize;

/// The elementary functions, differentiated by the rules in [`diff`](super::diff).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Func {
    Sqrt,
    Exp,
    Ln,
    Sin,
    Cos,
    Tan,
    Sinh,
    Cosh,
    Tanh,
    Abs,
    /// The derivative of `abs`.
    Signum,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sqrt" => Func::Sqrt,
            "exp" => Func::Exp,
            "ln" => Func::Ln,
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            "abs" => Func::Abs,
            _ => return None,
        })
    }

    /// The method's name, as generated code calls it.
    pub fn name(self) -> &'static str {
        match self {
            Func::Sqrt => "sqrt",
            Func::Exp => "exp",
            Func::Ln => "ln",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Abs => "abs",
            Func::Signum => "signum",
        }
    }

    /// The function on a constant, for folding.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Func::Sqrt => x.sqrt(),
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Abs => x.abs(),
            Func::Signum => x.signum(),
        }
    }
}

/// One node: an operation on earlier nodes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Node {
    /// A literal, by its bits (never `-0.0`, never NaN).
    Lit(u64),
    /// Variable `i` of the input point.
    Var(usize),
    /// An opaque constant: entry of [`Graph::consts`].
    Const(usize),
    Neg(Id),
    Add(Id, Id),
    Sub(Id, Id),
    Mul(Id, Id),
    Div(Id, Id),
    Powi(Id, i32),
    Powf(Id, Id),
    Call(Func, Id),
    /// `quad(&A, &[v...])`, `A` an entry of [`Graph::consts`].
    Quad(usize, Vec<Id>),
}

/// A `const` item (or an element of one), kept as the user's tokens.
pub struct Constant {
    pub tokens: TokenStream,
}

/// Where a node came from, for naming it in generated code: `let a` is `(a, [])`, and
/// `∂a/∂x_k` is `(a, [k])`, `∂²a/∂x_k∂x_l` is `(a, [k, l])`.
#[derive(Clone, Debug)]
pub struct Origin {
    pub base: String,
    pub vars: Vec<usize>,
}

#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    index: HashMap<Node, Id>,
    pub consts: Vec<Constant>,
    const_index: HashMap<String, usize>,
    /// Whether each node is free of variables.
    constant: Vec<bool>,
    /// The first origin recorded for a node: user `let`s first, then derivatives of them.
    pub origins: HashMap<Id, Origin>,
}

impl Graph {
    /// The node `node`, built once.
    pub fn node(&mut self, node: Node) -> Id {
        if let Some(&id) = self.index.get(&node) {
            return id;
        }
        let constant = match &node {
            Node::Lit(_) | Node::Const(_) => true,
            Node::Var(_) => false,
            Node::Neg(a) | Node::Powi(a, _) | Node::Call(_, a) => self.constant[*a],
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Powf(a, b) => {
                self.constant[*a] && self.constant[*b]
            }
            Node::Quad(_, v) => v.iter().all(|&e| self.constant[e]),
        };
        let id = self.nodes.len();
        self.nodes.push(node.clone());
        self.constant.push(constant);
        self.index.insert(node, id);
        id
    }

    pub fn lit(&mut self, value: f64) -> Id {
        debug_assert!(value.is_finite());
        // -0.0 and 0.0 are one literal.
        let value = if value == 0.0 { 0.0 } else { value };
        self.node(Node::Lit(value.to_bits()))
    }

    /// The literal value of a node, if it is one.
    pub fn value(&self, id: Id) -> Option<f64> {
        match self.nodes[id] {
            Node::Lit(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    pub fn is_constant(&self, id: Id) -> bool {
        self.constant[id]
    }

    /// The opaque constant written `tokens`.
    pub fn constant_node(&mut self, tokens: TokenStream) -> Id {
        let index = self.constant_index(tokens);
        self.node(Node::Const(index))
    }

    pub fn constant_index(&mut self, tokens: TokenStream) -> usize {
        let key = tokens.to_string();
        if let Some(&i) = self.const_index.get(&key) {
            return i;
        }
        self.consts.push(Constant { tokens });
        self.const_index.insert(key, self.consts.len() - 1);
        self.consts.len() - 1
    }

    /// Element `[i][j]` of the constant matrix `matrix`.
    pub fn matrix_element(&mut self, matrix: usize, i: usize, j: usize) -> Id {
        let mut tokens = self.consts[matrix].tokens.clone();
        tokens.extend([index_group(i), index_group(j)]);
        self.constant_node(tokens)
    }

    fn name(&mut self, id: Id, origin: Origin) {
        if !matches!(self.nodes[id], Node::Lit(_) | Node::Var(_) | Node::Const(_)) {
            self.origins.entry(id).or_insert(origin);
        }
    }

    /// Records that `derivative` is `∂node/∂x_var`, for naming.
    pub fn derived(&mut self, node: Id, var: usize, derivative: Id) {
        if let Some(origin) = self.origins.get(&node) {
            let mut origin = origin.clone();
            origin.vars.push(var);
            self.name(derivative, origin);
        }
    }
}

/// `[i]`.
fn index_group(i: usize) -> TokenTree {
    let lit = TokenStream::from(TokenTree::Literal(Literal::usize_unsuffixed(i)));
    TokenTree::Group(Group::new(Delimiter::Bracket, lit))
}

/// Lowers a checked function: returns the graph and the node of its value.
pub fn lower(f: &Function, input: &Input) -> (Graph, Id) {
    let mut lower = Lower { graph: Graph::default(), scope: Scope::new(&f.params), lets: HashMap::new(), input };
    for binding in &f.lets {
        let id = lower.expr(&binding.expr);
        let name = binding.name.to_string();
        lower.graph.name(id, Origin { base: name.clone(), vars: Vec::new() });
        lower.lets.insert(name, id);
        lower.scope.bind(&binding.name);
    }
    let value = lower.expr(f.tail.as_ref().expect("checked: the function has a value"));
    (lower.graph, value)
}

struct Lower<'a> {
    graph: Graph,
    scope: Scope<'a>,
    lets: HashMap<String, Id>,
    input: &'a Input,
}

impl Lower<'_> {
    fn expr(&mut self, e: &Expr) -> Id {
        match &e.kind {
            ExprKind::Lit { value, .. } => self.graph.lit(*value),
            ExprKind::Path(path) => match self.scope.resolve(path) {
                Resolved::Let => self.lets[&path.get_ident().expect("a let is an identifier").to_string()],
                Resolved::Var(i) => self.graph.node(Node::Var(i)),
                Resolved::Const => self.graph.constant_node(path.to_token_stream()),
                Resolved::Array(_) => unreachable!("checked: the array argument is always indexed"),
            },
            ExprKind::Neg(a) => {
                let a = self.expr(a);
                self.graph.node(Node::Neg(a))
            }
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.expr(a), self.expr(b));
                self.graph.node(match op {
                    Op::Add => Node::Add(a, b),
                    Op::Sub => Node::Sub(a, b),
                    Op::Mul => Node::Mul(a, b),
                    Op::Div => Node::Div(a, b),
                })
            }
            ExprKind::Index(base, index) => {
                let i = int_literal(index).expect("checked: literal index") as usize;
                match &base.kind {
                    ExprKind::Path(path) if matches!(self.scope.resolve(path), Resolved::Array(_)) => {
                        self.graph.node(Node::Var(i))
                    }
                    _ => {
                        let tokens = self.const_tokens(e);
                        self.graph.constant_node(tokens)
                    }
                }
            }
            ExprKind::Method { receiver, method, args, .. } => {
                let a = self.expr(receiver);
                match method.to_string().as_str() {
                    "powi" => {
                        let n = int_literal(&args[0]).expect("checked: integer exponent") as i32;
                        self.graph.node(Node::Powi(a, n))
                    }
                    "powf" => {
                        let b = self.expr(&args[0]);
                        self.graph.node(Node::Powf(a, b))
                    }
                    name => {
                        let func = Func::from_name(name).expect("checked: a known method");
                        self.graph.node(Node::Call(func, a))
                    }
                }
            }
            ExprKind::Quad(args) => {
                let (ExprKind::Ref(matrix), ExprKind::Ref(vector)) = (&args[0].kind, &args[1].kind) else {
                    unreachable!("checked: quad(&A, &x)")
                };
                let tokens = self.const_tokens(matrix);
                let matrix = self.graph.constant_index(tokens);
                let elems = match &vector.kind {
                    ExprKind::Array(elems) => elems.iter().map(|e| self.expr(e)).collect(),
                    _ => (0..self.input.len()).map(|i| self.graph.node(Node::Var(i))).collect(),
                };
                self.graph.node(Node::Quad(matrix, elems))
            }
            ExprKind::Call(_) | ExprKind::Ref(_) | ExprKind::Array(_) | ExprKind::Unsupported(_) => {
                unreachable!("checked: rejected before lowering")
            }
        }
    }

    /// The tokens of a `const` or an element of one: `A`, `A[1][0]`.
    fn const_tokens(&self, e: &Expr) -> TokenStream {
        match &e.kind {
            ExprKind::Path(path) => path.to_token_stream(),
            ExprKind::Index(base, index) => {
                let mut tokens = self.const_tokens(base);
                tokens.extend([index_group(int_literal(index).expect("checked: literal index") as usize)]);
                tokens
            }
            _ => unreachable!("checked: a const path"),
        }
    }
}

/// How generated code writes variable `i`: `x[i]` for an array argument, else its name.
pub fn var_tokens(input: &Input, i: usize) -> TokenStream {
    match &input.form {
        Form::Array(name, _) => {
            let index = index_group(i);
            quote::quote!(#name #index)
        }
        Form::Destructured(names) | Form::Scalars(names) => names[i].to_token_stream(),
    }
}

/// How names of derivatives write variable `i`: `x0` for `x[0]`, else its name.
pub fn var_name(input: &Input, i: usize) -> String {
    match &input.form {
        Form::Array(name, _) => format!("{name}{i}"),
        Form::Destructured(names) | Form::Scalars(names) => names[i].to_string(),
    }
}
