//! Parse: the attribute's arguments and the struct's fields into hdm's own syntax tree.
//!
//! Every node keeps the user's tokens, so later phases can point their errors at them. Parsing
//! is forgiving: a malformed piece is reported and skipped, and the rest is still parsed, so one
//! compilation reports every mistake.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr as SynExpr, GenericArgument, Ident, ItemStruct, Lit, PathArguments, Token, Type};

use super::errors::{did_you_mean, Errors};

/// A parsed `#[network(...)] struct`.
pub struct Network {
    pub item: ItemStruct,
    pub loss: Option<Ident>,
    /// `input = [C, H, W]` (an image) or `input = [F]` / `input = F` (a row of features).
    pub input: Option<InputSpec>,
    pub forward: Option<Forward>,
    pub fields: Vec<Field>,
    /// The attribute's arguments and every field's name and type, as written (tokens, so
    /// spacing and comments do not count): what a checkpoint records as the network's structure.
    pub structure: String,
}

/// The shape of one input sample, as the attribute gives it.
pub struct InputSpec {
    pub dims: Vec<usize>,
    pub tokens: TokenStream,
}

/// One field of the struct.
pub struct Field {
    pub name: Ident,
    pub kind: Option<FieldKind>, // `None` when the type is not understood (already reported)
    /// The type as written, for messages about the layer as a whole.
    pub ty: TokenStream,
    /// The field's attributes and visibility, given back on the generated struct.
    pub attrs: Vec<syn::Attribute>,
    pub vis: syn::Visibility,
}

pub enum FieldKind {
    Linear(LinearSpec),
    Conv(ConvSpec),
    BatchNorm(BatchNormSpec),
    Pool(PoolSpec),
    /// `Flatten`: an image `[C, H, W]` as a row of `C * H * W` features (a view, not a copy).
    Flatten,
    /// `Reshape<C, H, W>`: a value of `C * H * W` elements as an image (a view, not a copy).
    Reshape([Dim; 3]),
    Act(Act),
}

impl FieldKind {
    /// Whether the layer holds tensors (and so allocates when it is made).
    pub fn has_parameters(&self) -> bool {
        matches!(self, FieldKind::Linear(_) | FieldKind::Conv(_) | FieldKind::BatchNorm(_))
    }
}

pub struct LinearSpec {
    pub inputs: Dim,
    pub outputs: Dim,
    pub bias: bool,
}

/// `Conv2d<IN, OUT, K, STRIDE = 1, PADDING = 0>` or `ConvTranspose2d<IN, OUT, K, STRIDE = 1,
/// PADDING = 0, OUTPUT_PADDING = 0>`, either with `NoBias` last for a layer without bias.
pub struct ConvSpec {
    pub transposed: bool,
    pub inputs: Dim,
    pub outputs: Dim,
    pub kernel: Dim,
    pub stride: Dim,
    pub padding: Dim,
    pub output_padding: Dim,
    pub bias: bool,
}

impl ConvSpec {
    /// `Conv2d` or `ConvTranspose2d`.
    pub fn type_name(&self) -> &'static str {
        if self.transposed {
            "ConvTranspose2d"
        } else {
            "Conv2d"
        }
    }
}

/// `BatchNorm1d<F>` (rows of `F` features) or `BatchNorm2d<C>` (images of `C` channels).
pub struct BatchNormSpec {
    /// 1 or 2.
    pub dims: usize,
    pub features: Dim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

impl PoolKind {
    pub fn type_name(self) -> &'static str {
        match self {
            PoolKind::Max => "MaxPool2d",
            PoolKind::Avg => "AvgPool2d",
        }
    }
}

/// `MaxPool2d<K, STRIDE = K>` or `AvgPool2d<K, STRIDE = K>`.
pub struct PoolSpec {
    pub kind: PoolKind,
    pub kernel: Dim,
    pub stride: Dim,
}

