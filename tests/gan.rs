//! The GAN iteration (`hdm::gan`): three iterations of a scaled-down DCGAN equal PyTorch's (SGD
//! with Nesterov momentum, and Adam; fixture written once by
//! `tests/fixtures/torch/make_gan_fixtures.py`), its figures and both networks' states included;
//! the same bits on 1 and 2 threads; and a run resumed from `Gan::save`'s checkpoints gives the
//! bits of an uninterrupted one. (No allocation per iteration: `tests/step_alloc.rs`.)

mod common;

use std::sync::Arc;

use common::fixture::{close_to, Fixture};
use hdm::gan::Gan;
use hdm::gemm::Pool;
use hdm::prelude::*;
use hdm::train::{self, FitConfig};
use ndarray::{s, Array2};

/// The DCGAN's generator scaled down: [4] -> [16] -> [36] -> [4, 3, 3] -> [4, 5, 5] ->
/// [3, 10, 10] -> [1, 20, 20].
#[network(input = [4], loss = none)]
struct SmallGenerator {
    fc1: Linear<4, 16>,
    bn1: BatchNorm1d<16>,
    act1: Relu,
    fc2: Linear<16, 36>,
    bn2: BatchNorm1d<36>,
    act2: Relu,
    to_image: Reshape<4, 3, 3>,
    up1: ConvTranspose2d<4, 4, 3>,
    bn3: BatchNorm2d<4>,
    act3: Relu,
    up2: ConvTranspose2d<4, 3, 4, 2, 1>,
    bn4: BatchNorm2d<3>,
    act4: Relu,
    up3: ConvTranspose2d<3, 1, 4, 2, 1>,
    out: Sigmoid,
}

/// The DCGAN's discriminator scaled down: [1, 20, 20] -> [4, 10, 10] -> [6, 5, 5] -> [8, 3, 3]
/// -> [16] -> one logit.
#[network(input = [1, 20, 20], loss = bce_with_logits)]
struct SmallDiscriminator {
    conv1: Conv2d<1, 4, 4, 2, 1>,
    act1: Relu,
    conv2: Conv2d<4, 6, 4, 2, 1>,
    bn2: BatchNorm2d<6>,
    act2: Relu,
    conv3: Conv2d<6, 8, 3>,
    bn3: BatchNorm2d<8>,
    act3: Relu,
    flat: Flatten,
    fc1: Linear<72, 16>,
    bn4: BatchNorm1d<16>,
    act4: LeakyRelu<0.2>,
    fc2: Linear<16, 1>,
}

const BATCH: usize = 6;
const ITERATIONS: usize = 3;

/// Loads `prefix.<name>` of every parameter and buffer of `model`.
fn load<M: Network<f64>>(model: &mut M, fx: &Fixture, prefix: &str) {
    for p in model.state_mut() {
        p.data.copy_from_slice(fx.get(&format!("{prefix}.{}", p.name)));
    }
}

/// The biases followed by batch normalisation: their gradient is zero in exact arithmetic (the
/// normalisation subtracts them again) and only rounding (~1e-17) moves them. What they move
/// besides is the running mean of the normalisation after them; nothing else.
const BEFORE_BATCH_NORM: [&str; 7] =
    ["g.fc1.bias", "g.fc2.bias", "g.up1.bias", "g.up2.bias", "d.conv2.bias", "d.conv3.bias", "d.fc1.bias"];

