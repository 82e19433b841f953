//! Process-wide settings that make the CPU backends faster, and the precision of the matrix
//! products ([`Precision`]: f32, or bf16 where the CPU has it; docs/precision.md).

/// Tells glibc's allocator to keep freed memory for reuse (Linux with glibc; elsewhere a
/// no-op). Returns whether the settings were applied.
///
/// By default glibc hands every freed block larger than its (adaptive) mmap threshold back to
/// the kernel, and the next tensor of that size faults in freshly zeroed pages: at the seed
/// size that page clearing was ~7 % of a training step's CPU time. This fixes the mmap
/// threshold at its 32 MB maximum and stops trimming the heap, so activation buffers are
/// reused. Measured with `med-crossvit bench` (which calls it): seed forward pass ~10 %
/// faster, peak resident memory unchanged (docs/performance.md).
///
/// Call it once, early, before other threads allocate. Setting the environment variable
/// `MED_CROSSVIT_KEEP_FREED_MEMORY=0` turns it off (then glibc's own settings, including its
/// `MALLOC_*` environment variables, apply).
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("MED_CROSSVIT_KEEP_FREED_MEMORY").is_some_and(|v| v == "0") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The precision of the matrix products under the flex backend's model kernels (the linear
/// layers and the attention core): operands and outputs stay f32 in memory either way.
///
/// - `F32` (the default): f32 products as before.
/// - `Bf16`: each operand rounded to bf16 (round to nearest even; f32 subnormals flushed to
///   zero), the products summed in f32 and the result written in f32 — the arithmetic of
///   AVX512_BF16's `vdpbf16ps`, which runs it at twice the f32 multiply-add rate. Needs a
///   CPU with AVX512_BF16 ([`Precision::check`]).
/// - `Bf16Emulated`: the same rounding of the operands on any CPU, the products then run
///   as f32 products of the rounded values (no faster than `F32`): to see bf16's accuracy
///   where the CPU lacks it, and in tests.
///
/// The setting belongs to threads: [`Precision::scope`] runs a closure on a thread pool of its
/// own whose threads all use the precision, so that concurrent work elsewhere in the
/// process (other tests, other models) is not affected. Other devices (wgpu, cuda, ndarray)
/// and Burn's own operations ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 products (the default).
    #[default]
    F32,
    /// bf16 operands, f32 sums, on AVX512_BF16.
    Bf16,
    /// bf16 operands, f32 sums, emulated on any CPU.
    Bf16Emulated,
}

/// A precision that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    /// A name that is not a precision.
    #[error("unknown precision `{name}` (choose f32, bf16 or bf16-emulated)")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// `bf16` on a CPU without the instructions it runs on.
    #[error(
        "--precision bf16 needs a CPU with {missing} (not found on this CPU); \
         `--precision bf16-emulated` gives bf16's results here, at f32's speed or below"
    )]
    Unsupported {
        /// The CPU flags missing, as `/proc/cpuinfo` names them (`avx512_bf16`, `avx512f`).
        missing: String,
    },
}

thread_local! {
    /// The precision of this thread's products.
    static CURRENT: std::cell::Cell<Precision> = const { std::cell::Cell::new(Precision::F32) };
}

impl std::str::FromStr for Precision {
    type Err = PrecisionError;

    /// `f32`, `bf16` or `bf16-emulated` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "bf16-emulated" | "bf16_emulated" => Ok(Self::Bf16Emulated),
            _ => Err(PrecisionError::Unknown { name: s.into() }),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Bf16Emulated => "bf16-emulated",
        })
    }
}

impl Precision {
    /// The precision of the calling thread's products (`F32` outside [`Precision::scope`]).
    pub fn current() -> Self {
        CURRENT.with(|c| c.get())
    }

    /// Whether the products round their operands to bf16.
    pub fn is_bf16(self) -> bool {
        self != Self::F32
    }

    /// `self`, if this CPU can run it: `Bf16` needs AVX512_BF16 and AVX-512 F (the error
    /// names the flags missing); the others run anywhere.
    pub fn check(self) -> Result<Self, PrecisionError> {
        let missing = missing_bf16_flags();
        if self == Self::Bf16 && !missing.is_empty() {
            return Err(PrecisionError::Unsupported {
                missing: missing.join(" and "),
            });
        }
        Ok(self)
    }

    /// Runs `f` with the products at this precision, and returns its result.
    ///
    /// At the calling thread's own precision `f` runs on the calling thread. Otherwise it runs
    /// on a thread pool kept for this precision (built on first use with as many threads as
    /// Rayon's global pool would have, `RAYON_NUM_THREADS` included), so that the parallel
    /// work inside it, which runs on the same pool, uses the precision too. `Bf16` on a CPU
    /// without AVX512_BF16 computes as `Bf16Emulated` (same rounding, slower): call
    /// [`Precision::check`] first to refuse it instead.
    pub fn scope<R: Send>(self, f: impl FnOnce() -> R + Send) -> R {
        if self == Self::current() {
            return f();
        }
        static POOLS: [std::sync::OnceLock<rayon::ThreadPool>; 3] =
            [const { std::sync::OnceLock::new() }; 3];
        let pool = POOLS[self as usize].get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .thread_name(move |i| format!("med-crossvit-{self}-{i}"))
                // As a main thread's: the closure runs whole calls (a forward pass, the
                // f32 product kernel's packing) that the 2 MB default does not hold.
                .stack_size(8 << 20)
                .start_handler(move |_| CURRENT.with(|c| c.set(self)))
                .build()
                .expect("a thread pool starts")
        });
        pool.install(f)
    }
}

/// Seconds of CPU time the process has used, all its threads together (Linux with glibc;
/// elsewhere seconds of wall time since the first call).
pub fn cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to write.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
}

/// The CPU flags that `Precision::Bf16` needs and this CPU lacks (as `/proc/cpuinfo` names
/// them); empty where it has them all.
pub fn missing_bf16_flags() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        if !std::arch::is_x86_feature_detected!("avx512f") {
            missing.push("avx512f");
        }
        if !std::arch::is_x86_feature_detected!("avx512bw") {
            missing.push("avx512bw");
        }
        if !std::arch::is_x86_feature_detected!("avx512bf16") {
            missing.push("avx512_bf16");
        }
        missing
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        vec!["avx512f", "avx512bw", "avx512_bf16 (an x86-64 CPU)"]
    }
}
