//! Semi-supervised classification with a generative model: the "M2" model of Kingma,
//! Rezende, Mohamed and Welling (NeurIPS 2014) as used in §4.3 of Jang, Gu and Poole
//! (2017), with multilayer perceptrons where the paper has convolutional networks.
//!
//! # The model
//!
//! An image `x` (`D` binary pixels) has a class `y` (one of `k`, one-hot coded) and a
//! continuous code `z` (`latent_dim` numbers):
//!
//! | piece | formula | method |
//! |---|---|---|
//! | classifier | `q(y|x) = softmax(MLP_cls(x))` | [`SemiSupervisedVae::classify`] |
//! | encoder | `q(z|x,y) = N(mu, diag exp(log_var))`, `[mu, log_var] = MLP_enc([x, y])` | [`SemiSupervisedVae::encode`] |
//! | decoder | `p(x|y,z) = prod_d Bernoulli(sigmoid(MLP_dec([y, z])_d))` | [`SemiSupervisedVae::decode`] |
//! | priors | `p(y) = 1/k`, `p(z) = N(0, I)` | — |
//!
//! `z` is drawn by reparameterisation, `z = mu + exp(log_var / 2) * eps` with
//! `eps ~ N(0, I)` drawn outside the tape, so its gradient is exact.
//!
//! # The losses
//!
//! For a labelled pair `(x, y)` the negative evidence lower bound is
//!
//! ```text
//! -ELBO(x, y) = E_{z~q(z|x,y)}[ -log p(x|y,z) ] + KL(q(z|x,y) || N(0, I)) - log p(y)
//!             = sum_d BCE(decoder(y, z)_d, x_d)
//!               + 1/2 sum_j (mu_j^2 + exp(log_var_j) - 1 - log_var_j) + log k
//! ```
//!
//! ([`SemiSupervisedVae::negative_elbo`]), and the labelled loss adds the classifier's
//! cross-entropy, weighted by `alpha`: `L(x, y) = -ELBO(x, y) - alpha log q(y|x)`
//! ([`SemiSupervisedVae::labelled_loss`]).
//!
//! For an unlabelled `x` the class is a latent variable too:
//!
//! ```text
//! U(x) = E_{y~q(y|x)}[ -ELBO(x, y) ] - H(q(y|x)),   H(q) = -sum_c q_c log q_c.
//! ```
//!
//! The expectation over `y` can be computed two ways
//! ([`UnlabelledObjective`]):
//!
//! - **Marginalisation** ([`SemiSupervisedVae::marginal_unlabelled_loss`]): the exact sum
//!   `sum_c q(c|x) (-ELBO(x, c))`. The encoder and decoder run on `k` copies of the
//!   batch, one per class; the gradient is exact. Cost per example `O(D + k (I + G))`,
//!   with `D`, `I`, `G` the costs of the classifier, encoder and decoder.
//! - **One sample** ([`SemiSupervisedVae::sampled_unlabelled_loss`]): `-ELBO(x, y~)` at
//!   one sample `y~` from a gradient estimator (Gumbel-Softmax's relaxed
//!   `y~ = softmax((logits + g)/tau)`, or straight-through Gumbel-Softmax's one-hot
//!   sample with the relaxed gradient), as §4.3 of the paper does. Cost `O(D + I + G)`;
//!   the gradient with respect to the classifier is the estimator's (biased for
//!   Gumbel-Softmax, see [`crate::estimators`]).
//!
//! The entropy term is computed exactly in both cases, from `log_softmax` of the
//! classifier's logits.
//!
//! Every random number (the Gaussian `eps`, the Gumbel noise) is drawn outside the
//! tape from a caller's generator, so each loss is a deterministic function of its
//! inputs and can be gradchecked.

use rand::{Rng, RngCore};

use crate::error::{Error, Result};
use crate::estimators::noise::one_hot;
use crate::estimators::{Estimator, GradientEstimator, TemperatureSchedule};
use crate::float::Float;
use crate::models::discrete_vae::rows;
use crate::models::seeds::{Stream, rng_for};
use crate::nn::{Activation, BoundParameters, Gradients, Mlp, Parameters};
use crate::optim::{Adam, LearningRateSchedule, Optimizer};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Sizes of an M2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct SemiSupervisedConfig {
    /// Pixels per image, `D`.
    pub input_dim: usize,
    /// Number of classes, `k` (at least 2).
    pub classes: usize,
    /// Dimension of the Gaussian code `z`.
    pub latent_dim: usize,
    /// Hidden layer sizes of the classifier `q(y|x)`.
    pub classifier_hidden: Vec<usize>,
    /// Hidden layer sizes of the encoder `q(z|x,y)`.
    pub encoder_hidden: Vec<usize>,
    /// Hidden layer sizes of the decoder `p(x|y,z)`.
    pub decoder_hidden: Vec<usize>,
}

