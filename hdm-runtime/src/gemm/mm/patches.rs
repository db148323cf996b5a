// hdm's own file (not from matrixmultiply): a convolution's patch matrix as the B operand of the
// packed loops (`loops::gemm_loop_by`), packed into B~ straight from the images. MIT OR
// Apache-2.0, as the rest of hdm.

//! An implicit im2col. A convolution's product `W P` (forward) or `D P^T` (weight gradient) reads
//! its patch matrix `P` only through the packing of B~; here the packing computes `P`'s values
//! from the images instead of copying them from a `P` written beforehand. B~ holds exactly the
//! values an explicit `P` would hand the kernel's packing (copies of image values and zeros), so
//! every product has the same bits either way.
//!
//! Only stride-1 convolutions whose output is as wide as their input ("same" along the width):
//! there each patch row is the image plane shifted by a constant, `P[(c, i, j), (s, oh, ow)] =
//! x[s][c * plane + (oh + i - ph) * width + (ow + j - pw)]`, zero where that leaves the plane, so
//! 16 consecutive columns of a patch row are one masked load of 16 consecutive image values (two
//! when the columns straddle two samples): AVX-512's masked loads for the AVX-512 kernel, two
//! AVX2 `vmaskmovps` of 8 for the 6 x 16 FMA kernel, with one 16-bit mask per kernel row and one
//! per kernel column made once per block of 16 columns. Other kernels and f64 take the scalar
//! path, which is the definition (and slower than writing the patches: `conv.rs` asks
//! [`PatchMatrix::new`](crate::gemm::PatchMatrix), which packs only where it is fast).

use super::kernel::{Element, GemmKernel, GemmSelect};
use super::packing::PackSlice;
use super::loops::{gemm_loop_by, PackB};

#[cfg(target_arch="x86")]
use core::arch::x86::*;
#[cfg(target_arch="x86_64")]
use core::arch::x86_64::*;

/// The largest kernel height and width the packing handles (one 16-lane mask per kernel row and
/// per kernel column on the stack).
pub(crate) const PATCH_KERNEL_MAX: usize = 16;

/// The shape of a patch matrix, without its images: rows `row0..row0 + rows` of the patch matrix
/// of `count` samples (columns `s * positions + oh * out_width + ow`); B is that matrix, or its
/// transpose when `transposed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchDims {
    /// Elements from one sample's image to the next.
    pub(crate) sample_stride: usize,
    pub(crate) count: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_height: usize,
    pub(crate) out_width: usize,
    pub(crate) kernel: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) padding: [usize; 2],
    pub(crate) row0: usize,
    pub(crate) rows: usize,
    pub(crate) transposed: bool,
}

impl PatchDims {
    /// Output positions per sample.
    pub(crate) fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Columns of the patch matrix: every sample's positions.
    pub(crate) fn columns(&self) -> usize {
        self.count * self.positions()
    }

