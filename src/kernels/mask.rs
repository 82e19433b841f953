//! Dropout masks drawn on the host: reproducible from a seed, block by block in parallel, and
//! kept as one bit per element for the backward pass.

use rayon::prelude::*;

/// Elements per independently seeded block of a mask.
pub(crate) const BLOCK: usize = 1 << 15;

/// `len` values, each `value` with probability `keep` and 0 otherwise, from `seed`.
pub(crate) fn bernoulli_mask(len: usize, keep: f64, value: f32, seed: u64) -> Vec<f32> {
    let mut mask = vec![1.0f32; len];
    apply_mask(&mut mask, keep, value, seed);
    mask
}

/// Multiplies each element of `xs` by `value` with probability `keep` and by 0 otherwise,
/// drawing as [`bernoulli_mask`] does: element `i` of `xs` and of a mask from the same `seed`
/// get the same draw.
pub(crate) fn apply_mask(xs: &mut [f32], keep: f64, value: f32, seed: u64) {
    let _ = apply_block_masks(xs, keep, value, seed, false);
}

/// [`apply_mask`], also returning the mask as bits (bit `i % 64` of word `i / 64` set where
/// element `i` was kept) for [`apply_bits`] to apply again.
pub(crate) fn apply_mask_keeping_bits(
    xs: &mut [f32],
    keep: f64,
    value: f32,
    seed: u64,
) -> Vec<u64> {
    apply_block_masks(xs, keep, value, seed, true)
}

/// Multiplies element `i` of `xs` by `value` where bit `i` of `bits` is set, by 0 elsewhere.
pub(crate) fn apply_bits(xs: &mut [f32], bits: &[u64], value: f32) {
    xs.par_chunks_mut(BLOCK)
        .zip(bits.par_chunks(BLOCK / 64))
        .for_each(|(out, words)| {
            for (chunk, word) in out.chunks_mut(64).zip(words) {
                for (i, slot) in chunk.iter_mut().enumerate() {
                    *slot *= if word >> i & 1 == 1 { value } else { 0.0 };
                }
            }
        });
}

/// Sets `out[i]` to `value` where element `start + i` of a mask drawn as [`apply_mask`] draws
/// it from `seed` is kept, to 0 elsewhere. Each draw depends only on its block and its place
/// there (SplitMix64's state advances by a constant), so any range of a mask can be drawn
/// alone: a pass over part of a tensor regenerates just the part of the mask it needs.
pub(crate) fn mask_values(out: &mut [f32], keep: f64, value: f32, seed: u64, start: usize) {
    let draw = Draw {
        threshold: threshold(keep),
        value,
    };
    let mut i = 0;
    while i < out.len() {
        let (block, j) = ((start + i) / BLOCK, (start + i) % BLOCK);
        let n = (BLOCK - j).min(out.len() - i);
        draw.dispatch(&mut out[i..i + n], block_state(seed, block), j);
        i += n;
    }
}

/// What a draw becomes: `value` below the threshold, 0 from it on.
#[derive(Clone, Copy)]
struct Draw {
    threshold: u64,
    value: f32,
}

