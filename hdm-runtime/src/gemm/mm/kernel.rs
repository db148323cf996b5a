// Vendored from matrixmultiply 0.3.11 (https://github.com/bluss/matrixmultiply), file
// `src/kernel.rs`; MIT OR Apache-2.0, see LICENSE-MIT and LICENSE-APACHE beside this file.
// Changed for hdm: `GemmKernel::NAME`, `GemmKernel::gemv_row` (a kernel's unpacked path for a
// single-row product) and `GemmKernel::edge_kernel` (an edge tile written in place) added; `GemmSelect::select` returns an
// associated `Output` (so a selector can also report the selected kernel's parameters); the complex
// element types, `U2`, `Element::test_value` and the kernel test helpers are dropped.
//
// Copyright 2016 - 2021 Ulrik Sverdrup "bluss"
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// http://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or http://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use super::archparam;
use super::packing::pack;
use super::packing::PackSlice;

/// General matrix multiply kernel
pub(crate) trait GemmKernel {
    type Elem: Element;

    /// The kernel's name, for reports (hdm addition).
    const NAME: &'static str;

    /// Kernel rows
    const MR: usize = Self::MRTy::VALUE;
    /// Kernel cols
    const NR: usize = Self::NRTy::VALUE;
    /// Kernel rows as const num type
    type MRTy: ConstNum;
    /// Kernel cols as const num type
    type NRTy: ConstNum;

    /// align inputs to this
    const ALIGNMENT: usize = 0;

    /// Whether to always use the masked wrapper around the kernel.
    const ALWAYS_MASKED: bool = true;

    // These should ideally be tuned per kernel and per microarch
    #[inline(always)]
    fn nc() -> usize { archparam::S_NC }
    #[inline(always)]
    fn kc() -> usize { archparam::S_KC }
    #[inline(always)]
    fn mc() -> usize { archparam::S_MC }

    /// hdm: `C <- alpha A B + beta C` for a single row of C (`m == 1`, C's row contiguous),
    /// without packing, when the kernel has such a path for B's strides: returns `true` when it
    /// did the product, `false` (having done nothing) to take the packed loops. It must give the
    /// bits the packed loops give.
    #[inline(always)]
    unsafe fn gemv_row(_k: usize, _n: usize, _alpha: Self::Elem, _a: *const Self::Elem, _csa: isize,
                       _b: *const Self::Elem, _rsb: isize, _csb: isize, _beta: Self::Elem,
                       _c: *mut Self::Elem) -> bool
    {
        false
    }

    /// hdm: an edge tile (`rows < MR` or `cols < NR`) written straight to C without the masked
    /// kernel's scratch tile, when the kernel has such a path for C's strides: returns `true` when
    /// it did the tile, `false` (having done nothing) to take the masked kernel. It must give the
    /// bits of the kernel's full tile for every element it writes (the same FMA chain, the same
    /// finish `alpha * AB + beta * C`), and must neither read nor write C outside `rows x cols`.
    #[inline(always)]
    unsafe fn edge_kernel(_k: usize, _alpha: Self::Elem, _a: *const Self::Elem,
                          _b: *const Self::Elem, _beta: Self::Elem, _c: *mut Self::Elem,
                          _rsc: isize, _csc: isize, _rows: usize, _cols: usize) -> bool
    {
        false
    }

    /// Pack matrix A into its packing buffer.
    ///
    /// See pack for more documentation.
    ///
    /// Override only if the default packing function does not
    /// use the right layout.
    #[inline]
    unsafe fn pack_mr(kc: usize, mc: usize, pack_buf: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        pack::<Self::MRTy, _>(kc, mc, pack_buf, a, rsa, csa)
    }

    /// Pack matrix B into its packing buffer
    ///
    /// See pack for more documentation.
    ///
    /// Override only if the default packing function does not
    /// use the right layout.
    #[inline]
    unsafe fn pack_nr(kc: usize, mc: usize, pack_buf: PackSlice<Self::Elem>,
                      a: *const Self::Elem, rsa: isize, csa: isize)
    {
        pack::<Self::NRTy, _>(kc, mc, pack_buf, a, rsa, csa)
    }


    /// Matrix multiplication kernel
    ///
    /// This does the matrix multiplication:
    ///
    /// C ← α A B + β C
    ///
    /// + `k`: length of data in a, b
    /// + a, b are packed
    /// + c has general strides
    /// + rsc: row stride of c
    /// + csc: col stride of c
    /// + `alpha`: scaling factor for A B product
    /// + `beta`: scaling factor for c.
    ///   Note: if `beta` is `0.`, the kernel should not (and must not)
    ///   read from c, its value is to be treated as if it was zero.
    ///
    /// When masked, the kernel is always called with β=0 but α is passed
    /// as usual. (This is only useful information if you have `true` in
    /// `ALWAYS_MASKED`.)
    unsafe fn kernel(
        k: usize,
        alpha: Self::Elem,
        a: *const Self::Elem,
        b: *const Self::Elem,
        beta: Self::Elem,
        c: *mut Self::Elem, rsc: isize, csc: isize);
}

pub(crate) trait Element : Copy + Send + Sync {
    fn zero() -> Self;
    fn one() -> Self;
    fn is_zero(&self) -> bool;
    fn add_assign(&mut self, rhs: Self);
    fn mul_assign(&mut self, rhs: Self);
}

impl Element for f32 {
    fn zero() -> Self { 0. }
    fn one() -> Self { 1. }
    fn is_zero(&self) -> bool { *self == 0. }
    fn add_assign(&mut self, rhs: Self) { *self += rhs; }
    fn mul_assign(&mut self, rhs: Self) { *self *= rhs; }
}

impl Element for f64 {
    fn zero() -> Self { 0. }
    fn one() -> Self { 1. }
    fn is_zero(&self) -> bool { *self == 0. }
    fn add_assign(&mut self, rhs: Self) { *self += rhs; }
    fn mul_assign(&mut self, rhs: Self) { *self *= rhs; }
}

/// Kernel selector
pub(crate) trait GemmSelect<T> {
    /// What `select` returns (hdm addition: upstream returns nothing).
    type Output;

    /// Call `select` with the selected kernel for this configuration
    fn select<K>(self, kernel: K) -> Self::Output
        where K: GemmKernel<Elem=T>,
              T: Element;
}

pub(crate) trait ConstNum {
    const VALUE: usize;
}

pub(crate) struct U4;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
pub(crate) struct U6;
pub(crate) struct U8;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct U12;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
pub(crate) struct U16;
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct U32;

impl ConstNum for U4 { const VALUE: usize = 4; }
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl ConstNum for U6 { const VALUE: usize = 6; }
impl ConstNum for U8 { const VALUE: usize = 8; }
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl ConstNum for U12 { const VALUE: usize = 12; }
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl ConstNum for U16 { const VALUE: usize = 16; }
#[cfg(any(target_arch="x86", target_arch="x86_64"))]
impl ConstNum for U32 { const VALUE: usize = 32; }
