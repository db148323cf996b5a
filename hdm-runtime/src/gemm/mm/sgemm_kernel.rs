// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), file
// `src/sgemm_kernel.rs`; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm: the AVX-512 kernel is compiled on every x86/x86_64 target (upstream: only with
// `cfg(has_avx512)`, set by its build script for rustc >= 1.89; hdm's toolchain is 1.95) and still
// chosen only when the CPU has avx512f; `detect` returns the selector's output; each kernel has a
// `NAME`; std's feature-detection macros replace upstream's MMTEST_FEATURE-aware wrappers; the
// wasm32 SIMD kernel and upstream's unit tests are dropped (hdm tests every kernel the CPU has,
// see `mm/mod.rs`); the FMA+AVX2 kernel is hdm's 6 x 16 kernel (`kernel_target_fma_6x16`, same
// bits as upstream's 8 x 8, which `KernelAvx` keeps without FMA) with mc = 96 and its own packing
// (`pack_avx2_f32`), and an unpacked path for single-row products (`sgemv_row`); the AVX-512
// kernel takes the same single-row path and packs with `pack_avx2_f32` as well (its 16-row panels
// transposed in registers; upstream reads one value per row per column, slow for the transposed
// operands of convolutions). hdm also adds a 12 x 32 AVX-512 kernel (`KernelAvx512Wide`, with its
// own edge path), which `detect` selects instead of the 16 x 16 one on Intel CPUs (same bits). The
// other kernels, their parameters and the selection order are unchanged.
//
// Copyright 2016 - 2023 Ulrik Sverdrup "bluss"
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// http://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or http://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use super::kernel::GemmKernel;
use super::kernel::GemmSelect;
use super::kernel::{U4, U8};
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
use super::kernel::U6;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
use super::kernel::U16;
#[cfg(any(target_arch="x86", target_arch="x86_64", target_arch="aarch64"))]
use super::util::preferential_transpose;
use super::util::at;
use super::archparam;

#[cfg(target_arch="x86")]
use core::arch::x86::*;
#[cfg(target_arch="x86_64")]
use core::arch::x86_64::*;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
use super::x86::{AvxMulAdd, SMultiplyAdd};

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
use super::packing::PackSlice;

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
struct KernelAvx;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
struct KernelFmaAvx2;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
struct KernelAvx512;
/// hdm: a 12 x 32 AVX-512 kernel (24 accumulators; 12 broadcasts and 2 loads per 24 FMAs, where
/// the 16 x 16 kernel makes 17 loads per 16 FMAs and is bound by the load ports), selected on
/// Intel CPUs (`wide_avx512`). Its panels of A (12 rows) and B (32 columns) are packed by
/// `pack_avx2_f32`, transposed in registers where they lie along rows; patch matrices by
/// `patches.rs` in 32-column panels; its edge tiles have their own path
/// (`edge_target_avx512_12x32`). Every element is the same FMA chain per block of `kc` and the
/// same finish as in the 16 x 16 kernel, so its bits are that kernel's.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
struct KernelAvx512Wide;

#[cfg(target_arch="aarch64")]
struct KernelNeon;
struct KernelFallback;

type T = f32;

/// Detect which implementation to use and select it using the selector's
/// .select(Kernel) method.
///
/// This function is called one or more times during a whole program's
/// execution, it may be called for each gemm kernel invocation or fewer times.
#[inline]
pub(crate) fn detect<G>(selector: G) -> G::Output where G: GemmSelect<T> {
    // dispatch to specific compiled versions
    #[cfg(any(target_arch="x86", target_arch="x86_64"))]
    {
        // hdm: the single-row path of the AVX-512 kernel is compiled with AVX-512VL too
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
            if wide_avx512() {
                return selector.select(KernelAvx512Wide);
            }
            return selector.select(KernelAvx512);
        }
        if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2") {
            return selector.select(KernelFmaAvx2);
        } else if is_x86_feature_detected!("avx") {
            return selector.select(KernelAvx);
        }
    }
    #[cfg(target_arch="aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return selector.select(KernelNeon);
        }
    }
    #[allow(unreachable_code)]
    return selector.select(KernelFallback);
}

/// hdm: whether an AVX-512 CPU gets the 12 x 32 kernel rather than the 16 x 16 one (both give
/// the same bits): on Intel CPUs, whose 16 x 16 kernel is bound by the load ports (17 loads per
/// 16 FMAs; the 12 x 32 tile makes 14 per 24), not on AMD's, whose two 256-bit FMA pipes bound
/// every tile shape alike (DEVELOPERS.md). `HDM_GEMM_KERNEL=avx512f` or `avx512f-12x32` chooses
/// either, for comparisons. Decided once per process.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
fn wide_avx512() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static WIDE: AtomicU8 = AtomicU8::new(0);
    match WIDE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let wide = match std::env::var("HDM_GEMM_KERNEL").as_deref() {
                Ok("avx512f") => false,
                Ok("avx512f-12x32") => true,
                _ => cpu_vendor_is_intel(),
            };
            WIDE.store(1 + wide as u8, Ordering::Relaxed);
            wide
        }
    }
}

