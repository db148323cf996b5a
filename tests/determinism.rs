//! The same seed gives bit-identical weights, after initialisation and after 100 steps.

use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<20, 33>,
    act1: Relu,
    fc2: Linear<33, 17>,
    act2: Gelu,
    fc3: Linear<17, 5>,
}

fn train(seed: u64, optimizer: impl Optimizer<f32, Requires = Plain>) -> Mlp<f32> {
    let mut rng = Rng::new(1000);
    let x = Array2::from_shape_simple_fn((64, 20), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(64, || rng.below(5));
    let mut model = Mlp::<f32>::init(seed);
    let mut trainer = model.trainer(optimizer, 64);
    for step in 0..100 {
        let rows = 16 + (step % 4) * 16; // batches of varying size
        let (xs, ls) = (x.slice(ndarray::s![..rows, ..]), labels.slice(ndarray::s![..rows]));
        trainer.step(&mut model, xs, ls).unwrap();
    }
    model
}

#[test]
fn initialisation_is_seeded_and_follows_pytorch_bounds() {
    let a = Mlp::<f64>::init(7);
    assert_eq!(a, Mlp::<f64>::init(7));
    assert_ne!(a, Mlp::<f64>::init(8));
    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    for (p, fan_in) in a.params().iter().zip([20.0f64, 20.0, 33.0, 33.0, 17.0, 17.0]) {
        let bound = 1.0 / fan_in.sqrt();
        assert!(p.data.iter().all(|v| v.abs() <= bound), "{}", p.name);
        let max = p.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max > 0.6 * bound, "{} does not fill its range", p.name);
    }
}

#[test]
fn same_seed_same_weights_after_100_steps() {
    let a = train(3, Adam::new(1e-2));
    let b = train(3, Adam::new(1e-2));
    let bits = |m: &Mlp<f32>| m.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&train(4, Adam::new(1e-2))));
    let h1 = train(3, Hdm::default());
    assert_eq!(bits(&h1), bits(&train(3, Hdm::default())));
}

#[network(loss = softmax_cross_entropy)]
struct Wide {
    fc1: Linear<100, 300>,
    act1: Relu,
    fc2: Linear<300, 200>,
    act2: Tanh,
    fc3: Linear<200, 10>,
}

/// Trains on a pool of `threads` threads: products split by columns or run side by side, and
/// large tensors' updates split in halves.
fn train_on(threads: usize, optimizer: impl Optimizer<f32, Requires = Plain>) -> Vec<u32> {
    train_clipped_on(threads, optimizer, None)
}

/// [`train_on`], with the gradients' global norm clipped to `clip` (its sums of squares split in
/// halves too).
fn train_clipped_on(threads: usize, optimizer: impl Optimizer<f32, Requires = Plain>, clip: Option<f64>) -> Vec<u32> {
    train_model_on(threads, Wide::<f32>::init(5), optimizer, clip)
}

/// Trains `model` for 20 steps on batches of 128, 1, 32 and 7 of 128 random rows of 100 features
/// and 10 classes, on a pool of `threads` threads, and returns the bits of its weights.
fn train_model_on<M, O>(threads: usize, mut model: M, optimizer: O, clip: Option<f64>) -> Vec<u32>
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let mut rng = Rng::new(77);
    // 128 rows x 300 columns: large enough for the elementwise passes to be split too.
    let x = Array2::from_shape_simple_fn((128, 100), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(128, || rng.below(10));
    let pool = std::sync::Arc::new(hdm::gemm::Pool::new(threads));
    assert_eq!(pool.threads(), threads);
    let mut trainer = model.trainer(optimizer, 128).with_pool(pool);
    if let Some(max_norm) = clip {
        trainer = trainer.with_clip_grad_norm(max_norm);
    }
    // Small batches too: their weight gradients are computed in the halves their updates take.
    for rows in [128, 1, 32, 7].into_iter().cycle().take(20) {
        trainer.step(&mut model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
    }
    model.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect()
}

#[test]
fn one_two_and_three_threads_give_the_same_bits() {
    let adam = || Adam::new(1e-3).amsgrad(true);
    let one = train_on(1, adam());
    assert_eq!(train_on(2, adam()), one);
    assert_eq!(train_on(3, adam()), one);
    let hdm = || Hdm::default().norm(MomentumNorm::PerTensor);
    assert_eq!(train_on(2, hdm()), train_on(1, hdm()));
    let global = || Hdm::default().norm(MomentumNorm::Global);
    assert_eq!(train_on(2, global()), train_on(1, global()));
    let sgd = || Sgd::new(0.05).momentum(0.9).nesterov(true);
    assert_eq!(train_on(2, sgd()), train_on(1, sgd()));
    // A norm small enough that every step clips.
    let clipped = train_clipped_on(1, sgd(), Some(1e-3));
    assert_ne!(clipped, train_on(1, sgd()), "the clip changed nothing");
    assert_eq!(train_clipped_on(2, sgd(), Some(1e-3)), clipped);
    assert_eq!(train_clipped_on(3, sgd(), Some(1e-3)), clipped);
}

#[network(
    loss = mse,
    forward = |x| {
        let h = gelu(fc1(x));
        let s = sigmoid(fc2(h)) + h;
        fc3(relu(s) + tanh(fc4(h)))
    }
)]
struct Branches {
    fc1: Linear<100, 300>,
    fc2: Linear<300, 300>,
    fc4: Linear<300, 300>,
    fc3: Linear<300, 5>,
}

