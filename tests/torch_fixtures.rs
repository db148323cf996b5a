//! Every convolutional layer against PyTorch's own outputs and gradients, from fixtures that
//! `tests/fixtures/torch/make_fixtures.py` wrote once with torch (float64): each layer alone on
//! 1, 2 and 3 threads (which must also agree bit for bit), and two networks (a LeNet with batch
//! normalisation, and a DCGAN-like generator of transposed convolutions) through inference, a
//! training loss and its gradients, and three steps of SGD with momentum, running statistics
//! included.

mod common;

use std::sync::Arc;

use common::fixture::{close, Fixture};

use hdm::conv::{self, Conv2dGeometry};
use hdm::gemm::{MatMut, MatRef, Pool};
use hdm::pooling::{self, Pool2dGeometry};
use hdm::prelude::*;
use hdm::{kernels, norm, BatchNorm};
use ndarray::{Array1, Array2};

fn pools() -> Vec<Arc<Pool<f64>>> {
    [1, 2, 3].into_iter().map(|t| Arc::new(Pool::new(t))).collect()
}

/// Runs `f` on pools of 1, 2 and 3 threads and checks that they agree bit for bit.
fn on_every_pool(what: &str, f: impl Fn(&Pool<f64>) -> Vec<Vec<f64>>) {
    let results: Vec<Vec<Vec<f64>>> = pools().iter().map(|p| f(p)).collect();
    for r in &results[1..] {
        let bits = |v: &Vec<Vec<f64>>| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(r), bits(&results[0]), "{what}: another number of threads gave other bits");
    }
}

#[test]
fn conv2d_matches_pytorch() {
    let fx = Fixture::open("layers.safetensors");
    for (name, c) in fx.cases("conv") {
        let geom = Conv2dGeometry::new([c["in"], c["h"], c["w"]], c["out"], c["k"], c["s"], c["p"]);
        let (n, bias) = (c["n"], c["bias"] == 1);
        let x = fx.get(&format!("{name}.x"));
        let w = fx.get(&format!("{name}.weight"));
        let b: &[f64] = if bias { fx.get(&format!("{name}.bias")) } else { &[] };
        let dy = fx.get(&format!("{name}.dy"));
        on_every_pool(&name, |pool| {
            let mut y = vec![f64::NAN; n * geom.out_len()];
            let xm = MatRef::row_major(x, n, geom.in_len());
            conv::forward(pool, geom, xm, w, b, Identity, MatMut::row_major(&mut y, n, geom.out_len()), None);
            close(&format!("{name}.y"), &y, fx.get(&format!("{name}.y")));
            let (mut dx, mut dw) = (vec![f64::NAN; n * geom.in_len()], vec![f64::NAN; w.len()]);
            let dym = MatRef::row_major(dy, n, geom.out_len());
            conv::backward(
                pool,
                geom,
                dym,
                xm,
                w,
                Some(&mut dw),
                false,
                Some((MatMut::row_major(&mut dx, n, geom.in_len()), false)),
            );
            close(&format!("{name}.dx"), &dx, fx.get(&format!("{name}.dx")));
            close(&format!("{name}.dweight"), &dw, fx.get(&format!("{name}.dweight")));
            let mut db = vec![0.0; geom.out_channels];
            kernels::par::channel_sums(pool, dym, geom.positions(), &mut db, false);
            if bias {
                close(&format!("{name}.dbias"), &db, fx.get(&format!("{name}.dbias")));
            }
            vec![y, dx, dw, db]
        });
    }
}

#[test]
fn conv_transpose2d_matches_pytorch() {
    let fx = Fixture::open("layers.safetensors");
    for (name, c) in fx.cases("conv_transpose") {
        let geom = Conv2dGeometry::transposed([c["in"], c["h"], c["w"]], c["out"], c["k"], c["s"], c["p"], c["op"]);
        let (n, bias) = (c["n"], c["bias"] == 1);
        let (in_len, out_len) = (geom.out_len(), geom.in_len()); // the layer's sides
        let x = fx.get(&format!("{name}.x"));
        let w = fx.get(&format!("{name}.weight"));
        let b: &[f64] = if bias { fx.get(&format!("{name}.bias")) } else { &[] };
        let dy = fx.get(&format!("{name}.dy"));
        on_every_pool(&name, |pool| {
            let mut y = vec![f64::NAN; n * out_len];
            let xm = MatRef::row_major(x, n, in_len);
            conv::transposed_forward(pool, geom, xm, w, b, Identity, MatMut::row_major(&mut y, n, out_len), None);
            close(&format!("{name}.y"), &y, fx.get(&format!("{name}.y")));
            let (mut dx, mut dw) = (vec![f64::NAN; n * in_len], vec![f64::NAN; w.len()]);
            let dym = MatRef::row_major(dy, n, out_len);
            let dxm = MatMut::row_major(&mut dx, n, in_len);
            conv::transposed_backward(pool, geom, dym, xm, w, Some(&mut dw), false, Some((dxm, false)));
            close(&format!("{name}.dx"), &dx, fx.get(&format!("{name}.dx")));
            close(&format!("{name}.dweight"), &dw, fx.get(&format!("{name}.dweight")));
            let mut db = vec![0.0; c["out"]];
            kernels::par::channel_sums(pool, dym, geom.in_height * geom.in_width, &mut db, false);
            if bias {
                close(&format!("{name}.dbias"), &db, fx.get(&format!("{name}.dbias")));
            }
            vec![y, dx, dw, db]
        });
    }
}

