// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), file
// `src/gemm.rs`; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm:
// - The packing buffers (A~, B~) and the masked-kernel scratch tile live in a workspace the caller
//   passes in (`ws`, `ws_len`), carved exactly as upstream's `make_packing_buffer` sized its
//   per-call allocation; `workspace_len` gives the size that fits every product. Upstream
//   allocated on every call and kept the scratch tile in a thread-local.
// - The threading (thread-tree, `LoopThreadConfig`, the `Ptr` Send/Sync wrapper) is removed:
//   loops 3 and 2 run serially, which is what upstream does with one thread. hdm parallelises
//   outside this code, over blocks of output columns (see `gemm/pool.rs`).
// - The public `sgemm`/`dgemm`/`cgemm`/`zgemm` entry points are replaced by `GemmParameters`
//   (now carrying the workspace), which `mm/mod.rs` hands to the kernel selection; the complex
//   variants are dropped.
// - The AVX-512 limits (16 x 16 kernels, 64-byte alignment) are the x86/x86_64 ones (upstream:
//   with `cfg(has_avx512)`); `dprint!` debugging calls are dropped.
// - The masked kernel's scratch tile is row-major (upstream: column-major); A~ is rounded up so
//   that B~ after it is aligned whatever MR is (the f32 AVX2 kernel is 6 x 16); a product with a
//   single row of C goes to the kernel's `gemv_row` when it has one.
// - B is packed through the `PackB` trait (`gemm_loop_by`): a strided matrix as upstream, or a
//   convolution's patch matrix packed straight from its image (`patches.rs`).
// - `gemm_loop_by` takes a hook, `then`, called with each block of rows of C as soon as they
//   are final (the product's epilogue, for an update made while the rows are in cache).
// The loop structure, blocking, kernel calls and the order of every floating-point operation are
// unchanged, so results are bit-identical to upstream's on the same machine.
//
// Copyright 2016 - 2018 Ulrik Sverdrup "bluss"
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// http://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or http://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use core::cmp::min;
use core::mem::size_of;
use core::slice;

use super::util::range_chunk;
use super::util::round_up_to;
use super::util::PointerExt;

use super::kernel::{ConstNum, Element};
use super::kernel::GemmKernel;
use super::kernel::GemmSelect;
use super::packing::PackSlice;

/// Alignment in bytes of a workspace (hdm addition): the largest any kernel asks for.
pub(crate) const WORKSPACE_ALIGN: usize = KERNEL_MAX_ALIGN;

/// The arguments of one product, plus the packing workspace (hdm: `ws`, `ws_len` added).
///
/// `select` runs the product with the kernel it is given; its safety rests on whoever built
/// the value (see `mm::gemm`).
pub(crate) struct GemmParameters<'h, T> {
    // Parameters grouped logically in rows
    pub(crate) m: usize, pub(crate) k: usize, pub(crate) n: usize,
    pub(crate) alpha: T,
    pub(crate) a: *const T, pub(crate) rsa: isize, pub(crate) csa: isize,
    pub(crate) beta: T,
    pub(crate) b: *const T, pub(crate) rsb: isize, pub(crate) csb: isize,
    pub(crate) c:   *mut T, pub(crate) rsc: isize, pub(crate) csc: isize,
    pub(crate) ws: *mut T, pub(crate) ws_len: usize,
    pub(crate) then: Option<&'h mut dyn FnMut(usize, usize)>,
}

impl<T> GemmSelect<T> for GemmParameters<'_, T> {
    type Output = ();

    fn select<K>(self, _kernel: K)
       where K: GemmKernel<Elem=T>,
             T: Element,
    {
        // This is where we enter with the configuration specific kernel
        // We could cache kernel specific function pointers here, if we
        // needed to support more constly configuration detection.
        let GemmParameters {
            m, k, n,
            alpha,
            a, rsa, csa,
            b, rsb, csb,
            beta,
            c, rsc, csc,
            ws, ws_len, then} = self;

        // SAFETY: `GemmParameters` is built only by `gemm_unchecked`, whose contract (checked by
        // `gemm` and `Pool::gemm` for every safe caller) is that `a`, `b` and `c` are valid for
        // their `m x k`, `k x n` and `m x n` strided extents, `c` not aliased by `a` or `b`, and
        // `ws` a workspace of `ws_len` elements for kernel `K`'s packing (sized by `Workspace`).
        unsafe {
            gemm_loop_then::<K>(
                m, k, n,
                alpha,
                a, rsa, csa,
                b, rsb, csb,
                beta,
                c, rsc, csc,
                ws, ws_len, then)
        }
    }
}

