//! Packing memory for the GEMM kernels.

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::size_of;

use super::{kernel_info, mm};
use crate::aligned::AlignedVec;
use crate::Float;

/// Packing memory for the GEMM kernels of one thread: aligned, allocated once by
/// [`Workspace::new`], large enough for a product of any shape, never grown.
///
/// The kernels copy blocks of `A` and `B` into it, in the order they read them (the "packing" of
/// the BLIS/GotoBLAS scheme); [`gemm_with`](super::gemm_with) borrows it mutably for one product.
/// Its size comes from the kernel selected for `T` on this CPU ([`kernel_info`]): one `MR x NR`
/// scratch tile, `KC x MC` elements of `A` and `KC x NC` of `B`, about 1.1 MB for `f32` and
/// 2.2 MB for `f64` with the x86 kernels.
///
/// ```
/// use hdm_runtime::gemm::{gemm_with, MatMut, MatRef, Workspace};
/// let mut ws = Workspace::<f64>::new();
/// let (a, b) = ([1.0, 2.0], [3.0, 4.0]);
/// let mut c = [0.0];
/// gemm_with(&mut ws, 1.0, MatRef::row_major(&a, 1, 2), MatRef::row_major(&b, 2, 1), 0.0, MatMut::row_major(&mut c, 1, 1));
/// assert_eq!(c, [11.0]);
/// ```
pub struct Workspace<T> {
    /// The packing memory: an [`AlignedVec`]'s 64 bytes are at least `mm::WORKSPACE_ALIGN`.
    packing: AlignedVec<T>,
    /// Scratch memory for the kernels that run beside the products (a convolution's patches),
    /// grown by [`Workspace::reserve_scratch`], aligned to a cache line.
    scratch: AlignedVec<T>,
}

const _: () =
    assert!(mm::WORKSPACE_ALIGN <= crate::aligned::ALIGN, "the kernels need more than AlignedVec's alignment");

impl<T: Float> Workspace<T> {
    /// Allocates the packing memory of the kernel selected for `T` on this CPU (zeroed).
    pub fn new() -> Self {
        Self::with_len(kernel_info::<T>().workspace_len)
    }
}

impl<T: Float> Workspace<T> {
    /// Makes the scratch memory at least `len` elements long (allocating now, if shorter), so
    /// that [`with_scratch`](Self::with_scratch) up to that length does not allocate.
    pub fn reserve_scratch(&mut self, len: usize) {
        if self.scratch.len() < len {
            self.scratch = AlignedVec::zeroed(len);
        }
    }

    /// Runs `f` with `len` elements of scratch memory (holding whatever the last user left) and
    /// this workspace, for products. Allocates only when the scratch memory is shorter than `len`
    /// (see [`reserve_scratch`](Self::reserve_scratch)).
    pub fn with_scratch<R>(&mut self, len: usize, f: impl FnOnce(&mut [T], &mut Workspace<T>) -> R) -> R {
        self.reserve_scratch(len);
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = f(&mut scratch[..len], self);
        self.scratch = scratch;
        r
    }
}

impl<T: Float> Default for Workspace<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Workspace<T> {
    /// `len` zeroed elements (all-zero bits are `0.0` for `f32` and `f64`), aligned as the
    /// kernels need.
    fn with_len(len: usize) -> Self {
        assert!(len > 0, "an empty GEMM workspace");
        let packing = AlignedVec::try_zeroed(len).unwrap_or_else(|| {
            alloc::handle_alloc_error(Layout::array::<T>(len).expect("GEMM workspace size overflows"))
        });
        Workspace { packing, scratch: AlignedVec::new() }
    }
}

impl<T> Workspace<T> {
    /// Its size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.packing.len() * size_of::<T>()
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.packing.len()
    }

    /// The first element, aligned to `mm::WORKSPACE_ALIGN` bytes.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.packing.as_mut_ptr()
    }
}

impl<T> fmt::Debug for Workspace<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace").field("bytes", &self.size_bytes()).finish()
    }
}
