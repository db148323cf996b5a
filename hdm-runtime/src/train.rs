//! A training loop: epochs of seeded mini-batches, evaluation on a held-out set, and hooks that
//! report what happens (in the manner of Chainer's trainer extensions and Keras callbacks).
//!
//! [`run`] is the loop; a [`Solver`] says what one mini-batch does (one network's step, or the
//! two steps of a GAN) and which figures it reports. [`fit`] is `run` with the solver of one
//! network and one optimizer ([`Single`]).
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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ndarray::ArrayView1;

use crate::data::{Batch, Batcher, Dataset};
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
    /// The names of the figures each step reports ([`Solver::figures`]; `["loss"]` for [`fit`]).
    pub figures: Vec<String>,
}

/// One training step, told to hooks after it.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo<'a> {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The step count since training began (over all runs resumed from checkpoints).
    pub step: u64,
    /// The batch's position in its epoch, from 1.
    pub batch: usize,
    /// Mini-batches in this epoch.
    pub batches: usize,
    /// The batch's loss (its first figure).
    pub loss: f64,
    /// Every figure of the step, in the order of [`RunInfo::figures`].
    pub figures: &'a [f64],
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
    /// Mean loss of the epoch's mini-batches (each weighted by its size): the mean of the first
    /// figure.
    pub train_loss: f64,
    /// The mean of every figure over the epoch's mini-batches (each weighted by its size), in
    /// the order of [`RunInfo::figures`].
    pub figures: Vec<f64>,
    /// Mean loss on the held-out set, if there is one.
    pub test_loss: Option<f64>,
    /// Fraction of the held-out set classified correctly.
    pub test_accuracy: Option<f64>,
    /// Steps of the epoch whose update was skipped for non-finite values
    /// ([`OnNonFinite::Skip`](crate::OnNonFinite::Skip)); their figures are left out of the means.
    pub skipped: u64,
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
    fn on_step(&mut self, _step: &StepInfo<'_>) -> Result<()> {
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
    /// Where to save a checkpoint after each epoch (with the epoch, the seed and the seconds
    /// trained in its metadata: `epoch`, `seed`, `wall_s`).
    pub checkpoint: Option<PathBuf>,
    /// Training seconds before `start_epoch` (when resuming): the wall-clock figures go on from
    /// here, so that a loss-against-time plot of a resumed run does not run backwards.
    pub start_wall_s: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            start_epoch: 1,
            seed: 0,
            drop_last: false,
            eval_batch: 1000,
            checkpoint: None,
            start_wall_s: 0.0,
        }
    }
}

