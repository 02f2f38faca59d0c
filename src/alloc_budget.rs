//! Counts the bytes each thread holds, so the script sandbox can bound what
//! a call builds however it builds it.
//!
//! Rhai's own limits count entries and string lengths but not map keys (a
//! map of 10,000 keys of 64 KiB each passed them). Instead of chasing each
//! kind of value, the global allocator keeps a per-thread count of live heap
//! bytes; a script call notes the count when it starts and is stopped when
//! it grows past `scripts.max_memory_bytes`. A script runs on one thread
//! from start to end, so the count sees everything it allocates. The cost is
//! one thread-local add per allocation.

use std::alloc::{GlobalAlloc, Layout};

/// The allocator every allocation goes to; the counting is on top. mimalloc,
/// not glibc's malloc: a read allocates and frees dozens of small blocks,
/// and with it GET members serves about a fifth more requests per second at
/// the same idle RSS (benches/analysis.md, "The allocator").
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::cell::Cell;

pub struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn add(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; then the
    // count simply stops, which nothing relies on.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get().wrapping_add(delta)));
}

/// Heap bytes allocated minus freed by this thread so far (may be negative
/// when it frees what others allocated).
pub fn thread_live_bytes() -> isize {
    LIVE_BYTES.try_with(|c| c.get()).unwrap_or(0)
}

/// mimalloc 2's `mi_option_purge_delay` (its `mi_option_e`, in the order of
/// `include/mimalloc.h`; the crate's constants do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc give freed pages back to the system at once instead of
/// 10 ms later, unless the operator set `MIMALLOC_PURGE_DELAY`: with
/// 300,000 members the daemon then holds 106–116 MiB after start-up
/// instead of 126–135, and 129 after the read runs instead of 134–137,
/// with the same read throughput (benches/analysis.md). Called first thing
/// in `main`.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads at each
        // purge; any value is valid for this one.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// The alignment every mimalloc block has whatever its size (a machine
/// word): layouts that ask no more take `mi_malloc`, which skips the
/// alignment checks of `mi_malloc_aligned` that `MiMalloc` calls for every
/// layout (about a fortieth of a cached read's instructions went there).
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: every method forwards to mimalloc unchanged and only
// updates a counter (a const-initialised thread-local without destructor,
// which allocates nothing).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = if layout.align() <= WORD_ALIGN {
            // SAFETY: any size is valid; mimalloc's blocks are word-aligned.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { INNER.alloc(layout) }
        };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = if layout.align() <= WORD_ALIGN {
            // SAFETY: as in `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { INNER.alloc_zeroed(layout) }
        };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { INNER.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = if layout.align() <= WORD_ALIGN {
            // SAFETY: `ptr` came from this allocator with this layout; a
            // block mimalloc moves stays word-aligned.
            unsafe {
                libmimalloc_sys::mi_realloc(ptr as *mut std::ffi::c_void, new_size) as *mut u8
            }
        } else {
            unsafe { INNER.realloc(ptr, layout, new_size) }
        };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc's current purge delay, in milliseconds.
    fn purge_delay_ms() -> std::ffi::c_long {
        // SAFETY: reads one of mimalloc's options.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    /// The option set is mimalloc's purge delay: 10 ms by default (its
    /// header says so), 0 once the daemon asks for prompt returns. A
    /// mimalloc whose options moved would fail here, not set another.
    #[test]
    fn freed_memory_goes_back_at_once_unless_the_operator_says_otherwise() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 10);
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), 0);
    }

    #[test]
    fn counts_what_this_thread_holds() {
        let before = thread_live_bytes();
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        assert!(thread_live_bytes() - before >= 1 << 20);
        drop(v);
        assert!(thread_live_bytes() - before < 1 << 10);
    }
}
