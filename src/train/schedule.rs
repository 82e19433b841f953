//! The learning-rate schedule: linear warm-up, then cosine decay to zero.

use crate::run::TrainSettings;

/// The batches and optimizer steps of a fit, and the learning rate at each step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Batches per epoch.
    pub batches: usize,
    /// Optimizer steps over all epochs.
    total: usize,
    /// Warm-up steps.
    warmup: usize,
    /// The peak learning rate.
    peak: f64,
}

impl Schedule {
    /// The schedule of `settings` for epochs of `bags` training bags.
    pub(super) fn new(bags: usize, settings: &TrainSettings) -> Self {
        let batches = bags.div_ceil(settings.batch_size);
        let steps_per_epoch = batches.div_ceil(settings.grad_accumulation);
        Self {
            batches,
            total: steps_per_epoch * settings.epochs,
            warmup: (settings.warmup_epochs * steps_per_epoch as f64).round() as usize,
            peak: settings.lr,
        }
    }

    /// The learning rate of optimizer step `step` (from 0).
    pub(super) fn lr(&self, step: usize) -> f64 {
        learning_rate(step, self.total, self.warmup, self.peak)
    }
}

/// Learning rate at optimizer step `step` (0-based) of `total`, with `warmup` warm-up steps
/// rising linearly to `peak`, then a cosine decay reaching 0 after the last step.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::learning_rate;

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(learning_rate(0, 10, 2, 1.0), 0.5);
        assert_eq!(learning_rate(1, 10, 2, 1.0), 1.0);
        assert_eq!(learning_rate(2, 10, 2, 1.0), 1.0);
        assert!((learning_rate(6, 10, 2, 1.0) - 0.5).abs() < 1e-12);
        assert!(learning_rate(9, 10, 2, 1.0) < 0.05);
        assert_eq!(
            learning_rate(3, 10, 0, 2.0),
            2.0 * 0.5 * (1.0 + (std::f64::consts::PI * 0.3).cos())
        );
    }
}
