//! Dropout whose masks are drawn quickly on CPU devices.
//!
//! Burn's dropout draws one Bernoulli sample per element from a ChaCha generator, one at a
//! time: at the seed size that is ~83 million draws per training step, about a tenth of the
//! step on two cores. Here, on a CPU device, one seed is drawn from the device's generator per
//! call (so `Device::seed` still fixes every mask) and the mask is expanded from it in
//! parallel blocks with SplitMix64, two 32-bit draws per 64-bit word. Other devices use
//! Burn's dropout, which draws on the device.

use burn::nn::Dropout;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::device::{on_flex, on_host};
use super::mask::{bernoulli_mask, splitmix};

/// Applies `dropout` to `x`: active in training mode on an autodiff device, as Burn's
/// [`Dropout::forward`], with the same distribution (each element kept with probability
/// `1 − prob` and scaled by `1 / (1 − prob)`).
pub(crate) fn dropout<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_active(dropout, &device) {
        return x;
    }
    if !on_host(&device) {
        return dropout.forward(x);
    }
    let keep = 1.0 - dropout.prob;
    if on_flex(&device) && x.dtype() == burn::tensor::DType::F32 {
        // One pass forward and one back, with the mask kept as bits (kernels/fused.rs); the
        // same masks as below.
        return super::fused::dropout(x, draw_seed(&device), keep);
    }
    let shape = x.shape();
    let mask = bernoulli_mask(
        x.shape().num_elements(),
        keep,
        (1.0 / keep) as f32,
        draw_seed(&device),
    );
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// Where `dropout` is active on `device` (a positive probability, training mode, an autodiff
/// device): its keep probability and a mask seed drawn as [`dropout`] draws it, so an
/// operation that applies the mask itself sees the masks [`dropout`] would.
pub(crate) fn active(dropout: &Dropout, device: &Device) -> Option<(f64, u64)> {
    is_active(dropout, device).then(|| (1.0 - dropout.prob, draw_seed(device)))
}

/// Whether `dropout` drops anything on `device`: a positive probability, training mode, an
/// autodiff device (Burn's rule).
fn is_active(dropout: &Dropout, device: &Device) -> bool {
    dropout.prob > 0.0 && dropout.training.is_enabled() && device.is_autodiff()
}

/// A 0/1 mask (1 = kept, with probability `keep`) drawn as [`dropout`] draws its masks.
pub(crate) fn keep_mask<const D: usize>(like: &Tensor<D>, keep: f64) -> Tensor<D> {
    let device = like.device();
    if !on_host(&device) {
        return like.random_like(Distribution::Bernoulli(keep));
    }
    let mask = bernoulli_mask(like.shape().num_elements(), keep, 1.0, draw_seed(&device));
    Tensor::<D>::from_data(TensorData::new(mask, like.shape()), &device)
}

/// One 64-bit seed from the device's generator (two uniform draws of 24 random bits each,
/// plus their sum's bits for good measure).
fn draw_seed(device: &Device) -> u64 {
    let values = Tensor::<1>::random([2], Distribution::Default, device)
        .into_data()
        .convert::<f32>();
    let v = values.as_slice::<f32>().expect("f32 after convert");
    let a = u64::from(v[0].to_bits());
    let b = u64::from(v[1].to_bits());
    splitmix(&mut (a << 32 | b))
}

#[cfg(test)]
mod tests {
    use super::super::mask::BLOCK;
    use super::*;
    use burn::nn::DropoutConfig;

    #[test]
    fn masks_keep_the_requested_fraction_and_scale() {
        let mask = bernoulli_mask(1_000_000, 0.9, 1.0 / 0.9, 7);
        let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64 / 1e6;
        // Binomial standard deviation sqrt(0.09 / 1e6) = 3e-4: 5 of them.
        assert!((kept - 0.9).abs() < 1.5e-3, "{kept}");
        assert!(
            mask.iter()
                .all(|&m| m == 0.0 || (m - 1.0 / 0.9).abs() < 1e-7)
        );
        // Blocks differ from each other; the same seed repeats, another does not.
        assert_ne!(mask[..BLOCK], mask[BLOCK..2 * BLOCK]);
        assert_eq!(mask, bernoulli_mask(1_000_000, 0.9, 1.0 / 0.9, 7));
        assert_ne!(mask, bernoulli_mask(1_000_000, 0.9, 1.0 / 0.9, 8));
    }

    /// The fused dropout (in a graph, its backward pass included) applies exactly the mask
    /// the same seed draws as a tensor: forward `x ⊙ m`, gradient `w ⊙ m`.
    #[test]
    fn fused_dropout_applies_the_drawn_mask_both_ways() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let x =
            Tensor::<2>::random([70, 999], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let w = Tensor::<2>::random([70, 999], Distribution::Normal(0.0, 1.0), &device);
        let mask = Tensor::<2>::from_data(
            TensorData::new(bernoulli_mask(70 * 999, 0.8, 1.25, 42), [70, 999]),
            &device,
        );
        let y = super::super::fused::dropout(x.clone(), 42, 0.8);
        let expected = (x.clone() * mask.clone()).into_data();
        assert_eq!(y.clone().into_data(), expected);
        let grads = (y * w.clone()).sum().backward();
        assert_eq!(
            x.grad(&grads).unwrap().into_data(),
            (w * mask).inner().into_data()
        );
        // Outside a graph, the same values.
        let plain = super::super::fused::dropout(x.clone().inner(), 42, 0.8);
        assert_eq!(plain.into_data(), expected);
    }

    #[test]
    fn no_mask_outside_training() {
        let d = DropoutConfig::new(0.5).init();
        let x = Tensor::<2>::ones([4, 4], &Device::flex());
        // A plain (not autodiff) device: the input comes back.
        let y = dropout(&d, x.clone());
        assert_eq!(y.into_data(), x.into_data());
    }

    #[test]
    fn training_drops_about_prob_of_the_elements() {
        let d = DropoutConfig::new(0.5).init();
        let x = Tensor::<2>::ones([64, 64], &Device::flex().autodiff());
        let y = dropout(&d, x).into_data().convert::<f32>();
        let y = y.as_slice::<f32>().unwrap();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        // 4,096 draws: standard deviation 0.0078.
        assert!((dropped - 0.5).abs() < 0.05, "{dropped}");
    }
}
