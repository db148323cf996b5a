//! Two networks trained against each other: a generator `G` from noise to images and a
//! discriminator `D` from images to one logit, with the loss of Goodfellow et al. (2014) in its
//! non-saturating form, as the DCGAN of Radford et al. (2016) trains them.
//!
//! One iteration ([`Gan::iteration`]) takes a batch of real images `x` and two batches of noise:
//!
//! ```text
//! generator step       z  -> G -> D -> BCE(D(G(z)), 1)             only G's parameters change
//! discriminator step   z' -> G -> D -> BCE(D(G(z')), 0)            (its own batch statistics)
//!                           x -> D -> BCE(D(x), 1)                  (its own batch statistics)
//!                      D steps on the sum of the two losses         only D's parameters change
//! ```
//!
//! Each step is built from the parts of [`Trainer`] that compose networks, with no tape and no
//! allocation: [`Trainer::forward`], [`Trainer::backward`] (the discriminator's own loss; with
//! `input_grad`, the gradient of its input too), [`Trainer::backward_from`] (the generator's
//! backward pass from the gradient the discriminator hands it) and [`Then`] (whether a pass
//! updates, accumulates or only computes the input's gradient). Any other composition of
//! networks is written the same way in plain Rust; this module is the GAN's.
//!
//! [`Gan`] is also a [`Solver`]: [`train::run`](crate::train::run) trains it for epochs with a
//! progress bar and hooks, drawing the noise of each step from the seed and the step count, so
//! that a run resumed from [`Gan::save`]'s checkpoints continues with the same noise.
//!
//! ```no_run
//! # use hdm_runtime::{gan::Gan, optim::Sgd, train, Network, Schedule, Result};
//! # use ndarray::ArrayView2;
//! # fn go<G: Network<f32>, D: for<'a> Network<f32, Target<'a> = ArrayView2<'a, f32>>>(
//! #     data: &hdm_runtime::data::Dataset<f32>) -> Result<()> {
//! let (g, d) = (G::init(0), D::init(1));
//! let sgd = Sgd::new(0.005).momentum(0.8).nesterov(true);
//! let g_trainer = g.trainer(sgd, 128).with_schedule(Schedule::step(938, 0.95));
//! let d_trainer = d.trainer(sgd, 128).with_schedule(Schedule::step(938, 0.95));
//! let mut gan = Gan::new(g, g_trainer, d, d_trainer, 0)?;
//! let config = train::FitConfig { epochs: 5, ..Default::default() };
//! let mut progress = train::Progress::new("dcgan", false);
//! train::run(&mut gan, data, &config, &mut [&mut progress])?;
//! # Ok(()) }
//! ```

#[cfg(feature = "checkpoint")]
use std::collections::BTreeMap;

use ndarray::{s, Array2, ArrayView2};

use crate::data::Batch;
use crate::network::{Network, Then, Trainer};
use crate::optim::Optimizer;
use crate::train::{settings, Solver};
use crate::{Error, Float, Result, Rng};

/// The figures of one GAN iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanFigures {
    /// The generator's loss, `BCE(D(G(z)), 1)`.
    pub g_loss: f64,
    /// The discriminator's loss, `BCE(D(G(z')), 0) + BCE(D(x), 1)`.
    pub d_loss: f64,
    /// The mean of `sigmoid(D(x))` over the real batch (before the discriminator's update).
    pub d_x: f64,
    /// The mean of `sigmoid(D(G(z')))` over the fake batch of the discriminator's step (before
    /// its update).
    pub d_g_z: f64,
}