impl FitConfig {
    /// Continues where the checkpoint whose metadata is `metadata` (saved by [`fit`] or [`run`])
    /// ended: from the epoch after its `epoch`, with the clock at its `wall_s`. A value that
    /// cannot be read is an error naming it.
    pub fn resuming(mut self, metadata: &BTreeMap<String, String>) -> Result<Self> {
        let bad = |key: &str, v: &str, what: &str| {
            crate::Error::Other(format!("checkpoint metadata {key:?} = {v:?} is not {what}"))
        };
        if let Some(v) = metadata.get("epoch") {
            let epoch: usize = v.parse().map_err(|_| bad("epoch", v, "an epoch number"))?;
            self.start_epoch = epoch.checked_add(1).ok_or_else(|| bad("epoch", v, "an epoch number"))?;
        }
        self.start_wall_s = match metadata.get("wall_s") {
            None => 0.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| bad("wall_s", v, "seconds"))?,
        };
        Ok(self)
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

/// What a training loop ([`run`]) does with each mini-batch: the user's per-batch step, with the
/// state it needs (networks, trainers, noise), in the manner of the `Solver` of the tutorials.
/// Every method but [`step`](Solver::step), [`figures`](Solver::figures),
/// [`batch_size`](Solver::batch_size) and [`steps`](Solver::steps) has a default that does
/// nothing.
pub trait Solver<T: Float> {
    /// The names of the figures [`step`](Solver::step) reports, the loss first (the progress bar
    /// shows their running means, [`EpochStats::figures`] their means over the epoch).
    fn figures(&self) -> Vec<String>;
    /// Rows per mini-batch.
    fn batch_size(&self) -> usize;
    /// Steps taken so far (over every run resumed from checkpoints).
    fn steps(&self) -> u64;
    /// Trains on one mini-batch and writes its figures (as many as [`figures`](Solver::figures)
    /// names).
    fn step(&mut self, batch: &Batch<'_, T>, figures: &mut [f64]) -> Result<()>;
    /// Updates skipped so far because of non-finite values
    /// ([`Trainer::skipped_steps`](crate::Trainer::skipped_steps)): a step that raises it is left
    /// out of the epoch's means and counted in [`EpochStats::skipped`].
    fn skipped(&self) -> u64 {
        0
    }
    /// The optimizer's name and its settings, for reports.
    fn describe(&self) -> (String, String) {
        (String::new(), String::new())
    }
    /// Before each epoch (from 1): learning-rate schedules by epoch, fresh noise, ...
    fn on_epoch_start(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// After each epoch's steps and its evaluation, with the epoch's figures: samples, plots,
    /// anything that reads the networks (the hooks, which cannot, are told after this).
    fn on_epoch_end(&mut self, _stats: &EpochStats) -> Result<()> {
        Ok(())
    }
    /// After each epoch's steps: the held-out loss and accuracy, when there is a held-out set.
    fn evaluate(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        Ok((None, None))
    }
    /// Saves a checkpoint to `path` with `metadata` (the epoch, the seed, the seconds trained),
    /// when [`FitConfig::checkpoint`] asks for one after each epoch.
    fn save_checkpoint(&mut self, path: &std::path::Path, _metadata: &BTreeMap<String, String>) -> Result<()> {
        Err(crate::Error::Other(format!("{}: this solver does not save checkpoints", path.display())))
    }
}

/// The solver of one network trained with one optimizer on class labels, evaluated on a held-out
/// set: what [`fit`] runs.
pub struct Single<'a, T: Float, M: Network<T>, O: Optimizer<T>> {
    /// The trainer (the optimizer and its state).
    pub trainer: &'a mut Trainer<T, M, O>,
    /// The network.
    pub model: &'a mut M,
    /// The held-out set, and its evaluator.
    pub test: Option<(&'a Dataset<T>, Evaluator<T, M>)>,
}

impl<T, M, O> Solver<T> for Single<'_, T, M, O>
where
    T: Float,
    M: for<'a> Network<T, Target<'a> = ArrayView1<'a, usize>>,
    O: Optimizer<T>,
{
    fn figures(&self) -> Vec<String> {
        vec!["loss".into()]
    }
    fn batch_size(&self) -> usize {
        self.trainer.max_batch()
    }
    fn steps(&self) -> u64 {
        self.trainer.steps()
    }
    fn skipped(&self) -> u64 {
        self.trainer.skipped_steps()
    }
    fn step(&mut self, batch: &Batch<'_, T>, figures: &mut [f64]) -> Result<()> {
        figures[0] = self.trainer.step(self.model, batch.x, batch.labels)?.to_f64();
        Ok(())
    }
    fn describe(&self) -> (String, String) {
        (self.trainer.optimizer.name().to_string(), settings(&self.trainer.optimizer.hyperparameters()))
    }
    fn evaluate(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        match &mut self.test {
            Some((data, evaluator)) => {
                let (l, a) = evaluator.evaluate(self.model, data)?;
                Ok((Some(l), Some(a)))
            }
            None => Ok((None, None)),
        }
    }
    #[cfg(feature = "checkpoint")]
    fn save_checkpoint(&mut self, path: &std::path::Path, metadata: &BTreeMap<String, String>) -> Result<()> {
        self.trainer.save_checkpoint(path, self.model, metadata)
    }
}

/// Trains `model` for the epochs of `config` on `train` with batches of the trainer's size,
/// evaluating on `test` after each epoch, and returns every epoch's figures: [`run`] with the
/// solver [`Single`].
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
    // Every label checked once, before any step: an error names the file it came from.
    train.check_labels(M::OUTPUT)?;
    if let Some(t) = test {
        t.check_labels(M::OUTPUT)?;
    }
    let test = test.map(|t| (t, Evaluator::<T, M>::new(config.eval_batch)));
    run(&mut Single { trainer, model, test }, train, config, hooks)
}

/// The training loop: for each epoch of `config`, the solver's step on every mini-batch of
/// `train` (shuffled by `config.seed` and the epoch, so that a resumed run sees the batches of
/// an uninterrupted one), then its evaluation and, when `config.checkpoint` is set, its
/// checkpoint; `hooks` are told each step and each epoch. Returns every epoch's figures.
pub fn run<T: Float, S: Solver<T> + ?Sized>(
    solver: &mut S,
    train: &Dataset<T>,
    config: &FitConfig,
    hooks: &mut [&mut dyn Hook],
) -> Result<Vec<EpochStats>> {
    let mut batches = Batcher::new(train, solver.batch_size(), config.seed)?.drop_last(config.drop_last);
    let names = solver.figures();
    if names.is_empty() {
        return Err(crate::Error::Other("a solver must report at least one figure (its loss)".into()));
    }
    let (optimizer, settings) = solver.describe();
    let run = RunInfo {
        start_epoch: config.start_epoch,
        epochs: config.epochs,
        batches_per_epoch: batches.batches_per_epoch(),
        optimizer,
        settings,
        figures: names.clone(),
    };
    for h in hooks.iter_mut() {
        h.on_fit_start(&run)?;
    }
    let mut history = Vec::new();
    let mut wall_s = config.start_wall_s;
    let mut figures = vec![0.0; names.len()];
    let mut sums = vec![0.0; names.len()];
    for epoch in config.start_epoch..=config.epochs {
        solver.on_epoch_start(epoch)?;
        for h in hooks.iter_mut() {
            h.on_epoch_start(epoch)?;
        }
        batches.start_epoch(epoch as u64);
        sums.iter_mut().for_each(|s| *s = 0.0);
        let mut count = 0usize;
        let skipped_before = solver.skipped();
        let mut since = Instant::now();
        while let Some(batch) = batches.next_batch() {
            let skipped = solver.skipped();
            solver.step(&batch, &mut figures)?;
            if solver.skipped() == skipped {
                for (s, f) in sums.iter_mut().zip(&figures) {
                    *s += f * batch.len() as f64;
                }
                count += batch.len();
            }
            if !hooks.is_empty() {
                wall_s += since.elapsed().as_secs_f64();
                let info = StepInfo {
                    epoch,
                    step: solver.steps(),
                    batch: batch.index + 1,
                    batches: run.batches_per_epoch,
                    loss: figures[0],
                    figures: &figures,
                };
                for h in hooks.iter_mut() {
                    h.on_step(&info)?;
                }
                since = Instant::now();
            }
        }
        wall_s += since.elapsed().as_secs_f64();
        let (test_loss, test_accuracy) = solver.evaluate()?;
        let all_skipped = count == 0 && solver.skipped() > skipped_before;
        let means: Vec<f64> =
            sums.iter().map(|s| if all_skipped { f64::NAN } else { s / count.max(1) as f64 }).collect();
        let stats = EpochStats {
            epoch,
            step: solver.steps(),
            wall_s,
            train_loss: means[0],
            figures: means,
            test_loss,
            test_accuracy,
            skipped: solver.skipped() - skipped_before,
        };
        if let Some(path) = &config.checkpoint {
            let mut meta = BTreeMap::new();
            meta.insert("epoch".into(), epoch.to_string());
            meta.insert("seed".into(), config.seed.to_string());
            meta.insert("wall_s".into(), wall_s.to_string());
            solver.save_checkpoint(path, &meta)?;
        }
        solver.on_epoch_end(&stats)?;
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

    /// Whether [`Progress`] draws a bar (on standard error): only when both outputs are the
    /// terminal. With standard output piped (`| tee log`) the epoch lines reach the terminal
    /// through the pipe, late, and would land inside the bar, leaving stale lines; then, and on
    /// a `dumb` terminal, only the epoch lines are printed.
    #[cfg(feature = "progress")]
    fn draws_bar(stdout_is_terminal: bool, stderr_is_terminal: bool, term: Option<&std::ffi::OsStr>) -> bool {
        stdout_is_terminal && stderr_is_terminal && term != Some(std::ffi::OsStr::new("dumb"))
    }

    /// Reports progress: while an epoch runs, a bar with the ETA, steps per second and the running
    /// loss on standard error, when both outputs are the terminal; after each epoch a line with
    /// its losses and accuracy on standard output (the only output when piped); nothing when
    /// quiet.
    pub struct Progress {
        label: String,
        quiet: bool,
        #[cfg(feature = "progress")]
        bar: Option<indicatif::ProgressBar>,
        /// The running mean of each figure.
        running: Vec<f64>,
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
                running: Vec::new(),
                run: None,
            }
        }
    }