    /// B's rows and columns.
    pub(crate) fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.columns(), self.rows)
        } else {
            (self.rows, self.columns())
        }
    }

    /// Whether every patch row is the image plane shifted by a constant (stride 1, the output as
    /// wide as the input), with at least 16 positions per sample (a block of 16 columns then spans
    /// at most two samples): 16 columns are one or two masked loads.
    pub(crate) fn shifted(&self) -> bool {
        self.stride == [1, 1] && self.out_width == self.width && self.positions() >= 16
    }

    /// Whether the packing handles these dimensions: shifted patch rows (see
    /// [`shifted`](Self::shifted)), the output sizes of the geometry, kernels up to
    /// [`PATCH_KERNEL_MAX`], planes whose rows and columns fit the 32-bit lanes of the masks'
    /// comparisons, offsets that fit `isize`. (Other geometries, strided ones, would gather; on a
    /// Zen 4 masked gathers packed the discriminator's patches 2-5% slower than writing them:
    /// DEVELOPERS.md.)
    pub(crate) fn supported(&self) -> bool {
        let ([kh, kw], [sh, sw], [ph, pw]) = (self.kernel, self.stride, self.padding);
        self.shifted()
            && kh <= PATCH_KERNEL_MAX
            && kw <= PATCH_KERNEL_MAX
            && kh <= self.height + 2 * ph
            && kw <= self.width + 2 * pw
            && self.out_height == (self.height + 2 * ph - kh) / sh + 1
            && self.out_width == (self.width + 2 * pw - kw) / sw + 1
            && self.height <= 1 << 20
            && self.width <= 1 << 20
            && self.sample_stride.checked_mul(self.count + 1).is_some_and(|v| v <= isize::MAX as usize)
    }

    /// Patch row `q`'s channel, kernel row and kernel column.
    #[inline(always)]
    fn split(&self, q: usize) -> (usize, usize, usize) {
        let [kh, kw] = self.kernel;
        (q / (kh * kw), q / kw % kh, q % kw)
    }

    /// `P[q, col]`, patch row `q` counted from row 0 of the whole patch matrix.
    ///
    /// # Safety
    /// `x` points to `count` images `sample_stride` apart; `q` and `col` are inside the matrix.
    #[inline(always)]
    unsafe fn value<T: Copy>(&self, x: *const T, zero: T, q: usize, col: usize) -> T {
        let p = self.positions();
        let (s, pos) = (col / p, col % p);
        let (oh, ow) = (pos / self.out_width, pos % self.out_width);
        let (c, i, j) = self.split(q);
        let ih = (oh * self.stride[0] + i).wrapping_sub(self.padding[0]);
        let iw = (ow * self.stride[1] + j).wrapping_sub(self.padding[1]);
        if ih < self.height && iw < self.width {
            // SAFETY: inside the plane, so inside sample `s`'s image (this function's contract).
            unsafe { *x.add(s * self.sample_stride + (c * self.height + ih) * self.width + iw) }
        } else {
            zero
        }
    }
}

/// Patch rows one after the other: channel, kernel row and kernel column, without divisions.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[derive(Clone, Copy)]
struct Rows {
    i: usize,
    j: usize,
    /// Where the row reads relative to the output position: `c * plane + (i - ph) * width + (j -
    /// pw)`.
    off: isize,
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl Rows {
    #[inline(always)]
    fn at(d: &PatchDims, q: usize) -> Rows {
        let (c, i, j) = d.split(q);
        let w = d.width as isize;
        let off = (c * d.height * d.width) as isize + (i as isize - d.padding[0] as isize) * w + j as isize
            - d.padding[1] as isize;
        Rows { i, j, off }
    }

    #[inline(always)]
    fn advance(&mut self, d: &PatchDims) {
        let [kh, kw] = d.kernel;
        let w = d.width as isize;
        self.j += 1;
        self.off += 1;
        if self.j == kw {
            // back to column 0, down one kernel row
            self.j = 0;
            self.i += 1;
            self.off += w - kw as isize;
            if self.i == kh {
                // back to kernel row 0, next channel: the plane minus the kh rows just walked
                self.i = 0;
                self.off += (d.height * d.width) as isize - kh as isize * w;
            }
        }
    }
}

/// A patch matrix over images at `x`: the B operand of `gemm_loop_by`.
pub(crate) struct Patches<T> {
    pub(crate) x: *const T,
    pub(crate) dims: PatchDims,
}

/// Whether kernel `K` packs patches with vector loads (see [`vector_packing`]), not one value at
/// a time.
fn packs_fast<K: GemmKernel>() -> bool {
    vector_packing::<K>().is_some()
}

/// The vector extension kernel `K`'s packing uses: AVX-512 for the AVX-512 kernels (16- and
/// 32-column panels), AVX2 for the 6 x 16 FMA kernel (f32 all), none for the others.
fn vector_packing<K: GemmKernel>() -> Option<&'static str> {
    let x86 = cfg!(any(target_arch="x86", target_arch="x86_64"));
    if !x86 || !(K::NR == 16 || K::NR == 32) || size_of::<K::Elem>() != 4 {
        return None;
    }
    match K::NAME {
        "avx512f" | "avx512f-12x32" => Some("avx512f"),
        "fma+avx2" => Some("avx2"),
        _ => None,
    }
}