/// A layer size, with its literal for error messages.
pub struct Dim {
    pub value: usize,
    pub token: TokenStream,
}

/// The activation functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
    Softplus,
    Gelu,
    Identity,
}

impl Act {
    /// The lowercase name used in `forward` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::LeakyRelu(_) => "leaky_relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
            Act::Softplus => "softplus",
            Act::Gelu => "gelu",
            Act::Identity => "identity",
        }
    }

    /// The activation named by a built-in function of `forward` (`leaky_relu` gets its slope
    /// separately).
    pub fn from_fn_name(name: &str) -> Option<Act> {
        Some(match name {
            "relu" => Act::Relu,
            "leaky_relu" => Act::LeakyRelu(0.01),
            "sigmoid" => Act::Sigmoid,
            "tanh" => Act::Tanh,
            "softplus" => Act::Softplus,
            "gelu" => Act::Gelu,
            "identity" => Act::Identity,
            _ => return None,
        })
    }
}

/// `forward = |x| { let h = ...; output }`.
pub struct Forward {
    pub input: Ident,
    pub lets: Vec<Let>,
    pub output: Expr,
}

pub struct Let {
    pub name: Ident,
    pub expr: Expr,
}

/// An expression of `forward`.
pub struct Expr {
    pub kind: ExprKind,
    pub tokens: TokenStream,
}

pub enum ExprKind {
    /// A name: the input or a `let` binding.
    Var(Ident),
    /// `f(arg)`: a layer field or a built-in activation; `slope` for `leaky_relu(arg, slope)`.
    Call { callee: Ident, arg: Box<Expr>, slope: Option<f64> },
    /// `a + b`.
    Add(Box<Expr>, Box<Expr>),
    /// `concat(a, b, ...)`: rows side by side, or images along their channels.
    Concat(Vec<Expr>),
}

/// Every type a field may have, for suggestions.
const KNOWN_FIELD_TYPES: [&str; 16] = [
    "Linear",
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Reshape",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Gelu",
    "Identity",
];

pub const LAYER_TYPES: &str = "a layer (Linear, Conv2d, ConvTranspose2d, BatchNorm1d, BatchNorm2d, MaxPool2d, \
     AvgPool2d, Flatten, Reshape) or an activation (Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Gelu, Identity)";

/// The attribute's arguments, parsed leniently into this.
struct Args {
    /// The arguments parsed (else their error is reported and the rest is not checked).
    parsed: bool,
    loss: Option<Ident>,
    input: Option<InputSpec>,
    forward: Option<SynExpr>,
}

struct Arg {
    key: Ident,
    value: SynExpr,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let value: SynExpr = input.parse()?;
        Ok(Arg { key, value })
    }
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args { parsed: false, loss: None, input: None, forward: None };
    let parsed = match syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, args) {
        Ok(p) => p,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "{e}: #[network] takes `loss = NAME` and optionally `input = [C, H, W]` and \
                     `forward = |x| {{ ... }}`, e.g. #[network(loss = softmax_cross_entropy)]"
                ),
            ));
            return out;
        }
    };
    out.parsed = true;
    for arg in parsed {
        match arg.key.to_string().as_str() {
            "loss" => {
                if out.loss.is_some() {
                    errors.at(&arg.key, "`loss` is given twice");
                }
                match &arg.value {
                    SynExpr::Path(p) if p.path.get_ident().is_some() => {
                        out.loss = p.path.get_ident().cloned();
                    }
                    other => errors.at(other, "`loss` takes the name of a loss, e.g. `loss = softmax_cross_entropy`"),
                }
            }
            "forward" => {
                if out.forward.is_some() {
                    errors.at(&arg.key, "`forward` is given twice");
                }
                out.forward = Some(arg.value);
            }
            "input" => {
                if out.input.is_some() {
                    errors.at(&arg.key, "`input` is given twice");
                }
                out.input = parse_input(&arg.value, errors);
            }
            _ => errors.at(
                &arg.key,
                format!(
                    "unknown #[network] argument `{}`{}: expected `loss = ...`, `input = [C, H, W]` or `forward = |x| ...`",
                    arg.key,
                    did_you_mean(&arg.key.to_string(), ["loss", "input", "forward"])
                ),
            ),
        }
    }
    out
}

