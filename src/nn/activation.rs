//! The nonlinearities an [`Mlp`](super::Mlp) puts between its layers.

use crate::float::Float;
use crate::ops::linear::FusedActivation;
use crate::tape::Var;

/// An elementwise nonlinearity, applied on the tape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x` for `x > 0`, `slope * x` otherwise (PyTorch's default slope is 0.01).
    LeakyRelu {
        /// The slope on the negative side.
        slope: f64,
    },
    /// `x`: no nonlinearity.
    Identity,
}

impl Activation {
    /// The nonlinearity of one value, off the tape (what [`Activation::apply`] computes
    /// for each element; evaluation paths without a tape use it).
    #[inline]
    pub fn value<T: Float>(self, x: T) -> T {
        match (self, self.fused()) {
            (_, Some(fused)) => fused.value(x),
            (Activation::LeakyRelu { slope }, None) if x <= T::ZERO => T::from_f64(slope) * x,
            _ => x,
        }
    }

    /// Applies the nonlinearity to `x`.
    pub fn apply<'t, T: Float>(self, x: Var<'t, T>) -> Var<'t, T> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::LeakyRelu { slope } => x.leaky_relu(T::from_f64(slope)),
            Activation::Identity => x,
        }
    }

    /// The same nonlinearity as a [`FusedActivation`], which a dense layer can apply
    /// inside its own node; `None` for a leaky ReLU whose slope is not finite and
    /// `> 0` (its derivative cannot be read off the output).
    pub fn fused(self) -> Option<FusedActivation> {
        Some(match self {
            Activation::Relu => FusedActivation::Relu,
            Activation::Tanh => FusedActivation::Tanh,
            Activation::Sigmoid => FusedActivation::Sigmoid,
            Activation::LeakyRelu { slope } if slope.is_finite() && slope > 0.0 => {
                FusedActivation::LeakyRelu { slope }
            }
            Activation::LeakyRelu { .. } => return None,
            Activation::Identity => FusedActivation::Identity,
        })
    }

    /// The nonlinearity's name as PyTorch spells its module, lower case: `relu`, `tanh`,
    /// `sigmoid`, `leaky_relu` (its slope is [`Activation::LeakyRelu`]'s field) or
    /// `identity`. Checkpoint descriptions use it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Identity => "identity",
        }
    }

    /// The initialisation suited to layers followed by this nonlinearity: He for the
    /// rectifiers (they zero half their inputs, so weights need twice the variance),
    /// Glorot for the others.
    pub fn suggested_init(self) -> super::Init {
        match self {
            Activation::Relu | Activation::LeakyRelu { .. } => super::Init::HeUniform,
            _ => super::Init::GlorotUniform,
        }
    }
}