/// Selector: whether the selected kernel packs patches fast (see [`packs_fast`]).
pub(crate) struct FastPatches;

impl<T> GemmSelect<T> for FastPatches {
    type Output = bool;

    fn select<K: GemmKernel<Elem = T>>(self, _kernel: K) -> bool where T: Element {
        packs_fast::<K>()
    }
}

/// `C <- alpha A B + beta C` with B a patch matrix: the arguments of `gemm_loop_by`, which
/// `select` runs with the selected kernel.
pub(crate) struct PatchProduct<T> {
    pub(crate) m: usize,
    pub(crate) alpha: T,
    pub(crate) a: *const T, pub(crate) rsa: isize, pub(crate) csa: isize,
    pub(crate) b: Patches<T>,
    pub(crate) beta: T,
    pub(crate) c: *mut T, pub(crate) rsc: isize, pub(crate) csc: isize,
    pub(crate) ws: *mut T, pub(crate) ws_len: usize,
}

impl<T> GemmSelect<T> for PatchProduct<T> {
    type Output = ();

    fn select<K: GemmKernel<Elem = T>>(self, _kernel: K) where T: Element {
        let PatchProduct { m, alpha, a, rsa, csa, b, beta, c, rsc, csc, ws, ws_len } = self;
        let (k, n) = b.dims.shape();
        // SAFETY: built only by `mm::{s,d}gemm_patches`, whose contract covers `a`, `c`, `ws` as
        // `gemm_loop`'s, and the images behind `b`.
        unsafe { gemm_loop_by::<K, _>(m, k, n, alpha, a, rsa, csa, &b, beta, c, rsc, csc, ws, ws_len, None) }
    }
}

