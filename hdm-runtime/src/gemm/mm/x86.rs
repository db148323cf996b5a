// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), file
// `src/x86/mod.rs`; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm: the `is_x86_feature_detected_!` wrapper (which let the MMTEST_FEATURE variable
// hide CPU features, for matrixmultiply's own tests) is dropped; the kernels call std's
// `is_x86_feature_detected!` directly; `FusedMulAdd` is dropped (hdm's FMA kernels, 6 x 16 and
// 6 x 8, call the FMA intrinsics themselves). The other multiply-add helpers are unchanged.
//
// The original file has no notice of its own; the crate is Copyright (c) 2016 - 2023 Ulrik
// Sverdrup "bluss" and contributors, licensed under the Apache License, Version 2.0 or the MIT
// license, at your option.

#[cfg(target_arch="x86")]
use core::arch::x86::*;
#[cfg(target_arch="x86_64")]
use core::arch::x86_64::*;

pub(crate) struct AvxMulAdd;

pub(crate) trait SMultiplyAdd {
    const IS_FUSED: bool;
    unsafe fn multiply_add(a: __m256, b: __m256, c: __m256) -> __m256;
}

impl SMultiplyAdd for AvxMulAdd {
    const IS_FUSED: bool = false;
    #[inline(always)]
    unsafe fn multiply_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_add_ps(_mm256_mul_ps(a, b), c)
    }
}


pub(crate) trait DMultiplyAdd {
    const IS_FUSED: bool;
    unsafe fn multiply_add(a: __m256d, b: __m256d, c: __m256d) -> __m256d;
}

impl DMultiplyAdd for AvxMulAdd {
    const IS_FUSED: bool = false;
    #[inline(always)]
    unsafe fn multiply_add(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_add_pd(_mm256_mul_pd(a, b), c)
    }
}
