//! A DCGAN on Fashion-MNIST (or any IDX image set): the generator and discriminator of the GAN
//! tutorial, trained against each other with a `Solver` and callbacks.
//!
//! ```text
//! generator      z [32], uniform in [-1, 1]
//!                Linear 1024, BatchNorm, ReLU; Linear 6400, BatchNorm, ReLU; reshape [256, 5, 5]
//!                ConvTranspose 3x3 -> [128, 7, 7], BatchNorm, ReLU
//!                ConvTranspose 4x4 stride 2 -> [64, 14, 14], BatchNorm, ReLU
//!                ConvTranspose 4x4 stride 2 -> [1, 28, 28], sigmoid
//! discriminator  Conv 4x4 stride 2 -> [64, 14, 14], ReLU
//!                Conv 4x4 stride 2 -> [128, 7, 7], BatchNorm, ReLU
//!                Conv 3x3 -> [256, 5, 5], BatchNorm, ReLU
//!                Linear 1024, BatchNorm, LeakyReLU 0.2; Linear 1 (a logit: the sigmoid is in the loss)
//! ```
//!
//! Each iteration: the generator's step on `BCE(D(G(z)), 1)`, then the discriminator's on
//! `BCE(D(G(z')), 0) + BCE(D(x), 1)` (see `hdm::gan`). Both use SGD with Nesterov momentum 0.8 and
//! lr 0.005 times 0.95^(epoch / 2), or with `--optimizer adam` Adam (lr 2e-4, betas 0.5, 0.999).
//!
//! ```text
//! cargo run --release --example dcgan -- --data ../shared/data/fashion-mnist            # 1 epoch
//! cargo run --release --example dcgan -- --data ../shared/data/fashion-mnist --epochs 20
//! cargo run --release --example dcgan -- --data ... --epochs 30 --resume                # continue
//! cargo run --release --example dcgan -- --data emnist-balanced-train-images-idx3-ubyte.gz --transpose
//! ```
//!
//! `--data` is a folder with MNIST's file names (the training images are used) or an IDX image
//! file; without it, `$HDM_FASHION_MNIST_DIR`, else `data/fashion-mnist`, else
//! `../shared/data/fashion-mnist`. Writes to `--out` (default `runs/dcgan`):
//!
//! - `metrics.csv`: per epoch, the wall seconds and the means of the generator's loss, the
//!   discriminator's loss, D(x) and D(G(z));
//! - `samples_NNN.png` (64 samples from fixed noise) and `interpolation_NNN.png` (8 rows, each
//!   from one fixed noise vector to another in 8 steps) after each epoch (000: untrained), and
//!   `progress.gif`, both grids over the epochs;
//! - `loss.svg` and `loss.png`;
//! - with `--judge FILE` (a LeNet's parameters, as the `cnn` example writes them), `quality.csv`:
//!   per epoch (0: untrained), how the classifier sees 1,000 samples from fixed noise
//!   (`hdm::gan::SampleQuality`: mean confidence, class entropy, Inception Score), after its
//!   figures for the first 1,000 training images as a reference (epoch -1);
//! - `checkpoint/` (both networks with their optimizers' states, to `--resume` from) and
//!   `generator.safetensors`, `discriminator.safetensors`: the networks alone, which the
//!   equivalent `torch.nn` modules load with `load_state_dict(strict=True)`
//!   (`examples/dcgan_torch.py` shows how).

pub mod common;

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use hdm::data::Dataset;
use hdm::gan::{Gan, SampleQuality, GENERATOR_FILE};
use hdm::metrics::{read_csv, MetricsWriter, Row};
use hdm::plot::{image_grid, line_chart, load_gray, save_gif, save_png, side_by_side, LineChart, Series};
use hdm::prelude::*;
use hdm::train::{self, EpochStats, FitConfig, Hook, Progress, Solver};
use ndarray::{s, Array2, ArrayView2};

