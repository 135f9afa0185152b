//! The VAEs of Jang, Gu and Poole (§4.2) with a discrete latent layer: `N` categorical
//! variables of `K` classes each (the categorical VAE, 20 x 10 in the paper) or `N`
//! binary units (the Bernoulli VAE, 200 units), an MLP encoder giving their logits, and an
//! MLP decoder giving Bernoulli logits for the pixels.
//!
//! For an image `x` the encoder gives `q(z|x) = prod_n Categorical(softmax(logits_n))`;
//! the prior `p(z)` is uniform over the `K^N` configurations. The negative evidence
//! lower bound, per example, is
//!
//! ```text
//! -ELBO(x) = E_{z~q}[ -log p(x|z) ] + KL(q(z|x) || p(z))
//!          = E_{z~q}[ sum_pixels BCE(decoder(z), x) ] + sum_n sum_k q_nk (log q_nk + log K)
//! ```
//!
//! (for binary units, `KL = sum_n q_n log q_n + (1 - q_n) log(1 - q_n) + log 2`).
//!
//! The KL term has a closed form and is differentiated exactly (divided by the
//! estimator's [`signal_scale`](GradientEstimator::signal_scale) when it normalises its
//! signal, as NVIL does, so both parts of the encoder's gradient keep their balance).
//! The expectation is
//! where the estimator comes in: [`DiscreteVae::negative_elbo`] hands the
//! reconstruction cost to any [`GradientEstimator`] as a closure, so the same model
//! trains with Gumbel-Softmax, straight-through or a score-function estimator.

use rand::{Rng, RngCore};

use crate::error::{Error, Result};
use crate::estimators::bernoulli::relaxed_bernoulli;
use crate::estimators::noise::{sample_bernoulli, sample_categorical};
use crate::estimators::{GradientEstimator, gumbel_softmax, noise};
use crate::float::Float;
use crate::io::json::Json;
use crate::nn::{Activation, BoundParameters, Mlp, Parameters};
use crate::ops::unary::softplus;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The discrete latent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latent {
    /// `variables` categorical variables of `classes` classes each, one-hot coded in
    /// consecutive groups of `classes` columns.
    Categorical {
        /// Number of variables, `N`.
        variables: usize,
        /// Classes per variable, `K` (at least 2).
        classes: usize,
    },
    /// `units` binary variables, one logit (and one 0/1 column) each.
    Bernoulli {
        /// Number of units.
        units: usize,
    },
}

impl Latent {
    /// Width of the latent code: `N * K`, or the number of units.
    pub fn width(&self) -> usize {
        match *self {
            Latent::Categorical { variables, classes } => variables * classes,
            Latent::Bernoulli { units } => units,
        }
    }

    /// The group size estimators are called with: `K`, or 1 for binary units (the
    /// crate's convention for Bernoulli latents).
    pub fn group_size(&self) -> usize {
        match *self {
            Latent::Categorical { classes, .. } => classes,
            Latent::Bernoulli { .. } => 1,
        }
    }