/// Elements of workspace that kernel `K` needs for a product of any shape (hdm addition): the
/// scratch tile of the masked kernel, then A~ and B~ at their largest (`kc x mc` and `kc x nc`,
/// rounded up to whole micro-panels), as `make_packing_buffer` would size them.
pub(crate) fn workspace_len<K>() -> usize
    where K: GemmKernel
{
    ensure_kernel_params::<K>();
    let apack_size = apack_len::<K>(K::kc(), K::mc());
    let bpack_size = K::kc() * round_up_to(K::nc(), K::NR);
    mask_len::<K>() + apack_size + bpack_size
}

/// Elements at the start of the workspace kept for the masked kernel's tile (hdm addition): one
/// `MR x NR` tile, rounded up so that A~ after it keeps the workspace's alignment.
fn mask_len<K>() -> usize
    where K: GemmKernel
{
    round_up_to(K::MR * K::NR, WORKSPACE_ALIGN / size_of::<K::Elem>())
}

const KERNEL_MAX_MR: usize = if cfg!(any(target_arch="x86", target_arch="x86_64")) { 16 } else { 8 };
// hdm: 32 columns for the 12 x 32 AVX-512 kernel
const KERNEL_MAX_NR: usize = if cfg!(any(target_arch="x86", target_arch="x86_64")) { 32 } else { 8 };

/// Ensure that GemmKernel parameters are supported
/// (alignment, microkernel size).
///
/// This function is optimized out for a supported configuration.
#[inline(always)]
fn ensure_kernel_params<K>()
    where K: GemmKernel
{
    let mr = K::MR;
    let nr = K::NR;
    // These are current limitations,
    // can change if corresponding code in gemm_loop is updated.
    assert!(mr > 0 && mr <= KERNEL_MAX_MR);
    assert!(nr > 0 && nr <= KERNEL_MAX_NR);
    assert!(mr * nr * size_of::<K::Elem>() <= KERNEL_MAX_SIZE);
    assert!(K::ALIGNMENT <= KERNEL_MAX_ALIGN);
    // one row/col of the kernel is limiting the max align we can provide
    let max_align = size_of::<K::Elem>() * min(mr, nr);
    assert!(K::ALIGNMENT <= max_align);

    assert!(K::MR <= K::mc());
    assert!(K::mc() <= K::kc());
    assert!(K::kc() <= K::nc());
    assert!(K::nc() <= 65536);
}

/// Implement matrix multiply using packed buffers and a microkernel
/// strategy, the type parameter `K` is the gemm microkernel.
///
/// hdm: `ws` must point to `ws_len` elements, aligned to `WORKSPACE_ALIGN` bytes, that nothing
/// else uses during the call; the call panics if they are fewer than this product needs.
// no inline is best for the default case, where we support many K per
// gemm entry point. FIXME: make this conditional on feature detection
#[cfg(test)]
#[inline(never)]
pub(crate) unsafe fn gemm_loop<K>(
    m: usize, k: usize, n: usize,
    alpha: K::Elem,
    a: *const K::Elem, rsa: isize, csa: isize,
    b: *const K::Elem, rsb: isize, csb: isize,
    beta: K::Elem,
    c: *mut K::Elem, rsc: isize, csc: isize,
    ws: *mut K::Elem, ws_len: usize)
    where K: GemmKernel
{
    gemm_loop_then::<K>(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, ws, ws_len, None)
}

/// hdm: [`gemm_loop`] with the hook of [`gemm_loop_by`].
#[inline(never)]
pub(crate) unsafe fn gemm_loop_then<K>(
    m: usize, k: usize, n: usize,
    alpha: K::Elem,
    a: *const K::Elem, rsa: isize, csa: isize,
    b: *const K::Elem, rsb: isize, csb: isize,
    beta: K::Elem,
    c: *mut K::Elem, rsc: isize, csc: isize,
    ws: *mut K::Elem, ws_len: usize,
    mut then: Option<&mut dyn FnMut(usize, usize)>)
    where K: GemmKernel
{
    // hdm: a single row of C, with the kernel's unpacked path when it has one
    if m == 1 && k != 0 && n != 0 && csc == 1
        && K::gemv_row(k, n, alpha, a, csa, b, rsb, csb, beta, c)
    {
        if let Some(then) = then.as_mut() {
            then(0, 1);
        }
        return;
    }
    gemm_loop_by::<K, _>(m, k, n, alpha, a, rsa, csa, &Strided { b, rsb, csb }, beta, c, rsc, csc,
                         ws, ws_len, then)
}