impl Draw {
    /// [`fill`](Self::fill), compiled for the widest vectors the CPU has: the draws of
    /// attention dropout (one per weight, forward and backward) otherwise cost as much as
    /// a product.
    fn dispatch(self, out: &mut [f32], state: u64, j: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
                // SAFETY: the processor has AVX-512 F and DQ.
                return unsafe { self.fill_avx512(out, state, j) };
            }
            if is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2.
                return unsafe { self.fill_avx2(out, state, j) };
            }
        }
        self.fill(out, state, j)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx2")]
    unsafe fn fill_avx512(self, out: &mut [f32], state: u64, j: usize) {
        self.fill(out, state, j)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_avx2(self, out: &mut [f32], state: u64, j: usize) {
        self.fill(out, state, j)
    }

    /// Elements `j .. j + out.len()` of the block whose SplitMix64 state starts at `state`:
    /// draw `j / 2` of the block is the state after `j / 2 + 1` steps, mixed; even elements
    /// take its low 32 bits, odd ones its high 32.
    #[inline(always)]
    fn fill(self, out: &mut [f32], state: u64, j: usize) {
        let pair = |q: usize| {
            let steps = q as u64 + 1;
            crate::util::seed::mix(state.wrapping_add(steps.wrapping_mul(GOLDEN)), 0, 0)
        };
        let pick = |draw: u64| {
            if draw < self.threshold {
                self.value
            } else {
                0.0
            }
        };
        // An odd first element is the high half of its pair.
        let (head, out) = out.split_at_mut((j % 2).min(out.len()));
        if let [odd] = head {
            *odd = pick(pair(j / 2) >> 32);
        }
        let (first, whole) = (j.div_ceil(2), out.len() / 2);
        let mut pairs = out.chunks_exact_mut(2);
        for (q, two) in (&mut pairs).enumerate() {
            let r = pair(first + q);
            two[0] = pick(r & 0xFFFF_FFFF);
            two[1] = pick(r >> 32);
        }
        if let [last] = pairs.into_remainder() {
            *last = pick(pair(first + whole) & 0xFFFF_FFFF);
        }
    }
}

/// The threshold of a draw: P(draw < threshold) = threshold / 2^32 = keep (to 2^-32).
fn threshold(keep: f64) -> u64 {
    (keep * 4_294_967_296.0).round().min(u32::MAX as f64) as u64
}

/// The SplitMix64 state a block of a mask starts from.
fn block_state(seed: u64, block: usize) -> u64 {
    seed ^ (block as u64).wrapping_mul(0xA24B_AED4_963E_E407)
}

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The draws of [`apply_mask`], block by block, with the bits of the mask when asked.
fn apply_block_masks(xs: &mut [f32], keep: f64, value: f32, seed: u64, bits: bool) -> Vec<u64> {
    let threshold = threshold(keep);
    let draw = |block: usize, out: &mut [f32], mut words: Option<&mut [u64]>| {
        let mut state = block_state(seed, block);
        for (p, pair) in out.chunks_mut(2).enumerate() {
            let r = splitmix(&mut state);
            for (k, (slot, draw)) in pair.iter_mut().zip([r & 0xFFFF_FFFF, r >> 32]).enumerate() {
                let kept = draw < threshold;
                *slot *= if kept { value } else { 0.0 };
                if kept && let Some(words) = words.as_deref_mut() {
                    let i = 2 * p + k;
                    words[i / 64] |= 1 << (i % 64);
                }
            }
        }
    };
    if !bits {
        xs.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(block, out)| draw(block, out, None));
        return Vec::new();
    }
    let mut words = vec![0u64; xs.len().div_ceil(64)];
    xs.par_chunks_mut(BLOCK)
        .zip(words.par_chunks_mut(BLOCK / 64))
        .enumerate()
        .for_each(|(block, (out, words))| draw(block, out, Some(words)));
    words
}

/// SplitMix64 (Steele, Lea & Flood, 2014): advances `state` by the golden-ratio increment and
/// returns its finalizer, which [`mix`](crate::util::seed::mix) applies.
#[inline]
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    crate::util::seed::mix(*state, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any range of a mask, drawn alone, equals that range of the whole mask: ranges inside
    /// one block, across block boundaries, of odd starts and lengths, and of one element.
    #[test]
    fn ranges_drawn_alone_equal_the_whole_mask() {
        let len = 2 * BLOCK + 101;
        let mut whole = vec![1.0f32; len];
        apply_mask(&mut whole, 0.7, 2.5, 99);
        for (start, n) in [
            (0, len),
            (1, 1),
            (3, 1000),
            (BLOCK - 5, 11),
            (BLOCK + 1, BLOCK),
            (len - 1, 1),
        ] {
            let mut part = vec![7.0f32; n];
            mask_values(&mut part, 0.7, 2.5, 99, start);
            assert_eq!(part, whole[start..start + n], "range {start}, {n}");
        }
    }
}
