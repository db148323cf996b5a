// hdm's own file (not from matrixmultiply): the FMA+AVX2 micro-kernels that replace upstream's
// 8 x 8 (f32) and 8 x 4 (f64) permute kernels for `KernelFmaAvx2` (see `sgemm_kernel.rs` and
// `dgemm_kernel.rs`). MIT OR Apache-2.0, as the rest of hdm.

//! `C <- alpha A B + beta C` on a tile of 6 rows and two vectors of columns: 6 x 16 in f32,
//! 6 x 8 in f64.
//!
//! Each step of `k` loads one row of B~ (two vectors) and broadcasts the six values of a column
//! of A~, for 12 independent FMAs into 12 accumulators: enough to cover the FMA latency on both
//! FMA pipes, with no shuffles (upstream's kernels keep 8 accumulators and permute A, which
//! shares a port with the FMAs on AMD Zen). Every element is the same chain of FMAs over `k` as
//! in upstream's kernels, finished the same way (`fma(alpha, ab, beta * c)`, or
//! `fma(alpha, ab, 0)` when `beta == 0`, which never reads C), so they give the same bits.
//! B~ is loaded unaligned, and A~ only broadcast from: the panels need no alignment.

#[cfg(target_arch="x86")]
use core::arch::x86::*;
#[cfg(target_arch="x86_64")]
use core::arch::x86_64::*;

/// Rows of the tile.
const MR: usize = 6;

/// An AVX register of `Elem`s and the operations the kernel needs, in f32 (`__m256`) and f64
/// (`__m256d`). The methods are AVX/FMA intrinsics: call them only where those are enabled.
pub(crate) trait Ymm: Copy {
    type Elem: Copy + PartialEq;
    const LANES: usize;
    const ZERO: Self::Elem;
    unsafe fn zero() -> Self;
    unsafe fn set1(x: Self::Elem) -> Self;
    unsafe fn loadu(p: *const Self::Elem) -> Self;
    unsafe fn broadcast(p: *const Self::Elem) -> Self;
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    unsafe fn storeu(p: *mut Self::Elem, v: Self);
    /// Scalar `a * b + c`, rounded once.
    fn mul_add(a: Self::Elem, b: Self::Elem, c: Self::Elem) -> Self::Elem;
    fn scalar_mul(a: Self::Elem, b: Self::Elem) -> Self::Elem;
}

macro_rules! ymm {
    ($v:ty, $t:ty, $lanes:expr, $zero:ident, $set1:ident, $loadu:ident, $broadcast:ident,
     $fmadd:ident, $mul:ident, $storeu:ident) => {
        impl Ymm for $v {
            type Elem = $t;
            const LANES: usize = $lanes;
            const ZERO: $t = 0.;
            #[inline(always)]
            unsafe fn zero() -> Self { $zero() }
            #[inline(always)]
            unsafe fn set1(x: $t) -> Self { $set1(x) }
            #[inline(always)]
            unsafe fn loadu(p: *const $t) -> Self { $loadu(p) }
            #[inline(always)]
            unsafe fn broadcast(p: *const $t) -> Self { $broadcast(&*p) }
            #[inline(always)]
            unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self { $fmadd(a, b, c) }
            #[inline(always)]
            unsafe fn mul(a: Self, b: Self) -> Self { $mul(a, b) }
            #[inline(always)]
            unsafe fn storeu(p: *mut $t, v: Self) { $storeu(p, v) }
            #[inline(always)]
            fn mul_add(a: $t, b: $t, c: $t) -> $t { a.mul_add(b, c) }
            #[inline(always)]
            fn scalar_mul(a: $t, b: $t) -> $t { a * b }
        }
    };
}

ymm!(__m256, f32, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_broadcast_ss,
     _mm256_fmadd_ps, _mm256_mul_ps, _mm256_storeu_ps);
ymm!(__m256d, f64, 4, _mm256_setzero_pd, _mm256_set1_pd, _mm256_loadu_pd, _mm256_broadcast_sd,
     _mm256_fmadd_pd, _mm256_mul_pd, _mm256_storeu_pd);