    /// The mean `E[z]` of the layer given its logits, on the tape: `softmax` of each
    /// group of `K`, or `sigmoid` of each unit. (MuProp's mean-field network.)
    pub fn mean<'t, T: Float>(&self, logits: Var<'t, T>) -> Var<'t, T> {
        match *self {
            Latent::Categorical { classes, .. } => logits.softmax(classes),
            Latent::Bernoulli { .. } => logits.sigmoid(),
        }
    }

    /// At least one variable, and categorical variables of at least 2 classes.
    pub fn is_well_formed(&self) -> bool {
        match *self {
            Latent::Categorical { variables, classes } => variables > 0 && classes >= 2,
            Latent::Bernoulli { units } => units > 0,
        }
    }

    /// Checks that `estimator` suits this latent layer, by asking it
    /// ([`GradientEstimator::latent_kinds`]): the binary-unit estimators (relaxed
    /// Bernoulli and its ST version, ST Bernoulli, slope-annealed ST) need Bernoulli
    /// latents and the categorical relaxations (Gumbel-Softmax, ST-GS, ST, ST-argmax)
    /// categorical ones; the score-function family, Gumbel-Rao and ReinMax work with both.
    /// `model` names the caller in the error.
    pub fn check_estimator<T: Float>(
        &self,
        estimator: &dyn GradientEstimator<T>,
        model: &str,
    ) -> Result<()> {
        let kinds = estimator.latent_kinds();
        let fits = match self {
            Latent::Categorical { .. } => kinds.categorical,
            Latent::Bernoulli { .. } => kinds.binary,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::invalid_argument(
                model,
                format!(
                    "estimator `{}` does not fit {self:?} latents (binary units take relaxed-bernoulli, st-relaxed-bernoulli, st-bernoulli, slope-annealed-st, gumbel-rao, reinmax, gapped-st or a score-function estimator)",
                    estimator.name(),
                ),
            ))
        }
    }

    /// `log p(z)` of every code under the uniform prior: `-N log K`, or `-N log 2`.
    pub fn log_prior(&self) -> f64 {
        match *self {
            Latent::Categorical { variables, classes } => {
                -(variables as f64) * (classes as f64).ln()
            }
            Latent::Bernoulli { units } => -(units as f64) * std::f64::consts::LN_2,
        }
    }
}

/// Sizes of a discrete VAE. The default is the paper's categorical VAE: 784 pixels, 20
/// variables of 10 classes, encoder 784-512-256-200, decoder 200-256-512-784, ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Pixels per image.
    pub input_dim: usize,
    /// The latent layer.
    pub latent: Latent,
    /// Hidden layer sizes of the encoder.
    pub encoder_hidden: Vec<usize>,
    /// Hidden layer sizes of the decoder.
    pub decoder_hidden: Vec<usize>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig::categorical(20, 10)
    }
}

impl VaeConfig {
    /// The paper's categorical VAE with `variables x classes` latents (784 pixels,
    /// hidden layers 512-256 and 256-512).
    pub fn categorical(variables: usize, classes: usize) -> Self {
        VaeConfig {
            input_dim: 784,
            latent: Latent::Categorical { variables, classes },
            encoder_hidden: vec![512, 256],
            decoder_hidden: vec![256, 512],
        }
    }

    /// The Bernoulli VAE with `units` binary latents (the paper uses 200), same MLPs.
    pub fn bernoulli(units: usize) -> Self {
        VaeConfig {
            latent: Latent::Bernoulli { units },
            ..VaeConfig::categorical(1, 2)
        }
    }

    /// Width of the latent code.
    pub fn latent_dim(&self) -> usize {
        self.latent.width()
    }
}

/// The terms of the negative ELBO on one batch, on the tape.
#[derive(Debug, Clone, Copy)]
pub struct VaeTerms<'t, T: Float> {
    /// What to backpropagate: `mean_b [cost_b + KL_b]`, with the estimator's gradient.
    pub loss: Var<'t, T>,
    /// Per-example reconstruction cost `-log p(x|z)` at the sample, `[batch, 1]`.
    pub reconstruction: Var<'t, T>,
    /// Per-example `KL(q(z|x) || uniform)`, `[batch, 1]`.
    pub kl: Var<'t, T>,
    /// The latent sample the decoder saw.
    pub sample: Var<'t, T>,
    /// The encoder's logits, `[batch, latent width]`.
    pub logits: Var<'t, T>,
}

/// How to draw the latent when evaluating the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalMode {
    /// A discrete sample from `q(z|x)` (one-hot, or 0/1 units): the true single-sample
    /// ELBO of the discrete model (what the paper reports).
    Hard,
    /// A relaxed sample (Gumbel-Softmax, or binary Concrete for units) at this
    /// temperature: the objective as trained, not a bound on the discrete model.
    Relaxed(f64),
}

