//! Check: resolve every name, infer every value's shape, apply the rules of a well-formed
//! network, and flatten the forward pass into a list of bindings. Every problem is recorded;
//! checking goes on after an error wherever the rest can still be checked.
//!
//! The shape rules, one per layer, are in [`Checker::apply`]: what shape a layer takes, and what
//! it gives.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use syn::Ident;

use super::ast::{self, Act, ExprKind, FieldKind, PoolKind};
use super::errors::Errors;
use super::shape::{conv_out, conv_transpose_out, ConvGeom, PoolGeom, Shape, SizeError};

/// A network that passed every check.
pub struct Checked {
    /// The layers with parameters, in field order.
    pub layers: Vec<Layer>,
    pub loss: Loss,
    /// The shape of one input sample.
    pub input: Shape,
    /// The forward pass, one value per binding, in evaluation order.
    pub bindings: Vec<Binding>,
    pub output: Ref,
}

/// A field with parameters.
pub struct Layer {
    pub field: Ident,
    pub kind: LayerKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerKind {
    /// `y = x W^T + b`, `W` `[outputs, inputs]`.
    Linear { inputs: usize, outputs: usize, bias: bool },
    /// A 2-D convolution, `W` `[outputs, inputs, k, k]`, or its transpose, `W` `[inputs, outputs,
    /// k, k]` (PyTorch's layouts).
    Conv { transposed: bool, inputs: usize, outputs: usize, kernel: usize, bias: bool },
    /// Batch normalisation of `features` rows' features or images' channels.
    BatchNorm { features: usize },
}

impl Layer {
    /// Whether the layer has a bias (its second tensor).
    pub fn has_bias(&self) -> bool {
        match self.kind {
            LayerKind::Linear { bias, .. } | LayerKind::Conv { bias, .. } => bias,
            LayerKind::BatchNorm { .. } => true,
        }
    }

    /// Its number of parameters (weights, bias; batch normalisation's scale and shift), or
    /// `None` when that overflows `usize`.
    pub fn parameters(&self) -> Option<usize> {
        let bias = if self.has_bias() { self.outputs() } else { 0 };
        let weights = match self.kind {
            LayerKind::Linear { inputs, outputs, .. } => inputs.checked_mul(outputs)?,
            LayerKind::Conv { inputs, outputs, kernel, .. } => {
                inputs.checked_mul(outputs)?.checked_mul(kernel)?.checked_mul(kernel)?
            }
            LayerKind::BatchNorm { features } => features,
        };
        weights.checked_add(bias)
    }