impl<T: Element> PackB<T> for Patches<T> {
    unsafe fn pack<K: GemmKernel<Elem = T>>(&self, k0: usize, kc: usize, n0: usize, nc: usize,
                                            pack: PackSlice<'_, T>)
    {
        #[cfg(any(target_arch="x86", target_arch="x86_64"))]
        if let Some(ext) = vector_packing::<K>() {
            // SAFETY: the AVX-512 kernel is selected only on CPUs with avx512f (and avx2), the
            // FMA one only with avx2 and fma; `T` is f32 (the only 4-byte element); the block
            // and `pack` are this call's contract.
            unsafe {
                let (x, out) = (self.x.cast::<f32>(), pack.as_mut_ptr().cast::<f32>());
                if ext == "avx512f" {
                    pack_avx512(&self.dims, x, k0, kc, n0, nc, K::NR, out);
                } else {
                    pack_avx2(&self.dims, x, k0, kc, n0, nc, K::NR, out);
                }
            }
            return;
        }
        // SAFETY: this call's contract.
        unsafe { pack_scalar::<K, T>(&self.dims, self.x, k0, kc, n0, nc, pack) }
    }
}

/// The definition: B~ one value at a time.
unsafe fn pack_scalar<K: GemmKernel<Elem = T>, T: Element>(d: &PatchDims, x: *const T, k0: usize,
                                                          kc: usize, n0: usize, nc: usize,
                                                          pack: PackSlice<'_, T>)
{
    let nr = K::NR;
    let out = pack.as_mut_ptr();
    for p in 0..nc.div_ceil(nr) {
        for kk in 0..kc {
            for l in 0..nr {
                let n = p * nr + l;
                let v = if n >= nc {
                    T::zero()
                } else if d.transposed {
                    // SAFETY: row `n0 + n` and column `k0 + kk` are inside the matrix.
                    unsafe { d.value(x, T::zero(), d.row0 + n0 + n, k0 + kk) }
                } else {
                    // SAFETY: as above, with the roles swapped.
                    unsafe { d.value(x, T::zero(), d.row0 + k0 + kk, n0 + n) }
                };
                // SAFETY: `pack` holds `kc * round_up(nc, NR)` elements.
                unsafe { *out.add((p * kc + kk) * nr + l) = v };
            }
        }
    }
}

/// The masks and sources of 16 consecutive columns `j0..j0 + 16` of the patch matrix.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
struct Block {
    /// Lane `l` of the first sample reads `first + l + offset(q)`.
    first: *const f32,
    /// Lane `l` of the next sample reads `next + l + offset(q)`.
    next: *const f32,
    /// Lanes in the first sample.
    in_first: u16,
    /// Whether no lane is in the next sample (one load per row).
    one_sample: bool,
    /// Lanes whose output row reads inside the plane, per kernel row.
    row_ok: [u16; PATCH_KERNEL_MAX],
    /// Lanes whose output column reads inside the plane, per kernel column.
    col_ok: [u16; PATCH_KERNEL_MAX],
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl Block {
    /// Columns `j0..j0 + lanes` (`lanes <= 16`, all inside the matrix); the others are zero.
    ///
    /// # Safety
    /// The vector extension of `L`.
    #[inline(always)]
    unsafe fn new<L: Lanes16>(d: &PatchDims, x: *const f32, j0: usize, lanes: usize) -> Block {
        let p = d.positions();
        let (s, pos0) = (j0 / p, j0 % p);
        let mut b = Block {
            // (wrapping: the addresses are only formed here, and read through masks)
            first: x.wrapping_add(s * d.sample_stride + pos0),
            next: x.wrapping_add((s + 1) * d.sample_stride).wrapping_add(pos0).wrapping_sub(p),
            in_first: 0,
            one_sample: pos0 + lanes <= p,
            row_ok: [0; PATCH_KERNEL_MAX],
            col_ok: [0; PATCH_KERNEL_MAX],
        };
        // each lane's output row and column (far outside the plane past `lanes`), then one
        // vector comparison per kernel row and per kernel column
        let (mut oh, mut ow) = (pos0 / d.width, pos0 % d.width);
        let (mut ohs, mut ows) = ([-(1 << 24); 16], [-(1 << 24); 16]);
        for l in 0..lanes {
            if pos0 + l < p {
                b.in_first |= 1 << l;
            }
            (ohs[l], ows[l]) = (oh as i32, ow as i32);
            ow += 1;
            if ow == d.width {
                ow = 0;
                oh += 1;
                if oh == d.out_height {
                    oh = 0;
                }
            }
        }
        for i in 0..d.kernel[0] {
            // SAFETY: this function's contract.
            b.row_ok[i] = unsafe { L::inside(&ohs, i as i32 - d.padding[0] as i32, d.height as i32) };
        }
        for j in 0..d.kernel[1] {
            // SAFETY: as above.
            b.col_ok[j] = unsafe { L::inside(&ows, j as i32 - d.padding[1] as i32, d.width as i32) };
        }
        b
    }
}

/// 16 lanes of f32 in the registers of one vector extension: the loads, stores and comparisons
/// the packing needs. Each method needs the extension (the packing's callers enable it).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
trait Lanes16: Copy {
    /// The lanes `l` with `0 <= v[l] + add < limit`.
    unsafe fn inside(v: &[i32; 16], add: i32, limit: i32) -> u16;
    /// The columns of the block's row at `r`, zero in the lanes outside the block.
    unsafe fn row(b: &Block, r: Rows) -> Self;
    unsafe fn zero() -> Self;
    /// Stores 16 values at `p`, 64-byte aligned.
    unsafe fn store(self, p: *mut f32);
    unsafe fn halves(self) -> [__m256; 2];
}

/// AVX-512: masked loads (no fault on a masked lane).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[derive(Clone, Copy)]
struct Zmm(__m512);

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl Lanes16 for Zmm {
    #[inline(always)]
    unsafe fn inside(v: &[i32; 16], add: i32, limit: i32) -> u16 {
        // SAFETY: avx512f (the caller's); `v` holds 16 lanes.
        unsafe {
            let v = _mm512_add_epi32(_mm512_loadu_si512(v.as_ptr().cast()), _mm512_set1_epi32(add));
            _mm512_cmplt_epu32_mask(v, _mm512_set1_epi32(limit))
        }
    }

    #[inline(always)]
    unsafe fn row(b: &Block, r: Rows) -> Zmm {
        let ok = b.row_ok[r.i] & b.col_ok[r.j];
        // SAFETY: masked lanes are never read; the others are inside their sample's plane.
        unsafe {
            let v = _mm512_maskz_loadu_ps(ok & b.in_first, b.first.wrapping_offset(r.off));
            if b.one_sample {
                return Zmm(v);
            }
            Zmm(_mm512_mask_loadu_ps(v, ok & !b.in_first, b.next.wrapping_offset(r.off)))
        }
    }

    #[inline(always)]
    unsafe fn zero() -> Zmm {
        Zmm(_mm512_setzero_ps())
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's.
        unsafe { _mm512_store_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn halves(self) -> [__m256; 2] {
        [_mm512_castps512_ps256(self.0), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)))]
    }
}

/// AVX2: two masked loads of 8 (`vmaskmovps`, no fault on a masked lane either).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[derive(Clone, Copy)]
struct Ymm([__m256; 2]);

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl Ymm {
    /// Lanes `from..from + 8` of `bits` as an AVX2 load mask.
    #[inline(always)]
    unsafe fn mask(bits: u16, from: u32) -> __m256i {
        let b = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((bits >> from) as i32), b), b)
    }

