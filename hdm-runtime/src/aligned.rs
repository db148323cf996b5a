//! Memory aligned to cache lines, for the arrays a training step streams through: parameters,
//! gradients, optimizer state and activations.
//!
//! A `Vec<f32>` starts wherever the allocator puts it. glibc gives a buffer above its mmap
//! threshold (128 KB at first) a fresh mapping that begins 16 bytes into a page, so every 64-byte
//! vector of it straddles two cache lines, and every vector load or store touches two lines.
//! On a 2-vCPU AMD EPYC Zen 4 that made the MLP's batch-1 SGD step about 6% slower than the same
//! step with its buffers on the heap (`docs/benchmarks.md`, "Aligned buffers"), and which case a
//! step got depended on what the process had allocated before. PyTorch's CPU allocator and XLA
//! align their buffers to 64 bytes; [`AlignedVec`] does the same for hdm's.

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::Float;

/// The alignment of an [`AlignedVec`]'s first element, in bytes: one cache line, one AVX-512
/// vector.
pub const ALIGN: usize = 64;

/// A fixed-length array of floats whose first element is aligned to [`ALIGN`] (64) bytes.
///
/// It dereferences to a slice (`&[T]`, `&mut [T]`), so it reads like a `Vec` that cannot grow:
/// index it, iterate it, pass `&v[..]` on. [`clone`](Clone::clone) makes an aligned copy.
///
/// ```
/// use hdm_runtime::aligned::{AlignedVec, ALIGN};
/// let mut v = AlignedVec::<f32>::zeroed(1000);
/// v[3] = 2.0;
/// assert_eq!(v.as_ptr() as usize % ALIGN, 0);
/// assert_eq!(v.iter().sum::<f32>(), 2.0);
/// assert_eq!(AlignedVec::from(vec![1.0f32, 2.0]), [1.0, 2.0][..]);
/// ```
pub struct AlignedVec<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: an `AlignedVec` owns its elements like a `Box<[T]>`.
unsafe impl<T: Send> Send for AlignedVec<T> {}
// SAFETY: `&AlignedVec` gives shared access to its elements only.
unsafe impl<T: Sync> Sync for AlignedVec<T> {}

impl<T: Float> AlignedVec<T> {
    /// `len` zeros.
    ///
    /// # Panics
    /// When the memory cannot be allocated; [`try_zeroed`](Self::try_zeroed) returns `None`.
    pub fn zeroed(len: usize) -> Self {
        Self::try_zeroed(len).unwrap_or_else(|| {
            panic!("{len} values ({} bytes) cannot be allocated", len.saturating_mul(size_of::<T>()))
        })
    }

    /// `len` copies of `value`.
    ///
    /// # Panics
    /// When the memory cannot be allocated.
    pub fn filled(value: T, len: usize) -> Self {
        let mut v = Self::zeroed(len);
        v.fill(value);
        v
    }

    /// `len` zeros, or `None` when the size overflows or the memory cannot be had.
    pub fn try_zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            return Some(Self::new());
        }
        let layout = Self::layout(len)?;
        // SAFETY: the layout's size is not zero. All-zero bits are `0.0` for `f32` and `f64`,
        // the only `Float` types.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        NonNull::new(ptr.cast::<T>()).map(|ptr| AlignedVec { ptr, len })
    }

    /// An aligned copy of `values`, or `None` when the memory cannot be had.
    pub fn try_from_slice(values: &[T]) -> Option<Self> {
        let mut v = Self::try_zeroed(values.len())?;
        v.copy_from_slice(values);
        Some(v)
    }

    /// The values of `iter` (exactly `len` of them), or `None` when the memory cannot be had.
    ///
    /// # Panics
    /// When `iter` does not give exactly `len` values.
    pub fn try_from_iter(len: usize, iter: impl IntoIterator<Item = T>) -> Option<Self> {
        let mut v = Self::try_zeroed(len)?;
        let mut iter = iter.into_iter();
        for slot in v.iter_mut() {
            *slot = iter.next().unwrap_or_else(|| panic!("fewer than {len} values"));
        }
        assert!(iter.next().is_none(), "more than {len} values");
        Some(v)
    }
}

