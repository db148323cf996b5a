// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), files
// `src/util.rs` and `src/kernel_util.rs` (the latter has no notice of its own), plus the two
// methods of the rawpointer crate's `PointerExt` (0.2.1, same author, same licences) that the
// vendored code uses; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm: the files are merged; `RangeChunk::part` (threading only) is dropped; `n: n` is
// written `n`.
//
// Copyright 2016 - 2018 Ulrik Sverdrup "bluss"
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// http://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or http://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use core::cmp::min;

#[derive(Copy, Clone)]
pub struct RangeChunk { i: usize, n: usize, chunk: usize }

/// Create an iterator that splits `n` in chunks of size `chunk`;
/// the last item can be an uneven chunk.
pub fn range_chunk(n: usize, chunk: usize) -> RangeChunk {
    RangeChunk {
        i: 0,
        n,
        chunk,
    }
}

impl Iterator for RangeChunk {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.n == 0 {
            None
        } else {
            let i = self.i;
            let rem = min(self.n, self.chunk);
            self.i += 1;
            self.n -= rem;
            Some((i, rem))
        }
    }
}

#[inline]
pub fn round_up_to(x: usize, multiple_of: usize) -> usize {
    let (mut d, r) = (x / multiple_of, x % multiple_of);
    if r > 0 { d += 1; }
    d * multiple_of
}

/// If the microkernel tile is a square, mr == nr,
/// then we can change the problem from C = A B to C^T = B^T A^T
///
/// Whenever rsc == 1, we switch the orientation around.
/// *Any contiguous positive stride* C will exit this function with rsc arbitrary, csc == 1.
///
/// Input row stride (rs), column stride (cs) and outcomes
/// rsc     csc     explanation
/// M       1       no change => (M, 1)
/// 1       Z       transpose => (Z, 1)
/// M1      M2      no change => (M1, M2)
///
/// Where M signifies number M != 1 and Z any number (pos, neg, or zero)
///
/// + `mr`, `nr` kernel size; must be square
/// + `a` pointer to packing buffer
/// + `b` pointer to packing buffer
/// + `rsc` row stride of c
/// + `csc` colum stride of c
#[inline(always)]
#[allow(unused)]
pub(crate) fn preferential_transpose<T>(mr: usize, nr: usize, a: *const T, b: *const T, rsc: isize, csc: isize)
    -> (*const T, *const T, isize, isize)
{
    debug_assert_eq!(mr, nr, "Transpose requires that MR == NR");
    // Compute C in whichever orientation makes the output columns contiguous
    let prefer_row_major_c = rsc != 1;
    if prefer_row_major_c { (a, b, rsc, csc) } else { (b, a, csc, rsc) }
}

/// Dereference pointer at offset `i`
#[inline(always)]
pub(crate) unsafe fn at<T: Copy>(ptr: *const T, i: usize) -> T {
    *ptr.add(i)
}


/// Pointer arithmetic in units of a stride (from the rawpointer crate's `PointerExt`).
pub(crate) trait PointerExt: Copy {
    unsafe fn offset(self, i: isize) -> Self;

    /// Increment the pointer by 1
    #[inline(always)]
    unsafe fn inc(&mut self) {
        *self = self.offset(1);
    }

    /// Offset the pointer by `s` multiplied by `index`.
    #[inline(always)]
    unsafe fn stride_offset(self, s: isize, index: usize) -> Self {
        self.offset(s * index as isize)
    }
}

impl<T> PointerExt for *const T {
    #[inline(always)]
    unsafe fn offset(self, i: isize) -> Self {
        <*const T>::offset(self, i)
    }
}

impl<T> PointerExt for *mut T {
    #[inline(always)]
    unsafe fn offset(self, i: isize) -> Self {
        <*mut T>::offset(self, i)
    }
}