/// hdm: whether CPUID's vendor string is "GenuineIntel".
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
fn cpu_vendor_is_intel() -> bool {
    // (leaf 0 exists on every CPU that reaches this function: those with AVX-512)
    let r = __cpuid(0);
    // the vendor string is EBX, EDX, ECX: "Genu" "ineI" "ntel"
    r.ebx == u32::from_le_bytes(*b"Genu") && r.edx == u32::from_le_bytes(*b"ineI")
        && r.ecx == u32::from_le_bytes(*b"ntel")
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
macro_rules! loop_m { ($i:ident, $e:expr) => { loop8!($i, $e) }; }

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl GemmKernel for KernelAvx {
    type Elem = T;
    const NAME: &'static str = "avx";

    type MRTy = U8;
    type NRTy = U8;

    const ALIGNMENT: usize = 32;
    const ALWAYS_MASKED: bool = false;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_target_avx(k, alpha, a, b, beta, c, rsc, csc)
    }
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl GemmKernel for KernelFmaAvx2 {
    type Elem = T;
    const NAME: &'static str = "fma+avx2";

    // hdm: a 6 x 16 broadcast kernel (upstream: the 8 x 8 permute kernel of `KernelAvx`)
    type MRTy = U6;
    type NRTy = U16;

    // hdm: the kernel loads B~ unaligned (A~ is only broadcast from), so it asks for no more
    // than a 16-byte alignment, which `ensure_kernel_params` allows for a 6-row kernel.
    const ALIGNMENT: usize = 16;
    const ALWAYS_MASKED: bool = false;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    // hdm: a whole number of 6-row panels (upstream's 64 would leave a masked panel per block)
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC_6 }

    #[inline]
    unsafe fn pack_mr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // safety: Avx2 is enabled
        super::packing::pack_avx2_f32::<Self::MRTy>(kc, mc, pack, a, rsa, csa)
    }

    #[inline]
    unsafe fn pack_nr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // safety: Avx2 is enabled
        super::packing::pack_avx2_f32::<Self::NRTy>(kc, mc, pack, a, rsa, csa)
    }

    #[inline(always)]
    unsafe fn gemv_row(k: usize, n: usize, alpha: T, a: *const T, csa: isize,
                       b: *const T, rsb: isize, csb: isize, beta: T, c: *mut T) -> bool
    {
        // safety: Avx2 and FMA are enabled
        super::fma6::sgemv_row(k, n, Self::kc(), alpha, a, csa, b, rsb, csb, beta, c)
    }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_target_fma_6x16(k, alpha, a, b, beta, c, rsc, csc)
    }
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl GemmKernel for KernelAvx512 {
    type Elem = T;
    const NAME: &'static str = "avx512f";

    type MRTy = U16;
    type NRTy = U16;

    const ALIGNMENT: usize = 64;
    const ALWAYS_MASKED: bool = false;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC }

    #[inline]
    unsafe fn pack_mr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // hdm: the register-transposing packer of the AVX2 kernel, for 16-row panels too.
        // safety: avx512f is enabled, and implies avx2
        super::packing::pack_avx2_f32::<Self::MRTy>(kc, mc, pack, a, rsa, csa)
    }

    #[inline]
    unsafe fn pack_nr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // safety: avx512f is enabled, and implies avx2
        super::packing::pack_avx2_f32::<Self::NRTy>(kc, mc, pack, a, rsa, csa)
    }

    // hdm: single rows through the AVX2 kernel's unpacked path, which gives this kernel's bits
    // too (the same FMA chain per element and kc-block, the same finish); the packed loops would
    // pack all of B for one row of the 16-row masked kernel.
    #[inline(always)]
    unsafe fn gemv_row(k: usize, n: usize, alpha: T, a: *const T, csa: isize,
                       b: *const T, rsb: isize, csb: isize, beta: T, c: *mut T) -> bool
    {
        // safety: avx512f and avx512vl are enabled (this kernel is chosen only then), and with
        // them avx2 and fma
        super::fma6::sgemv_row_avx512(k, n, Self::kc(), alpha, a, csa, b, rsb, csb, beta, c)
    }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_target_avx512(k, alpha, a, b, beta, c, rsc, csc)
    }

    #[inline(always)]
    unsafe fn edge_kernel(k: usize, alpha: T, a: *const T, b: *const T, beta: T,
                          c: *mut T, rsc: isize, csc: isize, rows: usize, cols: usize) -> bool
    {
        edge_target_avx512(k, alpha, a, b, beta, c, rsc, csc, rows, cols)
    }
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl GemmKernel for KernelAvx512Wide {
    type Elem = T;
    const NAME: &'static str = "avx512f-12x32";

    type MRTy = super::kernel::U12;
    type NRTy = super::kernel::U32;

    // B~'s rows are 128 bytes apart; A~'s 48, which it only broadcasts from.
    const ALIGNMENT: usize = 32;
    const ALWAYS_MASKED: bool = false;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC_6 }

    #[inline]
    unsafe fn pack_mr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // safety: avx512f is enabled, and implies avx2
        super::packing::pack_avx2_f32::<Self::MRTy>(kc, mc, pack, a, rsa, csa)
    }

    #[inline]
    unsafe fn pack_nr(kc: usize, mc: usize, pack: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        // safety: avx512f is enabled, and implies avx2
        super::packing::pack_avx2_f32::<Self::NRTy>(kc, mc, pack, a, rsa, csa)
    }

    #[inline(always)]
    unsafe fn gemv_row(k: usize, n: usize, alpha: T, a: *const T, csa: isize,
                       b: *const T, rsb: isize, csb: isize, beta: T, c: *mut T) -> bool
    {
        // safety: avx512f and avx512vl are enabled (this kernel is chosen only then)
        super::fma6::sgemv_row_avx512(k, n, Self::kc(), alpha, a, csa, b, rsb, csb, beta, c)
    }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_target_avx512_12x32(k, alpha, a, b, beta, c, rsc, csc)
    }

    #[inline(always)]
    unsafe fn edge_kernel(k: usize, alpha: T, a: *const T, b: *const T, beta: T,
                          c: *mut T, rsc: isize, csc: isize, rows: usize, cols: usize) -> bool
    {
        edge_target_avx512_12x32(k, alpha, a, b, beta, c, rsc, csc, rows, cols)
    }
}