use common::{Discriminator, Generator, LeNet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// SGD, Nesterov momentum 0.8, lr 0.005 times 0.95^(epoch / 2)
    Sgd,
    /// Adam, lr 2e-4, betas (0.5, 0.999)
    Adam,
}

#[derive(Parser, Debug)]
#[command(about = "A DCGAN on Fashion-MNIST (or any IDX image set)")]
pub struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    /// The optimizer of both networks
    #[arg(long, value_enum, default_value_t = Which::Sgd)]
    optimizer: Which,
    /// Learning rate [default: 0.005 for SGD, 2e-4 for Adam]
    #[arg(long, value_parser = common::non_negative, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Train on the first N images only
    #[arg(long, value_name = "N", value_parser = common::at_least_one, allow_negative_numbers = true)]
    limit: Option<usize>,
    /// Transpose every image (EMNIST stores them transposed)
    #[arg(long)]
    transpose: bool,
    /// Continue from the checkpoint in --out
    #[arg(long)]
    resume: bool,
    /// A classifier to judge the samples with after each epoch: the `cnn` example's
    /// `adam.safetensors` (LeNet on Fashion-MNIST); writes quality.csv
    #[arg(long, value_name = "FILE")]
    judge: Option<PathBuf>,
}

const EPOCHS: usize = 1;
const BATCH: usize = 128;
const METRICS: [&str; 7] = ["epoch", "step", "wall_s", "g_loss", "d_loss", "d_x", "d_g_z"];

fn main() {
    common::run(|| run(&Cli::parse()))
}

/// The example with the flags `cli`.
pub fn run(cli: &Cli) -> Result<()> {
    cli.common.apply_threads();
    let out = cli.common.out_dir("dcgan")?;
    let mut data = load_images(cli.common.data.clone())?;
    if let Some(n) = cli.limit {
        data = data.head(n);
    }
    if cli.transpose {
        data = data.transposed();
    }
    if (data.rows, data.cols) != (28, 28) {
        return Err(hdm::Error::Other(format!(
            "the DCGAN makes 28x28 images; the data's are {}x{}",
            data.rows, data.cols
        )));
    }
    let batch = cli.common.batch.unwrap_or(BATCH);
    if data.len() < batch {
        return Err(hdm::Error::Other(format!(
            "{} images are fewer than one batch of {batch} (--limit, --batch)",
            data.len()
        )));
    }
    match cli.optimizer {
        Which::Sgd => {
            let sgd = Sgd::new(cli.lr.unwrap_or(0.005)).momentum(0.8).nesterov(true);
            // 0.95^(epoch / 2), the epoch counted from 0: the factor falls every two epochs.
            let schedule = Schedule::step(2 * (data.len() / batch) as u64, 0.95);
            train_gan(cli, &out, &data, batch, sgd, schedule)
        }
        Which::Adam => {
            let adam = Adam::new(cli.lr.unwrap_or(2e-4)).betas(0.5, 0.999);
            train_gan(cli, &out, &data, batch, adam, Schedule::Constant)
        }
    }
}

/// The training images of `--data` (a folder or an IDX image file), else of the default folders.
fn load_images(data: Option<PathBuf>) -> Result<Dataset<f32>> {
    let set = hdm::data::FASHION_MNIST;
    let path = data.unwrap_or_else(|| match set.resolve_dir(None) {
        dir if dir == Path::new(set.default_dir) && !dir.is_dir() => PathBuf::from("../shared/data/fashion-mnist"),
        dir => dir,
    });
    if path.is_file() {
        return Dataset::from_idx_images(&path);
    }
    Ok(set.load(&path)?.0)
}

