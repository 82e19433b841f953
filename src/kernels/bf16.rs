//! The matrix product in bf16: each operand rounded to bf16 (round to nearest even, f32
//! subnormals flushed to zero), the products summed in f32, the output f32 — the arithmetic
//! of AVX512_BF16's `vdpbf16ps`, which multiplies and adds two pairs of bf16 values into
//! each f32 lane, twice the f32 multiply-add rate.
//!
//! [`product`](super::product::product) comes here when the calling thread's
//! [`Precision`] is bf16. Two paths with the same rounding of the operands:
//!
//! - AVX512_BF16 (detected at run time): both operands packed into bf16 pairs as
//!   `vdpbf16ps` reads them (`b` once, in panels of [`NR`] columns; `a` per task, in blocks
//!   of rows and [`KCP`] pairs of the inner dimension), then an [`MR`] × [`NR`] register
//!   tile per step; tasks of row and column blocks on the thread pool;
//! - elsewhere, and for `Precision::Bf16Emulated`: the operands rounded into f32 copies
//!   and multiplied by the f32 kernel. A bf16 product is exact in f32 (8 + 8 significant
//!   bits), so this differs from the hardware only in the order of the f32 sums.

use rayon::prelude::*;

use crate::runtime::Precision;

/// Rows of the register tile.
const MR: usize = 12;
/// Columns of the register tile: two vectors of 16 f32 lanes.
const NR: usize = 32;
/// Pairs of the inner dimension per cache block: a packed `b` panel of `KCP × NR` pairs is
/// 16 KB, kept in L1 while a block of `a` streams past it from L2.
const KCP: usize = 128;
/// Rows of `a` per block: `MC × KCP` pairs of `a` are 192 KB, in a 1 MB L2 beside the
/// panels of `b`.
const MC: usize = 384;
/// Panels of `b` per task when the columns are split (512 columns).
const NCP: usize = 16;
/// Products of fewer multiply-adds than this run on one thread (as the f32 product).
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// `x` rounded to bf16 (its bits): to nearest, ties to even; subnormals to a zero of their
/// sign, NaN to a quiet NaN — as `vcvtne2ps2bf16` does.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    if x.is_subnormal() {
        return ((bits >> 16) & 0x8000) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

/// The f32 value of bf16 bits (exact).
pub(crate) fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bf16, as an f32.
pub(crate) fn round_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Whether this CPU runs the AVX512_BF16 path.
fn has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::runtime::missing_bf16_flags().is_empty()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A raw pointer that may cross to the pool's threads (each task writes its own tile).
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: the tasks write disjoint parts of the destination (see `run_task`).
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

/// An operand as the kernel reads it: its first element, row and column strides.
#[derive(Clone, Copy)]
pub(super) struct Operand {
    ptr: *const f32,
    rows: isize,
    cols: isize,
}
// SAFETY: the operands are read only, while the product runs (caller of `product`).
unsafe impl Send for Operand {}
// SAFETY: as above.
unsafe impl Sync for Operand {}

impl Operand {
    /// An operand from its first element and its row and column strides.
    pub(super) fn new(ptr: *const f32, rows: isize, cols: isize) -> Self {
        Self { ptr, rows, cols }
    }

    /// Element `(r, c)`, or 0 outside `limit` (rows, columns).
    ///
    /// # Safety
    /// Inside `limit` the element must be readable.
    unsafe fn get(&self, r: usize, c: usize, limit: (usize, usize)) -> f32 {
        if r >= limit.0 || c >= limit.1 {
            return 0.0;
        }
        // SAFETY: inside the matrix (caller).
        unsafe {
            *self
                .ptr
                .offset(r as isize * self.rows + c as isize * self.cols)
        }
    }
}

