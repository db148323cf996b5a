//! Path-SGD's invariance on MNIST (Neyshabur, Salakhutdinov and Srebro 2015): the MLP
//! 784-500-500-10 with ReLU, from a balanced initialisation (PyTorch's default) and from an
//! unbalanced one made from it by rescaling hidden units (the paper's recipe: pick hidden units at
//! random with replacement, multiply each one's incoming weights and bias by a large log-normal
//! factor, divide its outgoing weights by it; the function is unchanged). Each is trained with
//! SGD, AdaGrad and Path-SGD, on the same data in the same order.
//!
//! ```text
//! cargo run --release --example path_sgd
//! ```
//!
//! What it shows: Path-SGD's curve is the same for both initialisations (its update does not see
//! the rescaling), while SGD's degrades on the unbalanced one. Writes `metrics.csv`,
//! `train_loss.{svg,png}` (the six training-loss curves) and `accuracy.{svg,png}` to `--out`
//! (default `runs/path_sgd`), and prints a table of final losses and accuracies.

mod common;

use clap::Parser;
use common::Mlp;
use hdm::metrics::{read_csv, MetricsWriter, STANDARD_COLUMNS};
use hdm::plot::{line_chart, LineChart};
use hdm::prelude::*;
use hdm::train::{fit, EpochStats, FitConfig, MetricsHook, Progress};

#[derive(Parser, Debug)]
#[command(about = "SGD, AdaGrad and Path-SGD from a balanced and an unbalanced initialisation")]
struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    /// SGD's learning rate
    #[arg(long, default_value_t = 0.05, value_parser = common::non_negative, allow_negative_numbers = true)]
    sgd_lr: f64,
    /// AdaGrad's learning rate
    #[arg(long, default_value_t = 0.01, value_parser = common::non_negative, allow_negative_numbers = true)]
    adagrad_lr: f64,
    /// Path-SGD's learning rate
    #[arg(long, default_value_t = 0.01, value_parser = common::non_negative, allow_negative_numbers = true)]
    path_lr: f64,
    /// Hidden units rescaled per hidden layer (picked with replacement)
    #[arg(long, default_value_t = 200)]
    rescale_count: usize,
    /// The log-normal factors are exp(sigma * z), z standard normal
    #[arg(long, default_value_t = 2.0, value_parser = common::non_negative, allow_negative_numbers = true)]
    rescale_sigma: f64,
}

/// The paper's unbalanced initialisation: rescale random hidden units, keeping the function.
fn unbalance(m: &mut Mlp<f32>, count: usize, sigma: f64, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    for _ in 0..count {
        let (j, c) = (rng.below(500), (sigma * rng.normal()).exp() as f32);
        m.fc1.weight_mut().row_mut(j).mapv_inplace(|w| w * c);
        m.fc1.bias_mut().unwrap()[j] *= c;
        m.fc2.weight_mut().column_mut(j).mapv_inplace(|w| w / c);
    }
    for _ in 0..count {
        let (j, c) = (rng.below(500), (sigma * rng.normal()).exp() as f32);
        m.fc2.weight_mut().row_mut(j).mapv_inplace(|w| w * c);
        m.fc2.bias_mut().unwrap()[j] *= c;
        m.fc3.weight_mut().column_mut(j).mapv_inplace(|w| w / c);
    }
}

struct Setup<'a> {
    cli: &'a Cli,
    train: &'a hdm::data::Dataset<f32>,
    test: &'a hdm::data::Dataset<f32>,
    config: FitConfig,
    batch: usize,
    out: &'a std::path::Path,
}

impl Setup<'_> {
    fn run<O>(&self, label: &str, init: &Mlp<f32>, optimizer: O, metrics: &mut MetricsWriter) -> Result<EpochStats>
    where
        O: Optimizer<f32>,
        hdm::path::Homogeneous: hdm::path::Accepts<O::Requires>,
    {
        let mut model = init.clone();
        let mut trainer = model
            .trainer(optimizer, self.batch)
            .with_finite_guard(self.cli.common.on_nonfinite.into())
            .with_flush_subnormals(self.cli.common.flush_subnormals);
        let mut progress = Progress::new(label, self.cli.common.quiet);
        let mut rows = MetricsHook::new(metrics, label);
        // The model (PyTorch's state dict) and its optimizer's state, after each epoch.
        let file = self.out.join(format!("{}.safetensors", label.replace('/', "_")));
        let config = FitConfig { checkpoint: Some(file), ..self.config.clone() };
        let history =
            fit(&mut trainer, &mut model, self.train, Some(self.test), &config, &mut [&mut progress, &mut rows])?;
        Ok(history.last().cloned().expect("at least one epoch"))
    }
}