fn train_gan<O: Optimizer<f32> + Clone>(
    cli: &Cli,
    out: &Path,
    data: &Dataset<f32>,
    batch: usize,
    optimizer: O,
    schedule: Schedule,
) -> Result<()>
where
    hdm::path::BatchNormalized: hdm::path::Accepts<O::Requires>,
{
    let seed = cli.common.seed;
    let (g, d) = (Generator::<f32>::init(seed), Discriminator::<f32>::init(seed.wrapping_add(1)));
    let guard = cli.common.on_nonfinite.into();
    let flush = cli.common.flush_subnormals;
    let g_trainer = g
        .trainer(optimizer.clone(), batch)
        .with_schedule(schedule)
        .with_finite_guard(guard)
        .with_flush_subnormals(flush);
    let d_trainer =
        d.trainer(optimizer, batch).with_schedule(schedule).with_finite_guard(guard).with_flush_subnormals(flush);
    let gan = Gan::new(g, g_trainer, d, d_trainer, seed)?;
    let quiet = cli.common.quiet;
    let checkpoint = out.join("checkpoint");
    let resuming = cli.resume && checkpoint.join(GENERATOR_FILE).exists();
    let judge = match &cli.judge {
        Some(path) => Some(Judge::new(path, out, seed, data, resuming, quiet)?),
        None => None,
    };
    let mut solver = DcganSolver { gan, plots: Plots::new(out, seed)?, judge };

    let epochs = cli.common.epochs.unwrap_or(EPOCHS);
    let mut config =
        FitConfig { epochs, seed, drop_last: true, checkpoint: Some(checkpoint.clone()), ..Default::default() };
    if resuming {
        let meta = solver.gan.load(&checkpoint)?;
        config = config.resuming(&meta)?;
        if !quiet {
            println!(
                "resuming after epoch {} (iteration {}, {:.1} s trained)",
                config.start_epoch - 1,
                solver.gan.iterations(),
                config.start_wall_s
            );
        }
    } else {
        solver.plots.save(&solver.gan.generator, 0)?;
        if let Some(judge) = &mut solver.judge {
            judge.judge(&solver.gan.generator, 0)?;
        }
    }
    let start_epoch = config.start_epoch;
    if !quiet {
        let (name, settings) = solver.describe();
        println!(
            "DCGAN on {} images of 28x28: generator {} and discriminator {} parameters; {name} ({settings}); batch {batch}, epochs {start_epoch}..={epochs}, {} threads",
            data.len(),
            solver.gan.generator.num_params(),
            solver.gan.discriminator.num_params(),
            hdm::num_threads()
        );
    }
    let metrics_path = out.join("metrics.csv");
    let mut metrics = if start_epoch > 1 && metrics_path.exists() {
        MetricsWriter::append(&metrics_path, &METRICS)?
    } else {
        MetricsWriter::create(&metrics_path, &METRICS)?
    };
    let mut progress = Progress::new("dcgan", quiet);
    let mut rows = CsvRows { writer: &mut metrics };
    train::run(&mut solver, data, &config, &mut [&mut progress, &mut rows])?;

    plot_losses(&metrics_path, out)?;
    // The networks alone, under PyTorch's names: state dicts `torch.nn.Module` loads strictly.
    hdm::checkpoint::save_params(out.join("generator.safetensors"), &solver.gan.generator, &Default::default())?;
    hdm::checkpoint::save_params(
        out.join("discriminator.safetensors"),
        &solver.gan.discriminator,
        &Default::default(),
    )?;
    if !quiet {
        println!("metrics, sample grids, progress.gif, loss plot and networks in {}", out.display());
    }
    Ok(())
}

/// The GAN, with the callback of the tutorial that plots the generator after each epoch (and
/// judges it, with `--judge`).
struct DcganSolver<O: Optimizer<f32>> {
    gan: Gan<f32, Generator<f32>, Discriminator<f32>, O, O>,
    plots: Plots,
    judge: Option<Judge>,
}