/// A VAE with a discrete latent layer: its sizes, its parameters and the two MLPs.
#[derive(Debug, Clone)]
pub struct DiscreteVae<T: Float> {
    config: VaeConfig,
    params: Parameters<T>,
    encoder: Mlp,
    decoder: Mlp,
}

impl<T: Float> DiscreteVae<T> {
    /// Builds the model with freshly initialised weights (parameters named
    /// `encoder.{layer}.{weight,bias}` and `decoder.{layer}.{weight,bias}`).
    pub fn new<R: Rng + ?Sized>(config: VaeConfig, rng: &mut R) -> Result<Self> {
        if !config.latent.is_well_formed() || config.input_dim == 0 {
            return Err(Error::invalid_argument(
                "DiscreteVae::new",
                format!(
                    "need at least one latent (categorical ones of at least 2 classes) and a non-empty input; got {config:?}"
                ),
            ));
        }
        let mut params = Parameters::new();
        let mut sizes = vec![config.input_dim];
        sizes.extend(&config.encoder_hidden);
        sizes.push(config.latent_dim());
        let encoder = Mlp::new(&mut params, "encoder", &sizes, Activation::Relu, rng)?;
        let mut sizes = vec![config.latent_dim()];
        sizes.extend(&config.decoder_hidden);
        sizes.push(config.input_dim);
        let decoder = Mlp::new(&mut params, "decoder", &sizes, Activation::Relu, rng)?;
        Ok(DiscreteVae {
            config,
            params,
            encoder,
            decoder,
        })
    }

    /// The decoder MLP (latent code -> pixel logits).
    pub(crate) fn decoder(&self) -> &Mlp {
        &self.decoder
    }

    /// The model's sizes.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// A machine-readable description of the model, enough to rebuild it in another
    /// framework from a checkpoint's `model.*` tensors:
    ///
    /// ```text
    /// {"kind": "discrete_vae", "input_dim": 784,
    ///  "latent": {"kind": "categorical", "variables": 20, "classes": 10},
    ///  "encoder": {"sizes": [784, 512, 256, 200], "activation": "relu"},
    ///  "decoder": {"sizes": [200, 256, 512, 784], "activation": "relu"},
    ///  "likelihood": "bernoulli_logits", "prior": "uniform"}
    /// ```
    ///
    /// (`"latent": {"kind": "bernoulli", "units": 200}` for binary units.) Each MLP is
    /// described by [`Mlp::description`].
    pub fn description(&self) -> Json {
        let latent = match self.config.latent {
            Latent::Categorical { variables, classes } => Json::Object(vec![
                ("kind".into(), Json::string("categorical")),
                ("variables".into(), Json::from_u64(variables as u64)),
                ("classes".into(), Json::from_u64(classes as u64)),
            ]),
            Latent::Bernoulli { units } => Json::Object(vec![
                ("kind".into(), Json::string("bernoulli")),
                ("units".into(), Json::from_u64(units as u64)),
            ]),
        };
        Json::Object(vec![
            ("kind".into(), Json::string("discrete_vae")),
            (
                "input_dim".into(),
                Json::from_u64(self.config.input_dim as u64),
            ),
            ("latent".into(), latent),
            ("encoder".into(), self.encoder.description()),
            ("decoder".into(), self.decoder.description()),
            ("likelihood".into(), Json::string("bernoulli_logits")),
            ("prior".into(), Json::string("uniform")),
        ])
    }

    /// The parameters (for optimisers and checkpoints).
    pub fn parameters(&self) -> &Parameters<T> {
        &self.params
    }

    /// The parameters, mutably.
    pub fn parameters_mut(&mut self) -> &mut Parameters<T> {
        &mut self.params
    }

    /// Encoder: images `[batch, D]` to latent logits `[batch, latent width]`.
    pub fn encode<'t>(&self, params: &BoundParameters<'t, T>, images: Var<'t, T>) -> Var<'t, T> {
        self.encoder.forward(params, images)
    }

