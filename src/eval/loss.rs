//! The training losses, per task.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

use super::survival::nll_survival_loss;
use crate::data::BagBatch;
use crate::run::{Task, TrainSettings};

/// The loss of a batch, or `None` when a bag has no target (e.g. prediction without labels).
///
/// Classification: cross-entropy, weighted by `class_weights` when given (a weighted mean, as
/// PyTorch computes it). Survival: [`nll_survival_loss`] with the settings' `alpha`.
///
/// # Shapes
/// - logits: `[batch, classes]`
/// - class_weights: `[classes]`
/// - output: `[1]`
pub fn batch_loss(
    logits: Tensor<2>,
    batch: &BagBatch,
    settings: &TrainSettings,
    class_weights: Option<&Tensor<1>>,
) -> Option<Tensor<1>> {
    let [b, _] = logits.dims();
    let device = logits.device();
    let classes = batch.classes.clone()?;
    match settings.task {
        Task::Classification => {
            let log_p = log_softmax(logits, 1)
                .gather(1, classes.clone().reshape([b, 1]))
                .reshape([b]);
            Some(match class_weights {
                Some(w) => {
                    let w = w.clone().select(0, classes);
                    (log_p * w.clone()).sum().neg() / w.sum()
                }
                None => log_p.mean().neg(),
            })
        }
        Task::Survival => {
            let censored: Option<Vec<f32>> = batch
                .targets
                .iter()
                .map(|t| t.censored.map(|c| if c { 1.0 } else { 0.0 }))
                .collect();
            let censorship = Tensor::<1>::from_data(TensorData::new(censored?, [b]), &device);
            Some(nll_survival_loss(
                logits,
                classes,
                censorship,
                settings.survival.alpha,
            ))
        }
    }
}

/// Inverse-frequency class weights `n / (classes · n_c)` over `classes_of_bags`.
pub fn inverse_frequency(
    classes_of_bags: impl IntoIterator<Item = usize>,
    classes: usize,
) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    let mut n = 0;
    for c in classes_of_bags {
        counts[c] += 1;
        n += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f32 / (classes * c) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::inverse_frequency;

    #[test]
    fn weights_by_hand() {
        // 3 bags of class 0, 1 of class 1: 4 / (2 · 3) and 4 / (2 · 1).
        let w = inverse_frequency([0, 0, 0, 1], 2);
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-6 && (w[1] - 2.0).abs() < 1e-6);
    }
}
