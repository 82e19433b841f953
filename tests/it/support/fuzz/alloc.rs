//! A counting global allocator: live bytes, and their peak while one input is parsed.
//!
//! The binary that fuzzes installs [`Counting`] as its `#[global_allocator]`. [`arm`] before
//! an input sets its budget; [`disarm`] after it returns the peak. An allocation that would
//! pass eight times the budget is refused (null: Rust then aborts the process, which the
//! harness's supervisor records as an over-allocation) so that a file that claims 10^12
//! elements cannot take the machine down; smaller excesses are let through and reported by
//! the caller from the peak, so the run goes on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static BASE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static HARD: AtomicUsize = AtomicUsize::new(usize::MAX);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting.
pub struct Counting;

impl Counting {
    /// Counts `size` more bytes, or refuses them past the hard limit.
    fn take(size: usize) -> bool {
        let live = LIVE.fetch_add(size, Relaxed).saturating_add(size);
        let above = live.saturating_sub(BASE.load(Relaxed));
        if above > HARD.load(Relaxed) {
            LIVE.fetch_sub(size, Relaxed);
            REFUSED.store(size, Relaxed);
            return false;
        }
        PEAK.fetch_max(live, Relaxed);
        true
    }
}

// SAFETY: every call is forwarded to `System` with the same layout; the counters never
// unwind or allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::take(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::take(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Relaxed);
        }
        new
    }
}

/// Starts measuring one input, whose allocations should stay under `budget` bytes above what
/// is live now. Allocations past eight times the budget are refused.
pub fn arm(budget: usize) {
    let live = LIVE.load(Relaxed);
    BASE.store(live, Relaxed);
    PEAK.store(live, Relaxed);
    REFUSED.store(0, Relaxed);
    HARD.store(budget.saturating_mul(8), Relaxed);
}

/// Stops measuring; the peak of live bytes above the start, since [`arm`].
pub fn disarm() -> usize {
    HARD.store(usize::MAX, Relaxed);
    PEAK.load(Relaxed).saturating_sub(BASE.load(Relaxed))
}

/// The size of the last refused allocation, 0 if none since [`arm`].
pub fn refused() -> usize {
    REFUSED.load(Relaxed)
}

/// The budget of an input of `bytes` bytes (plus the fixed files read beside it): 64 MiB and
/// 64 times the bytes read.
pub fn budget_for(bytes: u64) -> usize {
    (64usize << 20).saturating_add((bytes as usize).saturating_mul(64))
}
