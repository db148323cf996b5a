//! Backward: the gradient of the loss with respect to every value and parameter, derived from a
//! table of per-operation rules, in reverse evaluation order.
//!
//! | operation | forward | contributions to the gradients (`dy` = gradient of the output) |
//! |---|---|---|
//! | Linear | `y = x W^T + b` | `dW += dy^T x`, `db += sum_rows(dy)`, `dx += dy W` |
//! | Act | `y = f(z)` | `dz += dy * f'(z)` (from `y` where the table of `kernels` allows) |
//! | Add | `y = a + b` | `da += dy`, `db += dy` |
//! | Concat | `y = [a, b]` | `da += dy[:, ..wa]`, `db += dy[:, wa..]` |
//!
//! A value used several times receives one contribution per use: the first writes its gradient
//! buffer, the later ones add to it (`acc`). A layer applied several times (shared weights)
//! accumulates its parameter gradients the same way, and is reported ready after its last
//! contribution, which is also the last time the backward pass reads its weights.

use super::ast::Act;
use super::ir::{Graph, NodeOp, ValueId};

/// One step of the backward pass, on values of the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `dW (+)= dy^T x`.
    WeightGrad { layer: usize, dy: ValueId, x: ValueId, acc: bool },
    /// `db (+)= column sums of dy`.
    BiasGrad { layer: usize, dy: ValueId, acc: bool },
    /// `dx (+)= dy W`.
    InputGrad { layer: usize, dy: ValueId, dx: ValueId, acc: bool },
    /// `dz (+)= dy * f'(z)`, with `y = f(z)`.
    ActGrad { act: Act, dy: ValueId, y: ValueId, z: ValueId, acc: bool },
    /// `dx (+)= dy` (through an addition).
    Route { dy: ValueId, dx: ValueId, acc: bool },
    /// `dx (+)= dy[:, offset..offset + width(dx)]` (through a concatenation).
    Slice { dy: ValueId, offset: usize, dx: ValueId, acc: bool },
    /// The layer's gradients are final and its weights will not be read again.
    Ready { layer: usize },
}

pub fn backward(g: &Graph) -> Vec<Step> {
    let needs = g.needs_grad();
    let mut has_grad = vec![false; g.values.len()]; // a contribution was already made
    let mut layer_uses = vec![0usize; g.layers.len()];
    for node in &g.nodes {
        if let NodeOp::Linear(l) = node.op {
            layer_uses[l] += 1;
        }
    }
    let mut layer_done = vec![0usize; g.layers.len()];
    let mut steps = Vec::new();
    let contribute = |v: ValueId, has: &mut Vec<bool>| {
        let acc = has[v];
        has[v] = true;
        acc
    };
    for node in g.nodes.iter().rev() {
        let y = node.output;
        if !needs[y] {
            continue;
        }
        match node.op {
            NodeOp::Linear(layer) => {
                let x = node.inputs[0];
                let first = layer_done[layer] == 0;
                steps.push(Step::WeightGrad { layer, dy: y, x, acc: !first });
                if g.layers[layer].layer.bias {
                    steps.push(Step::BiasGrad { layer, dy: y, acc: !first });
                }
                if needs[x] {
                    let acc = contribute(x, &mut has_grad);
                    steps.push(Step::InputGrad { layer, dy: y, dx: x, acc });
                }
                layer_done[layer] += 1;
                if layer_done[layer] == layer_uses[layer] {
                    steps.push(Step::Ready { layer });
                }
            }
            NodeOp::Act(act) => {
                let z = node.inputs[0];
                if needs[z] {
                    let acc = contribute(z, &mut has_grad);
                    steps.push(Step::ActGrad { act, dy: y, y, z, acc });
                }
            }
            NodeOp::Add => {
                for &x in &node.inputs {
                    if needs[x] {
                        let acc = contribute(x, &mut has_grad);
                        steps.push(Step::Route { dy: y, dx: x, acc });
                    }
                }
            }
            NodeOp::Concat => {
                let mut offset = 0;
                for &x in &node.inputs {
                    if needs[x] {
                        let acc = contribute(x, &mut has_grad);
                        steps.push(Step::Slice { dy: y, offset, dx: x, acc });
                    }
                    offset += g.values[x].width;
                }
            }
        }
    }
    steps
}
