//! Lower: the checked network as a dataflow graph of values and operations.
//!
//! Values are numbered in evaluation order, value 0 being the input; each non-input value is
//! the output of exactly one node. Identity activations are not operations: they rename their
//! argument. Every later phase (derivatives, fusion, buffers, and Path-SGD's passes over the
//! squared weights) works on this graph.

use super::ast::Act;
use super::check::{Checked, Layer, Loss, Op, Ref};

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
    pub width: usize,
    /// The node computing the value; `None` for the input.
    pub producer: Option<NodeId>,
    /// The nodes reading the value, once per argument position.
    pub users: Vec<NodeId>,
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
    /// `y = f(x)`.
    Act(Act),
    /// `y = a + b`.
    Add,
    /// `y = [a, b, ...]`, the columns side by side.
    Concat,
}

pub const INPUT: ValueId = 0;

pub fn lower(c: Checked) -> Graph {
    let mut tensors = 0;
    let layers = c
        .layers
        .into_iter()
        .map(|layer| {
            let weight_tensor = tensors;
            let bias_tensor = layer.bias.then_some(tensors + 1);
            tensors += 1 + layer.bias as usize;
            LayerInfo { layer, weight_tensor, bias_tensor }
        })
        .collect();
    let mut values = vec![Value { name: "x".into(), width: c.input_width, producer: None, users: Vec::new() }];
    let mut nodes: Vec<Node> = Vec::new();
    // The value each binding evaluates to (an identity renames its argument).
    let mut value_of = Vec::with_capacity(c.bindings.len());
    let resolve = |r: Ref, value_of: &Vec<ValueId>| match r {
        Ref::Input => INPUT,
        Ref::Binding(i) => value_of[i],
    };
    for b in c.bindings {
        let inputs: Vec<ValueId> = b.op.args().into_iter().map(|r| resolve(r, &value_of)).collect();
        let op = match b.op {
            Op::Act { act: Act::Identity, .. } => {
                value_of.push(inputs[0]);
                continue;
            }
            Op::Linear { layer, .. } => NodeOp::Linear(layer),
            Op::Act { act, .. } => NodeOp::Act(act),
            Op::Add(..) => NodeOp::Add,
            Op::Concat(..) => NodeOp::Concat,
        };
        let id = nodes.len();
        let output = values.len();
        for &v in &inputs {
            values[v].users.push(id);
        }
        values.push(Value { name: b.name, width: b.width, producer: Some(id), users: Vec::new() });
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
            needs[node.output] = matches!(node.op, NodeOp::Linear(_)) || node.inputs.iter().any(|&v| needs[v]);
        }
        needs
    }
}