impl<O: Optimizer<f32>> Solver<f32> for DcganSolver<O> {
    fn figures(&self) -> Vec<String> {
        self.gan.figures()
    }
    fn batch_size(&self) -> usize {
        self.gan.batch_size()
    }
    fn steps(&self) -> u64 {
        self.gan.steps()
    }
    fn step(&mut self, batch: &hdm::data::Batch<'_, f32>, figures: &mut [f64]) -> Result<()> {
        self.gan.step(batch, figures)
    }
    fn describe(&self) -> (String, String) {
        self.gan.describe()
    }
    fn on_epoch_end(&mut self, stats: &EpochStats) -> Result<()> {
        if let Some(judge) = &mut self.judge {
            judge.judge(&self.gan.generator, stats.epoch)?;
        }
        self.plots.save(&self.gan.generator, stats.epoch)
    }
    fn save_checkpoint(&mut self, dir: &Path, metadata: &std::collections::BTreeMap<String, String>) -> Result<()> {
        self.gan.save_checkpoint(dir, metadata)
    }
}

/// The generator plot: samples from fixed noise and interpolations between fixed noise
/// vectors, made in inference mode (running statistics), one pair of grids per epoch, and the
/// animation of all of them.
struct Plots {
    out: PathBuf,
    /// 64 noise vectors for the samples, then 64 for the interpolation grid.
    noise: Array2<f32>,
    predictor: Predictor<f32, Generator<f32>>,
}

impl Plots {
    fn new(out: &Path, seed: u64) -> Result<Self> {
        const LATENT: usize = 32;
        let mut rng = Rng::new(seed ^ 0x5EED_0FF1_CE00);
        let mut noise = Array2::from_shape_fn((128, LATENT), |_| rng.uniform_in(-1.0, 1.0) as f32);
        // Row r of the interpolation grid goes from one random vector to another in 8 steps.
        for r in 0..8 {
            let (a, b) = (noise.row(64 + 8 * r).to_owned(), noise.row(64 + 8 * r + 7).to_owned());
            for k in 0..8 {
                let t = k as f32 / 7.0;
                noise.row_mut(64 + 8 * r + k).assign(&(&a * (1.0 - t) + &b * t));
            }
        }
        Ok(Plots { out: out.to_path_buf(), noise, predictor: Predictor::new(128) })
    }

    fn save(&mut self, generator: &Generator<f32>, epoch: usize) -> Result<()> {
        let images = self.predictor.forward(generator, self.noise.view())?;
        let grid = |rows: ArrayView2<'_, f32>| image_grid(rows, (28, 28), 8, 2);
        save_png(&grid(images.slice(s![..64, ..]))?, self.out.join(format!("samples_{epoch:03}.png")))?;
        save_png(&grid(images.slice(s![64.., ..]))?, self.out.join(format!("interpolation_{epoch:03}.png")))?;
        // The animation: every epoch's two grids side by side, from the files on disk (so that
        // a resumed run animates the whole run).
        let mut frames = Vec::new();
        for e in 0..=epoch {
            let (a, b) =
                (self.out.join(format!("samples_{e:03}.png")), self.out.join(format!("interpolation_{e:03}.png")));
            if !(a.exists() && b.exists()) {
                continue;
            }
            frames.push(side_by_side(&[load_gray(&a)?, load_gray(&b)?]));
        }
        save_gif(&frames, 500, self.out.join("progress.gif"))
    }
}

/// `--judge`: a classifier's view of 1,000 samples from fixed noise, made in inference mode,
/// after each epoch, in `quality.csv`.
struct Judge {
    classifier: LeNet<f32>,
    /// 1,000 noise vectors, drawn from their own seed (not the plots').
    noise: Array2<f32>,
    samples: Predictor<f32, Generator<f32>>,
    classify: Predictor<f32, LeNet<f32>>,
    logits: Array2<f32>,
    writer: MetricsWriter,
    quiet: bool,
}

impl Judge {
    const SAMPLES: usize = 1000;
    const CHUNK: usize = 250;
    const COLUMNS: [&str; 4] = ["epoch", "mean_confidence", "class_entropy", "inception_score"];