/// Runs the fixture's iterations with `optimizer` and compares everything with PyTorch's to
/// 1e-10 relative, but the biases of [`BEFORE_BATCH_NORM`] and the running means, to `rounding`
/// relative.
fn matches_pytorch<O: Optimizer<f64> + Clone>(name: &str, optimizer: O, rounding: f64)
where
    hdm::path::BatchNormalized: hdm::path::Accepts<O::Requires>,
{
    let fx = Fixture::open("gan.safetensors");
    let (mut g, mut d) = (SmallGenerator::<f64>::zeros(), SmallDiscriminator::<f64>::zeros());
    load(&mut g, &fx, "init.g");
    load(&mut d, &fx, "init.d");
    let (gt, dt) = (g.trainer(optimizer.clone(), BATCH), d.trainer(optimizer, BATCH));
    let mut gan = Gan::new(g, gt, d, dt, 0).unwrap();
    let batches =
        |key: &str, width: usize| Array2::from_shape_vec((ITERATIONS * BATCH, width), fx.get(key).to_vec()).unwrap();
    let (x, z, z_d) = (batches("x", 400), batches("z", 4), batches("z_d", 4));
    let mut figures = Vec::new();
    for i in 0..ITERATIONS {
        let rows = s![i * BATCH..(i + 1) * BATCH, ..];
        figures.extend(gan.iteration(x.slice(rows), z.slice(rows), z_d.slice(rows)).unwrap().as_array());
    }
    close_to(&format!("{name}: figures"), &figures, fx.get(&format!("{name}.figures")), 1e-10);
    let states = gan.generator.state().into_iter().map(|p| ("g", p));
    for (net, p) in states.chain(gan.discriminator.state().into_iter().map(|p| ("d", p))) {
        let key = format!("{net}.{}", p.name);
        let tolerance =
            if BEFORE_BATCH_NORM.contains(&key.as_str()) || key.ends_with("running_mean") { rounding } else { 1e-10 };
        close_to(&format!("{name}: {key}"), p.data, fx.get(&format!("{name}.after.{key}")), tolerance);
    }
    // Two forward passes of G and three of D per iteration, in training mode.
    for (counter, count) in gan.generator.counters() {
        assert_eq!(count, 2 * ITERATIONS as u64, "generator's {counter}");
    }
    for (counter, count) in gan.discriminator.counters() {
        assert_eq!(count, 3 * ITERATIONS as u64, "discriminator's {counter}");
    }
}

#[test]
fn iterations_with_sgd_match_pytorch() {
    matches_pytorch("sgd", Sgd::new(0.05).momentum(0.8).nesterov(true), 1e-10);
}

#[test]
fn iterations_with_adam_match_pytorch() {
    // Adam turns the rounding noise in the gradient of a bias before batch normalisation
    // (~1e-17) into steps of lr * g / eps ~ 1e-10, which no two implementations round alike.
    matches_pytorch("adam", Adam::new(0.01).betas(0.5, 0.999), 1e-7);
}

type SmallGan = Gan<f32, SmallGenerator<f32>, SmallDiscriminator<f32>, Sgd, Sgd>;

/// A GAN of the small networks in f32, SGD with Nesterov momentum and a step schedule, batches
/// of 16, on `pool`.
fn small_gan(pool: Option<Arc<Pool<f32>>>) -> SmallGan {
    let sgd = Sgd::new(0.02).momentum(0.8).nesterov(true);
    let (g, d) = (SmallGenerator::<f32>::init(1), SmallDiscriminator::<f32>::init(2));
    let (mut gt, mut dt) = (g.trainer(sgd, 16), d.trainer(sgd, 16));
    if let Some(pool) = pool {
        gt = gt.with_pool(Arc::clone(&pool));
        dt = dt.with_pool(pool);
    }
    let (gt, dt) = (gt.with_schedule(Schedule::step(6, 0.9)), dt.with_schedule(Schedule::step(6, 0.9)));
    Gan::new(g, gt, d, dt, 7).unwrap()
}

/// 100 images of 20 x 20: blurred random blobs, so that the discriminator has something to learn.
fn images() -> hdm::data::Dataset<f32> {
    let mut rng = Rng::new(3);
    let x = Array2::from_shape_fn((100, 400), |(_, p)| {
        let (r, c) = ((p / 20) as f64 - 9.5, (p % 20) as f64 - 9.5);
        ((-(r * r + c * c) / 40.0).exp() + 0.2 * rng.uniform()) as f32
    });
    hdm::data::Dataset::new(x, ndarray::Array1::zeros(100), 20, 20).unwrap()
}

