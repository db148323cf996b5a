//! Check: resolve every name, infer every width, apply the rules of a well-formed network, and
//! flatten the forward pass into a list of bindings. Every problem is recorded; checking goes on
//! after an error wherever the rest can still be checked.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use syn::Ident;

use super::ast::{self, Act, ExprKind, FieldKind};
use super::errors::Errors;

/// A network that passed every check.
pub struct Checked {
    /// The layers with parameters, in field order.
    pub layers: Vec<Layer>,
    pub loss: Loss,
    pub input_width: usize,
    /// The forward pass, one value per binding, in evaluation order.
    pub bindings: Vec<Binding>,
    pub output: Ref,
}

pub struct Layer {
    pub field: Ident,
    pub inputs: usize,
    pub outputs: usize,
    pub bias: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    SoftmaxCrossEntropy,
    Mse,
    SumOfSquares,
    BceWithLogits,
}

impl Loss {
    pub fn from_name(name: &str) -> Option<Loss> {
        Some(match name {
            "softmax_cross_entropy" | "cross_entropy" => Loss::SoftmaxCrossEntropy,
            "mse" | "mse_loss" => Loss::Mse,
            "sum_of_squares" | "sse" => Loss::SumOfSquares,
            "bce_with_logits" => Loss::BceWithLogits,
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
    pub op: Op,
    pub width: usize,
}

pub enum Op {
    Linear { layer: usize, arg: Ref },
    Act { act: Act, arg: Ref },
    Add(Ref, Ref),
    Concat(Vec<Ref>),
}

impl Op {
    pub fn args(&self) -> Vec<Ref> {
        match self {
            Op::Linear { arg, .. } | Op::Act { arg, .. } => vec![*arg],
            Op::Add(a, b) => vec![*a, *b],
            Op::Concat(parts) => parts.clone(),
        }
    }
}

/// What a value is, for messages: "`h` (500 wide)".
struct Described {
    r: Ref,
    width: Option<usize>, // None when unknown because of an earlier error
    what: String,
}

struct Checker<'a> {
    errors: &'a mut Errors,
    fields: HashMap<String, (usize, &'a ast::Field)>,
    layer_of_field: HashMap<String, usize>,
    layers: Vec<Layer>,
    used_fields: Vec<bool>,
    bindings: Vec<Binding>,
    input_width: Option<usize>,
    input_name: String,
}

pub fn check(net: &ast::Network, errors: &mut Errors) -> Option<Checked> {
    let mut layers = Vec::new();
    let mut layer_of_field = HashMap::new();
    let mut fields = HashMap::new();
    for (i, f) in net.fields.iter().enumerate() {
        fields.insert(f.name.to_string(), (i, f));
        match &f.kind {
            Some(FieldKind::Linear(l)) => {
                layer_of_field.insert(f.name.to_string(), layers.len());
                layers.push(Layer {
                    field: f.name.clone(),
                    inputs: l.inputs.value,
                    outputs: l.outputs.value,
                    bias: l.bias,
                });
            }
            Some(FieldKind::Act(_)) | None => {}
        }
    }
    let loss = net.loss.as_ref().and_then(|l| {
        let loss = Loss::from_name(&l.to_string());
        if loss.is_none() {
            errors.at(
                l,
                format!(
                    "unknown loss `{l}`: expected softmax_cross_entropy (class labels), mse, sum_of_squares \
                     or bce_with_logits"
                ),
            );
        }
        loss
    });
    let input_name = net.forward.as_ref().map_or("x".to_string(), |f| f.input.to_string());
    let mut c = Checker {
        errors,
        fields,
        layer_of_field,
        layers,
        used_fields: vec![false; net.fields.len()],
        bindings: Vec::new(),
        input_width: None,
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
    let input_width = c.input_width?;
    if !c.errors.is_empty() {
        return None;
    }
    Some(Checked { layers: c.layers, loss, input_width, bindings: c.bindings, output: output.r })
}

impl<'a> Checker<'a> {
    /// The layer that produced a value, through activations, unless the value is named after it.
    fn producer(&self, d: &Described) -> Option<String> {
        let mut r = d.r;
        while let Ref::Binding(i) = r {
            match &self.bindings[i].op {
                Op::Linear { layer, .. } => {
                    let field = &self.layers[*layer].field;
                    let named_after = d.what == format!("`{field}`") || d.what.starts_with(&format!("`{field}("));
                    return (!named_after).then(|| format!("from `{field}`"));
                }
                Op::Act { arg, .. } => r = *arg,
                _ => break,
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

    /// "`h` (16 wide, from `fc1`)".
    fn describe(&self, d: &Described) -> String {
        let w = d.width.map_or("?".into(), |w| w.to_string());
        match self.producer(d) {
            Some(p) => format!("{} ({w} wide, {p})", d.what),
            None => format!("{} ({w} wide)", d.what),
        }
    }

    fn push(&mut self, name: String, op: Op, width: usize) -> Ref {
        self.bindings.push(Binding { name, op, width });
        Ref::Binding(self.bindings.len() - 1)
    }

    /// A chain: every field applied in order to the previous one's output.
    fn check_chain(&mut self, net: &'a ast::Network) -> Option<Described> {
        // The input is as wide as the first Linear layer's input.
        self.input_width = net.fields.iter().find_map(|f| match &f.kind {
            Some(FieldKind::Linear(l)) => Some(l.inputs.value),
            _ => None,
        });
        let mut cur = Described { r: Ref::Input, width: self.input_width, what: "the input".into() };
        let mut prev_layer: Option<(&Ident, usize)> = None; // the last Linear: name and output size
        for (i, f) in net.fields.iter().enumerate() {
            self.used_fields[i] = true;
            let name = f.name.to_string();
            match &f.kind {
                Some(FieldKind::Linear(l)) => {
                    let layer = self.layer_of_field[&name];
                    if let (Some((prev, out)), true) = (prev_layer, cur.width.is_some()) {
                        if out != l.inputs.value {
                            self.errors.at(
                                &l.inputs.token,
                                format!(
                                    "shape mismatch: `{}` takes {} inputs, but `{prev}` before it gives {out} \
                                     outputs",
                                    f.name, l.inputs.value
                                ),
                            );
                        }
                    }
                    let r = self.push(name.clone(), Op::Linear { layer, arg: cur.r }, l.outputs.value);
                    cur = Described { r, width: Some(l.outputs.value), what: format!("`{name}`") };
                    prev_layer = Some((&f.name, l.outputs.value));
                }
                Some(FieldKind::Act(a)) => {
                    let w = cur.width?;
                    let r = self.push(name.clone(), Op::Act { act: *a, arg: cur.r }, w);
                    cur = Described { r, width: Some(w), what: format!("`{name}`") };
                }
                None => return None,
            }
        }
        cur.width?;
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
        self.input_width = self.infer_input_width(fwd);
        if self.input_width.is_none() {
            self.errors.at(
                &fwd.input,
                format!(
                    "cannot tell how wide the input `{}` is: apply a Linear layer to it directly, e.g. `fc1({})`",
                    fwd.input, fwd.input
                ),
            );
        }
        // Names defined so far (later definitions shadow earlier ones), and all `let` names.
        // A name whose definition had an error maps to `None`: its uses are not errors again.
        let mut scope: HashMap<String, Option<Described>> = HashMap::new();
        scope.insert(
            fwd.input.to_string(),
            Some(Described { r: Ref::Input, width: self.input_width, what: format!("the input `{}`", fwd.input) }),
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
                Described { r: v.r, width: v.width, what: format!("`{}`", l.name) }
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

    /// The input's width: the input size of the Linear layers applied to it directly.
    fn infer_input_width(&mut self, fwd: &ast::Forward) -> Option<usize> {
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
        callees.iter().find_map(|c| self.layer_of_field.get(c).map(|&l| self.layers[l].inputs))
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
                Some(Some(d)) => Some(Described { r: d.r, width: d.width, what: d.what.clone() }),
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
                let (wa, wb) = (a.width?, b.width?);
                if wa != wb {
                    self.errors.at(
                        &e.tokens,
                        format!("shape mismatch: cannot add {} and {}", self.describe(&a), self.describe(&b)),
                    );
                    return None;
                }
                let name = let_name.map_or("sum".into(), |n| n.to_string());
                let r = self.push(name, Op::Add(a.r, b.r), wa);
                Some(Described { r, width: Some(wa), what: format!("`{}`", e.tokens) })
            }
            ExprKind::Concat(parts) => {
                let parts: Vec<Option<Described>> =
                    parts.iter().map(|p| self.check_expr(p, scope, later, position, None)).collect();
                let parts: Vec<Described> = parts.into_iter().collect::<Option<_>>()?;
                let width = parts.iter().map(|p| p.width).sum::<Option<usize>>()?;
                let name = let_name.map_or("cat".into(), |n| n.to_string());
                let r = self.push(name, Op::Concat(parts.iter().map(|p| p.r).collect()), width);
                Some(Described { r, width: Some(width), what: format!("`{}`", e.tokens) })
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
                match &f.kind {
                    Some(FieldKind::Linear(l)) => {
                        let layer = self.layer_of_field[&key];
                        let w = arg.width?;
                        if w != l.inputs.value {
                            self.errors.at(
                                arg_tokens,
                                format!(
                                    "shape mismatch: `{callee}` takes {} inputs, but {} is {w} wide",
                                    l.inputs.value,
                                    self.origin(&arg)
                                ),
                            );
                            return None;
                        }
                        let r = self.push(name, Op::Linear { layer, arg: arg.r }, l.outputs.value);
                        Some(Described { r, width: Some(l.outputs.value), what: format!("`{callee}({})`", arg_tokens) })
                    }
                    Some(FieldKind::Act(a)) => {
                        let w = arg.width?;
                        let r = self.push(name, Op::Act { act: *a, arg: arg.r }, w);
                        Some(Described { r, width: Some(w), what: format!("`{callee}({})`", arg_tokens) })
                    }
                    None => None,
                }
            }
            (None, Some(act)) => {
                let act = match (act, slope) {
                    (Act::LeakyRelu(_), Some(s)) => Act::LeakyRelu(s),
                    (a, _) => a,
                };
                let arg = arg?;
                let w = arg.width?;
                let r = self.push(name, Op::Act { act, arg: arg.r }, w);
                Some(Described { r, width: Some(w), what: format!("`{callee}({})`", arg_tokens) })
            }
            (None, None) => {
                let mut fields: Vec<&String> = self.fields.keys().collect();
                fields.sort();
                let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                self.errors.at(
                    callee,
                    format!(
                        "unknown layer or activation `{callee}`: the struct's layers are {}; the built-in \
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
        let Some(width) = out.width else { return };
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
            Loss::Mse | Loss::SumOfSquares => {}
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
