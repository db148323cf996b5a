//! Differentiate: the gradient and Hessian as new nodes of the same graph, by the chain rule and
//! a table of derivative rules.
//!
//! `∂y/∂x_k` is computed once per node and variable (memoised), so a `let` binding's derivative
//! is built once however often the binding is used, and every later derivative refers to it:
//! this is forward mode, run symbolically over the graph, one tangent per variable. The Hessian
//! differentiates each gradient entry again (`H_kl = ∂g_k/∂x_l` for `k <= l`, mirrored), reusing
//! the memo, so derivatives of shared pieces are shared between gradient and Hessian too.
//! Every node is built through the simplifying constructors of [`simplify`](super::simplify).
//!
//! The rules, with `y` the node itself and `a'` the derivative of operand `a`:
//!
//! | `y` | `y'` |
//! |---|---|
//! | literal, `const` | `0` |
//! | `x_i` | `1` if `i = k`, else `0` |
//! | `-a`, `a + b`, `a - b` | `-a'`, `a' + b'`, `a' - b'` |
//! | `a * b` | `a' * b + a * b'` |
//! | `a / b` | `(a' - y * b') / b` |
//! | `a.powi(n)` | `a' * (n * a.powi(n - 1))` |
//! | `a.powf(b)`, `b` constant | `a' * (b * a.powf(b - 1))` |
//! | `a.powf(b)` | `y * (b' * a.ln() + b * a' / a)` |
//! | `a.sqrt()` | `a' / (2 * y)` |
//! | `a.exp()` | `a' * y` |
//! | `a.ln()` | `a' / a` |
//! | `a.sin()`, `a.cos()`, `a.tan()` | `a' * a.cos()`, `-(a' * a.sin())`, `a' * (1 + y * y)` |
//! | `a.sinh()`, `a.cosh()`, `a.tanh()` | `a' * a.cosh()`, `a' * a.sinh()`, `a' * (1 - y * y)` |
//! | `a.abs()` | `a' * a.signum()` (so `+1` at `0`, a subgradient) |
//! | `a.signum()` | `0` (almost everywhere) |
//! | `quad(&A, &v)` | `Σ_i v_i' * Σ_j (A[i][j] + A[j][i]) * v_j` |

use std::collections::HashMap;

use super::ir::{Func, Graph, Id, Node};

/// The derivatives of `value` with respect to the `n` variables: the gradient, and the upper
/// triangle of the Hessian mirrored into a full matrix.
#[allow(clippy::needless_range_loop)] // The mirrored fill reads best with indices.
pub fn derivatives(graph: &mut Graph, value: Id, n: usize) -> (Vec<Id>, Vec<Vec<Id>>) {
    let mut diff = Diff { graph, memo: HashMap::new() };
    let grad: Vec<Id> = (0..n).map(|k| diff.d(value, k)).collect();
    let mut hess = vec![vec![0; n]; n];
    for l in 0..n {
        for (k, &gk) in grad.iter().enumerate().take(l + 1) {
            let h = diff.d(gk, l);
            hess[k][l] = h;
            hess[l][k] = h;
        }
    }
    (grad, hess)
}

struct Diff<'g> {
    graph: &'g mut Graph,
    memo: HashMap<(Id, usize), Id>,
}