/// Batch normalisation of one case with `C` channels: training forward and backward, the
/// running statistics after it, then inference.
fn batch_norm_case<const C: usize>(fx: &Fixture, name: &str, n: usize, positions: usize) {
    let width = C * positions;
    let get = |k: &str| fx.get(&format!("{name}.{k}"));
    on_every_pool(name, |pool| {
        let mut layer = BatchNorm::<f64, C>::init(&mut Rng::new(0));
        for p in layer.state_mut() {
            p.data.copy_from_slice(get(&format!("init.{}", p.name)));
        }
        let mut stats = vec![0.0; norm::STATS_PER_CHANNEL * C];
        let mut y = vec![f64::NAN; n * width];
        let xm = MatRef::row_major(get("x"), n, width);
        norm::forward(
            pool,
            &layer,
            positions,
            xm,
            &mut stats,
            true,
            Identity,
            MatMut::row_major(&mut y, n, width),
            None,
        );
        close(&format!("{name}.y"), &y, get("y"));
        layer.update_running_stats(&stats, n * positions);
        let (m, v) = layer.running_slices();
        close(&format!("{name}.running_mean"), m, get("after.running_mean"));
        close(&format!("{name}.running_var"), v, get("after.running_var"));
        assert_eq!(layer.num_batches_tracked() as f64, get("after.num_batches_tracked")[0]);
        let mut grads = BatchNorm::<f64, C>::zeros();
        let mut g = get("dy").to_vec();
        norm::backward(
            pool,
            &layer,
            Some(&mut grads),
            positions,
            MatMut::row_major(&mut g, n, width),
            xm,
            &mut stats,
            false,
            true,
        );
        close(&format!("{name}.dx"), &g, get("dx"));
        close(&format!("{name}.dweight"), grads.weight_slice(), get("dweight"));
        close(&format!("{name}.dbias"), grads.bias_slice(), get("dbias"));
        let mut y_eval = vec![f64::NAN; n * width];
        let xe = MatRef::row_major(get("x_eval"), n, width);
        norm::forward(
            pool,
            &layer,
            positions,
            xe,
            &mut stats,
            false,
            Identity,
            MatMut::row_major(&mut y_eval, n, width),
            None,
        );
        close(&format!("{name}.y_eval"), &y_eval, get("y_eval"));
        vec![y, g, grads.weight_slice().to_vec(), grads.bias_slice().to_vec(), y_eval]
    });
}

#[test]
fn batch_norm_matches_pytorch_in_training_and_inference() {
    let fx = Fixture::open("layers.safetensors");
    for (name, c) in fx.cases("batch_norm") {
        match c["c"] {
            3 => batch_norm_case::<3>(&fx, &name, c["n"], c["positions"]),
            5 => batch_norm_case::<5>(&fx, &name, c["n"], c["positions"]),
            other => panic!("a case with {other} channels"),
        }
    }
}

