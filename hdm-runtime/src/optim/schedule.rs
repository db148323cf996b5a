//! Learning-rate schedules and gradient-norm clipping.

/// How the learning rate changes with the step count: the optimizer's learning rate is multiplied
/// by [`factor`](Schedule::factor) at every step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    /// The learning rate as given.
    #[default]
    Constant,
    /// Multiplied by `gamma` every `every` steps, like `torch.optim.lr_scheduler.StepLR`:
    /// `gamma^floor((t - 1) / every)` at step `t` (counting from 1).
    Step { every: u64, gamma: f64 },
    /// Cosine annealing from the full rate to `min_factor` of it over `total` steps, then held,
    /// like `CosineAnnealingLR` without restarts:
    /// `min + (1 - min) * (1 + cos(pi * (t - 1) / total)) / 2`.
    Cosine { total: u64, min_factor: f64 },
}

impl Schedule {
    /// Halve (or scale by `gamma`) every `every` steps.
    pub fn step(every: u64, gamma: f64) -> Self {
        Schedule::Step { every: every.max(1), gamma }
    }

    /// Cosine annealing down to zero over `total` steps.
    pub fn cosine(total: u64) -> Self {
        Schedule::Cosine { total: total.max(1), min_factor: 0.0 }
    }

    /// The factor of step `t`, counting from 1.
    pub fn factor(&self, t: u64) -> f64 {
        let done = t.saturating_sub(1);
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powf((done / every.max(1)) as f64),
            Schedule::Cosine { total, min_factor } => {
                let frac = done.min(total) as f64 / total.max(1) as f64;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

/// The factor `torch.nn.utils.clip_grad_norm_` multiplies every gradient by:
/// `min(1, max_norm / (total_norm + 1e-6))`.
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    (max_norm / (total_norm + 1e-6)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_halves_every_n_steps() {
        let s = Schedule::step(200, 0.5);
        assert_eq!(s.factor(1), 1.0);
        assert_eq!(s.factor(200), 1.0);
        assert_eq!(s.factor(201), 0.5);
        assert_eq!(s.factor(401), 0.25);
    }

    #[test]
    fn cosine_goes_from_one_to_min() {
        let s = Schedule::Cosine { total: 10, min_factor: 0.1 };
        assert_eq!(s.factor(1), 1.0);
        assert!((s.factor(6) - 0.55).abs() < 1e-12);
        assert!((s.factor(11) - 0.1).abs() < 1e-12);
        assert!((s.factor(50) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn clipping_only_shrinks() {
        assert_eq!(clip_coefficient(0.5, 1.0), 1.0);
        assert!((clip_coefficient(4.0, 1.0) - 1.0 / (4.0 + 1e-6)).abs() < 1e-15);
    }
}