const INPUT_SYNTAX: &str = "`input` is the shape of one sample: `input = [C, H, W]` for images (channels, height, \
     width), `input = [F]` or `input = F` for rows of F features";

/// `input = [1, 28, 28]`, `input = [784]` or `input = 784`.
fn parse_input(value: &SynExpr, errors: &mut Errors) -> Option<InputSpec> {
    let elems: Vec<&SynExpr> = match value {
        SynExpr::Array(a) => a.elems.iter().collect(),
        SynExpr::Lit(_) => vec![value],
        other => {
            errors.at(other, INPUT_SYNTAX);
            return None;
        }
    };
    if elems.len() != 1 && elems.len() != 3 {
        errors.at(value, format!("{INPUT_SYNTAX}; this has {} dimensions", elems.len()));
        return None;
    }
    let mut dims = Vec::new();
    for e in elems {
        match e {
            SynExpr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<usize>() {
                Ok(0) => errors.at(e, "every size of `input` must be positive"),
                Ok(v) => dims.push(v),
                Err(err) => errors.at(e, err),
            },
            other => errors.at(other, format!("{INPUT_SYNTAX}: each size must be an integer literal")),
        }
    }
    (dims.len() == 1 || dims.len() == 3).then(|| InputSpec { dims, tokens: value.to_token_stream() })
}

/// Parses the attribute and the struct. Returns `None` only when the item is not a struct at
/// all (nothing sensible can be emitted for it).
pub fn parse(args: TokenStream, input: TokenStream, errors: &mut Errors) -> Option<Network> {
    let item: ItemStruct = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => {
            errors.push(syn::Error::new(e.span(), "#[network] applies to a struct with named fields"));
            return None;
        }
    };
    let args_text = args.to_string();
    let args = parse_args(args, errors);
    if args.loss.is_none() && args.parsed {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[network] needs a loss: `#[network(loss = softmax_cross_entropy)]` (or mse, \
             sum_of_squares, bce_with_logits; `loss = none` for a network trained from its output's gradient)",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        let at = if item.generics.params.is_empty() {
            item.generics.where_clause.to_token_stream()
        } else {
            item.generics.to_token_stream()
        };
        errors
            .at(at, "a #[network] struct takes no generic parameters: hdm adds the element type `T` (f32 by default)");
    }
    let mut fields = Vec::new();
    match &item.fields {
        syn::Fields::Named(named) => {
            let mut seen = std::collections::HashSet::new();
            for f in &named.named {
                let name = f.ident.clone().expect("named field");
                if !seen.insert(name.to_string()) {
                    errors.at(&name, format!("field `{name}` is declared twice: each layer needs a name of its own"));
                    continue;
                }
                let kind = parse_field_type(&f.ty, errors);
                fields.push(Field {
                    name,
                    kind,
                    ty: f.ty.to_token_stream(),
                    attrs: f.attrs.clone(),
                    vis: f.vis.clone(),
                });
            }
            if named.named.is_empty() {
                errors.at(&item.ident, format!("network `{}` has no layers", item.ident));
            }
        }
        _ => errors.at(&item.ident, "#[network] applies to a struct with named fields, one per layer"),
    }
    let forward = args.forward.and_then(|f| parse_forward(f, errors));
    // Token spacing ("Linear < 6, 8 >") tidied for messages: `Linear<6, 8>`.
    let tidy = |t: String| t.replace(" <", "<").replace("< ", "<").replace(" >", ">");
    let layers: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.name, tidy(f.ty.to_string()))).collect();
    let structure = format!("#[network({args_text})] {{ {} }}", layers.join(", "));
    Some(Network { item, loss: args.loss, input: args.input, forward, fields, structure })
}

