//! The element types hdm computes in: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type: `f32` or `f64`.
///
/// Everything generic in hdm (networks, optimizers, kernels) is generic over this trait. It adds to
/// [`num_traits::Float`] a lossless way to write constants and, through a sealed supertrait, the
/// type's GEMM kernels (vendored from matrixmultiply, see [`gemm`](crate::gemm)). It is
/// implemented for `f32` and `f64` only, and cannot be implemented outside hdm.
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
    + crate::gemm::sealed::Scalar
{
    /// The type's name as safetensors writes it: `"F32"` or `"F64"`.
    const DTYPE: &'static str;

    /// Converts an `f64` constant (a hyperparameter, a literal in generated code).
    fn of(x: f64) -> Self;

    /// Converts to `f64` (for reporting).
    fn to_f64(self) -> f64;
}

macro_rules! impl_float {
    ($t:ty, $dtype:literal) => {
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
        }
    };
}

impl_float!(f32, "F32");
impl_float!(f64, "F64");