/// A graph (standalone activations, additions, a kept pre-activation) on 1 and 2 threads.
#[test]
fn graph_steps_give_the_same_bits_on_one_and_two_threads() {
    let run = |threads: usize| {
        let mut rng = Rng::new(8);
        let x = Array2::from_shape_simple_fn((128, 100), || rng.normal() as f32);
        let y = Array2::from_shape_simple_fn((128, 5), || rng.normal() as f32);
        let mut model = Branches::<f32>::init(9);
        let pool = std::sync::Arc::new(hdm::gemm::Pool::new(threads));
        let mut trainer = model.trainer(Adam::new(1e-3), 128).with_pool(pool);
        let losses: Vec<u32> =
            (0..5).map(|_| trainer.step(&mut model, x.view(), y.view()).unwrap().to_bits()).collect();
        let weights: Vec<u32> = model.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect();
        (losses, weights)
    };
    assert_eq!(run(2), run(1));
}

#[network(loss = softmax_cross_entropy)]
struct Homogeneous {
    fc1: Linear<100, 300>,
    act1: Relu,
    fc2: Linear<300, 200>,
    act2: LeakyRelu,
    fc3: Linear<200, 10>,
}

/// Path-SGD's passes over the squared weights split by outputs (forward), inputs (backward) and
/// rows (scales) on two threads or more, with the bits of one.
#[test]
fn path_sgd_gives_the_same_bits_on_one_two_and_three_threads() {
    let run = |threads: usize| train_model_on(threads, Homogeneous::<f32>::init(6), PathSgd::new(0.05), None);
    let one = run(1);
    assert!(one.iter().all(|&b| f32::from_bits(b).is_finite()), "training diverged");
    let init: Vec<u32> =
        Homogeneous::<f32>::init(6).params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect();
    assert_ne!(one, init, "training moved nothing");
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

/// Convolutions (strided, padded, transposed), batch normalisation and pooling, large enough for
/// every pass to be split: a convolution's samples by groups, its weight gradient by columns,
/// batch statistics by channels.
#[network(input = [3, 16, 16], loss = softmax_cross_entropy)]
struct Conv {
    conv1: Conv2d<3, 12, 3, 1, 1>,
    bn1: BatchNorm2d<12>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<12, 20, 4, 2, 1>,
    act2: Gelu,
    up: ConvTranspose2d<20, 6, 3, 2, 1, 1>,
    bn2: BatchNorm2d<6>,
    act3: LeakyRelu<0.1>,
    pool2: AvgPool2d<2>,
    flat: Flatten,
    fc1: Linear<96, 40>,
    bn3: BatchNorm1d<40>,
    act4: Tanh,
    fc2: Linear<40, 10>,
}

/// Trains `Conv` for 12 steps on batches of 80, 5, 33 and 64 on a pool of `threads` threads (a
/// convolution's two gradients run side by side up to 64 samples, each split over the threads
/// above); returns the bits of its state (parameters and running statistics) and of its losses.
fn train_conv_on(threads: usize, optimizer: impl Optimizer<f32, Requires = Plain>) -> Vec<u32> {
    let mut rng = Rng::new(31);
    let x = Array2::from_shape_simple_fn((80, 3 * 16 * 16), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(80, || rng.below(10));
    let mut model = Conv::<f32>::init(12);
    let pool = std::sync::Arc::new(hdm::gemm::Pool::new(threads));
    let mut trainer = model.trainer(optimizer, 80).with_pool(pool);
    let mut out = Vec::new();
    for rows in [80, 5, 33, 64].into_iter().cycle().take(12) {
        let loss = trainer.step(&mut model, x.slice(s![..rows, ..]), labels.slice(s![..rows])).unwrap();
        out.push(loss.to_bits());
    }
    out.extend(model.state().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())));
    out
}

