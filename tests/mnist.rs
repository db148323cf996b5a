//! Training on the real MNIST files (`HDM_DATA_DIR`, which CI sets; else `../shared/data/mnist`).

use std::path::PathBuf;

use hdm::prelude::*;
use hdm::train::{fit, FitConfig};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<784, 500>,
    act1: Relu,
    fc2: Linear<500, 500>,
    act2: Relu,
    fc3: Linear<500, 10>,
}

#[network(loss = softmax_cross_entropy)]
struct Small {
    fc1: Linear<784, 32>,
    act1: Relu,
    fc2: Linear<32, 10>,
}

/// The data folder; `None` (and the test is skipped, saying so) only when `HDM_DATA_DIR` is unset
/// and the shared folder is absent.
fn data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HDM_DATA_DIR") {
        return Some(PathBuf::from(dir));
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if shared.is_dir() {
        Some(shared)
    } else {
        eprintln!("SKIPPED: no HDM_DATA_DIR and no {}", shared.display());
        None
    }
}

#[test]
fn one_epoch_of_adam_reaches_90_percent() {
    let Some(dir) = data_dir() else { return };
    let (train, test) = hdm::data::load_mnist::<f32>(dir).unwrap();
    let mut model = Mlp::<f32>::init(0);
    let mut trainer = model.trainer(Adam::default(), 100);
    let history = fit(&mut trainer, &mut model, &train, Some(&test), &FitConfig::default(), &mut []).unwrap();
    let acc = history[0].test_accuracy.unwrap();
    assert!(acc >= 0.90, "test accuracy after one epoch: {acc}");
    assert_eq!(history[0].step, train.len().div_ceil(100) as u64);
}

#[test]
fn a_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let Some(dir) = data_dir() else { return };
    let (train, _) = hdm::data::load_mnist::<f32>(dir).unwrap();
    let train = train.head(1000);
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("run.safetensors");
    let optimizer = Adam::new(3e-3).amsgrad(true);
    let config = |start_epoch, epochs| FitConfig {
        start_epoch,
        epochs,
        seed: 5,
        checkpoint: Some(ck.clone()),
        ..Default::default()
    };

    let mut straight = Small::<f32>::init(1);
    let mut t = straight.trainer(optimizer, 64);
    fit(&mut t, &mut straight, &train, None, &config(1, 3), &mut []).unwrap();
    let straight_state: Vec<Vec<u32>> =
        t.optimizer_tensors().iter().map(|p| p.data.iter().map(|v| v.to_bits()).collect()).collect();

    let mut first = Small::<f32>::init(1);
    let mut t1 = first.trainer(optimizer, 64);
    fit(&mut t1, &mut first, &train, None, &config(1, 2), &mut []).unwrap();
    drop((first, t1));

    // A new process would start here: fresh model and trainer, state from the checkpoint.
    let mut resumed = Small::<f32>::init(99);
    let mut t2 = resumed.trainer(optimizer, 64);
    let meta = t2.load_checkpoint(&ck, &mut resumed).unwrap();
    assert_eq!(meta["epoch"], "2");
    assert_eq!(t2.steps(), 2 * 1000u64.div_ceil(64));
    // The config goes on from the checkpoint: the next epoch, and the clock where it stopped.
    let resuming = config(1, 3).resuming(&meta).unwrap();
    let trained: f64 = meta["wall_s"].parse().unwrap();
    assert_eq!((resuming.start_epoch, resuming.start_wall_s), (3, trained));
    let rest = fit(&mut t2, &mut resumed, &train, None, &resuming, &mut []).unwrap();
    assert!(rest[0].epoch == 3 && rest[0].wall_s > trained, "{} after {trained}", rest[0].wall_s);
    let e = config(1, 3).resuming(&[("wall_s".to_string(), "-1".to_string())].into()).unwrap_err();
    assert!(e.to_string().contains("\"wall_s\" = \"-1\" is not seconds"), "{e}");

    let bits = |m: &Small<f32>| m.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&resumed), bits(&straight));
    let resumed_state: Vec<Vec<u32>> =
        t2.optimizer_tensors().iter().map(|p| p.data.iter().map(|v| v.to_bits()).collect()).collect();
    assert_eq!(resumed_state, straight_state);
}

#[test]
fn loading_another_networks_checkpoint_lists_the_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("mlp.safetensors");
    let mlp = Mlp::<f32>::init(0);
    let t = mlp.trainer(Sgd::new(0.1).momentum(0.9), 10);
    t.save_checkpoint(&ck, &mlp, &Default::default()).unwrap();
    let mut small = Small::<f32>::init(0);
    let mut ts = small.trainer(Sgd::new(0.1).momentum(0.9), 10);
    let before = small.clone();
    let err = ts.load_checkpoint(&ck, &mut small).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("fc1.weight"), "{err}");
    assert!(err.contains("[500, 784]") && err.contains("[32, 784]"), "{err}");
    assert!(err.contains("fc3.weight"), "{err}");
    assert_eq!(small, before, "a failed load must change nothing");
}
