//! One matrix product on strided views, through the `gemm` kernel under the flex backend (or
//! OpenBLAS, with the feature `openblas`: `blas.rs`);
//! shared by the [linear layer](super::linear) and the [attention core](super::attention),
//! which read transposes and heads through strides instead of copying them.

use burn::backend::flex::FlexTensor;

#[cfg(feature = "openblas")]
#[path = "blas.rs"]
pub(super) mod blas;

/// Products of fewer multiply-adds than this run on one thread (as the backend decides).
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// A matrix as the product kernel reads it: its first element and its row and column
/// strides, in elements.
#[derive(Clone, Copy)]
pub(super) struct View {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

impl View {
    /// The last two dimensions of `t`.
    pub(super) fn of(t: &FlexTensor) -> Self {
        let layout = t.layout();
        let strides = layout.strides();
        let d = strides.len();
        let data = t.storage::<f32>();
        // The backend keeps views within their buffer: the offset is in bounds.
        let ptr = data[layout.start_offset()..].as_ptr();
        Self {
            ptr,
            row_stride: strides[d - 2],
            col_stride: strides[d - 1],
        }
    }

    /// Rows of contiguous elements in the buffer of `t`, the first at element `offset`,
    /// each `row_stride` after the previous (a head inside a projection, say).
    pub(super) fn rows(t: &FlexTensor, offset: usize, row_stride: usize) -> Self {
        Self::rows_at(t.storage::<f32>().as_ptr().wrapping_add(offset), row_stride)
    }

    /// Rows of contiguous elements from `ptr`, each `row_stride` after the previous.
    pub(super) fn rows_at(ptr: *const f32, row_stride: usize) -> Self {
        Self {
            ptr,
            row_stride: row_stride as isize,
            col_stride: 1,
        }
    }

    /// The view as the bf16 product reads it.
    fn operand(self) -> super::bf16::Operand {
        super::bf16::Operand::new(self.ptr, self.row_stride, self.col_stride)
    }

    /// The transposed matrix (a view: strides swapped).
    pub(super) fn t(self) -> Self {
        Self {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst ← (accumulate ? dst : 0) + beta · a · b` for `a` `[m, k]`, `b` `[k, n]` and `dst`
/// `[m, n]` with rows `dst_rows` apart; on the thread pool when `parallel` and the product
/// is large, on the calling thread otherwise.
///
/// # Safety
/// `a` and `b` must address `m × k` and `k × n` matrices of live f32 values; `dst` must be
/// valid for writes of its `m × n` elements (and initialized when `accumulate`), overlap
/// neither operand, and not be touched by another thread meanwhile.
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
) {
    let precision = crate::runtime::Precision::current();
    if precision.is_bf16() {
        let (a, b) = (a.operand(), b.operand());
        // SAFETY: the caller's contract, passed on.
        unsafe {
            super::bf16::product(
                precision, m, n, k, dst, dst_rows, accumulate, a, b, beta, parallel,
            )
        };
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // An empty sum is zero.
            for r in 0..m {
                // SAFETY: row r of the destination is valid for n writes (caller).
                unsafe { std::ptr::write_bytes(dst.add(r * dst_rows), 0, n) };
            }
        }
        return;
    }
    // Through OpenBLAS where it takes the views (feature `openblas`): see `blas`.
    // SAFETY: the caller's contract, which `blas::product` shares.
    #[cfg(feature = "openblas")]
    if unsafe { blas::product(m, n, k, dst, dst_rows, accumulate, a, b, beta, parallel) } {
        return;
    }
    let parallelism = if parallel && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_PRODUCT {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract; `gemm` reads `dst` only when `accumulate`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rows as isize,
            accumulate,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            1.0f32,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}
/// Seconds of each of `iters` `[m, k] · [k, n]` products (after one warm-up) through
/// [`product`] at the calling thread's precision, on the pool, as `clock` counts them.
pub(crate) fn time_product(
    (m, k, n): (usize, usize, usize),
    iters: usize,
    clock: fn() -> f64,
) -> Vec<f64> {
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104729) % 997) as f32 / 498.5 - 1.0)
        .collect();
    let mut c = vec![0.0f32; m * n];
    let mut times = Vec::new();
    for i in 0..=iters {
        let start = clock();
        // SAFETY: `a` holds m × k values, `b` k × n, `c` m × n; `c` is exclusively ours.
        unsafe {
            product(
                m,
                n,
                k,
                c.as_mut_ptr(),
                n,
                false,
                View::rows_at(a.as_ptr(), k),
                View::rows_at(b.as_ptr(), n),
                1.0,
                true,
            )
        };
        if i > 0 {
            times.push(clock() - start);
        }
    }
    std::hint::black_box(&c);
    times
}
