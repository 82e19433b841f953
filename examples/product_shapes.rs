//! Matrix-product rates on the shapes of the seed model's linear layers (batch 16: 816 tile
//! rows, 1616 gene rows) and of the attention core's per-pair products, against the 2048²
//! rate, in GFLOP/s, two rounds, each product path timed in turn within a round.
//!
//! `cargo run --release --example product_shapes [-- ROUNDS]`; with `--features openblas`
//! OpenBLAS's `cblas_sgemm` is timed beside the `gemm` crate. Columns:
//!
//! - `flex`: Burn's flex backend's `matmul` (the `gemm` crate behind Burn's tensor);
//! - `gemm`: the `gemm` crate called as `src/kernels/product.rs` calls it (row-major views,
//!   the rayon pool for products of 192³ multiply-adds or more);
//! - `openblas`: `cblas_sgemm` as the crate's `openblas` path calls it (feature `openblas`):
//!   one OpenBLAS thread per block of rows, the blocks on the rayon pool;
//! - `openblas-pool`: `cblas_sgemm` on OpenBLAS's own pool of as many threads.
//!
//! The attention shapes run on one thread (`gemm` without the pool, OpenBLAS on one thread),
//! as the attention core runs them. `PRODUCT_CLOCK=cpu` times with the process's CPU time
//! instead of the wall clock: with `RAYON_NUM_THREADS=1` this is each kernel's own rate even
//! while other processes share the cores. `benches/torch/product_shapes.py` times PyTorch's
//! products on the linear shapes. Used in docs/performance.md.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// `(rows, inner, columns)`: the 2048² reference, then the seed model's linear layers
/// (query, key/value, output, MLP in and out) for tiles and genes, and two weight-gradient
/// shapes of the backward pass.
const SHAPES: [(usize, usize, usize); 13] = [
    (2048, 2048, 2048),
    (816, 768, 512),
    (816, 768, 1024),
    (816, 512, 768),
    (816, 768, 2048),
    (816, 2048, 768),
    (1616, 768, 512),
    (1616, 768, 1024),
    (1616, 512, 768),
    (1616, 768, 2048),
    (1616, 2048, 768),
    (768, 816, 2048),
    (2048, 816, 768),
];

/// One (bag, head) pair of the attention core, seed model, batch 16: scores `q · kᵀ` and the
/// weighted sum `p · v` for 51 tile tokens and 101 gene tokens, head width 64.
const PAIR_SHAPES: [(usize, usize, usize); 4] =
    [(51, 64, 51), (51, 51, 64), (101, 64, 101), (101, 101, 64)];

/// Products of fewer multiply-adds run on one thread in `src/kernels/product.rs`.
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

#[cfg(feature = "openblas")]
mod openblas {
    use std::ffi::{CStr, c_char, c_int};

    #[link(name = "openblas")]
    unsafe extern "C" {
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
        fn openblas_get_corename() -> *const c_char;
        fn openblas_get_num_threads() -> c_int;
        fn openblas_set_num_threads(threads: c_int);
    }

    /// `c ← a · b`, row-major, on one OpenBLAS thread.
    fn single(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (mi, ni, ki) = (m as c_int, n as c_int, k as c_int);
        // SAFETY: slices of the sizes given.
        unsafe {
            cblas_sgemm(
                101,
                111,
                111,
                mi,
                ni,
                ki,
                1.0,
                a.as_ptr(),
                ki,
                b.as_ptr(),
                ni,
                0.0,
                c.as_mut_ptr(),
                ni,
            )
        };
    }

    /// How the whole machine's products run.
    #[derive(Clone, Copy)]
    pub enum Threads {
        /// One OpenBLAS thread.
        One,
        /// Blocks of rows on the threads of the rayon pool, one OpenBLAS thread each (the
        /// crate's `openblas` path).
        Split,
        /// OpenBLAS's own pool, as many threads as the rayon pool has.
        Pool,
    }

    /// `c ← a · b`, row-major.
    pub fn product(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        threads: Threads,
    ) {
        use rayon::prelude::*;
        let pool = rayon::current_num_threads();
        match threads {
            Threads::One => single(m, n, k, a, b, c),
            Threads::Split => {
                let step = m.div_ceil(pool).next_multiple_of(16);
                c.par_chunks_mut(step * n)
                    .zip(a.par_chunks(step * k))
                    .for_each(|(c, a)| single(c.len() / n, n, k, a, b, c));
            }
            Threads::Pool => {
                // SAFETY: plain settings, around a call made from this thread only.
                unsafe { openblas_set_num_threads(pool as c_int) };
                single(m, n, k, a, b, c);
                // SAFETY: as above.
                unsafe { openblas_set_num_threads(1) };
            }
        }
    }

