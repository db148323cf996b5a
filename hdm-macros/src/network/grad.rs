//! Backward: the gradient of the loss with respect to every value and parameter, derived from a
//! table of per-operation rules, in reverse evaluation order.
//!
//! | operation | forward | contributions to the gradients (`dy` = gradient of the output) |
//! |---|---|---|
//! | Linear | `y = x W^T + b` | `dW += dy^T x`, `db += sum_rows(dy)`, `dx += dy W` |
//! | Conv2d | `y = conv(x, W) + b` | `dW += conv_weight_grad(dy, x)`, `db += sum_rows_positions(dy)`, `dx += conv_transpose(dy, W)` |
//! | ConvTranspose2d | `y = conv_transpose(x, W) + b` | `dW += conv_weight_grad(x, dy)`, `db += sum_rows_positions(dy)`, `dx += conv(dy, W)` |
//! | BatchNorm | `y = gamma x^ + beta`, `x^ = (x - mean) / sqrt(var + eps)` | `dgamma += sum(dy x^)`, `dbeta += sum(dy)`, `dx += gamma / sqrt(var + eps) (dy - mean(dy) - x^ mean(dy x^))` |
//! | MaxPool2d | `y = max over each window` | `dx[argmax] += dy` |
//! | AvgPool2d | `y = mean over each window` | `dx[window] += dy / K^2` |
//! | Act | `y = f(z)` | `dz += dy * f'(z)` (from `y` where the table of `kernels` allows) |
//! | Add | `y = a + b` | `da += dy`, `db += dy` |
//! | Concat | `y = [a, b]` | `da += dy[:, ..wa]`, `db += dy[:, wa..]` |
//!
//! (`sum_rows_positions` sums each channel over the batch and the image's positions; the means
//! and sums of BatchNorm are over the batch and positions too, per channel.)
//!
//! The input's gradient (for a caller training another network through this one) follows the
//! same rules; the steps that only it needs run only when it is asked for.
//!
//! A value used several times receives one contribution per use: the first writes its gradient
//! buffer, the later ones add to it (`acc`). A layer applied several times (shared weights)
//! accumulates its parameter gradients the same way, and is reported ready after its last
//! contribution, which is also the last time the backward pass reads its weights.

use super::ast::Act;
use super::ir::{Graph, NodeId, NodeOp, ValueId};

/// One step of the backward pass, on values of the graph. `node` is the forward operation whose
/// rule the step applies: its output's gradient is `dy`, its input `x`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `dW (+)= ...` of a Linear or convolution node.
    WeightGrad { node: NodeId, acc: bool },
    /// `db (+)= ...` of a Linear or convolution node.
    BiasGrad { node: NodeId, acc: bool },
    /// `dx (+)= ...` of a Linear or convolution node.
    InputGrad { node: NodeId, dx: ValueId, acc: bool },
    /// Batch normalisation's parameter gradients (`acc`: added) and, with `dx`, its input's.
    BatchNormGrad { node: NodeId, acc: bool, dx: Option<(ValueId, bool)> },
    /// `dx (+)= ...` through a pooling.
    PoolGrad { node: NodeId, dx: ValueId, acc: bool },
    /// `dz (+)= dy * f'(z)`, with `y = f(z)`.
    ActGrad { act: Act, dy: ValueId, y: ValueId, z: ValueId, acc: bool },
    /// `dx (+)= dy` (through an addition).
    Route { dy: ValueId, dx: ValueId, acc: bool },
    /// `dx (+)= dy[:, offset..offset + width(dx)]` (through a concatenation).
    Slice { dy: ValueId, offset: usize, dx: ValueId, acc: bool },
    /// The layer's gradients are final and its weights will not be read again.
    Ready { layer: usize },
}

/// The steps of a backward pass that computes the gradient of the input too; the plan guards the
/// steps that only it needs (`When::InputGrad`).
pub fn backward(g: &Graph) -> Vec<Step> {
    let needs = g.needs_grad_with_input();
    let mut has_grad = vec![false; g.values.len()]; // a contribution was already made
    let mut layer_uses = vec![0usize; g.layers.len()];
    for node in &g.nodes {
        if let Some(l) = node.op.layer() {
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
    for (id, node) in g.nodes.iter().enumerate().rev() {
        let y = node.output;
        if !needs[y] {
            continue;
        }
        match node.op {
            NodeOp::Linear(layer) | NodeOp::Conv { layer, .. } => {
                let x = node.inputs[0];
                let acc = layer_done[layer] > 0;
                steps.push(Step::WeightGrad { node: id, acc });
                if g.layers[layer].layer.has_bias() {
                    steps.push(Step::BiasGrad { node: id, acc });
                }
                if needs[x] {
                    let acc = contribute(x, &mut has_grad);
                    steps.push(Step::InputGrad { node: id, dx: x, acc });
                }
            }
            NodeOp::BatchNorm { layer, .. } => {
                let x = node.inputs[0];
                let dx = needs[x].then(|| (x, contribute(x, &mut has_grad)));
                steps.push(Step::BatchNormGrad { node: id, acc: layer_done[layer] > 0, dx });
            }
            NodeOp::Pool(_) => {
                let x = node.inputs[0];
                if needs[x] {
                    let acc = contribute(x, &mut has_grad);
                    steps.push(Step::PoolGrad { node: id, dx: x, acc });
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
                    offset += g.values[x].width();
                }
            }
        }
        if let Some(layer) = node.op.layer() {
            layer_done[layer] += 1;
            if layer_done[layer] == layer_uses[layer] {
                steps.push(Step::Ready { layer });
            }
        }
    }
    steps
}
