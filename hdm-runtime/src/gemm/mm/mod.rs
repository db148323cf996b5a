//! The GEMM kernels of [matrixmultiply](https://github.com/bluss/matrixmultiply) 0.3.11, vendored.
//!
//! matrixmultiply is Copyright (c) 2016 - 2023 Ulrik Sverdrup "bluss" and contributors, dual
//! licensed under the MIT license or the Apache License 2.0 (`LICENSE-MIT`, `LICENSE-APACHE` in
//! this folder). Every file here except this one and `fma6.rs` (hdm's FMA+AVX2 micro-kernels) is
//! one of its source files, with a header that says what hdm changed. In short:
//!
//! - The packing buffers and the masked kernel's scratch tile live in a caller-provided workspace
//!   (see `Workspace` in `gemm/workspace.rs`) instead of an allocation per call and a
//!   thread-local: a product never allocates.
//! - The f32 FMA+AVX2 kernel is hdm's: 6 x 16 (12 accumulators, B~ loaded, A~ broadcast, no
//!   shuffles; mc = 96, a whole number of its panels) instead of upstream's 8 x 8 permute kernel,
//!   with a packing routine that transposes row-contiguous panels in registers. Upstream's kernel
//!   keeps 8 accumulators, too few to cover the FMA latency on two pipes, and its permutes share
//!   a port with the FMAs on AMD Zen: 73 GFLOP/s against 99 on a 96 x 256 x 512 product here.
//!   On Intel CPUs with AVX-512 the f32 kernel is hdm's 12 x 32 (24 accumulators, 14 loads per
//!   24 FMAs where the 16 x 16 tile makes 17 per 16 and is bound by the load ports there), with
//!   its own edge path and packing; AMD's keep the 16 x 16 one (the same bits either way).
//!   A single-row product (a batch of one) skips the packing and the padded kernel: the f32
//!   AVX2 and AVX-512 kernels' `gemv_row` reads B in place, with the same bits.
//!   The f64 FMA+AVX2 kernel is likewise 6 x 8 (upstream: 8 x 4), 26% faster on the MLP's
//!   products in f64. The masked kernel's scratch tile is row-major (upstream: column-major),
//!   which these kernels store fastest.
//! - The other kernels, the runtime CPU feature detection (AVX-512F, FMA+AVX2, AVX on x86/x86_64,
//!   NEON on aarch64, a portable fallback), upstream's cache blocking (mc/kc/nc) and packing are
//!   unchanged, and so is the order of every floating-point operation (the new kernel makes each
//!   element with the same chain of FMAs over k as upstream's): results are bit-identical to
//!   matrixmultiply's `sgemm`/`dgemm` on the same machine. The AVX-512 kernels, which upstream
//!   compiles when its build script finds rustc >= 1.89, are always compiled on x86/x86_64 (hdm's
//!   toolchain is 1.95) and chosen when the CPU has avx512f, as upstream does.
//! - Dropped: the threading (thread-tree, once_cell, num_cpus; hdm has its own pool, which splits
//!   products by blocks of output columns), cgemm/zgemm, compile-time configuration (constconf),
//!   the MMTEST_FEATURE test switch, the wasm32 kernel, the rawpointer dependency (its two
//!   helpers are in `util.rs`).
//!
//! This module is the glue: the two entry points and the kernel report.

// Upstream's style, kept so that the files stay comparable with upstream: kernels take 8 to 16
// arguments, the AVX-512 epilogues index small arrays in loops, `PackSlice::as_mut_ptr` consumes
// its (borrowing) wrapper, and some doc lists continue without indentation.
#![allow(
    clippy::too_many_arguments,
    clippy::needless_range_loop,
    clippy::wrong_self_convention,
    clippy::doc_lazy_continuation
)]

#[macro_use]
mod loopmacros;

mod archparam;
mod dgemm_kernel;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod fma6;
mod kernel;
mod loops;
mod packing;
mod patches;
mod sgemm_kernel;
mod util;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod x86;

pub(crate) use loops::WORKSPACE_ALIGN;
pub use patches::PatchDims;

use super::KernelInfo;
use kernel::{Element, GemmKernel, GemmSelect};
use loops::GemmParameters;

/// A selector that reports the kernel it is given.
struct Info;

impl<T: Element> GemmSelect<T> for Info {
    type Output = KernelInfo;

    fn select<K: GemmKernel<Elem = T>>(self, _kernel: K) -> KernelInfo {
        KernelInfo {
            name: K::NAME,
            mr: K::MR,
            nr: K::NR,
            mc: K::mc(),
            kc: K::kc(),
            nc: K::nc(),
            workspace_len: loops::workspace_len::<K>(),
        }
    }
}