fn parse_field_type(ty: &Type, errors: &mut Errors) -> Option<FieldKind> {
    let Type::Path(tp) = ty else {
        errors.at(ty, format!("unknown layer type: a #[network] field is {LAYER_TYPES}"));
        return None;
    };
    let seg = tp.path.segments.last()?;
    let name = seg.ident.to_string();
    let args: Vec<&GenericArgument> = match &seg.arguments {
        PathArguments::None => vec![],
        PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        PathArguments::Parenthesized(p) => {
            errors.at(p, format!("unexpected parentheses: a #[network] field is {LAYER_TYPES}"));
            return None;
        }
    };
    let simple = |act: Act, errors: &mut Errors| {
        if !args.is_empty() {
            errors.at(&seg.arguments, format!("`{name}` takes no parameters"));
            return None;
        }
        Some(FieldKind::Act(act))
    };
    match name.as_str() {
        "Linear" => parse_linear(seg, &args, errors).map(FieldKind::Linear),
        "Conv2d" => parse_conv(ty, seg, &args, false, errors).map(FieldKind::Conv),
        "ConvTranspose2d" => parse_conv(ty, seg, &args, true, errors).map(FieldKind::Conv),
        "BatchNorm1d" | "BatchNorm2d" => {
            let dims = if name == "BatchNorm1d" { 1 } else { 2 };
            let what = if dims == 1 { "number of features" } else { "number of channels" };
            match args.as_slice() {
                [a] => parse_size(a, &name, what, 1, errors)
                    .map(|features| FieldKind::BatchNorm(BatchNormSpec { dims, features })),
                _ => {
                    errors.at(seg, format!("`{name}` takes one parameter, its {what}: `{name}<64>`"));
                    None
                }
            }
        }
        "MaxPool2d" | "AvgPool2d" => {
            let kind = if name == "MaxPool2d" { PoolKind::Max } else { PoolKind::Avg };
            match args.as_slice() {
                [k] | [k, _] => {
                    let kernel = parse_size(k, &name, "kernel size", 1, errors);
                    let stride = match args.get(1) {
                        Some(s) => parse_size(s, &name, "stride", 1, errors),
                        None => kernel.as_ref().map(|k| Dim { value: k.value, token: k.token.clone() }),
                    };
                    Some(FieldKind::Pool(PoolSpec { kind, kernel: kernel?, stride: stride? }))
                }
                _ => {
                    errors.at(
                        seg,
                        format!("`{name}` takes its kernel size and optionally its stride (the kernel size by default): `{name}<2>`"),
                    );
                    None
                }
            }
        }
        "Flatten" => {
            if !args.is_empty() {
                errors.at(
                    &seg.arguments,
                    "`Flatten` takes no parameters: it makes an image `[C, H, W]` a row of C * H * W",
                );
                return None;
            }
            Some(FieldKind::Flatten)
        }
        "Reshape" => match args.as_slice() {
            [c, h, w] => {
                let c = parse_size(c, "Reshape", "number of channels", 1, errors);
                let h = parse_size(h, "Reshape", "height", 1, errors);
                let w = parse_size(w, "Reshape", "width", 1, errors);
                Some(FieldKind::Reshape([c?, h?, w?]))
            }
            _ => {
                errors.at(
                    seg,
                    "`Reshape` takes the image shape it gives, channels, height and width: `Reshape<256, 5, 5>`",
                );
                None
            }
        },
        "Relu" => simple(Act::Relu, errors),
        "Sigmoid" => simple(Act::Sigmoid, errors),
        "Tanh" => simple(Act::Tanh, errors),
        "Softplus" => simple(Act::Softplus, errors),
        "Gelu" => simple(Act::Gelu, errors),
        "Identity" => simple(Act::Identity, errors),
        "LeakyRelu" => match args.as_slice() {
            [] => Some(FieldKind::Act(Act::LeakyRelu(0.01))),
            [GenericArgument::Const(e)] => parse_slope(e, errors).map(|s| FieldKind::Act(Act::LeakyRelu(s))),
            _ => {
                errors.at(&seg.arguments, "`LeakyRelu` takes one parameter, its slope: `LeakyRelu<0.01>`");
                None
            }
        },
        _ => {
            let hint = did_you_mean(&name, KNOWN_FIELD_TYPES);
            errors.at(&seg.ident, format!("unknown layer `{name}`{hint}: a #[network] field is {LAYER_TYPES}"));
            None
        }
    }
}

