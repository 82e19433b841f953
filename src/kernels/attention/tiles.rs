//! Register tiles of the attention core on AVX-512: the three product shapes of a block of
//! query rows against the keys of one (bag, head) pair, for `dim_head` a multiple of 16 up
//! to 64 ([`available`]).
//!
//! - [`scores`]: `S = α · A·Bᵀ + bias`, `[rows, keys]`, from rows `A` `[rows, d]` and keys
//!   `B` packed in panels of 16 ([`pack_panels`]): the scores `Q·Kᵀ` and `dP̃ = dO·Vᵀ`;
//! - [`rows_times`]: `C = W·X`, `[rows, d]`, from weights `W` `[rows, keys]` and `X` `[keys,
//!   d]`: the output `P̃·V` and `dQ = dS·K`;
//! - [`add_transposed`]: `G += α · Wᵀ·Y`, `[keys, d]`, from `W` `[rows, keys]` and `Y`
//!   `[rows, d]`: the gradients `dV` and `dK`.
//!
//! All three are one register tile ([`tile`]): `MR` rows of broadcast values times `NV`
//! vectors of 16 lanes, `MR · NV ≤ 24` accumulators. Unlike a general product, nothing is
//! packed per call: the caller packs a pair's keys and values once for all its blocks, and
//! a block's rows once for the products that share them. The thin inner dimension
//! (`dim_head` = 32) is what made the general kernel slow here: it packs both operands of
//! every call and stores its result after 32 steps.
//!
//! Each element of a result is one chain of fused multiply-adds in a fixed order, whatever
//! the tiling, so the backward pass recomputes the forward pass's scores bit for bit.

use std::arch::x86_64::*;

/// Rows of a [`scores`] tile (times up to 4 panels of 16 keys: 24 accumulators).
pub(super) const SCORE_ROWS: usize = 6;
/// Keys of one stretch of [`rows_times`]: its `X` rows (32 KB at `d` = 32) stay in cache
/// while every row of the block passes over them.
const KEY_STRETCH: usize = 256;

/// Whether the tiles run here for heads of width `d`: AVX-512F, `d` a multiple of 16 up to 64.
pub(super) fn available(d: usize) -> bool {
    d > 0 && d.is_multiple_of(16) && d <= 64 && is_x86_feature_detected!("avx512f")
}

/// Rows that [`rows_times`] reads and writes past `rows` at most (its tiles are whole: 16,
/// 12, 8 or 6 rows for `d` = 16, 32, 48, 64).
pub(super) const ROW_PAD: usize = 16;
/// Elements that [`add_transposed`] reads past the end of `W` at most (its tiles of keys
/// are whole, of the same sizes).
pub(super) const KEY_PAD: usize = 16;

/// `acc[m][v] = Σ_{t < steps} a[m·am + t·at] · b[v·bv + t·bt .. + 16]`.
///
/// # Safety
/// Every element named is readable; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NV: usize>(
    a: *const f32,
    (am, at): (usize, usize),
    b: *const f32,
    (bv, bt): (usize, usize),
    steps: usize,
) -> [[__m512; NV]; MR] {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for t in 0..steps {
        // SAFETY: step t of both operands (caller).
        unsafe {
            let bs: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(v * bv + t * bt)));
            for (m, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(m * am + t * at));
                for (acc, b) in acc.iter_mut().zip(&bs) {
                    *acc = _mm512_fmadd_ps(x, *b, *acc);
                }
            }
        }
    }
    acc
}

/// A mask of the first `n` of 16 lanes.
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
}

/// Packs `keys` rows of `d` values, `stride` apart from `src`, as panels of 16 keys:
/// `out[p][k][l] = src[(16p + l) · stride + k]`, 0 past the last key. `out` holds
/// `⌈keys / 16⌉ · d · 16` values.
///
/// # Safety
/// The rows are readable.
pub(super) unsafe fn pack_panels(
    src: *const f32,
    stride: usize,
    keys: usize,
    d: usize,
    out: &mut [f32],
) {
    for (p, panel) in out.chunks_exact_mut(d * 16).enumerate() {
        for l in 0..16 {
            let key = 16 * p + l;
            for k in 0..d {
                // SAFETY: key < keys is a readable row (caller).
                panel[k * 16 + l] = if key < keys {
                    unsafe { *src.add(key * stride + k) }
                } else {
                    0.0
                };
            }
        }
    }
}