/// The 12 x 32 tile: `ab[i][v]` holds row `i`, columns `16 v .. 16 v + 16`; per step of k, two
/// vectors of B~ and twelve broadcasts of A~. The finish is the 16 x 16 kernel's. (Every index
/// into `ab` is a constant after `loop12!`, so the tile stays in registers.)
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn kernel_target_avx512_12x32(k: usize, alpha: T, mut a: *const T, mut b: *const T,
                                     beta: T, c: *mut T, rsc: isize, csc: isize)
{
    const MR: usize = 12;
    const NR: usize = 32;
    let mut ab = [[_mm512_setzero_ps(); 2]; MR];
    for _ in 0..k {
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(16));
        loop12!(i, {
            let av = _mm512_set1_ps(*a.add(i));
            ab[i][0] = _mm512_fmadd_ps(av, b0, ab[i][0]);
            ab[i][1] = _mm512_fmadd_ps(av, b1, ab[i][1]);
        });
        a = a.add(MR);
        b = b.add(NR);
    }
    let alphav = _mm512_set1_ps(alpha);
    let betav = _mm512_set1_ps(beta);
    if csc == 1 {
        if beta != 0. {
            loop12!(i, {
                let ci = c.offset(rsc * i as isize);
                let c0 = _mm512_mul_ps(_mm512_loadu_ps(ci), betav);
                let c1 = _mm512_mul_ps(_mm512_loadu_ps(ci.add(16)), betav);
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(alphav, ab[i][0], c0));
                _mm512_storeu_ps(ci.add(16), _mm512_fmadd_ps(alphav, ab[i][1], c1));
            });
        } else {
            loop12!(i, {
                let ci = c.offset(rsc * i as isize);
                _mm512_storeu_ps(ci, _mm512_mul_ps(alphav, ab[i][0]));
                _mm512_storeu_ps(ci.add(16), _mm512_mul_ps(alphav, ab[i][1]));
            });
        }
    } else {
        loop12!(i, finish_strided_row(alphav, betav, beta, ab[i], c.offset(rsc * i as isize), csc, 32));
    }
}

/// hdm: the 12 x 32 kernel's finish of one row of C whose elements are `csc` apart: `cols` (up
/// to 32) values, with the vector finish of a contiguous row (`alpha * AB + beta * C`, one FMA
/// after `beta * C`) made on a copy.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn finish_strided_row(alphav: __m512, betav: __m512, beta: T, ab: [__m512; 2], c: *mut T,
                            csc: isize, cols: usize)
{
    let mut tmp = [0f32; 32];
    if beta != 0. {
        for j in 0..cols { tmp[j] = *c.offset(csc * j as isize); }
        for v in 0..2 {
            let cv = _mm512_mul_ps(_mm512_loadu_ps(tmp.as_ptr().add(16 * v)), betav);
            _mm512_storeu_ps(tmp.as_mut_ptr().add(16 * v), _mm512_fmadd_ps(alphav, ab[v], cv));
        }
    } else {
        for v in 0..2 {
            _mm512_storeu_ps(tmp.as_mut_ptr().add(16 * v), _mm512_mul_ps(alphav, ab[v]));
        }
    }
    for j in 0..cols { *c.offset(csc * j as isize) = tmp[j]; }
}

/// hdm: an edge tile of the 12 x 32 kernel, `rows x cols` of C (`rows <= 12`, `cols <= 32`)
/// written in place: `rows` accumulator rows of one vector (`cols <= 16`) or two, so a tile of 4
/// rows and 20 columns makes 8 FMAs per step of k, not the full tile's 24. Each element gets the
/// full tile's FMA chain and finish (`alpha * AB + beta * C` as one FMA after `beta * C`), so its
/// bits are the full tile's; C is neither read nor written outside `rows x cols` (masked loads
/// and stores where a row of C is contiguous, one element at a time otherwise).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn edge_target_avx512_12x32(k: usize, alpha: T, a: *const T, b: *const T, beta: T,
                                   c: *mut T, rsc: isize, csc: isize, rows: usize, cols: usize)
                                   -> bool
{
    debug_assert!(k != 0 && (1..=12).contains(&rows) && (1..=32).contains(&cols));
    macro_rules! rows {
        ($v:literal; $($n:literal)*) => {
            match rows {
                $($n => edge_rows_avx512_12x32::<$n, $v>(k, alpha, a, b, beta, c, rsc, csc, cols),)*
                _ => unreachable!("an edge tile of the 12 x 32 kernel has 1 to 12 rows"),
            }
        };
    }
    if cols <= 16 {
        rows!(1; 1 2 3 4 5 6 7 8 9 10 11 12);
    } else {
        rows!(2; 1 2 3 4 5 6 7 8 9 10 11 12);
    }
    true
}

