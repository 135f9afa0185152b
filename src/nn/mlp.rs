//! A multi-layer perceptron: linear layers with a nonlinearity between them.

use rand::Rng;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::json::Json;
use crate::nn::activation::Activation;
use crate::nn::init::Init;
use crate::nn::linear::Linear;
use crate::nn::params::{BoundParameters, Parameters};
use crate::tape::Var;

/// A stack of [`Linear`] layers with `activation` after every layer but the last (so
/// the output is unbounded: logits, means, ...).
///
/// `Mlp::new(params, "encoder", &[784, 512, 256, 200], Activation::Relu, rng)` builds
/// 784 -> 512 -> relu -> 256 -> relu -> 200 with parameters named
/// `encoder.0.weight`, `encoder.0.bias`, `encoder.1.weight`, ... `encoder.2.bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// Builds the MLP with the initialisation suited to `activation`
    /// ([`Activation::suggested_init`]; the last layer uses Glorot).
    pub fn new<T: Float, R: Rng + ?Sized>(
        params: &mut Parameters<T>,
        name: &str,
        sizes: &[usize],
        activation: Activation,
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_init(
            params,
            name,
            sizes,
            activation,
            activation.suggested_init(),
            rng,
        )
    }

    /// Builds the MLP drawing hidden layers with `init` (the last layer uses Glorot,
    /// since no nonlinearity follows it).
    pub fn with_init<T: Float, R: Rng + ?Sized>(
        params: &mut Parameters<T>,
        name: &str,
        sizes: &[usize],
        activation: Activation,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::invalid_argument(
                "Mlp::new",
                format!("need at least an input and an output size, all > 0; got {sizes:?}"),
            ));
        }
        let count = sizes.len() - 1;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                let layer_init = if index + 1 == count {
                    Init::GlorotUniform
                } else {
                    init
                };
                Linear::new(
                    params,
                    &format!("{name}.{index}"),
                    pair[0],
                    pair[1],
                    layer_init,
                    rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp { layers, activation })
    }

    /// Runs `x: [batch, sizes[0]]` through the layers, giving `[batch, sizes.last()]`.
    pub fn forward<'t, T: Float>(
        &self,
        params: &BoundParameters<'t, T>,
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (index, layer) in self.layers.iter().enumerate() {
            h = if index < last {
                layer.forward_activated(params, h, self.activation)
            } else {
                layer.forward(params, h)
            };
        }
        h
    }

    /// The layer sizes, input first: `[784, 512, 256, 200]` for the paper's encoder.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.in_features()];
        sizes.extend(self.layers.iter().map(Linear::out_features));
        sizes
    }

    /// A machine-readable description: `{"sizes": [...], "activation": "relu"}` (plus
    /// `"slope"` for a leaky ReLU). The activation sits between layers, not after the
    /// last; the weights of layer `i` are the parameters `{name}.{i}.weight` (`[in, out]`,
    /// the transpose of `torch.nn.Linear.weight`) and `{name}.{i}.bias` (`[1, out]`).
    pub fn description(&self) -> Json {
        let mut fields = vec![
            (
                "sizes".to_string(),
                Json::Array(
                    self.sizes()
                        .into_iter()
                        .map(|n| Json::from_u64(n as u64))
                        .collect(),
                ),
            ),
            (
                "activation".to_string(),
                Json::string(self.activation.name()),
            ),
        ];
        if let Activation::LeakyRelu { slope } = self.activation {
            fields.push(("slope".to_string(), Json::from_f64(slope)));
        }
        Json::Object(fields)
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The nonlinearity between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.layers[0].in_features()
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].out_features()
    }
}
