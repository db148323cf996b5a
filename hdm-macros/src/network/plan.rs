//! Plan: fuse operations and give every materialised value a buffer.
//!
//! Fusions:
//! - A Linear layer, a convolution or a batch normalisation whose only user is an activation
//!   becomes one step: the layer writes the activation's buffer, with its bias (or its
//!   normalisation) and the activation applied in the same pass. Its pre-activation is kept only
//!   when the activation's derivative needs it (GELU).
//! - Backward, the activation's derivative is applied in place on the gradient of its output,
//!   which becomes the gradient of its input; when that input is a Linear layer's or a
//!   convolution's output, the same pass sums the layer's bias gradient; when it is a batch
//!   normalisation's, the derivative is folded into the normalisation's own backward passes.
//! - A batch normalisation's backward pass works in place: the gradient of its output becomes
//!   the gradient of its input.
//! - The loss and its gradient are one kernel (softmax and cross-entropy fused).

use std::collections::{HashMap, HashSet};

use super::ast::Act;
use super::check::{LayerKind, Loss};
use super::grad::Step;
use super::ir::{Graph, NodeId, NodeOp, ValueId, INPUT};
use super::shape::Shape;

pub type BufId = usize;

pub struct Buffer {
    pub name: String,
    pub shape: Shape,
    /// A gradient buffer (allocated only for training).
    pub grad: bool,
}

/// A buffer of per-channel values of one node, not per sample: a batch normalisation's mean and
/// variance over the batch, and what its passes derive from them
/// (`hdm::norm::STATS_PER_CHANNEL` values per channel).
pub struct Stats {
    pub name: String,
    pub channels: usize,
}

/// A matrix operand: the network's input or a buffer (`batch` rows, `width` columns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mat {
    Input,
    Buf(BufId),
}

pub enum Fwd {
    /// `out = act(layer(x))` for a Linear, convolution or batch normalisation node; with
    /// `keep_input`, `keep_input = layer(x)` too. `stats`: where a batch normalisation keeps
    /// its batch's mean and variance (training).
    Layer { node: NodeId, x: Mat, out: BufId, act: Option<Act>, keep_input: Option<BufId>, stats: Option<usize> },
    /// `out = pool(x)`.
    Pool { node: NodeId, x: Mat, out: BufId },
    /// `out = act(x)`.
    Act { act: Act, x: Mat, out: BufId },
    /// `out = a + b`.
    Add { a: Mat, b: Mat, out: BufId },
    /// `out[:, offset..offset + width] = part` for each part.
    Concat { parts: Vec<(Mat, usize)>, out: BufId },
}

/// When a backward step runs: at every backward pass, or only when the caller asks for the
/// gradient of the network's input (the step computes the gradient of a value that depends on no
/// parameter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    Always,
    InputGrad,
}

pub enum Bwd {
    /// `dW (+)= ...` and, with `dx`, `dx (+)= ...` of a Linear or convolution node: independent
    /// products, run side by side.
    LayerGrads {
        node: NodeId,
        dy: BufId,
        x: Mat,
        acc: bool,
        dx: Option<(BufId, bool, When)>,
        /// A Linear layer applied once: its weight gradient may go to the hook as the
        /// product `dy^T x` it is (`BackwardHook::ready_outer`), in place of `dW` and `ready`.
        outer: bool,
    },
    /// `db (+)= ...` of a Linear or convolution node.
    BiasGrad { node: NodeId, dy: BufId, acc: bool },
    /// `g *= f'(z)` in place, optionally summing the result into the bias gradient of the node
    /// producing `z` (added when the flag is set).
    ActInPlace { act: Act, g: BufId, y: Mat, z: Mat, bias: Option<(NodeId, bool)> },
    /// `dx (+)= dy * f'(z)`.
    Act { act: Act, dy: BufId, y: Mat, z: Mat, dx: BufId, acc: bool },
    /// A batch normalisation, in place: `g` holds the gradient of the output of `act` (of the
    /// normalisation itself without one) and ends holding that of the normalisation's input `x`
    /// (when `dx`; otherwise only the parameter gradients are computed, added when `acc`).
    BatchNorm {
        node: NodeId,
        g: BufId,
        act: Option<(Act, Mat, Mat)>,
        x: Mat,
        stats: usize,
        acc: bool,
        dx: Option<When>,
    },
    /// `dx (+)= ...` through a pooling node.
    Pool { node: NodeId, dy: BufId, x: Mat, dx: BufId, acc: bool },
    /// `dx (+)= dy[:, offset..offset + width(dx)]` (offset 0 and full width through an addition).
    Copy { dy: BufId, offset: usize, dx: BufId, acc: bool },
    Ready {
        layer: usize,
        /// As `LayerGrads::outer`: the weight was handed to the hook there when it updates outer
        /// products.
        outer: bool,
    },
}

pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub stats: Vec<Stats>,
    pub forward: Vec<Fwd>,
    pub backward: Vec<(When, Bwd)>,
    pub output: Mat,
    pub output_grad: BufId,
    /// The gradient of the network's input (computed only when asked for).
    pub input_grad: BufId,
    pub loss: Loss,
}

impl Plan {
    /// The parameter tensors in the order the backward pass reports their gradients final (each
    /// layer's weight, then its bias): the order in which a data-parallel trainer exchanges them.
    pub fn ready_order(&self, g: &Graph) -> Vec<usize> {
        let mut order = Vec::with_capacity(g.tensors);
        for (_, step) in &self.backward {
            if let Bwd::Ready { layer, .. } = step {
                order.push(g.layers[*layer].weight_tensor);
                order.extend(g.layers[*layer].bias_tensor);
            }
        }
        order
    }
}

/// Whether the activation's derivative can be computed from its output alone (the table in
/// hdm-runtime's `kernels` module).
pub fn derivative_from_output(act: Act) -> bool {
    !matches!(act, Act::Gelu)
}

/// Whether a node's output is fused with the activation after it (one step forward).
fn fusable(op: NodeOp) -> bool {
    matches!(op, NodeOp::Linear(_) | NodeOp::Conv { .. } | NodeOp::BatchNorm { .. })
}

