//! The reference experiment of Hamiltonian Descent Methods (Maddison et al. 2018): an MLP
//! 784-500-500-10 with ReLU on MNIST, batch 100, HDM (e = 1, gamma = 2/3, relativistic kinetic
//! energy, norm per tensor as in the reference Chainer code) against Adam with its defaults,
//! both from the same initial weights and the same data order.
//!
//! ```text
//! cargo run --release --example mnist                  # a short run (a couple of minutes)
//! cargo run --release --example mnist -- --epochs 100  # the full reference run
//! cargo run --release --example mnist -- --resume      # continue from the last checkpoints
//! ```
//!
//! Writes to `--out` (default `runs/mnist`): `metrics.csv` (one row per optimizer and epoch),
//! `loss_epoch.{svg,png}` and `loss_time.{svg,png}` (log-scale losses per epoch and against
//! wall-clock seconds), `accuracy.{svg,png}`, and per optimizer the model (`hdm.safetensors`,
//! `adam.safetensors`: PyTorch's `load_state_dict(strict=True)` takes them as they are) with
//! the optimizer's state beside it (`hdm.optim.safetensors`, `adam.optim.safetensors`).

mod common;

use std::path::Path;

use clap::{Parser, ValueEnum};
use hdm::metrics::{MetricsWriter, STANDARD_COLUMNS};
use hdm::prelude::*;
use hdm::train::{fit, FitConfig, MetricsHook, Progress};

use common::Mlp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Hdm,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NormArg {
    Global,
    PerTensor,
    PerElement,
}

#[derive(Parser, Debug)]
#[command(about = "HDM against Adam on MNIST (MLP 784-500-500-10)")]
struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    #[command(flatten)]
    dist: common::dist::DistArgs,
    /// Optimizers to train, each from the same initial weights
    #[arg(long, value_delimiter = ',', default_values = ["hdm", "adam"])]
    optimizers: Vec<Which>,
    /// HDM's step size e
    #[arg(long, default_value_t = 1.0, value_parser = common::non_negative, allow_negative_numbers = true)]
    hdm_lr: f64,
    /// HDM's friction gamma
    #[arg(long, default_value_t = 2.0 / 3.0, value_parser = common::non_negative, allow_negative_numbers = true)]
    hdm_gamma: f64,
    /// Over what HDM takes the momentum's norm
    #[arg(long, value_enum, default_value_t = NormArg::PerTensor)]
    hdm_norm: NormArg,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-3, value_parser = common::non_negative, allow_negative_numbers = true)]
    adam_lr: f64,
    /// Continue from the checkpoints in --out
    #[arg(long)]
    resume: bool,
}

const EPOCHS: usize = 20;
const BATCH: usize = 100;

fn main() {
    common::run(|| {
        let mut cli = Cli::parse();
        cli.common.apply_threads();
        let cluster = cli.dist.start("mnist")?;
        let root = cluster.as_ref().is_none_or(common::dist::Cluster::is_root);
        cli.common.quiet |= !root;
        let out = cli.common.out_dir("mnist")?;
        let (train, test) = cli.common.load_mnist()?;
        if let Some(c) = &cluster {
            c.check_inputs(&train, &test)?;
        }
        let epochs = cli.common.epochs.unwrap_or(EPOCHS);
        let batch = cli.common.batch.unwrap_or(BATCH);
        if !cli.common.quiet {
            println!(
                "MNIST: {} training and {} test images; MLP 784-500-500-10, batch {batch}, {epochs} epochs",
                train.len(),
                test.len()
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
        let initial = Mlp::<f32>::init(cli.common.seed);
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
                Which::Hdm => {
                    let norm = match cli.hdm_norm {
                        NormArg::Global => MomentumNorm::Global,
                        NormArg::PerTensor => MomentumNorm::PerTensor,
                        NormArg::PerElement => MomentumNorm::PerElement,
                    };
                    run.train("hdm", Hdm::new(cli.hdm_lr).gamma(cli.hdm_gamma).norm(norm), metrics.as_mut())?
                }
                Which::Adam => run.train("adam", Adam::new(cli.adam_lr), metrics.as_mut())?,
            }
        }
        common::plot_metrics(&metrics_path, &out, "MNIST MLP 784-500-500-10")?;
        if !cli.common.quiet {
            println!("metrics and plots in {}", out.display());
        }
        Ok(())
    })
}

struct Run<'a> {
    cli: &'a Cli,
    cluster: Option<&'a common::dist::Cluster>,
    out: &'a Path,
    initial: &'a Mlp<f32>,
    train: &'a hdm::data::Dataset<f32>,
    test: &'a hdm::data::Dataset<f32>,
    epochs: usize,
    batch: usize,
}

impl Run<'_> {
    fn train<O>(&self, label: &str, optimizer: O, metrics: Option<&mut MetricsWriter>) -> Result<()>
    where
        O: Optimizer<f32>,
        hdm::path::Homogeneous: hdm::path::Accepts<O::Requires>,
    {
        let mut model = self.initial.clone();
        let checkpoint = self.out.join(format!("{label}.safetensors"));
        let config = FitConfig {
            epochs: self.epochs,
            seed: self.cli.common.seed,
            checkpoint: Some(checkpoint),
            ..Default::default()
        };
        let (resume, quiet) = (self.cli.resume, self.cli.common.quiet);
        let on_nonfinite = self.cli.common.on_nonfinite.into();
        if let Some(cluster) = self.cluster {
            let (train, test, batch) = (self.train, self.test, self.batch);
            let flush = self.cli.common.flush_subnormals;
            let job = common::dist::Job { label, batch, config, resume, quiet, on_nonfinite, flush, train, test };
            common::dist::fit(cluster, &mut model, optimizer, job, metrics)?;
            return Ok(());
        }
        let metrics = metrics.expect("a single process writes its metrics");
        let mut trainer = model
            .trainer(optimizer, self.batch)
            .with_finite_guard(on_nonfinite)
            .with_flush_subnormals(self.cli.common.flush_subnormals);
        let config = common::resume(&mut trainer, &mut model, config, resume, label, quiet)?;
        let mut progress = Progress::new(label, self.cli.common.quiet);
        let mut rows = MetricsHook::new(metrics, label);
        fit(&mut trainer, &mut model, self.train, Some(self.test), &config, &mut [&mut progress, &mut rows])?;
        Ok(())
    }
}
