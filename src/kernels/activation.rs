//! The exact (erf) GELU and the softmax, computed in parallel SIMD passes on CPU devices.
//!
//! The CPU backend evaluates GELU one element at a time on one thread, with a scalar `erf`:
//! at the seed size (40 million activations per forward pass) that was about a tenth of a
//! forward pass. Here, on a CPU device, the activations are computed in parallel blocks by a
//! branch-free kernel the compiler vectorizes (AVX-512 or AVX2 when the processor has them):
//! `erfc` from its Chebyshev fit (Press et al., *Numerical Recipes*, §6.2, fractional error
//! below 1.2e-7) with a polynomial `exp`. Results agree with the backend's GELU to about 1e-7
//! relative.
//!
//! On flex devices both run as operations of [`fused`](super::fused), which keep GELU′(x)
//! (or the softmax's output) for a one-pass backward. On ndarray, with autodiff, the GELU
//! output is built as `x ⊙ s + c` from two host-computed constants, the slope
//! `s = GELU′(x)` and `c = GELU(x) − x ⊙ s`: the value is GELU(x) and the gradient is `s`.
//!
//! The softmax over the last dimension (the attention weights) is computed one row at a time
//! with the same `exp`; on ndarray, in a graph, it stays Burn's, whose backward pass Burn
//! provides. Other devices use Burn's GELU and softmax.

use burn::tensor::activation::{gelu as burn_gelu, softmax as burn_softmax};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::device::{on_flex, on_host};
use super::elementwise as kernels;

/// Elements per parallel block.
const BLOCK: usize = 1 << 14;