fn parse_linear(seg: &syn::PathSegment, args: &[&GenericArgument], errors: &mut Errors) -> Option<LinearSpec> {
    if args.len() != 2 && args.len() != 3 {
        errors.at(
            seg,
            "`Linear` takes its input and output sizes as integer literals: `Linear<784, 500>` \
             (and `NoBias` as a third parameter for a layer without bias)",
        );
        return None;
    }
    let inputs = parse_dim(args[0], "input", errors);
    let outputs = parse_dim(args[1], "output", errors);
    let bias = match args.get(2) {
        None => true,
        Some(GenericArgument::Type(Type::Path(p))) if p.path.is_ident("NoBias") => false,
        Some(GenericArgument::Type(Type::Path(p))) if p.path.is_ident("Bias") => true,
        Some(other) => {
            errors.at(other, "the third parameter of `Linear` is `NoBias` (or `Bias`, the default)");
            true
        }
    };
    Some(LinearSpec { inputs: inputs?, outputs: outputs?, bias })
}

/// `Conv2d<IN, OUT, K, STRIDE = 1, PADDING = 0, [NoBias]>` or
/// `ConvTranspose2d<IN, OUT, K, STRIDE = 1, PADDING = 0, OUTPUT_PADDING = 0, [NoBias]>`.
fn parse_conv(
    ty: &Type,
    seg: &syn::PathSegment,
    args: &[&GenericArgument],
    transposed: bool,
    errors: &mut Errors,
) -> Option<ConvSpec> {
    let name = if transposed { "ConvTranspose2d" } else { "Conv2d" };
    let syntax = if transposed {
        "`ConvTranspose2d` takes its input and output channels and its kernel size, then optionally its stride, \
         padding and output padding (1, 0 and 0 by default), as integer literals, and `NoBias` last for a layer \
         without bias: `ConvTranspose2d<128, 64, 4, 2, 1>`"
    } else {
        "`Conv2d` takes its input and output channels and its kernel size, then optionally its stride and padding \
         (1 and 0 by default), as integer literals, and `NoBias` last for a layer without bias: `Conv2d<1, 32, 5>`, \
         `Conv2d<32, 64, 5, 1, 2>`"
    };
    let (sizes, bias) = match args.split_last() {
        Some((GenericArgument::Type(Type::Path(p)), rest)) if p.path.is_ident("NoBias") => (rest, false),
        Some((GenericArgument::Type(Type::Path(p)), rest)) if p.path.is_ident("Bias") => (rest, true),
        _ => (args, true),
    };
    let most = if transposed { 6 } else { 5 };
    if sizes.len() < 3 || sizes.len() > most {
        errors.at(seg, syntax);
        return None;
    }
    let dim = |i: usize, what: &str, min: usize, default: usize, errors: &mut Errors| match sizes.get(i) {
        Some(a) => parse_size(a, name, what, min, errors),
        None => Some(Dim { value: default, token: ty.to_token_stream() }),
    };
    let inputs = dim(0, "number of input channels", 1, 0, errors);
    let outputs = dim(1, "number of output channels", 1, 0, errors);
    let kernel = dim(2, "kernel size", 1, 0, errors);
    let stride = dim(3, "stride", 1, 1, errors);
    let padding = dim(4, "padding", 0, 0, errors);
    let output_padding = dim(5, "output padding", 0, 0, errors);
    Some(ConvSpec {
        transposed,
        inputs: inputs?,
        outputs: outputs?,
        kernel: kernel?,
        stride: stride?,
        padding: padding?,
        output_padding: output_padding?,
        bias,
    })
}

