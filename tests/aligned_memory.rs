//! The arrays a step streams through start on a cache line (64 bytes; `hdm::aligned`): every
//! parameter of a model made by `init` or `zeros` or copied by `clone`, every gradient and every
//! optimizer state buffer of a trainer, and the activation buffers a predictor hands out. With
//! `Vec`s, large arrays start 16 bytes into a page under glibc, and this test fails.

use hdm::aligned::ALIGN;
use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<784, 500>,
    act1: Relu,
    fc2: Linear<500, 500, NoBias>,
    act2: Relu,
    fc3: Linear<500, 10>,
}

#[network(input = [3, 9, 9], loss = softmax_cross_entropy)]
struct Conv {
    conv1: Conv2d<3, 6, 3, 1, 1>,
    bn1: BatchNorm2d<6>,
    act1: Relu,
    up: ConvTranspose2d<6, 4, 2, 2>,
    flat: Flatten,
    fc: Linear<1296, 5>,
}

fn assert_aligned(what: &str, name: &str, data: &[f32]) {
    if data.len() >= 16 {
        assert_eq!(
            data.as_ptr() as usize % ALIGN,
            0,
            "{what}: {name} ({} values) is not aligned to {ALIGN} bytes",
            data.len()
        );
    }
}

fn params_aligned<P: Parameters<f32>>(what: &str, p: &P) {
    let params = p.params();
    assert!(!params.is_empty());
    for param in params {
        assert_aligned(what, &param.name, param.data);
    }
}

fn states_aligned<S: OptimizerState<f32>>(what: &str, states: &[S]) {
    assert!(!states.is_empty());
    for (i, s) in states.iter().enumerate() {
        for (name, data) in s.buffers() {
            assert_aligned(what, &format!("tensor {i}'s {name}"), data);
        }
    }
}

#[test]
fn an_mlp_and_its_trainer_keep_every_array_on_a_cache_line() {
    let mut model = Mlp::<f32>::init(3);
    params_aligned("Mlp::init", &model);
    params_aligned("Mlp::zeros", &Mlp::<f32>::zeros());
    params_aligned("a clone", &model.clone());

    let x = Array2::from_shape_fn((7, 784), |(i, j)| ((i * 31 + j) % 17) as f32 / 17.0);
    let labels = Array1::from_shape_fn(7, |i| i % 10);
    let mut trainer = model.trainer(Adam::new(1e-3), 7);
    trainer.step(&mut model, x.view(), labels.view()).unwrap();
    params_aligned("the gradients", trainer.gradients());
    states_aligned("Adam's state", trainer.states());
    params_aligned("the model after a step", &model);

    let mut sgd = model.trainer(Sgd::new(0.1).momentum(0.9), 7);
    sgd.step(&mut model, x.view(), labels.view()).unwrap();
    states_aligned("SGD's momentum", sgd.states());

    let mut predictor = model.predictor(7);
    let out = predictor.forward(&model, x.view()).unwrap();
    assert_eq!(out.as_ptr() as usize % ALIGN, 0, "the predictor's output buffer");
}

#[test]
fn a_convolutional_network_keeps_its_weights_on_a_cache_line() {
    let mut model = Conv::<f32>::init(4);
    params_aligned("Conv::init", &model);
    params_aligned("a clone", &model.clone());
    let x = Array2::from_shape_fn((3, 243), |(i, j)| ((i * 7 + j) % 13) as f32 / 13.0 - 0.5);
    let labels = Array1::from_shape_fn(3, |i| i % 5);
    let mut trainer = model.trainer(Adam::new(1e-3), 3);
    trainer.step(&mut model, x.view(), labels.view()).unwrap();
    params_aligned("the gradients", trainer.gradients());
    states_aligned("Adam's state", trainer.states());
}
