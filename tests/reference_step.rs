//! The fused, generated training step against a plain, unfused step written here by hand:
//! naive loops for the forward pass, softmax cross-entropy, the backward pass and the optimizer
//! updates, one operation at a time.

mod common;

use common::*;
use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<7, 9>,
    act1: Relu,
    fc2: Linear<9, 5>,
    act2: Tanh,
    fc3: Linear<5, 3>,
}

/// The network as plain matrices: `w[l]` is `[out][in]`, `b[l]` is `[out]`.
#[derive(Clone, Debug)]
struct Plain {
    w: Vec<Vec<Vec<f64>>>,
    b: Vec<Vec<f64>>,
}

fn plain_of(m: &Mlp<f64>) -> Plain {
    let layer = |w: ndarray::ArrayView2<f64>, b: ndarray::ArrayView1<f64>| {
        (w.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(), b.to_vec())
    };
    let (w1, b1) = layer(m.fc1.weight(), m.fc1.bias().unwrap());
    let (w2, b2) = layer(m.fc2.weight(), m.fc2.bias().unwrap());
    let (w3, b3) = layer(m.fc3.weight(), m.fc3.bias().unwrap());
    Plain { w: vec![w1, w2, w3], b: vec![b1, b2, b3] }
}

fn affine(x: &[Vec<f64>], w: &[Vec<f64>], b: &[f64]) -> Vec<Vec<f64>> {
    x.iter()
        .map(|row| w.iter().zip(b).map(|(wr, bj)| bj + wr.iter().zip(row).map(|(a, c)| a * c).sum::<f64>()).collect())
        .collect()
}

/// Loss and gradients (same layout as the parameters) of the unfused network.
fn plain_gradients(p: &Plain, x: &[Vec<f64>], labels: &[usize]) -> (f64, Plain) {
    let n = x.len() as f64;
    let z1 = affine(x, &p.w[0], &p.b[0]);
    let h1: Vec<Vec<f64>> = z1.iter().map(|r| r.iter().map(|v| v.max(0.0)).collect()).collect();
    let z2 = affine(&h1, &p.w[1], &p.b[1]);
    let h2: Vec<Vec<f64>> = z2.iter().map(|r| r.iter().map(|v| v.tanh()).collect()).collect();
    let z3 = affine(&h2, &p.w[2], &p.b[2]);
    // Softmax, then cross-entropy, then its gradient: three separate steps.
    let probs: Vec<Vec<f64>> = z3
        .iter()
        .map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        })
        .collect();
    let loss = -probs.iter().zip(labels).map(|(p, &l)| p[l].ln()).sum::<f64>() / n;
    let mut d3 = probs.clone();
    for (r, &l) in d3.iter_mut().zip(labels) {
        r[l] -= 1.0;
        r.iter_mut().for_each(|v| *v /= n);
    }
    let back = |d: &[Vec<f64>], input: &[Vec<f64>], w: &[Vec<f64>]| {
        let (outs, ins) = (w.len(), w[0].len());
        let dw: Vec<Vec<f64>> = (0..outs)
            .map(|o| (0..ins).map(|i| d.iter().zip(input).map(|(dr, xr)| dr[o] * xr[i]).sum()).collect())
            .collect();
        let db: Vec<f64> = (0..outs).map(|o| d.iter().map(|r| r[o]).sum()).collect();
        let dx: Vec<Vec<f64>> =
            d.iter().map(|dr| (0..ins).map(|i| (0..outs).map(|o| dr[o] * w[o][i]).sum()).collect()).collect();
        (dw, db, dx)
    };
    let (dw3, db3, dh2) = back(&d3, &h2, &p.w[2]);
    let d2: Vec<Vec<f64>> =
        dh2.iter().zip(&h2).map(|(g, h)| g.iter().zip(h).map(|(g, h)| g * (1.0 - h * h)).collect()).collect();
    let (dw2, db2, dh1) = back(&d2, &h1, &p.w[1]);
    let d1: Vec<Vec<f64>> = dh1
        .iter()
        .zip(&z1)
        .map(|(g, z)| g.iter().zip(z).map(|(g, z)| if *z > 0.0 { *g } else { 0.0 }).collect())
        .collect();
    let (dw1, db1, _) = back(&d1, x, &p.w[0]);
    (loss, Plain { w: vec![dw1, dw2, dw3], b: vec![db1, db2, db3] })
}

/// Every parameter of a `Plain`, flattened in `Parameters` order.
fn flat(p: &Plain) -> Vec<Vec<f64>> {
    (0..3).flat_map(|l| [p.w[l].concat(), p.b[l].clone()]).collect()
}

fn flat_model(m: &Mlp<f64>) -> Vec<Vec<f64>> {
    m.params().iter().map(|p| p.data.to_vec()).collect()
}

fn assert_close(a: &[Vec<f64>], b: &[Vec<f64>], what: &str) {
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        for (j, (u, v)) in x.iter().zip(y).enumerate() {
            assert!((u - v).abs() <= 1e-12 * (1.0 + u.abs().max(v.abs())), "{what}: tensor {t}[{j}]: {u} vs {v}");
        }
    }
}

fn data() -> (Vec<Vec<f64>>, Vec<usize>, ndarray::Array2<f64>, ndarray::Array1<usize>) {
    let x = inputs(10, 7, 21) * 2.0;
    let l = labels(10, 3, 22);
    (x.outer_iter().map(|r| r.to_vec()).collect(), l.to_vec(), x, l)
}

