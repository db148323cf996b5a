//! Path-SGD's scales against a brute-force enumeration of every input-to-output path, and the
//! rescaling invariance that is the point of the method.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

mod common;

use common::*;
use hdm::prelude::*;
use ndarray::Array2;

#[network(loss = softmax_cross_entropy)]
struct TwoHidden {
    fc1: Linear<3, 4>,
    a1: Relu,
    fc2: Linear<4, 5>,
    a2: Relu,
    fc3: Linear<5, 2>,
}

#[network(loss = mse)]
struct ThreeHidden {
    fc1: Linear<3, 4>,
    a1: LeakyRelu<0.2>,
    fc2: Linear<4, 3, NoBias>,
    a2: Identity,
    fc3: Linear<3, 5>,
    a3: Relu,
    fc4: Linear<5, 2>,
}

/// A dense network as plain matrices, in order: `(W [out][in], bias)`.
type Layers = Vec<(Vec<Vec<f64>>, Option<Vec<f64>>)>;

fn layers_of<M: Network<f64>>(m: &M) -> Layers {
    let params = m.params();
    let mut out: Layers = Vec::new();
    for p in &params {
        if p.name.ends_with(".weight") {
            let (o, i) = (p.shape[0], p.shape[1]);
            out.push(((0..o).map(|r| p.data[r * i..(r + 1) * i].to_vec()).collect(), None));
        } else {
            out.last_mut().unwrap().1 = Some(p.data.to_vec());
        }
    }
    out
}

/// An edge of a path: the weight `(layer, v, u)` or the bias `(layer, v)`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Edge {
    W(usize, usize, usize),
    B(usize, usize),
}

/// Every path from an input unit or a bias to an output unit, as its edges.
fn paths(layers: &Layers) -> Vec<Vec<Edge>> {
    fn extend(layers: &Layers, layer: usize, unit: usize, path: Vec<Edge>, out: &mut Vec<Vec<Edge>>) {
        if layer == layers.len() {
            out.push(path);
            return;
        }
        for v in 0..layers[layer].0.len() {
            let mut p = path.clone();
            p.push(Edge::W(layer, v, unit));
            extend(layers, layer + 1, v, p, out);
        }
    }
    let mut out = Vec::new();
    for u in 0..layers[0].0[0].len() {
        extend(layers, 0, u, vec![], &mut out);
    }
    for (l, (w, b)) in layers.iter().enumerate() {
        if b.is_some() {
            for v in 0..w.len() {
                extend(layers, l + 1, v, vec![Edge::B(l, v)], &mut out);
            }
        }
    }
    out
}

fn value(layers: &Layers, e: Edge) -> f64 {
    match e {
        Edge::W(l, v, u) => layers[l].0[v][u],
        Edge::B(l, v) => layers[l].1.as_ref().unwrap()[v],
    }
}

/// `(scale of every parameter in Parameters order, path norm squared)` by enumeration.
fn brute_force(layers: &Layers) -> (Vec<Vec<f64>>, f64) {
    let mut scales: Vec<Vec<f64>> = Vec::new();
    for (w, b) in layers {
        scales.push(vec![0.0; w.len() * w[0].len()]);
        if let Some(b) = b {
            scales.push(vec![0.0; b.len()]);
        }
    }
    let index = |e: Edge| -> (usize, usize) {
        let mut t = 0;
        for (l, (w, b)) in layers.iter().enumerate() {
            match e {
                Edge::W(el, v, u) if el == l => return (t, v * w[0].len() + u),
                Edge::B(el, v) if el == l => return (t + 1, v),
                _ => t += 1 + b.is_some() as usize,
            }
        }
        unreachable!()
    };
    let mut norm2 = 0.0;
    for p in paths(layers) {
        norm2 += p.iter().map(|&e| value(layers, e).powi(2)).product::<f64>();
        for (k, &e) in p.iter().enumerate() {
            let others: f64 =
                p.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, &f)| value(layers, f).powi(2)).product();
            let (t, i) = index(e);
            scales[t][i] += others;
        }
    }
    (scales, norm2)
}

fn check_against_enumeration<M: Network<f64, PathCapability = hdm::path::Homogeneous>>(model: &M) {
    let (want, norm2) = brute_force(&layers_of(model));
    let got = model.path_scales();
    for (p, w) in got.params().iter().zip(&want) {
        assert_eq!(p.data.len(), w.len(), "{}", p.name);
        for (j, (a, b)) in p.data.iter().zip(w).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{}[{j}]: {a} vs enumerated {b}", p.name);
        }
    }
    let norm = model.path_norm();
    assert!((norm * norm - norm2).abs() <= 1e-12 * norm2, "{} vs {}", norm * norm, norm2);
}

#[test]
fn scales_and_norm_equal_the_enumeration_of_every_path() {
    check_against_enumeration(&TwoHidden::<f64>::init(1));
    check_against_enumeration(&ThreeHidden::<f64>::init(2));
}

#[network(loss = softmax_cross_entropy)]
struct Relu3 {
    fc1: Linear<5, 7>,
    a1: Relu,
    fc2: Linear<7, 6>,
    a2: Relu,
    fc3: Linear<6, 3>,
}

