//! What the examples share: the command-line flags every one of them takes, and small helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use hdm::metrics::read_csv;
use hdm::plot::{line_chart, LineChart, Series};
use hdm::prelude::*;

pub mod dist;

/// The MLP of the reference experiments: 784-500-500-10 with ReLU.
#[network(loss = softmax_cross_entropy)]
pub struct Mlp {
    pub fc1: Linear<784, 500>,
    pub act1: Relu,
    pub fc2: Linear<500, 500>,
    pub act2: Relu,
    pub fc3: Linear<500, 10>,
}

/// The tutorial network: 100 -> 1000 -> 10 without biases, ReLU, sum of squares.
#[network(loss = sum_of_squares)]
pub struct Tutorial {
    pub fc1: Linear<100, 1000, NoBias>,
    pub act: Relu,
    pub fc2: Linear<1000, 10, NoBias>,
}

/// LeNet with batch normalisation, for 28 x 28 grey images (the `cnn` example's network):
/// `[1, 28, 28] -> [32, 14, 14] -> [64, 7, 7] -> 10`.
#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
pub struct LeNet {
    pub conv1: Conv2d<1, 32, 5, 1, 2>,
    pub act1: Relu,
    pub pool1: MaxPool2d<2>,
    pub conv2: Conv2d<32, 64, 5, 1, 2>,
    pub bn2: BatchNorm2d<64>,
    pub act2: Relu,
    pub pool2: MaxPool2d<2>,
    pub flat: Flatten,
    pub fc: Linear<3136, 10>,
}

/// The DCGAN generator of the GAN tutorial: 32 values of noise ->
/// `[1024] -> [6400] -> [256, 5, 5] -> [128, 7, 7] -> [64, 14, 14] -> [1, 28, 28]`, in [0, 1].
#[network(input = [32], loss = none)]
pub struct Generator {
    pub fc1: Linear<32, 1024>,
    pub bn1: BatchNorm1d<1024>,
    pub act1: Relu,
    pub fc2: Linear<1024, 6400>,
    pub bn2: BatchNorm1d<6400>,
    pub act2: Relu,
    pub to_image: Reshape<256, 5, 5>,
    pub up1: ConvTranspose2d<256, 128, 3>,
    pub bn3: BatchNorm2d<128>,
    pub act3: Relu,
    pub up2: ConvTranspose2d<128, 64, 4, 2, 1>,
    pub bn4: BatchNorm2d<64>,
    pub act4: Relu,
    pub up3: ConvTranspose2d<64, 1, 4, 2, 1>,
    pub out: Sigmoid,
}

/// The DCGAN discriminator of the GAN tutorial, on 28 x 28 images, with the last sigmoid folded
/// into the loss (binary cross-entropy on logits).
#[network(input = [1, 28, 28], loss = bce_with_logits)]
pub struct Discriminator {
    pub conv1: Conv2d<1, 64, 4, 2, 1>,
    pub act1: Relu,
    pub conv2: Conv2d<64, 128, 4, 2, 1>,
    pub bn2: BatchNorm2d<128>,
    pub act2: Relu,
    pub conv3: Conv2d<128, 256, 3>,
    pub bn3: BatchNorm2d<256>,
    pub act3: Relu,
    pub flat: Flatten,
    pub fc1: Linear<6400, 1024>,
    pub bn4: BatchNorm1d<1024>,
    pub act4: LeakyRelu<0.2>,
    pub fc2: Linear<1024, 1>,
}

/// Flags with the same names in every example.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Folder with the MNIST files [default: $HDM_DATA_DIR, else data/mnist; for `cnn`,
    /// Fashion-MNIST: $HDM_FASHION_MNIST_DIR, else data/fashion-mnist]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Folder for metrics.csv, the plots and the checkpoints [default: runs/<example>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Number of epochs, at least 1 [default: the example's own]
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Mini-batch size, at least 1 [default: the example's own]
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Seed of the initial weights and of the data order
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Threads for the matrix products, at least 1 [default: $HDM_NUM_THREADS, else all cores]
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Print nothing but errors
    #[arg(long)]
    pub quiet: bool,
    /// What a step whose loss or gradient is not finite does: update anyway (PyTorch's default),
    /// stop with an error, or skip the update and count it
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = NonFiniteArg::Update)]
    pub on_nonfinite: NonFiniteArg,
    /// Flush subnormal values to zero in the optimizer's update (`Trainer::with_flush_subnormals`;
    /// JAX's default, PyTorch's `torch.set_flush_denormal(True)`): much faster on Intel CPUs once
    /// Adam's moments of always-zero inputs decay; off, the update is torch.optim's bit for bit
    #[arg(long)]
    pub flush_subnormals: bool,
}

/// A count of at least 1 (`--epochs`, `--batch`, `--threads`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.starts_with('-') => Err("must be at least 1, not negative".into()),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// A seed: a whole number from 0 to 2^64 - 1.
pub fn seed(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| format!("must be a whole number from 0 to {}", u64::MAX))
}

/// A learning rate or other hyperparameter: a finite number >= 0, as torch.optim requires.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number >= 0, not {v}")),
        Err(e) => Err(format!("not a number ({e})")),
    }
}

/// A momentum or decay factor in [0, 1).
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("must be in [0, 1), not {v}")),
        Err(e) => Err(format!("not a number ({e})")),
    }
}

/// `--on-nonfinite`: [`hdm::OnNonFinite`] as a flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFiniteArg {
    Update,
    Error,
    Skip,
}

impl From<NonFiniteArg> for hdm::OnNonFinite {
    fn from(a: NonFiniteArg) -> Self {
        match a {
            NonFiniteArg::Update => hdm::OnNonFinite::Update,
            NonFiniteArg::Error => hdm::OnNonFinite::Error,
            NonFiniteArg::Skip => hdm::OnNonFinite::Skip,
        }
    }
}