    impl Hook for Progress {
        fn on_fit_start(&mut self, run: &RunInfo) -> Result<()> {
            self.run = Some(run.clone());
            self.running = vec![f64::NAN; run.figures.len()];
            Ok(())
        }

        #[allow(unused_variables)]
        fn on_epoch_start(&mut self, epoch: usize) -> Result<()> {
            self.running.iter_mut().for_each(|r| *r = f64::NAN);
            #[cfg(feature = "progress")]
            if !self.quiet
                && draws_bar(
                    std::io::stdout().is_terminal(),
                    std::io::stderr().is_terminal(),
                    std::env::var_os("TERM").as_deref(),
                )
            {
                let run = self.run.as_ref().expect("on_fit_start comes first");
                let bar = indicatif::ProgressBar::new(run.batches_per_epoch as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{} epoch {epoch}/{}", self.label, run.epochs));
                self.bar = Some(bar);
            }
            Ok(())
        }

        fn on_step(&mut self, s: &StepInfo<'_>) -> Result<()> {
            // Exponential moving averages, as the losses printed by most trainers.
            for (r, &f) in self.running.iter_mut().zip(s.figures).filter(|(_, f)| f.is_finite()) {
                *r = if r.is_nan() { f } else { 0.98 * *r + 0.02 * f };
            }
            #[cfg(feature = "progress")]
            if let Some(bar) = &self.bar {
                bar.set_position(s.batch as u64);
                if s.batch.is_multiple_of(10) || s.batch == s.batches {
                    let names = self.run.as_ref().map(|r| r.figures.as_slice()).unwrap_or_default();
                    let msg: Vec<String> =
                        names.iter().zip(&self.running).map(|(n, v)| format!("{n} {v:.4}")).collect();
                    bar.set_message(msg.join("  "));
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
            let names = self.run.as_ref().map(|r| r.figures.as_slice()).unwrap_or_default();
            let train = if names.len() > 1 {
                let parts: Vec<String> = names.iter().zip(&s.figures).map(|(n, v)| format!("{n} {v:.4}")).collect();
                parts.join("  ")
            } else {
                format!("train loss {:.4}", s.train_loss)
            };
            let skipped = match s.skipped {
                0 => String::new(),
                1 => "  (1 step skipped: not finite)".into(),
                n => format!("  ({n} steps skipped: not finite)"),
            };
            println!(
                "{:<6} epoch {:>3}  step {:>7}  {:>8.2}s  {train}{test}{skipped}",
                self.label, s.epoch, s.step, s.wall_s
            );
            Ok(())
        }
    }

    #[cfg(all(test, feature = "progress"))]
    mod tests {
        use std::ffi::OsStr;

        #[test]
        fn a_bar_only_when_both_outputs_are_the_terminal() {
            let xterm = Some(OsStr::new("xterm-256color"));
            assert!(super::draws_bar(true, true, xterm));
            assert!(super::draws_bar(true, true, None));
            assert!(!super::draws_bar(false, true, xterm), "stdout piped through tee");
            assert!(!super::draws_bar(true, false, xterm), "stderr redirected");
            assert!(!super::draws_bar(true, true, Some(OsStr::new("dumb"))));
        }
    }
}