/// `R` rows of `V` accumulator vectors of the 12 x 32 kernel, then its finish for `cols` columns
/// (see `edge_target_avx512_12x32`); A~ and B~ advance by the kernel's 12 and 32 per step of k.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn edge_rows_avx512_12x32<const R: usize, const V: usize>(
    k: usize, alpha: T, mut a: *const T, mut b: *const T, beta: T, c: *mut T, rsc: isize,
    csc: isize, cols: usize)
{
    let mut ab = [[_mm512_setzero_ps(); V]; R];
    for _ in 0..k {
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            bv[v] = _mm512_loadu_ps(b.add(16 * v));
        }
        for i in 0..R {
            let av = _mm512_set1_ps(*a.add(i));
            for v in 0..V {
                ab[i][v] = _mm512_fmadd_ps(av, bv[v], ab[i][v]);
            }
        }
        a = a.add(12);
        b = b.add(32);
    }
    let alphav = _mm512_set1_ps(alpha);
    let betav = _mm512_set1_ps(beta);
    if csc != 1 {
        for i in 0..R {
            let mut row = [_mm512_setzero_ps(); 2];
            row[..V].copy_from_slice(&ab[i]);
            finish_strided_row(alphav, betav, beta, row, c.offset(rsc * i as isize), csc, cols);
        }
        return;
    }
    let lanes = |v: usize| (cols - 16 * v).min(16);
    let mask = |v: usize| -> __mmask16 { if lanes(v) == 16 { 0xffff } else { (1u16 << lanes(v)) - 1 } };
    let masks = [mask(0), if V == 2 { mask(1) } else { 0 }];
    if beta != 0. {
        for i in 0..R {
            let ci = c.offset(rsc * i as isize);
            for v in 0..V {
                let cv = _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[v], ci.add(16 * v)), betav);
                _mm512_mask_storeu_ps(ci.add(16 * v), masks[v], _mm512_fmadd_ps(alphav, ab[i][v], cv));
            }
        }
    } else {
        for i in 0..R {
            let ci = c.offset(rsc * i as isize);
            for v in 0..V {
                _mm512_mask_storeu_ps(ci.add(16 * v), masks[v], _mm512_mul_ps(alphav, ab[i][v]));
            }
        }
    }
}

#[cfg(target_arch="aarch64")]
impl GemmKernel for KernelNeon {
    type Elem = T;
    const NAME: &'static str = "neon";

    type MRTy = U8;
    type NRTy = U8;

    const ALIGNMENT: usize = 32;
    const ALWAYS_MASKED: bool = false;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_target_neon(k, alpha, a, b, beta, c, rsc, csc)
    }
}

impl GemmKernel for KernelFallback {
    type Elem = T;
    const NAME: &'static str = "fallback";

    type MRTy = U8;
    type NRTy = U4;

    const ALWAYS_MASKED: bool = true;

    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC }

    #[inline(always)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T, rsc: isize, csc: isize) {
        kernel_fallback_impl(k, alpha, a, b, beta, c, rsc, csc)
    }
}

/// hdm: the AVX2 + FMA 6 x 16 kernel (`fma6.rs`).
// no inline for unmasked kernels
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx2,fma")]
unsafe fn kernel_target_fma_6x16(k: usize, alpha: T, a: *const T, b: *const T,
                                 beta: T, c: *mut T, rsc: isize, csc: isize)
{
    super::fma6::kernel::<__m256>(k, alpha, a, b, beta, c, rsc, csc)
}

// no inline for unmasked kernels
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx")]
unsafe fn kernel_target_avx(k: usize, alpha: T, a: *const T, b: *const T,
                            beta: T, c: *mut T, rsc: isize, csc: isize)
{
    kernel_x86_avx::<AvxMulAdd>(k, alpha, a, b, beta, c, rsc, csc)
}