impl GanFigures {
    /// The names of [`Solver::figures`], in the order of [`as_array`](GanFigures::as_array).
    pub const NAMES: [&'static str; 4] = ["g_loss", "d_loss", "d_x", "d_g_z"];

    /// `[g_loss, d_loss, d_x, d_g_z]`.
    pub fn as_array(&self) -> [f64; 4] {
        [self.g_loss, self.d_loss, self.d_x, self.d_g_z]
    }
}

/// A generator and a discriminator with their trainers (optimizer, state, schedule, buffers):
/// see the [module](self) documentation.
pub struct Gan<T: Float, G: Network<T>, D: Network<T>, OG: Optimizer<T>, OD: Optimizer<T>> {
    /// The generator, from noise (`G::INPUT` values) to images (`D::INPUT` values).
    pub generator: G,
    /// Its trainer.
    pub g_trainer: Trainer<T, G, OG>,
    /// The discriminator, from images to one logit per image.
    pub discriminator: D,
    /// Its trainer.
    pub d_trainer: Trainer<T, D, OD>,
    /// The seed of the noise.
    pub seed: u64,
    /// The two batches of noise of an iteration, `[2 * max_batch, G::INPUT]`.
    noise: Array2<T>,
    /// Labels: a column of ones over a column of zeros, `[2 * max_batch, 1]`.
    labels: Array2<T>,
}

impl<T, G, D, OG, OD> Gan<T, G, D, OG, OD>
where
    T: Float,
    G: Network<T>,
    D: for<'a> Network<T, Target<'a> = ArrayView2<'a, T>>,
    OG: Optimizer<T>,
    OD: Optimizer<T>,
{
    /// A GAN of `generator` and `discriminator` with their trainers (for the same largest batch),
    /// drawing noise from `seed`. An error if the generator's output is not the discriminator's
    /// input, the discriminator does not output one logit, or the trainers' batches differ.
    pub fn new(
        generator: G,
        g_trainer: Trainer<T, G, OG>,
        discriminator: D,
        d_trainer: Trainer<T, D, OD>,
        seed: u64,
    ) -> Result<Self> {
        if G::OUTPUT_SHAPE != D::INPUT_SHAPE {
            return Err(Error::Other(format!(
                "the generator {} makes {:?} values but the discriminator {} takes {:?}",
                G::NAME,
                G::OUTPUT_SHAPE,
                D::NAME,
                D::INPUT_SHAPE
            )));
        }
        if D::OUTPUT != 1 {
            return Err(Error::Other(format!(
                "the discriminator {} must output one logit per image, it outputs {}",
                D::NAME,
                D::OUTPUT
            )));
        }
        let batch = g_trainer.max_batch();
        if d_trainer.max_batch() != batch {
            return Err(Error::Other(format!(
                "the generator's trainer takes batches of {batch}, the discriminator's of {}",
                d_trainer.max_batch()
            )));
        }
        let mut labels = Array2::zeros((2 * batch, 1));
        labels.slice_mut(s![..batch, ..]).fill(T::one());
        Ok(Gan {
            generator,
            g_trainer,
            discriminator,
            d_trainer,
            seed,
            noise: Array2::zeros((2 * batch, G::INPUT)),
            labels,
        })
    }

    /// The largest batch an iteration takes.
    pub fn max_batch(&self) -> usize {
        self.g_trainer.max_batch()
    }

    /// Iterations taken so far (the generator's steps).
    pub fn iterations(&self) -> u64 {
        self.g_trainer.steps()
    }

    /// Fills `z` with noise uniform in `[-1, 1)` for iteration `iteration` (from 1); `which` 0
    /// is the generator step's, 1 the discriminator step's. The noise depends only on the seed,
    /// the iteration and `which`.
    pub fn noise_for(seed: u64, iteration: u64, which: u64, z: &mut [T]) {
        let mut rng =
            Rng::new(seed ^ iteration.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ which.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7));
        z.iter_mut().for_each(|v| *v = T::of(rng.uniform_in(-1.0, 1.0)));
    }