    #[inline(always)]
    unsafe fn load(bits: u16, p: *const f32) -> [__m256; 2] {
        // SAFETY: the caller's: masked lanes are never read.
        unsafe {
            [_mm256_maskload_ps(p, Self::mask(bits, 0)), _mm256_maskload_ps(p.wrapping_add(8), Self::mask(bits, 8))]
        }
    }
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl Lanes16 for Ymm {
    #[inline(always)]
    unsafe fn inside(v: &[i32; 16], add: i32, limit: i32) -> u16 {
        // SAFETY: avx2 (the caller's); `v` holds 16 lanes.
        let (a, lim, neg) = (_mm256_set1_epi32(add), _mm256_set1_epi32(limit), _mm256_set1_epi32(-1));
        let mut bits = 0;
        for h in 0..2 {
            // SAFETY: avx2 (the caller's); `v` holds 16 lanes.
            let v = unsafe { _mm256_add_epi32(_mm256_loadu_si256(v.as_ptr().add(8 * h).cast()), a) };
            let ok = _mm256_and_si256(_mm256_cmpgt_epi32(v, neg), _mm256_cmpgt_epi32(lim, v));
            bits |= (_mm256_movemask_ps(_mm256_castsi256_ps(ok)) as u16) << (8 * h);
        }
        bits
    }

    #[inline(always)]
    unsafe fn row(b: &Block, r: Rows) -> Ymm {
        let ok = b.row_ok[r.i] & b.col_ok[r.j];
        // SAFETY: masked lanes are never read; the others are inside their sample's plane.
        unsafe {
            let v = Self::load(ok & b.in_first, b.first.wrapping_offset(r.off));
            if b.one_sample {
                return Ymm(v);
            }
            // (a masked lane loads +0.0: all bits clear, so OR merges the two samples)
            let w = Self::load(ok & !b.in_first, b.next.wrapping_offset(r.off));
            Ymm([_mm256_or_ps(v[0], w[0]), _mm256_or_ps(v[1], w[1])])
        }
    }

    #[inline(always)]
    unsafe fn zero() -> Ymm {
        Ymm([_mm256_setzero_ps(); 2])
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's.
        unsafe {
            _mm256_store_ps(p, self.0[0]);
            _mm256_store_ps(p.add(8), self.0[1]);
        }
    }

    #[inline(always)]
    unsafe fn halves(self) -> [__m256; 2] {
        self.0
    }
}

/// The packing with AVX-512 (see `Patches::pack`).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx512f,avx2")]
unsafe fn pack_avx512(d: &PatchDims, x: *const f32, k0: usize, kc: usize, n0: usize, nc: usize,
                      nr: usize, out: *mut f32)
{
    // SAFETY: the caller's.
    unsafe { pack_with::<Zmm>(d, x, k0, kc, n0, nc, nr, out) }
}

/// The packing with AVX2 (see `Patches::pack`).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[target_feature(enable="avx2")]
unsafe fn pack_avx2(d: &PatchDims, x: *const f32, k0: usize, kc: usize, n0: usize, nc: usize,
                    nr: usize, out: *mut f32)
{
    // SAFETY: the caller's.
    unsafe { pack_with::<Ymm>(d, x, k0, kc, n0, nc, nr, out) }
}

#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline(always)]
unsafe fn pack_with<L: Lanes16>(d: &PatchDims, x: *const f32, k0: usize, kc: usize, n0: usize,
                                nc: usize, nr: usize, out: *mut f32)
{
    debug_assert!(nr == 16 || nr == 32);
    if d.transposed {
        pack_transposed::<L>(d, x, k0, kc, n0, nc, nr, out)
    } else {
        pack_rows::<L>(d, x, k0, kc, n0, nc, nr, out)
    }
    // A 32-column panel whose second 16 columns lie past the block: zeros there (the loops
    // above make 16 columns at a time, and only those inside the block).
    let sixteens = nc.div_ceil(16);
    if nr == 32 && sixteens % 2 == 1 {
        let half = half_panel(out, kc, nr, sixteens);
        for kk in 0..kc {
            // SAFETY: inside the last panel, 64-byte aligned (this function's contract).
            L::zero().store(half.add(kk * nr));
        }
    }
}

/// Where the 16 columns `16 t..16 t + 16` of B~ start: panel `16 t / nr`, `16 t % nr` into it.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline(always)]
unsafe fn half_panel(out: *mut f32, kc: usize, nr: usize, t: usize) -> *mut f32 {
    out.add((16 * t / nr) * kc * nr + 16 * t % nr)
}

/// B = P: columns `n0 + 16 t ..` of patch rows `k0..k0 + kc` go to the panel that holds them
/// (`nr` = 16 or 32 columns a panel).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline(always)]
unsafe fn pack_rows<L: Lanes16>(d: &PatchDims, x: *const f32, k0: usize, kc: usize, n0: usize,
                                nc: usize, nr: usize, out: *mut f32)
{
    let first = Rows::at(d, d.row0 + k0);
    for t in 0..nc.div_ceil(16) {
        let block = Block::new::<L>(d, x, n0 + 16 * t, (nc - 16 * t).min(16));
        let panel = half_panel(out, kc, nr, t);
        let mut r = first;
        for kk in 0..kc {
            // SAFETY: this function's contract; B~'s panels are 64-byte aligned.
            L::row(&block, r).store(panel.add(kk * nr));
            r.advance(d);
        }
    }
}

/// B = P^T: patch rows `n0 + 16 t ..` (B's columns) at columns `k0..k0 + kc` of P (its rows) go
/// to the panel that holds them, 16 columns of P at a time (each block made once) transposed in
/// registers.
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline(always)]
unsafe fn pack_transposed<L: Lanes16>(d: &PatchDims, x: *const f32, k0: usize, kc: usize,
                                      n0: usize, nc: usize, nr: usize, out: *mut f32)
{
    let first = Rows::at(d, d.row0 + n0);
    for u in 0..kc.div_ceil(16) {
        let cols = (kc - 16 * u).min(16);
        let block = Block::new::<L>(d, x, k0 + 16 * u, cols);
        let mut q = first;
        for t in 0..nc.div_ceil(16) {
            let rows = (nc - 16 * t).min(16);
            // (loops, not closures: a closure would not inherit the caller's vector extension,
            // and its intrinsics would become calls)
            let mut r = [L::zero(); 16];
            if rows == 16 {
                for rl in r.iter_mut() {
                    *rl = L::row(&block, q);
                    q.advance(d);
                }
            } else {
                for rl in r.iter_mut().take(rows) {
                    *rl = L::row(&block, q);
                    q.advance(d);
                }
            }
            let panel = half_panel(out, kc, nr, t).add(16 * u * nr);
            if cols == 16 {
                store_transposed(&r, panel, nr, 16);
            } else {
                store_transposed(&r, panel, nr, cols);
            }
        }
    }
}