/// `out[i][j] = alpha · Σ_k a[i·d + k] · panels[j][k] + bias[j]` for `i < rows`, `j < keys`,
/// rows of `out` `keys` apart.
///
/// # Safety
/// `a` holds `rows` rounded up to [`SCORE_ROWS`] rows of `d` values; `panels` as
/// [`pack_panels`] writes them for `keys` keys; `bias` (if any) holds `keys` values; `out`
/// holds `rows · keys`; [`available`]`(d)`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores(
    a: &[f32],
    rows: usize,
    d: usize,
    panels: &[f32],
    keys: usize,
    alpha: f32,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let count = keys.div_ceil(16);
    let mut p = 0;
    while p < count {
        let nv = (count - p).min(4);
        let group = Group {
            a,
            rows,
            d,
            panels,
            keys,
            alpha,
            bias,
            first: p,
        };
        // SAFETY: the caller's contract.
        unsafe {
            match nv {
                4 => group.run::<4>(out),
                3 => group.run::<3>(out),
                2 => group.run::<2>(out),
                _ => group.run::<1>(out),
            }
        }
        p += nv;
    }
}

/// One group of panels of [`scores`], all rows.
struct Group<'a> {
    a: &'a [f32],
    rows: usize,
    d: usize,
    panels: &'a [f32],
    keys: usize,
    alpha: f32,
    bias: Option<&'a [f32]>,
    first: usize,
}

impl Group<'_> {
    /// The scores of panels `first .. first + NV`, tile by tile of rows.
    ///
    /// # Safety
    /// As [`scores`]; `first + NV` panels exist.
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const NV: usize>(&self, out: &mut [f32]) {
        let (d, keys) = (self.d, self.keys);
        let b = self.panels[self.first * d * 16..].as_ptr();
        let alpha = _mm512_set1_ps(self.alpha);
        let zero = _mm512_setzero_ps();
        let masks: [__mmask16; NV] = std::array::from_fn(|v| lanes(keys - 16 * (self.first + v)));
        // SAFETY (loads of the bias and stores): masked to the keys that exist.
        let bias: [__m512; NV] = std::array::from_fn(|v| match self.bias {
            Some(bias) => unsafe {
                _mm512_maskz_loadu_ps(masks[v], bias.as_ptr().add(16 * (self.first + v)))
            },
            None => zero,
        });
        for r in (0..self.rows).step_by(SCORE_ROWS) {
            // SAFETY: rows r .. r + SCORE_ROWS of `a` and the NV panels (caller).
            let acc = unsafe {
                tile::<SCORE_ROWS, NV>(self.a[r * d..].as_ptr(), (d, 1), b, (d * 16, 16), d)
            };
            for (m, acc) in acc.iter().enumerate().take(self.rows - r) {
                let row = out[(r + m) * keys..].as_mut_ptr();
                for (v, ((acc, bias), mask)) in acc.iter().zip(&bias).zip(&masks).enumerate() {
                    let s = _mm512_fmadd_ps(alpha, *acc, *bias);
                    // SAFETY: the masked lanes are keys of row r + m.
                    unsafe { _mm512_mask_storeu_ps(row.add(16 * (self.first + v)), *mask, s) };
                }
            }
        }
    }
}