macro_rules! entry {
    ($t:ty, $info:ident, $gemm:ident, $kernels:ident) => {
        /// The kernel that runtime CPU feature detection selects for this element type.
        pub(crate) fn $info() -> KernelInfo {
            $kernels::detect(Info)
        }

        /// `C <- alpha * A * B + beta * C` with the selected kernel, packing in `ws`.
        ///
        /// # Safety
        /// `a` (`m x k`, strides `rsa`, `csa`) and `b` (`k x n`) must be valid for reads, `c`
        /// (`m x n`) for writes and, unless `beta == 0`, reads; no element of `c` may be
        /// reachable through two index pairs, and `c` must not alias `a` or `b`. `ws` must point
        /// to `ws_len` elements aligned to `WORKSPACE_ALIGN` bytes that nothing else accesses
        /// during the call (a too small workspace panics, it is never overrun).
        ///
        /// `then(start, end)` is called for blocks of rows of C, in order and covering them all,
        /// as soon as each block is final (see `loops::gemm_loop_by`).
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $gemm(
            ws: *mut $t,
            ws_len: usize,
            m: usize,
            k: usize,
            n: usize,
            alpha: $t,
            a: *const $t,
            rsa: isize,
            csa: isize,
            b: *const $t,
            rsb: isize,
            csb: isize,
            beta: $t,
            c: *mut $t,
            rsc: isize,
            csc: isize,
            then: Option<&mut dyn FnMut(usize, usize)>,
        ) {
            $kernels::detect(GemmParameters {
                m,
                k,
                n,
                alpha,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                beta,
                c,
                rsc,
                csc,
                ws,
                ws_len,
                then,
            })
        }
    };
}

macro_rules! patch_entry {
    ($t:ty, $fast:ident, $gemm:ident, $kernels:ident) => {
        /// Whether the selected kernel packs a patch matrix with vector loads (else one value at
        /// a time: correct, but slower than an explicit im2col).
        pub(crate) fn $fast() -> bool {
            $kernels::detect(patches::FastPatches)
        }

        /// `C <- alpha * A * B + beta * C` with the selected kernel, B the patch matrix `dims`
        /// over the images at `x`, packed straight from them.
        ///
        /// # Safety
        /// As the plain entry point for `a`, `c` and `ws` (with `k x n = dims.shape()`); `x`
        /// points to `dims.count` images `dims.sample_stride` elements apart, each of
        /// `channels * height * width` elements, valid for reads (and not aliased by `c`), with
        /// `dims.row0 + dims.rows` at most the patch matrix's rows.
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $gemm(
            ws: *mut $t,
            ws_len: usize,
            m: usize,
            alpha: $t,
            a: *const $t,
            rsa: isize,
            csa: isize,
            x: *const $t,
            dims: PatchDims,
            beta: $t,
            c: *mut $t,
            rsc: isize,
            csc: isize,
        ) {
            $kernels::detect(patches::PatchProduct {
                m,
                alpha,
                a,
                rsa,
                csa,
                b: patches::Patches { x, dims },
                beta,
                c,
                rsc,
                csc,
                ws,
                ws_len,
            })
        }
    };
}

entry!(f32, sgemm_info, sgemm, sgemm_kernel);
entry!(f64, dgemm_info, dgemm, dgemm_kernel);
patch_entry!(f32, sgemm_patches_fast, sgemm_patches, sgemm_kernel);
patch_entry!(f64, dgemm_patches_fast, dgemm_patches, dgemm_kernel);

#[cfg(test)]
mod tests {
    //! Every kernel the CPU can run, not only the selected one, on products of small integers,
    //! which every kernel computes exactly whatever its order of operations.

    use super::kernel::{Element, GemmKernel, GemmSelect};
    use super::{dgemm_kernel, loops, sgemm_kernel};
    use std::cell::RefCell;