impl SemiSupervisedConfig {
    /// An M2 model for 28 x 28 images and `classes` classes: `z` of 50 dimensions and
    /// one hidden layer of 500 ReLU units in each of the three networks
    /// (classifier 784-500-k, encoder (784+k)-500-100, decoder (k+50)-500-784).
    pub fn mnist(classes: usize) -> Self {
        SemiSupervisedConfig {
            input_dim: 784,
            classes,
            latent_dim: 50,
            classifier_hidden: vec![500],
            encoder_hidden: vec![500],
            decoder_hidden: vec![500],
        }
    }
}

impl Default for SemiSupervisedConfig {
    /// [`SemiSupervisedConfig::mnist`] with 10 classes.
    fn default() -> Self {
        SemiSupervisedConfig::mnist(10)
    }
}

/// How the expectation over the unknown class of an unlabelled image is computed.
#[derive(Debug)]
pub enum UnlabelledObjective<T: Float> {
    /// Exact: a weighted sum over all `k` classes (encoder and decoder run `k` times).
    Marginal,
    /// One sample of `y` from `q(y|x)` through a categorical estimator whose gradient
    /// flows through the sample (Gumbel-Softmax, ST Gumbel-Softmax, ST, ST-argmax, or
    /// your own: see [`GradientEstimator::gradient_through_sample`]).
    Sampled(Box<dyn GradientEstimator<T>>),
}

impl<T: Float> UnlabelledObjective<T> {
    /// `"marginal"` (also `"marginalise"`, `"marginalize"`), or the name of an estimator
    /// accepted by [`UnlabelledObjective::sampled`] (`"gs"`, `"st-gs"`, ...), built at
    /// `temperature`.
    pub fn from_name(name: &str, temperature: f64) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "marginal" | "marginalise" | "marginalize" => Ok(UnlabelledObjective::Marginal),
            other => Self::sampled(Box::new(Estimator::from_name(other, temperature)?)),
        }
    }

    /// The one-sample objective with `estimator`, which must handle categorical
    /// latents and pass its gradient through the sample (Gumbel-Softmax, ST
    /// Gumbel-Softmax, ST, ST-argmax, or a user's estimator saying so); any other is an
    /// [`Error::InvalidArgument`].
    pub fn sampled(estimator: Box<dyn GradientEstimator<T>>) -> Result<Self> {
        check_sampling_estimator("UnlabelledObjective::sampled", estimator.as_ref())?;
        Ok(UnlabelledObjective::Sampled(estimator))
    }

    /// `"marginal"` or the estimator's name.
    pub fn name(&self) -> &'static str {
        match self {
            UnlabelledObjective::Marginal => "marginal",
            UnlabelledObjective::Sampled(estimator) => estimator.name(),
        }
    }

    /// Sets the estimator's temperature (the marginal objective has none and ignores
    /// it). Rejects `<= 0`, NaN and infinity with [`Error::InvalidTemperature`].
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        crate::error::check_temperature_for::<T>(
            "UnlabelledObjective::set_temperature",
            temperature,
        )?;
        match self {
            UnlabelledObjective::Marginal => Ok(()),
            UnlabelledObjective::Sampled(estimator) => estimator.set_temperature(temperature),
        }
    }
}

/// Checks that `estimator` can stand for the class of unlabelled data: categorical, and
/// its gradient flows through the sample.
fn check_sampling_estimator<T: Float>(
    op: &str,
    estimator: &dyn GradientEstimator<T>,
) -> Result<()> {
    if estimator.latent_kinds().categorical && estimator.gradient_through_sample() {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            op,
            format!(
                "estimator `{}` does not pass gradients through a categorical sample; use marginal, gumbel-softmax, st-gumbel-softmax, st, st-argmax, gumbel-rao, reinmax or gapped-st",
                estimator.name()
            ),
        ))
    }
}

/// The Gaussian posterior `q(z|x,y)` of a batch, on the tape.
#[derive(Debug, Clone, Copy)]
pub struct GaussianPosterior<'t, T: Float> {
    /// Means, `[batch, latent_dim]`.
    pub mean: Var<'t, T>,
    /// Log-variances, `[batch, latent_dim]`.
    pub log_variance: Var<'t, T>,
}

