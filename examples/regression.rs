//! The tutorial network: 100 -> 1000 -> 10 without biases, ReLU, sum-of-squares loss, fitted to
//! one batch of 100 standard-normal inputs and targets for 1000 epochs. Plain gradient descent
//! (lr 1e-6, halved every 200 epochs) against SGD with Nesterov momentum (lr 1e-5, momentum 0.8,
//! weight decay 1e-8), from the same initial weights.
//!
//! ```text
//! cargo run --release --example regression
//! ```
//!
//! Writes `metrics.csv` and `loss.{svg,png}` (both loss curves, log scale) to `--out` (default
//! `runs/regression`).

mod common;

use clap::Parser;
use hdm::metrics::{MetricsWriter, Row, Value, STANDARD_COLUMNS};
use hdm::plot::{line_chart, LineChart, Series};
use hdm::prelude::*;
use hdm::train::settings;

use common::Tutorial;
use ndarray::Array2;

#[derive(Parser, Debug)]
#[command(about = "Gradient descent with step decay against Nesterov SGD on the tutorial network")]
struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    /// Learning rate of plain gradient descent
    #[arg(long, default_value_t = 1e-6, value_parser = common::non_negative, allow_negative_numbers = true)]
    gd_lr: f64,
    /// Halve gradient descent's learning rate every this many epochs
    #[arg(long, default_value_t = 200, value_parser = common::at_least_one, allow_negative_numbers = true)]
    gd_halve_every: usize,
    /// Learning rate of SGD with Nesterov momentum
    #[arg(long, default_value_t = 1e-5, value_parser = common::non_negative, allow_negative_numbers = true)]
    sgd_lr: f64,
    /// Momentum of SGD
    #[arg(long, default_value_t = 0.8, value_parser = common::fraction, allow_negative_numbers = true)]
    momentum: f64,
    /// Weight decay of SGD
    #[arg(long, default_value_t = 1e-8, value_parser = common::non_negative, allow_negative_numbers = true)]
    weight_decay: f64,
}

fn main() {
    common::run(|| {
        let cli = Cli::parse();
        cli.common.apply_threads();
        let out = cli.common.out_dir("regression")?;
        let epochs = cli.common.epochs.unwrap_or(1000);
        let batch = cli.common.batch.unwrap_or(100);
        let mut rng = Rng::new(cli.common.seed);
        let x = Array2::from_shape_simple_fn((batch, 100), || rng.normal() as f32);
        let y = Array2::from_shape_simple_fn((batch, 10), || rng.normal() as f32);
        let initial = Tutorial::<f32>::init(cli.common.seed);

        let mut metrics = MetricsWriter::create(out.join("metrics.csv"), &STANDARD_COLUMNS)?;
        let gd = Sgd::new(cli.gd_lr);
        let nesterov = Sgd::new(cli.sgd_lr).momentum(cli.momentum).nesterov(true).weight_decay(cli.weight_decay);
        let runs = [
            ("gd", gd, Schedule::step(cli.gd_halve_every as u64, 0.5)),
            ("sgd-nesterov", nesterov, Schedule::Constant),
        ];
        let mut curves = Vec::new();
        for (label, optimizer, schedule) in runs {
            let mut model = initial.clone();
            let mut trainer = model
                .trainer(optimizer, batch)
                .with_schedule(schedule)
                .with_finite_guard(cli.common.on_nonfinite.into())
                .with_flush_subnormals(cli.common.flush_subnormals);
            let started = std::time::Instant::now();
            let mut points = Vec::new();
            for epoch in 1..=epochs {
                let loss = trainer.step(&mut model, x.view(), y.view())? as f64;
                points.push((epoch as f64, loss));
                metrics.write(
                    &Row::new()
                        .with("optimizer", label)
                        .with("epoch", epoch as u64)
                        .with("step", trainer.steps())
                        .with("wall_s", started.elapsed().as_secs_f64())
                        .with("train_loss", loss)
                        .with("test_loss", Value::Empty)
                        .with("test_accuracy", Value::Empty)
                        .with(
                            "settings",
                            format!(
                                "{} {}",
                                optimizer_name(label),
                                settings(&Optimizer::<f32>::hyperparameters(&trainer.optimizer))
                            ),
                        ),
                )?;
                if !cli.common.quiet && (epoch == 1 || epoch % 100 == 0) {
                    println!("{label:<13} epoch {epoch:>5}  loss {loss:.6e}");
                }
            }
            // The model (PyTorch's state dict) and its optimizer's state.
            trainer.save_checkpoint(out.join(format!("{label}.safetensors")), &model, &Default::default())?;
            curves.push(Series::new(label, points));
        }
        line_chart(
            out.join("loss"),
            &LineChart {
                title: "100-1000-10 ReLU, sum of squares: GD with step decay vs Nesterov SGD".into(),
                x_label: "epoch".into(),
                y_label: "loss (log scale)".into(),
                log_y: true,
                series: curves,
            },
        )?;
        if !cli.common.quiet {
            println!("metrics and plot in {}", out.display());
        }
        Ok(())
    })
}

fn optimizer_name(label: &str) -> &'static str {
    if label == "gd" {
        "sgd (lr halved every N epochs)"
    } else {
        "sgd"
    }
}
