//! Discrete-time survival: the negative log-likelihood loss with censoring, risk.
//!
//! Conventions as in MCAT and SurvPath: `censorship` is 1 when the patient was censored (no
//! event observed) and 0 when the event was observed; the model's `K` outputs are the logits
//! of the hazards `h_k = σ(logit_k)` of `K` time bins; the survival function is
//! `S_k = Π_{i ≤ k} (1 − h_i)`; the risk is `−Σ_k S_k` (higher = earlier event).

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Int, Tensor};

/// The survival negative log-likelihood, averaged over the batch:
/// `(1 − α) · (uncensored + censored) + α · uncensored`, where for a patient in bin `y`
/// `uncensored = −(1 − c) · (log S_{y−1} + log h_y)` and `censored = −c · log S_y`
/// (with `S_{−1} = 1`).
///
/// # Shapes
/// - logits: `[batch, bins]`
/// - bins: `[batch]` (the bin of each time)
/// - censorship: `[batch]`, 1.0 = censored
pub fn nll_survival_loss(
    logits: Tensor<2>,
    bins: Tensor<1, Int>,
    censorship: Tensor<1>,
    alpha: f64,
) -> Tensor<1> {
    let [batch, k] = logits.dims();
    let log_h = log_sigmoid(logits.clone()); // [b, k]
    let log_1_minus_h = log_sigmoid(logits.neg()); // [b, k]
    let log_s = log_1_minus_h.cumsum(1); // [b, k]: log S_0 .. log S_{k-1}
    let zeros = Tensor::<2>::zeros([batch, 1], &log_s.device());
    let log_s_prev = Tensor::cat(vec![zeros, log_s.clone().narrow(1, 0, k - 1)], 1); // log S_{y-1}
    let y = bins.reshape([batch, 1]);
    let at = |t: Tensor<2>| t.gather(1, y.clone()).reshape([batch]);
    let c = censorship;
    let uncensored = (at(log_s_prev) + at(log_h)) * (c.clone().neg() + 1.0);
    let uncensored = uncensored.neg();
    let censored = (at(log_s) * c).neg();
    let loss = (uncensored.clone() + censored) * (1.0 - alpha) + uncensored * alpha;
    loss.mean()
}

/// The survival curve of per-bin `hazards`: `S_k = Π_{j≤k} (1 − h_j)`, the probability of
/// outliving bin `k`, one value per bin.
pub fn survival_curve(hazards: &[f64]) -> impl Iterator<Item = f64> + '_ {
    hazards.iter().scan(1.0, |s, h| {
        *s *= 1.0 - h;
        Some(*s)
    })
}

/// Hazards `σ(logits)` → risk `−Σ_k S_k`, per row.
pub fn risk_from_hazards(hazards: &[f64]) -> f64 {
    -survival_curve(hazards).fold(0.0, |total, s| total + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn loss_by_hand() {
        let device = Device::flex();
        // One patient, 2 bins, logits 0 → h = 0.5 in both, S_0 = 0.5, S_1 = 0.25.
        let logits = Tensor::<2>::zeros([1, 2], &device);
        let bin = |b: i64| Tensor::<1, Int>::from_data(TensorData::new(vec![b], [1]), &device);
        let c = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device);
        let ln2 = std::f32::consts::LN_2;
        let value = |t: Tensor<1>| t.into_scalar::<f32>();
        // Event in bin 1: −(log S_0 + log h_1) = 2 ln 2.
        assert!(
            (value(nll_survival_loss(logits.clone(), bin(1), c(0.0), 0.0)) - 2.0 * ln2).abs()
                < 1e-6
        );
        // Censored in bin 1: −log S_1 = 2 ln 2; in bin 0: −log S_0 = ln 2.
        assert!(
            (value(nll_survival_loss(logits.clone(), bin(1), c(1.0), 0.0)) - 2.0 * ln2).abs()
                < 1e-6
        );
        assert!((value(nll_survival_loss(logits.clone(), bin(0), c(1.0), 0.0)) - ln2).abs() < 1e-6);
        // α = 1 keeps the uncensored term only: a censored patient costs nothing.
        assert!(value(nll_survival_loss(logits, bin(0), c(1.0), 1.0)).abs() < 1e-6);
        // Risk: S = 0.5, 0.25 → −0.75.
        assert_eq!(risk_from_hazards(&[0.5, 0.5]), -0.75);
    }
}