impl<'t, T: Float> GaussianPosterior<'t, T> {
    /// The reparameterised sample `z = mean + exp(log_variance / 2) * noise` for
    /// standard normal `noise` of the same shape. Gradients:
    /// `dz/d mean = 1`, `dz/d log_variance = z_std * noise / 2` with
    /// `z_std = exp(log_variance / 2)`.
    pub fn sample(&self, noise: Var<'t, T>) -> Var<'t, T> {
        self.mean + self.log_variance.scale(T::from_f64(0.5)).exp() * noise
    }

    /// `KL(N(mean, exp(log_variance)) || N(0, I))` per example, `[batch, 1]`:
    /// `1/2 sum_j (mean_j^2 + exp(log_variance_j) - 1 - log_variance_j)`, exact.
    /// Gradients: `d/d mean = mean`, `d/d log_variance = (exp(log_variance) - 1) / 2`.
    pub fn kl_to_standard_normal(&self) -> Var<'t, T> {
        let terms = self.mean.square() + self.log_variance.exp() - self.log_variance;
        (terms.add_scalar(-T::ONE))
            .sum_cols()
            .scale(T::from_f64(0.5))
    }
}

/// The terms of the labelled loss of a batch, on the tape.
#[derive(Debug, Clone, Copy)]
pub struct LabelledTerms<'t, T: Float> {
    /// What to backpropagate: `mean_b [-ELBO(x_b, y_b) + alpha CE_b]`.
    pub loss: Var<'t, T>,
    /// Per-example `-ELBO(x, y)`, `[batch, 1]`.
    pub negative_elbo: Var<'t, T>,
    /// Per-example classifier cross-entropy `-log q(y|x)`, `[batch, 1]`.
    pub cross_entropy: Var<'t, T>,
    /// The classifier's logits, `[batch, k]`.
    pub class_logits: Var<'t, T>,
}

/// The terms of the unlabelled loss of a batch, on the tape.
#[derive(Debug, Clone, Copy)]
pub struct UnlabelledTerms<'t, T: Float> {
    /// What to backpropagate: `mean_b U(x_b)`, whose value is
    /// `mean_b [E_y(-ELBO) - H(q(y|x_b))]` (the expectation exact or at one sample).
    pub loss: Var<'t, T>,
    /// Per-example `E_{y~q(y|x)}[-ELBO(x, y)]`, exact or its one-sample estimate,
    /// `[batch, 1]`.
    pub expected_negative_elbo: Var<'t, T>,
    /// Per-example `H(q(y|x))`, `[batch, 1]`.
    pub entropy: Var<'t, T>,
    /// The classifier's logits, `[batch, k]`.
    pub class_logits: Var<'t, T>,
}

/// The M2 model: its sizes, its parameters and its three MLPs.
///
/// ```
/// use gumbelgrad::estimators::Estimator;
/// use gumbelgrad::models::{SemiSupervisedConfig, SemiSupervisedVae};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = SemiSupervisedConfig { input_dim: 16, classes: 3, latent_dim: 2,
///     classifier_hidden: vec![8], encoder_hidden: vec![8], decoder_hidden: vec![8] };
/// let model = SemiSupervisedVae::<f64>::new(config, &mut rng)?;
/// let tape = Tape::new();
/// let params = model.parameters().bind(&tape);
/// let x = tape.constant(&Tensor::full(4, 16, 1.0));
/// // Exact: the encoder and decoder see 3 copies of the batch of 4, one per class.
/// let exact = model.marginal_unlabelled_loss(&params, x, &model.latent_noise(3 * 4, &mut rng))?;
/// // One Gumbel-Softmax sample of the class: one copy.
/// let mut estimator = Estimator::gumbel_softmax(0.5)?;
/// let noise = model.latent_noise(4, &mut rng);
/// let sampled = model.sampled_unlabelled_loss(&params, x, &mut estimator, &noise, &mut rng)?;
/// assert!(sampled.loss.scalar()?.is_finite());
/// // Labelled images: -ELBO(x, y) plus alpha times the cross-entropy.
/// let labelled = model.labelled_loss(&params, x, &[0, 2, 1, 1], 1.0, &noise)?;
/// tape.backward(exact.loss + labelled.loss)?;
/// assert!(params.gradients().global_norm() > 0.0);
/// // A label out of range is a typed error, not a panic.
/// assert!(model.labelled_loss(&params, x, &[0, 2, 1, 3], 1.0, &noise).is_err());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SemiSupervisedVae<T: Float> {
    config: SemiSupervisedConfig,
    params: Parameters<T>,
    classifier: Mlp,
    encoder: Mlp,
    decoder: Mlp,
}

