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
use rayon::prelude::*;

/// Elements per independently seeded block of a mask.
const BLOCK: usize = 1 << 15;

/// Applies `dropout` to `x`: active in training mode on an autodiff device, as Burn's
/// [`Dropout::forward`], with the same distribution (each element kept with probability
/// `1 − prob` and scaled by `1 / (1 − prob)`).
pub(crate) fn dropout<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if dropout.prob == 0.0 || !dropout.training.is_enabled() || !device.is_autodiff() {
        return x;
    }
    if !on_host(&device) {
        return dropout.forward(x);
    }
    let keep = 1.0 - dropout.prob;
    let shape = x.shape();
    let mask = bernoulli_mask(
        x.shape().num_elements(),
        keep,
        (1.0 / keep) as f32,
        draw_seed(&device),
    );
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
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

/// Whether tensors on `device` live in host memory (the flex and ndarray backends).
pub(crate) fn on_host(device: &Device) -> bool {
    let inner = device.clone().inner();
    if inner == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if inner == Device::ndarray() {
        return true;
    }
    false
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

/// `len` values, each `value` with probability `keep` and 0 otherwise, from `seed`.
fn bernoulli_mask(len: usize, keep: f64, value: f32, seed: u64) -> Vec<f32> {
    // P(draw < threshold) = threshold / 2^32 = keep (to 2^-32).
    let threshold = (keep * 4_294_967_296.0).round().min(u32::MAX as f64) as u64;
    let mut mask = vec![0.0f32; len];
    mask.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, out)| {
            let mut state = seed ^ (block as u64).wrapping_mul(0xA24B_AED4_963E_E407);
            for pair in out.chunks_mut(2) {
                let r = splitmix(&mut state);
                for (slot, draw) in pair.iter_mut().zip([r & 0xFFFF_FFFF, r >> 32]) {
                    *slot = if draw < threshold { value } else { 0.0 };
                }
            }
        });
    mask
}

/// SplitMix64 (Steele, Lea & Flood, 2014): advances `state` by the golden-ratio increment and
/// returns its finalizer, which [`mix_seed`](crate::data::mix_seed) applies.
#[inline]
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    crate::data::mix_seed(*state, 0, 0)
}

#[cfg(test)]
mod tests {
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