/// hdm: the B operand of [`gemm_loop_by`], which packs its blocks into B~ itself: a strided
/// matrix ([`Strided`], upstream's only kind), or one the packing computes as it goes, such as a
/// convolution's patch matrix (`super::patches`), never written out whole.
pub(crate) trait PackB<T> {
    /// B~ for rows `k0..k0 + kc` and columns `n0..n0 + nc` of B: `K::NR`-column panels one
    /// after the other, each `kc` rows of `K::NR` values, the last panel padded with zeros, as
    /// `K::pack_nr` lays them out.
    ///
    /// # Safety
    /// The block lies inside B; `pack` holds at least `kc * round_up(nc, K::NR)` elements.
    unsafe fn pack<K: GemmKernel<Elem = T>>(&self, k0: usize, kc: usize, n0: usize, nc: usize,
                                            pack: PackSlice<'_, T>);
}

/// hdm: a strided B, packed by the kernel's `pack_nr`.
pub(crate) struct Strided<T> {
    pub(crate) b: *const T,
    pub(crate) rsb: isize,
    pub(crate) csb: isize,
}

impl<T> PackB<T> for Strided<T> {
    #[inline(always)]
    unsafe fn pack<K: GemmKernel<Elem = T>>(&self, k0: usize, kc: usize, n0: usize, nc: usize,
                                            pack: PackSlice<'_, T>)
    {
        let b = self.b.stride_offset(self.rsb, k0).stride_offset(self.csb, n0);
        K::pack_nr(kc, nc, pack, b, self.csb, self.rsb);
    }
}

/// [`gemm_loop`] with B packed by `b` (hdm: upstream's `gemm_loop` with B's packing behind
/// [`PackB`], and no single-row path, which reads B unpacked).
///
/// hdm: `then(start, end)` is called, in order, for blocks of rows of C covering all of them,
/// each as soon as those rows are final (with the last block of `k` and of `n`): for a product
/// with `k <= kc` and `n <= nc`, every `mc` rows right after the kernel wrote them.
#[inline(never)]
pub(crate) unsafe fn gemm_loop_by<K, B>(
    m: usize, k: usize, n: usize,
    alpha: K::Elem,
    a: *const K::Elem, rsa: isize, csa: isize,
    b: &B,
    beta: K::Elem,
    c: *mut K::Elem, rsc: isize, csc: isize,
    ws: *mut K::Elem, ws_len: usize,
    mut then: Option<&mut dyn FnMut(usize, usize)>)
    where K: GemmKernel, B: PackB<K::Elem>
{
    debug_assert!(m <= 1 || n == 0 || rsc != 0);
    debug_assert!(m == 0 || n <= 1 || csc != 0);

    // if A or B have no elements, compute C ← βC and return
    if m == 0 || k == 0 || n == 0 {
        c_to_beta_c(m, n, beta, c, rsc, csc);
        if let (Some(then), true) = (then.as_mut(), m > 0) {
            then(0, m);
        }
        return;
    }

    let knc = K::nc();
    let kkc = K::kc();
    let kmc = K::mc();
    ensure_kernel_params::<K>();

    // hdm: carve the caller's workspace where upstream allocated a packing buffer
    let (mask_size, ap_size, bp_size) = packing_sizes::<K>(m, k, n);
    assert!(mask_size + ap_size + bp_size <= ws_len,
            "GEMM workspace of {} elements is too small for kernel {} (needs {})",
            ws_len, K::NAME, mask_size + ap_size + bp_size);
    assert_eq!(ws as usize % WORKSPACE_ALIGN, 0, "GEMM workspace is not aligned");
    let mask_buf = slice::from_raw_parts_mut(ws, mask_size);
    let app = ws.add(mask_size);
    let bpp = app.add(ap_size);

    // LOOP 5: split n into nc parts (B, C)
    for (l5, nc) in range_chunk(n, knc) {
        let c = c.stride_offset(csc, knc * l5);

        // LOOP 4: split k in kc parts (A, B)
        // This particular loop can't be parallelized because the
        // C chunk (writable) is shared between iterations.
        for (l4, kc) in range_chunk(k, kkc) {
            let a = a.stride_offset(csa, kkc * l4);

            // Pack B -> B~
            b.pack::<K>(kkc * l4, kc, knc * l5, nc, PackSlice::from(bpp, bp_size));

            // First time writing to C, use user's `beta`, else accumulate
            let betap = if l4 == 0 { beta } else { <_>::one() };

            // LOOP 3: split m into mc parts (A, C)
            for (l3, mc) in range_chunk(m, kmc) {
                let a = a.stride_offset(rsa, kmc * l3);
                let c = c.stride_offset(rsc, kmc * l3);

                // Pack A -> A~
                K::pack_mr(kc, mc, PackSlice::from(app, ap_size),
                           a, rsa, csa);

                // LOOP 2 and 1
                gemm_packed::<K>(nc, kc, mc,
                                 alpha,
                                 app as *const _, bpp as *const _,
                                 betap,
                                 c, rsc, csc,
                                 mask_buf);

                // hdm: these rows are final after the last blocks of k and n
                if let (Some(then), true) = (then.as_mut(), knc * l5 + nc == n && kkc * l4 + kc == k) {
                    then(kmc * l3, kmc * l3 + mc);
                }
            }
        }
    }
}

// set up buffer for masked (redirected output of) kernel
const KERNEL_MAX_SIZE: usize = KERNEL_MAX_MR * KERNEL_MAX_NR * 4;
// The AVX-512 kernels load a full 64-byte ZMM register
const KERNEL_MAX_ALIGN: usize = if cfg!(any(target_arch="x86", target_arch="x86_64")) { 64 } else { 32 };

/// Loops 1 and 2 around the µ-kernel
///
/// + app: packed A (A~)
/// + bpp: packed B (B~)
/// + nc: columns of packed B
/// + kc: columns of packed A / rows of packed B
/// + mc: rows of packed A
/// + mask_buf: the masked kernel's tile (hdm: from the workspace, upstream: a thread-local)
unsafe fn gemm_packed<K>(nc: usize, kc: usize, mc: usize,
                         alpha: K::Elem,
                         app: *const K::Elem, bpp: *const K::Elem,
                         beta: K::Elem,
                         c: *mut K::Elem, rsc: isize, csc: isize,
                         mask_buf: &mut [K::Elem])
    where K: GemmKernel,
{
    let mr = K::MR;
    let nr = K::NR;
    // check for the mask buffer that fits 8 x 8 f32 and 8 x 4 f64 kernels and alignment
    assert!(mr * nr * size_of::<K::Elem>() <= KERNEL_MAX_SIZE && K::ALIGNMENT <= KERNEL_MAX_ALIGN);
    debug_assert!(mask_buf.len() >= mr * nr);

    // LOOP 2: through micropanels in packed `b` (B~, C)
    for (l2, nr_) in range_chunk(nc, nr) {
        let bpp = bpp.stride_offset(1, kc * nr * l2);
        let c = c.stride_offset(csc, nr * l2);

        // LOOP 1: through micropanels in packed `a` while `b` is constant (A~, C)
        for (l1, mr_) in range_chunk(mc, mr) {
            let app = app.stride_offset(1, kc * mr * l1);
            let c = c.stride_offset(rsc, mr * l1);

            // GEMM KERNEL
            // NOTE: For the rust kernels, it performs better to simply
            // always use the masked kernel function!
            if K::ALWAYS_MASKED || nr_ < nr || mr_ < mr {
                // hdm: the kernel's own edge path first, when it has one for these strides
                if (nr_ < nr || mr_ < mr)
                    && K::edge_kernel(kc, alpha, app, bpp, beta, c, rsc, csc, mr_, nr_)
                {
                    continue;
                }
                masked_kernel::<_, K>(kc, alpha, app, bpp,
                                      beta, c, rsc, csc,
                                      mr_, nr_, mask_buf);
                continue;
            } else {
                K::kernel(kc, alpha, app, bpp, beta, c, rsc, csc);
            }
        }
    }
}

/// Sizes of the parts of the workspace one product uses (was `make_packing_buffer`, which
/// allocated them).
///
/// + A~ needs be KC x MC
/// + B~ needs be KC x NC
/// but we can make them smaller if the matrix is smaller than this (just ensure
/// we have rounded up to a multiple of the kernel size).
///
/// Return the size of the masked kernel's tile (hdm), of A~ and of B~, in elements.
fn packing_sizes<K>(m: usize, k: usize, n: usize) -> (usize, usize, usize)
    where K: GemmKernel,
{
    // max alignment requirement is a multiple of min(MR, NR) * sizeof<Elem>
    // because apack_size is a multiple of MR, start of b aligns fine
    let m = min(m, K::mc());
    let k = min(k, K::kc());
    let n = min(n, K::nc());
    // round up k, n to multiples of mr, nr
    // round up to multiple of kc
    let apack_size = apack_len::<K>(k, m);
    let bpack_size = k * round_up_to(n, K::NR);

    (mask_len::<K>(), apack_size, bpack_size)
}

/// Elements of A~ for `k x m` (hdm addition): whole micro-panels, rounded up so that B~ after it
/// starts at the workspace's alignment whatever `MR` and `k` are (a 6-row kernel's panels are not
/// a multiple of the alignment).
fn apack_len<K>(k: usize, m: usize) -> usize
    where K: GemmKernel
{
    round_up_to(k * round_up_to(m, K::MR), WORKSPACE_ALIGN / size_of::<K::Elem>())
}

/// Call the GEMM kernel with a "masked" output C.
///
/// Simply redirect the MR by NR kernel output to the passed
/// in `mask_buf`, and copy the non masked region to the real
/// C.
///
/// + rows: rows of kernel unmasked
/// + cols: cols of kernel unmasked
#[inline(never)]
unsafe fn masked_kernel<T, K>(k: usize, alpha: T,
                              a: *const T,
                              b: *const T,
                              beta: T,
                              c: *mut T, rsc: isize, csc: isize,
                              rows: usize, cols: usize,
                              mask_buf: &mut [T])
    where K: GemmKernel<Elem=T>, T: Element,
{
    // hdm: row-major order for `mask_buf` (upstream: column-major), the layout the 6 x 16 AVX2
    // kernel stores fastest; the 8 x 8 kernels handle either
    K::kernel(k, alpha, a, b, T::zero(), mask_buf.as_mut_ptr(), K::NR as isize, 1);
    c_to_masked_ab_beta_c::<_, K::MRTy, K::NRTy>(beta, c, rsc, csc, rows, cols, &*mask_buf);
}

/// Copy output in `mask_buf` to the actual c matrix
///
/// C ← M + βC  where M is the `mask_buf`
#[inline]
unsafe fn c_to_masked_ab_beta_c<T, MR, NR>(beta: T, c: *mut T, rsc: isize, csc: isize,
                                           rows: usize, cols: usize, mask_buf: &[T])
    where T: Element, MR: ConstNum, NR: ConstNum,
{
    // note: use separate function here with `&T` argument for mask buf,
    // so that the compiler sees that `c` and `mask_buf` never alias.
    let mr = MR::VALUE;
    let nr = NR::VALUE;
    let mut ab = mask_buf.as_ptr();
    for i in 0..mr {
        for j in 0..nr {
            if i < rows && j < cols {
                let cptr = c.stride_offset(rsc, i)
                            .stride_offset(csc, j);
                if beta.is_zero() {
                    *cptr = *ab; // initialize
                } else {
                    (*cptr).mul_assign(beta);
                    (*cptr).add_assign(*ab);
                }
            }
            ab.inc();
        }
    }
}

// Compute just C ← βC
#[inline(never)]
unsafe fn c_to_beta_c<T>(m: usize, n: usize, beta: T,
                         c: *mut T, rsc: isize, csc: isize)
    where T: Element
{
    for i in 0..m {
        for j in 0..n {
            let cptr = c.stride_offset(rsc, i)
                        .stride_offset(csc, j);
            if beta.is_zero() {
                *cptr = T::zero(); // initialize C
            } else {
                (*cptr).mul_assign(beta);
            }
        }
    }
}