#[test]
fn pooling_matches_pytorch_with_ties_and_nan() {
    let fx = Fixture::open("layers.safetensors");
    for kind in ["max_pool", "avg_pool"] {
        for (name, c) in fx.cases(kind) {
            let geom = Pool2dGeometry::new([c["c"], c["h"], c["w"]], c["k"], c["s"]);
            let n = c["n"];
            let x = MatRef::row_major(fx.get(&format!("{name}.x")), n, geom.in_len());
            let dy = MatRef::row_major(fx.get(&format!("{name}.dy")), n, geom.out_len());
            // The same batch column-major: the passes' paths for inputs whose columns are not
            // contiguous.
            let x_cols: Vec<f64> = (0..geom.in_len()).flat_map(|j| (0..n).map(move |i| *x.at(i, j))).collect();
            let x_strided = MatRef::new(&x_cols, n, geom.in_len(), 1, n);
            on_every_pool(&name, |pool| {
                let mut results = Vec::new();
                for x in [x, x_strided] {
                    let (mut y, mut dx) = (vec![0.0; n * geom.out_len()], vec![f64::NAN; n * geom.in_len()]);
                    let ym = MatMut::row_major(&mut y, n, geom.out_len());
                    let dxm = MatMut::row_major(&mut dx, n, geom.in_len());
                    if kind == "max_pool" {
                        pooling::max_forward(pool, geom, x, ym);
                        pooling::max_backward(pool, geom, dy, x, dxm, false);
                    } else {
                        pooling::avg_forward(pool, geom, x, ym);
                        pooling::avg_backward(pool, geom, dy, dxm, false);
                    }
                    close(&format!("{name}.y"), &y, fx.get(&format!("{name}.y")));
                    close(&format!("{name}.dx"), &dx, fx.get(&format!("{name}.dx")));
                    results.extend([y, dx]);
                }
                results
            });
        }
    }
}

/// The LeNet of `make_fixtures.py`.
#[network(input = [1, 12, 12], loss = softmax_cross_entropy)]
struct LeNet {
    conv1: Conv2d<1, 4, 3>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<4, 6, 3, 1, 1>,
    bn2: BatchNorm2d<6>,
    act2: Relu,
    pool2: AvgPool2d<2>,
    flat: Flatten,
    fc: Linear<24, 10>,
}

/// The generator of `make_fixtures.py`: 6 features to 1 x 8 x 8 images.
#[network(loss = mse)]
struct Generator {
    fc: Linear<6, 32>,
    bn0: BatchNorm1d<32>,
    act0: Relu,
    to_image: Reshape<8, 2, 2>,
    up1: ConvTranspose2d<8, 5, 3>,
    bn1: BatchNorm2d<5>,
    act1: LeakyRelu<0.2>,
    up2: ConvTranspose2d<5, 1, 4, 2, 1>,
    out: Sigmoid,
    flat: Flatten,
}

/// Loads `prefix.<name>` of every parameter and buffer of `model`.
fn load<M: Network<f64>>(model: &mut M, fx: &Fixture, prefix: &str) {
    for p in model.state_mut() {
        let key = format!("{prefix}.{}", p.name);
        assert!(fx.has(&key), "the fixture has no {key}");
        p.data.copy_from_slice(fx.get(&key));
    }
}

/// Compares inference, a training loss and its gradients, and three SGD steps with PyTorch's.
fn network_matches<M: Network<f64>>(fx: &Fixture, target: M::Target<'_>, x: ndarray::ArrayView2<'_, f64>) {
    let mut model = M::zeros();
    load(&mut model, fx, "init");
    close("eval output", model.forward(x).unwrap().as_slice().unwrap(), fx.get("eval_output"));
    let (loss, grads) = model.gradients(x, target).unwrap();
    close("training loss", &[loss], fx.get("train_loss"));
    close("training loss again", &[model.training_loss(x, target).unwrap()], fx.get("train_loss"));
    for p in grads.params() {
        close(&format!("gradient of {}", p.name), p.data, fx.get(&format!("grad.{}", p.name)));
    }
    let mut trainer = model.trainer(Sgd::new(0.05).momentum(0.9), x.nrows());
    let losses: Vec<f64> = (0..3).map(|_| trainer.step(&mut model, x, target).unwrap()).collect();
    close("step losses", &losses, fx.get("step_losses"));
    for p in model.state() {
        close(&format!("{} after 3 steps", p.name), p.data, fx.get(&format!("after.{}", p.name)));
    }
    for (name, count) in model.counters() {
        assert_eq!(count as f64, fx.get(&format!("after.{name}"))[0], "{name}");
        assert_eq!(count, 3, "{name}");
    }
}

#[test]
fn lenet_with_batch_norm_matches_pytorch() {
    let fx = Fixture::open("lenet.safetensors");
    let x = Array2::from_shape_vec((8, 144), fx.get("x").to_vec()).unwrap();
    let labels: Array1<usize> = fx.get("labels").iter().map(|&l| l as usize).collect();
    network_matches::<LeNet<f64>>(&fx, labels.view(), x.view());
}

#[test]
fn generator_of_transposed_convolutions_matches_pytorch() {
    let fx = Fixture::open("generator.safetensors");
    let z = Array2::from_shape_vec((6, 6), fx.get("x").to_vec()).unwrap();
    let target = Array2::from_shape_vec((6, 64), fx.get("target").to_vec()).unwrap();
    network_matches::<Generator<f64>>(&fx, target.view(), z.view());
}
