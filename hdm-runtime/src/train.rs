//! A training loop: epochs of seeded mini-batches, evaluation on a held-out set, and hooks that
//! report what happens (in the manner of Chainer's trainer extensions and Keras callbacks).
//!
//! ```no_run
//! # use hdm_runtime::{data, train, optim::Adam, Network, Result};
//! # fn run<M: Network<f32> + for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>>() -> Result<()> {
//! let (train_set, test_set) = data::load_mnist::<f32>(data::resolve_data_dir(None))?;
//! let mut model = M::init(0);
//! let mut trainer = model.trainer(Adam::default(), 100);
//! let mut progress = train::Progress::new("adam", false);
//! let config = train::FitConfig { epochs: 5, seed: 0, ..Default::default() };
//! let history = train::fit(&mut trainer, &mut model, &train_set, Some(&test_set), &config, &mut [&mut progress])?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Instant;

use ndarray::ArrayView1;

use crate::data::{Batcher, Dataset};
use crate::network::{Network, Trainer};
use crate::optim::Optimizer;
use crate::{Float, Result};

/// What a run is, told to hooks when it starts.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The epoch the run starts from (0, or later when resuming).
    pub start_epoch: usize,
    /// The epoch it stops before.
    pub epochs: usize,
    /// Mini-batches per epoch.
    pub batches_per_epoch: usize,
    /// The optimizer's name.
    pub optimizer: String,
    /// Its hyperparameters, `name=value` separated by spaces.
    pub settings: String,
}

/// One training step, told to hooks after it.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The step count since training began (over all runs resumed from checkpoints).
    pub step: u64,
    /// The batch's position in its epoch, from 1.
    pub batch: usize,
    /// Mini-batches in this epoch.
    pub batches: usize,
    /// The batch's loss.
    pub loss: f64,
}

/// The figures of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The step count at its end.
    pub step: u64,
    /// Seconds spent in training steps since the run started (evaluation and hooks excluded).
    pub wall_s: f64,
    /// Mean loss of the epoch's mini-batches (each weighted by its size).
    pub train_loss: f64,
    /// Mean loss on the held-out set, if there is one.
    pub test_loss: Option<f64>,
    /// Fraction of the held-out set classified correctly.
    pub test_accuracy: Option<f64>,
}

/// Something told what happens during [`fit`]. Every method has a default that does nothing.
pub trait Hook {
    /// Before the first epoch.
    fn on_fit_start(&mut self, _run: &RunInfo) -> Result<()> {
        Ok(())
    }
    /// Before each epoch (from 1).
    fn on_epoch_start(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// After each step.
    fn on_step(&mut self, _step: &StepInfo) -> Result<()> {
        Ok(())
    }
    /// After each epoch and its evaluation.
    fn on_epoch_end(&mut self, _stats: &EpochStats) -> Result<()> {
        Ok(())
    }
    /// After the last epoch.
    fn on_fit_end(&mut self, _history: &[EpochStats]) -> Result<()> {
        Ok(())
    }
}

/// How [`fit`] runs.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Train until this epoch (counted from 1, inclusive).
    pub epochs: usize,
    /// The first epoch to run, from 1 (more when resuming).
    pub start_epoch: usize,
    /// Seeds the order of the mini-batches (together with the epoch number).
    pub seed: u64,
    /// Drop the last, smaller batch of each epoch.
    pub drop_last: bool,
    /// Rows per evaluation batch.
    pub eval_batch: usize,
    /// Where to save a checkpoint after each epoch (with the epoch and seed in its metadata).
    pub checkpoint: Option<PathBuf>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig { epochs: 1, start_epoch: 1, seed: 0, drop_last: false, eval_batch: 1000, checkpoint: None }
    }
}

/// Evaluates a classifier: mean loss and accuracy over a dataset, with buffers made once (a
/// [`Predictor`](crate::Predictor)).
pub struct Evaluator<T: Float, M: Network<T>> {
    predictor: crate::Predictor<T, M>,
}