/// A size parameter of layer `layer`: an integer literal of at least `min`.
fn parse_size(arg: &GenericArgument, layer: &str, what: &str, min: usize, errors: &mut Errors) -> Option<Dim> {
    match int_literal(arg) {
        Some(Lit::Int(i)) => match i.base10_parse::<usize>() {
            Ok(v) if v < min => {
                let bound = if min == 1 { "positive".to_string() } else { format!("at least {min}") };
                errors.at(arg, format!("the {what} of `{layer}` must be {bound}"));
                None
            }
            Ok(v) => Some(Dim { value: v, token: arg.to_token_stream() }),
            Err(e) => {
                errors.at(arg, e);
                None
            }
        },
        _ => {
            errors.at(
                arg,
                format!(
                    "the {what} of `{layer}` must be an integer literal, so that hdm can check shapes while compiling"
                ),
            );
            None
        }
    }
}

/// The literal of a const generic argument, `5` or `{ 5 }`.
fn int_literal(arg: &GenericArgument) -> Option<&Lit> {
    match arg {
        GenericArgument::Const(SynExpr::Lit(l)) => Some(&l.lit),
        GenericArgument::Const(SynExpr::Block(b)) => match b.block.stmts.as_slice() {
            [syn::Stmt::Expr(SynExpr::Lit(l), None)] => Some(&l.lit),
            _ => None,
        },
        _ => None,
    }
}

/// A size of `Linear`: [`parse_size`], keeping the wording Linear's zero-size error has always had.
fn parse_dim(arg: &GenericArgument, which: &str, errors: &mut Errors) -> Option<Dim> {
    if matches!(int_literal(arg), Some(Lit::Int(i)) if i.base10_parse::<usize>().ok() == Some(0)) {
        errors.at(arg, format!("the {which} size of a Linear layer must be positive"));
        return None;
    }
    parse_size(arg, "Linear", &format!("{which} size"), 1, errors)
}

fn parse_slope(e: &SynExpr, errors: &mut Errors) -> Option<f64> {
    let (neg, inner) = match e {
        SynExpr::Block(b) => match b.block.stmts.as_slice() {
            [syn::Stmt::Expr(SynExpr::Unary(u), None)] if matches!(u.op, syn::UnOp::Neg(_)) => (true, &*u.expr),
            [syn::Stmt::Expr(inner, None)] => (false, inner),
            _ => (false, e),
        },
        _ => (false, e),
    };
    let value = match inner {
        SynExpr::Lit(l) => match &l.lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        _ => None,
    };
    match value {
        Some(v) if !neg && v.is_finite() => Some(v),
        Some(_) => {
            errors.at(e, "the slope of a leaky ReLU must be zero or positive");
            None
        }
        None => {
            errors.at(e, "the slope of a leaky ReLU must be a number literal, e.g. `LeakyRelu<0.01>`");
            None
        }
    }
}

const FORWARD_SYNTAX: &str = "`forward` is a closure of the input, `|x| { let h = relu(fc1(x)); fc2(h) }`";

