// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), file
// `src/packing.rs`; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm: `pack_avx512` is compiled on every x86/x86_64 target (upstream: only with
// `cfg(has_avx512)`, which its build script sets for rustc >= 1.89; hdm's toolchain is 1.95); the
// pointer helpers come from `util.rs` instead of the rawpointer crate; the complex-only
// `PackSlice::from_slice` is dropped; `pack_avx2_f32` (the f32 x86 kernels' packing, with a
// register-transposing path for row-contiguous panels of 6, 12, 16 or 32) is added. The packing itself, and the
// packed values, are unchanged.
//
// Copyright 2016 - 2023 Ulrik Sverdrup "bluss"
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// http://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or http://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use super::util::PointerExt;

use core::mem::MaybeUninit;
use core::ptr::copy_nonoverlapping;

use super::kernel::ConstNum;
use super::kernel::Element;

#[cfg(target_arch="x86")]
use core::arch::x86::__m256;
#[cfg(target_arch="x86_64")]
use core::arch::x86_64::__m256;

/// An internal wrapper around a valid mutable pointer to uninitialized memory
#[repr(transparent)]
pub(crate) struct PackSlice<'a, T>(&'a mut [MaybeUninit<T>]);

impl<'a, T> PackSlice<'a, T> {
    #[inline(always)]
    pub(crate) fn as_mut_ptr(self) -> *mut T {
        self.0.as_mut_ptr().cast::<T>()
    }

    /// Create a slice that points to uninitialized memory
    ///
    /// # Safety
    ///
    /// The caller must ensure the pointer is non-null and valid for &mut access to the whole
    /// slice. And the slice is not used past the memory's lifetime (should be used as temporary only).
    #[inline]
    pub(crate) unsafe fn from<'b>(ptr: *mut T, size: usize) -> PackSlice<'b, T> {
        PackSlice(core::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<T>>(), size))
    }
}

/// Pack matrix into `pack`
///
/// + kc: length of the micropanel
/// + mc: number of rows/columns in the matrix to be packed
/// + pack: packing buffer
/// + a: matrix,
/// + rsa: row stride
/// + csa: column stride
///
/// + MR: kernel rows/columns that we round up to
// If one of pack and a is of a reference type, it gets a noalias annotation which
// gives benefits to optimization. The packing buffer is contiguous so it can be passed as a slice
// here.
pub(crate) unsafe fn pack<MR, T>(kc: usize, mc: usize, pack: PackSlice<T>,
                                 a: *const T, rsa: isize, csa: isize)
    where T: Element,
          MR: ConstNum,
{
    pack_impl::<MR, T>(kc, mc, pack, a, rsa, csa)
}

/// Specialized for AVX2
/// Safety: Requires AVX2
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx2")]
pub(crate) unsafe fn pack_avx2<MR, T>(kc: usize, mc: usize, pack: PackSlice<T>,
                                     a: *const T, rsa: isize, csa: isize)
    where T: Element,
          MR: ConstNum,
{
    pack_impl::<MR, T>(kc, mc, pack, a, rsa, csa)
}

/// hdm: packing for the f32 AVX2 kernel, with a fast path for panels whose values lie along
/// rows (`csa == 1`, as a row-major `A` or a transposed row-major `B`, the weights in `x W^T`):
/// blocks of 8 columns of the panel's rows are loaded whole and transposed in registers, where
/// `pack_impl` reads one value per row per column. Other layouts go to `pack_impl`. The packed
/// values are the same.
///
/// Safety: as `pack`, and requires AVX2.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx2")]
pub(crate) unsafe fn pack_avx2_f32<MR>(kc: usize, mc: usize, pack: PackSlice<f32>,
                                       a: *const f32, rsa: isize, csa: isize)
    where MR: ConstNum,
{
    let mr = MR::VALUE;
    if csa != 1 || rsa == 1 || !matches!(mr, 6 | 12 | 16 | 32) {
        return pack_impl::<MR, f32>(kc, mc, pack, a, rsa, csa);
    }
    let len = pack.0.len();
    let p = pack.as_mut_ptr();
    let panels = mc / mr;
    for ir in 0..panels {
        transpose_panel::<MR>(kc, a.stride_offset(rsa, ir * mr), rsa, p.add(ir * mr * kc));
    }
    if !mc.is_multiple_of(mr) {
        let done = panels * mr * kc;
        pack_impl::<MR, f32>(kc, mc % mr, PackSlice::from(p.add(done), len - done),
                             a.stride_offset(rsa, panels * mr), rsa, csa);
    }
}