impl<T: Float> SemiSupervisedVae<T> {
    /// Builds the model with freshly initialised weights (parameters named
    /// `classifier.*`, `encoder.*` and `decoder.*`).
    pub fn new<R: Rng + ?Sized>(config: SemiSupervisedConfig, rng: &mut R) -> Result<Self> {
        if config.input_dim == 0 || config.classes < 2 || config.latent_dim == 0 {
            return Err(Error::invalid_argument(
                "SemiSupervisedVae::new",
                format!(
                    "need a non-empty input, at least 2 classes and a non-empty code; got {config:?}"
                ),
            ));
        }
        let (d, k, z) = (config.input_dim, config.classes, config.latent_dim);
        let mut params = Parameters::new();
        let stack = |input: usize, hidden: &[usize], output: usize| {
            let mut sizes = vec![input];
            sizes.extend(hidden);
            sizes.push(output);
            sizes
        };
        let classifier = Mlp::new(
            &mut params,
            "classifier",
            &stack(d, &config.classifier_hidden, k),
            Activation::Relu,
            rng,
        )?;
        let encoder = Mlp::new(
            &mut params,
            "encoder",
            &stack(d + k, &config.encoder_hidden, 2 * z),
            Activation::Relu,
            rng,
        )?;
        let decoder = Mlp::new(
            &mut params,
            "decoder",
            &stack(k + z, &config.decoder_hidden, d),
            Activation::Relu,
            rng,
        )?;
        Ok(SemiSupervisedVae {
            config,
            params,
            classifier,
            encoder,
            decoder,
        })
    }

    /// The model's sizes.
    pub fn config(&self) -> &SemiSupervisedConfig {
        &self.config
    }

    /// The parameters (for optimisers and checkpoints).
    pub fn parameters(&self) -> &Parameters<T> {
        &self.params
    }

    /// The parameters, mutably.
    pub fn parameters_mut(&mut self) -> &mut Parameters<T> {
        &mut self.params
    }

    /// Classifier: images `[batch, D]` to class logits `[batch, k]`;
    /// `q(y|x) = softmax(logits)`.
    pub fn classify<'t>(&self, params: &BoundParameters<'t, T>, images: Var<'t, T>) -> Var<'t, T> {
        self.classifier.forward(params, images)
    }