    /// Decoder: latent codes `[batch, latent width]` to pixel logits `[batch, D]`.
    pub fn decode<'t>(&self, params: &BoundParameters<'t, T>, latent: Var<'t, T>) -> Var<'t, T> {
        self.decoder.forward(params, latent)
    }

    /// `-log p(x|z)` per example: the pixels' binary cross-entropies summed, `[batch, 1]`.
    pub fn reconstruction_cost<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        latent: Var<'t, T>,
        images: Var<'t, T>,
    ) -> Var<'t, T> {
        self.decode(params, latent).bce_with_logits_sum_cols(images)
    }

    /// `KL(q || uniform prior)` per example, `[batch, 1]`, computed exactly from the
    /// logits: `sum_n sum_k q_nk (log q_nk + log K)` for categorical variables,
    /// `sum_n q_n log q_n + (1 - q_n) log(1 - q_n) + log 2` for binary units (with
    /// `log q = -softplus(-x)` and `log(1 - q) = -softplus(x)`, stable for any logit).
    pub fn kl_to_uniform<'t>(&self, logits: Var<'t, T>) -> Var<'t, T> {
        match self.config.latent {
            Latent::Categorical { classes, .. } => {
                let log_q = logits.log_softmax(classes);
                let q = logits.softmax(classes);
                let log_classes = T::from_f64((classes as f64).ln());
                (q * (log_q + log_classes)).sum_cols()
            }
            Latent::Bernoulli { .. } => {
                let q = logits.sigmoid();
                let log_q = -(-logits).softplus();
                let log_not_q = -logits.softplus();
                let log_two = T::from_f64(std::f64::consts::LN_2);
                (q * log_q + q.affine(-T::ONE, T::ONE) * log_not_q + log_two).sum_cols()
            }
        }
    }

    /// Checks that `estimator` suits the latent layer (see [`Latent::check_estimator`]).
    pub fn check_estimator(&self, estimator: &dyn GradientEstimator<T>) -> Result<()> {
        self.config.latent.check_estimator(estimator, "DiscreteVae")
    }

    /// The negative ELBO of a batch, with the reconstruction term's gradient given by
    /// `estimator`. `images` is `[batch, D]` with values in `[0, 1]`.
    ///
    /// ```
    /// use gumbelgrad::estimators::Estimator;
    /// use gumbelgrad::models::{DiscreteVae, Latent, VaeConfig};
    /// use gumbelgrad::{Tape, Tensor};
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let config = VaeConfig { input_dim: 16, latent: Latent::Categorical { variables: 2, classes: 3 },
    ///                          encoder_hidden: vec![8], decoder_hidden: vec![8] };
    /// let model = DiscreteVae::<f32>::new(config, &mut rng)?;
    /// let mut estimator = Estimator::gumbel_softmax(1.0)?; // or any other estimator
    /// let tape = Tape::new();
    /// let params = model.parameters().bind(&tape);
    /// let images = tape.constant(&Tensor::full(4, 16, 1.0));
    /// let terms = model.negative_elbo(&params, images, &mut estimator, &mut rng);
    /// tape.backward(terms.loss)?;
    /// let grads = params.gradients(); // one per parameter, for the optimiser
    /// assert!(grads.global_norm() > 0.0);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn negative_elbo<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        estimator: &mut dyn GradientEstimator<T>,
        rng: &mut dyn RngCore,
    ) -> VaeTerms<'t, T> {
        let logits = self.encode(params, images);
        let estimate = estimator.estimate(
            logits,
            self.config.latent.group_size(),
            &mut |latent| {
                let targets = repeat_for_samples(images, latent.shape().rows);
                self.reconstruction_cost(params, latent, targets)
            },
            rng,
        );
        let kl = self.kl_to_uniform(logits);
        // A variance-normalised estimator (NVIL) returned `gradient / s` for the
        // reconstruction; the exact KL gradient must be divided by the same `s`, or it
        // swamps the sampled part and the posterior collapses onto the prior.
        let scale = estimator.signal_scale();
        let kl_term = if scale == 1.0 {
            kl
        } else {
            kl.detach() + (kl - kl.detach()) * T::from_f64(1.0 / scale)
        };
        VaeTerms {
            loss: estimate.loss + kl_term.mean(),
            reconstruction: estimate.cost,
            kl,
            sample: estimate.sample,
            logits,
        }
    }

    /// Mean single-sample negative ELBO (nats per example) over `images`, evaluated in
    /// batches of `batch_size` with latents drawn as `mode` says.
    pub fn evaluate<R: Rng + ?Sized>(
        &self,
        images: &Tensor<T>,
        batch_size: usize,
        mode: EvalMode,
        rng: &mut R,
    ) -> Result<f64> {
        self.check_images(images, "DiscreteVae::evaluate")?;
        let mut tape = Tape::new();
        let mut total = 0.0;
        for start in (0..images.rows()).step_by(batch_size.max(1)) {
            tape.clear();
            let batch = rows(images, start, (start + batch_size).min(images.rows()))?;
            let params = self.params.bind(&tape);
            let x = tape.constant(&batch);
            let logits = self.encode(&params, x);
            let shape = logits.shape();
            let latent = match (mode, self.config.latent) {
                (EvalMode::Hard, _) => tape.constant(&self.sample_hard(&logits.value()?, rng)?.0),
                (EvalMode::Relaxed(temperature), Latent::Categorical { classes, .. }) => {
                    let noise = tape.constant(&noise::gumbel(shape.rows, shape.cols, rng));
                    gumbel_softmax(logits, noise, temperature, classes)
                }
                (EvalMode::Relaxed(temperature), Latent::Bernoulli { .. }) => {
                    let noise = tape.constant(&noise::logistic(shape.rows, shape.cols, rng));
                    relaxed_bernoulli(logits, noise, temperature)
                }
            };
            let per_example =
                self.reconstruction_cost(&params, latent, x) + self.kl_to_uniform(logits);
            total += per_example.sum().scalar()?.to_f64();
        }
        Ok(total / images.rows().max(1) as f64)
    }

    /// The importance-weighted bound with `samples` hard samples per image (the
    /// paper's evaluation uses 1000), as a negative log-likelihood estimate in nats:
    ///
    /// `-log p(x) <= -log (1/m) sum_i p(x|z_i) p(z_i) / q(z_i|x)`, `z_i ~ q(z|x)`.
    ///
    /// It is an upper bound on `-log p(x)` that tightens as `samples` grows; with one
    /// sample it is the single-sample negative ELBO estimate.
    ///
    /// Runs without a tape, at most `batch_size` sample rows per decoder product, on
    /// [`num_threads`](crate::kernels::num_threads) threads; the value depends on the
    /// generator's state, never on the thread count or `batch_size` (see
    /// `models/importance_weighted.rs` for how).
    pub fn importance_weighted_bound<R: Rng + ?Sized>(
        &self,
        images: &Tensor<T>,
        samples: usize,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<f64> {
        self.check_images(images, "DiscreteVae::importance_weighted_bound")?;
        if samples == 0 {
            return Err(Error::invalid_argument(
                "DiscreteVae::importance_weighted_bound",
                "need at least one sample",
            ));
        }
        super::importance_weighted::importance_weighted_bound(
            self, images, samples, batch_size, rng,
        )
    }

    /// The encoder's logits for every image, computed in batches.
    pub fn logits_of(&self, images: &Tensor<T>, batch_size: usize) -> Result<Tensor<T>> {
        let mut tape = Tape::new();
        let mut out = Vec::with_capacity(images.rows() * self.config.latent_dim());
        for start in (0..images.rows()).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(images.rows());
            tape.clear();
            let params = self.params.bind(&tape);
            let x = tape.constant(&rows(images, start, end)?);
            self.encode(&params, x)
                .with_value(|logits| out.extend_from_slice(logits.as_slice()))?;
        }
        Tensor::from_vec(images.rows(), self.config.latent_dim(), out)
    }

    /// A discrete sample from `q(z|logits)` for every row, with its `log q(z)` (in f64):
    /// one-hot by Gumbel-max for categorical latents, 0/1 units for Bernoulli ones.
    pub fn sample_hard<R: Rng + ?Sized>(
        &self,
        logits: &Tensor<T>,
        rng: &mut R,
    ) -> Result<(Tensor<T>, Vec<f64>)> {
        let width = logits.cols();
        match self.config.latent {
            Latent::Categorical { classes, .. } => {
                let sample = sample_categorical(logits, classes, rng)?;
                let log_q_table = log_softmax_table(logits, classes);
                let log_q = (0..logits.rows())
                    .map(|row| {
                        let chosen = sample.one_hot.row(row);
                        let table = &log_q_table[row * width..(row + 1) * width];
                        chosen
                            .iter()
                            .zip(table)
                            .filter(|(z, _)| z.to_f64() == 1.0)
                            .map(|(_, l)| l)
                            .sum()
                    })
                    .collect();
                Ok((sample.one_hot, log_q))
            }
            Latent::Bernoulli { .. } => {
                let (sample, _noise) = sample_bernoulli(logits, rng);
                let log_q = (0..logits.rows())
                    .map(|row| {
                        logits
                            .row(row)
                            .iter()
                            .zip(sample.row(row))
                            .map(|(&x, &z)| {
                                // log sigmoid(x) for z = 1, log sigmoid(-x) for z = 0
                                let signed = if z.to_f64() == 1.0 {
                                    x.to_f64()
                                } else {
                                    -x.to_f64()
                                };
                                -softplus(-signed)
                            })
                            .sum()
                    })
                    .collect();
                Ok((sample, log_q))
            }
        }
    }

    fn check_images(&self, images: &Tensor<T>, op: &str) -> Result<()> {
        check_images(images, self.config.input_dim, op)
    }
}