/// `dst ← (accumulate ? dst : 0) + beta · a · b` with bf16 operands and f32 sums, for `a`
/// `[m, k]`, `b` `[k, n]` and `dst` `[m, n]` with rows `dst_rows` apart: on AVX512_BF16
/// for `Precision::Bf16` on such a CPU, emulated otherwise; on the thread pool when
/// `parallel` and the product is large.
///
/// # Safety
/// As [`product`](super::product::product).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    precision: Precision,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rows: usize,
    accumulate: bool,
    a: Operand,
    b: Operand,
    beta: f32,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let parallel = parallel && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_PRODUCT;
    let shape = Shape { m, n, k };
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 && has_bf16() && k > 0 {
        // SAFETY: the CPU has the instructions; the caller's contract.
        unsafe { avx512::product(shape, dst, dst_rows, accumulate, a, b, beta, parallel) };
        return;
    }
    let _ = precision;
    // SAFETY: the caller's contract.
    unsafe { emulated(shape, dst, dst_rows, accumulate, a, b, beta, parallel) };
}

/// The sizes of a product `[m, k] · [k, n]`.
#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
}

/// The product of the operands rounded to bf16 (into f32 copies) by the f32 kernel.
///
/// # Safety
/// As [`product`].
#[allow(clippy::too_many_arguments)]
unsafe fn emulated(
    s: Shape,
    dst: *mut f32,
    dst_rows: usize,
    accumulate: bool,
    a: Operand,
    b: Operand,
    beta: f32,
    parallel: bool,
) {
    // SAFETY: inside each matrix (caller).
    let ra = unsafe { rounded(a, s.m, s.k) };
    // SAFETY: as above.
    let rb = unsafe { rounded(b, s.k, s.n) };
    if s.k == 0 {
        if !accumulate {
            for r in 0..s.m {
                // SAFETY: row r of the destination is valid for n writes (caller).
                unsafe { std::ptr::write_bytes(dst.add(r * dst_rows), 0, s.n) };
            }
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // The f32 kernel directly: `product` would send this thread's bf16 precision back here.
    // SAFETY: the copies hold `m × k` and `k × n` values, row-major; the destination is the
    // caller's; `gemm` reads it only when `accumulate`.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            dst,
            1,
            dst_rows as isize,
            accumulate,
            ra.as_ptr(),
            1,
            s.k as isize,
            rb.as_ptr(),
            1,
            s.n as isize,
            1.0f32,
            beta,
            false,
            false,
            false,
            parallelism,
        )
    };
}

/// The `rows × cols` matrix `x` rounded to bf16, row-major in f32.
///
/// # Safety
/// Every element of `x` must be readable.
unsafe fn rounded(x: Operand, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    out.par_chunks_mut(cols.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            for (c, v) in row.iter_mut().enumerate() {
                // SAFETY: inside the matrix (caller).
                *v = round_bf16(unsafe { x.get(r, c, (rows, cols)) });
            }
        });
    out
}

/// `b` `[k, n]` packed for the tile: panel `j` (columns `j·NR ..`) holds, for each pair `p`
/// of the inner dimension, `NR` column pairs `(b[2p, c], b[2p+1, c])`; zeros outside `b`.
/// Panels are `kp · 2 · NR` values apart (`kp = ⌈k/2⌉`).
///
/// # Safety
/// Every element of `b` must be readable.
unsafe fn pack_b_scalar(b: Operand, k: usize, n: usize, panel: usize, out: &mut [u16]) {
    for (p, pair) in out.chunks_exact_mut(2 * NR).enumerate() {
        for q in 0..NR {
            let c = panel * NR + q;
            // SAFETY: `get` reads inside `b` only (caller).
            unsafe {
                pair[2 * q] = to_bf16(b.get(2 * p, c, (k, n)));
                pair[2 * q + 1] = to_bf16(b.get(2 * p + 1, c, (k, n)));
            }
        }
    }
}