    /// Loads the classifier from `path` and, unless `resuming`, starts `quality.csv` with its
    /// figures for the first 1,000 images of `data` (epoch -1).
    fn new(path: &Path, out: &Path, seed: u64, data: &Dataset<f32>, resuming: bool, quiet: bool) -> Result<Self> {
        let mut classifier = LeNet::<f32>::zeros();
        hdm::checkpoint::Checkpoint::open(path)?.load_params(&mut classifier).map_err(|e| {
            hdm::Error::Other(format!("--judge takes the parameters of the `cnn` example's LeNet: {e}"))
        })?;
        let mut rng = Rng::new(seed ^ 0x0001_D6E5);
        let noise = Array2::from_shape_fn((Self::SAMPLES, 32), |_| rng.uniform_in(-1.0, 1.0) as f32);
        let csv = out.join("quality.csv");
        let writer = if resuming && csv.exists() {
            MetricsWriter::append(&csv, &Self::COLUMNS)
        } else {
            MetricsWriter::create(&csv, &Self::COLUMNS)
        }?;
        let mut judge = Judge {
            classifier,
            noise,
            samples: Predictor::new(Self::CHUNK),
            classify: Predictor::new(Self::CHUNK),
            logits: Array2::zeros((Self::SAMPLES, 10)),
            writer,
            quiet,
        };
        if !resuming {
            let n = Self::SAMPLES.min(data.len());
            for start in (0..n).step_by(Self::CHUNK) {
                let end = (start + Self::CHUNK).min(n);
                let logits = judge.classify.forward(&judge.classifier, data.images.slice(s![start..end, ..]))?;
                judge.logits.slice_mut(s![start..end, ..]).assign(&logits);
            }
            let real = SampleQuality::of_logits(judge.logits.slice(s![..n, ..]));
            judge.write(-1, real, "real images")?;
        }
        Ok(judge)
    }

    fn judge(&mut self, generator: &Generator<f32>, epoch: usize) -> Result<()> {
        for start in (0..Self::SAMPLES).step_by(Self::CHUNK) {
            let rows = s![start..start + Self::CHUNK, ..];
            let images = self.samples.forward(generator, self.noise.slice(rows))?;
            self.logits.slice_mut(rows).assign(&self.classify.forward(&self.classifier, images)?);
        }
        let quality = SampleQuality::of_logits(self.logits.view());
        self.write(epoch as i64, quality, &format!("epoch {epoch}"))
    }

    fn write(&mut self, epoch: i64, q: SampleQuality, what: &str) -> Result<()> {
        if !self.quiet {
            println!(
                "judge, {what}: confidence {:.3}, class entropy {:.3} nats, Inception Score {:.2}",
                q.mean_confidence, q.class_entropy, q.inception_score
            );
        }
        let row = Row::new()
            .with("epoch", epoch)
            .with("mean_confidence", q.mean_confidence)
            .with("class_entropy", q.class_entropy)
            .with("inception_score", q.inception_score);
        self.writer.write(&row)
    }
}

/// Appends each epoch's figures to `metrics.csv`.
struct CsvRows<'w> {
    writer: &'w mut MetricsWriter,
}

impl Hook for CsvRows<'_> {
    fn on_epoch_end(&mut self, s: &EpochStats) -> Result<()> {
        let mut row = Row::new().with("epoch", s.epoch as u64).with("step", s.step).with("wall_s", s.wall_s);
        for (name, value) in hdm::gan::GanFigures::NAMES.iter().zip(&s.figures) {
            row.set(name, *value);
        }
        self.writer.write(&row)
    }
}

/// `loss.svg` and `loss.png`: both losses per epoch, over the whole run (resumed parts included).
fn plot_losses(metrics: &Path, out: &Path) -> Result<()> {
    let rows = read_csv(metrics)?;
    let curve = |column: &str| {
        let points = rows.iter().filter_map(|r| Some((r.get("epoch")?.parse().ok()?, r.get(column)?.parse().ok()?)));
        Series::new(column, points.collect())
    };
    let chart = LineChart {
        title: "DCGAN: mean losses per epoch".into(),
        x_label: "epoch".into(),
        y_label: "binary cross-entropy".into(),
        log_y: false,
        series: vec![curve("g_loss"), curve("d_loss")],
    };
    line_chart(out.join("loss"), &chart).map(|_| ())
}
