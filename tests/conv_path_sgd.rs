//! Path-SGD on convolutional networks: every scale and the path norm against an enumeration of
//! every path of the network unrolled into single edges (a convolution's weight lies on one edge
//! per output position it reaches; pooling windows are edges of weight 1 for max and `1 / K^2`
//! for average), and the update's invariance to rescaling a convolution's output channel.

mod common;

use common::*;
use hdm::prelude::*;
use ndarray::Array2;

#[network(input = [1, 4, 3], loss = mse)]
struct Small {
    conv: Conv2d<1, 2, 2, 1, 1>,
    a1: Relu,
    pool: MaxPool2d<2>,
    up: ConvTranspose2d<2, 1, 2, 2>,
    a2: LeakyRelu<0.3>,
    avg: AvgPool2d<2>,
    flat: Flatten,
    fc: Linear<4, 2>,
}

/// One edge of the unrolled network: from unit `from` (or a bias: `None`) of the layer's input
/// to unit `to` of its output, with its weight and the parameter element it is (`(tensor,
/// element)`), if any.
#[derive(Clone, Copy, Debug)]
struct Edge {
    from: Option<usize>,
    to: usize,
    w: f64,
    param: Option<(usize, usize)>,
}

/// The layers of `Small` unrolled into edges (tensors in `Parameters` order: conv.weight,
/// conv.bias, up.weight, up.bias, fc.weight, fc.bias).
fn unroll(m: &Small<f64>) -> (usize, Vec<Vec<Edge>>) {
    let mut layers = Vec::new();
    // conv: [1, 4, 3] -> [2, 5, 4], kernel 2, padding 1
    let (w, b) = (m.conv.weight(), m.conv.bias().unwrap());
    let mut e = Vec::new();
    for o in 0..2 {
        for oh in 0..5 {
            for ow in 0..4 {
                let to = (o * 5 + oh) * 4 + ow;
                e.push(Edge { from: None, to, w: b[o], param: Some((1, o)) });
                for kh in 0..2 {
                    for kw in 0..2 {
                        let (ih, iw) = (oh as isize + kh as isize - 1, ow as isize + kw as isize - 1);
                        if (0..4).contains(&ih) && (0..3).contains(&iw) {
                            let from = (ih * 3 + iw) as usize;
                            e.push(Edge {
                                from: Some(from),
                                to,
                                w: w[[o, 0, kh, kw]],
                                param: Some((0, (o * 2 + kh) * 2 + kw)),
                            });
                        }
                    }
                }
            }
        }
    }
    layers.push(e);
    // max pool 2: [2, 5, 4] -> [2, 2, 2]
    let mut e = Vec::new();
    for c in 0..2 {
        for oh in 0..2 {
            for ow in 0..2 {
                for a in 0..2 {
                    for bb in 0..2 {
                        let from = (c * 5 + 2 * oh + a) * 4 + 2 * ow + bb;
                        e.push(Edge { from: Some(from), to: (c * 2 + oh) * 2 + ow, w: 1.0, param: None });
                    }
                }
            }
        }
    }
    layers.push(e);
    // transposed convolution [2, 2, 2] -> [1, 4, 4], kernel 2, stride 2
    let (w, b) = (m.up.weight(), m.up.bias().unwrap());
    let mut e = Vec::new();
    for to in 0..16 {
        e.push(Edge { from: None, to, w: b[0], param: Some((3, 0)) });
    }
    for ci in 0..2 {
        for h in 0..2 {
            for x in 0..2 {
                for kh in 0..2 {
                    for kw in 0..2 {
                        let to = (2 * h + kh) * 4 + 2 * x + kw;
                        let from = (ci * 2 + h) * 2 + x;
                        e.push(Edge {
                            from: Some(from),
                            to,
                            w: w[[ci, 0, kh, kw]],
                            param: Some((2, ci * 4 + kh * 2 + kw)),
                        });
                    }
                }
            }
        }
    }
    layers.push(e);
    // average pool 2: [1, 4, 4] -> [1, 2, 2]
    let mut e = Vec::new();
    for oh in 0..2 {
        for ow in 0..2 {
            for a in 0..2 {
                for bb in 0..2 {
                    e.push(Edge { from: Some((2 * oh + a) * 4 + 2 * ow + bb), to: oh * 2 + ow, w: 0.25, param: None });
                }
            }
        }
    }
    layers.push(e);
    // fc: 4 -> 2
    let (w, b) = (m.fc.weight(), m.fc.bias().unwrap());
    let mut e = Vec::new();
    for v in 0..2 {
        e.push(Edge { from: None, to: v, w: b[v], param: Some((5, v)) });
        for u in 0..4 {
            e.push(Edge { from: Some(u), to: v, w: w[[v, u]], param: Some((4, v * 4 + u)) });
        }
    }
    layers.push(e);
    (12, layers)
}

