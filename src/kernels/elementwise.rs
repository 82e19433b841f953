//! The element-wise kernels on slices behind GELU and the softmax, compiled once per
//! instruction set and picked at run time.

/// What to compute.
enum Op<'a> {
    /// `x ← GELU(x)`.
    Gelu,
    /// `x ← GELU′(x)`, and `GELU(x) − x · GELU′(x)` into the slice.
    Slope(&'a mut [f32]),
    /// Softmax of each row of this length.
    Softmax(usize),
    /// Softmax of each row of this length, writing each row's maximum and the reciprocal
    /// of its sum of exponentials into the slice (two values a row).
    SoftmaxKeeping { row: usize, stats: &'a mut [f32] },
    /// `x ← exp(x − max) · inv` per row of this length, with each row's `(max, inv)` as
    /// `SoftmaxKeeping` wrote them: the same weights, bit for bit, from the same scores.
    SoftmaxFromStats { row: usize, stats: &'a [f32] },
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

/// The softmax of each row of `row` elements of `xs`, writing each row's maximum and the
/// reciprocal of its sum of exponentials into `stats` (two values a row).
pub fn softmax_rows_keeping(xs: &mut [f32], row: usize, stats: &mut [f32]) {
    dispatch(xs, Op::SoftmaxKeeping { row, stats });
}

/// The softmax of scores whose rows' statistics [`softmax_rows_keeping`] wrote: equal to its
/// result bit for bit, in one pass.
pub fn softmax_rows_from(xs: &mut [f32], row: usize, stats: &[f32]) {
    dispatch(xs, Op::SoftmaxFromStats { row, stats });
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
        Op::SoftmaxKeeping { row, stats } => {
            for (r, st) in xs.chunks_exact_mut(row).zip(stats.chunks_exact_mut(2)) {
                let (max, inv) = softmax(r);
                st.copy_from_slice(&[max, inv]);
            }
        }
        Op::SoftmaxFromStats { row, stats } => {
            for (r, st) in xs.chunks_exact_mut(row).zip(stats.chunks_exact(2)) {
                let (max, inv) = (st[0], st[1]);
                for v in r.iter_mut() {
                    *v = exp(*v - max) * inv;
                }
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

/// `r ← exp(r − max r) / Σ exp(r − max r)`; returns the maximum and `1 / Σ`.
#[inline(always)]
fn softmax(r: &mut [f32]) -> (f32, f32) {
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
    (max, inv)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The weights from kept statistics equal the softmax's bit for bit, and the statistics
    /// are each row's maximum and the reciprocal of its sum of exponentials.
    #[test]
    fn softmax_from_statistics_equals_the_softmax() {
        let row = 37;
        let scores: Vec<f32> = (0..5 * row)
            .map(|i| ((i * 7919) % 211) as f32 / 13.0 - 8.0)
            .collect();
        let mut plain = scores.clone();
        softmax_rows(&mut plain, row);
        let mut keeping = scores.clone();
        let mut stats = vec![0.0; 10];
        softmax_rows_keeping(&mut keeping, row, &mut stats);
        let mut from = scores.clone();
        softmax_rows_from(&mut from, row, &stats);
        assert_eq!(keeping, plain);
        assert_eq!(from, plain);
        for (r, st) in scores.chunks(row).zip(stats.chunks(2)) {
            let max = r.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            let sum: f64 = r.iter().map(|v| ((v - max) as f64).exp()).sum();
            assert_eq!(st[0], max);
            assert!(
                (st[1] as f64 * sum - 1.0).abs() < 1e-6,
                "{} vs {}",
                st[1],
                1.0 / sum
            );
        }
    }
}
