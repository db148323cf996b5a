//! The `dcgan` example's own code (included from `examples/`), run on a few Fashion-MNIST images
//! (`../shared/data/fashion-mnist`, or `$HDM_FASHION_MNIST_DIR`): what it writes, that `--resume`
//! continues the same files, that its networks load back, and that bad flags are errors naming
//! what is wrong.

#[allow(dead_code)] // its `main` is not called here
#[path = "../examples/dcgan.rs"]
mod dcgan;

use std::path::{Path, PathBuf};

use clap::Parser;
use hdm::checkpoint::Checkpoint;
use hdm::prelude::*;

use dcgan::common;

fn data_dir() -> PathBuf {
    match std::env::var_os("HDM_FASHION_MNIST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fashion-mnist"),
    }
}

fn example(flags: &[&str]) -> hdm::Result<()> {
    let cli = dcgan::Cli::try_parse_from(std::iter::once("dcgan").chain(flags.iter().copied()))
        .map_err(|e| hdm::Error::Other(e.to_string()))?;
    dcgan::run(&cli)
}

/// The rows of a CSV file, each split at commas, the header first.
fn csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

#[test]
fn a_short_run_writes_everything_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let (out_s, data) = (out.path().to_str().unwrap(), data_dir());
    // An untrained LeNet is judge enough to check the plumbing.
    let judge = out.path().join("judge.safetensors");
    hdm::checkpoint::save_params(&judge, &common::LeNet::<f32>::init(7), &Default::default()).unwrap();
    let flags = |epochs: &'static str| {
        vec![
            "--data".to_owned(),
            data.to_str().unwrap().to_owned(),
            "--out".to_owned(),
            out_s.to_owned(),
            "--limit".to_owned(),
            "96".to_owned(),
            "--batch".to_owned(),
            "32".to_owned(),
            "--epochs".to_owned(),
            epochs.to_owned(),
            "--judge".to_owned(),
            judge.to_str().unwrap().to_owned(),
            "--quiet".to_owned(),
        ]
    };
    let run = |flags: Vec<String>| example(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    run(flags("1")).unwrap();

    for file in [
        "metrics.csv",
        "quality.csv",
        "samples_000.png",
        "samples_001.png",
        "interpolation_000.png",
        "interpolation_001.png",
        "progress.gif",
        "loss.svg",
        "loss.png",
        "checkpoint/generator.safetensors",
        "checkpoint/discriminator.safetensors",
        "generator.safetensors",
        "discriminator.safetensors",
    ] {
        assert!(out.path().join(file).is_file(), "{file} was not written");
    }
    let metrics = csv(&out.path().join("metrics.csv"));
    assert_eq!(metrics[0], ["epoch", "step", "wall_s", "g_loss", "d_loss", "d_x", "d_g_z"]);
    assert_eq!((metrics.len(), &metrics[1][..2]), (2, &["1".to_owned(), "3".to_owned()][..]));
    for value in &metrics[1][3..] {
        let v: f64 = value.parse().unwrap();
        assert!(v.is_finite() && v > 0.0, "{metrics:?}");
    }
    let quality = csv(&out.path().join("quality.csv"));
    assert_eq!(quality[0], ["epoch", "mean_confidence", "class_entropy", "inception_score"]);
    let epochs: Vec<&str> = quality[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(epochs, ["-1", "0", "1"]);
    for row in &quality[1..] {
        let (confidence, score): (f64, f64) = (row[1].parse().unwrap(), row[3].parse().unwrap());
        assert!((0.1..=1.0).contains(&confidence) && (1.0 - 1e-9..=10.0).contains(&score), "{row:?}");
    }

    // The networks alone load into the same types, strictly; the trained generator differs
    // from the untrained one.
    let mut g = common::Generator::<f32>::zeros();
    Checkpoint::open(out.path().join("generator.safetensors")).unwrap().load_params(&mut g).unwrap();
    assert_ne!(g, common::Generator::<f32>::init(0));
    let mut d = common::Discriminator::<f32>::zeros();
    Checkpoint::open(out.path().join("discriminator.safetensors")).unwrap().load_params(&mut d).unwrap();

    // Resuming to epoch 2 appends to the same files.
    run([flags("2"), vec!["--resume".to_owned()]].concat()).unwrap();
    let metrics = csv(&out.path().join("metrics.csv"));
    assert_eq!(
        metrics.iter().skip(1).map(|r| (r[0].as_str(), r[1].as_str())).collect::<Vec<_>>(),
        [("1", "3"), ("2", "6")]
    );
    let epochs: Vec<String> = csv(&out.path().join("quality.csv"))[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(epochs, ["-1", "0", "1", "2"]);
    assert!(out.path().join("samples_002.png").is_file());
}

#[test]
fn bad_flags_are_errors_that_say_what_is_wrong() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let data = data_dir();
    let data_s = data.to_str().unwrap();
    let message = |flags: &[&str]| example(flags).unwrap_err().to_string();

    let m = message(&["--data", "/nonexistent/images", "--out", out_s]);
    assert!(m.contains("/nonexistent/images"), "{m}");
    let m = message(&["--data", data_s, "--out", out_s, "--limit", "10", "--batch", "32"]);
    assert!(m.contains("10 images are fewer than one batch of 32"), "{m}");
    let judged =
        |judge: &str| message(&["--data", data_s, "--out", out_s, "--limit", "64", "--batch", "32", "--judge", judge]);
    let m = judged("/nonexistent/judge.st");
    assert!(m.contains("/nonexistent/judge.st"), "{m}");
    // A judge that is not a LeNet: the file is named, and so is what does not fit.
    let wrong = out.path().join("not_a_lenet.safetensors");
    hdm::checkpoint::save_params(&wrong, &common::Mlp::<f32>::init(0), &Default::default()).unwrap();
    let m = judged(wrong.to_str().unwrap());
    assert!(m.contains("not_a_lenet.safetensors") && m.contains("LeNet") && m.contains("missing: conv1.weight"), "{m}");
    let m = message(&["--optimizer", "rmsprop"]);
    assert!(m.contains("rmsprop"), "{m}");
}