    /// Sets OpenBLAS to one thread per call (as the crate's `openblas` path does).
    pub fn init() {
        // SAFETY: a plain setting, before any product.
        unsafe { openblas_set_num_threads(1) };
    }

    /// OpenBLAS's kernel family and thread count.
    pub fn describe() -> String {
        // SAFETY: a static string and a plain query.
        unsafe {
            let core = CStr::from_ptr(openblas_get_corename()).to_string_lossy();
            format!(
                "OpenBLAS core {core}, {} threads",
                openblas_get_num_threads()
            )
        }
    }
}

/// `c ← a · b`, row-major, through `gemm` as `src/kernels/product.rs` calls it.
fn gemm_product(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], parallel: bool) {
    let parallelism = if parallel && m * n * k >= PARALLEL_PRODUCT {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: slices of the sizes given; `c` overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
}

/// Seconds now on the clock chosen by `PRODUCT_CLOCK`: `cpu` (the process's CPU time: on one
/// thread, the kernel's rate even while other processes share the cores) or wall time.
fn now() -> f64 {
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if *CPU.get_or_init(|| std::env::var("PRODUCT_CLOCK").is_ok_and(|v| v == "cpu")) {
        med_crossvit::runtime::cpu_seconds()
    } else {
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
}

/// GFLOP/s of `f` on an `[m, k] · [k, n]` product, median of `iters` after one warm-up.
fn rate(m: usize, k: usize, n: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..=iters {
        let start = now();
        f();
        if i > 0 {
            times.push(now() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    2.0 * (m * k * n) as f64 / times[times.len() / 2] / 1e9
}

/// Values in [0, 1) from a small linear congruential generator.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// One row of the table: every path's rate on one shape.
fn row(round: usize, (m, k, n): (usize, usize, usize), linear: bool, device: &Device) {
    let (a, b) = (values(m * k, 1), values(k * n, 2));
    let mut c = vec![0.0f32; m * n];
    let iters = if linear { 8 } else { 200 };
    let mut line = format!("round {round}  {m:>4} × {k:>4} · {k:>4} × {n:>4}");
    if linear {
        let ta = Tensor::<2>::random([m, k], Distribution::Default, device);
        let tb = Tensor::<2>::random([k, n], Distribution::Default, device);
        let r = rate(m, k, n, iters, || {
            let _ = ta.clone().matmul(tb.clone()).into_data();
        });
        line += &format!("  flex {r:6.1}");
    }
    let mut gemm = || {
        rate(m, k, n, iters, || {
            gemm_product(m, n, k, &a, &b, &mut c, linear)
        })
    };
    #[cfg(feature = "openblas")]
    {
        use openblas::Threads;
        // The paths take turns going first, round by round.
        let mut c2 = vec![0.0f32; m * n];
        let mut blas = |t| {
            rate(m, k, n, iters, || {
                openblas::product(m, n, k, &a, &b, &mut c2, t)
            })
        };
        if linear {
            let (g, split, pool) = if round % 2 == 1 {
                let g = gemm();
                let split = blas(Threads::Split);
                (g, split, blas(Threads::Pool))
            } else {
                let pool = blas(Threads::Pool);
                let split = blas(Threads::Split);
                (gemm(), split, pool)
            };
            line += &format!("  gemm {g:6.1}  openblas {split:6.1}  openblas-pool {pool:6.1}");
        } else {
            let (g, one) = if round % 2 == 1 {
                let g = gemm();
                (g, blas(Threads::One))
            } else {
                let one = blas(Threads::One);
                (gemm(), one)
            };
            line += &format!("  gemm {g:6.1}  openblas {one:6.1}");
        }
    }
    #[cfg(not(feature = "openblas"))]
    {
        line += &format!("  gemm {:6.1}", gemm());
    }
    println!("{line}  GFLOP/s");
}

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let device = Device::flex();
    println!(
        "rayon threads: {}; clock: {}",
        rayon::current_num_threads(),
        std::env::var("PRODUCT_CLOCK").unwrap_or_else(|_| "wall".into())
    );
    #[cfg(feature = "openblas")]
    openblas::init();
    #[cfg(feature = "openblas")]
    println!(
        "{} (OPENBLAS_CORETYPE={})",
        openblas::describe(),
        std::env::var("OPENBLAS_CORETYPE").unwrap_or_default()
    );
    for round in 1..=rounds {
        println!("linear layers (whole machine):");
        for &shape in &SHAPES {
            row(round, shape, true, &device);
        }
        println!("attention pairs (one thread):");
        for &shape in &PAIR_SHAPES {
            row(round, shape, false, &device);
        }
    }
}
