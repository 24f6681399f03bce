//! The one counting global allocator of the workspace's measurements: the
//! allocation tests (`tests/alloc.rs`, `crates/volley-tokio/tests/alloc.rs`)
//! and the bench's per-side allocation counts (`cargo xtask bench`).
//!
//! It counts, per thread, the allocation calls (`alloc`, `alloc_zeroed`,
//! `realloc`) and the bytes they asked for, so a test harness's or a peer
//! thread's allocations never disturb a measurement. A binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: volley_tests::alloc::CountingAlloc = volley_tests::alloc::CountingAlloc;
//! ```
//!
//! and reads [`thread_allocs`] / [`thread_alloc_bytes`] before and after
//! the code it measures, or wraps it in [`count_allocations`]. Without the
//! `#[global_allocator]` line the counters stay at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocation calls made by this thread.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Bytes those calls asked for (`realloc`: the new size).
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting per thread. Const-initialised
/// thread-locals without a destructor never allocate, so counting cannot
/// recurse.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[inline]
fn note(bytes: usize) {
    // `try_with` fails only during thread teardown; an allocation then is
    // not in any measurement window.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counting touches only
// const-initialised thread-local `Cell`s (neither allocates).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours (non-zero-size `layout`).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocation calls this thread has made so far.
pub fn thread_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Bytes this thread's allocation calls have asked for so far.
pub fn thread_alloc_bytes() -> u64 {
    BYTES.with(Cell::get)
}

/// Allocation calls this thread makes while `f` runs.
pub fn count_allocations(f: impl FnOnce()) -> u64 {
    let before = thread_allocs();
    f();
    thread_allocs() - before
}