/// One panel: `out[j * MR + i] = a[i * rsa + j]` for the `MR` (6, 12, 16 or 32) rows `i` and
/// `kc` columns `j` of `a`, whose rows are contiguous.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline]
#[target_feature(enable="avx2")]
unsafe fn transpose_panel<MR>(kc: usize, a: *const f32, rsa: isize, out: *mut f32)
    where MR: ConstNum,
{
    #[cfg(target_arch="x86")]
    use core::arch::x86::*;
    #[cfg(target_arch="x86_64")]
    use core::arch::x86_64::*;

    let mr = MR::VALUE;
    let row = |i: usize| a.stride_offset(rsa, i);
    let blocks = kc / 8;
    for jb in 0..blocks {
        let j = jb * 8;
        // rows 8g .. 8g + 8 of the panel (the 6-row panel: 6 rows and 2 of zeros; the
        // 12-row panel's second group: 4 rows and 4 of zeros)
        for g in 0..mr.div_ceil(8) {
            let live = (mr - 8 * g).min(8);
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, ri) in r.iter_mut().enumerate().take(live) {
                *ri = _mm256_loadu_ps(row(8 * g + i).add(j));
            }
            // column c of the block: the 8 rows' values at j + c
            let col = transpose8(r);
            if live == 8 {
                for (c, v) in col.iter().enumerate() {
                    _mm256_storeu_ps(out.add((j + c) * mr + 8 * g), *v);
                }
            } else if live == 4 {
                for (c, v) in col.iter().enumerate() {
                    _mm_storeu_ps(out.add((j + c) * mr + 8 * g), _mm256_castps256_ps128(*v));
                }
            } else {
                // 6 values per column: each 8-wide store spills 2 zeros into the next column's
                // place, which the next store overwrites; the last column stores 4 + 2.
                for (c, v) in col.iter().enumerate().take(7) {
                    _mm256_storeu_ps(out.add((j + c) * 6), *v);
                }
                let last = out.add((j + 7) * 6);
                _mm_storeu_ps(last, _mm256_castps256_ps128(col[7]));
                _mm_storel_epi64(last.add(4) as *mut __m128i, _mm_castps_si128(_mm256_extractf128_ps::<1>(col[7])));
            }
        }
    }
    for j in blocks * 8..kc {
        for i in 0..mr {
            *out.add(j * mr + i) = *row(i).add(j);
        }
    }
}

/// hdm: the transpose of an 8 x 8 block of f32 held as 8 rows: element `c` of row `r` of the
/// result is element `r` of row `c` of `r`.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline]
#[target_feature(enable="avx")]
pub(crate) unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    #[cfg(target_arch="x86")]
    use core::arch::x86::*;
    #[cfg(target_arch="x86_64")]
    use core::arch::x86_64::*;

    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Specialized for AVX-512
/// Safety: Requires AVX-512F
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
pub(crate) unsafe fn pack_avx512<MR, T>(kc: usize, mc: usize, pack: PackSlice<T>,
                                        a: *const T, rsa: isize, csa: isize)
    where T: Element,
          MR: ConstNum,
{
    pack_impl::<MR, T>(kc, mc, pack, a, rsa, csa)
}

/// Pack implementation, see pack above for docs.
///
/// Uses inline(always) so that it can be instantiated for different target features.
#[inline(always)]
unsafe fn pack_impl<MR, T>(kc: usize, mc: usize, pack: PackSlice<T>,
                           a: *const T, rsa: isize, csa: isize)
    where T: Element,
          MR: ConstNum,
{
    let pack = pack.as_mut_ptr();
    let mr = MR::VALUE;
    let mut p = 0; // offset into pack

    if rsa == 1 {
        // if the matrix is contiguous in the same direction we are packing,
        // copy a kernel row at a time.
        for ir in 0..mc/mr {
            let row_offset = ir * mr;
            for j in 0..kc {
                let a_row = a.stride_offset(rsa, row_offset)
                             .stride_offset(csa, j);
                copy_nonoverlapping(a_row, pack.add(p), mr);
                p += mr;
            }
        }
    } else {
        // general layout case
        for ir in 0..mc/mr {
            let row_offset = ir * mr;
            for j in 0..kc {
                for i in 0..mr {
                    let a_elt = a.stride_offset(rsa, i + row_offset)
                                 .stride_offset(csa, j);
                    copy_nonoverlapping(a_elt, pack.add(p), 1);
                    p += 1;
                }
            }
        }
    }

    let zero = <_>::zero();

    // Pad with zeros to multiple of kernel size (uneven mc)
    let rest = mc % mr;
    if rest > 0 {
        let row_offset = (mc/mr) * mr;
        for j in 0..kc {
            for i in 0..mr {
                if i < rest {
                    let a_elt = a.stride_offset(rsa, i + row_offset)
                                 .stride_offset(csa, j);
                    copy_nonoverlapping(a_elt, pack.add(p), 1);
                } else {
                    *pack.add(p) = zero;
                }
                p += 1;
            }
        }
    }
}