/// Multiplies the incoming weights and bias of hidden units by `c` and divides their outgoing
/// weights by it: the function does not change.
fn rescale(m: &mut Relu3<f64>, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..6 {
        let c = (2.0 * rng.normal()).exp();
        if rng.below(2) == 0 {
            let j = rng.below(7);
            m.fc1.weight_mut().row_mut(j).mapv_inplace(|w| w * c);
            m.fc1.bias_mut().unwrap()[j] *= c;
            m.fc2.weight_mut().column_mut(j).mapv_inplace(|w| w / c);
        } else {
            let j = rng.below(6);
            m.fc2.weight_mut().row_mut(j).mapv_inplace(|w| w * c);
            m.fc2.bias_mut().unwrap()[j] *= c;
            m.fc3.weight_mut().column_mut(j).mapv_inplace(|w| w / c);
        }
    }
}

fn max_rel_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + x.abs().max(y.abs()))).fold(0.0, f64::max)
}

#[test]
fn path_sgd_is_invariant_to_rescaling_hidden_units_and_sgd_is_not() {
    let x = inputs(16, 5, 3) * 2.0;
    let l = labels(16, 3, 4);
    let probe = inputs(9, 5, 5);
    let balanced = Relu3::<f64>::init(6);
    let mut unbalanced = balanced.clone();
    rescale(&mut unbalanced, 7);
    let before = balanced.forward(probe.view()).unwrap();
    assert!(
        max_rel_diff(&before, &unbalanced.forward(probe.view()).unwrap()) < 1e-12,
        "rescaling changed the function"
    );
    let (na, nb) = (balanced.path_norm(), unbalanced.path_norm());
    assert!((na - nb).abs() < 1e-12 * na, "path norm {na} vs {nb}");

    let after = |mut m: Relu3<f64>, path: bool| {
        if path {
            let mut t = m.trainer(PathSgd::new(0.05), 16);
            for _ in 0..3 {
                t.step(&mut m, x.view(), l.view()).unwrap();
            }
        } else {
            let mut t = m.trainer(Sgd::new(0.05), 16);
            for _ in 0..3 {
                t.step(&mut m, x.view(), l.view()).unwrap();
            }
        }
        m.forward(probe.view()).unwrap()
    };
    let (p1, p2) = (after(balanced.clone(), true), after(unbalanced.clone(), true));
    assert!(max_rel_diff(&p1, &before) > 1e-3, "Path-SGD did not move");
    assert!(max_rel_diff(&p1, &p2) < 1e-9, "Path-SGD: {}", max_rel_diff(&p1, &p2));
    let (s1, s2) = (after(balanced, false), after(unbalanced, false));
    assert!(max_rel_diff(&s1, &s2) > 1e-3, "SGD should depend on the scaling: {}", max_rel_diff(&s1, &s2));
}

#[network(
    loss = mse,
    forward = |x| {
        let h = relu(fc1(x));
        let s = fc2(h) + h;
        fc3(concat(s, x))
    }
)]
struct Dag {
    fc1: Linear<3, 4>,
    fc2: Linear<4, 4>,
    fc3: Linear<7, 2>,
}

#[test]
fn additions_and_concatenations_are_edges_of_weight_one() {
    // By hand: s = fc2(h) + h reaches the output through fc3's first 4 columns; h reaches s both
    // through fc2 and directly (an edge of weight 1); x reaches fc3's last 3 columns directly.
    let m = Dag::<f64>::init(8);
    let scales = m.path_scales();
    let (w1, b1) = (m.fc1.weight(), m.fc1.bias().unwrap());
    let (w2, b2) = (m.fc2.weight(), m.fc2.bias().unwrap());
    let w3 = m.fc3.weight();
    // gamma_in
    let gin_h: Vec<f64> = (0..4).map(|v| (0..3).map(|u| w1[[v, u]].powi(2)).sum::<f64>() + b1[v].powi(2)).collect();
    let gin_s: Vec<f64> =
        (0..4).map(|v| (0..4).map(|u| w2[[v, u]].powi(2) * gin_h[u]).sum::<f64>() + b2[v].powi(2) + gin_h[v]).collect();
    // gamma_out
    let gout_s: Vec<f64> = (0..4).map(|u| (0..2).map(|v| w3[[v, u]].powi(2)).sum()).collect();
    let gout_h: Vec<f64> =
        (0..4).map(|u| (0..4).map(|v| w2[[v, u]].powi(2) * gout_s[v]).sum::<f64>() + gout_s[u]).collect();
    for v in 0..4 {
        for u in 0..3 {
            let want = gout_h[v];
            let got = scales.fc1.weight()[[v, u]];
            assert!((got - want).abs() < 1e-12 * want, "fc1.weight[{v},{u}]: {got} vs {want}");
        }
        for u in 0..4 {
            let want = gin_h[u] * gout_s[v];
            assert!((scales.fc2.weight()[[v, u]] - want).abs() < 1e-12 * want);
        }
        assert!((scales.fc2.bias().unwrap()[v] - gout_s[v]).abs() < 1e-12 * gout_s[v]);
    }
    for v in 0..2 {
        for u in 0..7 {
            let want = if u < 4 { gin_s[u] } else { 1.0 };
            assert!((scales.fc3.weight()[[v, u]] - want).abs() < 1e-12 * want, "fc3.weight[{v},{u}]");
        }
    }
}