    /// Encoder: images `[batch, D]` and class codes `[batch, k]` (one-hot, or relaxed
    /// points of the simplex) to the Gaussian `q(z|x,y)`.
    pub fn encode<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        classes: Var<'t, T>,
    ) -> GaussianPosterior<'t, T> {
        let z = self.config.latent_dim;
        let out = self.encoder.forward(params, images.concat_cols(classes));
        GaussianPosterior {
            mean: out.slice_cols(0, z),
            log_variance: out.slice_cols(z, 2 * z),
        }
    }

    /// Decoder: class codes `[batch, k]` and codes `z` `[batch, latent_dim]` to pixel
    /// logits `[batch, D]`.
    pub fn decode<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        classes: Var<'t, T>,
        latent: Var<'t, T>,
    ) -> Var<'t, T> {
        self.decoder.forward(params, classes.concat_cols(latent))
    }

    /// `-ELBO(x, y)` per example, `[batch, 1]`, with one reparameterised `z` per
    /// example from standard normal `noise` `[batch, latent_dim]`:
    /// `sum_d BCE(decoder(y, z)_d, x_d) + KL(q(z|x,y) || N(0, I)) + log k`.
    /// `classes` may be one-hot or relaxed.
    pub fn negative_elbo<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        classes: Var<'t, T>,
        noise: Var<'t, T>,
    ) -> Var<'t, T> {
        let posterior = self.encode(params, images, classes);
        let latent = posterior.sample(noise);
        let reconstruction = self
            .decode(params, classes, latent)
            .bce_with_logits(images)
            .sum_cols();
        let log_classes = T::from_f64((self.config.classes as f64).ln());
        (reconstruction + posterior.kl_to_standard_normal()).add_scalar(log_classes)
    }

    /// Standard normal noise for `rows` codes, `[rows, latent_dim]`.
    pub fn latent_noise<R: Rng + ?Sized>(&self, rows: usize, rng: &mut R) -> Tensor<T> {
        Tensor::random_normal(rows, self.config.latent_dim, 0.0, 1.0, rng)
    }

    /// The labelled loss `mean_b [-ELBO(x_b, y_b) - alpha log q(y_b|x_b)]`, with `noise`
    /// `[batch, latent_dim]` standard normal (see [`SemiSupervisedVae::latent_noise`]).
    ///
    /// `labels` must hold one class below `k` per image and `noise` one row per image,
    /// else an [`Error::InvalidArgument`] is returned before anything is recorded.
    /// Gradient of the cross-entropy with respect to the logits: `alpha (q - y) / batch`.
    pub fn labelled_loss<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        labels: &[usize],
        alpha: f64,
        noise: &Tensor<T>,
    ) -> Result<LabelledTerms<'t, T>> {
        let op = "SemiSupervisedVae::labelled_loss";
        let batch = self.check_batch(op, images, noise, 1)?;
        if labels.len() != batch {
            return Err(Error::invalid_argument(
                op,
                format!("{} labels for {batch} images", labels.len()),
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&c| c >= self.config.classes) {
            return Err(Error::invalid_argument(
                op,
                format!(
                    "label {bad} is out of range for {} classes",
                    self.config.classes
                ),
            ));
        }
        if !alpha.is_finite() || alpha < 0.0 {
            return Err(Error::invalid_argument(
                op,
                format!("alpha must be finite and >= 0, got {alpha}"),
            ));
        }
        let tape = images.tape();
        let classes = tape.constant(&one_hot(batch, labels, self.config.classes)?);
        let negative_elbo = self.negative_elbo(params, images, classes, tape.constant(noise));
        let class_logits = self.classify(params, images);
        let cross_entropy = -(classes * class_logits.log_softmax(self.config.classes)).sum_cols();
        let loss = negative_elbo.mean() + cross_entropy.mean().scale(T::from_f64(alpha));
        Ok(LabelledTerms {
            loss,
            negative_elbo,
            cross_entropy,
            class_logits,
        })
    }

    /// `H(q(y|x)) = -sum_c q_c log q_c` per example from the class logits, `[batch, 1]`.
    /// Gradient with respect to logit `c`: `-q_c (log q_c + H)`.
    pub fn entropy<'t>(&self, class_logits: Var<'t, T>) -> Var<'t, T> {
        let k = self.config.classes;
        -(class_logits.softmax(k) * class_logits.log_softmax(k)).sum_cols()
    }

    /// The unlabelled loss with the class marginalised exactly:
    /// `mean_b [sum_c q(c|x_b) (-ELBO(x_b, c)) - H(q(y|x_b))]`.
    ///
    /// The encoder and decoder run once on `k` stacked copies of the batch, class-major
    /// (row `c * batch + b` is image `b` with class `c`), so `noise` is
    /// `[k * batch, latent_dim]` standard normal: copy `c` of image `b` uses noise row
    /// `c * batch + b`. A wrong noise shape is an [`Error::InvalidArgument`].
    ///
    /// Gradient: exact. With `L_bc = -ELBO(x_b, c)`, `d U_b / d logit_bc =
    /// q_bc (L_bc - sum_c' q_bc' L_bc') + q_bc (log q_bc + H_b)`, and the encoder and
    /// decoder receive each copy's gradient weighted by `q_bc / batch`.
    pub fn marginal_unlabelled_loss<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        noise: &Tensor<T>,
    ) -> Result<UnlabelledTerms<'t, T>> {
        let k = self.config.classes;
        let batch = self.check_batch(
            "SemiSupervisedVae::marginal_unlabelled_loss",
            images,
            noise,
            k,
        )?;
        let tape = images.tape();
        let copies = vec![images; k];
        let stacked_images = tape.concat_rows(&copies);
        let class_of_row: Vec<usize> = (0..k * batch).map(|row| row / batch).collect();
        let stacked_classes = tape.constant(&one_hot(k * batch, &class_of_row, k)?);
        let stacked = self.negative_elbo(
            params,
            stacked_images,
            stacked_classes,
            tape.constant(noise),
        );
        // [k * batch, 1] class-major -> [batch, k]: column c is class c's block of rows.
        let per_class: Vec<Var<'t, T>> = (0..k)
            .map(|c| stacked.slice_rows(c * batch, (c + 1) * batch))
            .collect();
        let per_class = tape.concat_cols(&per_class);
        let class_logits = self.classify(params, images);
        let q = class_logits.softmax(k);
        let expected_negative_elbo = (q * per_class).sum_cols();
        let entropy = self.entropy(class_logits);
        Ok(UnlabelledTerms {
            loss: (expected_negative_elbo - entropy).mean(),
            expected_negative_elbo,
            entropy,
            class_logits,
        })
    }

    /// The unlabelled loss with one sample of the class from `estimator` (Gumbel-Softmax
    /// or a straight-through variant; Gumbel noise drawn from `rng`):
    /// `mean_b [-ELBO(x_b, y~_b) - H(q(y|x_b))]`, with `noise` `[batch, latent_dim]`
    /// standard normal for `z`.
    ///
    /// Gradient: exact for the entropy and for the encoder and decoder at the sample;
    /// the classifier's gradient through `-ELBO(x, y~)` is the estimator's (for
    /// Gumbel-Softmax `d y~ / d logits = (1/tau) y~ ⊙ (grad - <grad, y~>)`).
    /// An estimator that does not pass gradients through the sample, or a wrong noise
    /// shape, is an [`Error::InvalidArgument`].
    pub fn sampled_unlabelled_loss<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        estimator: &mut dyn GradientEstimator<T>,
        noise: &Tensor<T>,
        rng: &mut dyn RngCore,
    ) -> Result<UnlabelledTerms<'t, T>> {
        let op = "SemiSupervisedVae::sampled_unlabelled_loss";
        self.check_batch(op, images, noise, 1)?;
        check_sampling_estimator(op, estimator)?;
        let tape = images.tape();
        let class_logits = self.classify(params, images);
        let z_noise = tape.constant(noise);
        let estimate = estimator.estimate(
            class_logits,
            self.config.classes,
            &mut |classes| self.negative_elbo(params, images, classes, z_noise),
            rng,
        );
        let entropy = self.entropy(class_logits);
        Ok(UnlabelledTerms {
            loss: estimate.loss - entropy.mean(),
            expected_negative_elbo: estimate.cost,
            entropy,
            class_logits,
        })
    }

    /// The unlabelled loss by `objective`, drawing the Gaussian noise (and the Gumbel
    /// noise of a sampled objective) from `rng`.
    pub fn unlabelled_loss<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        images: Var<'t, T>,
        objective: &mut UnlabelledObjective<T>,
        rng: &mut dyn RngCore,
    ) -> Result<UnlabelledTerms<'t, T>> {
        let batch = images.shape().rows;
        match objective {
            UnlabelledObjective::Marginal => {
                let noise = self.latent_noise(self.config.classes * batch, rng);
                self.marginal_unlabelled_loss(params, images, &noise)
            }
            UnlabelledObjective::Sampled(estimator) => {
                let noise = self.latent_noise(batch, rng);
                self.sampled_unlabelled_loss(params, images, estimator.as_mut(), &noise, rng)
            }
        }
    }

    /// The most probable class under `q(y|x)` for every image, computed in batches.
    pub fn predict(&self, images: &Tensor<T>, batch_size: usize) -> Result<Vec<usize>> {
        self.check_images(images, "SemiSupervisedVae::predict")?;
        let k = self.config.classes;
        let mut tape = Tape::new();
        let mut predictions = Vec::with_capacity(images.rows());
        for start in (0..images.rows()).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(images.rows());
            tape.clear();
            let params = self.params.bind(&tape);
            let x = tape.constant(&rows(images, start, end)?);
            self.classify(&params, x).with_value(|logits| {
                predictions.extend(logits.as_slice().chunks_exact(k).map(|row| {
                    let mut best = 0;
                    for (c, v) in row.iter().enumerate() {
                        if *v > row[best] {
                            best = c;
                        }
                    }
                    best
                }))
            })?;
        }
        Ok(predictions)
    }

    /// The fraction of `images` whose most probable class under `q(y|x)` is their
    /// label. A label count that differs from the image count is an
    /// [`Error::InvalidArgument`].
    pub fn accuracy(&self, images: &Tensor<T>, labels: &[usize], batch_size: usize) -> Result<f64> {
        if labels.len() != images.rows() {
            return Err(Error::invalid_argument(
                "SemiSupervisedVae::accuracy",
                format!("{} labels for {} images", labels.len(), images.rows()),
            ));
        }
        let predictions = self.predict(images, batch_size)?;
        let correct = predictions
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count();
        Ok(correct as f64 / images.rows().max(1) as f64)
    }

    /// The mean unlabelled bound `U(x)` over `images` in nats per image, with the class
    /// marginalised exactly and one `z` sample per (image, class): an estimate of an
    /// upper bound on `-log p(x)` (the negative of the paper's Table 2 "ELBO" column).
    pub fn marginal_bound<R: Rng + ?Sized>(
        &self,
        images: &Tensor<T>,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<f64> {
        self.check_images(images, "SemiSupervisedVae::marginal_bound")?;
        let mut tape = Tape::new();
        let mut total = 0.0;
        for start in (0..images.rows()).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(images.rows());
            tape.clear();
            let params = self.params.bind(&tape);
            let x = tape.constant(&rows(images, start, end)?);
            let noise = self.latent_noise(self.config.classes * (end - start), rng);
            let terms = self.marginal_unlabelled_loss(&params, x, &noise)?;
            total += terms.loss.scalar()?.to_f64() * (end - start) as f64;
        }
        Ok(total / images.rows().max(1) as f64)
    }

    /// Checks image width and that `noise` has `copies` rows per image; returns the
    /// batch size.
    fn check_batch(
        &self,
        op: &str,
        images: Var<'_, T>,
        noise: &Tensor<T>,
        copies: usize,
    ) -> Result<usize> {
        images.tape().check()?;
        let shape = images.shape();
        if shape.cols != self.config.input_dim {
            return Err(Error::invalid_argument(
                op,
                format!(
                    "images have {} columns, the model expects {}",
                    shape.cols, self.config.input_dim
                ),
            ));
        }
        let want = (copies * shape.rows, self.config.latent_dim);
        if (noise.rows(), noise.cols()) != want {
            return Err(Error::invalid_argument(
                op,
                format!(
                    "noise is {}x{}, need {}x{} ({copies} row(s) of {} per image)",
                    noise.rows(),
                    noise.cols(),
                    want.0,
                    want.1,
                    self.config.latent_dim
                ),
            ));
        }
        Ok(shape.rows)
    }

    fn check_images(&self, images: &Tensor<T>, op: &str) -> Result<()> {
        crate::models::discrete_vae::check_images(images, self.config.input_dim, op)
    }
}

