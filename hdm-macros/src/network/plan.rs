//! Plan: fuse operations and give every materialised value a buffer.
//!
//! Fusions:
//! - A Linear layer whose only user is an activation becomes one dense step: the GEMM writes
//!   the activation's buffer, and one pass adds the bias and applies the activation in place.
//!   Its pre-activation is kept only when the activation's derivative needs it (GELU).
//! - Backward, the activation's derivative is applied in place on the gradient of its output,
//!   which becomes the gradient of its input; when that input is a Linear layer's output, the
//!   same pass sums the layer's bias gradient.
//! - The loss and its gradient are one kernel (softmax and cross-entropy fused).

use std::collections::HashSet;

use super::ast::Act;
use super::check::Loss;
use super::grad::Step;
use super::ir::{Graph, NodeOp, ValueId, INPUT};

pub type BufId = usize;

pub struct Buffer {
    pub name: String,
    pub width: usize,
    /// A gradient buffer (allocated only for training).
    pub grad: bool,
}

/// A matrix operand: the network's input or a buffer (`batch` rows, `width` columns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mat {
    Input,
    Buf(BufId),
}

pub enum Fwd {
    /// `out = act(x W^T + b)`; with `keep_input`, `keep_input = x W^T + b` too.
    Dense { layer: usize, x: Mat, out: BufId, act: Option<Act>, keep_input: Option<BufId> },
    /// `out = act(x)`.
    Act { act: Act, x: Mat, out: BufId },
    /// `out = a + b`.
    Add { a: Mat, b: Mat, out: BufId },
    /// `out[:, offset..offset + width] = part` for each part.
    Concat { parts: Vec<(Mat, usize)>, out: BufId },
}

pub enum Bwd {
    /// `dW (+)= dy^T x` and, with `dx`, `dx (+)= dy W`: independent products, run side by side.
    LinearGrads {
        layer: usize,
        dy: BufId,
        x: Mat,
        acc: bool,
        dx: Option<(BufId, bool)>,
    },
    BiasGrad {
        layer: usize,
        dy: BufId,
        acc: bool,
    },
    /// `g *= f'(z)` in place, optionally summing the result into a layer's bias gradient.
    ActInPlace {
        act: Act,
        g: BufId,
        y: Mat,
        z: Mat,
        bias: Option<(usize, bool)>,
    },
    /// `dx (+)= dy * f'(z)`.
    Act {
        act: Act,
        dy: BufId,
        y: Mat,
        z: Mat,
        dx: BufId,
        acc: bool,
    },
    /// `dx (+)= dy[:, offset..offset + width(dx)]` (offset 0 and full width through an addition).
    Copy {
        dy: BufId,
        offset: usize,
        dx: BufId,
        acc: bool,
    },
    Ready {
        layer: usize,
    },
}

pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub forward: Vec<Fwd>,
    pub backward: Vec<Bwd>,
    pub output: Mat,
    pub output_grad: BufId,
    pub loss: Loss,
}

/// Whether the activation's derivative can be computed from its output alone (the table in
/// hdm-runtime's `kernels` module).
pub fn derivative_from_output(act: Act) -> bool {
    !matches!(act, Act::Gelu)
}