impl Diff<'_> {
    /// `∂y/∂x_k`.
    fn d(&mut self, y: Id, k: usize) -> Id {
        if let Some(&dy) = self.memo.get(&(y, k)) {
            return dy;
        }
        let dy = if self.graph.is_constant(y) { self.graph.lit(0.0) } else { self.rule(y, k) };
        self.graph.derived(y, k, dy);
        self.memo.insert((y, k), dy);
        dy
    }

    /// The table of rules.
    fn rule(&mut self, y: Id, k: usize) -> Id {
        let g = &mut *self.graph;
        match g.nodes[y].clone() {
            Node::Lit(_) | Node::Const(_) => g.lit(0.0),
            Node::Var(i) => g.lit(if i == k { 1.0 } else { 0.0 }),
            Node::Neg(a) => {
                let da = self.d(a, k);
                self.graph.neg(da)
            }
            Node::Add(a, b) => {
                let (da, db) = (self.d(a, k), self.d(b, k));
                self.graph.add(da, db)
            }
            Node::Sub(a, b) => {
                let (da, db) = (self.d(a, k), self.d(b, k));
                self.graph.sub(da, db)
            }
            Node::Mul(a, b) => {
                let (da, db) = (self.d(a, k), self.d(b, k));
                let g = &mut *self.graph;
                let (left, right) = (g.mul(da, b), g.mul(a, db));
                g.add(left, right)
            }
            Node::Div(a, b) => {
                let (da, db) = (self.d(a, k), self.d(b, k));
                let g = &mut *self.graph;
                let y_db = g.mul(y, db);
                let numerator = g.sub(da, y_db);
                g.div(numerator, b)
            }
            Node::Powi(a, n) => {
                let da = self.d(a, k);
                let g = &mut *self.graph;
                let n_lit = g.lit(f64::from(n));
                let power = g.powi(a, n - 1);
                let slope = g.mul(n_lit, power);
                g.mul(da, slope)
            }
            Node::Powf(a, b) if self.graph.is_constant(b) => {
                let da = self.d(a, k);
                let g = &mut *self.graph;
                let one = g.lit(1.0);
                let b_minus_one = g.sub(b, one);
                let power = g.powf(a, b_minus_one);
                let slope = g.mul(b, power);
                g.mul(da, slope)
            }
            Node::Powf(a, b) => {
                let (da, db) = (self.d(a, k), self.d(b, k));
                let g = &mut *self.graph;
                let ln_a = g.call(Func::Ln, a);
                let from_exponent = g.mul(db, ln_a);
                let b_da = g.mul(b, da);
                let from_base = g.div(b_da, a);
                let sum = g.add(from_exponent, from_base);
                g.mul(y, sum)
            }
            Node::Call(func, a) => {
                let da = self.d(a, k);
                let g = &mut *self.graph;
                match func {
                    Func::Sqrt => {
                        let two = g.lit(2.0);
                        let two_y = g.mul(two, y);
                        g.div(da, two_y)
                    }
                    Func::Exp => g.mul(da, y),
                    Func::Ln => g.div(da, a),
                    Func::Sin => {
                        let cos = g.call(Func::Cos, a);
                        g.mul(da, cos)
                    }
                    Func::Cos => {
                        let sin = g.call(Func::Sin, a);
                        let product = g.mul(da, sin);
                        g.neg(product)
                    }
                    Func::Tan => {
                        let (one, y2) = (g.lit(1.0), g.mul(y, y));
                        let slope = g.add(one, y2);
                        g.mul(da, slope)
                    }
                    Func::Sinh => {
                        let cosh = g.call(Func::Cosh, a);
                        g.mul(da, cosh)
                    }
                    Func::Cosh => {
                        let sinh = g.call(Func::Sinh, a);
                        g.mul(da, sinh)
                    }
                    Func::Tanh => {
                        let (one, y2) = (g.lit(1.0), g.mul(y, y));
                        let slope = g.sub(one, y2);
                        g.mul(da, slope)
                    }
                    Func::Abs => {
                        let sign = g.call(Func::Signum, a);
                        g.mul(da, sign)
                    }
                    Func::Signum => g.lit(0.0),
                }
            }
            Node::Quad(matrix, v) => {
                let mut total = self.graph.lit(0.0);
                for i in 0..v.len() {
                    let dvi = self.d(v[i], k);
                    if self.graph.value(dvi) == Some(0.0) {
                        continue;
                    }
                    let g = &mut *self.graph;
                    // ∂q/∂v_i = Σ_j (A[i][j] + A[j][i]) v_j
                    let mut partial = g.lit(0.0);
                    for (j, &vj) in v.iter().enumerate() {
                        // A[i][j] + A[j][i] with the smaller index first, so that entry (i, j)
                        // and entry (j, i) share one node.
                        let (lo, hi) = (i.min(j), i.max(j));
                        let (first, second) = (g.matrix_element(matrix, lo, hi), g.matrix_element(matrix, hi, lo));
                        let coefficient = g.add(first, second);
                        let term = g.mul(coefficient, vj);
                        partial = g.add(partial, term);
                    }
                    let term = g.mul(dvi, partial);
                    total = g.add(total, term);
                }
                total
            }
        }
    }
}