pub fn plan(g: &Graph, steps: Vec<Step>) -> Plan {
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut stats: Vec<Stats> = Vec::new();
    // The buffers' own fields (`path_in`, `path_out`) are taken; names from raw identifiers
    // (`r#final`) lose their `r#`, and a keyword gets a `_` (`final_`).
    let mut names: HashSet<String> = ["path_in", "path_out"].map(String::from).into();
    let mut unique = |name: String| {
        let mut name = name.replace("r#", "");
        if syn::parse_str::<syn::Ident>(&name).is_err() {
            name.push('_');
        }
        let mut unique = name.clone();
        let mut k = 2;
        while !names.insert(unique.clone()) {
            unique = format!("{name}_{k}");
            k += 1;
        }
        unique
    };

    // Forward: which layer outputs are fused into the activation after them.
    let fused_act_of = |v: ValueId| -> Option<(NodeId, Act)> {
        let value = &g.values[v];
        let producer = value.producer?;
        if !fusable(g.nodes[producer].op) || v == g.output {
            return None;
        }
        match value.users.as_slice() {
            [user] => match g.nodes[*user].op {
                NodeOp::Act(act) => Some((*user, act)),
                _ => None,
            },
            _ => None,
        }
    };
    let mut fwd_buf: Vec<Option<BufId>> = vec![None; g.values.len()];
    for (v, value) in g.values.iter().enumerate().skip(1) {
        let elided = fused_act_of(v).is_some_and(|(_, act)| derivative_from_output(act));
        if !elided {
            let name = unique(value.name.clone());
            buffers.push(Buffer { name, shape: value.shape, grad: false });
            fwd_buf[v] = Some(buffers.len() - 1);
        }
    }
    let mat = |v: ValueId| if v == INPUT { Mat::Input } else { Mat::Buf(fwd_buf[v].expect("materialised value")) };

    let mut forward = Vec::new();
    let mut skip = HashSet::new();
    let mut stats_of: HashMap<NodeId, usize> = HashMap::new();
    for (id, node) in g.nodes.iter().enumerate() {
        if skip.contains(&id) {
            continue;
        }
        let out = node.output;
        match node.op {
            NodeOp::Linear(_) | NodeOp::Conv { .. } | NodeOp::BatchNorm { .. } => {
                let node_stats = match node.op {
                    NodeOp::BatchNorm { layer, .. } => {
                        let name = unique(format!("{}_batch_stats", g.layers[layer].layer.field));
                        stats.push(Stats { name, channels: g.layers[layer].layer.outputs() });
                        stats_of.insert(id, stats.len() - 1);
                        Some(stats.len() - 1)
                    }
                    _ => None,
                };
                let x = mat(node.inputs[0]);
                match fused_act_of(out) {
                    Some((act_node, act)) => {
                        skip.insert(act_node);
                        let y = g.nodes[act_node].output;
                        forward.push(Fwd::Layer {
                            node: id,
                            x,
                            out: fwd_buf[y].expect("materialised"),
                            act: Some(act),
                            keep_input: fwd_buf[out],
                            stats: node_stats,
                        });
                    }
                    None => forward.push(Fwd::Layer {
                        node: id,
                        x,
                        out: fwd_buf[out].expect("materialised"),
                        act: None,
                        keep_input: None,
                        stats: node_stats,
                    }),
                }
            }
            NodeOp::Pool(_) => {
                forward.push(Fwd::Pool { node: id, x: mat(node.inputs[0]), out: fwd_buf[out].expect("materialised") })
            }
            NodeOp::Act(act) => {
                forward.push(Fwd::Act { act, x: mat(node.inputs[0]), out: fwd_buf[out].expect("materialised") })
            }
            NodeOp::Add => forward.push(Fwd::Add {
                a: mat(node.inputs[0]),
                b: mat(node.inputs[1]),
                out: fwd_buf[out].expect("materialised"),
            }),
            NodeOp::Concat => {
                let mut offset = 0;
                let mut parts = Vec::new();
                for &p in &node.inputs {
                    parts.push((mat(p), offset));
                    offset += g.values[p].width();
                }
                forward.push(Fwd::Concat { parts, out: fwd_buf[out].expect("materialised") });
            }
        }
    }

    // Backward: gradient buffers, sharing one buffer where a step works in place.
    let params_need = g.needs_grad();
    let when = |v: ValueId| if params_need[v] { When::Always } else { When::InputGrad };
    let single_use = |v: ValueId| g.values[v].users.len() == 1;
    let applied_once = |layer: usize| g.nodes.iter().filter(|n| n.op.layer() == Some(layer)).count() == 1;
    let mut grad_buf: Vec<Option<BufId>> = vec![None; g.values.len()];
    let mut grad_of = |v: ValueId, grad_buf: &mut Vec<Option<BufId>>, buffers: &mut Vec<Buffer>| -> BufId {
        *grad_buf[v].get_or_insert_with(|| {
            let value = &g.values[v];
            buffers.push(Buffer { name: unique(format!("d_{}", value.name)), shape: value.shape, grad: true });
            buffers.len() - 1
        })
    };
    let output_grad = grad_of(g.output, &mut grad_buf, &mut buffers);
    let mut backward: Vec<(When, Bwd)> = Vec::new();
    let mut fused_bias = HashSet::new(); // bias gradients fused into an activation's pass
    let mut fused_bn_act: HashMap<NodeId, (Act, Mat, Mat)> = HashMap::new();
    for step in &steps {
        let b = match *step {
            Step::WeightGrad { node, acc } => {
                let n = &g.nodes[node];
                let dy = grad_of(n.output, &mut grad_buf, &mut buffers);
                let outer = matches!(n.op, NodeOp::Linear(l) if applied_once(l));
                Bwd::LayerGrads { node, dy, x: mat(n.inputs[0]), acc, dx: None, outer }
            }
            Step::BiasGrad { node, acc } => {
                if fused_bias.contains(&node) {
                    continue;
                }
                Bwd::BiasGrad { node, dy: grad_of(g.nodes[node].output, &mut grad_buf, &mut buffers), acc }
            }
            Step::InputGrad { node, dx, acc } => {
                // Joins the weight gradient of the same node, pushed just before (the rules emit
                // them together; a bias gradient may sit between).
                let (dx, when) = (grad_of(dx, &mut grad_buf, &mut buffers), when(dx));
                let pair = backward.iter_mut().rev().take(2).find_map(|(_, b)| match b {
                    Bwd::LayerGrads { node: n, dx: slot @ None, .. } if *n == node => Some(slot),
                    _ => None,
                });
                *pair.expect("the weight gradient comes just before the input gradient") = Some((dx, acc, when));
                continue;
            }
            Step::BatchNormGrad { node, acc, dx } => {
                let n = &g.nodes[node];
                let gy = grad_of(n.output, &mut grad_buf, &mut buffers);
                let stats = stats_of[&node];
                let act = fused_bn_act.remove(&node);
                let x_when = dx.map(|(x, _)| when(x));
                backward.push((
                    When::Always,
                    Bwd::BatchNorm { node, g: gy, act, x: mat(n.inputs[0]), stats, acc, dx: x_when },
                ));
                match dx {
                    // The gradient of the input is the buffer just computed in place, or is
                    // added from it when the input has other users.
                    Some((x, false)) if single_use(x) && grad_buf[x].is_none() => {
                        grad_buf[x] = Some(gy);
                        continue;
                    }
                    Some((x, acc)) => {
                        let dx = grad_of(x, &mut grad_buf, &mut buffers);
                        backward.push((when(x), Bwd::Copy { dy: gy, offset: 0, dx, acc }));
                        continue;
                    }
                    None => continue,
                }
            }
            Step::PoolGrad { node, dx, acc } => {
                let n = &g.nodes[node];
                Bwd::Pool {
                    node,
                    dy: grad_of(n.output, &mut grad_buf, &mut buffers),
                    x: mat(n.inputs[0]),
                    dx: grad_of(dx, &mut grad_buf, &mut buffers),
                    acc,
                }
            }
            Step::ActGrad { act, dy, y, z, acc } => {
                let from_out = derivative_from_output(act);
                let zm = if from_out { mat(y) } else { mat(z) };
                let gy = grad_of(dy, &mut grad_buf, &mut buffers);
                if !acc && single_use(z) {
                    grad_buf[z] = Some(gy);
                    let producer = g.values[z].producer;
                    if let Some(p) = producer.filter(|&p| matches!(g.nodes[p].op, NodeOp::BatchNorm { .. })) {
                        // Folded into the normalisation's backward pass, which comes next.
                        fused_bn_act.insert(p, (act, mat(y), zm));
                        continue;
                    }
                    // Fold the bias gradient of the layer producing z into the same pass.
                    let bias = producer.and_then(|p| {
                        let acc = steps.iter().find_map(|s| match *s {
                            Step::BiasGrad { node, acc } if node == p => Some(acc),
                            _ => None,
                        })?;
                        fused_bias.insert(p);
                        Some((p, acc))
                    });
                    Bwd::ActInPlace { act, g: gy, y: mat(y), z: zm, bias }
                } else {
                    let dx = grad_of(z, &mut grad_buf, &mut buffers);
                    Bwd::Act { act, dy: gy, y: mat(y), z: zm, dx, acc }
                }
            }
            Step::Route { dy, dx, acc } => Bwd::Copy {
                dy: grad_of(dy, &mut grad_buf, &mut buffers),
                offset: 0,
                dx: grad_of(dx, &mut grad_buf, &mut buffers),
                acc,
            },
            Step::Slice { dy, offset, dx, acc } => Bwd::Copy {
                dy: grad_of(dy, &mut grad_buf, &mut buffers),
                offset,
                dx: grad_of(dx, &mut grad_buf, &mut buffers),
                acc,
            },
            Step::Ready { layer } => Bwd::Ready {
                layer,
                outer: matches!(g.layers[layer].layer.kind, LayerKind::Linear { .. }) && applied_once(layer),
            },
        };
        let computes = match *step {
            Step::PoolGrad { dx, .. } | Step::Route { dx, .. } | Step::Slice { dx, .. } => Some(dx),
            Step::ActGrad { z, .. } => Some(z),
            _ => None,
        };
        backward.push((computes.map_or(When::Always, when), b));
    }
    // Written by the steps above, or, when the output does not depend on the input, zero.
    let input_grad = grad_of(INPUT, &mut grad_buf, &mut buffers);
    Plan { buffers, stats, forward, backward, output: mat(g.output), output_grad, input_grad, loss: g.loss }
}
