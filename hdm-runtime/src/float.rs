//! The element types hdm computes in: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type: `f32` or `f64`.
///
/// Everything generic in hdm (networks, optimizers, kernels) is generic over this trait. It adds to
/// [`num_traits::Float`] the general matrix product of the type and a lossless way to write
/// constants.
pub trait Float:
    num_traits::Float
    + num_traits::FloatConst
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + 'static
{
    /// The type's name as safetensors writes it: `"F32"` or `"F64"`.
    const DTYPE: &'static str;

    /// Converts an `f64` constant (a hyperparameter, a literal in generated code).
    fn of(x: f64) -> Self;

    /// Converts to `f64` (for reporting).
    fn to_f64(self) -> f64;

    /// `C <- alpha * A * B + beta * C` on raw strided matrices: `sgemm` or `dgemm` of
    /// [`matrixmultiply`].
    ///
    /// # Safety
    /// The pointers and strides must describe valid `m x k`, `k x n` and `m x n` matrices, `c`
    /// must not alias `a` or `b`, and no element of `c` may be reachable through two index pairs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $dtype:literal, $gemm:path) => {
        impl Float for $t {
            const DTYPE: &'static str = $dtype;

            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }

            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }

            #[inline]
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from this function's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_float!(f32, "F32", matrixmultiply::sgemm);
impl_float!(f64, "F64", matrixmultiply::dgemm);