fn bits(gan: &SmallGan) -> Vec<u32> {
    let g = gan.generator.state().into_iter().flat_map(|p| p.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    let d = gan.discriminator.state().into_iter().flat_map(|p| p.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    g.chain(d).collect()
}

fn config(epochs: usize, start_epoch: usize, checkpoint: Option<std::path::PathBuf>) -> FitConfig {
    FitConfig { epochs, start_epoch, seed: 11, drop_last: true, checkpoint, ..Default::default() }
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    let data = images();
    let run = |threads: usize| {
        let mut gan = small_gan(Some(Arc::new(Pool::new(threads))));
        let history = train::run(&mut gan, &data, &config(3, 1, None), &mut []).unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(gan.iterations(), 3 * 6);
        (bits(&gan), history.iter().flat_map(|h| h.figures.clone()).map(f64::to_bits).collect::<Vec<_>>())
    };
    let (one, two) = (run(1), run(2));
    assert!(one == two, "1 and 2 threads gave different networks or figures");
}

#[test]
fn a_resumed_run_gives_the_bits_of_an_uninterrupted_one() {
    let data = images();
    let dir = std::env::temp_dir().join(format!("hdm-gan-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let mut whole = small_gan(None);
    let all = train::run(&mut whole, &data, &config(4, 1, None), &mut []).unwrap();

    let mut first = small_gan(None);
    train::run(&mut first, &data, &config(2, 1, Some(dir.clone())), &mut []).unwrap();
    let mut resumed = small_gan(None);
    let meta = resumed.load(&dir).unwrap();
    assert_eq!(meta["epoch"], "2");
    assert_eq!(resumed.iterations(), 12);
    let rest = train::run(&mut resumed, &data, &config(4, 3, None), &mut []).unwrap();

    assert!(bits(&resumed) == bits(&whole), "the resumed run ended with other weights");
    assert_eq!(rest[1].figures, all[3].figures);
    // Mismatched checkpoints are refused, naming the files.
    let other = dir.join("other");
    let lone = small_gan(None);
    lone.save(&other, &Default::default()).unwrap();
    // The model file alone does not pair with the other run's optimizer file.
    std::fs::copy(dir.join(hdm::gan::DISCRIMINATOR_FILE), other.join(hdm::gan::DISCRIMINATOR_FILE)).unwrap();
    let err = small_gan(None).load(&other).unwrap_err().to_string();
    assert!(err.contains("was saved with another version of this model file"), "{err}");
    // Both of the discriminator's files: each network's pair is whole, the two are not.
    let optimizer_file = hdm::checkpoint::optimizer_path(hdm::gan::DISCRIMINATOR_FILE);
    std::fs::copy(dir.join(&optimizer_file), other.join(&optimizer_file)).unwrap();
    let err = small_gan(None).load(&other).unwrap_err().to_string();
    assert!(err.contains("were not saved together"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatched_networks_and_noise_are_errors() {
    #[network(input = [3], loss = none)]
    struct WrongGenerator {
        fc: Linear<3, 100>,
    }
    let sgd = Sgd::new(0.1);
    let (g, d) = (WrongGenerator::<f32>::init(0), SmallDiscriminator::<f32>::init(0));
    let (gt, dt) = (g.trainer(sgd, 4), d.trainer(sgd, 4));
    let err = Gan::new(g, gt, d, dt, 0).err().unwrap().to_string();
    assert!(err.contains("WrongGenerator") && err.contains("[100]") && err.contains("[1, 20, 20]"), "{err}");

    let (g, d) = (SmallGenerator::<f32>::init(0), SmallDiscriminator::<f32>::init(0));
    let (gt, dt) = (g.trainer(sgd, 4), d.trainer(sgd, 5));
    assert!(Gan::new(g, gt, d, dt, 0).err().unwrap().to_string().contains("batches of 4"));

    let mut gan = small_gan(None);
    let x = Array2::<f32>::zeros((8, 400));
    let z = Array2::<f32>::zeros((7, 4));
    let err = gan.iteration(x.view(), z.view(), z.view()).unwrap_err().to_string();
    assert!(err.contains("8 rows"), "{err}");
}