#[inline(always)]
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
unsafe fn kernel_x86_avx<MA>(k: usize, alpha: T, a: *const T, b: *const T,
                             beta: T, c: *mut T, rsc: isize, csc: isize)
    where MA: SMultiplyAdd,
{
    const MR: usize = KernelAvx::MR;
    const NR: usize = KernelAvx::NR;

    debug_assert_ne!(k, 0);

    let mut ab = [_mm256_setzero_ps(); MR];

    // Compute C in whichever orientation makes the output columns contiguous
    let (mut a, mut b, rsc, csc) = preferential_transpose(MR, NR, a, b, rsc, csc);

    macro_rules! permute_mask {
        ($z:expr, $y:expr, $x:expr, $w:expr) => {
            ($z << 6) | ($y << 4) | ($x << 2) | $w
        }
    }

    // Start data load before each iteration
    let mut av = _mm256_load_ps(a);
    let mut bvl = _mm256_broadcast_ps(&*(b.add(0) as *const _));
    let mut bvh = _mm256_broadcast_ps(&*(b.add(4) as *const _));

    // Compute A B
    unroll_by_with_last!(4 => k, is_last, {
        // We compute abij = ai bj
        //
        //
        //   ab0:    ab1:    ab2:    ab3:
        // ( ab00  ( ab10  ( ab20  ( ab30
        //   ab11    ab21    ab31    ab01
        //   ab22    ab32    ab02    ab12
        //   ab33    ab03    ab13    ab23
        //   ab40    ab50    ab60    ab70
        //   ab51    ab61    ab71    ab41
        //   ab62    ab72    ab42    ab52
        //   ab73 )  ab43 )  ab53 )  ab63 )
        //
        // ab1357: ab3175: ab5713: ab7531:
        // ( ab04  ( ab14  ( ab24  ( ab34
        //   ab15    ab25    ab35    ab05
        //   ab26    ab36    ab06    ab16
        //   ab37    ab07    ab17    ab27
        //   ab44    ab54    ab64    ab74
        //   ab55    ab65    ab75    ab45
        //   ab66    ab76    ab46    ab56
        //   ab77 )  ab47 )  ab57 )  ab67 )

        let a01234567 = av;
        let a12305674 = _mm256_permute_ps(av, permute_mask!(0, 3, 2, 1));
        let a23016745 = _mm256_permute_ps(av, permute_mask!(1, 0, 3, 2));
        let a30127456 = _mm256_permute_ps(av, permute_mask!(2, 1, 0, 3));

        ab[0] = MA::multiply_add(a01234567, bvl, ab[0]);
        ab[4] = MA::multiply_add(a01234567, bvh, ab[4]);

        ab[1] = MA::multiply_add(a12305674, bvl, ab[1]);
        ab[5] = MA::multiply_add(a12305674, bvh, ab[5]);

        ab[2] = MA::multiply_add(a23016745, bvl, ab[2]);
        ab[6] = MA::multiply_add(a23016745, bvh, ab[6]);

        ab[3] = MA::multiply_add(a30127456, bvl, ab[3]);
        ab[7] = MA::multiply_add(a30127456, bvh, ab[7]);

        if !is_last {
            a = a.add(MR);
            b = b.add(NR);

            bvl = _mm256_broadcast_ps(&*(b.add(0) as *const _));
            bvh = _mm256_broadcast_ps(&*(b.add(4) as *const _));
            av = _mm256_load_ps(a);
        }
    });

    let alphav = _mm256_set1_ps(alpha);

    // Permute to put the abij elements in order
    let t0 = ab[0];
    let t1 = ab[1];
    let t2 = ab[2];
    let t3 = ab[3];

    let (t0, t1, t2, t3) = (
        _mm256_blend_ps(t0, t3, 0b10101010),
        _mm256_blend_ps(t1, t0, 0b10101010),
        _mm256_blend_ps(t2, t1, 0b10101010),
        _mm256_blend_ps(t3, t2, 0b10101010),
    );

    let (t0, t1, t2, t3) = (
        _mm256_blend_ps(t0, t2, 0b11001100),
        _mm256_blend_ps(t1, t3, 0b11001100),
        _mm256_blend_ps(t2, t0, 0b11001100),
        _mm256_blend_ps(t3, t1, 0b11001100),
    );

    let t4 = ab[4];
    let t5 = ab[5];
    let t6 = ab[6];
    let t7 = ab[7];

    let (t4, t5, t6, t7) = (
        _mm256_blend_ps(t4, t7, 0b10101010),
        _mm256_blend_ps(t5, t4, 0b10101010),
        _mm256_blend_ps(t6, t5, 0b10101010),
        _mm256_blend_ps(t7, t6, 0b10101010),
    );

    let (t4, t5, t6, t7) = (
        _mm256_blend_ps(t4, t6, 0b11001100),
        _mm256_blend_ps(t5, t7, 0b11001100),
        _mm256_blend_ps(t6, t4, 0b11001100),
        _mm256_blend_ps(t7, t5, 0b11001100),
    );

    ab[0] = _mm256_permute2f128_ps(t0, t4, 0x20);
    ab[1] = _mm256_permute2f128_ps(t1, t5, 0x20);
    ab[2] = _mm256_permute2f128_ps(t2, t6, 0x20);
    ab[3] = _mm256_permute2f128_ps(t3, t7, 0x20);
    ab[4] = _mm256_permute2f128_ps(t0, t4, 0x31);
    ab[5] = _mm256_permute2f128_ps(t1, t5, 0x31);
    ab[6] = _mm256_permute2f128_ps(t2, t6, 0x31);
    ab[7] = _mm256_permute2f128_ps(t3, t7, 0x31);

    // Compute α (A B)
    // Compute here if we don't have fma, else pick up α further down
    if !MA::IS_FUSED {
        loop_m!(i, ab[i] = _mm256_mul_ps(alphav, ab[i]));
    }

    macro_rules! c {
        ($i:expr, $j:expr) => (c.offset(rsc * $i as isize + csc * $j as isize));
    }

    // C ← α A B + β C
    let mut cv = [_mm256_setzero_ps(); MR];
    if beta != 0. {
        let betav = _mm256_set1_ps(beta);
        // Read C
        if csc == 1 {
            loop_m!(i, cv[i] = _mm256_loadu_ps(c![i, 0]));
        } else {
            loop_m!(i, cv[i] = _mm256_setr_ps(*c![i, 0], *c![i, 1], *c![i, 2], *c![i, 3],
                                              *c![i, 4], *c![i, 5], *c![i, 6], *c![i, 7]));
        }
        // Compute β C
        loop_m!(i, cv[i] = _mm256_mul_ps(cv[i], betav));
    }

    // Compute (α A B) + (β C)
    if !MA::IS_FUSED {
        loop_m!(i, cv[i] = _mm256_add_ps(cv[i], ab[i]));
    } else {
        loop_m!(i, cv[i] = MA::multiply_add(alphav, ab[i], cv[i]));
    }

    // Store C back to memory
    if csc == 1 {
        loop_m!(i, _mm256_storeu_ps(c![i, 0], cv[i]));
    } else {
        // Permute to bring each element in the vector to the front and store
        loop_m!(i, {
            let cvlo = _mm256_extractf128_ps(cv[i], 0);
            let cvhi = _mm256_extractf128_ps(cv[i], 1);

            _mm_store_ss(c![i, 0], cvlo);
            let cperm = _mm_permute_ps(cvlo, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 1], cperm);
            let cperm = _mm_permute_ps(cperm, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 2], cperm);
            let cperm = _mm_permute_ps(cperm, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 3], cperm);

            _mm_store_ss(c![i, 4], cvhi);
            let cperm = _mm_permute_ps(cvhi, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 5], cperm);
            let cperm = _mm_permute_ps(cperm, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 6], cperm);
            let cperm = _mm_permute_ps(cperm, permute_mask!(0, 3, 2, 1));
            _mm_store_ss(c![i, 7], cperm);
        });
    }
}