/// The kernel, for `V`'s element type: `k` steps over the 6-row panel `a` and the
/// `2 * V::LANES`-column panel `b`, into the tile of `c` at strides `rsc`, `csc`.
///
/// Safety: as `GemmKernel::kernel`, and AVX2 and FMA must be enabled (the callers are
/// `#[target_feature(enable = "avx2,fma")]` functions, into which this is inlined).
#[inline(always)]
pub(crate) unsafe fn kernel<V: Ymm>(k: usize, alpha: V::Elem, a: *const V::Elem, b: *const V::Elem,
                                    beta: V::Elem, c: *mut V::Elem, rsc: isize, csc: isize)
{
    let (lanes, nr) = (V::LANES, 2 * V::LANES);
    debug_assert_ne!(k, 0);

    let mut ab = [[V::zero(); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let b0 = V::loadu(b);
        let b1 = V::loadu(b.add(lanes));
        for (i, abi) in ab.iter_mut().enumerate() {
            let ai = V::broadcast(a.add(i));
            abi[0] = V::fmadd(ai, b0, abi[0]);
            abi[1] = V::fmadd(ai, b1, abi[1]);
        }
        a = a.add(MR);
        b = b.add(nr);
    }

    let alphav = V::set1(alpha);
    if csc == 1 {
        let betav = V::set1(beta);
        for (i, abi) in ab.iter().enumerate() {
            let ci = c.offset(rsc * i as isize);
            let (mut c0, mut c1) = (V::zero(), V::zero());
            if beta != V::ZERO {
                c0 = V::mul(V::loadu(ci), betav);
                c1 = V::mul(V::loadu(ci.add(lanes)), betav);
            }
            V::storeu(ci, V::fmadd(alphav, abi[0], c0));
            V::storeu(ci.add(lanes), V::fmadd(alphav, abi[1], c1));
        }
    } else {
        // any other layout: element by element, the same operations (16 x 6 f32 at most)
        let mut tile = [V::ZERO; 96];
        for (i, abi) in ab.iter().enumerate() {
            V::storeu(tile.as_mut_ptr().add(i * nr), abi[0]);
            V::storeu(tile.as_mut_ptr().add(i * nr + lanes), abi[1]);
        }
        for i in 0..MR {
            for j in 0..nr {
                let cij = c.offset(rsc * i as isize + csc * j as isize);
                let betac = if beta != V::ZERO { V::scalar_mul(*cij, beta) } else { V::ZERO };
                *cij = V::mul_add(alpha, tile[i * nr + j], betac);
            }
        }
    }
}

/// `c <- alpha a B + beta c` for one row `a` (`1 x k`, stride `csa`) and a contiguous output row
/// `c`, without packing: the product of a batch of one (`x W^T`, `dY W`). Returns `false`, having
/// done nothing, unless B is row-major (`csb == 1`) or column-major (`rsb == 1`).
///
/// The packed loops would run a single-row product through the masked kernel, with 5 of its 6
/// rows padding, after packing all of B; this reads B once. It gives their bits: for each block
/// of `kc` values of `k`, each element is the chain of FMAs over the block from zero, scaled as
/// the masked kernel does (`m = fma(alpha, ab, 0)`, then `c = m` for the first block when
/// `beta == 0`, else `c = c * beta' + m`, with `beta' = 1` after the first block).
///
/// Safety: as `GemmKernel::kernel` for the pointers and strides; AVX2 and FMA must be enabled.
#[target_feature(enable="avx2,fma")]
pub(crate) unsafe fn sgemv_row(k: usize, n: usize, kc: usize, alpha: f32,
                               a: *const f32, csa: isize,
                               b: *const f32, rsb: isize, csb: isize,
                               beta: f32, c: *mut f32) -> bool
{
    sgemv_row_body(k, n, kc, alpha, a, csa, b, rsb, csb, beta, c)
}

/// [`sgemv_row`] compiled for AVX-512 (F and VL): the same instructions on 256-bit vectors, so the
/// same bits, with 32 vector registers (the four groups' accumulators and the eight values of
/// `a` stay in registers) and broadcasts folded into the FMAs.
///
/// Safety: as [`sgemv_row`]; AVX-512F and AVX-512VL must be enabled.
#[target_feature(enable="avx512f,avx512vl,avx2,fma")]
pub(crate) unsafe fn sgemv_row_avx512(k: usize, n: usize, kc: usize, alpha: f32,
                               a: *const f32, csa: isize,
                               b: *const f32, rsb: isize, csb: isize,
                               beta: f32, c: *mut f32) -> bool
{
    sgemv_row_body(k, n, kc, alpha, a, csa, b, rsb, csb, beta, c)
}

#[inline(always)]
unsafe fn sgemv_row_body(k: usize, n: usize, kc: usize, alpha: f32,
                               a: *const f32, csa: isize,
                               b: *const f32, rsb: isize, csb: isize,
                               beta: f32, c: *mut f32) -> bool
{
    if csb != 1 && rsb != 1 {
        return false;
    }
    let at = |p: usize| *a.offset(csa * p as isize);
    let bp = |p: usize, j: usize| b.offset(rsb * p as isize + csb * j as isize);
    // the masked kernel's finish of one block, vector and scalar
    let alphav = _mm256_set1_ps(alpha);
    let finish = |c: *mut f32, ab: __m256, betap: f32| {
        let m = _mm256_fmadd_ps(alphav, ab, _mm256_setzero_ps());
        let v = if betap == 0. { m } else { _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(c), _mm256_set1_ps(betap)), m) };
        _mm256_storeu_ps(c, v);
    };
    let finish1 = |c: *mut f32, ab: f32, betap: f32| {
        let m = alpha.mul_add(ab, 0.);
        *c = if betap == 0. { m } else { *c * betap + m };
    };

    let mut p0 = 0;
    while p0 < k {
        let kb = kc.min(k - p0);
        let betap = if p0 == 0 { beta } else { 1. };
        let mut j = 0;
        if csb == 1 {
            // B's rows are contiguous: 8 vectors of columns at a time, then one, then singles
            while j + 64 <= n {
                let mut ab = [_mm256_setzero_ps(); 8];
                for p in p0..p0 + kb {
                    let av = _mm256_set1_ps(at(p));
                    for (v, abv) in ab.iter_mut().enumerate() {
                        *abv = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp(p, j + 8 * v)), *abv);
                    }
                }
                for (v, abv) in ab.iter().enumerate() {
                    finish(c.add(j + 8 * v), *abv, betap);
                }
                j += 64;
            }
            while j + 8 <= n {
                let mut ab = _mm256_setzero_ps();
                for p in p0..p0 + kb {
                    ab = _mm256_fmadd_ps(_mm256_set1_ps(at(p)), _mm256_loadu_ps(bp(p, j)), ab);
                }
                finish(c.add(j), ab, betap);
                j += 8;
            }
        } else {
            // B's columns are contiguous: blocks of 8 values of 8 columns, transposed in
            // registers, for G groups of 8 columns at a time (4, then 1 for the rest)
            macro_rules! groups {
                ($g:literal) => {
                    while j + 8 * $g <= n {
                        let mut ab = [_mm256_setzero_ps(); $g];
                        let mut p = p0;
                        while p + 8 <= p0 + kb {
                            let av: [__m256; 8] = core::array::from_fn(|q| _mm256_set1_ps(at(p + q)));
                            // one group after the other, written out: the accumulators stay
                            // in registers
                            for g in 0..$g {
                                let cols: [__m256; 8] =
                                    core::array::from_fn(|q| _mm256_loadu_ps(bp(p, j + 8 * g + q)));
                                let rows = super::packing::transpose8(cols);
                                let mut abg = ab[g];
                                for q in 0..8 {
                                    abg = _mm256_fmadd_ps(av[q], rows[q], abg);
                                }
                                ab[g] = abg;
                            }
                            p += 8;
                        }
                        for p in p..p0 + kb {
                            for (g, abg) in ab.iter_mut().enumerate() {
                                let row: [f32; 8] = core::array::from_fn(|q| *bp(p, j + 8 * g + q));
                                *abg = _mm256_fmadd_ps(_mm256_set1_ps(at(p)), _mm256_loadu_ps(row.as_ptr()), *abg);
                            }
                        }
                        for (g, abg) in ab.iter().enumerate() {
                            finish(c.add(j + 8 * g), *abg, betap);
                        }
                        j += 8 * $g;
                    }
                };
            }
            groups!(4);
            groups!(1);
        }
        for j in j..n {
            let mut ab = 0f32;
            for p in p0..p0 + kb {
                ab = at(p).mul_add(*bp(p, j), ab);
            }
            finish1(c.add(j), ab, betap);
        }
        p0 += kb;
    }
    true
}