/// How to train an M2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct SemiSupervisedTrainConfig {
    /// Adam's learning rate as a function of the step.
    pub learning_rate: LearningRateSchedule,
    /// The temperature of a sampled objective as a function of the step (the paper's
    /// §4.3: `max(0.5, exp(-3e-5 t))`, updated every 2000 steps).
    pub temperature: TemperatureSchedule,
    /// `"marginal"` or an estimator name (see [`UnlabelledObjective::from_name`]).
    pub objective: String,
    /// Weight of the classifier's cross-entropy on labelled data.
    pub alpha: f64,
    /// Weight of the unlabelled loss (1 for M2; 0 skips the unlabelled batch, which
    /// leaves a classifier trained on the labels alone: the baseline M2 should beat).
    pub unlabelled_weight: f64,
    /// The seed every random number of the run derives from.
    pub seed: u64,
}

impl Default for SemiSupervisedTrainConfig {
    /// Adam at `1e-3`, Gumbel-Softmax with the paper's schedule, `alpha = 1`,
    /// unlabelled weight 1, seed 0.
    fn default() -> Self {
        SemiSupervisedTrainConfig {
            learning_rate: LearningRateSchedule::Constant(1e-3),
            temperature: TemperatureSchedule::exponential(1.0, 3e-5, 2000, 0.5)
                .expect("valid default schedule"),
            objective: "gumbel-softmax".to_string(),
            alpha: 1.0,
            unlabelled_weight: 1.0,
            seed: 0,
        }
    }
}

