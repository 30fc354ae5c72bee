//! Allocation accounting for the property tests: the test binary's global allocator counts, per
//! thread, the bytes a tracked closure holds live, and [`peak_bytes`] runs a closure on a fresh
//! thread and returns the most it held at once.
//!
//! Only the closure's own thread is counted: work that burn hands to its rayon pool is not (every
//! reader here parses on the calling thread, and every loader reads the file there).
//!
//! The bounds: a reader holds at most 4 x the file's size + 32 MiB, a loader 8 x + 48 MiB (the
//! tiny model it builds is part of the constant). Measured worst cases: the safetensors readers
//! under 2 x + 0.4 MiB (`Fixture::open` holds the file and a copy of each tensor), the pickle
//! check about 20 MiB at its memo and stack caps whatever the file, the loaders 1.2 x + 14 MiB.
//! `SF_FUZZ_PEAKS=1` prints every case's peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counting touches only
// thread-locals with constant initialisers (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` on a fresh thread; returns its result and the most bytes it held live at once. A
/// panic in `f` is re-raised here.
pub fn peak_bytes<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (T, u64) {
    std::thread::spawn(move || {
        LIVE.set(0);
        PEAK.set(0);
        ACTIVE.set(true);
        let out = f();
        ACTIVE.set(false);
        (out, PEAK.get().max(0) as u64)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What a reader (header, pickle, fixture) may hold for a file of `file_len` bytes.
pub const fn reader_bound(file_len: u64) -> u64 {
    READER_FACTOR * file_len + READER_SLACK
}

/// What a model loader may hold for a file of `file_len` bytes (the tiny model's own
/// parameters are part of the slack).
pub const fn loader_bound(file_len: u64) -> u64 {
    LOADER_FACTOR * file_len + LOADER_SLACK
}

/// Readers: this many times the file's size ...
pub const READER_FACTOR: u64 = 4;
/// ... plus this many bytes.
pub const READER_SLACK: u64 = 32 << 20;
/// Loaders: this many times the file's size ...
pub const LOADER_FACTOR: u64 = 8;
/// ... plus this many bytes.
pub const LOADER_SLACK: u64 = 48 << 20;

/// Runs `f` tracked and fails if it held more than `bound` bytes; returns its result.
pub fn bounded<T: Send + 'static>(
    what: &str,
    bound: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (out, peak) = peak_bytes(f);
    if std::env::var_os("SF_FUZZ_PEAKS").is_some() {
        eprintln!("PEAK {what}: {peak} of bound {bound}");
    }
    assert!(
        peak <= bound,
        "{what} held {peak} bytes at once, above the bound of {bound}"
    );
    out
}

#[test]
fn the_counter_sees_a_large_allocation() {
    let (len, peak) = peak_bytes(|| vec![1u8; 64 << 20].len());
    assert_eq!(len, 64 << 20);
    assert!(peak >= 64 << 20, "{peak}");
    let (_, small) = peak_bytes(|| 1 + 1);
    assert!(small < 1 << 16, "{small}");
}