impl<T> AlignedVec<T> {
    /// An empty array (no allocation).
    pub const fn new() -> Self {
        AlignedVec { ptr: NonNull::dangling(), len: 0 }
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised elements owned by `self` (or dangles, aligned
        // for `T`, with `len` 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn layout(len: usize) -> Option<Layout> {
        let size = len.checked_mul(size_of::<T>())?;
        Layout::from_size_align(size, ALIGN.max(std::mem::align_of::<T>())).ok()
    }
}

impl<T> Drop for AlignedVec<T> {
    fn drop(&mut self) {
        if self.len > 0 {
            let layout = Self::layout(self.len).expect("allocated with this layout");
            // SAFETY: the `len` elements are initialised and owned by `self`, allocated in
            // `try_zeroed` or `clone` with this layout.
            unsafe {
                std::ptr::drop_in_place(self.as_mut_slice());
                alloc::dealloc(self.ptr.as_ptr().cast(), layout);
            }
        }
    }
}

impl<T> Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> Default for AlignedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Clone for AlignedVec<T> {
    /// An aligned copy.
    ///
    /// # Panics
    /// When the memory cannot be allocated.
    fn clone(&self) -> Self {
        if self.len == 0 {
            return Self::new();
        }
        let layout = Self::layout(self.len).expect("allocated with this layout");
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { alloc::alloc(layout) }.cast::<T>();
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        for (i, x) in self.iter().enumerate() {
            // SAFETY: `i < len`, inside the new allocation; each slot is written once. Should a
            // `clone` panic, the slots written so far leak (no element is dropped uninitialised).
            unsafe { ptr.as_ptr().add(i).write(x.clone()) };
        }
        AlignedVec { ptr, len: self.len }
    }
}

impl<T: fmt::Debug> fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl<T: PartialEq> PartialEq for AlignedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq> PartialEq<[T]> for AlignedVec<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq> PartialEq<Vec<T>> for AlignedVec<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq, const N: usize> PartialEq<[T; N]> for AlignedVec<T> {
    fn eq(&self, other: &[T; N]) -> bool {
        self.as_slice() == other
    }
}

impl<'a, T> IntoIterator for &'a AlignedVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut AlignedVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T: Float> From<&[T]> for AlignedVec<T> {
    /// An aligned copy.
    ///
    /// # Panics
    /// When the memory cannot be allocated.
    fn from(values: &[T]) -> Self {
        Self::try_from_slice(values).unwrap_or_else(|| {
            panic!("{} values ({} bytes) cannot be allocated", values.len(), std::mem::size_of_val(values))
        })
    }
}

impl<T: Float> From<Vec<T>> for AlignedVec<T> {
    /// An aligned copy.
    ///
    /// # Panics
    /// When the memory cannot be allocated.
    fn from(values: Vec<T>) -> Self {
        Self::from(values.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_aligned_zeroed_and_copied_aligned() {
        for len in [1usize, 3, 15, 16, 17, 1000, 40_000, 1 << 20] {
            let mut v = AlignedVec::<f32>::zeroed(len);
            assert_eq!(v.as_ptr() as usize % ALIGN, 0, "len {len}");
            assert!(v.iter().all(|&x| x == 0.0));
            v[len - 1] = 1.5;
            let w = v.clone();
            assert_eq!(w.as_ptr() as usize % ALIGN, 0, "clone, len {len}");
            assert_ne!(w.as_ptr(), v.as_ptr());
            assert_eq!(w, v);
            assert_eq!(w[len - 1], 1.5);
        }
        let d = AlignedVec::<f64>::zeroed(9);
        assert_eq!(d.as_ptr() as usize % ALIGN, 0);
    }

    #[test]
    fn empty_and_impossible_sizes() {
        let e = AlignedVec::<f32>::zeroed(0);
        assert!(e.is_empty());
        assert_eq!(e.clone(), AlignedVec::new());
        assert!(AlignedVec::<f32>::try_zeroed(usize::MAX / 2).is_none());
        assert!(AlignedVec::<f64>::try_zeroed(1 << 60).is_none());
    }

    #[test]
    fn from_iter_takes_exactly_len_values() {
        let v = AlignedVec::<f64>::try_from_iter(4, (0..4).map(f64::from)).unwrap();
        assert_eq!(v, vec![0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    #[should_panic(expected = "fewer than 4 values")]
    fn from_iter_with_too_few_values_panics() {
        AlignedVec::<f64>::try_from_iter(4, (0..3).map(f64::from));
    }

    #[test]
    #[should_panic(expected = "more than 4 values")]
    fn from_iter_with_too_many_values_panics() {
        AlignedVec::<f64>::try_from_iter(4, (0..5).map(f64::from));
    }
}