/// `out[i][c] = Σ_{j < keys} w[i·keys + j] · x[j·d + c]` for `i < rows`, `c < d`, rows of
/// `out` `d` apart.
///
/// # Safety
/// `w` holds `rows + ROW_PAD` rows of `keys` values (the rows past `rows` are read, not
/// used); `x` holds `keys · d`; `out` holds `(rows + ROW_PAD) · d`; [`available`]`(d)`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn rows_times(
    w: &[f32],
    rows: usize,
    keys: usize,
    x: &[f32],
    d: usize,
    out: &mut [f32],
) {
    // SAFETY (each arm): the caller's contract.
    unsafe {
        match d / 16 {
            1 => rows_times_by::<16, 1>(w, rows, keys, x, out),
            2 => rows_times_by::<12, 2>(w, rows, keys, x, out),
            3 => rows_times_by::<8, 3>(w, rows, keys, x, out),
            _ => rows_times_by::<6, 4>(w, rows, keys, x, out),
        }
    }
}

/// [`rows_times`] with tiles of `MR` rows, `d = 16 · NV`.
#[target_feature(enable = "avx512f")]
unsafe fn rows_times_by<const MR: usize, const NV: usize>(
    w: &[f32],
    rows: usize,
    keys: usize,
    x: &[f32],
    out: &mut [f32],
) {
    let d = 16 * NV;
    for k0 in (0..keys).step_by(KEY_STRETCH) {
        let len = KEY_STRETCH.min(keys - k0);
        for r in (0..rows).step_by(MR) {
            // SAFETY: rows r .. r + MR of `w` (padded), keys k0 .. k0 + len of `x` (caller).
            let acc = unsafe {
                tile::<MR, NV>(
                    w[r * keys + k0..].as_ptr(),
                    (keys, 1),
                    x[k0 * d..].as_ptr(),
                    (16, d),
                    len,
                )
            };
            for (m, acc) in acc.iter().enumerate() {
                let row = out[(r + m) * d..].as_mut_ptr();
                for (v, acc) in acc.iter().enumerate() {
                    // SAFETY: row r + m < rows + ROW_PAD of `out` (caller).
                    unsafe {
                        let at = row.add(16 * v);
                        let sum = if k0 == 0 {
                            *acc
                        } else {
                            _mm512_add_ps(_mm512_loadu_ps(at), *acc)
                        };
                        _mm512_storeu_ps(at, sum);
                    }
                }
            }
        }
    }
}

/// `g[j·d + c] += alpha · Σ_{i < rows} w[i·keys + j] · y[i·d + c]` for `j < keys`, `c < d`.
///
/// # Safety
/// `w` holds `rows · keys + KEY_PAD` values; `y` holds `rows · d`; `g` holds `keys · d`;
/// [`available`]`(d)`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn add_transposed(
    w: &[f32],
    rows: usize,
    keys: usize,
    y: &[f32],
    d: usize,
    alpha: f32,
    g: &mut [f32],
) {
    // SAFETY (each arm): the caller's contract.
    unsafe {
        match d / 16 {
            1 => add_transposed_by::<16, 1>(w, rows, keys, y, alpha, g),
            2 => add_transposed_by::<12, 2>(w, rows, keys, y, alpha, g),
            3 => add_transposed_by::<8, 3>(w, rows, keys, y, alpha, g),
            _ => add_transposed_by::<6, 4>(w, rows, keys, y, alpha, g),
        }
    }
}

