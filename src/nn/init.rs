//! Weight initialisation, drawn from the caller's seeded random generator.
//!
//! A layer `y = x W` with `fan_in` inputs and `fan_out` outputs keeps the scale of its
//! signal stable when the weights have the right variance:
//!
//! - **Glorot / Xavier** (Glorot & Bengio 2010): `Var(W) = 2 / (fan_in + fan_out)`,
//!   balancing forward and backward signals; for tanh, sigmoid, linear layers.
//! - **He / Kaiming** (He et al. 2015): `Var(W) = 2 / fan_in`, making up for ReLU
//!   zeroing half its inputs.
//!
//! A uniform distribution on `[-a, a]` has variance `a^2 / 3`, which gives the bounds
//! `a = sqrt(6 / (fan_in + fan_out))` (Glorot) and `a = sqrt(6 / fan_in)` (He).
//!
//! ```
//! use gumbelgrad::nn::Init;
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let w = Init::GlorotUniform.weight::<f64, _>(100, 50, &mut rng);
//! let bound = (6.0f64 / 150.0).sqrt();
//! assert!(w.as_slice().iter().all(|x| x.abs() <= bound));
//! ```

use rand::Rng;

use crate::float::Float;
use crate::tensor::Tensor;

/// How to draw a `[fan_in, fan_out]` weight matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform on `±sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Normal with standard deviation `sqrt(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// Uniform on `±sqrt(6 / fan_in)`.
    HeUniform,
    /// Normal with standard deviation `sqrt(2 / fan_in)`.
    HeNormal,
    /// Uniform on `±bound` for a bound of your choice.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// All zeros.
    Zeros,
}

impl Init {
    /// Draws a `[fan_in, fan_out]` weight matrix.
    pub fn weight<T: Float, R: Rng + ?Sized>(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Tensor<T> {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match self {
            Init::GlorotUniform => {
                let bound = (6.0 / (fi + fo)).sqrt();
                Tensor::random_uniform(fan_in, fan_out, -bound, bound, rng)
            }
            Init::GlorotNormal => {
                Tensor::random_normal(fan_in, fan_out, 0.0, (2.0 / (fi + fo)).sqrt(), rng)
            }
            Init::HeUniform => {
                let bound = (6.0 / fi).sqrt();
                Tensor::random_uniform(fan_in, fan_out, -bound, bound, rng)
            }
            Init::HeNormal => Tensor::random_normal(fan_in, fan_out, 0.0, (2.0 / fi).sqrt(), rng),
            Init::Uniform { bound } => Tensor::random_uniform(fan_in, fan_out, -bound, bound, rng),
            Init::Zeros => Tensor::zeros(fan_in, fan_out),
        }
    }
}

/// Glorot (Xavier) uniform `[fan_in, fan_out]` matrix; see [`Init::GlorotUniform`].
pub fn glorot_uniform<T: Float, R: Rng + ?Sized>(
    fan_in: usize,
    fan_out: usize,
    rng: &mut R,
) -> Tensor<T> {
    Init::GlorotUniform.weight(fan_in, fan_out, rng)
}

/// He (Kaiming) uniform `[fan_in, fan_out]` matrix; see [`Init::HeUniform`].
pub fn he_uniform<T: Float, R: Rng + ?Sized>(
    fan_in: usize,
    fan_out: usize,
    rng: &mut R,
) -> Tensor<T> {
    Init::HeUniform.weight(fan_in, fan_out, rng)
}

/// He (Kaiming) normal `[fan_in, fan_out]` matrix; see [`Init::HeNormal`].
pub fn he_normal<T: Float, R: Rng + ?Sized>(
    fan_in: usize,
    fan_out: usize,
    rng: &mut R,
) -> Tensor<T> {
    Init::HeNormal.weight(fan_in, fan_out, rng)
}