/// Every path (as its edges) from an input unit or a bias to an output unit.
fn paths(inputs: usize, layers: &[Vec<Edge>]) -> Vec<Vec<Edge>> {
    fn extend(layers: &[Vec<Edge>], l: usize, unit: usize, path: Vec<Edge>, out: &mut Vec<Vec<Edge>>) {
        if l == layers.len() {
            out.push(path);
            return;
        }
        for e in layers[l].iter().filter(|e| e.from == Some(unit)) {
            let mut p = path.clone();
            p.push(*e);
            extend(layers, l + 1, e.to, p, out);
        }
    }
    let mut out = Vec::new();
    for u in 0..inputs {
        extend(layers, 0, u, vec![], &mut out);
    }
    for (l, layer) in layers.iter().enumerate() {
        for e in layer.iter().filter(|e| e.from.is_none()) {
            extend(layers, l + 1, e.to, vec![*e], &mut out);
        }
    }
    out
}

#[test]
fn scales_and_norm_equal_the_enumeration_of_every_path() {
    let model = Small::<f64>::init(3);
    let (inputs, layers) = unroll(&model);
    let mut want: Vec<Vec<f64>> = model.params().iter().map(|p| vec![0.0; p.data.len()]).collect();
    let mut norm2 = 0.0;
    let all = paths(inputs, &layers);
    assert!(all.len() > 500, "{} paths", all.len());
    for p in &all {
        norm2 += p.iter().map(|e| e.w * e.w).product::<f64>();
        for (k, e) in p.iter().enumerate() {
            if let Some((t, i)) = e.param {
                want[t][i] += p.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, f)| f.w * f.w).product::<f64>();
            }
        }
    }
    let got = model.path_scales();
    for (p, w) in got.params().iter().zip(&want) {
        for (j, (a, b)) in p.data.iter().zip(w).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{}[{j}]: {a} vs enumerated {b}", p.name);
        }
    }
    let norm = model.path_norm();
    assert!((norm * norm - norm2).abs() <= 1e-12 * norm2, "{} vs {norm2}", norm * norm);
}

#[network(input = [2, 8, 8], loss = softmax_cross_entropy)]
struct Net {
    conv1: Conv2d<2, 5, 3, 1, 1>,
    a1: Relu,
    pool: MaxPool2d<2>,
    conv2: Conv2d<5, 4, 3, 2, 1>,
    a2: Relu,
    flat: Flatten,
    fc: Linear<16, 3>,
}

/// Multiplies conv1's output channel `c` (its filter and bias) by `k` and conv2's weights from
/// that channel by `1 / k`: ReLU and max pooling are positively homogeneous per channel, so the
/// function does not change.
fn rescale(m: &mut Net<f64>, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        let (c, k) = (rng.below(5), (1.5 * rng.normal()).exp());
        m.conv1.weight_mut().index_axis_mut(ndarray::Axis(0), c).mapv_inplace(|w| w * k);
        m.conv1.bias_mut().unwrap()[c] *= k;
        m.conv2.weight_mut().index_axis_mut(ndarray::Axis(1), c).mapv_inplace(|w| w / k);
    }
}

fn max_rel_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + x.abs().max(y.abs()))).fold(0.0, f64::max)
}

#[test]
fn path_sgd_is_invariant_to_rescaling_channels_and_sgd_is_not() {
    let x = inputs(12, 128, 3);
    let l = labels(12, 3, 4);
    let probe = inputs(5, 128, 5);
    let balanced = Net::<f64>::init(6);
    let mut unbalanced = balanced.clone();
    rescale(&mut unbalanced, 7);
    let before = balanced.forward(probe.view()).unwrap();
    assert!(
        max_rel_diff(&before, &unbalanced.forward(probe.view()).unwrap()) < 1e-12,
        "rescaling changed the function"
    );
    let (na, nb) = (balanced.path_norm(), unbalanced.path_norm());
    assert!((na - nb).abs() < 1e-12 * na, "path norm {na} vs {nb}");
    let after = |mut m: Net<f64>, path: bool| {
        if path {
            let mut t = m.trainer(PathSgd::new(0.05), 12);
            for _ in 0..3 {
                t.step(&mut m, x.view(), l.view()).unwrap();
            }
        } else {
            let mut t = m.trainer(Sgd::new(0.05), 12);
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