impl CommonArgs {
    /// The output folder, created; `--out` naming a file is an error that says so.
    pub fn out_dir(&self, example: &str) -> hdm::Result<PathBuf> {
        let dir = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(example));
        if dir.exists() && !dir.is_dir() {
            return Err(hdm::Error::Other(format!(
                "--out {}: this is a file, not a folder; give a folder for the metrics, plots and checkpoints",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|source| hdm::Error::Io { path: dir.clone(), source })?;
        Ok(dir)
    }

    /// MNIST from `--data`, else `$HDM_DATA_DIR`, else `data/mnist`. Built with the `download`
    /// feature, missing files are fetched from a public mirror first (SHA-256 checked).
    pub fn load_mnist(&self) -> hdm::Result<(hdm::data::Dataset<f32>, hdm::data::Dataset<f32>)> {
        let dir = hdm::data::resolve_data_dir(self.data.clone());
        #[cfg(feature = "download")]
        return hdm::data::load_mnist_or_download(dir);
        #[cfg(not(feature = "download"))]
        hdm::data::load_mnist(dir)
    }

    /// Fashion-MNIST from `--data`, else `$HDM_FASHION_MNIST_DIR`, else `data/fashion-mnist`
    /// (the same IDX files and names as MNIST).
    pub fn load_fashion_mnist(&self) -> hdm::Result<(hdm::data::Dataset<f32>, hdm::data::Dataset<f32>)> {
        let set = hdm::data::FASHION_MNIST;
        set.load(set.resolve_dir(self.data.clone()))
    }

    /// Applies `--threads`; more threads than cores is a warning (they would take turns).
    pub fn apply_threads(&self) {
        if let Some(n) = self.threads {
            let cores = std::thread::available_parallelism().map_or(n, |c| c.get());
            if n > cores {
                eprintln!("warning: --threads {n} is more than the {cores} cores here; the threads will take turns");
            }
            hdm::set_num_threads(n);
        }
    }
}

/// Where a run starts: with `resume` and a `checkpoint` on disk, the trainer and `model` are
/// restored from it and `config` goes on after the epoch it holds, its clock at the seconds
/// trained so far; otherwise `config` as it is.
pub fn resume<M: Network<f32>, O: Optimizer<f32>>(
    trainer: &mut Trainer<f32, M, O>,
    model: &mut M,
    config: hdm::train::FitConfig,
    resume: bool,
    label: &str,
    quiet: bool,
) -> hdm::Result<hdm::train::FitConfig> {
    let Some(checkpoint) = config.checkpoint.clone().filter(|c| resume && c.exists()) else { return Ok(config) };
    let meta = trainer.load_checkpoint(&checkpoint, model)?;
    let config = config.resuming(&meta)?;
    if !quiet {
        println!(
            "{label}: resuming after epoch {} (step {}, {:.1} s trained)",
            config.start_epoch - 1,
            trainer.steps(),
            config.start_wall_s
        );
    }
    Ok(config)
}

/// Runs `body`, printing its error (if any) as one line and exiting with status 1: a user's
/// mistake (a missing file, a bad flag value) is a message, not a panic.
pub fn run(body: impl FnOnce() -> hdm::Result<()>) {
    match body() {
        Ok(()) => dist::finish(),
        Err(e) => {
            dist::abort_all(&e.to_string());
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// The `y` column against the `x` column of every run in a metrics file, one series per value of
/// the `optimizer` column (in the order they first appear), labelled `<optimizer><suffix>`.
pub fn curves(rows: &[BTreeMap<String, String>], x: &str, y: &str, suffix: &str) -> Vec<Series> {
    let mut order: Vec<String> = Vec::new();
    for r in rows {
        if !order.contains(&r["optimizer"]) {
            order.push(r["optimizer"].clone());
        }
    }
    let num = |r: &BTreeMap<String, String>, c: &str| r.get(c)?.parse::<f64>().ok();
    order
        .iter()
        .enumerate()
        .map(|(k, opt)| {
            let points = rows.iter().filter(|r| &r["optimizer"] == opt).filter_map(|r| Some((num(r, x)?, num(r, y)?)));
            // One colour per optimizer, on every chart.
            Series::new(format!("{opt}{suffix}"), points.collect()).with_color(k)
        })
        .collect()
}

/// Plots of a metrics file (the whole run, resumed parts included): `loss_epoch` and `loss_time`
/// (training and test loss, log scale, per epoch and against training seconds) and `accuracy`,
/// each as SVG and PNG in `out`.
pub fn plot_metrics(metrics: &Path, out: &Path, title: &str) -> hdm::Result<()> {
    let rows = read_csv(metrics)?;
    // Each optimizer's test curve dashed, in its training curve's colour.
    let both = |x: &str| {
        let test = curves(&rows, x, "test_loss", " (test)").into_iter().map(Series::dashed);
        curves(&rows, x, "train_loss", " (train)").into_iter().chain(test).collect::<Vec<_>>()
    };
    let chart = |name: &str, what: &str, x_label: &str, y_label: &str, log_y: bool, series: Vec<Series>| {
        let chart = LineChart {
            title: format!("{title}: {what}"),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y,
            series,
        };
        line_chart(out.join(name), &chart).map(|_| ())
    };
    chart("loss_epoch", "loss per epoch", "epoch", "loss (log scale)", true, both("epoch"))?;
    chart("loss_time", "loss against training time", "wall-clock seconds", "loss (log scale)", true, both("wall_s"))?;
    chart("accuracy", "test accuracy", "epoch", "test accuracy", false, curves(&rows, "epoch", "test_accuracy", ""))
}