/// What one semi-supervised training step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemiSupervisedStepReport {
    /// Steps completed, this one included.
    pub step: u64,
    /// The total loss minimised: weighted unlabelled plus labelled.
    pub loss: f64,
    /// The unlabelled batch's mean `U(x)` (exact or one-sample; 0 when its weight is 0).
    pub unlabelled_loss: f64,
    /// The labelled batch's mean `-ELBO(x, y) - alpha log q(y|x)` (0 without one).
    pub labelled_loss: f64,
    /// The temperature used (for the marginal objective, the schedule's value, unused).
    pub temperature: f64,
}

/// An M2 model, its optimiser and unlabelled objective, and the step counter.
///
/// Each step minimises `w mean_u U(x_u) + mean_l [-ELBO(x_l, y_l) - alpha log q(y_l|x_l)]`
/// (`w` the unlabelled weight, 1 for M2)
/// over one unlabelled and (optionally) one labelled minibatch; the noise of step `t`
/// comes from `(seed, t)`.
#[derive(Debug)]
pub struct SemiSupervisedTrainer<T: Float> {
    model: SemiSupervisedVae<T>,
    optimizer: Adam<T>,
    objective: UnlabelledObjective<T>,
    config: SemiSupervisedTrainConfig,
    step: u64,
    tape: Tape<T>,
    grads: Gradients<T>,
}

impl<T: Float> SemiSupervisedTrainer<T> {
    /// A fresh run: the model is initialised from `(config.seed, Init)`, the
    /// unlabelled objective built from `config.objective` by
    /// [`UnlabelledObjective::from_name`].
    pub fn new(
        model_config: SemiSupervisedConfig,
        config: SemiSupervisedTrainConfig,
    ) -> Result<Self> {
        let objective =
            UnlabelledObjective::from_name(&config.objective, config.temperature.at(0)?)?;
        Self::with_objective(model_config, config, objective)
    }