// no inline for unmasked kernels
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn kernel_target_avx512(k: usize, alpha: T, a: *const T, b: *const T,
                               beta: T, c: *mut T, rsc: isize, csc: isize)
{
    const MR: usize = KernelAvx512::MR;
    const NR: usize = KernelAvx512::NR;
    debug_assert_ne!(k, 0);

    let mut ab = [_mm512_setzero_ps(); MR];

    // Compute C in whichever orientation makes the output columns contiguous
    let (mut a, mut b, rsc, csc) = preferential_transpose(MR, NR, a, b, rsc, csc);

    // Compute A B. The packed buffers are 64-byte aligned
    let mut bv = _mm512_load_ps(b);
    unroll_by_with_last!(4 => k, is_last, {
        loop16!(i, ab[i] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i)), bv, ab[i]));
        if !is_last {
            a = a.add(MR);
            b = b.add(NR);
            bv = _mm512_load_ps(b);
        }
    });

    macro_rules! c {
        ($i:expr, $j:expr) => (c.offset(rsc * $i as isize + csc * $j as isize));
    }

    // C <- alpha (A B) + beta C, in a single epilogue pass
    // Fold alpha into the final FMA
    // When beta == 0 the kernel must not read C
    let alphav = _mm512_set1_ps(alpha);
    if beta != 0. {
        let betav = _mm512_set1_ps(beta);
        if csc == 1 {
            loop16!(i, {
                let cv = _mm512_mul_ps(_mm512_loadu_ps(c![i, 0]), betav);
                _mm512_storeu_ps(c![i, 0], _mm512_fmadd_ps(alphav, ab[i], cv));
            });
        } else {
            loop16!(i, {
                let mut tmp = [0.; NR];
                for j in 0..NR { tmp[j] = *c![i, j]; }
                let cv = _mm512_mul_ps(_mm512_loadu_ps(tmp.as_ptr()), betav);
                _mm512_storeu_ps(tmp.as_mut_ptr(), _mm512_fmadd_ps(alphav, ab[i], cv));
                for j in 0..NR { *c![i, j] = tmp[j]; }
            });
        }
    } else {
        if csc == 1 {
            loop16!(i, _mm512_storeu_ps(c![i, 0], _mm512_mul_ps(alphav, ab[i])));
        } else {
            loop16!(i, {
                let mut tmp = [0.; NR];
                _mm512_storeu_ps(tmp.as_mut_ptr(), _mm512_mul_ps(alphav, ab[i]));
                for j in 0..NR { *c![i, j] = tmp[j]; }
            });
        }
    }
}