fn parse_forward(f: SynExpr, errors: &mut Errors) -> Option<Forward> {
    let SynExpr::Closure(c) = f else {
        errors.at(&f, FORWARD_SYNTAX);
        return None;
    };
    let input = match (c.inputs.len(), c.inputs.first()) {
        (1, Some(syn::Pat::Ident(p))) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
        _ => {
            errors.at(&c.inputs, format!("{FORWARD_SYNTAX}: it takes exactly one input, a plain name"));
            None
        }
    };
    let (stmts, tail): (Vec<syn::Stmt>, Option<SynExpr>) = match *c.body {
        SynExpr::Block(b) => {
            let block_tokens = b.block.to_token_stream();
            let mut stmts = b.block.stmts;
            let tail = match stmts.pop() {
                Some(syn::Stmt::Expr(e, None)) => Some(e),
                Some(other) => {
                    stmts.push(other);
                    None
                }
                None => None,
            };
            if tail.is_none() {
                errors.at(block_tokens, "`forward` must end with the network's output, an expression without `;`");
            }
            (stmts, tail)
        }
        other => (vec![], Some(other)),
    };
    let mut lets = Vec::new();
    for stmt in stmts {
        match stmt {
            syn::Stmt::Local(local) => {
                let name = match &local.pat {
                    syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.clone()),
                    syn::Pat::Type(t) => match &*t.pat {
                        syn::Pat::Ident(p) => Some(p.ident.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(name) = name else {
                    errors.at(&local.pat, "a `let` of `forward` binds one plain name");
                    continue;
                };
                let Some(init) = local.init else {
                    errors.at(&local, format!("`let {name}` needs a value"));
                    continue;
                };
                if let Some(expr) = parse_expr(&init.expr, errors) {
                    lets.push(Let { name, expr });
                }
            }
            other => errors.at(&other, "`forward` holds only `let` bindings and, last, the output expression"),
        }
    }
    let output = parse_expr(&tail?, errors)?;
    Some(Forward { input: input?, lets, output })
}

const EXPR_SYNTAX: &str = "`forward` supports names, calls of the struct's layers (`fc1(h)`), the activations \
     relu, leaky_relu(h, slope), sigmoid, tanh, softplus, gelu and identity, `flatten(h)`, `a + b` and \
     `concat(a, b, ...)`";

fn parse_expr(e: &SynExpr, errors: &mut Errors) -> Option<Expr> {
    let tokens = e.to_token_stream();
    let kind = match e {
        SynExpr::Paren(p) => return parse_expr(&p.expr, errors),
        SynExpr::Path(p) if p.path.get_ident().is_some() => ExprKind::Var(p.path.get_ident().cloned()?),
        SynExpr::Binary(b) if matches!(b.op, syn::BinOp::Add(_)) => {
            let l = parse_expr(&b.left, errors);
            let r = parse_expr(&b.right, errors);
            ExprKind::Add(Box::new(l?), Box::new(r?))
        }
        SynExpr::Call(call) => {
            let callee = match &*call.func {
                SynExpr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned()?,
                other => {
                    errors.at(other, format!("unsupported call: {EXPR_SYNTAX}"));
                    return None;
                }
            };
            let args: Vec<&SynExpr> = call.args.iter().collect();
            if callee == "concat" {
                if args.len() < 2 {
                    errors.at(&call.args, "`concat` takes two or more values");
                }
                let parts: Vec<Option<Expr>> = args.iter().map(|a| parse_expr(a, errors)).collect();
                ExprKind::Concat(parts.into_iter().collect::<Option<Vec<_>>>()?)
            } else if callee == "leaky_relu" {
                let [arg, slope] = args.as_slice() else {
                    errors.at(call, "`leaky_relu` takes a value and its slope: `leaky_relu(h, 0.01)`");
                    return None;
                };
                let slope = parse_slope(slope, errors);
                let arg = parse_expr(arg, errors);
                ExprKind::Call { callee, arg: Box::new(arg?), slope: Some(slope?) }
            } else {
                let [arg] = args.as_slice() else {
                    if args.is_empty() {
                        errors.at(call, format!("`{callee}` takes one value: `{callee}(x)`"));
                    } else {
                        errors.at(&call.args, format!("`{callee}` takes one value"));
                    }
                    return None;
                };
                ExprKind::Call { callee, arg: Box::new(parse_expr(arg, errors)?), slope: None }
            }
        }
        other => {
            errors.at(other, format!("unsupported expression: {EXPR_SYNTAX}"));
            return None;
        }
    };
    Some(Expr { kind, tokens })
}
