//! The crate's one error type.
//!
//! Every fallible operation in gumbelgrad returns [`Result<T>`](Result). Errors are
//! detected as early as possible: a shape mismatch is found when the op is *recorded*
//! on the tape (naming the op and both shapes), never later inside a backward pass.

use crate::float::Float;
use crate::tensor::Shape;

/// Everything that can go wrong in gumbelgrad.
///
/// The enum is `Clone` so that a tape can remember the first error it met and hand it
/// back from every later call (see [`Tape`](crate::Tape)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two operands of an op have shapes the op cannot combine.
    #[error("shape mismatch in `{op}`: {left} and {right} ({reason})")]
    ShapeMismatch {
        /// The op being recorded, e.g. `"matmul"`.
        op: String,
        /// Shape of the first operand.
        left: Shape,
        /// Shape of the second operand.
        right: Shape,
        /// What the op needed, e.g. `"inner dimensions differ"`.
        reason: String,
    },

    /// A buffer's length does not fit the shape asked for.
    #[error("cannot build a {rows}x{cols} tensor from {len} elements")]
    BadLength {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
        /// Elements supplied.
        len: usize,
    },

    /// An argument is out of its domain (a group size that does not divide the columns,
    /// a column range past the end, ...).
    #[error("invalid argument to `{op}`: {message}")]
    InvalidArgument {
        /// The op or function that rejected the argument.
        op: String,
        /// What was wrong.
        message: String,
    },

    /// A temperature was zero, negative, NaN or infinite.
    #[error("temperature must be finite and > 0, got {value} (in `{op}`)")]
    InvalidTemperature {
        /// Where the temperature was given.
        op: String,
        /// The rejected value.
        value: f64,
    },

    /// A temperature (or slope) is finite and positive but outside the range in which
    /// the computation in the tensor's float type stays finite (see
    /// [`temperature_range`]).
    #[error(
        "temperature {value:e} is outside [{min:e}, {max:e}], the range in which {float} \
         computations at that temperature stay finite (in `{op}`)"
    )]
    TemperatureOutOfRange {
        /// Where the temperature was given.
        op: String,
        /// The rejected value.
        value: f64,
        /// The tensor's float type, `"f32"` or `"f64"`.
        float: &'static str,
        /// The smallest temperature accepted for that type.
        min: f64,
        /// The largest temperature accepted for that type.
        max: f64,
    },

    /// An input contained NaN or infinity.
    #[error("non-finite value in {what}")]
    NonFiniteInput {
        /// Which input.
        what: String,
    },

    /// With the finite check on, an op produced NaN or infinity.
    #[error("op `{op}` (node %{node}) produced a non-finite value in its {pass} pass")]
    NonFinite {
        /// Name of the offending op.
        op: String,
        /// Index of its node on the tape.
        node: usize,
        /// `"forward"` or `"backward"`.
        pass: &'static str,
    },

    /// `backward` was called on something that is not a 1x1 scalar.
    #[error("backward needs a 1x1 scalar loss, got {shape}")]
    NotScalar {
        /// Shape of the value passed to backward.
        shape: Shape,
    },

    /// A `Var` from one tape was used on another.
    #[error("a variable from another tape was passed to `{op}`")]
    ForeignVar {
        /// The op that received it.
        op: String,
    },

    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },

    /// A data or checkpoint file was readable but its contents are wrong.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it (bad magic number, truncated, bad line, ...).
        message: String,
    },
}

/// `std::result::Result` with gumbelgrad's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape_mismatch(
        op: impl Into<String>,
        left: Shape,
        right: Shape,
        reason: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op: op.into(),
            left,
            right,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_argument(op: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op: op.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`] from a `std::io::Error`.
    pub fn io(path: impl AsRef<std::path::Path>, source: &std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            message: source.to_string(),
        }
    }

    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.as_ref().display().to_string(),
            message: message.into(),
        }
    }
}

/// Checks that a temperature is finite and strictly positive.
///
/// ```
/// assert!(gumbelgrad::check_temperature("gumbel_softmax", 0.5).is_ok());
/// assert!(gumbelgrad::check_temperature("gumbel_softmax", 0.0).is_err());
/// assert!(gumbelgrad::check_temperature("gumbel_softmax", f64::NAN).is_err());
/// ```
pub fn check_temperature(op: &str, temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidTemperature {
            op: op.to_string(),
            value: temperature,
        })
    }
}

/// The temperatures accepted for computations in float type `T`:
/// `[sqrt(T::MIN_POSITIVE), 1 / sqrt(T::MIN_POSITIVE)]`, about `[1.1e-19, 9.2e18]` in
/// f32 and `[1.5e-154, 6.7e153]` in f64.
///
/// Why this range: the relaxations divide logits by `tau` and their gradients carry a
/// factor `1 / tau`. With `tau` and `1 / tau` both in the range, `x / tau` and
/// `g / tau` are finite for every logit `x` and upstream gradient `g` of magnitude up to
/// `1 / sqrt(T::MIN_POSITIVE)` (whose square is still below `T::MAX`), and a value of
/// magnitude at least `sqrt(T::MIN_POSITIVE)` stays a normal number after the division.
/// A temperature outside it, though positive and finite in f64, makes the computation
/// in `T` overflow or lose all precision: `tau = 1e-45` is subnormal in f32 and
/// `1 / tau` is infinite there; `tau = 1e300` is infinite in f32.
///
/// ```
/// let (min, max) = gumbelgrad::temperature_range::<f32>();
/// assert!(min < 1e-18 && min > 1e-20 && max > 1e18 && max < 1e20);
/// ```
pub fn temperature_range<T: Float>() -> (f64, f64) {
    let min = T::MIN_POSITIVE.to_f64().sqrt();
    (min, 1.0 / min)
}

/// Checks a temperature for computations in float type `T`: finite, `> 0`
/// ([`Error::InvalidTemperature`] otherwise) and within [`temperature_range::<T>`]
/// ([`Error::TemperatureOutOfRange`] otherwise). Slopes (inverse temperatures) are
/// checked the same way: the range is symmetric under `tau -> 1 / tau`.
///
/// ```
/// use gumbelgrad::check_temperature_for;
/// assert!(check_temperature_for::<f32>("gumbel_softmax", 0.5).is_ok());
/// assert!(check_temperature_for::<f32>("gumbel_softmax", 1e-45).is_err());
/// assert!(check_temperature_for::<f64>("gumbel_softmax", 1e-45).is_ok());
/// assert!(check_temperature_for::<f64>("gumbel_softmax", 1e300).is_err());
/// ```
pub fn check_temperature_for<T: Float>(op: &str, temperature: f64) -> Result<()> {
    check_temperature(op, temperature)?;
    let (min, max) = temperature_range::<T>();
    if (min..=max).contains(&temperature) {
        Ok(())
    } else {
        Err(Error::TemperatureOutOfRange {
            op: op.to_string(),
            value: temperature,
            float: T::NAME,
            min,
            max,
        })
    }
}

/// The step counter after one more step, or an [`Error::InvalidArgument`] naming `op`
/// when `step` is already `u64::MAX` (only a corrupt or crafted checkpoint gets there):
/// a counter never wraps to 0, which would replay the schedules and random streams
/// from the start. Trainers call it before changing anything, so a refused step leaves
/// the model as it was.
pub(crate) fn next_step(step: u64, op: &str) -> Result<u64> {
    step.checked_add(1).ok_or_else(|| {
        Error::invalid_argument(
            op,
            format!("the step counter is at its maximum ({step}); a checkpoint with this step is corrupt"),
        )
    })
}