/// Images fed to a model's evaluation must have its `input_dim` columns and be finite;
/// otherwise a typed error naming `op`. Shared by the models of this folder.
pub(crate) fn check_images<T: Float>(images: &Tensor<T>, input_dim: usize, op: &str) -> Result<()> {
    if images.cols() != input_dim {
        return Err(Error::invalid_argument(
            op,
            format!(
                "images have {} columns, the model expects {input_dim}",
                images.cols()
            ),
        ));
    }
    images.check_finite("images")
}

/// The images a latent batch of `latent_rows` rows is decoded against. Multi-sample
/// estimators (VIMCO) hand the cost `m` samples per example, example-major (row
/// `b * m + j` is sample `j` of example `b`); each image is then repeated `m` times by a
/// constant 0/1 selection matrix. Any other row count is left for the cost's own shape
/// check to report.
fn repeat_for_samples<'t, T: Float>(images: Var<'t, T>, latent_rows: usize) -> Var<'t, T> {
    let batch = images.shape().rows;
    if batch == 0 || latent_rows == batch || !latent_rows.is_multiple_of(batch) {
        return images;
    }
    let samples = latent_rows / batch;
    let mut selection = Tensor::zeros(latent_rows, batch);
    for row in 0..latent_rows {
        selection.set(row, row / samples, T::ONE);
    }
    images.tape().constant(&selection).matmul(images)
}

/// `log softmax` of every group, in f64.
fn log_softmax_table<T: Float>(logits: &Tensor<T>, classes: usize) -> Vec<f64> {
    let values: Vec<f64> = logits.as_slice().iter().map(|v| v.to_f64()).collect();
    let mut out = vec![0.0; values.len()];
    crate::kernels::softmax::log_softmax_groups(&values, &mut out, classes);
    out
}

/// Rows `start..end` of a tensor, copied.
pub(crate) fn rows<T: Float>(tensor: &Tensor<T>, start: usize, end: usize) -> Result<Tensor<T>> {
    let cols = tensor.cols();
    Tensor::from_slice(
        end - start,
        cols,
        &tensor.as_slice()[start * cols..end * cols],
    )
}