#[test]
fn gradients_equal_the_unfused_reference() {
    let model = Mlp::<f64>::init(20);
    let (xs, ls, x, l) = data();
    let (loss, grads) = model.gradients(x.view(), l.view()).unwrap();
    let (ref_loss, ref_grads) = plain_gradients(&plain_of(&model), &xs, &ls);
    assert!((loss - ref_loss).abs() < 1e-12, "{loss} vs {ref_loss}");
    assert_close(&flat_model(&grads), &flat(&ref_grads), "gradient");
}

/// Runs `steps` fused steps and as many reference steps, where the reference applies
/// `update(t, params, grads, states)` to every flattened tensor after the full backward pass.
fn compare<O: Optimizer<f64>>(
    optimizer: O,
    steps: usize,
    mut update: impl FnMut(u64, &mut [Vec<f64>], &[Vec<f64>], &mut [Vec<f64>]),
) {
    let mut model = Mlp::<f64>::init(30);
    let (xs, ls, x, l) = data();
    let mut trainer = model.trainer(optimizer, 16);
    let mut reference = flat_model(&model);
    let mut states: Vec<Vec<f64>> = reference.iter().map(|t| vec![0.0; 2 * t.len()]).collect();
    for t in 1..=steps as u64 {
        let loss = trainer.step(&mut model, x.view(), l.view()).unwrap();
        let (ref_loss, g) = plain_gradients(&unflatten(&reference), &xs, &ls);
        assert!((loss - ref_loss).abs() < 1e-12, "step {t}: loss {loss} vs {ref_loss}");
        update(t, &mut reference, &flat(&g), &mut states);
        assert_close(&flat_model(&model), &reference, &format!("weights after step {t}"));
    }
}

fn unflatten(f: &[Vec<f64>]) -> Plain {
    let sizes = [(9, 7), (5, 9), (3, 5)];
    let mut p = Plain { w: vec![], b: vec![] };
    for (l, &(o, i)) in sizes.iter().enumerate() {
        p.w.push((0..o).map(|r| f[2 * l][r * i..(r + 1) * i].to_vec()).collect());
        p.b.push(f[2 * l + 1].clone());
    }
    p
}

#[test]
fn fused_sgd_with_nesterov_momentum_equals_the_reference() {
    let (lr, mu, wd) = (0.1, 0.9, 1e-3);
    compare(Sgd::new(lr).momentum(mu).nesterov(true).weight_decay(wd), 6, |t, params, grads, states| {
        for ((x, g), s) in params.iter_mut().zip(grads).zip(states) {
            for j in 0..x.len() {
                let gj = g[j] + wd * x[j];
                s[j] = if t == 1 { gj } else { mu * s[j] + gj };
                x[j] -= lr * (gj + mu * s[j]);
            }
        }
    });
}

#[test]
fn fused_adam_equals_the_reference() {
    let (lr, b1, b2, eps) = (0.01, 0.9, 0.999, 1e-8);
    compare(Adam::new(lr), 6, |t, params, grads, states| {
        for ((x, g), s) in params.iter_mut().zip(grads).zip(states) {
            let (m, v) = s.split_at_mut(x.len());
            for j in 0..x.len() {
                m[j] = b1 * m[j] + (1.0 - b1) * g[j];
                v[j] = b2 * v[j] + (1.0 - b2) * g[j] * g[j];
                let mh = m[j] / (1.0 - b1.powi(t as i32));
                let vh = v[j] / (1.0 - b2.powi(t as i32));
                x[j] -= lr * mh / (vh.sqrt() + eps);
            }
        }
    });
}

#[test]
fn fused_hdm_with_the_global_norm_equals_the_reference() {
    let (e, gamma) = (0.5, 2.0 / 3.0);
    let d = 1.0 / (1.0 + gamma * e);
    compare(Hdm::new(e).gamma(gamma).norm(MomentumNorm::Global), 6, |_, params, grads, states| {
        // The momentum's norm is taken over every tensor at once.
        for (g, p) in grads.iter().zip(states.iter_mut()) {
            for j in 0..g.len() {
                p[j] = d * p[j] - e * d * g[j];
            }
        }
        let norm2: f64 = states.iter().zip(grads).map(|(p, g)| p[..g.len()].iter().map(|v| v * v).sum::<f64>()).sum();
        for (x, p) in params.iter_mut().zip(states.iter()) {
            for j in 0..x.len() {
                x[j] += e * p[j] / (norm2 + 1.0).sqrt();
            }
        }
    });
}

#[test]
fn clipping_defers_updates_and_scales_by_the_global_norm() {
    let mut model = Mlp::<f64>::init(40);
    let (xs, ls, x, l) = data();
    let lr = 0.5;
    let max_norm = 0.05;
    let mut trainer = model.trainer(Sgd::new(lr), 16).with_clip_grad_norm(max_norm);
    let mut reference = flat_model(&model);
    for _ in 0..3 {
        trainer.step(&mut model, x.view(), l.view()).unwrap();
        let g = flat(&plain_gradients(&unflatten(&reference), &xs, &ls).1);
        let norm = g.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > max_norm, "the test needs gradients larger than the clip");
        let c = max_norm / (norm + 1e-6);
        for (r, gt) in reference.iter_mut().zip(&g) {
            for (x, g) in r.iter_mut().zip(gt) {
                *x -= lr * c * g;
            }
        }
        assert_close(&flat_model(&model), &reference, "clipped SGD");
    }
}