/// GELU(x) = x · Φ(x), the exact (erf) form.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !on_host(&device) || x.dtype() != DType::F32 {
        return burn_gelu(x);
    }
    if on_flex(&device) {
        // One operation with its own backward pass (kernels/fused.rs).
        return super::fused::gelu(x);
    }
    if !device.is_autodiff() || !x.is_tracked() {
        // No gradient wanted (inference, or the graph-free pass of a recomputed step).
        // Moved, not cloned, and computed in place: a contiguous tensor nothing else holds
        // goes to the host and back without a copy.
        let mut data = x.into_data();
        let Ok(values) = data.as_mut_slice::<f32>() else {
            unreachable!("an f32 tensor reads as f32")
        };
        values.par_chunks_mut(BLOCK).for_each(kernels::gelu);
        return Tensor::from_data(data, &device);
    }
    // The graph holds x: its values are copied out, and the slope overwrites the copy.
    let mut slope = x.clone().inner().into_data();
    let shape = x.shape();
    let Ok(values) = slope.as_mut_slice::<f32>() else {
        unreachable!("an f32 tensor reads as f32")
    };
    let mut offset = vec![0.0f32; values.len()];
    values
        .par_chunks_mut(BLOCK)
        .zip(offset.par_chunks_mut(BLOCK))
        .for_each(|(slope, offset)| kernels::slope_and_offset(slope, offset));
    let slope = Tensor::<D>::from_data(slope, &device);
    let offset = Tensor::<D>::from_data(TensorData::new(offset, shape), &device);
    x * slope + offset
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if on_flex(&device) && x.dtype() == DType::F32 {
        // In a graph too, with its own backward pass (kernels/fused.rs).
        return super::fused::softmax_last(x);
    }
    if !on_host(&device) || x.dtype() != DType::F32 || (device.is_autodiff() && x.is_tracked()) {
        return burn_softmax(x, D - 1);
    }
    let row = x.dims()[D - 1];
    if row == 0 {
        return x;
    }
    let mut data = x.into_data();
    let Ok(values) = data.as_mut_slice::<f32>() else {
        unreachable!("an f32 tensor reads as f32")
    };
    let rows_per_block = (BLOCK / row).max(1);
    values
        .par_chunks_mut(rows_per_block * row)
        .for_each(|block| kernels::softmax_rows(block, row));
    Tensor::from_data(data, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn reference(x: f64) -> (f64, f64) {
        // erf by its Maclaurin series (|x/√2| ≤ 3) or 1 − asymptotic erfc beyond: f64 is
        // far more precise than what is checked.
        let z = x / std::f64::consts::SQRT_2;
        let erf = if z.abs() <= 3.0 {
            let (mut term, mut sum, mut k) = (z, z, 0.0);
            loop {
                k += 1.0;
                term *= -z * z / k;
                let add = term / (2.0 * k + 1.0);
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(z) ≈ e^{−z²}/(z√π) · (1 − 1/(2z²) + 3/(4z⁴) − 15/(8z⁶))
            let w = z.abs();
            let erfc = (-w * w).exp() / (w * std::f64::consts::PI.sqrt())
                * (1.0 - 1.0 / (2.0 * w * w) + 3.0 / (4.0 * w.powi(4)) - 15.0 / (8.0 * w.powi(6)));
            z.signum() * (1.0 - erfc)
        };
        let cdf = 0.5 * (1.0 + erf);
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn kernel_matches_the_exact_gelu_and_its_slope() {
        let mut worst = (0.0f64, 0.0f64);
        for i in -2000..=2000 {
            let x = i as f32 * 0.005; // −10 … 10
            let (g, s) = kernels::gelu_and_slope(x);
            let (rg, rs) = reference(x as f64);
            let alone = kernels::gelu_value(x);
            worst.0 = worst.0.max((alone as f64 - rg).abs() / rg.abs().max(1.0));
            worst.0 = worst.0.max((g as f64 - rg).abs() / rg.abs().max(1.0));
            worst.1 = worst.1.max((s as f64 - rs).abs());
        }
        assert!(worst.0 < 2e-7, "value {}", worst.0);
        assert!(worst.1 < 3e-7, "slope {}", worst.1);
    }

    #[test]
    fn tensor_gelu_agrees_with_burn_on_every_path() {
        let values: Vec<f32> = (0..5000).map(|i| (i as f32 - 2500.0) * 0.004).collect();
        // Plain, autodiff without a graph, autodiff tracked (the slope path).
        for (device, track) in [
            (Device::flex(), false),
            (Device::flex().autodiff(), false),
            (Device::flex().autodiff(), true),
        ] {
            let mut x = Tensor::<2>::from_data(TensorData::new(values.clone(), [50, 100]), &device);
            if track {
                x = x.require_grad();
            }
            let ours = gelu(x.clone()).into_data().convert::<f32>();
            let burn = burn_gelu(x).into_data().convert::<f32>();
            for (a, b) in ours
                .as_slice::<f32>()
                .unwrap()
                .iter()
                .zip(burn.as_slice::<f32>().unwrap())
            {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn gradient_is_the_slope() {
        let device = Device::flex().autodiff();
        let values: Vec<f32> = (0..400).map(|i| (i as f32 - 200.0) * 0.03).collect();
        let x =
            Tensor::<1>::from_data(TensorData::new(values.clone(), [400]), &device).require_grad();
        let grads = gelu(x.clone()).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().convert::<f32>();
        for (v, g) in values.iter().zip(g.as_slice::<f32>().unwrap()) {
            let (_, slope) = reference(*v as f64);
            assert!((*g as f64 - slope).abs() < 1e-6, "{v}: {g} vs {slope}");
        }
    }

    #[test]
    fn softmax_agrees_with_burn_and_gives_padding_zero_weight() {
        for row in [3usize, 51, 101] {
            let rows = 37;
            let values: Vec<f32> = (0..rows * row)
                .map(|i| {
                    if i % row == row - 1 && i % 2 == 0 {
                        -1e9 // a padded key's score
                    } else {
                        ((i * 7919) % 1000) as f32 / 100.0 - 5.0
                    }
                })
                .collect();
            for device in [Device::flex(), Device::flex().autodiff()] {
                let x =
                    Tensor::<2>::from_data(TensorData::new(values.clone(), [rows, row]), &device);
                let ours = softmax_last(x.clone()).into_data().convert::<f32>();
                let burn = burn_softmax(x, 1).into_data().convert::<f32>();
                let (ours, burn) = (
                    ours.as_slice::<f32>().unwrap(),
                    burn.as_slice::<f32>().unwrap(),
                );
                for (i, (a, b)) in ours.iter().zip(burn).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * b.max(1e-3),
                        "row {row}, {i}: {a} vs {b}"
                    );
                    if values[i] == -1e9 {
                        assert_eq!(*a, 0.0);
                    }
                }
                for r in ours.chunks(row) {
                    assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
                }
            }
        }
    }
}