/// hdm: an edge tile of the AVX-512 kernel, `rows x cols` of C with `rows <= 16`, `cols <= 16`,
/// written in place: one accumulator per row (per column when C is column-major, the kernel's
/// orientation), masked loads and stores for the columns. Each element gets the full kernel's
/// FMA chain and finish, so its bits are the full tile's; a tile of 4 rows makes 4 FMAs per step
/// of k instead of the masked kernel's 16 (MLP products at batch 100: 7 panels of 16 rows, the
/// last one with 4). Returns `false` for C with neither stride 1.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn edge_target_avx512(k: usize, alpha: T, a: *const T, b: *const T, beta: T,
                             c: *mut T, rsc: isize, csc: isize, rows: usize, cols: usize) -> bool
{
    const MR: usize = KernelAvx512::MR;
    debug_assert!(k != 0 && rows <= MR && cols <= KernelAvx512::NR);
    // The kernel's orientation: accumulators along the strided side of C, lanes along the
    // contiguous one
    let (a, b, rsc, csc, count, lanes) = if rsc != 1 {
        (a, b, rsc, csc, rows, cols)
    } else {
        (b, a, csc, rsc, cols, rows)
    };
    if csc != 1 {
        return false;
    }
    let mask: __mmask16 = if lanes >= 16 { 0xffff } else { (1u16 << lanes) - 1 };
    macro_rules! rows {
        ($($n:literal)*) => {
            match count {
                $($n => edge_rows_avx512::<$n>(k, alpha, a, b, beta, c, rsc, mask),)*
                _ => unreachable!("an edge tile has 1 to 16 rows"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    true
}

/// `R` accumulators of the AVX-512 kernel, then its finish through `mask` (see
/// `edge_target_avx512`); `a` advances by the kernel's 16 per step of k as its packing does.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f")]
unsafe fn edge_rows_avx512<const R: usize>(k: usize, alpha: T, mut a: *const T, mut b: *const T,
                                           beta: T, c: *mut T, rsc: isize, mask: __mmask16)
{
    const MR: usize = KernelAvx512::MR;
    const NR: usize = KernelAvx512::NR;
    let mut ab = [_mm512_setzero_ps(); R];
    for _ in 0..k {
        let bv = _mm512_load_ps(b);
        for (i, abi) in ab.iter_mut().enumerate() {
            *abi = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i)), bv, *abi);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    let alphav = _mm512_set1_ps(alpha);
    if beta != 0. {
        let betav = _mm512_set1_ps(beta);
        for (i, abi) in ab.iter().enumerate() {
            let ci = c.offset(rsc * i as isize);
            let cv = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, ci), betav);
            _mm512_mask_storeu_ps(ci, mask, _mm512_fmadd_ps(alphav, *abi, cv));
        }
    } else {
        for (i, abi) in ab.iter().enumerate() {
            _mm512_mask_storeu_ps(c.offset(rsc * i as isize), mask, _mm512_mul_ps(alphav, *abi));
        }
    }
}

#[cfg(target_arch="aarch64")]
#[target_feature(enable="neon")]
unsafe fn kernel_target_neon(k: usize, alpha: T, a: *const T, b: *const T,
                             beta: T, c: *mut T, rsc: isize, csc: isize)
{
    use core::arch::aarch64::*;
    const MR: usize = KernelNeon::MR;
    const NR: usize = KernelNeon::NR;

    let (mut a, mut b, rsc, csc) = preferential_transpose(MR, NR, a, b, rsc, csc);

    // Kernel 8 x 8 (a x b)
    // Four quadrants of 4 x 4
    let mut ab11 = [vmovq_n_f32(0.); 4];
    let mut ab12 = [vmovq_n_f32(0.); 4];
    let mut ab21 = [vmovq_n_f32(0.); 4];
    let mut ab22 = [vmovq_n_f32(0.); 4];

    // Compute
    // ab_ij = a_i * b_j for all i, j
    macro_rules! ab_ij_equals_ai_bj {
        ($dest:ident, $av:expr, $bv:expr) => {
            $dest[0] = vfmaq_laneq_f32($dest[0], $bv, $av, 0);
            $dest[1] = vfmaq_laneq_f32($dest[1], $bv, $av, 1);
            $dest[2] = vfmaq_laneq_f32($dest[2], $bv, $av, 2);
            $dest[3] = vfmaq_laneq_f32($dest[3], $bv, $av, 3);
        }
    }

    for _ in 0..k {
        let a1 = vld1q_f32(a);
        let b1 = vld1q_f32(b);
        let a2 = vld1q_f32(a.add(4));
        let b2 = vld1q_f32(b.add(4));

        // compute an outer product ab = a (*) b in four quadrants ab11, ab12, ab21, ab22

        // ab11: [a1 a2 a3 a4] (*) [b1 b2 b3 b4]
        // ab11: a1b1 a1b2 a1b3 a1b4
        //       a2b1 a2b2 a2b3 a2b4
        //       a3b1 a3b2 a3b3 a3b4
        //       a4b1 a4b2 a4b3 a4b4
        //  etc
        ab_ij_equals_ai_bj!(ab11, a1, b1);
        ab_ij_equals_ai_bj!(ab12, a1, b2);
        ab_ij_equals_ai_bj!(ab21, a2, b1);
        ab_ij_equals_ai_bj!(ab22, a2, b2);

        a = a.add(MR);
        b = b.add(NR);
    }

    macro_rules! c {
        ($i:expr, $j:expr) => (c.offset(rsc * $i as isize + csc * $j as isize));
    }

    // ab *= alpha
    loop4!(i, ab11[i] = vmulq_n_f32(ab11[i], alpha));
    loop4!(i, ab12[i] = vmulq_n_f32(ab12[i], alpha));
    loop4!(i, ab21[i] = vmulq_n_f32(ab21[i], alpha));
    loop4!(i, ab22[i] = vmulq_n_f32(ab22[i], alpha));

    // load one float32x4_t from four pointers
    macro_rules! loadq_from_pointers {
        ($p0:expr, $p1:expr, $p2:expr, $p3:expr) => (
            {
                let v = vld1q_dup_f32($p0);
                let v = vld1q_lane_f32($p1, v, 1);
                let v = vld1q_lane_f32($p2, v, 2);
                let v = vld1q_lane_f32($p3, v, 3);
                v
            }
        );
    }

    if beta != 0. {
        // load existing value in C
        let mut c11 = [vmovq_n_f32(0.); 4];
        let mut c12 = [vmovq_n_f32(0.); 4];
        let mut c21 = [vmovq_n_f32(0.); 4];
        let mut c22 = [vmovq_n_f32(0.); 4];

        if csc == 1 {
            loop4!(i, c11[i] = vld1q_f32(c![i + 0, 0]));
            loop4!(i, c12[i] = vld1q_f32(c![i + 0, 4]));
            loop4!(i, c21[i] = vld1q_f32(c![i + 4, 0]));
            loop4!(i, c22[i] = vld1q_f32(c![i + 4, 4]));
        } else {
            loop4!(i, c11[i] = loadq_from_pointers!(c![i + 0, 0], c![i + 0, 1], c![i + 0, 2], c![i + 0, 3]));
            loop4!(i, c12[i] = loadq_from_pointers!(c![i + 0, 4], c![i + 0, 5], c![i + 0, 6], c![i + 0, 7]));
            loop4!(i, c21[i] = loadq_from_pointers!(c![i + 4, 0], c![i + 4, 1], c![i + 4, 2], c![i + 4, 3]));
            loop4!(i, c22[i] = loadq_from_pointers!(c![i + 4, 4], c![i + 4, 5], c![i + 4, 6], c![i + 4, 7]));
        }

        let betav = vmovq_n_f32(beta);

        // ab += β C
        loop4!(i, ab11[i] = vfmaq_f32(ab11[i], c11[i], betav));
        loop4!(i, ab12[i] = vfmaq_f32(ab12[i], c12[i], betav));
        loop4!(i, ab21[i] = vfmaq_f32(ab21[i], c21[i], betav));
        loop4!(i, ab22[i] = vfmaq_f32(ab22[i], c22[i], betav));
    }

    // c <- ab
    // which is in full
    //   C <- α A B (+ β C)
    if csc == 1 {
        loop4!(i, vst1q_f32(c![i + 0, 0], ab11[i]));
        loop4!(i, vst1q_f32(c![i + 0, 4], ab12[i]));
        loop4!(i, vst1q_f32(c![i + 4, 0], ab21[i]));
        loop4!(i, vst1q_f32(c![i + 4, 4], ab22[i]));
    } else {
        loop4!(i, vst1q_lane_f32(c![i + 0, 0], ab11[i], 0));
        loop4!(i, vst1q_lane_f32(c![i + 0, 1], ab11[i], 1));
        loop4!(i, vst1q_lane_f32(c![i + 0, 2], ab11[i], 2));
        loop4!(i, vst1q_lane_f32(c![i + 0, 3], ab11[i], 3));

        loop4!(i, vst1q_lane_f32(c![i + 0, 4], ab12[i], 0));
        loop4!(i, vst1q_lane_f32(c![i + 0, 5], ab12[i], 1));
        loop4!(i, vst1q_lane_f32(c![i + 0, 6], ab12[i], 2));
        loop4!(i, vst1q_lane_f32(c![i + 0, 7], ab12[i], 3));

        loop4!(i, vst1q_lane_f32(c![i + 4, 0], ab21[i], 0));
        loop4!(i, vst1q_lane_f32(c![i + 4, 1], ab21[i], 1));
        loop4!(i, vst1q_lane_f32(c![i + 4, 2], ab21[i], 2));
        loop4!(i, vst1q_lane_f32(c![i + 4, 3], ab21[i], 3));

        loop4!(i, vst1q_lane_f32(c![i + 4, 4], ab22[i], 0));
        loop4!(i, vst1q_lane_f32(c![i + 4, 5], ab22[i], 1));
        loop4!(i, vst1q_lane_f32(c![i + 4, 6], ab22[i], 2));
        loop4!(i, vst1q_lane_f32(c![i + 4, 7], ab22[i], 3));
    }
}

#[inline]
unsafe fn kernel_fallback_impl(k: usize, alpha: T, a: *const T, b: *const T,
                               beta: T, c: *mut T, rsc: isize, csc: isize)
{
    const MR: usize = KernelFallback::MR;
    const NR: usize = KernelFallback::NR;
    let mut ab: [[T; NR]; MR] = [[0.; NR]; MR];
    let mut a = a;
    let mut b = b;
    debug_assert_eq!(beta, 0., "Beta must be 0 or is not masked");

    // Compute A B into ab[i][j]
    unroll_by!(4 => k, {
        loop8!(i, loop4!(j, ab[i][j] += at(a, i) * at(b, j)));

        a = a.add(MR);
        b = b.add(NR);
    });

    macro_rules! c {
        ($i:expr, $j:expr) => (c.offset(rsc * $i as isize + csc * $j as isize));
    }

    // set C = α A B
    loop4!(j, loop8!(i, *c![i, j] = alpha * ab[i][j]));
}

/// Calls `selector.select` with every kernel of this file that the CPU can run, not only the one
/// `detect` picks (hdm addition, for tests).
#[cfg(test)]
pub(crate) fn each_kernel<G>(selector: G) where G: GemmSelect<T, Output = ()> + Copy {
    #[cfg(any(target_arch="x86", target_arch="x86_64"))]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
            selector.select(KernelAvx512);
            selector.select(KernelAvx512Wide);
        }
        if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2") {
            selector.select(KernelFmaAvx2);
        }
        if is_x86_feature_detected!("avx") {
            selector.select(KernelAvx);
        }
    }
    #[cfg(target_arch="aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            selector.select(KernelNeon);
        }
    }
    selector.select(KernelFallback);
}
