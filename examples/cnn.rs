//! A convolutional network on Fashion-MNIST: LeNet with batch normalisation,
//!
//! ```text
//! conv1 5x5, 32 channels, padding 2 -> ReLU -> max pool 2   [32, 14, 14]
//! conv2 5x5, 64 channels, padding 2 -> BatchNorm -> ReLU -> max pool 2   [64, 7, 7]
//! flatten -> Linear 3136 -> 10
//! ```
//!
//! trained with Adam (or SGD with Nesterov momentum) on 60,000 images and evaluated on the
//! 10,000 test images after every epoch.
//!
//! ```text
//! cargo run --release --example cnn -- --data ../shared/data/fashion-mnist   # a few minutes
//! cargo run --release --example cnn -- --data ... --epochs 30                 # longer
//! cargo run --release --example cnn -- --data ... --resume                    # continue
//! ```
//!
//! The data folder is `--data`, else `$HDM_FASHION_MNIST_DIR`, else `data/fashion-mnist`.
//! Writes to `--out` (default `runs/cnn`): `metrics.csv`, the loss and accuracy plots (SVG and
//! PNG), and per optimizer the model (`<optimizer>.safetensors`, which
//! `torch.nn.Module.load_state_dict(strict=True)` takes as it is: see the README) with its
//! optimizer's state beside it (`<optimizer>.optim.safetensors`, to `--resume` from).

mod common;

use std::path::Path;

use clap::{Parser, ValueEnum};
use hdm::metrics::{MetricsWriter, STANDARD_COLUMNS};
use hdm::prelude::*;
use hdm::train::{fit, FitConfig, MetricsHook, Progress};

use common::LeNet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Adam,
    Sgd,
}

#[derive(Parser, Debug)]
#[command(about = "LeNet with batch normalisation on Fashion-MNIST")]
struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    #[command(flatten)]
    dist: common::dist::DistArgs,
    /// Optimizers to train, each from the same initial weights
    #[arg(long, value_delimiter = ',', default_values = ["adam"])]
    optimizers: Vec<Which>,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-3, value_parser = common::non_negative, allow_negative_numbers = true)]
    adam_lr: f64,
    /// SGD's learning rate (Nesterov momentum 0.9)
    #[arg(long, default_value_t = 0.05, value_parser = common::non_negative, allow_negative_numbers = true)]
    sgd_lr: f64,
    /// Continue from the checkpoints in --out
    #[arg(long)]
    resume: bool,
}

const EPOCHS: usize = 3;
const BATCH: usize = 64;

fn main() {
    common::run(|| {
        let mut cli = Cli::parse();
        cli.common.apply_threads();
        let cluster = cli.dist.start("cnn")?;
        let root = cluster.as_ref().is_none_or(common::dist::Cluster::is_root);
        cli.common.quiet |= !root;
        let out = cli.common.out_dir("cnn")?;
        let (train, test) = cli.common.load_fashion_mnist()?;
        if let Some(c) = &cluster {
            c.check_inputs(&train, &test)?;
        }
        let epochs = cli.common.epochs.unwrap_or(EPOCHS);
        let batch = cli.common.batch.unwrap_or(BATCH);
        if !cli.common.quiet {
            println!(
                "Fashion-MNIST: {} training and {} test images; LeNet ({} parameters), batch {batch}, {epochs} epochs, {} threads",
                train.len(),
                test.len(),
                LeNet::<f32>::init(0).num_params(),
                hdm::num_threads()
            );
        }
        let metrics_path = out.join("metrics.csv");
        // Process 0 alone writes the metrics and the plots.
        let mut metrics = match root {
            false => None,
            true if cli.resume && metrics_path.exists() => {
                Some(MetricsWriter::append(&metrics_path, &STANDARD_COLUMNS)?)
            }
            true => Some(MetricsWriter::create(&metrics_path, &STANDARD_COLUMNS)?),
        };
        let initial = LeNet::<f32>::init(cli.common.seed);
        for which in &cli.optimizers {
            let run = Run {
                cli: &cli,
                cluster: cluster.as_ref(),
                out: &out,
                initial: &initial,
                train: &train,
                test: &test,
                epochs,
                batch,
            };
            match which {
                Which::Adam => run.train("adam", Adam::new(cli.adam_lr), metrics.as_mut())?,
                Which::Sgd => run.train("sgd", Sgd::new(cli.sgd_lr).momentum(0.9).nesterov(true), metrics.as_mut())?,
            }
        }
        common::plot_metrics(&metrics_path, &out, "Fashion-MNIST LeNet")?;
        if !cli.common.quiet {
            println!("metrics, plots and checkpoints in {}", out.display());
        }
        Ok(())
    })
}

struct Run<'a> {
    cli: &'a Cli,
    cluster: Option<&'a common::dist::Cluster>,
    out: &'a Path,
    initial: &'a LeNet<f32>,
    train: &'a hdm::data::Dataset<f32>,
    test: &'a hdm::data::Dataset<f32>,
    epochs: usize,
    batch: usize,
}

impl Run<'_> {
    fn train<O: Optimizer<f32>>(&self, label: &str, optimizer: O, metrics: Option<&mut MetricsWriter>) -> Result<()>
    where
        hdm::path::BatchNormalized: hdm::path::Accepts<O::Requires>,
    {
        let mut model = self.initial.clone();
        let checkpoint = self.out.join(format!("{label}.safetensors"));
        let config = FitConfig {
            epochs: self.epochs,
            seed: self.cli.common.seed,
            checkpoint: Some(checkpoint.clone()),
            ..Default::default()
        };
        let (resume, quiet) = (self.cli.resume, self.cli.common.quiet);
        let on_nonfinite = self.cli.common.on_nonfinite.into();
        if let Some(cluster) = self.cluster {
            let (train, test, batch) = (self.train, self.test, self.batch);
            let flush = self.cli.common.flush_subnormals;
            let job = common::dist::Job { label, batch, config, resume, quiet, on_nonfinite, flush, train, test };
            let history = common::dist::fit(cluster, &mut model, optimizer, job, metrics)?;
            return report(label, &history, quiet, &checkpoint);
        }
        let metrics = metrics.expect("a single process writes its metrics");
        let mut trainer = model
            .trainer(optimizer, self.batch)
            .with_finite_guard(on_nonfinite)
            .with_flush_subnormals(self.cli.common.flush_subnormals);
        let config = common::resume(&mut trainer, &mut model, config, resume, label, quiet)?;
        let mut progress = Progress::new(label, self.cli.common.quiet);
        let mut rows = MetricsHook::new(metrics, label);
        let history =
            fit(&mut trainer, &mut model, self.train, Some(self.test), &config, &mut [&mut progress, &mut rows])?;
        report(label, &history, quiet, &checkpoint)
    }
}

/// The last epoch's test accuracy and where the model is.
fn report(label: &str, history: &[hdm::train::EpochStats], quiet: bool, checkpoint: &Path) -> Result<()> {
    if let (Some(last), false) = (history.last(), quiet) {
        let acc = last.test_accuracy.unwrap_or(f64::NAN);
        println!(
            "{label}: test accuracy {:.2}% after epoch {}; model in {}",
            100.0 * acc,
            last.epoch,
            checkpoint.display()
        );
    }
    Ok(())
}
