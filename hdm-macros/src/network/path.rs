//! Path-SGD's passes, derived from the graph: a forward pass of the squared weights from
//! all-ones inputs (activations skipped: they are positively homogeneous) giving every unit's
//! `gamma_in`, and a backward pass from all-ones outputs giving every unit's `gamma_out`.
//!
//! A unit is one feature of a row or one position of one channel of an image; the passes work on
//! one sample. A convolution's weight lies on many edges (one per output position); a pooling
//! window's edges have weight 1 (max) or `1 / K^2` (average).
//!
//! Each pass works in one buffer, each value at its own offset, in evaluation order (so every
//! value lies after the values it is computed from). An activation's output shares its input's
//! `gamma_in`.

use super::ast::Act;
use super::ir::{Graph, NodeId, NodeOp, INPUT};

/// Whether path scales are defined for the network, and if not, why.
pub enum Capability {
    Homogeneous,
    NotHomogeneous(Act),
    SharedLayer,
    BatchNorm,
}

pub enum PStep {
    /// A Linear or convolution node: `g[y] = W^2 g[x] + b^2` (forward) or `g[x] += (W^2)^T g[y]`
    /// (backward).
    Layer { node: NodeId, x: usize, y: usize },
    /// A pooling node: `g[y] = P g[x]` (forward) or `g[x] += P^T g[y]` (backward), `P` its edges'
    /// squared weights.
    Pool { node: NodeId, x: usize, y: usize },
    /// Forward `g[y] = g[a] + g[b]`.
    Add { a: usize, b: usize, y: usize, width: usize },
    /// Forward `g[y] = g[x]`.
    Copy { x: usize, y: usize, width: usize },
    /// Backward `g[x] += g[y]`.
    Route { y: usize, x: usize, width: usize },
}

pub struct PathPlan {
    pub capability: Capability,
    pub input_width: usize,
    pub in_len: usize,
    pub out_len: usize,
    pub forward: Vec<PStep>,
    pub backward: Vec<PStep>,
    /// Per Linear or convolution node: offsets of `gamma_in` of its input and `gamma_out` of its
    /// output.
    pub scales: Vec<(NodeId, usize, usize)>,
    /// Offset of the output in each buffer, and its width.
    pub output: (usize, usize, usize),
}

pub fn plan(g: &Graph) -> PathPlan {
    let mut uses = vec![0usize; g.layers.len()];
    let mut capability = Capability::Homogeneous;
    for node in &g.nodes {
        match node.op {
            NodeOp::Act(a @ (Act::Sigmoid | Act::Tanh | Act::Softplus | Act::Gelu)) => {
                if matches!(capability, Capability::Homogeneous) {
                    capability = Capability::NotHomogeneous(a);
                }
            }
            NodeOp::BatchNorm { .. } => {
                if matches!(capability, Capability::Homogeneous) {
                    capability = Capability::BatchNorm;
                }
            }
            _ => {}
        }
        if let Some(l) = node.op.layer() {
            uses[l] += 1;
        }
    }
    if matches!(capability, Capability::Homogeneous) && uses.iter().any(|&u| u > 1) {
        capability = Capability::SharedLayer;
    }

    // gamma_in offsets: activations share their input's.
    let mut gin = vec![0usize; g.values.len()];
    let mut in_len = g.values[INPUT].width();
    let mut forward = Vec::new();
    for (id, node) in g.nodes.iter().enumerate() {
        let y = node.output;
        let width = g.values[y].width();
        if let NodeOp::Act(_) = node.op {
            gin[y] = gin[node.inputs[0]];
            continue;
        }
        gin[y] = in_len;
        in_len += width;
        match node.op {
            NodeOp::Linear(_) | NodeOp::Conv { .. } => {
                forward.push(PStep::Layer { node: id, x: gin[node.inputs[0]], y: gin[y] })
            }
            NodeOp::Pool(_) => forward.push(PStep::Pool { node: id, x: gin[node.inputs[0]], y: gin[y] }),
            NodeOp::Add => {
                forward.push(PStep::Add { a: gin[node.inputs[0]], b: gin[node.inputs[1]], y: gin[y], width })
            }
            NodeOp::Concat => {
                let mut offset = 0;
                for &p in &node.inputs {
                    let w = g.values[p].width();
                    forward.push(PStep::Copy { x: gin[p], y: gin[y] + offset, width: w });
                    offset += w;
                }
            }
            // Not homogeneous: the passes are not generated (see `capability`).
            NodeOp::BatchNorm { .. } => {}
            NodeOp::Act(_) => unreachable!(),
        }
    }

    // gamma_out offsets: one region per value, in value order.
    let mut gout = vec![0usize; g.values.len()];
    let mut out_len = 0;
    for (v, value) in g.values.iter().enumerate() {
        gout[v] = out_len;
        out_len += value.width();
    }
    let mut backward = Vec::new();
    for (id, node) in g.nodes.iter().enumerate().rev() {
        let y = node.output;
        match node.op {
            NodeOp::Linear(_) | NodeOp::Conv { .. } if node.inputs[0] != INPUT => {
                backward.push(PStep::Layer { node: id, x: gout[node.inputs[0]], y: gout[y] })
            }
            NodeOp::Pool(_) if node.inputs[0] != INPUT => {
                backward.push(PStep::Pool { node: id, x: gout[node.inputs[0]], y: gout[y] })
            }
            NodeOp::Linear(_) | NodeOp::Conv { .. } | NodeOp::Pool(_) | NodeOp::BatchNorm { .. } => {}
            NodeOp::Act(_) | NodeOp::Add => {
                for &x in &node.inputs {
                    if x != INPUT {
                        backward.push(PStep::Route { y: gout[y], x: gout[x], width: g.values[y].width() });
                    }
                }
            }
            NodeOp::Concat => {
                let mut offset = 0;
                for &p in &node.inputs {
                    let w = g.values[p].width();
                    if p != INPUT {
                        backward.push(PStep::Route { y: gout[y] + offset, x: gout[p], width: w });
                    }
                    offset += w;
                }
            }
        }
    }
    let scales = g
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(id, n)| match n.op {
            NodeOp::Linear(_) | NodeOp::Conv { .. } => Some((id, gin[n.inputs[0]], gout[n.output])),
            _ => None,
        })
        .collect();
    let output = (gin[g.output], gout[g.output], g.values[g.output].width());
    PathPlan { capability, input_width: g.values[INPUT].width(), in_len, out_len, forward, backward, scales, output }
}
