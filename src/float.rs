//! The element type of tensors: `f32` for training speed, `f64` for gradient checks.
//!
//! All of gumbelgrad is written once, generically over [`Float`], so the code that
//! trains a model in `f32` is the very code that is gradient-checked in `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type: implemented for `f32` and `f64`.
pub trait Float:
    Copy
    + Debug
    + Display
    + Default
    + PartialOrd
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// `"f32"` or `"f64"`, for messages and file headers.
    const NAME: &'static str;
    /// The smallest positive *normal* value.
    const MIN_POSITIVE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;

    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate for small x.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// x raised to a real power.
    fn powf(self, exponent: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values (NaN-ignoring, as `f64::min`).
    fn min(self, other: Self) -> Self;
    /// Neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// e^x - 1, accurate for small x.
    fn exp_m1(self) -> Self;

    /// The slice as `&[f32]` when `Self` is `f32`, else `None`: lets kernels pick a
    /// type-specific (SIMD) path from generic code without `unsafe` casts.
    fn as_f32(values: &[Self]) -> Option<&[f32]>;
    /// Mutable version of [`Float::as_f32`].
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;
    /// The slice as `&[f64]` when `Self` is `f64`, else `None`.
    fn as_f64(values: &[Self]) -> Option<&[f64]>;
    /// Mutable version of [`Float::as_f64`].
    fn as_f64_mut(values: &mut [Self]) -> Option<&mut [f64]>;
}

macro_rules! impl_float {
    ($t:ident, f32: $f32:expr, f64: $f64:expr, f32_mut: $f32_mut:expr, f64_mut: $f64_mut:expr) => {
        impl Float for $t {
            const NAME: &'static str = stringify!($t);
            const MIN_POSITIVE: Self = $t::MIN_POSITIVE;
            const EPSILON: Self = $t::EPSILON;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;

            #[inline(always)]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $t::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            #[inline(always)]
            fn powf(self, exponent: Self) -> Self {
                $t::powf(self, exponent)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                $t::min(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                $t::exp_m1(self)
            }
            #[inline(always)]
            fn as_f32(values: &[Self]) -> Option<&[f32]> {
                $f32(values)
            }
            #[inline(always)]
            fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]> {
                $f32_mut(values)
            }
            #[inline(always)]
            fn as_f64(values: &[Self]) -> Option<&[f64]> {
                $f64(values)
            }
            #[inline(always)]
            fn as_f64_mut(values: &mut [Self]) -> Option<&mut [f64]> {
                $f64_mut(values)
            }
        }
    };
}

impl_float!(f32, f32: Some, f64: |_| None, f32_mut: Some, f64_mut: |_| None);
impl_float!(f64, f32: |_| None, f64: Some, f32_mut: |_| None, f64_mut: Some);

/// `x`, or zero if `x` is subnormal (nonzero and smaller in magnitude than the smallest
/// normal number, `MIN_POSITIVE`).
///
/// The optimisers store their running averages through it. A moment of a weight whose
/// gradient is zero on most steps (a weight of a pixel that is rarely on) decays by a
/// constant factor a step and on its way to zero spends about 150 steps (f32, factor
/// 0.9) below `MIN_POSITIVE`, where x86 processors compute a multiplication or a
/// division with a subnormal operand in microcode, many times slower: on binarised MNIST
/// this once made the Adam update a third of a one-thread training step. Set to zero,
/// such a moment loses a step of at most `lr * MIN_POSITIVE` times the optimiser's
/// scale (see [`Adam`](crate::optim::Adam), [`Sgd`](crate::optim::Sgd)), which rounds
/// away against any weight that is not itself tiny. A comparison and a select, so a
/// loop using it stays vectorised.
#[inline(always)]
pub(crate) fn flush_subnormal<T: Float>(x: T) -> T {
    if x.abs() < T::MIN_POSITIVE {
        T::ZERO
    } else {
        x
    }
}