impl<T: Float, M> Evaluator<T, M>
where
    M: for<'a> Network<T, Target<'a> = ArrayView1<'a, usize>>,
{
    /// An evaluator taking `batch` rows at a time.
    pub fn new(batch: usize) -> Self {
        Evaluator { predictor: crate::Predictor::new(batch.max(1)) }
    }

    /// `(mean loss, accuracy)` of `model` on `data`.
    pub fn evaluate(&mut self, model: &M, data: &Dataset<T>) -> Result<(f64, f64)> {
        let (n, batch) = (data.len(), self.predictor.max_batch());
        let (mut loss, mut correct) = (0.0, 0usize);
        for start in (0..n).step_by(batch) {
            let rows = batch.min(n - start);
            let x = data.images.slice(ndarray::s![start..start + rows, ..]);
            let labels = data.labels.slice(ndarray::s![start..start + rows]);
            let count = |out: ndarray::ArrayView2<'_, T>| {
                out.rows()
                    .into_iter()
                    .zip(labels)
                    .filter(|(row, &label)| argmax(row.as_slice().expect("the output's rows are contiguous")) == label)
                    .count()
            };
            let (c, l) = self.predictor.forward_and_loss(model, x, labels, count)?;
            correct += c;
            loss += l.to_f64() * rows as f64;
        }
        Ok((loss / n.max(1) as f64, correct as f64 / n.max(1) as f64))
    }
}

/// The index of the largest value (the first one on ties; NaN never wins).
pub fn argmax<T: Float>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