    /// One iteration on the real images `x` (`[batch, D::INPUT]`) with the noise `z` of the
    /// generator step and `z_d` of the discriminator step (each `[batch, G::INPUT]`): the
    /// generator's step, then the discriminator's (see the [module](self) documentation). Does
    /// not allocate.
    pub fn iteration(
        &mut self,
        x: ArrayView2<'_, T>,
        z: ArrayView2<'_, T>,
        z_d: ArrayView2<'_, T>,
    ) -> Result<GanFigures> {
        let batch = x.nrows();
        if z.nrows() != batch || z_d.nrows() != batch {
            return Err(Error::Shape {
                what: "GAN noise".into(),
                expected: format!("{batch} rows (one per real image)"),
                got: format!("{} and {} rows", z.nrows(), z_d.nrows()),
            });
        }
        let max = self.max_batch();
        let (ones, zeros) = (self.labels.slice(s![..batch, ..]), self.labels.slice(s![max..max + batch, ..]));
        let (g, d) = (&mut self.generator, &mut self.discriminator);
        let (gt, dt) = (&mut self.g_trainer, &mut self.d_trainer);

        // The generator's step: D's loss on fakes labelled real, differentiated through D.
        let fake = gt.forward(g, z)?;
        dt.forward(d, fake)?;
        let g_loss = dt.backward(d, ones, Then::Discard, true)?;
        gt.backward_from(g, dt.input_gradient()?, Then::Update, false)?;

        // The discriminator's step: fresh fakes labelled fake, then the real batch, each pass
        // normalised with its own batch statistics; one update on the sum of the two losses.
        let fake = gt.forward(g, z_d)?;
        let d_g_z = mean_sigmoid(dt.forward(d, fake)?);
        let loss_fake = dt.backward(d, zeros, Then::Accumulate, false)?;
        let d_x = mean_sigmoid(dt.forward(d, x)?);
        let loss_real = dt.backward(d, ones, Then::Update, false)?;
        Ok(GanFigures { g_loss: g_loss.to_f64(), d_loss: loss_fake.to_f64() + loss_real.to_f64(), d_x, d_g_z })
    }

    /// One iteration on `x` with the noise of the next iteration ([`noise_for`](Gan::noise_for)).
    pub fn train_batch(&mut self, x: ArrayView2<'_, T>) -> Result<GanFigures> {
        let (batch, max) = (x.nrows(), self.max_batch());
        let next = self.iterations() + 1;
        let mut noise = std::mem::take(&mut self.noise);
        let width = G::INPUT;
        Self::noise_for(self.seed, next, 0, &mut noise.as_slice_mut().expect("standard layout")[..batch * width]);
        Self::noise_for(
            self.seed,
            next,
            1,
            &mut noise.as_slice_mut().expect("standard layout")[max * width..(max + batch) * width],
        );
        let result = self.iteration(x, noise.slice(s![..batch, ..]), noise.slice(s![max..max + batch, ..]));
        self.noise = noise;
        result
    }

    /// Saves both networks with their optimizers' states in the folder `dir` (created):
    /// `generator.safetensors` and `discriminator.safetensors`, each with `metadata` (see
    /// [`Trainer::save_checkpoint`]).
    #[cfg(feature = "checkpoint")]
    pub fn save(&self, dir: impl AsRef<std::path::Path>, metadata: &BTreeMap<String, String>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        self.g_trainer.save_checkpoint(dir.join(GENERATOR_FILE), &self.generator, metadata)?;
        self.d_trainer.save_checkpoint(dir.join(DISCRIMINATOR_FILE), &self.discriminator, metadata)
    }

