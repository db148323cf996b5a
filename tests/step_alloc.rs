//! "No heap allocation inside a training step": a counting global allocator watches
//! `Trainer::step` on the MLP 784-500-500-10 at batches 100, 37 and 1 (its gradients read after
//! each step), after the trainer is made, with SGD,
//! Adam, HDM and Path-SGD, with gradient clipping, and under the finite guard (a NaN batch
//! skipped included); `Predictor::forward` and
//! `Predictor::loss`, after the predictor is made; and the same for convolutional networks (with
//! batch normalisation, and with Path-SGD without it); and GAN iterations (`hdm::gan::Gan`), a
//! generator trained through a discriminator.
//!
//! The counter is global (every thread counts, the GEMM pool's workers included), so this file
//! holds a single test: nothing else runs in the process meanwhile.

#[path = "../hdm-runtime/tests/support/counting.rs"]
mod counting;

use counting::allocations;

use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<784, 500>,
    act1: Relu,
    fc2: Linear<500, 500>,
    act2: Relu,
    fc3: Linear<500, 10>,
}

fn steps_allocate<O: Optimizer<f32>>(optimizer: O, clip: Option<f64>) -> usize
where
    <Mlp<f32> as Network<f32>>::PathCapability: hdm::path::Accepts<O::Requires>,
{
    steps_allocate_guarded(optimizer, clip, false)
}

/// With `guard`, under the finite guard skipping steps, and step 3's batch holds a NaN.
fn steps_allocate_guarded<O: Optimizer<f32>>(optimizer: O, clip: Option<f64>, guard: bool) -> usize
where
    <Mlp<f32> as Network<f32>>::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let mut rng = Rng::new(5);
    let x = Array2::from_shape_simple_fn((100, 784), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(100, || rng.below(10));
    let mut model = Mlp::<f32>::init(1);
    let mut trainer = model.trainer(optimizer, 100);
    if let Some(max_norm) = clip {
        trainer = trainer.with_clip_grad_norm(max_norm);
    }
    if guard {
        trainer = trainer.with_finite_guard(OnNonFinite::Skip);
    }
    let mut bad = x.clone();
    bad[[3, 3]] = f32::NAN;
    let before = allocations();
    for step in 0..6 {
        // smaller batches too, and batch 1 (whose weight gradients the trainer keeps as outer
        // products, written when read)
        let rows = [100, 37, 1][step % 3];
        let x = if guard && step == 3 { &bad } else { &x };
        trainer.step(&mut model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
        std::hint::black_box(trainer.gradients());
    }
    assert_eq!(trainer.skipped_steps(), u64::from(guard));
    allocations() - before
}

/// A convolutional network: strided, padded and transposed convolutions, batch normalisation of
/// images and rows, both poolings.
#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct Cnn {
    conv1: Conv2d<1, 8, 5>,
    bn1: BatchNorm2d<8>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<8, 12, 3, 2, 1>,
    act2: Gelu,
    up: ConvTranspose2d<12, 4, 2, 2>,
    pool2: AvgPool2d<2>,
    flat: Flatten,
    fc1: Linear<144, 32>,
    bn2: BatchNorm1d<32>,
    act3: Relu,
    fc2: Linear<32, 10>,
}

/// The same without batch normalisation (Path-SGD is defined for it).
#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct PlainCnn {
    conv1: Conv2d<1, 8, 5>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<8, 12, 3, 2, 1>,
    act2: Relu,
    flat: Flatten,
    fc: Linear<432, 10>,
}

