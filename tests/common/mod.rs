//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fixture;

use hdm::prelude::*;
use ndarray::{Array1, Array2};

/// Deterministic pseudo-random inputs in [-1, 1).
pub fn inputs(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform_in(-1.0, 1.0))
}

/// Deterministic class labels below `classes`.
pub fn labels(rows: usize, classes: usize, seed: u64) -> Array1<usize> {
    let mut rng = Rng::new(seed);
    Array1::from_shape_simple_fn(rows, || rng.below(classes))
}

/// Deterministic targets in [0, 1) (valid for every loss, binary cross-entropy included).
pub fn targets(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform())
}

/// Checks every parameter's gradient against central finite differences of the loss (as a
/// training step computes it: batch normalisation with the batch's statistics):
/// the relative error of the whole gradient must be below `1e-6`, and each element must agree to
/// `1e-6` relative (with an absolute floor far below the gradients' scale).
pub fn check_gradients<M: Network<f64>>(model: &M, x: ndarray::ArrayView2<'_, f64>, target: M::Target<'_>) {
    let (loss, grads) = model.gradients(x, target).unwrap();
    assert!(loss.is_finite());
    assert_eq!(loss, model.training_loss(x, target).unwrap(), "gradients() and training_loss() disagree on the loss");
    let h = 1e-5;
    let mut probe = model.clone();
    let (mut diff2, mut norm2) = (0.0f64, 0.0f64);
    let grads = grads.params();
    for (pi, g) in grads.iter().enumerate() {
        for j in 0..g.data.len() {
            let orig = probe.params()[pi].data[j];
            let mut at = |v: f64| {
                probe.params_mut()[pi].data[j] = v;
                probe.training_loss(x, target).unwrap()
            };
            let (plus, minus) = (at(orig + h), at(orig - h));
            probe.params_mut()[pi].data[j] = orig;
            let numeric = (plus - minus) / (2.0 * h);
            let analytic = g.data[j];
            let err = (numeric - analytic).abs();
            assert!(
                err <= 1e-6 * numeric.abs().max(analytic.abs()) + 1e-9,
                "{}[{j}]: analytic {analytic:e}, numeric {numeric:e}",
                g.name
            );
            diff2 += err * err;
            norm2 += analytic * analytic;
        }
    }
    let rel = diff2.sqrt() / norm2.sqrt();
    assert!(norm2 > 0.0 && rel < 1e-6, "relative error of the whole gradient: {rel:e}");
}