    /// Restores both networks and their trainers from the folder [`save`](Gan::save) wrote, and
    /// returns the generator's metadata. An error if either file is missing or does not match,
    /// or if the two were saved at different iterations.
    #[cfg(feature = "checkpoint")]
    pub fn load(&mut self, dir: impl AsRef<std::path::Path>) -> Result<BTreeMap<String, String>> {
        let dir = dir.as_ref();
        let (g_path, d_path) = (dir.join(GENERATOR_FILE), dir.join(DISCRIMINATOR_FILE));
        let meta = self.g_trainer.load_checkpoint(&g_path, &mut self.generator)?;
        let d_meta = self.d_trainer.load_checkpoint(&d_path, &mut self.discriminator)?;
        if meta.get("epoch") != d_meta.get("epoch") || self.g_trainer.steps() != self.d_trainer.steps() {
            return Err(Error::Other(format!(
                "{} (epoch {}, step {}) and {} (epoch {}, step {}) were not saved together",
                g_path.display(),
                meta.get("epoch").map_or("?", |s| s.as_str()),
                self.g_trainer.steps(),
                d_path.display(),
                d_meta.get("epoch").map_or("?", |s| s.as_str()),
                self.d_trainer.steps()
            )));
        }
        Ok(meta)
    }
}

/// The generator's checkpoint in the folder of [`Gan::save`].
pub const GENERATOR_FILE: &str = "generator.safetensors";
/// The discriminator's checkpoint in the folder of [`Gan::save`].
pub const DISCRIMINATOR_FILE: &str = "discriminator.safetensors";

/// The mean of `sigmoid` over a column of logits.
fn mean_sigmoid<T: Float>(logits: ArrayView2<'_, T>) -> f64 {
    let n = logits.len().max(1) as f64;
    logits.iter().map(|&l| 1.0 / (1.0 + (-l.to_f64()).exp())).sum::<f64>() / n
}

/// How a classifier sees a generator's samples: what a test or a report can check about a GAN
/// without looking at the images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleQuality {
    /// The mean over the samples of the largest class probability: how sure the classifier is
    /// that each sample is something.
    pub mean_confidence: f64,
    /// The entropy (in nats) of the histogram of predicted classes: how many kinds of things the
    /// generator makes (at most `ln(classes)`, 0 when every sample gets the same class).
    pub class_entropy: f64,
    /// The Inception Score of Salimans et al. (2016) with this classifier,
    /// `exp(mean_i KL(p(y | x_i) || p(y)))`: from 1 (every sample alike, or none recognisable)
    /// to the number of classes (each sample sure of its class, the classes equally frequent).
    pub inception_score: f64,
}

impl SampleQuality {
    /// The quality of samples whose class probabilities (each row a softmax) are `probabilities`.
    pub fn of<T: Float>(probabilities: ArrayView2<'_, T>) -> Self {
        let (n, classes) = probabilities.dim();
        let count = n.max(1) as f64;
        let mut marginal = vec![0.0; classes];
        let mut histogram = vec![0.0; classes];
        let mut confidence = 0.0;
        for row in probabilities.rows() {
            let top = (0..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best });
            histogram[top] += 1.0 / count;
            confidence += row[top].to_f64() / count;
            for (m, &p) in marginal.iter_mut().zip(row) {
                *m += p.to_f64() / count;
            }
        }
        let plogp = |p: f64| if p > 0.0 { p * p.ln() } else { 0.0 };
        // Clamped: one class's -1 ln 1 sums to -0.0 or a rounding below it.
        let class_entropy = (-histogram.iter().map(|&h| plogp(h)).sum::<f64>()).max(0.0);
        let kl: f64 = probabilities
            .rows()
            .into_iter()
            .map(|row| {
                let kl = |(&p, &m): (&T, &f64)| {
                    let p = p.to_f64();
                    if p > 0.0 {
                        p * (p / m).ln()
                    } else {
                        0.0
                    }
                };
                row.iter().zip(&marginal).map(kl).sum::<f64>()
            })
            .sum::<f64>()
            / count;
        SampleQuality { mean_confidence: confidence, class_entropy, inception_score: kl.exp() }
    }

    /// The quality of samples a classifier gave `logits` (each row softmaxed first, in `f64`).
    pub fn of_logits<T: Float>(logits: ArrayView2<'_, T>) -> Self {
        let mut p = logits.mapv(|l| l.to_f64());
        for mut row in p.rows_mut() {
            let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row.mapv_inplace(|v| v / sum);
        }
        Self::of(p.view())
    }
}

