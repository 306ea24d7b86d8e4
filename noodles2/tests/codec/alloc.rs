//! A counting global allocator for this test binary. It forwards everything to the system
//! allocator and, only on a thread that is inside [`measure`], records the number of bytes
//! requested and the largest single request. Other tests (other threads) are unaffected.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: never touch a thread-local that is being torn down.
    if ACTIVE.try_with(Cell::get).unwrap_or(false) {
        let _ = TOTAL.try_with(|t| t.set(t.get() + size));
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Allocs {
    /// Bytes requested in total (reallocations count their new size).
    pub total: usize,
    /// The largest single request.
    pub largest: usize,
}

/// Run `f` and report the allocations it made on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocs) {
    TOTAL.with(|t| t.set(0));
    LARGEST.with(|l| l.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    (
        r,
        Allocs {
            total: TOTAL.with(Cell::get),
            largest: LARGEST.with(Cell::get),
        },
    )
}

#[test]
fn counting_allocator_sees_this_thread_only() {
    let (v, a) = measure(|| vec![0u8; 10_000]);
    assert_eq!(v.len(), 10_000);
    assert!(a.largest >= 10_000 && a.total >= 10_000, "{a:?}");
    let (_, a) = measure(|| {
        std::thread::spawn(|| vec![0u8; 1 << 20])
            .join()
            .map(|v| v.len())
    });
    assert!(
        a.largest < 1 << 20,
        "another thread's allocation was counted: {a:?}"
    );
}