/// Rows `rows` of `a` `[m, k]`, pairs `p0..p1` of its inner dimension, packed for the tile:
/// for each group of `MR` rows (zeros past `m`), `p1 − p0` steps of `MR` pairs
/// `(a[r, 2p], a[r, 2p+1])` as `u32` (the first in the low half).
///
/// # Safety
/// Every element of `a` must be readable.
unsafe fn pack_a_scalar(
    a: Operand,
    (m, k): (usize, usize),
    rows: std::ops::Range<usize>,
    (p0, p1): (usize, usize),
    out: &mut [u32],
) {
    let kb = p1 - p0;
    for (g, group) in out.chunks_exact_mut(kb * MR).enumerate() {
        for (s, step) in group.chunks_exact_mut(MR).enumerate() {
            let p = p0 + s;
            for (i, v) in step.iter_mut().enumerate() {
                let r = rows.start + g * MR + i;
                let limit = (m.min(rows.end), k);
                // SAFETY: `get` reads inside `a` only (caller).
                let (lo, hi) = unsafe { (a.get(r, 2 * p, limit), a.get(r, 2 * p + 1, limit)) };
                *v = u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16);
            }
        }
    }
}

/// The work of one task: rows and panels of the destination.
struct Task {
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
}

/// Splits `[m, n]` into tasks: blocks of at most [`MC`] rows (whole register tiles) and
/// [`NCP`] panels, split further until the pool has about four tasks per thread.
fn tasks(m: usize, n: usize, parallel: bool) -> Vec<Task> {
    let panels = n.div_ceil(NR);
    let (mut row_blocks, mut col_blocks) = (m.div_ceil(MC), panels.div_ceil(NCP));
    if parallel {
        let want = 4 * rayon::current_num_threads();
        while row_blocks * col_blocks < want {
            if col_blocks < panels {
                col_blocks = (col_blocks * 2).min(panels);
            } else if row_blocks < m.div_ceil(MR) {
                row_blocks = (row_blocks * 2).min(m.div_ceil(MR));
            } else {
                break;
            }
        }
    }
    let rows_per = m.div_ceil(row_blocks).div_ceil(MR) * MR;
    let panels_per = panels.div_ceil(col_blocks);
    let mut out = Vec::new();
    for r in (0..m).step_by(rows_per) {
        for j in (0..panels).step_by(panels_per) {
            out.push(Task {
                rows: r..(r + rows_per).min(m),
                panels: j..(j + panels_per).min(panels),
            });
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX512_BF16 path: packing with `vcvtne2ps2bf16`, the register tile with
    //! `vdpbf16ps`.

    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use crate::kernels::bf16::{
        KCP, MR, NR, Operand, Shape, Shared, Task, pack_a_scalar, pack_b_scalar, tasks,
    };

    /// The product on AVX512_BF16 (see [`super::product`]).
    ///
    /// # Safety
    /// The CPU has AVX512_BF16, AVX-512 F and BW; `k > 0`; the contract of
    /// [`super::product`].
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn product(
        s: Shape,
        dst: *mut f32,
        dst_rows: usize,
        accumulate: bool,
        a: Operand,
        b: Operand,
        beta: f32,
        parallel: bool,
    ) {
        let kp = s.k.div_ceil(2);
        let panels = s.n.div_ceil(NR);
        let mut packed_b = vec![0u16; panels * kp * 2 * NR];
        let pack = |(j, out): (usize, &mut [u16])| {
            // SAFETY: inside `b` (caller); the CPU has the instructions (caller).
            unsafe { pack_b(b, s.k, s.n, j, out) }
        };
        if parallel {
            packed_b
                .par_chunks_mut(kp * 2 * NR)
                .enumerate()
                .for_each(pack);
        } else {
            packed_b.chunks_mut(kp * 2 * NR).enumerate().for_each(pack);
        }
        let dst = Shared(dst);
        let run = |t: &Task| {
            let job = Job {
                s,
                dst,
                dst_rows,
                accumulate,
                a,
                packed_b: &packed_b,
                beta,
            };
            // SAFETY: each task writes its own rows × panels of `dst`; the caller's contract.
            unsafe { job.run(t) }
        };
        let tasks = tasks(s.m, s.n, parallel);
        if parallel {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
    }

    /// What every task of one product shares.
    struct Job<'a> {
        s: Shape,
        dst: Shared<f32>,
        dst_rows: usize,
        accumulate: bool,
        a: Operand,
        packed_b: &'a [u16],
        beta: f32,
    }

    impl Job<'_> {
        /// Computes the task's rows and panels of `dst`, one cache block of the inner
        /// dimension after another.
        ///
        /// # Safety
        /// As [`product`]; no other task writes these rows and panels.
        #[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
        unsafe fn run(&self, t: &Task) {
            let kp = self.s.k.div_ceil(2);
            let groups = t.rows.len().div_ceil(MR);
            let mut packed_a = vec![0u32; groups * MR * KCP.min(kp)];
            for p0 in (0..kp).step_by(KCP) {
                let p1 = (p0 + KCP).min(kp);
                let kb = p1 - p0;
                let block = &mut packed_a[..groups * MR * kb];
                // SAFETY: inside `a` (caller).
                unsafe {
                    pack_a(
                        self.a,
                        (self.s.m, self.s.k),
                        t.rows.clone(),
                        (p0, p1),
                        block,
                    )
                };
                let overwrite = p0 == 0 && !self.accumulate;
                for j in t.panels.clone() {
                    let panel = &self.packed_b[(j * kp + p0) * 2 * NR..];
                    let cols = (self.s.n - j * NR).min(NR);
                    for g in 0..groups {
                        let r = t.rows.start + g * MR;
                        let tile = Tile {
                            // SAFETY: row r, column j·NR is inside the destination.
                            c: unsafe { self.dst.0.add(r * self.dst_rows + j * NR) },
                            stride: self.dst_rows,
                            rows: (t.rows.end - r).min(MR),
                            cols,
                            overwrite,
                            beta: self.beta,
                        };
                        // SAFETY: the packed blocks hold `kb` steps; the tile is this task's.
                        unsafe { tile.compute(kb, block[g * kb * MR..].as_ptr(), panel.as_ptr()) };
                    }
                }
            }
        }
    }

    /// One register tile of the destination and how to store it.
    struct Tile {
        c: *mut f32,
        stride: usize,
        rows: usize,
        cols: usize,
        overwrite: bool,
        beta: f32,
    }

    impl Tile {
        /// `c ← (overwrite ? 0 : c) + beta · Σ_p a_p · b_p` over `kb` packed steps.
        ///
        /// # Safety
        /// `a` holds `kb · MR` pairs, `b` `kb · 2 · NR` values; the tile's `rows × cols`
        /// elements are valid for reads and writes.
        #[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
        #[inline]
        unsafe fn compute(&self, kb: usize, a: *const u32, b: *const u16) {
            let mut acc = [[_mm512_setzero_ps(); 2]; MR];
            for p in 0..kb {
                // SAFETY: step p of each packed operand (caller).
                unsafe {
                    let b0: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(b.add(p * 2 * NR).cast()));
                    let b1: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(b.add(p * 2 * NR + NR).cast()));
                    let step = a.add(p * MR);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let ai: __m512bh =
                            std::mem::transmute(_mm512_set1_epi32(*step.add(i) as i32));
                        acc[0] = _mm512_dpbf16_ps(acc[0], ai, b0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], ai, b1);
                    }
                }
            }
            let masks = [
                lanes(self.cols.min(16)),
                lanes(self.cols.saturating_sub(16)),
            ];
            let beta = _mm512_set1_ps(self.beta);
            for (i, acc) in acc.iter().enumerate() {
                if i >= self.rows {
                    break;
                }
                for (h, acc) in acc.iter().enumerate() {
                    // SAFETY: the masked lanes lie inside the tile's row (caller).
                    unsafe {
                        let at = self.c.add(i * self.stride + 16 * h);
                        let v = if self.overwrite {
                            _mm512_mul_ps(beta, *acc)
                        } else {
                            _mm512_fmadd_ps(beta, *acc, _mm512_maskz_loadu_ps(masks[h], at))
                        };
                        _mm512_mask_storeu_ps(at, masks[h], v);
                    }
                }
            }
        }
    }

    /// A mask of the first `n` of 16 lanes.
    fn lanes(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
    }

    /// Panel `j` of `b` packed as [`pack_b_scalar`] packs it; with vector loads and
    /// conversions where `b`'s rows are contiguous.
    ///
    /// # Safety
    /// Every element of `b` is readable; the CPU has the instructions.
    #[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
    unsafe fn pack_b(b: Operand, k: usize, n: usize, j: usize, out: &mut [u16]) {
        if b.cols != 1 {
            // SAFETY: the caller's contract.
            return unsafe { pack_b_scalar(b, k, n, j, out) };
        }
        // Output lane 2q takes input lane q (row 2p), lane 2q + 1 input lane 16 + q (row 2p+1).
        let interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        for (p, pair) in out.chunks_exact_mut(2 * NR).enumerate() {
            for h in 0..2 {
                let c = j * NR + 16 * h;
                let mask = lanes(n.saturating_sub(c));
                // SAFETY: masked loads read inside rows 2p and 2p + 1 of `b` only.
                unsafe {
                    let even = b_row(b, 2 * p, k, c, mask);
                    let odd = b_row(b, 2 * p + 1, k, c, mask);
                    let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(odd, even));
                    let v = _mm512_permutexvar_epi16(interleave, both);
                    _mm512_storeu_si512(pair.as_mut_ptr().add(32 * h).cast(), v);
                }
            }
        }
    }

    /// The `mask`ed lanes of row `r` of `b` from column `c`; zeros past row `k`.
    ///
    /// # Safety
    /// The masked lanes of the row lie inside `b`; the CPU has the instructions.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn b_row(b: Operand, r: usize, k: usize, c: usize, mask: __mmask16) -> __m512 {
        if r >= k || mask == 0 {
            return _mm512_setzero_ps();
        }
        // SAFETY: the caller's contract.
        unsafe { _mm512_maskz_loadu_ps(mask, b.ptr.offset(r as isize * b.rows).add(c)) }
    }

    /// Rows `rows` of `a`, pairs `p0..p1`, packed as [`pack_a_scalar`] packs them; with
    /// vector loads and conversions where `a`'s rows are contiguous.
    ///
    /// # Safety
    /// Every element of `a` is readable; the CPU has the instructions.
    #[target_feature(enable = "avx512bf16,avx512f,avx512bw")]
    unsafe fn pack_a(
        a: Operand,
        (m, k): (usize, usize),
        rows: std::ops::Range<usize>,
        (p0, p1): (usize, usize),
        out: &mut [u32],
    ) {
        if a.cols != 1 {
            // SAFETY: the caller's contract.
            return unsafe { pack_a_scalar(a, (m, k), rows, (p0, p1), out) };
        }
        let kb = p1 - p0;
        let mut pairs = [0u32; 16];
        for (g, group) in out.chunks_exact_mut(kb * MR).enumerate() {
            for i in 0..MR {
                let r = rows.start + g * MR + i;
                if r >= rows.end {
                    for s in 0..kb {
                        group[s * MR + i] = 0;
                    }
                    continue;
                }
                // SAFETY: row r of `a` exists (r < rows.end ≤ m).
                let row = unsafe { a.ptr.offset(r as isize * a.rows) };
                for s0 in (0..kb).step_by(16) {
                    let c = 2 * (p0 + s0);
                    let left = k - c.min(k);
                    // SAFETY: masked loads read inside row r only.
                    unsafe {
                        let lo = _mm512_maskz_loadu_ps(lanes(left), row.add(c));
                        let hi = _mm512_maskz_loadu_ps(
                            lanes(left.saturating_sub(16)),
                            row.wrapping_add(c + 16.min(left)),
                        );
                        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                        _mm512_storeu_si512(pairs.as_mut_ptr().cast(), v);
                    }
                    for (s, pair) in pairs.iter().enumerate().take((kb - s0).min(16)) {
                        group[(s0 + s) * MR + i] = *pair;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix in a buffer with its strides (`rows × cols` elements, read through them).
    struct Matrix {
        data: Vec<f32>,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    }

    impl Matrix {
        /// Values in [-1, 1) from a seed; row-major with `pad` extra elements per row, or
        /// column-major (a transposed view) when `transposed`.
        fn new(rows: usize, cols: usize, seed: u64, pad: usize, transposed: bool) -> Self {
            let (outer, inner) = if transposed {
                (cols, rows)
            } else {
                (rows, cols)
            };
            let mut state = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let data = (0..outer * (inner + pad))
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let (row_stride, col_stride) = if transposed {
                (1, inner + pad)
            } else {
                (inner + pad, 1)
            };
            Self {
                data,
                rows,
                cols,
                row_stride,
                col_stride,
            }
        }

        fn at(&self, r: usize, c: usize) -> f32 {
            self.data[r * self.row_stride + c * self.col_stride]
        }

        fn operand(&self) -> Operand {
            Operand::new(
                self.data.as_ptr(),
                self.row_stride as isize,
                self.col_stride as isize,
            )
        }
    }

    /// `(Σ a·b, Σ |a·b|)` per element in f64, of the operands rounded to bf16 when `bf16`.
    fn reference(a: &Matrix, b: &Matrix, bf16: bool) -> Vec<(f64, f64)> {
        let r = |x: f32| f64::from(if bf16 { round_bf16(x) } else { x });
        let mut out = Vec::new();
        for i in 0..a.rows {
            for j in 0..b.cols {
                let (mut s, mut abs) = (0.0, 0.0);
                for p in 0..a.cols {
                    let t = r(a.at(i, p)) * r(b.at(p, j));
                    s += t;
                    abs += t.abs();
                }
                out.push((s, abs));
            }
        }
        out
    }

    /// Runs the bf16 product at `precision` on `a · b` into a destination of rows `n + 3`
    /// apart, starting from `start` when `accumulate`, and checks it against the scalar
    /// reference (f32 summation-order tolerance) and against the f32 product (bf16's
    /// rounding bound).
    fn check(
        precision: Precision,
        a: &Matrix,
        b: &Matrix,
        accumulate: bool,
        beta: f32,
        parallel: bool,
    ) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let ld = n + 3;
        let start: Vec<f32> = (0..m * ld).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
        let mut dst = start.clone();
        // SAFETY: the buffers hold the matrices; dst is exclusively ours.
        unsafe {
            product(
                precision,
                m,
                n,
                k,
                dst.as_mut_ptr(),
                ld,
                accumulate,
                a.operand(),
                b.operand(),
                beta,
                parallel,
            )
        };
        let exact = reference(a, b, true);
        let plain = reference(a, b, false);
        for i in 0..m {
            for j in 0..n {
                let got = f64::from(dst[i * ld + j]);
                let base = if accumulate {
                    f64::from(start[i * ld + j])
                } else {
                    0.0
                };
                let (s, abs) = exact[i * n + j];
                let beta = f64::from(beta);
                let tol =
                    (k as f64 + 2.0) * 2f64.powi(-23) * (beta.abs() * abs + base.abs()) + 1e-30;
                let want = base + beta * s;
                assert!(
                    (got - want).abs() <= tol,
                    "{precision} {m}×{k}·{k}×{n} ({i}, {j}): {got} vs reference {want} (tolerance {tol})"
                );
                // Each operand is within 2⁻⁸ of its value (8 significant bits): a product within 2⁻⁷.
                let (f, f_abs) = plain[i * n + j];
                let bound = 2f64.powi(-7) * 1.01 * beta.abs() * f_abs + 2.0 * tol;
                assert!(
                    (got - (base + beta * f)).abs() <= bound,
                    "{precision} {m}×{k}·{k}×{n} against f32 at ({i}, {j}): {got} vs {} (bound {bound})",
                    base + beta * f
                );
            }
            // Nothing beyond the row's n columns was written.
            assert_eq!(
                dst[i * ld + n..(i + 1) * ld],
                start[i * ld + n..(i + 1) * ld]
            );
        }
    }

    /// The precisions that this CPU runs (hardware bf16 where it has it).
    fn precisions() -> Vec<Precision> {
        let mut p = vec![Precision::Bf16Emulated];
        if has_bf16() {
            p.push(Precision::Bf16);
        }
        p
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // Halfway between 1 and 1 + 2⁻⁷: to even (1); just above it: up.
        assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(
            round_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        // Halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: to even (1 + 2⁻⁶).
        assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(round_bf16(-3.0), -3.0);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(1e-40).to_bits(), 0);
        assert_eq!(round_bf16(-1e-40).to_bits(), (-0.0f32).to_bits());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn scalar_rounding_is_the_instructions() {
        if !has_bf16() {
            return;
        }
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            1e-40,
            -1e-40,
            1.2e-38,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            3.4e38,
            65504.0,
            0.1,
            -0.3,
        ];
        values.extend((0..4000u32).map(|i| f32::from_bits(i.wrapping_mul(2654435761))));
        for chunk in values.chunks(16) {
            let mut x = [0.0f32; 16];
            x[..chunk.len()].copy_from_slice(chunk);
            let mut got = [0u16; 32];
            // SAFETY: the CPU has the instructions (checked above).
            unsafe { hardware_round(&x, &mut got) };
            for (v, h) in x.iter().zip(&got) {
                assert_eq!(*h, to_bf16(*v), "{v:e} ({:#010x})", v.to_bits());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bf16,avx512f")]
    unsafe fn hardware_round(x: &[f32; 16], out: &mut [u16; 32]) {
        use std::arch::x86_64::*;
        // SAFETY: 16 values in, 32 out.
        unsafe {
            let v = _mm512_loadu_ps(x.as_ptr());
            let h: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(v, v));
            _mm512_storeu_si512(out.as_mut_ptr().cast(), h);
        }
    }

    #[test]
    fn matches_the_reference_on_awkward_shapes() {
        let shapes = [
            (1, 1, 1),
            (1, 33, 7),
            (13, 1, 5),
            (17, 45, 31),
            (12, 32, 32),
            (25, 300, 70),
            (400, 9, 40),
        ];
        for precision in precisions() {
            for (s, &(m, k, n)) in shapes.iter().enumerate() {
                let seed = s as u64;
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = Matrix::new(m, k, seed, 2, ta);
                    let b = Matrix::new(k, n, seed + 100, 1, tb);
                    check(precision, &a, &b, false, 1.0, false);
                }
                let a = Matrix::new(m, k, seed, 0, false);
                let b = Matrix::new(k, n, seed + 7, 0, false);
                check(precision, &a, &b, true, 0.5, false);
                check(precision, &a, &b, false, -0.25, false);
            }
        }
    }

    #[test]
    fn parallel_tasks_match_the_reference() {
        for precision in precisions() {
            let a = Matrix::new(203, 261, 1, 1, false);
            let b = Matrix::new(261, 197, 2, 0, false);
            check(precision, &a, &b, false, 1.0, true);
            check(precision, &a, &b, true, 2.0, true);
            let at = Matrix::new(203, 261, 3, 0, true);
            check(precision, &at, &b, false, 1.0, true);
        }
    }

    #[test]
    fn empty_inner_dimension_writes_zeros_or_keeps() {
        for precision in precisions() {
            let a = Matrix::new(3, 0, 1, 0, false);
            let b = Matrix::new(0, 4, 1, 0, false);
            check(precision, &a, &b, false, 1.0, false);
            check(precision, &a, &b, true, 1.0, false);
        }
    }

    #[test]
    fn tasks_cover_the_destination_once() {
        for (m, n, parallel) in [
            (1usize, 1usize, true),
            (816, 512, true),
            (2048, 2048, true),
            (50, 700, false),
            (13, 33, true),
        ] {
            let mut seen = vec![0u8; m * n.div_ceil(NR)];
            for t in tasks(m, n, parallel) {
                assert!(t.rows.start % MR == 0 && t.rows.len() <= MC.max(MR));
                for r in t.rows.clone() {
                    for j in t.panels.clone() {
                        seen[r * n.div_ceil(NR) + j] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{m} × {n}");
        }
    }
}