/// `name=value` pairs of an optimizer's hyperparameters ([`Optimizer::hyperparameters`]),
/// separated by spaces.
pub fn settings(hyperparameters: &[(&str, f64)]) -> String {
    hyperparameters.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Trains `model` for the epochs of `config` on `train` with batches of the trainer's size,
/// evaluating on `test` after each epoch, and returns every epoch's figures.
///
/// The order of the batches depends only on `config.seed` and the epoch, so two runs from the
/// same initial weights (two optimizers compared, or a run resumed from a checkpoint) see the
/// same data in the same order.
pub fn fit<T, M, O>(
    trainer: &mut Trainer<T, M, O>,
    model: &mut M,
    train: &Dataset<T>,
    test: Option<&Dataset<T>>,
    config: &FitConfig,
    hooks: &mut [&mut dyn Hook],
) -> Result<Vec<EpochStats>>
where
    T: Float,
    M: for<'a> Network<T, Target<'a> = ArrayView1<'a, usize>>,
    O: Optimizer<T>,
{
    let mut batches = Batcher::new(train, trainer.max_batch(), config.seed)?.drop_last(config.drop_last);
    let mut evaluator = test.map(|_| Evaluator::<T, M>::new(config.eval_batch));
    let run = RunInfo {
        start_epoch: config.start_epoch,
        epochs: config.epochs,
        batches_per_epoch: batches.batches_per_epoch(),
        optimizer: trainer.optimizer.name().to_string(),
        settings: settings(&trainer.optimizer.hyperparameters()),
    };
    for h in hooks.iter_mut() {
        h.on_fit_start(&run)?;
    }
    let mut history = Vec::new();
    let mut wall_s = 0.0;
    for epoch in config.start_epoch..=config.epochs {
        for h in hooks.iter_mut() {
            h.on_epoch_start(epoch)?;
        }
        batches.start_epoch(epoch as u64);
        let (mut sum, mut count) = (0.0, 0usize);
        let mut since = Instant::now();
        while let Some(batch) = batches.next_batch() {
            let loss = trainer.step(model, batch.x, batch.labels)?.to_f64();
            sum += loss * batch.len() as f64;
            count += batch.len();
            if !hooks.is_empty() {
                wall_s += since.elapsed().as_secs_f64();
                let info = StepInfo {
                    epoch,
                    step: trainer.steps(),
                    batch: batch.index + 1,
                    batches: run.batches_per_epoch,
                    loss,
                };
                for h in hooks.iter_mut() {
                    h.on_step(&info)?;
                }
                since = Instant::now();
            }
        }
        wall_s += since.elapsed().as_secs_f64();
        let (test_loss, test_accuracy) = match (&mut evaluator, test) {
            (Some(e), Some(t)) => {
                let (l, a) = e.evaluate(model, t)?;
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let stats = EpochStats {
            epoch,
            step: trainer.steps(),
            wall_s,
            train_loss: sum / count.max(1) as f64,
            test_loss,
            test_accuracy,
        };
        #[cfg(feature = "checkpoint")]
        if let Some(path) = &config.checkpoint {
            let mut meta = crate::checkpoint::Metadata::new();
            meta.insert("epoch".into(), epoch.to_string());
            meta.insert("seed".into(), config.seed.to_string());
            meta.insert("wall_s".into(), wall_s.to_string());
            trainer.save_checkpoint(path, model, &meta)?;
        }
        for h in hooks.iter_mut() {
            h.on_epoch_end(&stats)?;
        }
        history.push(stats);
    }
    for h in hooks.iter_mut() {
        h.on_fit_end(&history)?;
    }
    Ok(history)
}

/// Appends each epoch's figures to a [`MetricsWriter`](crate::metrics::MetricsWriter) with the
/// [`STANDARD_COLUMNS`](crate::metrics::STANDARD_COLUMNS), labelled with the optimizer's name
/// and settings.
pub struct MetricsHook<'w> {
    writer: &'w mut crate::metrics::MetricsWriter,
    optimizer: String,
    settings: String,
}

impl<'w> MetricsHook<'w> {
    /// Rows for the run of `optimizer` (a label such as `"hdm"`), written to `writer`.
    pub fn new(writer: &'w mut crate::metrics::MetricsWriter, optimizer: impl Into<String>) -> Self {
        MetricsHook { writer, optimizer: optimizer.into(), settings: String::new() }
    }
}

impl Hook for MetricsHook<'_> {
    fn on_fit_start(&mut self, run: &RunInfo) -> Result<()> {
        self.settings = format!("{} {}", run.optimizer, run.settings);
        Ok(())
    }

    fn on_epoch_end(&mut self, s: &EpochStats) -> Result<()> {
        use crate::metrics::{Row, Value};
        let opt = |v: Option<f64>| v.map_or(Value::Empty, Value::F64);
        self.writer.write(
            &Row::new()
                .with("optimizer", self.optimizer.as_str())
                .with("epoch", s.epoch as u64)
                .with("step", s.step)
                .with("wall_s", s.wall_s)
                .with("train_loss", s.train_loss)
                .with("test_loss", opt(s.test_loss))
                .with("test_accuracy", opt(s.test_accuracy))
                .with("settings", self.settings.as_str()),
        )
    }
}

pub use progress::Progress;

mod progress {
    #[cfg(feature = "progress")]
    use std::io::IsTerminal;

    use super::{EpochStats, Hook, RunInfo, StepInfo};
    use crate::Result;

    /// Reports progress on standard error: a bar with the ETA, steps per second and the running
    /// loss on a terminal; one plain line per epoch otherwise; nothing when quiet. After each
    /// epoch it prints the epoch's losses and accuracy on standard output.
    pub struct Progress {
        label: String,
        quiet: bool,
        #[cfg(feature = "progress")]
        bar: Option<indicatif::ProgressBar>,
        running: f64,
        run: Option<RunInfo>,
    }

    impl Progress {
        /// A reporter whose lines start with `label` (the optimizer's name, say).
        pub fn new(label: impl Into<String>, quiet: bool) -> Self {
            Progress {
                label: label.into(),
                quiet,
                #[cfg(feature = "progress")]
                bar: None,
                running: f64::NAN,
                run: None,
            }
        }
    }

    impl Hook for Progress {
        fn on_fit_start(&mut self, run: &RunInfo) -> Result<()> {
            self.run = Some(run.clone());
            Ok(())
        }

        #[allow(unused_variables)]
        fn on_epoch_start(&mut self, epoch: usize) -> Result<()> {
            self.running = f64::NAN;
            #[cfg(feature = "progress")]
            if !self.quiet && std::io::stderr().is_terminal() {
                let run = self.run.as_ref().expect("on_fit_start comes first");
                let bar = indicatif::ProgressBar::new(run.batches_per_epoch as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} loss {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{} epoch {epoch}/{}", self.label, run.epochs));
                self.bar = Some(bar);
            }
            Ok(())
        }

        fn on_step(&mut self, s: &StepInfo) -> Result<()> {
            // An exponential moving average, as the loss printed by most trainers.
            self.running = if self.running.is_nan() { s.loss } else { 0.98 * self.running + 0.02 * s.loss };
            #[cfg(feature = "progress")]
            if let Some(bar) = &self.bar {
                bar.set_position(s.batch as u64);
                if s.batch.is_multiple_of(10) || s.batch == s.batches {
                    bar.set_message(format!("{:.4}", self.running));
                }
            }
            Ok(())
        }

        fn on_epoch_end(&mut self, s: &EpochStats) -> Result<()> {
            #[cfg(feature = "progress")]
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            if self.quiet {
                return Ok(());
            }
            let test = match (s.test_loss, s.test_accuracy) {
                (Some(l), Some(a)) => format!("  test loss {l:.4}  test accuracy {:.2}%", 100.0 * a),
                _ => String::new(),
            };
            println!(
                "{:<6} epoch {:>3}  step {:>7}  {:>8.2}s  train loss {:.4}{test}",
                self.label, s.epoch, s.step, s.wall_s, s.train_loss
            );
            Ok(())
        }
    }
}