    /// The length of its bias (outputs, channels or features).
    pub fn outputs(&self) -> usize {
        match self.kind {
            LayerKind::Linear { outputs, .. } | LayerKind::Conv { outputs, .. } => outputs,
            LayerKind::BatchNorm { features } => features,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    SoftmaxCrossEntropy,
    Mse,
    SumOfSquares,
    BceWithLogits,
    /// No loss of its own: the network is trained from the gradient of its output that the
    /// caller supplies (a generator trained through a discriminator).
    None,
}

impl Loss {
    pub fn from_name(name: &str) -> Option<Loss> {
        Some(match name {
            "softmax_cross_entropy" | "cross_entropy" => Loss::SoftmaxCrossEntropy,
            "mse" | "mse_loss" => Loss::Mse,
            "sum_of_squares" | "sse" => Loss::SumOfSquares,
            "bce_with_logits" => Loss::BceWithLogits,
            "none" => Loss::None,
            _ => return None,
        })
    }
}

/// A value of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ref {
    Input,
    Binding(usize),
}

pub struct Binding {
    /// A readable name: the `let` name, the field name, or the operation's.
    pub name: String,
    /// The field applied, if any (for messages: "from `conv1`").
    pub field: Option<String>,
    pub op: Op,
    pub shape: Shape,
}

pub enum Op {
    Linear {
        layer: usize,
        arg: Ref,
    },
    Conv {
        layer: usize,
        arg: Ref,
        geom: ConvGeom,
    },
    /// Normalises each channel (of `spatial` values per sample: `h * w` for images, 1 for rows).
    BatchNorm {
        layer: usize,
        arg: Ref,
        spatial: usize,
    },
    Pool {
        geom: PoolGeom,
        arg: Ref,
    },
    /// The same values with another shape (`Flatten`, `Reshape`).
    View {
        arg: Ref,
    },
    Act {
        act: Act,
        arg: Ref,
    },
    Add(Ref, Ref),
    Concat(Vec<Ref>),
}

impl Op {
    pub fn args(&self) -> Vec<Ref> {
        match self {
            Op::Linear { arg, .. }
            | Op::Conv { arg, .. }
            | Op::BatchNorm { arg, .. }
            | Op::Pool { arg, .. }
            | Op::View { arg }
            | Op::Act { arg, .. } => vec![*arg],
            Op::Add(a, b) => vec![*a, *b],
            Op::Concat(parts) => parts.clone(),
        }
    }
}

/// What a value is, for messages: "`h` (500 wide)".
struct Described {
    r: Ref,
    shape: Option<Shape>, // None when unknown because of an earlier error
    what: String,
}

/// Where a field is applied: in the chain of fields (after `prev`, the last field that is not an
/// activation, or the input), or called in `forward` on `arg_tokens`.
enum Site<'s> {
    Chain { prev: Option<&'s str> },
    Call { callee: &'s Ident, arg_tokens: &'s TokenStream },
}

struct Checker<'a> {
    errors: &'a mut Errors,
    fields: HashMap<String, (usize, &'a ast::Field)>,
    layer_of_field: HashMap<String, usize>,
    layers: Vec<Layer>,
    used_fields: Vec<bool>,
    bindings: Vec<Binding>,
    input: Option<Shape>,
    input_name: String,
}

/// The most elements of a tensor, of a network's parameters, or of one sample of a value:
/// 2^36 (256 GiB of `f32`). More is a compile error rather than an allocation that fails (or a
/// size that overflows) when the program runs.
pub const MAX_ELEMENTS: usize = 1 << 36;

pub fn check(net: &ast::Network, errors: &mut Errors) -> Option<Checked> {
    let mut layers = Vec::new();
    let mut total_parameters = 0usize;
    let mut layer_of_field = HashMap::new();
    let mut fields = HashMap::new();
    for (i, f) in net.fields.iter().enumerate() {
        fields.insert(f.name.to_string(), (i, f));
        let kind = match &f.kind {
            Some(FieldKind::Linear(l)) => {
                LayerKind::Linear { inputs: l.inputs.value, outputs: l.outputs.value, bias: l.bias }
            }
            Some(FieldKind::Conv(c)) => {
                if c.transposed && c.output_padding.value >= c.stride.value {
                    errors.at(
                        &c.output_padding.token,
                        format!(
                            "the output padding of `{}` ({}) must be smaller than its stride ({}), as in PyTorch",
                            f.name, c.output_padding.value, c.stride.value
                        ),
                    );
                }
                LayerKind::Conv {
                    transposed: c.transposed,
                    inputs: c.inputs.value,
                    outputs: c.outputs.value,
                    kernel: c.kernel.value,
                    bias: c.bias,
                }
            }
            Some(FieldKind::BatchNorm(b)) => LayerKind::BatchNorm { features: b.features.value },
            _ => continue,
        };
        layer_of_field.insert(f.name.to_string(), layers.len());
        let layer = Layer { field: f.name.clone(), kind };
        match layer.parameters() {
            Some(n) if n <= MAX_ELEMENTS => total_parameters = total_parameters.saturating_add(n),
            n => {
                let count =
                    n.map_or("a number of parameters that overflows usize".to_string(), |n| format!("{n} parameters"));
                errors.at(
                    &f.ty,
                    format!(
                        "`{}` would have {count}: more memory than any machine has (hdm takes tensors of at \
                         most 2^36 = {MAX_ELEMENTS} elements)",
                        f.name
                    ),
                );
            }
        }
        layers.push(layer);
    }
    if total_parameters > MAX_ELEMENTS {
        errors.at(
            &net.item.ident,
            format!(
                "network `{}` would have {total_parameters} parameters: more memory than any machine has (hdm takes \
                 at most 2^36 = {MAX_ELEMENTS})",
                net.item.ident
            ),
        );
    }
    let loss = net.loss.as_ref().and_then(|l| {
        let loss = Loss::from_name(&l.to_string());
        if loss.is_none() {
            errors.at(
                l,
                format!(
                    "unknown loss `{l}`{}: expected softmax_cross_entropy (class labels), mse, sum_of_squares, \
                     bce_with_logits, or none (trained from its output's gradient)",
                    super::errors::did_you_mean(
                        &l.to_string(),
                        ["softmax_cross_entropy", "mse", "sum_of_squares", "bce_with_logits", "none"]
                    )
                ),
            );
        }
        loss
    });
    let input_name = net.forward.as_ref().map_or("x".to_string(), |f| f.input.to_string());
    let input = net.input.as_ref().map(|spec| match *spec.dims.as_slice() {
        [c, h, w] => Shape::image(c, h, w).ok_or(()),
        [f] => Ok(Shape::Flat(f)),
        _ => Err(()),
    });
    let input = match input {
        Some(Err(())) => {
            errors.at(&net.input.as_ref().expect("given").tokens, "the input is too large: its size overflows usize");
            return None;
        }
        Some(Ok(s)) if s.width() > MAX_ELEMENTS => {
            errors.at(
                &net.input.as_ref().expect("given").tokens,
                format!(
                    "an input of {} elements per sample: more memory than any machine has (hdm takes at most \
                     2^36 = {MAX_ELEMENTS})",
                    s.width()
                ),
            );
            return None;
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let mut c = Checker {
        errors,
        fields,
        layer_of_field,
        layers,
        used_fields: vec![false; net.fields.len()],
        bindings: Vec::new(),
        input,
        input_name,
    };
    let output = match &net.forward {
        Some(fwd) => c.check_forward(fwd, net),
        None => c.check_chain(net),
    };
    if c.layers.is_empty() && !net.fields.is_empty() && net.fields.iter().all(|f| f.kind.is_some()) {
        c.errors.at(&net.item.ident, format!("network `{}` has no layer with parameters", net.item.ident));
    }
    let output = output?;
    let loss = loss?;
    c.check_loss(net, loss, &output);
    let input = c.input?;
    if !c.errors.is_empty() {
        return None;
    }
    Some(Checked { layers: c.layers, loss, input, bindings: c.bindings, output: output.r })
}

/// "rows of 500 features" or "images [32, 14, 14]".
fn plural(shape: Shape) -> String {
    match shape {
        Shape::Flat(w) => format!("rows of {w} features"),
        Shape::Image { .. } => format!("images {}", shape.dims()),
    }
}

impl<'a> Checker<'a> {
    /// The layer that produced a value, through activations and flattens, unless the value is
    /// named after it.
    fn producer(&self, d: &Described) -> Option<String> {
        let mut r = d.r;
        while let Ref::Binding(i) = r {
            let b = &self.bindings[i];
            match (&b.op, &b.field) {
                (Op::Act { arg, .. }, _) | (Op::View { arg }, None) => r = *arg,
                (_, Some(field)) => {
                    let named_after = d.what == format!("`{field}`") || d.what.starts_with(&format!("`{field}("));
                    return (!named_after).then(|| format!("from `{field}`"));
                }
                (_, None) => break,
            }
        }
        None
    }

    /// "`h` (from `fc1`)".
    fn origin(&self, d: &Described) -> String {
        match self.producer(d) {
            Some(p) => format!("{} ({p})", d.what),
            None => d.what.clone(),
        }
    }

    /// "`h` (16 wide, from `fc1`)" or "`h` ([32, 14, 14], from `conv1`)".
    fn describe(&self, d: &Described) -> String {
        let s = d.shape.map_or("?".into(), |s| s.to_string());
        match self.producer(d) {
            Some(p) => format!("{} ({s}, {p})", d.what),
            None => format!("{} ({s})", d.what),
        }
    }

    /// The value a field is applied to, for messages: "`pool1` before it" in a chain, "`h` (from
    /// `conv1`)" in `forward`.
    fn source(&self, arg: &Described, site: &Site) -> String {
        match site {
            Site::Chain { prev: Some(p) } => format!("`{p}` before it"),
            Site::Chain { prev: None } => "the input".into(),
            Site::Call { .. } => self.origin(arg),
        }
    }

    fn push(&mut self, name: String, field: Option<String>, op: Op, shape: Shape) -> Ref {
        self.bindings.push(Binding { name, field, op, shape });
        Ref::Binding(self.bindings.len() - 1)
    }

    /// What a suggestion to give the input an image shape says.
    fn input_hint(&self, arg: &Described) -> String {
        if arg.r == Ref::Input {
            "give the input's shape in the attribute, `#[network(input = [C, H, W], ...)]`".into()
        } else {
            "make them images with a `Reshape<C, H, W>` field before it".into()
        }
    }

    /// The shape rules: applies field `f` (named `name` in the result) to `arg`. Returns the
    /// result, or `None` when its shape cannot be known (the error is recorded).
    fn apply(&mut self, f: &ast::Field, arg: Described, site: &Site, name: String) -> Option<Described> {
        let field = f.name.to_string();
        let kind = f.kind.as_ref()?;
        let shape = arg.shape?;
        let what = match site {
            Site::Chain { .. } => format!("`{field}`"),
            Site::Call { callee, arg_tokens } => format!("`{callee}({arg_tokens})`"),
        };
        let chain = matches!(site, Site::Chain { .. });
        // Where an error about the value fed to the layer points: the layer's own parameter in a
        // chain, the argument in `forward`.
        let at = |own: &TokenStream| match site {
            Site::Chain { .. } => own.clone(),
            Site::Call { arg_tokens, .. } => (*arg_tokens).clone(),
        };
        let source = self.source(&arg, site);
        let out = |r: Ref, shape: Shape| Some(Described { r, shape: Some(shape), what: what.clone() });
        match kind {
            FieldKind::Act(a) => {
                let r = self.push(name, Some(field), Op::Act { act: *a, arg: arg.r }, shape);
                out(r, shape)
            }
            FieldKind::Linear(l) => {
                let layer = self.layer_of_field[&field];
                let n_in = l.inputs.value;
                match shape {
                    Shape::Flat(w) if w == n_in => {}
                    Shape::Flat(w) => {
                        let msg = match site {
                            Site::Chain { prev: Some(p) } => {
                                format!("shape mismatch: `{field}` takes {n_in} inputs, but `{p}` before it gives {w} outputs")
                            }
                            Site::Chain { prev: None } => {
                                format!("shape mismatch: `{field}` takes {n_in} inputs, but the input is {w} wide")
                            }
                            Site::Call { callee, .. } => format!(
                                "shape mismatch: `{callee}` takes {n_in} inputs, but {} is {w} wide",
                                self.origin(&arg)
                            ),
                        };
                        self.errors.at(at(&l.inputs.token), msg);
                        if !chain {
                            return None;
                        }
                    }
                    Shape::Image { .. } => {
                        let w = shape.width();
                        let gives = if w == n_in { format!("gives {w}") } else { format!("gives {w}, not {n_in}") };
                        let how = if chain {
                            format!("a `Flatten` field before `{field}`")
                        } else {
                            format!("`{field}(flatten(...))`")
                        };
                        self.errors.at(
                            at(&l.inputs.token),
                            format!(
                                "shape mismatch: `{field}` takes rows of {n_in} features, but {source} gives {}: \
                                 flatten them first ({how}), which {gives}",
                                plural(shape)
                            ),
                        );
                        if !chain {
                            return None;
                        }
                    }
                }
                let y = Shape::Flat(l.outputs.value);
                let r = self.push(name, Some(field), Op::Linear { layer, arg: arg.r }, y);
                out(r, y)
            }
            FieldKind::Conv(c) => {
                let layer = self.layer_of_field[&field];
                let ty = c.type_name();
                let Shape::Image { c: ch, h, w } = shape else {
                    let hint = self.input_hint(&arg);
                    self.errors.at(
                        at(&c.inputs.token),
                        format!(
                            "shape mismatch: `{field}` ({ty}) takes images [{}, H, W], but {source} gives {}: {hint}",
                            c.inputs.value,
                            plural(shape)
                        ),
                    );
                    return None;
                };
                if ch != c.inputs.value {
                    self.errors.at(
                        at(&c.inputs.token),
                        format!(
                            "shape mismatch: `{field}` takes {} input channels, but {source} gives {ch} channels ({})",
                            c.inputs.value,
                            shape.dims()
                        ),
                    );
                }
                let (k, s, p, op) = (c.kernel.value, c.stride.value, c.padding.value, c.output_padding.value);
                let (rh, rw) = if c.transposed {
                    (conv_transpose_out(h, k, s, p, op), conv_transpose_out(w, k, s, p, op))
                } else {
                    (conv_out(h, k, s, p), conv_out(w, k, s, p))
                };
                let (oh, ow) = match (rh, rw) {
                    (Ok(oh), Ok(ow)) => (oh, ow),
                    (Err(SizeError::Overflow), _) | (_, Err(SizeError::Overflow)) => {
                        self.errors.at(
                            &f.ty,
                            format!("`{field}` is too large for {source}'s {}: its sizes overflow usize", shape.dims()),
                        );
                        return None;
                    }
                    (Err(SizeError::Below1(v)), _) | (_, Err(SizeError::Below1(v))) => {
                        let n = if rh.is_err() { h } else { w };
                        self.errors.at(
                            &f.ty,
                            format!(
                                "`{field}` would give an output of size {v} from {source}'s {}: \
                                 (in - 1) * STRIDE - 2 * PADDING + K + OUTPUT_PADDING = ({n} - 1) * {s} - 2 * {p} \
                                 + {k} + {op}, less than 1",
                                shape.dims()
                            ),
                        );
                        return None;
                    }
                    (Err(SizeError::KernelTooLarge), _) | (_, Err(SizeError::KernelTooLarge)) => {
                        // No overflow: both padded sizes fit.
                        let (ph, pw) = (h + 2 * p, w + 2 * p);
                        self.errors.at(
                            &c.kernel.token,
                            format!(
                                "`{field}`'s {k}x{k} kernel is larger than its input: {source} gives {} \
                                 ({ph}x{pw} with padding {p})",
                                shape.dims()
                            ),
                        );
                        return None;
                    }
                };
                let geom = ConvGeom {
                    transposed: c.transposed,
                    in_c: c.inputs.value,
                    in_h: h,
                    in_w: w,
                    out_c: c.outputs.value,
                    out_h: oh,
                    out_w: ow,
                    kernel: k,
                    stride: s,
                    padding: p,
                    output_padding: op,
                };
                let Some(y) = Shape::image(geom.out_c, oh, ow) else {
                    self.errors.at(&f.ty, format!("`{field}`'s output, [{}, {oh}, {ow}], is too large", geom.out_c));
                    return None;
                };
                let r = self.push(name, Some(field), Op::Conv { layer, arg: arg.r, geom }, y);
                out(r, y)
            }
            FieldKind::BatchNorm(b) => {
                let layer = self.layer_of_field[&field];
                let n = b.features.value;
                let spatial = match (b.dims, shape) {
                    (1, Shape::Flat(w)) => {
                        if w != n {
                            self.errors.at(
                                at(&b.features.token),
                                format!("shape mismatch: `{field}` normalises {n} features, but {source} gives {w}"),
                            );
                        }
                        1
                    }
                    (1, Shape::Image { c, .. }) => {
                        self.errors.at(
                            at(&b.features.token),
                            format!(
                                "shape mismatch: `{field}` is a BatchNorm1d, for rows of features, but {source} gives \
                                 {}: use `BatchNorm2d<{c}>`",
                                plural(shape)
                            ),
                        );
                        return None;
                    }
                    (_, Shape::Image { c, h, w }) => {
                        if c != n {
                            self.errors.at(
                                at(&b.features.token),
                                format!(
                                    "shape mismatch: `{field}` normalises {n} channels, but {source} gives {c} \
                                     channels ({})",
                                    shape.dims()
                                ),
                            );
                        }
                        h * w
                    }
                    (_, Shape::Flat(w)) => {
                        self.errors.at(
                            at(&b.features.token),
                            format!(
                                "shape mismatch: `{field}` is a BatchNorm2d, for images [C, H, W], but {source} gives \
                                 {}: use `BatchNorm1d<{w}>`",
                                plural(shape)
                            ),
                        );
                        return None;
                    }
                };
                let r = self.push(name, Some(field), Op::BatchNorm { layer, arg: arg.r, spatial }, shape);
                out(r, shape)
            }
            FieldKind::Pool(p) => {
                let ty = p.kind.type_name();
                let Shape::Image { c, h, w } = shape else {
                    let hint = self.input_hint(&arg);
                    self.errors.at(
                        at(&f.ty),
                        format!(
                            "shape mismatch: `{field}` ({ty}) takes images [C, H, W], but {source} gives {}: {hint}",
                            plural(shape)
                        ),
                    );
                    return None;
                };
                let (k, s) = (p.kernel.value, p.stride.value);
                let (Ok(oh), Ok(ow)) = (conv_out(h, k, s, 0), conv_out(w, k, s, 0)) else {
                    self.errors.at(
                        &p.kernel.token,
                        format!("`{field}`'s {k}x{k} window is larger than its input: {source} gives {}", shape.dims()),
                    );
                    return None;
                };
                let geom = PoolGeom {
                    max: p.kind == PoolKind::Max,
                    c,
                    in_h: h,
                    in_w: w,
                    kernel: k,
                    stride: s,
                    out_h: oh,
                    out_w: ow,
                };
                let y = Shape::Image { c, h: oh, w: ow };
                let r = self.push(name, Some(field), Op::Pool { geom, arg: arg.r }, y);
                out(r, y)
            }
            FieldKind::Flatten => {
                let y = Shape::Flat(shape.width());
                let r = self.push(name, Some(field), Op::View { arg: arg.r }, y);
                out(r, y)
            }
            FieldKind::Reshape([c, h, w]) => {
                let Some(y) = Shape::image(c.value, h.value, w.value) else {
                    self.errors.at(&f.ty, format!("`{field}`'s shape is too large: its size overflows usize"));
                    return None;
                };
                if y.width() != shape.width() {
                    self.errors.at(
                        at(&f.ty),
                        format!(
                            "shape mismatch: `{field}` makes images {} of {} values, but {source} gives {}",
                            y.dims(),
                            y.width(),
                            match shape {
                                Shape::Flat(w) => format!("{w} values"),
                                Shape::Image { .. } => format!("{} ({} values)", shape.dims(), shape.width()),
                            }
                        ),
                    );
                    return None;
                }
                let r = self.push(name, Some(field), Op::View { arg: arg.r }, y);
                out(r, y)
            }
        }
    }

    /// The input's shape when no `input = [...]` is given: what the first layer that says takes
    /// (a Linear layer, a BatchNorm1d, a Reshape). `None` for convolutions and pooling, which work
    /// on images of any size.
    fn takes(kind: &FieldKind) -> Option<Option<Shape>> {
        match kind {
            FieldKind::Linear(l) => Some(Some(Shape::Flat(l.inputs.value))),
            FieldKind::BatchNorm(b) if b.dims == 1 => Some(Some(Shape::Flat(b.features.value))),
            FieldKind::Reshape([c, h, w]) => {
                Some(Shape::image(c.value, h.value, w.value).map(|s| Shape::Flat(s.width())))
            }
            FieldKind::Act(_) => None,
            _ => Some(None),
        }
    }

    /// A chain: every field applied in order to the previous one's output.
    fn check_chain(&mut self, net: &'a ast::Network) -> Option<Described> {
        if self.input.is_none() {
            let first = net.fields.iter().find_map(|f| Some((f, Self::takes(f.kind.as_ref()?)?)));
            match first {
                Some((_, Some(shape))) => self.input = Some(shape),
                Some((f, None)) => self.errors.at(
                    &f.ty,
                    format!(
                        "cannot tell the shape of the input images of `{}`: give it in the attribute, \
                         `#[network(input = [C, H, W], ...)]`",
                        f.name
                    ),
                ),
                None => {}
            }
        }
        let mut cur = Described { r: Ref::Input, shape: self.input, what: "the input".into() };
        let mut prev: Option<String> = None;
        for (i, f) in net.fields.iter().enumerate() {
            self.used_fields[i] = true;
            let name = f.name.to_string();
            let next = self.apply(f, cur, &Site::Chain { prev: prev.as_deref() }, name.clone())?;
            if !matches!(f.kind, Some(FieldKind::Act(_))) {
                prev = Some(name);
            }
            cur = next;
        }
        cur.shape?;
        Some(cur)
    }

    /// An explicit forward pass.
    fn check_forward(&mut self, fwd: &'a ast::Forward, net: &'a ast::Network) -> Option<Described> {
        if !uses_input(fwd) {
            self.errors.at(
                &fwd.input,
                format!("the input `{}` is never used: there is no path from the input to the loss", fwd.input),
            );
            return None;
        }
        if self.input.is_none() {
            self.input = self.infer_input(fwd);
        }
        if self.input.is_none() {
            self.errors.at(
                &fwd.input,
                format!(
                    "cannot tell how wide the input `{}` is: apply a Linear layer to it directly, e.g. `fc1({})`, or \
                     give its shape in the attribute, `input = [C, H, W]`",
                    fwd.input, fwd.input
                ),
            );
        }
        // Names defined so far (later definitions shadow earlier ones), and all `let` names.
        // A name whose definition had an error maps to `None`: its uses are not errors again.
        let mut scope: HashMap<String, Option<Described>> = HashMap::new();
        scope.insert(
            fwd.input.to_string(),
            Some(Described { r: Ref::Input, shape: self.input, what: format!("the input `{}`", fwd.input) }),
        );
        let later: HashMap<String, usize> = fwd.lets.iter().enumerate().map(|(i, l)| (l.name.to_string(), i)).collect();
        let mut let_values = Vec::new();
        for (i, l) in fwd.lets.iter().enumerate() {
            let value = self.check_expr(&l.expr, &scope, &later, i, Some(&l.name));
            let value = value.map(|v| {
                if let Ref::Binding(b) = v.r {
                    // Name the binding after the `let`, unless it merely renames another value.
                    if !let_values.iter().any(|&(r, _)| r == v.r) {
                        self.bindings[b].name = l.name.to_string();
                    }
                }
                let_values.push((v.r, &l.name));
                Described { r: v.r, shape: v.shape, what: format!("`{}`", l.name) }
            });
            scope.insert(l.name.to_string(), value);
        }
        let out = self.check_expr(&fwd.output, &scope, &later, fwd.lets.len(), None);
        let out = out?;
        // Reachability from the output.
        let mut live = vec![false; self.bindings.len()];
        let mut stack = vec![out.r];
        while let Some(r) = stack.pop() {
            if let Ref::Binding(i) = r {
                if !live[i] {
                    live[i] = true;
                    stack.extend(self.bindings[i].op.args());
                }
            }
        }
        for (r, name) in &let_values {
            if let Ref::Binding(i) = r {
                if !live[*i] {
                    self.errors.at(name, format!("`{name}` is computed but never reaches the output"));
                }
            }
        }
        for (i, f) in net.fields.iter().enumerate() {
            if !self.used_fields[i] {
                self.errors.at(&f.name, format!("layer `{}` is never used in `forward`", f.name));
            }
        }
        Some(out)
    }

    /// The input's shape: what the layers applied to it directly take.
    fn infer_input(&mut self, fwd: &ast::Forward) -> Option<Shape> {
        fn visit(e: &ast::Expr, input: &Ident, out: &mut Vec<String>) {
            match &e.kind {
                ExprKind::Var(_) => {}
                ExprKind::Call { callee, arg, .. } => {
                    if matches!(&arg.kind, ExprKind::Var(v) if v == input) {
                        out.push(callee.to_string());
                    }
                    visit(arg, input, out);
                }
                ExprKind::Add(a, b) => {
                    visit(a, input, out);
                    visit(b, input, out);
                }
                ExprKind::Concat(parts) => parts.iter().for_each(|p| visit(p, input, out)),
            }
        }
        let mut callees = Vec::new();
        for l in &fwd.lets {
            if l.name == fwd.input {
                break; // shadowed: later uses are not the input
            }
            visit(&l.expr, &fwd.input, &mut callees);
        }
        visit(&fwd.output, &fwd.input, &mut callees);
        callees.iter().find_map(|c| Self::takes(self.fields.get(c)?.1.kind.as_ref()?)?)
    }

    fn check_expr(
        &mut self,
        e: &ast::Expr,
        scope: &HashMap<String, Option<Described>>,
        later: &HashMap<String, usize>,
        position: usize,
        let_name: Option<&Ident>,
    ) -> Option<Described> {
        match &e.kind {
            ExprKind::Var(v) => match scope.get(&v.to_string()) {
                Some(Some(d)) => Some(Described { r: d.r, shape: d.shape, what: d.what.clone() }),
                Some(None) => None,
                None => {
                    match later.get(&v.to_string()) {
                        Some(&i) if i >= position => self.errors.at(v, format!("`{v}` is used before it is defined")),
                        _ => {
                            let mut known: Vec<&String> = scope.keys().collect();
                            known.sort();
                            let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                            self.errors.at(v, format!("unknown value `{v}`; defined here: {}", known.join(", ")))
                        }
                    }
                    None
                }
            },
            ExprKind::Call { callee, arg, slope } => {
                let a = self.check_expr(arg, scope, later, position, None);
                self.check_call(callee, *slope, a, &arg.tokens, let_name)
            }
            ExprKind::Add(l, r) => {
                let a = self.check_expr(l, scope, later, position, None);
                let b = self.check_expr(r, scope, later, position, None);
                let (a, b) = (a?, b?);
                let (sa, sb) = (a.shape?, b.shape?);
                if sa != sb {
                    self.errors.at(
                        &e.tokens,
                        format!("shape mismatch: cannot add {} and {}", self.describe(&a), self.describe(&b)),
                    );
                    return None;
                }
                let name = let_name.map_or("sum".into(), |n| n.to_string());
                let r = self.push(name, None, Op::Add(a.r, b.r), sa);
                Some(Described { r, shape: Some(sa), what: format!("`{}`", e.tokens) })
            }
            ExprKind::Concat(parts) => {
                let parts: Vec<Option<Described>> =
                    parts.iter().map(|p| self.check_expr(p, scope, later, position, None)).collect();
                let parts: Vec<Described> = parts.into_iter().collect::<Option<_>>()?;
                let shapes: Vec<Shape> = parts.iter().map(|p| p.shape).collect::<Option<_>>()?;
                let shape = match shapes[0] {
                    Shape::Flat(_) if shapes.iter().all(|s| matches!(s, Shape::Flat(_))) => {
                        shapes.iter().try_fold(0usize, |sum, s| sum.checked_add(s.width())).map(Shape::Flat)
                    }
                    Shape::Image { h, w, .. }
                        if shapes
                            .iter()
                            .all(|s| matches!(*s, Shape::Image { h: sh, w: sw, .. } if (sh, sw) == (h, w))) =>
                    {
                        let channels = shapes.iter().try_fold(0usize, |sum, s| match s {
                            Shape::Image { c, .. } => sum.checked_add(*c),
                            Shape::Flat(_) => None,
                        });
                        channels.and_then(|c| Shape::image(c, h, w))
                    }
                    _ => {
                        let list: Vec<String> = parts.iter().map(|p| self.describe(p)).collect();
                        let why = if shapes.iter().all(|s| matches!(s, Shape::Image { .. })) {
                            "images are concatenated along their channels, so their heights and widths must agree"
                        } else {
                            "rows are concatenated with rows, images with images (flatten the images first)"
                        };
                        self.errors
                            .at(&e.tokens, format!("shape mismatch: cannot concatenate {}: {why}", list.join(" and ")));
                        return None;
                    }
                };
                let Some(shape) = shape else {
                    self.errors.at(&e.tokens, "the concatenation is too large: its size overflows usize");
                    return None;
                };
                let name = let_name.map_or("cat".into(), |n| n.to_string());
                let r = self.push(name, None, Op::Concat(parts.iter().map(|p| p.r).collect()), shape);
                Some(Described { r, shape: Some(shape), what: format!("`{}`", e.tokens) })
            }
        }
    }

    fn check_call(
        &mut self,
        callee: &Ident,
        slope: Option<f64>,
        arg: Option<Described>,
        arg_tokens: &TokenStream,
        let_name: Option<&Ident>,
    ) -> Option<Described> {
        let key = callee.to_string();
        let field = self.fields.get(&key).map(|&(i, f)| (i, f));
        let builtin = Act::from_fn_name(&key);
        let name = let_name.map_or_else(|| key.clone(), |n| n.to_string());
        match (field, builtin) {
            (Some((i, f)), _) => {
                self.used_fields[i] = true;
                let arg = arg?;
                self.apply(f, arg, &Site::Call { callee, arg_tokens }, name)
            }
            (None, Some(act)) => {
                let act = match (act, slope) {
                    (Act::LeakyRelu(_), Some(s)) => Act::LeakyRelu(s),
                    (a, _) => a,
                };
                let arg = arg?;
                let shape = arg.shape?;
                let r = self.push(name, None, Op::Act { act, arg: arg.r }, shape);
                Some(Described { r, shape: Some(shape), what: format!("`{callee}({})`", arg_tokens) })
            }
            (None, None) if key == "flatten" => {
                let arg = arg?;
                let shape = Shape::Flat(arg.shape?.width());
                let r = self.push(name, None, Op::View { arg: arg.r }, shape);
                Some(Described { r, shape: Some(shape), what: format!("`flatten({})`", arg_tokens) })
            }
            (None, None) => {
                let mut fields: Vec<&String> = self.fields.keys().collect();
                fields.sort();
                let builtin = ["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "gelu", "identity", "concat"];
                let hint =
                    super::errors::did_you_mean(&callee.to_string(), fields.iter().map(|f| f.as_str()).chain(builtin));
                let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                self.errors.at(
                    callee,
                    format!(
                        "unknown layer or activation `{callee}`{hint}: the struct's layers are {}; the built-in \
                         activations are relu, leaky_relu, sigmoid, tanh, softplus, gelu and identity",
                        fields.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn check_loss(&mut self, net: &ast::Network, loss: Loss, out: &Described) {
        let Some(loss_tok) = net.loss.as_ref() else { return };
        let Some(shape) = out.shape else { return };
        let width = shape.width();
        let last_act = match out.r {
            Ref::Binding(i) => match &self.bindings[i].op {
                Op::Act { act, .. } if *act != Act::Identity => Some((self.bindings[i].name.clone(), *act)),
                _ => None,
            },
            Ref::Input => None,
        };
        let out_name = match out.r {
            Ref::Binding(i) => format!("`{}`", self.bindings[i].name),
            Ref::Input => format!("the input `{}`", self.input_name),
        };
        match loss {
            Loss::SoftmaxCrossEntropy if matches!(shape, Shape::Image { .. }) => self.errors.at(
                loss_tok,
                format!(
                    "softmax_cross_entropy takes rows of class scores, but the output {out_name} is an image {}: \
                     flatten it first (`Flatten`, or `flatten(...)` in `forward`), which gives {width} classes",
                    shape.dims()
                ),
            ),
            Loss::SoftmaxCrossEntropy if width < 2 => self.errors.at(
                loss_tok,
                format!(
                    "softmax_cross_entropy needs at least 2 classes, but the output {out_name} has {width} \
                     column; for one binary output use bce_with_logits"
                ),
            ),
            Loss::SoftmaxCrossEntropy | Loss::BceWithLogits => {
                if let Some((name, act)) = last_act {
                    self.errors.at(
                        loss_tok,
                        format!(
                            "`{loss_tok}` takes raw scores (logits), but the network's output `{name}` is the \
                             {} of them; remove that last activation: the loss applies its own",
                            act.name()
                        ),
                    );
                }
            }
            Loss::Mse | Loss::SumOfSquares | Loss::None => {}
        }
    }
}

/// Whether `forward` reads its input anywhere (before a `let` shadows it).
fn uses_input(fwd: &ast::Forward) -> bool {
    fn reads(e: &ast::Expr, input: &Ident) -> bool {
        match &e.kind {
            ExprKind::Var(v) => v == input,
            ExprKind::Call { arg, .. } => reads(arg, input),
            ExprKind::Add(a, b) => reads(a, input) || reads(b, input),
            ExprKind::Concat(parts) => parts.iter().any(|p| reads(p, input)),
        }
    }
    for l in &fwd.lets {
        if reads(&l.expr, &fwd.input) {
            return true;
        }
        if l.name == fwd.input {
            return false;
        }
    }
    reads(&fwd.output, &fwd.input)
}
