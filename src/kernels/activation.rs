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

use super::dropout::{on_flex, on_host};

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

pub(super) mod kernels {
    //! The element-wise kernels, compiled once per instruction set and picked at run time.

    /// What to compute.
    enum Op<'a> {
        /// `x ← GELU(x)`.
        Gelu,
        /// `x ← GELU′(x)`, and `GELU(x) − x · GELU′(x)` into the slice.
        Slope(&'a mut [f32]),
        /// Softmax of each row of this length.
        Softmax(usize),
        /// `x ← GELU(x)`, and `GELU′(x)` into the slice.
        ValueAndSlope(&'a mut [f32]),
        /// The softmax's backward pass over rows of this length: with `y` the softmax's
        /// output and `x` the gradient of its output, `x ← y ⊙ (x − Σ x ⊙ y)` per row.
        SoftmaxBackward { y: &'a [f32], row: usize },
        /// `x ← x ⊙ s`.
        Mul(&'a [f32]),
    }

    /// `x ← GELU(x)`.
    pub fn gelu(xs: &mut [f32]) {
        dispatch(xs, Op::Gelu);
    }

    /// `x ← GELU′(x)` in `xs` and `GELU(x) − x · GELU′(x)` in `offset`.
    pub fn slope_and_offset(xs: &mut [f32], offset: &mut [f32]) {
        dispatch(xs, Op::Slope(offset));
    }

    /// The softmax of each row of `row` elements of `xs`.
    pub fn softmax_rows(xs: &mut [f32], row: usize) {
        dispatch(xs, Op::Softmax(row));
    }

    /// `x ← GELU(x)` in `xs` and `GELU′(x)` in `slope`.
    pub fn value_and_slope(xs: &mut [f32], slope: &mut [f32]) {
        dispatch(xs, Op::ValueAndSlope(slope));
    }

    /// The softmax's backward pass: `grad ← y ⊙ (grad − Σ grad ⊙ y)` per row of `row`.
    pub fn softmax_backward_rows(grad: &mut [f32], y: &[f32], row: usize) {
        dispatch(grad, Op::SoftmaxBackward { y, row });
    }

    /// `x ← x ⊙ s`.
    pub fn mul(xs: &mut [f32], s: &[f32]) {
        dispatch(xs, Op::Mul(s));
    }

    fn dispatch(xs: &mut [f32], op: Op<'_>) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F.
                return unsafe { avx512(xs, op) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the processor has AVX2 and FMA.
                return unsafe { avx2(xs, op) };
            }
        }
        body(xs, op)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512(xs: &mut [f32], op: Op<'_>) {
        body(xs, op)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(xs: &mut [f32], op: Op<'_>) {
        body(xs, op)
    }

    #[inline(always)]
    fn body(xs: &mut [f32], op: Op<'_>) {
        match op {
            Op::Gelu => {
                for x in xs.iter_mut() {
                    *x = gelu_value(*x);
                }
            }
            Op::Slope(offset) => {
                for (x, c) in xs.iter_mut().zip(offset.iter_mut()) {
                    let (g, s) = gelu_and_slope(*x);
                    *c = g - *x * s;
                    *x = s;
                }
            }
            Op::Softmax(row) => {
                for r in xs.chunks_exact_mut(row) {
                    softmax(r);
                }
            }
            Op::ValueAndSlope(slope) => {
                for (x, s) in xs.iter_mut().zip(slope.iter_mut()) {
                    let (g, d) = gelu_and_slope(*x);
                    *x = g;
                    *s = d;
                }
            }
            Op::SoftmaxBackward { y, row } => {
                for (g, y) in xs.chunks_exact_mut(row).zip(y.chunks_exact(row)) {
                    let mut lanes = [0.0f32; LANES];
                    let (mut gc, mut yc) = (g.chunks_exact(LANES), y.chunks_exact(LANES));
                    for (g, y) in (&mut gc).zip(&mut yc) {
                        for ((l, g), y) in lanes.iter_mut().zip(g).zip(y) {
                            *l = g.mul_add(*y, *l);
                        }
                    }
                    let tail = gc
                        .remainder()
                        .iter()
                        .zip(yc.remainder())
                        .fold(0.0f32, |acc, (g, y)| g.mul_add(*y, acc));
                    let dot = tail + lanes.iter().sum::<f32>();
                    for (g, y) in g.iter_mut().zip(y) {
                        *g = *y * (*g - dot);
                    }
                }
            }
            Op::Mul(s) => {
                for (x, s) in xs.iter_mut().zip(s) {
                    *x *= *s;
                }
            }
        }
    }

    /// Lanes of the reductions: independent partial maxima and sums the compiler keeps in
    /// vector registers.
    const LANES: usize = 16;

    /// `r ← exp(r − max r) / Σ exp(r − max r)`.
    #[inline(always)]
    fn softmax(r: &mut [f32]) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = r.chunks_exact(LANES);
        for c in &mut chunks {
            for (m, v) in lanes.iter_mut().zip(c) {
                *m = m.max(*v);
            }
        }
        let mut max = chunks
            .remainder()
            .iter()
            .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        max = lanes.iter().fold(max, |m, v| m.max(*v));
        let mut sums = [0.0f32; LANES];
        let mut chunks = r.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
                *v = exp(*v - max);
                *s += *v;
            }
        }
        let mut sum = 0.0;
        for v in chunks.into_remainder() {
            *v = exp(*v - max);
            sum += *v;
        }
        sum += sums.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for v in r.iter_mut() {
            *v *= inv;
        }
    }

    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

    /// `t = 1 / (1 + z/2)` and Numerical Recipes' erfcc exponent `P(t)`, with
    /// `erfc(z) = t · exp(−z² + P(t))` for `z ≥ 0`.
    #[inline(always)]
    fn erfc_parts(z: f32) -> (f32, f32) {
        const P: [f32; 10] = [
            0.170_872_77,
            -0.822_152_23,
            1.488_515_9,
            -1.135_204,
            0.278_868_07,
            -0.186_288_06,
            0.096_784_18,
            0.374_091_96,
            1.000_023_7,
            -1.265_512_2,
        ];
        let t = 1.0 / 0.5f32.mul_add(z, 1.0);
        let mut p = P[0];
        for c in &P[1..] {
            p = p.mul_add(t, *c);
        }
        (t, p)
    }

    /// Φ(x) from `erfc(|x|/√2)`: for x ≥ 0, 1 − erfc/2; for x < 0, erfc/2.
    #[inline(always)]
    fn cdf(x: f32, erfc: f32) -> f32 {
        let half = 0.5 * erfc;
        if x >= 0.0 { 1.0 - half } else { half }
    }

    /// GELU(x), branch-free, one exponential.
    #[inline(always)]
    pub fn gelu_value(x: f32) -> f32 {
        let z = (x * FRAC_1_SQRT_2).abs();
        let (t, p) = erfc_parts(z);
        x * cdf(x, t * exp((-z).mul_add(z, p)))
    }

    /// GELU(x) and GELU′(x) = Φ(x) + x · φ(x), branch-free.
    #[inline(always)]
    pub fn gelu_and_slope(x: f32) -> (f32, f32) {
        // 1 / sqrt(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let z = (x * FRAC_1_SQRT_2).abs();
        let (t, p) = erfc_parts(z);
        // φ(x) = exp(−x²/2) / sqrt(2π) = exp(−z²) / sqrt(2π).
        let e = exp(-z * z);
        let cdf = cdf(x, t * e * exp(p));
        (x * cdf, x.mul_add(INV_SQRT_2PI * e, cdf))
    }

    /// `e^v` for `v ≤ 0` (0 below −87, where it would be denormal), relative error ~1e-7:
    /// `v = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-7 Taylor polynomial for `e^r`, and
    /// `2^n` written into the exponent bits.
    #[inline(always)]
    fn exp(v: f32) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        // ln 2 split so that n · LN2_HI is exact for the n used here.
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
        const ROUND: f32 = 12_582_912.0;
        // 1/k! for k = 7 … 0.
        const TAYLOR: [f32; 8] = [
            1.0 / 5040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ];
        let v = v.max(-87.0);
        let shifted = v.mul_add(LOG2E, ROUND);
        let n = shifted - ROUND;
        let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, v));
        let mut p = TAYLOR[0];
        for c in &TAYLOR[1..] {
            p = p.mul_add(r, *c);
        }
        // n sits in the low bits of `shifted`'s mantissa; reading it from there (not with a
        // float-to-int conversion, which the compiler checks lane by lane) keeps the loop in
        // vector registers. −126 ≤ n ≤ 0 here, so the exponent field n + 127 is normal.
        let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
        let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
        if v > -87.0 { p * scale } else { 0.0 }
    }
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
