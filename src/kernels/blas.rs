//! The matrix product through OpenBLAS's `cblas_sgemm` (cargo feature `openblas`; Debian:
//! `libopenblas-dev`), in place of the `gemm` crate for every view with a unit stride.
//!
//! OpenBLAS runs on one thread per call here: a product that [`product`](super::product)
//! runs on the whole machine is split into blocks of rows (or columns), one per thread of our
//! rayon pool. OpenBLAS's own pool would otherwise spin beside ours on the same cores, and its
//! thread count is one global setting that cannot be lowered around the attention core's
//! per-pair products, which run on our pool's threads. docs/performance.md has the
//! measurements behind this.

use std::ffi::{CStr, c_char, c_int};
use std::sync::Once;

use rayon::prelude::*;

use super::{PARALLEL_PRODUCT, View};

/// `CBLAS_ORDER::CblasRowMajor`.
const ROW_MAJOR: c_int = 101;
/// `CBLAS_TRANSPOSE::CblasNoTrans`.
const NO_TRANS: c_int = 111;
/// `CBLAS_TRANSPOSE::CblasTrans`.
const TRANS: c_int = 112;

#[link(name = "openblas")]
unsafe extern "C" {
    /// `C ← alpha · op(A) · op(B) + beta · C`, all three matrices row-major here.
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    /// The name of the kernel family OpenBLAS chose for this CPU (a static string).
    fn openblas_get_corename() -> *const c_char;
    /// The number of threads OpenBLAS's own pool uses.
    fn openblas_get_num_threads() -> c_int;
    /// Sets the number of threads OpenBLAS's own pool uses (for the whole process).
    fn openblas_set_num_threads(threads: c_int);
}

/// Sets OpenBLAS to one thread per call, once per process.
fn single_threaded() {
    static ONCE: Once = Once::new();
    // SAFETY: a plain setting, made before this module's first product.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

/// The kernel family OpenBLAS runs on this CPU (`SkylakeX`, `Cooperlake`, `Haswell`, …) and
/// its thread count, for bench reports.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn describe() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
    let core = unsafe { CStr::from_ptr(openblas_get_corename()) };
    // SAFETY: a plain query of OpenBLAS's configuration.
    let threads = unsafe { openblas_get_num_threads() };
    format!("{} core, {threads} threads", core.to_string_lossy())
}

/// How `cblas_sgemm` reads a `rows × cols` view in row-major order: transposed or not, and
/// its leading dimension; `None` when neither stride is 1 (or a value does not fit a C int).
fn operand(v: View, rows: usize, cols: usize) -> Option<(c_int, c_int)> {
    // A single row or column has one meaningful stride: the other is free to be anything.
    let (trans, ld, min_ld) = if v.col_stride == 1 || cols == 1 {
        let ld = if rows == 1 {
            cols as isize
        } else {
            v.row_stride
        };
        (NO_TRANS, ld, cols)
    } else if v.row_stride == 1 || rows == 1 {
        let ld = if cols == 1 {
            rows as isize
        } else {
            v.col_stride
        };
        (TRANS, ld, rows)
    } else {
        return None;
    };
    let ld = c_int::try_from(ld).ok()?;
    (ld >= min_ld.max(1) as c_int).then_some((trans, ld))
}

/// One `cblas_sgemm` call: `dst ← keep · dst + alpha · a · b`, row-major, with the
/// transpositions and leading dimensions that [`operand`] found.
#[derive(Clone, Copy)]
struct Call {
    a: View,
    trans_a: c_int,
    lda: c_int,
    b: View,
    trans_b: c_int,
    ldb: c_int,
    dst: *mut f32,
    ldc: c_int,
    alpha: f32,
    keep: f32,
}

// SAFETY: the blocks of one product that run on several threads write disjoint parts of
// `dst` and only read `a` and `b` (the caller's contract of `product`).
unsafe impl Send for Call {}
// SAFETY: as above.
unsafe impl Sync for Call {}