#[test]
fn convolutional_steps_give_the_same_bits_on_one_two_and_three_threads() {
    let one = train_conv_on(1, Adam::new(1e-3));
    assert!(one.iter().all(|&b| f32::from_bits(b).is_finite()), "training diverged");
    let sgd = || Sgd::new(0.05).momentum(0.9);
    let sgd_one = train_conv_on(1, sgd());
    // Both ways of storing the large passes on two threads or more (see `hdm::simd`); the
    // other tests of this file run with whichever the machine chose.
    for streaming in [true, false] {
        hdm::simd::set_streaming(streaming);
        assert_eq!(train_conv_on(2, Adam::new(1e-3)), one, "streaming stores {streaming}");
        assert_eq!(train_conv_on(3, Adam::new(1e-3)), one, "streaming stores {streaming}");
        assert_eq!(train_conv_on(2, sgd()), sgd_one, "streaming stores {streaming}");
        let adam = || Adam::new(1e-3).amsgrad(true);
        assert_eq!(train_on(2, adam()), train_on(1, adam()), "streaming stores {streaming}");
    }
}

#[network(
    loss = mse,
    forward = |x| {
        let h = relu(fc1(x));
        let g = relu(fc2(h));
        fc3(relu(fc2(g)) + h)
    }
)]
struct SharedLayer {
    fc1: Linear<100, 300>,
    fc2: Linear<300, 300>,
    fc3: Linear<300, 5>,
}

/// At batch 1 an elementwise optimizer updates a Linear layer's weight (applied once) from the
/// outer product a block of rows at a time, as the backward pass reaches it; with clipping (here
/// a norm that never clips) it updates after the whole backward pass, from whole gradients. Both
/// must give the same bits: weights, gradients and losses, on one thread and two, beside a layer
/// applied twice (whose weight gradient is a sum, updated whole).
#[test]
fn a_batch_of_one_updated_as_its_gradients_come_has_the_bits_of_the_whole_update() {
    fn run<O: Optimizer<f32, Requires = Plain>>(optimizer: O, threads: usize, clip: bool) -> Vec<u32> {
        let mut rng = Rng::new(31);
        let x = Array2::from_shape_simple_fn((8, 100), || rng.normal() as f32);
        let y = Array2::from_shape_simple_fn((8, 5), || rng.normal() as f32);
        let labels = Array1::from_shape_simple_fn(8, || rng.below(10));
        let pool = std::sync::Arc::new(hdm::gemm::Pool::new(threads));
        let (mut shared, mut wide) = (SharedLayer::<f32>::init(3), Wide::<f32>::init(4));
        let mut a = shared.trainer(optimizer.clone(), 8).with_pool(pool.clone());
        let mut b = wide.trainer(optimizer, 8).with_pool(pool);
        if clip {
            (a, b) = (a.with_clip_grad_norm(1e30), b.with_clip_grad_norm(1e30));
        }
        let mut bits = Vec::new();
        let mut keep = |v: f32| bits.push(v.to_bits());
        for i in 0..8 {
            let r = s![i..i + 1, ..];
            keep(a.step(&mut shared, x.slice(r), y.slice(r)).unwrap());
            keep(b.step(&mut wide, x.slice(r), labels.slice(s![i..i + 1])).unwrap());
            if i == 4 {
                // Accumulated gradients are updated whole.
                b.forward(&mut wide, x.slice(s![..1, ..])).unwrap();
                b.backward(&mut wide, labels.slice(s![..1]), Then::Accumulate, false).unwrap();
            }
        }
        for p in
            shared.params().iter().chain(&a.gradients().params()).chain(&wide.params()).chain(&b.gradients().params())
        {
            p.data.iter().for_each(|&v| keep(v));
        }
        bits
    }
    fn check<O: Optimizer<f32, Requires = Plain>>(optimizer: O) {
        let whole = run(optimizer.clone(), 1, true);
        assert_eq!(run(optimizer.clone(), 1, false), whole, "{}", optimizer.name());
        assert_eq!(run(optimizer.clone(), 2, false), whole, "{}, two threads", optimizer.name());
    }
    check(Sgd::new(0.01));
    check(Sgd::new(0.01).momentum(0.9).nesterov(true).weight_decay(1e-3));
    check(Adam::new(1e-3).amsgrad(true));
    check(AdamW::new(1e-3));
    check(RmsProp::new(1e-3).momentum(0.5).centered(true));
    check(AdaGrad::new(1e-2));
}
