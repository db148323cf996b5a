//! "No allocation per batch": a counting global allocator watches `start_epoch` and
//! `next_batch` over several epochs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hdm_runtime::data::{Batcher, Dataset};
use ndarray::{Array1, Array2};

struct Counting;

thread_local! {
    // Counts only this thread's allocations, so the test harness's threads cannot disturb it.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the slot is gone while a thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn batches_do_not_allocate() {
    let n = 1003; // not a multiple of the batch size: the partial last batch is exercised too
    let images = Array2::from_shape_fn((n, 784), |(i, j)| ((i * 31 + j) % 256) as f32 / 255.0);
    let labels = Array1::from_shape_fn(n, |i| i % 10);
    let data = Dataset::new(images, labels, 28, 28).unwrap();

    // The counter works: making the batcher allocates its buffers.
    let before = allocations();
    let mut batches = Batcher::new(&data, 100, 42).unwrap();
    assert!(allocations() > before, "the counting allocator does not see allocations");

    let mut checksum = 0.0f32;
    let mut seen = 0usize;
    let before = allocations();
    for epoch in 0..3 {
        batches.start_epoch(epoch);
        while let Some(b) = batches.next_batch() {
            checksum += b.x[[0, 0]] + b.labels[b.len() - 1] as f32;
            seen += b.len();
        }
    }
    let during = allocations() - before;
    assert_eq!(seen, 3 * n);
    assert!(checksum.is_finite());
    assert_eq!(during, 0, "{during} allocations during 3 epochs of batches");
}