impl<T, G, D, OG, OD> Solver<T> for Gan<T, G, D, OG, OD>
where
    T: Float,
    G: Network<T>,
    D: for<'a> Network<T, Target<'a> = ArrayView2<'a, T>>,
    OG: Optimizer<T>,
    OD: Optimizer<T>,
{
    fn figures(&self) -> Vec<String> {
        GanFigures::NAMES.iter().map(|s| s.to_string()).collect()
    }
    fn batch_size(&self) -> usize {
        self.max_batch()
    }
    fn steps(&self) -> u64 {
        self.iterations()
    }
    fn step(&mut self, batch: &Batch<'_, T>, figures: &mut [f64]) -> Result<()> {
        figures.copy_from_slice(&self.train_batch(batch.x)?.as_array());
        Ok(())
    }
    fn describe(&self) -> (String, String) {
        let (g, d) = (&self.g_trainer.optimizer, &self.d_trainer.optimizer);
        let name = if g.name() == d.name() { g.name().to_string() } else { format!("{}/{}", g.name(), d.name()) };
        (name, format!("G: {}; D: {}", settings(&g.hyperparameters()), settings(&d.hyperparameters())))
    }
    #[cfg(feature = "checkpoint")]
    fn save_checkpoint(&mut self, dir: &std::path::Path, metadata: &BTreeMap<String, String>) -> Result<()> {
        self.save(dir, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sample_quality_of_sure_diverse_and_of_uniform_predictions() {
        // Two sure samples of different classes: confidence 1, entropy ln 2, score 2.
        let q = SampleQuality::of(array![[1.0, 0.0], [0.0, 1.0]].view());
        assert_eq!(q.mean_confidence, 1.0);
        assert!((q.class_entropy - 2f64.ln()).abs() < 1e-15);
        assert!((q.inception_score - 2.0).abs() < 1e-12);
        // Every sample alike: entropy 0, score 1, whatever the confidence.
        let q = SampleQuality::of(array![[0.9, 0.1, 0.0], [0.9, 0.1, 0.0]].view());
        assert!((q.mean_confidence - 0.9).abs() < 1e-15);
        assert_eq!(q.class_entropy, 0.0);
        assert!((q.inception_score - 1.0).abs() < 1e-12);
        // By hand: p = [[0.8, 0.2], [0.4, 0.6]], marginal [0.6, 0.4];
        // KL_1 = 0.8 ln(0.8 / 0.6) + 0.2 ln(0.2 / 0.4), KL_2 = 0.4 ln(0.4 / 0.6) + 0.6 ln(0.6 / 0.4).
        let q = SampleQuality::of(array![[0.8f32, 0.2], [0.4, 0.6]].view());
        let kl = (0.8 * (0.8f64 / 0.6).ln() + 0.2 * 0.5f64.ln() + 0.4 * (0.4f64 / 0.6).ln() + 0.6 * 1.5f64.ln()) / 2.0;
        assert!((q.inception_score - kl.exp()).abs() < 1e-6, "{q:?}");
        assert!((q.mean_confidence - 0.7).abs() < 1e-6);
        assert!((q.class_entropy - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn sample_quality_of_logits_is_that_of_their_softmax() {
        // Logits [ln 4, 0] and [0, ln 1.5] are the probabilities [0.8, 0.2] and [0.4, 0.6].
        let from_logits = SampleQuality::of_logits(array![[4f64.ln() + 7.0, 7.0], [-3.0, 1.5f64.ln() - 3.0]].view());
        let direct = SampleQuality::of(array![[0.8, 0.2], [0.4, 0.6]].view());
        assert!((from_logits.inception_score - direct.inception_score).abs() < 1e-12);
        assert!((from_logits.mean_confidence - direct.mean_confidence).abs() < 1e-12);
        assert_eq!(from_logits.class_entropy, direct.class_entropy);
    }
}
