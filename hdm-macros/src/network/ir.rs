//! Lower: the checked network as a dataflow graph of values and operations.
//!
//! Values are numbered in evaluation order, value 0 being the input; each non-input value is
//! the output of exactly one node, and has a shape (a row of features, or an image). Identity
//! activations and views (`Flatten`, `Reshape`) are not operations: they rename their argument,
//! since a batch of any shape is the same row-major `[batch, width]` memory (see `shape`).
//! Every later phase (derivatives, fusion, buffers, and Path-SGD's passes over the squared
//! weights) works on this graph.

use super::ast::Act;
use super::check::{Checked, Layer, Loss, Op, Ref};
use super::shape::{ConvGeom, PoolGeom, Shape};

pub type ValueId = usize;
pub type NodeId = usize;

pub struct Graph {
    pub layers: Vec<LayerInfo>,
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub output: ValueId,
    pub loss: Loss,
    /// The number of parameter tensors (weights and biases).
    pub tensors: usize,
}

pub struct LayerInfo {
    pub layer: Layer,
    /// Index of the weight among the network's tensors (field order, weight before bias).
    pub weight_tensor: usize,
    pub bias_tensor: Option<usize>,
}

pub struct Value {
    pub name: String,
    pub shape: Shape,
    /// The node computing the value; `None` for the input.
    pub producer: Option<NodeId>,
    /// The nodes reading the value, once per argument position.
    pub users: Vec<NodeId>,
}

impl Value {
    pub fn width(&self) -> usize {
        self.shape.width()
    }
}

pub struct Node {
    pub op: NodeOp,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NodeOp {
    /// `y = x W^T + b` with the layer's parameters.
    Linear(usize),
    /// `y = conv(x, W) + b` (or its transpose) with the layer's parameters, over images of one
    /// size.
    Conv { layer: usize, geom: ConvGeom },
    /// `y = gamma * (x - mean) / sqrt(var + eps) + beta` per channel, each channel holding
    /// `spatial` values per sample.
    BatchNorm { layer: usize, spatial: usize },
    /// Max or average pooling.
    Pool(PoolGeom),
    /// `y = f(x)`.
    Act(Act),
    /// `y = a + b`.
    Add,
    /// `y = [a, b, ...]`: rows side by side (images: along channels).
    Concat,
}

impl NodeOp {
    /// The layer whose parameters the node uses.
    pub fn layer(self) -> Option<usize> {
        match self {
            NodeOp::Linear(l) | NodeOp::Conv { layer: l, .. } | NodeOp::BatchNorm { layer: l, .. } => Some(l),
            _ => None,
        }
    }
}

pub const INPUT: ValueId = 0;

pub fn lower(c: Checked) -> Graph {
    let mut tensors = 0;
    let layers = c
        .layers
        .into_iter()
        .map(|layer| {
            let weight_tensor = tensors;
            let bias_tensor = layer.has_bias().then_some(tensors + 1);
            tensors += 1 + layer.has_bias() as usize;
            LayerInfo { layer, weight_tensor, bias_tensor }
        })
        .collect();
    let mut values = vec![Value { name: "x".into(), shape: c.input, producer: None, users: Vec::new() }];
    let mut nodes: Vec<Node> = Vec::new();
    // The value each binding evaluates to (an identity or a view renames its argument).
    let mut value_of = Vec::with_capacity(c.bindings.len());
    let resolve = |r: Ref, value_of: &Vec<ValueId>| match r {
        Ref::Input => INPUT,
        Ref::Binding(i) => value_of[i],
    };
    for b in c.bindings {
        let inputs: Vec<ValueId> = b.op.args().into_iter().map(|r| resolve(r, &value_of)).collect();
        let op = match b.op {
            Op::Act { act: Act::Identity, .. } | Op::View { .. } => {
                value_of.push(inputs[0]);
                continue;
            }
            Op::Linear { layer, .. } => NodeOp::Linear(layer),
            Op::Conv { layer, geom, .. } => NodeOp::Conv { layer, geom },
            Op::BatchNorm { layer, spatial, .. } => NodeOp::BatchNorm { layer, spatial },
            Op::Pool { geom, .. } => NodeOp::Pool(geom),
            Op::Act { act, .. } => NodeOp::Act(act),
            Op::Add(..) => NodeOp::Add,
            Op::Concat(..) => NodeOp::Concat,
        };
        let id = nodes.len();
        let output = values.len();
        for &v in &inputs {
            values[v].users.push(id);
        }
        values.push(Value { name: b.name, shape: b.shape, producer: Some(id), users: Vec::new() });
        nodes.push(Node { op, inputs, output });
        value_of.push(output);
    }
    let output = resolve(c.output, &value_of);
    Graph { layers, values, nodes, output, loss: c.loss, tensors }
}

impl Graph {
    /// Whether the loss's gradient with respect to each value is needed: the value depends on
    /// some parameter.
    pub fn needs_grad(&self) -> Vec<bool> {
        let mut needs = vec![false; self.values.len()];
        for node in &self.nodes {
            needs[node.output] = node.op.layer().is_some() || node.inputs.iter().any(|&v| needs[v]);
        }
        needs
    }

    /// Whether each value needs a gradient when the gradient of the network's input is asked
    /// for too: the values that depend on a parameter or on the input (all of them). Those that
    /// depend on no parameter ([`needs_grad`](Graph::needs_grad) false) are computed only then.
    pub fn needs_grad_with_input(&self) -> Vec<bool> {
        let mut needs = vec![false; self.values.len()];
        needs[INPUT] = true;
        for node in &self.nodes {
            needs[node.output] = node.op.layer().is_some() || node.inputs.iter().any(|&v| needs[v]);
        }
        needs
    }
}