fn main() {
    common::run(|| {
        let cli = Cli::parse();
        cli.common.apply_threads();
        let out = cli.common.out_dir("path_sgd")?;
        let (train, test) = cli.common.load_mnist()?;
        let epochs = cli.common.epochs.unwrap_or(10);
        let setup = Setup {
            cli: &cli,
            train: &train,
            test: &test,
            config: FitConfig { epochs, seed: cli.common.seed, ..Default::default() },
            batch: cli.common.batch.unwrap_or(100),
            out: &out,
        };
        let balanced = Mlp::<f32>::init(cli.common.seed);
        let mut unbalanced = balanced.clone();
        unbalance(&mut unbalanced, cli.rescale_count, cli.rescale_sigma, cli.common.seed);
        if !cli.common.quiet {
            println!(
                "path norm: balanced {:.4e}, unbalanced {:.4e} (equal: rescaling keeps it); weight norm: {:.4e} vs {:.4e}",
                balanced.path_norm(),
                unbalanced.path_norm(),
                weight_norm(&balanced),
                weight_norm(&unbalanced)
            );
        }

        let metrics_path = out.join("metrics.csv");
        let mut metrics = MetricsWriter::create(&metrics_path, &STANDARD_COLUMNS)?;
        let mut table = Vec::new();
        for (init_label, init) in [("balanced", &balanced), ("unbalanced", &unbalanced)] {
            let runs = [
                (
                    format!("sgd/{init_label}"),
                    setup.run(&format!("sgd/{init_label}"), init, Sgd::new(cli.sgd_lr), &mut metrics)?,
                ),
                (
                    format!("adagrad/{init_label}"),
                    setup.run(&format!("adagrad/{init_label}"), init, AdaGrad::new(cli.adagrad_lr), &mut metrics)?,
                ),
                (
                    format!("path-sgd/{init_label}"),
                    setup.run(&format!("path-sgd/{init_label}"), init, PathSgd::new(cli.path_lr), &mut metrics)?,
                ),
            ];
            table.extend(runs);
        }

        let rows = read_csv(&metrics_path)?;
        // One colour per optimizer; the unbalanced start dashed.
        let styled = |y: &str| -> Vec<hdm::plot::Series> {
            common::curves(&rows, "epoch", y, "")
                .into_iter()
                .map(|c| {
                    let k = ["sgd/", "adagrad/", "path-sgd/"].iter().position(|p| c.label.starts_with(p)).unwrap_or(0);
                    let c = c.with_color(k);
                    if c.label.ends_with("/unbalanced") {
                        c.dashed()
                    } else {
                        c
                    }
                })
                .collect()
        };
        line_chart(
            out.join("train_loss"),
            &LineChart {
                title: "MNIST 784-500-500-10: balanced vs unbalanced initialisation".into(),
                x_label: "epoch".into(),
                y_label: "training loss (log scale)".into(),
                log_y: true,
                series: styled("train_loss"),
            },
        )?;
        line_chart(
            out.join("accuracy"),
            &LineChart {
                title: "MNIST 784-500-500-10: test accuracy".into(),
                x_label: "epoch".into(),
                y_label: "test accuracy".into(),
                log_y: false,
                series: styled("test_accuracy"),
            },
        )?;
        println!("\n{:<22} {:>11} {:>10} {:>14}", "run", "train loss", "test loss", "test accuracy");
        for (label, s) in &table {
            println!(
                "{label:<22} {:>11.4} {:>10.4} {:>13.2}%",
                s.train_loss,
                s.test_loss.unwrap_or(f64::NAN),
                100.0 * s.test_accuracy.unwrap_or(f64::NAN)
            );
        }
        if !cli.common.quiet {
            println!("metrics and plots in {}", out.display());
        }
        Ok(())
    })
}

fn weight_norm(m: &Mlp<f32>) -> f64 {
    m.params().iter().flat_map(|p| p.data.iter()).map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt()
}