pub fn plan(g: &Graph, steps: Vec<Step>) -> Plan {
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut names = HashSet::new();
    let mut new_buffer = |name: String, width: usize, grad: bool, buffers: &mut Vec<Buffer>| {
        let mut unique = name.clone();
        let mut k = 2;
        while !names.insert(unique.clone()) {
            unique = format!("{name}_{k}");
            k += 1;
        }
        buffers.push(Buffer { name: unique, width, grad });
        buffers.len() - 1
    };

    // Forward: which Linear outputs are fused into the activation after them.
    let fused_act_of = |v: ValueId| -> Option<(usize, Act)> {
        let value = &g.values[v];
        let producer = value.producer?;
        if !matches!(g.nodes[producer].op, NodeOp::Linear(_)) || v == g.output {
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
            fwd_buf[v] = Some(new_buffer(value.name.clone(), value.width, false, &mut buffers));
        }
    }
    let mat = |v: ValueId| if v == INPUT { Mat::Input } else { Mat::Buf(fwd_buf[v].expect("materialised value")) };

    let mut forward = Vec::new();
    let mut skip = HashSet::new();
    for (id, node) in g.nodes.iter().enumerate() {
        if skip.contains(&id) {
            continue;
        }
        let out = node.output;
        match node.op {
            NodeOp::Linear(layer) => match fused_act_of(out) {
                Some((act_node, act)) => {
                    skip.insert(act_node);
                    let y = g.nodes[act_node].output;
                    forward.push(Fwd::Dense {
                        layer,
                        x: mat(node.inputs[0]),
                        out: fwd_buf[y].unwrap(),
                        act: Some(act),
                        keep_input: fwd_buf[out],
                    });
                }
                None => forward.push(Fwd::Dense {
                    layer,
                    x: mat(node.inputs[0]),
                    out: fwd_buf[out].unwrap(),
                    act: None,
                    keep_input: None,
                }),
            },
            NodeOp::Act(act) => forward.push(Fwd::Act { act, x: mat(node.inputs[0]), out: fwd_buf[out].unwrap() }),
            NodeOp::Add => {
                forward.push(Fwd::Add { a: mat(node.inputs[0]), b: mat(node.inputs[1]), out: fwd_buf[out].unwrap() })
            }
            NodeOp::Concat => {
                let mut offset = 0;
                let mut parts = Vec::new();
                for &p in &node.inputs {
                    parts.push((mat(p), offset));
                    offset += g.values[p].width;
                }
                forward.push(Fwd::Concat { parts, out: fwd_buf[out].unwrap() });
            }
        }
    }

    // Backward: gradient buffers, sharing one buffer where an activation works in place.
    let in_place = |step: &Step| match *step {
        Step::ActGrad { z, acc: false, .. } => g.values[z].users.len() == 1,
        _ => false,
    };
    let mut grad_buf: Vec<Option<BufId>> = vec![None; g.values.len()];
    let mut grad_of = |v: ValueId, grad_buf: &mut Vec<Option<BufId>>, buffers: &mut Vec<Buffer>| -> BufId {
        *grad_buf[v].get_or_insert_with(|| {
            let value = &g.values[v];
            new_buffer(format!("d_{}", value.name), value.width, true, buffers)
        })
    };
    let output_grad = grad_of(g.output, &mut grad_buf, &mut buffers);
    let mut backward = Vec::new();
    let mut dropped_bias = HashSet::new(); // (layer, dy) bias gradients fused into an activation
    for step in &steps {
        let b = match *step {
            Step::WeightGrad { layer, dy, x, acc } => {
                Bwd::LinearGrads { layer, dy: grad_of(dy, &mut grad_buf, &mut buffers), x: mat(x), acc, dx: None }
            }
            Step::BiasGrad { layer, dy, acc } => {
                if dropped_bias.contains(&(layer, dy)) {
                    continue;
                }
                Bwd::BiasGrad { layer, dy: grad_of(dy, &mut grad_buf, &mut buffers), acc }
            }
            Step::InputGrad { layer, dy, dx, acc } => {
                // Joins the weight gradient of the same layer and output, pushed just before
                // (the rules emit them together; a bias gradient may sit between).
                let (dy, dx) = (grad_of(dy, &mut grad_buf, &mut buffers), grad_of(dx, &mut grad_buf, &mut buffers));
                let pair = backward.iter_mut().rev().take(2).find_map(|b| match b {
                    Bwd::LinearGrads { layer: l, dy: d, dx: slot @ None, .. } if *l == layer && *d == dy => Some(slot),
                    _ => None,
                });
                *pair.expect("the weight gradient comes just before the input gradient") = Some((dx, acc));
                continue;
            }
            Step::ActGrad { act, dy, y, z, acc } => {
                let from_out = derivative_from_output(act);
                let zm = if from_out { mat(y) } else { mat(z) };
                let gy = grad_of(dy, &mut grad_buf, &mut buffers);
                if in_place(step) {
                    grad_buf[z] = Some(gy);
                    // Fold the bias gradient of the layer producing z into the same pass.
                    let bias = g.values[z].producer.and_then(|p| match g.nodes[p].op {
                        NodeOp::Linear(layer) if g.layers[layer].layer.bias => {
                            let acc = steps.iter().find_map(|s| match *s {
                                Step::BiasGrad { layer: l, dy, acc } if l == layer && dy == z => Some(acc),
                                _ => None,
                            })?;
                            dropped_bias.insert((layer, z));
                            Some((layer, acc))
                        }
                        _ => None,
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
            Step::Ready { layer } => Bwd::Ready { layer },
        };
        backward.push(b);
    }
    Plan { buffers, forward, backward, output: mat(g.output), output_grad, loss: g.loss }
}