/// Columns `0..cols` of the 16 x 16 block `r` (row `l` in `r[l]`) as rows of a B~ panel whose
/// rows are `nr` apart: four 8 x 8 transposes (rows 8g.., columns 8h..).
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[inline(always)]
unsafe fn store_transposed<L: Lanes16>(r: &[L; 16], panel: *mut f32, nr: usize, cols: usize) {
    let mut halves = [[_mm256_setzero_ps(); 2]; 16];
    for (h, v) in halves.iter_mut().zip(r) {
        *h = v.halves();
    }
    for h in 0..2 {
        for g in 0..2 {
            let mut q = [_mm256_setzero_ps(); 8];
            for (i, qi) in q.iter_mut().enumerate() {
                *qi = halves[8 * g + i][h];
            }
            let col = super::packing::transpose8(q);
            for (m, v) in col.iter().enumerate() {
                if 8 * h + m < cols {
                    // SAFETY: the panel holds `cols` rows of `nr` here, 32-byte aligned.
                    _mm256_store_ps(panel.add((8 * h + m) * nr + 8 * g), *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The packing against an explicit patch matrix, on every kernel the CPU has (the AVX-512
    //! one packs with masked loads, the others one value at a time): the same bits.

    use super::super::kernel::{GemmKernel, GemmSelect};
    use super::super::loops::{gemm_loop, gemm_loop_by, workspace_len, WORKSPACE_ALIGN};
    use super::super::sgemm_kernel;
    use super::{PatchDims, Patches};

    #[derive(Clone, Copy)]
    struct Case {
        channels: usize,
        dims: PatchDims,
        m: usize,
        beta: f32,
    }

    fn val(i: usize) -> f32 {
        ((i * 37 + 11) % 101) as f32 / 37.0 - 1.3
    }

    impl GemmSelect<f32> for Case {
        type Output = ();

        fn select<K: GemmKernel<Elem = f32>>(self, _kernel: K) {
            let Case { channels, dims: d, m, beta } = self;
            let plane = d.height * d.width;
            // images with a gap between samples, which no patch may read
            let x: Vec<f32> = (0..d.count * d.sample_stride).map(|i| val(i + 7)).collect();
            // the explicit patch matrix, rows `row0..row0 + rows`
            let cols = d.columns();
            let [kh, kw] = d.kernel;
            let mut p = vec![0f32; d.rows * cols];
            for r in 0..d.rows {
                let q = d.row0 + r;
                let (c, i, j) = (q / (kh * kw), q / kw % kh, q % kw);
                assert!(c < channels);
                for col in 0..cols {
                    let (s, pos) = (col / d.positions(), col % d.positions());
                    let (oh, ow) = (pos / d.out_width, pos % d.out_width);
                    let ih = (oh * d.stride[0] + i) as isize - d.padding[0] as isize;
                    let iw = (ow * d.stride[1] + j) as isize - d.padding[1] as isize;
                    if ih >= 0 && iw >= 0 && (ih as usize) < d.height && (iw as usize) < d.width {
                        p[r * cols + col] = x[s * d.sample_stride + c * plane + ih as usize * d.width + iw as usize];
                    }
                }
            }
            let (k, n) = d.shape();
            let (rsb, csb) = if d.transposed { (1, cols as isize) } else { (cols as isize, 1) };
            let a: Vec<f32> = (0..m * k).map(|i| val(i + 3) * 0.7).collect();
            let c0: Vec<f32> = (0..m * n).map(|i| val(i + 5)).collect();
            let len = workspace_len::<K>();
            let mut ws = vec![0f32; len + WORKSPACE_ALIGN];
            let skip = ws.as_ptr().align_offset(WORKSPACE_ALIGN);
            let (mut want, mut got) = (c0.clone(), c0);
            // SAFETY: the strides describe the vectors' shapes; `x` holds `count` images
            // `sample_stride` apart; `ws[skip..]` is aligned, unshared and as long as
            // `workspace_len::<K>()` says.
            unsafe {
                let ws = ws.as_mut_ptr().add(skip);
                gemm_loop::<K>(m, k, n, 1.0, a.as_ptr(), k as isize, 1, p.as_ptr(), rsb, csb, beta,
                               want.as_mut_ptr(), n as isize, 1, ws, len);
                gemm_loop_by::<K, _>(m, k, n, 1.0, a.as_ptr(), k as isize, 1, &Patches { x: x.as_ptr(), dims: d },
                                     beta, got.as_mut_ptr(), n as isize, 1, ws, len, None);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "kernel {} on {d:?}, m {m}, beta {beta}", K::NAME);
        }
    }

    #[test]
    fn packed_patches_give_the_products_of_the_written_patch_matrix() {
        // (channels, height, width, kernel, stride, padding, samples)
        let shapes = [
            (3, 4, 5, [3, 3], [1, 1], [1, 1], 1),
            (2, 7, 7, [5, 5], [1, 1], [2, 2], 3),
            (11, 6, 6, [5, 5], [1, 1], [2, 2], 2), // 275 patch rows: two depth blocks
            (3, 8, 6, [5, 5], [1, 1], [0, 2], 2),  // an output lower than the input
            (1, 28, 28, [5, 5], [1, 1], [2, 2], 2),
            (4, 20, 20, [3, 3], [1, 1], [1, 1], 3), // 1200 columns: two column blocks
            (5, 6, 9, [1, 3], [1, 1], [0, 1], 2),
            (3, 9, 4, [4, 1], [1, 1], [1, 0], 2),
            (2, 8, 8, [1, 1], [1, 1], [0, 0], 3),
            // not packed from the images: strided, narrower than the input, small planes
            (3, 14, 14, [4, 4], [2, 2], [1, 1], 3),
            (2, 7, 7, [3, 3], [1, 1], [0, 0], 4),
            (5, 9, 11, [3, 2], [3, 2], [2, 0], 2),
            (2, 3, 3, [2, 2], [1, 1], [0, 0], 5),
            (17, 5, 5, [4, 4], [2, 2], [1, 1], 3), // 272 patch rows
            (3, 30, 30, [3, 3], [1, 1], [0, 0], 2), // 1568 columns
            (2, 6, 6, [9, 9], [1, 1], [4, 4], 2),
        ];
        // (the strided and narrow shapes are not supported: written patches, not packed)
        let mut seen = [0; 2];
        for (channels, height, width, kernel, stride, padding, count) in shapes {
            let out_height = (height + 2 * padding[0] - kernel[0]) / stride[0] + 1;
            let out_width = (width + 2 * padding[1] - kernel[1]) / stride[1] + 1;
            let q = channels * kernel[0] * kernel[1];
            let image = channels * height * width;
            for (row0, rows) in [(0, q), (1, q - 1), (q / 3, q / 2)] {
                for transposed in [false, true] {
                    for (m, beta) in [(5, 0.0), (17, 1.5), (64, 0.0)] {
                        let dims = PatchDims {
                            sample_stride: image + 3,
                            count,
                            height,
                            width,
                            out_height,
                            out_width,
                            kernel,
                            stride,
                            padding,
                            row0,
                            rows,
                            transposed,
                        };
                        if !dims.supported() {
                            continue;
                        }
                        seen[dims.shifted() as usize] += 1;
                        sgemm_kernel::each_kernel(Case { channels, dims, m, beta });
                    }
                }
            }
        }
        assert!(seen[1] >= 150, "{seen:?} cases");
    }
}