    /// A fresh run with any unlabelled objective, for instance
    /// `UnlabelledObjective::sampled(Box::new(my_estimator))` (`config.objective` is
    /// then ignored).
    pub fn with_objective(
        model_config: SemiSupervisedConfig,
        config: SemiSupervisedTrainConfig,
        mut objective: UnlabelledObjective<T>,
    ) -> Result<Self> {
        let model =
            SemiSupervisedVae::new(model_config, &mut rng_for(config.seed, Stream::Init, 0))?;
        objective.set_temperature(config.temperature.at(0)?)?;
        for (name, value) in [
            ("alpha", config.alpha),
            ("unlabelled_weight", config.unlabelled_weight),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::invalid_argument(
                    "SemiSupervisedTrainer::new",
                    format!("{name} must be finite and >= 0, got {value}"),
                ));
            }
        }
        Ok(SemiSupervisedTrainer {
            model,
            optimizer: Adam::new(config.learning_rate.rate_at(0)),
            objective,
            config,
            step: 0,
            tape: Tape::new(),
            grads: Gradients::from_tensors(Vec::new()),
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &SemiSupervisedVae<T> {
        &self.model
    }

    /// The unlabelled objective (marginal or an estimator).
    pub fn objective(&self) -> &UnlabelledObjective<T> {
        &self.objective
    }

    /// The training configuration.
    pub fn config(&self) -> &SemiSupervisedTrainConfig {
        &self.config
    }

    /// Steps completed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One step on an unlabelled batch `[batch, D]` and optionally a labelled batch
    /// (images `[batch_l, D]` and one label each). Images must already be binary or
    /// in `[0, 1]` (dynamic binarisation is the caller's).
    pub fn step(
        &mut self,
        unlabelled: &Tensor<T>,
        labelled: Option<(&Tensor<T>, &[usize])>,
    ) -> Result<SemiSupervisedStepReport> {
        let next_step = crate::error::next_step(self.step, "SemiSupervisedTrainer::step")?;
        let temperature = self.config.temperature.at(self.step)?;
        self.objective.set_temperature(temperature)?;
        self.optimizer
            .set_learning_rate(self.config.learning_rate.rate_at(self.step));
        let mut rng = rng_for(self.config.seed, Stream::Step, self.step);

        self.tape.clear();
        let tape = &self.tape;
        let params = self.model.parameters().bind(tape);
        let (mut loss, mut unlabelled_loss) = (tape.scalar(T::ZERO), 0.0);
        if self.config.unlabelled_weight > 0.0 {
            let x = tape.constant(unlabelled);
            let terms = self
                .model
                .unlabelled_loss(&params, x, &mut self.objective, &mut rng)?;
            loss = terms.loss.scale(T::from_f64(self.config.unlabelled_weight));
            unlabelled_loss = terms.loss.scalar()?.to_f64();
        }
        let mut labelled_loss = 0.0;
        if let Some((images, labels)) = labelled {
            let noise = self.model.latent_noise(images.rows(), &mut rng);
            let terms = self.model.labelled_loss(
                &params,
                tape.constant(images),
                labels,
                self.config.alpha,
                &noise,
            )?;
            loss = loss + terms.loss;
            labelled_loss = terms.loss.scalar()?.to_f64();
        }
        tape.backward(loss)?;
        let total = loss.scalar()?.to_f64();
        params.take_gradients_into(&mut self.grads);
        drop(params);
        self.optimizer
            .step(self.model.parameters_mut(), &self.grads)?;
        self.step = next_step;
        Ok(SemiSupervisedStepReport {
            step: self.step,
            loss: total,
            unlabelled_loss,
            labelled_loss,
            temperature,
        })
    }
}

/// Steps in one epoch over `unlabelled` images in batches of `batch` (each step also
/// sees the `labelled` images), or an [`Error::InvalidArgument`] for a split that
/// cannot train: no labelled image, or fewer unlabelled images than one batch (an
/// epoch of 0 steps, whose mean loss would be 0 / 0).
///
/// ```
/// use gumbelgrad::models::semi_supervised::steps_per_epoch;
/// assert_eq!(steps_per_epoch(100, 1000, 100)?, 10);
/// assert!(steps_per_epoch(20_000, 0, 100).is_err()); // every image labelled
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
pub fn steps_per_epoch(labelled: usize, unlabelled: usize, batch: usize) -> Result<u64> {
    let op = "semi_supervised::steps_per_epoch";
    if batch == 0 {
        return Err(Error::invalid_argument(
            op,
            "the batch size must be at least 1",
        ));
    }
    if labelled == 0 {
        return Err(Error::invalid_argument(
            op,
            "the split has no labelled image",
        ));
    }
    if unlabelled < batch {
        return Err(Error::invalid_argument(
            op,
            format!(
                "the split leaves {unlabelled} unlabelled images ({labelled} labelled), fewer \
                 than one batch of {batch}: an epoch would have no step; label fewer images"
            ),
        ));
    }
    Ok((unlabelled / batch) as u64)
}
