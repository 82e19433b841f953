//! Process-wide settings that make the CPU backends faster.

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