    trait Num: Element + Default + PartialEq + std::fmt::Debug {
        fn of(x: f64) -> Self;
        fn to(self) -> f64;
        fn selected() -> &'static str;
        fn each_kernel(case: Case<'_>);
    }
    impl Num for f32 {
        fn of(x: f64) -> Self {
            x as f32
        }
        fn to(self) -> f64 {
            self.into()
        }
        fn selected() -> &'static str {
            super::sgemm_info().name
        }
        fn each_kernel(case: Case<'_>) {
            sgemm_kernel::each_kernel(case)
        }
    }
    impl Num for f64 {
        fn of(x: f64) -> Self {
            x
        }
        fn to(self) -> f64 {
            self
        }
        fn selected() -> &'static str {
            super::dgemm_info().name
        }
        fn each_kernel(case: Case<'_>) {
            dgemm_kernel::each_kernel(case)
        }
    }

    /// `C <- 2 A B + beta C` with A (`m x k`), B (`k x n`) and C each row- or column-major.
    #[derive(Clone, Copy)]
    struct Case<'a> {
        m: usize,
        k: usize,
        n: usize,
        a_col_major: bool,
        b_col_major: bool,
        c_col_major: bool,
        beta: f64,
        seen: &'a RefCell<Vec<&'static str>>,
    }

    /// `c <- alpha a b + beta c` by kernel `K`'s packed loops (`loops::gemm_loop`) in a
    /// workspace of its own, `a` (`m x k`), `b` (`k x n`) and `c` (`m x n`) given by their
    /// slices and (row, column) strides, checked to lie inside them.
    #[allow(clippy::too_many_arguments)]
    fn run_kernel<K: GemmKernel>(
        (m, k, n): (usize, usize, usize),
        alpha: K::Elem,
        a: &[K::Elem],
        (rsa, csa): (usize, usize),
        b: &[K::Elem],
        (rsb, csb): (usize, usize),
        beta: K::Elem,
        c: &mut [K::Elem],
        (rsc, csc): (usize, usize),
    ) {
        let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs;
        assert!(m * k == 0 || last(m, k, rsa, csa) < a.len(), "A's strides reach past it");
        assert!(k * n == 0 || last(k, n, rsb, csb) < b.len(), "B's strides reach past it");
        assert!(m * n == 0 || last(m, n, rsc, csc) < c.len(), "C's strides reach past it");
        let len = loops::workspace_len::<K>();
        let mut ws = vec![K::Elem::zero(); len + loops::WORKSPACE_ALIGN];
        let skip = ws.as_ptr().align_offset(loops::WORKSPACE_ALIGN);
        // SAFETY: every element the strides reach is inside its slice (checked above); `c` is
        // borrowed uniquely, so it aliases neither `a` nor `b`; `ws[skip..]` is aligned, unshared
        // and as long as `workspace_len::<K>()` says.
        unsafe {
            loops::gemm_loop::<K>(
                m,
                k,
                n,
                alpha,
                a.as_ptr(),
                rsa as isize,
                csa as isize,
                b.as_ptr(),
                rsb as isize,
                csb as isize,
                beta,
                c.as_mut_ptr(),
                rsc as isize,
                csc as isize,
                ws.as_mut_ptr().add(skip),
                len,
            )
        };
    }

    impl<T: Num> GemmSelect<T> for Case<'_> {
        type Output = ();

        fn select<K: GemmKernel<Elem = T>>(self, _kernel: K) {
            let Case { m, k, n, a_col_major, b_col_major, c_col_major, beta, seen } = self;
            seen.borrow_mut().push(K::NAME);
            let val = |i: usize| ((i * 7 + 3) % 11) as f64 - 5.0;
            let a: Vec<T> = (0..m * k).map(|i| T::of(val(i))).collect();
            let b: Vec<T> = (0..k * n).map(|i| T::of(val(i + 5))).collect();
            let c0: Vec<T> = (0..m * n).map(|i| T::of(val(i + 1))).collect();
            let (rsa, csa) = if a_col_major { (1, m) } else { (k, 1) };
            let (rsb, csb) = if b_col_major { (1, k) } else { (n, 1) };
            let (rsc, csc) = if c_col_major { (1, m) } else { (n, 1) };
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|p| a[i * rsa + p * csa].to() * b[p * rsb + j * csb].to()).sum();
                    let idx = i * rsc + j * csc;
                    // integers below 2^24: exact in f32 and f64 in any order
                    want[idx] = T::of(2.0 * dot + beta * c0[idx].to());
                }
            }
            let mut c = c0.clone();
            run_kernel::<K>((m, k, n), T::of(2.0), &a, (rsa, csa), &b, (rsb, csb), T::of(beta), &mut c, (rsc, csc));
            assert_eq!(
                c,
                want,
                "kernel {} on {m}x{k}x{n}, col-major A {a_col_major}, B {b_col_major}, C {c_col_major}",
                K::NAME
            );
        }
    }

    /// One row of A times B, alone (the kernels' single-row path) and as the first of 7 rows
    /// (the packed loops), with values that are not integers: the same bits. With `alpha = 1`,
    /// as hdm calls them: otherwise a full tile (`fma(alpha, ab, beta c)`) and the masked
    /// kernel's partial one (`c beta + fma(alpha, ab, 0)`) round differently, upstream too.
    #[derive(Clone, Copy)]
    struct RowCase {
        k: usize,
        n: usize,
        b_col_major: bool,
        beta: f32,
    }

    impl GemmSelect<f32> for RowCase {
        type Output = ();

        fn select<K: GemmKernel<Elem = f32>>(self, _kernel: K) {
            let RowCase { k, n, b_col_major, beta } = self;
            let val = |i: usize| ((i * 37 + 11) % 101) as f32 / 37.0 - 1.3;
            let m = 7;
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let b: Vec<f32> = (0..k * n).map(|i| val(i + 5) * 0.7).collect();
            let (rsb, csb) = if b_col_major { (1, k) } else { (n, 1) };
            let run = |rows: usize| {
                let mut c: Vec<f32> = (0..rows * n).map(|i| val(i + 3)).collect();
                run_kernel::<K>((rows, k, n), 1.0, &a, (k, 1), &b, (rsb, csb), beta, &mut c, (n, 1));
                c[..n].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(run(1), run(m), "kernel {} on 1x{k}x{n}, col-major B {b_col_major}, beta {beta}", K::NAME);
        }
    }

    #[test]
    fn a_single_row_has_the_bits_of_a_row_of_the_packed_product() {
        for k in [1, 7, 8, 9, 255, 300, 517] {
            for n in [1, 7, 8, 9, 16, 31, 32, 33, 40, 70, 500] {
                for b_col_major in [false, true] {
                    for beta in [0.0, 1.5] {
                        sgemm_kernel::each_kernel(RowCase { k, n, b_col_major, beta });
                    }
                }
            }
        }
    }

    /// A product whose tiles are cut at its edges (`m`, `n` not multiples of the kernel's) against
    /// the same rows and columns inside a larger product, where they are full tiles, with values
    /// that are not integers: the same bits, for C row- and column-major. With `alpha = 1`, as
    /// for `RowCase`.
    #[derive(Clone, Copy)]
    struct EdgeCase {
        m: usize,
        k: usize,
        n: usize,
        c_col_major: bool,
        beta: f32,
    }

    impl GemmSelect<f32> for EdgeCase {
        type Output = ();

        fn select<K: GemmKernel<Elem = f32>>(self, _kernel: K) {
            let EdgeCase { m, k, n, c_col_major, beta } = self;
            let val = |i: usize| ((i * 37 + 11) % 101) as f32 / 37.0 - 1.3;
            // the larger product: every tile of the `m x n` corner whole
            let (big_m, big_n) = (m.next_multiple_of(K::MR) + K::MR, n.next_multiple_of(K::NR) + K::NR);
            let a: Vec<f32> = (0..big_m * k).map(val).collect();
            let b: Vec<f32> = (0..k * big_n).map(|i| val(i + 5) * 0.7).collect();
            let c0 = |i: usize, j: usize| val(i * 131 + j + 3);
            let run = |rows: usize, cols: usize| {
                let (rsc, csc) = if c_col_major { (1, rows) } else { (cols, 1) };
                let mut c = vec![0f32; rows * cols];
                for i in 0..rows {
                    for j in 0..cols {
                        c[i * rsc + j * csc] = c0(i, j);
                    }
                }
                // A: its first `rows` rows; B: its first `cols` columns (row stride `big_n`).
                run_kernel::<K>((rows, k, cols), 1.0, &a, (k, 1), &b, (big_n, 1), beta, &mut c, (rsc, csc));
                let mut corner = Vec::with_capacity(m * n);
                for i in 0..m {
                    for j in 0..n {
                        corner.push(c[i * rsc + j * csc].to_bits());
                    }
                }
                corner
            };
            assert_eq!(
                run(m, n),
                run(big_m, big_n),
                "kernel {} on {m}x{k}x{n}, col-major C {c_col_major}, beta {beta}",
                K::NAME
            );
        }
    }

    #[test]
    fn edge_tiles_have_the_bits_of_full_tiles() {
        for (m, k, n) in [(100, 300, 500), (4, 7, 16), (16, 9, 5), (1, 257, 3), (15, 256, 17), (10, 100, 784), (13, 9, 47)] {
            for c_col_major in [false, true] {
                for beta in [0.0, 1.5] {
                    sgemm_kernel::each_kernel(EdgeCase { m, k, n, c_col_major, beta });
                }
            }
        }
    }

    /// A product with values that are not integers, `alpha = 1`, by one kernel: the bits of C,
    /// recorded under the kernel's name.
    #[derive(Clone, Copy)]
    struct BitsCase<'a> {
        m: usize,
        k: usize,
        n: usize,
        c_col_major: bool,
        /// B stored transposed (column-major), as `W^T` in `x W^T`: packed by transposing
        /// `NR`-column panels in registers.
        b_col_major: bool,
        beta: f32,
        out: &'a RefCell<Vec<(&'static str, Vec<u32>)>>,
    }

    impl GemmSelect<f32> for BitsCase<'_> {
        type Output = ();

        fn select<K: GemmKernel<Elem = f32>>(self, _kernel: K) {
            let BitsCase { m, k, n, c_col_major, b_col_major, beta, out } = self;
            let val = |i: usize| ((i * 37 + 11) % 101) as f32 / 37.0 - 1.3;
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let b: Vec<f32> = (0..k * n).map(|i| val(i + 5) * 0.7).collect();
            let (rsc, csc) = if c_col_major { (1, m) } else { (n, 1) };
            let mut c: Vec<f32> = (0..m * n).map(|i| val(i * 3 + 1)).collect();
            let (rsb, csb) = if b_col_major { (1, k) } else { (n, 1) };
            run_kernel::<K>((m, k, n), 1.0, &a, (k, 1), &b, (rsb, csb), beta, &mut c, (rsc, csc));
            out.borrow_mut().push((K::NAME, c.iter().map(|x| x.to_bits()).collect()));
        }
    }

    /// The AVX-512 kernels, 16 x 16 and 12 x 32, and the 6 x 16 FMA kernel give the same bits on
    /// products of values that are not integers (one FMA chain per element and block of `kc`, the
    /// same finish): whichever the CPU selects, the results are the same.
    #[test]
    fn the_fma_kernels_give_the_same_bits() {
        let fma = ["avx512f", "avx512f-12x32", "fma+avx2"];
        let shapes = [(100, 300, 500), (13, 7, 33), (37, 256, 70), (1, 257, 3), (64, 513, 96), (25, 41, 1100)];
        for ((m, k, n), c_col_major, b_col_major) in
            shapes.into_iter().flat_map(|s| [(s, false, false), (s, true, false), (s, false, true)])
        {
            for beta in [0.0, 1.5] {
                let out = RefCell::new(Vec::new());
                sgemm_kernel::each_kernel(BitsCase { m, k, n, c_col_major, b_col_major, beta, out: &out });
                let out = out.into_inner();
                let mut ran = out.iter().filter(|(name, _)| fma.contains(name));
                let Some((first, bits)) = ran.next() else { continue };
                for (name, other) in ran {
                    assert!(
                        other == bits,
                        "{name} against {first} on {m}x{k}x{n}, col-major C {c_col_major}, B {b_col_major}, beta {beta}"
                    );
                }
            }
        }
    }

    fn check_every_kernel<T: Num>() {
        let seen = RefCell::new(Vec::new());
        // around the kernels' tiles (4, 6, 8, 16) and the blocking (mc = 64 or 96, kc = 256)
        let shapes = [
            (1, 1, 1),
            (6, 2, 16),
            (7, 9, 17),
            (12, 1, 32),
            (96, 33, 16),
            (97, 256, 35),
            (95, 258, 31),
            (1, 300, 70),
            (1, 517, 9),
            (1, 7, 1),
            (3, 5, 2),
            (8, 8, 8),
            (16, 16, 16),
            (17, 3, 33),
            (9, 300, 7),
            (64, 256, 16),
            (65, 257, 17),
            (63, 255, 15),
            (130, 20, 40),
        ];
        for (m, k, n) in shapes {
            for layout in 0..8 {
                let (a_col_major, b_col_major, c_col_major) = (layout & 1 != 0, layout & 2 != 0, layout & 4 != 0);
                for beta in [0.0, 1.0, -3.0] {
                    T::each_kernel(Case { m, k, n, a_col_major, b_col_major, c_col_major, beta, seen: &seen });
                }
            }
        }
        let mut names = seen.into_inner();
        names.sort();
        names.dedup();
        println!("kernels tested: {names:?}");
        assert!(names.contains(&"fallback") && names.contains(&T::selected()), "{names:?}");
    }

    #[test]
    fn every_available_f32_kernel_computes_exact_integer_products() {
        check_every_kernel::<f32>();
    }

    #[test]
    fn every_available_f64_kernel_computes_exact_integer_products() {
        check_every_kernel::<f64>();
    }
}