impl Call {
    /// Runs rows `rows` and columns `cols` of the product of inner size `k`.
    ///
    /// # Safety
    /// The ranges lie within the product; the views and `dst` as for [`product`].
    unsafe fn block(&self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>, k: usize) {
        let a = self
            .a
            .ptr
            .wrapping_offset(rows.start as isize * self.a.row_stride);
        let b = self
            .b
            .ptr
            .wrapping_offset(cols.start as isize * self.b.col_stride);
        let dst = self
            .dst
            .wrapping_add(rows.start * self.ldc as usize + cols.start);
        // Sizes fit a C int: `product` checked the whole product's.
        let (m, n) = (rows.len() as c_int, cols.len() as c_int);
        // SAFETY: the caller's contract; the leading dimensions were checked by `operand`.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                self.trans_a,
                self.trans_b,
                m,
                n,
                k as c_int,
                self.alpha,
                a,
                self.lda,
                b,
                self.ldb,
                self.keep,
                dst,
                self.ldc,
            );
        }
    }
}

/// [`product`](super::product) through `cblas_sgemm`: `dst ← (accumulate ? dst : 0) + beta ·
/// a · b`; when `parallel` and large, in blocks of rows (or of columns, when there are more
/// of them) on the threads of our pool. Returns `false`, having done nothing, when a view has
/// neither a unit row nor a unit column stride, or a size does not fit a C int; the caller
/// then runs the product itself.
///
/// # Safety
/// As for [`product`](super::product).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rows: usize,
    accumulate: bool,
    a: View,
    b: View,
    beta: f32,
    parallel: bool,
) -> bool {
    let (Some((trans_a, lda)), Some((trans_b, ldb))) = (operand(a, m, k), operand(b, k, n)) else {
        return false;
    };
    let ldc = if m == 1 { n } else { dst_rows };
    let fits = |x: usize| c_int::try_from(x).is_ok();
    if !(fits(m) && fits(n) && fits(k) && fits(ldc)) || ldc < n {
        return false;
    }
    single_threaded();
    // BLAS's beta 0 writes the destination without reading it, as `accumulate == false` asks.
    let keep = if accumulate { 1.0 } else { 0.0 };
    let (ldc, alpha) = (ldc as c_int, beta);
    let call = Call {
        a,
        trans_a,
        lda,
        b,
        trans_b,
        ldb,
        dst,
        ldc,
        alpha,
        keep,
    };
    let threads = rayon::current_num_threads();
    if !parallel || threads == 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_PRODUCT {
        // SAFETY: the whole product (the caller's contract).
        unsafe { call.block(0..m, 0..n, k) };
        return true;
    }
    // Blocks of whole 16-wide vectors, split along the longer side of the result.
    let long = m.max(n);
    let step = long.div_ceil(threads).next_multiple_of(16);
    (0..long.div_ceil(step)).into_par_iter().for_each(|i| {
        let part = i * step..((i + 1) * step).min(long);
        // SAFETY: disjoint blocks of the product (see `Call`'s Sync).
        unsafe {
            if m >= n {
                call.block(part, 0..n, k)
            } else {
                call.block(0..m, part, k)
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::close_named;

    /// Values that are multiples of 1/8 in [−2, 2]: every sum of their products up to the
    /// sizes below is exact in f32, whatever the order of summation.
    fn exact_values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7 + seed * 13) % 33) as f32 - 16.0) / 8.0)
            .collect()
    }

    /// Pseudo-random values in [−1, 1).
    fn rough_values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A `rows × cols` operand stored row-major (`transposed == false`) or column-major,
    /// with `pad` unused elements after each stored line.
    struct Operand {
        data: Vec<f32>,
        transposed: bool,
        line: usize,
    }

    impl Operand {
        fn new(rows: usize, cols: usize, transposed: bool, pad: usize, values: Vec<f32>) -> Self {
            let (lines, len) = if transposed {
                (cols, rows)
            } else {
                (rows, cols)
            };
            let line = len + pad;
            let mut data = vec![f32::NAN; lines * line];
            for l in 0..lines {
                data[l * line..l * line + len].copy_from_slice(&values[l * len..(l + 1) * len]);
            }
            Self {
                data,
                transposed,
                line,
            }
        }

        fn view(&self) -> View {
            let v = View::rows_at(self.data.as_ptr(), self.line);
            if self.transposed { v.t() } else { v }
        }
    }

    /// The destination after the product through OpenBLAS (on the pool when `parallel`) and
    /// through `gemm`, called as `product` calls it without the feature.
    #[allow(clippy::too_many_arguments)]
    fn both(
        (m, n, k): (usize, usize, usize),
        a: &Operand,
        b: &Operand,
        dst_pad: usize,
        accumulate: bool,
        beta: f32,
        start: &[f32],
        parallel: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let rows = n + dst_pad;
        let mut dst = vec![0.0f32; m * rows];
        for r in 0..m {
            dst[r * rows..r * rows + n].copy_from_slice(&start[r * n..(r + 1) * n]);
        }
        let mut blas = dst.clone();
        let mut reference = dst;
        let (va, vb) = (a.view(), b.view());
        // SAFETY: both operands and destinations are live buffers of the sizes given.
        let done = unsafe {
            product(
                m,
                n,
                k,
                blas.as_mut_ptr(),
                rows,
                accumulate,
                va,
                vb,
                beta,
                parallel,
            )
        };
        assert!(done, "unit-stride views go through OpenBLAS");
        // SAFETY: as above.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                reference.as_mut_ptr(),
                1,
                rows as isize,
                accumulate,
                va.ptr,
                va.col_stride,
                va.row_stride,
                vb.ptr,
                vb.col_stride,
                vb.row_stride,
                1.0f32,
                beta,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        (blas, reference)
    }

    #[test]
    fn equals_gemm_on_awkward_shapes() {
        // The last two are large enough to be split across threads, by rows and by columns.
        let shapes = [
            (1, 1, 1),
            (1, 7, 5),
            (5, 1, 9),
            (3, 5, 1),
            (17, 13, 11),
            (33, 65, 70),
            (257, 230, 131),
            (130, 300, 190),
        ];
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            for flags in 0..64 {
                let (ta, tb) = (flags & 1 != 0, flags & 2 != 0);
                let accumulate = flags & 4 != 0;
                let beta = if flags & 8 != 0 { 0.5 } else { 1.0 };
                let pad = flags >> 4;
                let a = Operand::new(m, k, ta, pad, exact_values(m * k, i));
                let b = Operand::new(k, n, tb, 2 - pad.min(2), exact_values(k * n, i + 1));
                // Without `accumulate` the destination must not be read: NaN would show.
                let start = if accumulate {
                    exact_values(m * n, i + 2)
                } else {
                    vec![f32::NAN; m * n]
                };
                let parallel = flags % 3 == 0;
                let (blas, gemm) = both((m, n, k), &a, &b, pad, accumulate, beta, &start, parallel);
                let what = format!("{m}×{k}·{k}×{n}, flags {flags:#08b}");
                close_named(&what, &blas, &gemm, 0.0);
            }
        }
    }

    #[test]
    fn equals_gemm_within_rounding_on_random_values() {
        let (m, n, k) = (237, 229, 131);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Operand::new(m, k, ta, 3, rough_values(m * k, 1));
            let b = Operand::new(k, n, tb, 0, rough_values(k * n, 2));
            let start = rough_values(m * n, 3);
            let (blas, gemm) = both((m, n, k), &a, &b, 1, true, 0.25, &start, ta);
            close_named(&format!("transposed {ta}, {tb}"), &blas, &gemm, 1e-5);
        }
    }

    #[test]
    fn declines_views_without_a_unit_stride() {
        let data = [1.0f32; 64];
        let strided = View::rows_at(data.as_ptr(), 8);
        let both_strided = View {
            col_stride: 2,
            ..strided
        };
        let mut dst = [0.0f32; 4];
        // SAFETY: every element read is within `data`; `dst` holds the 2 × 2 result.
        let done = unsafe {
            product(
                2,
                2,
                2,
                dst.as_mut_ptr(),
                2,
                false,
                both_strided,
                strided,
                1.0,
                true,
            )
        };
        assert!(!done);
        assert_eq!(dst, [0.0; 4], "nothing written");
    }

    #[test]
    fn names_its_core() {
        let text = describe();
        assert!(text.contains("core") && text.contains("threads"), "{text}");
    }
}