fn cnn_steps_allocate<M, O>(model: M, optimizer: O) -> usize
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let mut rng = Rng::new(7);
    let x = Array2::from_shape_simple_fn((64, 784), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(64, || rng.below(10));
    let mut model = model;
    let mut trainer = model.trainer(optimizer, 64);
    let mut predictor = model.predictor(64);
    let before = allocations();
    for step in 0..4 {
        let rows = if step % 2 == 0 { 64 } else { 21 };
        trainer.step(&mut model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
        predictor.forward(&model, x.slice(s![..rows, ..])).unwrap();
    }
    allocations() - before
}

/// Allocations of data-parallel steps on one process (`DataParallel` with `Local`, 3 shards: the
/// bucketed exchange, the weighted sums), after the trainer is made, with small buckets (one
/// per tensor or so) and the default ones.
fn data_parallel_steps_allocate<M, O>(model: M, optimizer: O, bucket_bytes: (usize, usize)) -> usize
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    use hdm::distributed::{Config, DataParallel, Local};
    let mut rng = Rng::new(8);
    let x = Array2::from_shape_simple_fn((64, 784), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(64, || rng.below(10));
    let mut model = model;
    let config = Config { shards: 3, bucket_bytes, overlap: true };
    let mut trainer = DataParallel::new(&model, optimizer, 64, config, std::sync::Arc::new(Local)).unwrap();
    let before = allocations();
    for step in 0..4 {
        let rows = if step % 2 == 0 { 64 } else { 21 };
        trainer.step(&mut model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
    }
    allocations() - before
}

/// A small DCGAN: transposed convolutions and batch normalisation in the generator, strided
/// convolutions and batch normalisation in the discriminator.
#[network(input = [8], loss = none)]
struct Gen {
    fc: Linear<8, 196>,
    bn1: BatchNorm1d<196>,
    act1: Relu,
    to_image: Reshape<4, 7, 7>,
    up1: ConvTranspose2d<4, 4, 4, 2, 1>,
    bn2: BatchNorm2d<4>,
    act2: Relu,
    up2: ConvTranspose2d<4, 1, 4, 2, 1>,
    out: Sigmoid,
}

#[network(input = [1, 28, 28], loss = bce_with_logits)]
struct Disc {
    conv1: Conv2d<1, 4, 4, 2, 1>,
    act1: LeakyRelu<0.2>,
    conv2: Conv2d<4, 8, 4, 2, 1>,
    bn: BatchNorm2d<8>,
    act2: Relu,
    flat: Flatten,
    fc: Linear<392, 1>,
}

/// Allocations of GAN iterations (`Gan::train_batch`: noise, the generator's step through the
/// discriminator, the discriminator's two passes and update), after the GAN is made.
fn gan_iterations_allocate<O: Optimizer<f32> + Clone>(optimizer: O) -> usize
where
    hdm::path::BatchNormalized: hdm::path::Accepts<O::Requires>,
{
    let mut rng = Rng::new(8);
    let x = Array2::from_shape_simple_fn((32, 784), || rng.uniform() as f32);
    let (g, d) = (Gen::<f32>::init(1), Disc::<f32>::init(2));
    let (gt, dt) = (g.trainer(optimizer.clone(), 32), d.trainer(optimizer, 32));
    let mut gan = hdm::gan::Gan::new(g, gt, d, dt, 3).unwrap();
    let before = allocations();
    for step in 0..4 {
        let rows = if step % 2 == 0 { 32 } else { 9 };
        gan.train_batch(x.slice(s![..rows, ..])).unwrap();
    }
    allocations() - before
}

fn inference_allocates() -> usize {
    let mut rng = Rng::new(6);
    let x = Array2::from_shape_simple_fn((100, 784), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(100, || rng.below(10));
    let model = Mlp::<f32>::init(2);
    let mut predictor = model.predictor(100);
    let before = allocations();
    for step in 0..6 {
        let rows = if step % 2 == 0 { 100 } else { 1 }; // a batch of one too
        let out = predictor.forward(&model, x.slice(s![..rows, ..])).unwrap();
        assert_eq!(out.dim(), (rows, 10));
        predictor.loss(&model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
    }
    allocations() - before
}

#[test]
fn training_steps_do_not_allocate() {
    // Made before counting: the counter works.
    let before = allocations();
    drop(Mlp::<f32>::zeros());
    assert!(allocations() > before, "the counting allocator does not see allocations");

    assert_eq!(steps_allocate(Sgd::new(0.01), None), 0, "SGD steps allocated");
    assert_eq!(steps_allocate(Adam::new(1e-3), None), 0, "Adam steps allocated");
    assert_eq!(steps_allocate(Hdm::default(), None), 0, "HDM steps allocated");
    assert_eq!(steps_allocate(PathSgd::new(0.01), None), 0, "Path-SGD steps allocated");
    // A norm small enough that every step scales the gradients.
    assert_eq!(steps_allocate(Adam::new(1e-3), Some(1e-3)), 0, "clipped Adam steps allocated");
    assert_eq!(steps_allocate_guarded(Adam::new(1e-3), None, true), 0, "guarded Adam steps allocated");
    assert_eq!(steps_allocate_guarded(Hdm::default(), Some(1.0), true), 0, "guarded, clipped HDM steps allocated");
    assert_eq!(inference_allocates(), 0, "a predictor's forward passes allocated");
    assert_eq!(cnn_steps_allocate(Cnn::<f32>::init(1), Adam::new(1e-3)), 0, "convolutional steps allocated");
    assert_eq!(cnn_steps_allocate(Cnn::<f32>::init(1), Hdm::default()), 0, "convolutional HDM steps allocated");
    assert_eq!(
        cnn_steps_allocate(PlainCnn::<f32>::init(1), PathSgd::new(0.01)),
        0,
        "convolutional Path-SGD steps allocated"
    );
    assert_eq!(
        data_parallel_steps_allocate(Mlp::<f32>::init(1), Adam::new(1e-3), (4096, 65536)),
        0,
        "data-parallel steps allocated"
    );
    assert_eq!(
        data_parallel_steps_allocate(Cnn::<f32>::init(1), Hdm::default(), (1 << 20, 25 << 20)),
        0,
        "data-parallel convolutional HDM steps allocated"
    );
    assert_eq!(gan_iterations_allocate(Sgd::new(0.01).momentum(0.8).nesterov(true)), 0, "GAN iterations allocated");
    assert_eq!(gan_iterations_allocate(Adam::new(2e-4).betas(0.5, 0.999)), 0, "GAN iterations with Adam allocated");
}
