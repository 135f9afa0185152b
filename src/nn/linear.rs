//! The fully connected layer `y = x W + b`.

use rand::Rng;

use crate::error::Result;
use crate::float::Float;
use crate::nn::activation::Activation;
use crate::nn::init::Init;
use crate::nn::params::{BoundParameters, ParamId, Parameters};
use crate::ops::linear::FusedActivation;
use crate::tape::Var;

/// A fully connected layer: `y = x W + b` with `W: [in_features, out_features]` and
/// `b: [1, out_features]` broadcast over the rows (the batch) of `x: [batch, in]`.
///
/// Its parameters are registered in a [`Parameters`] store as `"{name}.weight"` and
/// `"{name}.bias"`. Note the layout: PyTorch's `nn.Linear` stores its weight
/// transposed, as `[out, in]`.
///
/// ```
/// use gumbelgrad::nn::{Init, Linear, Parameters};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut params = Parameters::<f64>::new();
/// let layer = Linear::new(&mut params, "fc", 3, 2, Init::GlorotUniform, &mut rng)?;
/// let tape = Tape::new();
/// let bound = params.bind(&tape);
/// let y = layer.forward(&bound, tape.constant(&Tensor::ones(5, 3)));
/// assert_eq!(y.shape(), gumbelgrad::Shape::new(5, 2));
/// assert_eq!(params.name(layer.weight()), "fc.weight");
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    weight: ParamId,
    bias: ParamId,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// Creates the layer, drawing `W` with `init` and setting `b = 0`, and registers
    /// both in `params` under `"{name}.weight"` and `"{name}.bias"`.
    pub fn new<T: Float, R: Rng + ?Sized>(
        params: &mut Parameters<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let weight = params.add(
            format!("{name}.weight"),
            init.weight(in_features, out_features, rng),
        )?;
        let bias = params.add(
            format!("{name}.bias"),
            crate::Tensor::zeros(1, out_features),
        )?;
        Ok(Linear {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// `x W + b` on the tape of `x`, as one fused [`linear`](Var::linear) node.
    pub fn forward<'t, T: Float>(
        &self,
        params: &BoundParameters<'t, T>,
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        self.forward_activated(params, x, Activation::Identity)
    }

    /// `activation(x W + b)`: one fused [`linear`](Var::linear) node when the
    /// activation can be fused (see [`Activation::fused`]), else the layer's node
    /// followed by the activation's. The values are the same bits either way.
    pub fn forward_activated<'t, T: Float>(
        &self,
        params: &BoundParameters<'t, T>,
        x: Var<'t, T>,
        activation: Activation,
    ) -> Var<'t, T> {
        let (weight, bias) = (params.var(self.weight), params.var(self.bias));
        match activation.fused() {
            Some(fused) => x.linear(weight, bias, fused),
            None => activation.apply(x.linear(weight, bias, FusedActivation::Identity)),
        }
    }

    /// The id of `W`.
    pub fn weight(&self) -> ParamId {
        self.weight
    }

    /// The id of `b`.
    pub fn bias(&self) -> ParamId {
        self.bias
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}