/// [`add_transposed`] with tiles of `MR` keys, `d = 16 · NV`.
#[target_feature(enable = "avx512f")]
unsafe fn add_transposed_by<const MR: usize, const NV: usize>(
    w: &[f32],
    rows: usize,
    keys: usize,
    y: &[f32],
    alpha: f32,
    g: &mut [f32],
) {
    let d = 16 * NV;
    let alpha = _mm512_set1_ps(alpha);
    for j in (0..keys).step_by(MR) {
        // SAFETY: keys j .. j + MR of every row of `w` (at most KEY_PAD past its end) and
        // all rows of `y` (caller).
        let acc = unsafe { tile::<MR, NV>(w[j..].as_ptr(), (1, keys), y.as_ptr(), (16, d), rows) };
        for (m, acc) in acc.iter().enumerate().take(keys - j) {
            let row = g[(j + m) * d..].as_mut_ptr();
            for (v, acc) in acc.iter().enumerate() {
                // SAFETY: key j + m < keys of `g`.
                unsafe {
                    let at = row.add(16 * v);
                    _mm512_storeu_ps(at, _mm512_fmadd_ps(alpha, *acc, _mm512_loadu_ps(at)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in [-1, 1) from a simple generator, reproducible.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (*x as f64 - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what}, element {i}: {x} vs {y}"
            );
        }
    }

    const SHAPES: [(usize, usize); 8] = [
        (1, 1),
        (1, 17),
        (5, 16),
        (6, 15),
        (7, 65),
        (13, 100),
        (2, 300),
        (25, 257),
    ];

    /// The scores equal `alpha · A·Bᵀ + bias` summed in f64, with and without a bias, for
    /// key counts around the panels' 16 and the groups' 64 and row counts around the tile's 6.
    #[test]
    fn scores_equal_the_plain_sum() {
        if !available(16) {
            return;
        }
        for d in [16, 32, 48, 64] {
            for (rows, keys) in SHAPES {
                let a = values((rows + ROW_PAD) * d, 1);
                let k = values(keys * d, 2);
                let bias = values(keys, 3);
                let mut panels = vec![0.0; keys.div_ceil(16) * d * 16];
                // SAFETY: `k` holds `keys` rows of `d`.
                unsafe { pack_panels(k.as_ptr(), d, keys, d, &mut panels) };
                for with_bias in [false, true] {
                    let mut out = vec![0.0; rows * keys];
                    let b = with_bias.then_some(&bias[..]);
                    // SAFETY: the sizes `scores` asks for; AVX-512F checked above.
                    unsafe { scores(&a, rows, d, &panels, keys, 0.7, b, &mut out) };
                    let expected: Vec<f64> = (0..rows * keys)
                        .map(|e| {
                            let (i, j) = (e / keys, e % keys);
                            let dot: f64 = (0..d)
                                .map(|c| a[i * d + c] as f64 * k[j * d + c] as f64)
                                .sum();
                            0.7 * dot + if with_bias { bias[j] as f64 } else { 0.0 }
                        })
                        .collect();
                    assert_close(
                        &format!("d {d}, {rows} × {keys}, bias {with_bias}"),
                        &out,
                        &expected,
                    );
                }
            }
        }
    }

    /// `W·X` and `G + α · Wᵀ·Y` equal their sums in f64, over more keys than one stretch
    /// (257, 300) and odd key and row counts.
    #[test]
    fn weighted_sums_equal_the_plain_sums() {
        if !available(16) {
            return;
        }
        for d in [16, 32, 48, 64] {
            for (rows, keys) in SHAPES {
                let w = values((rows + ROW_PAD) * keys + KEY_PAD, 4);
                let x = values(keys * d, 5);
                let mut out = vec![0.0; (rows + ROW_PAD) * d];
                // SAFETY: the sizes `rows_times` asks for; AVX-512F checked above.
                unsafe { rows_times(&w, rows, keys, &x, d, &mut out) };
                let expected: Vec<f64> = (0..rows * d)
                    .map(|e| {
                        let (i, c) = (e / d, e % d);
                        (0..keys)
                            .map(|j| w[i * keys + j] as f64 * x[j * d + c] as f64)
                            .sum()
                    })
                    .collect();
                assert_close(
                    &format!("W·X, d {d}, {rows} × {keys}"),
                    &out[..rows * d],
                    &expected,
                );
                let y = values(rows * d, 6);
                let mut g = values(keys * d, 7);
                let g0 = g.clone();
                // SAFETY: the sizes `add_transposed` asks for.
                unsafe { add_transposed(&w, rows, keys, &y, d, 0.3, &mut g) };
                let expected: Vec<f64> = (0..keys * d)
                    .map(|e| {
                        let (j, c) = (e / d, e % d);
                        let sum: f64 = (0..rows)
                            .map(|i| w[i * keys + j] as f64 * y[i * d + c] as f64)
                            .sum();
                        g0[e] as f64 + 0.3 * sum
                    })
                    .collect();
                assert_close(&format!("Wᵀ·Y, d {d}, {rows} × {keys}"), &g, &expected);
            }
        }
    }
}
