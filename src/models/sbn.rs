//! The stochastic binary network (SBN) of Jang, Gu and Poole §4.1: structured output
//! prediction. Given the upper half of a binarised digit (`x_upper`, 392 pixels) it
//! predicts the lower half (`x_lower`, 392 pixels) through two stochastic layers:
//!
//! ```text
//! x_upper --affine--> logits_1 --sample--> h_1 --affine--> logits_2 --sample--> h_2 --affine--> pixel logits
//!   392                 200 (or 20x10)      200               200 (or 20x10)      200              392
//! ```
//!
//! Each stochastic layer is 200 binary units (the Bernoulli SBN, 392-200-200-392) or 20
//! categorical variables of 10 classes (the categorical SBN, 392-(20x10)-(20x10)-392).
//! The deterministic parts are single affine maps, as in the paper (the
//! nonlinearity is the sampling itself: sigmoid for units, softmax for categories).
//!
//! # Objective
//! The model is `p(x_lower | x_upper) = E_{h ~ p(h | x_upper)} [p(x_lower | h_2)]` with
//! `p(h | x_upper) = p(h_1 | x_upper) p(h_2 | h_1)`. Training minimises the single-sample
//! cost `E_h[-log p(x_lower | h_2)]` (`m = 1`), which upper-bounds `-log p(x_lower|x_upper)`
//! by Jensen; evaluation reports
//!
//! ```text
//! -log (1/m) sum_i p(x_lower | h_i),   h_i ~ p(h | x_upper) ancestrally, m = 1000,
//! ```
//!
//! whose inner average is an unbiased estimate of `p(x_lower | x_upper)` (its `-log` is
//! biased upwards by Jensen, by an amount that shrinks as `m` grows).
//!
//! # Two stochastic layers, two estimator calls
//! Both layers are discrete, so each needs a gradient estimator. They are *nested
//! cost closures*: the first layer's estimator is handed a cost `c_1(h_1)` that itself
//! computes `logits_2` from `h_1`, calls the second layer's estimator with the real
//! cost `c_2(h_2) = -log p(x_lower | h_2)`, and returns, per example,
//!
//! ```text
//! c_1(h_1) = stop_gradient(c_2(h_2)) + (L_2 - stop_gradient(L_2))
//! ```
//!
//! where `L_2` is the second estimator's scalar surrogate loss (value `mean(c_2)`, gradient
//! the second estimator's estimate). Its *value* is the sampled cost of every example,
//! which is all a score-function estimator of layer 1 uses as learning signal; its
//! *gradient* is exactly `L_2`'s, which carries layer 2's estimator into the decoder,
//! into `logits_2`, and through the affine map into `h_1` (and from there, for pathwise
//! estimators of layer 1, into `logits_1`). Because the cost is per example (row `r` of
//! `L_2`'s gradient only reaches row `r` of `h_1`), `d mean_r c_1 = d L_2` and
//! `d sum_r c_1 = batch * d L_2 = sum_r d (row r's surrogate)`, so estimators that
//! differentiate the closure (MuProp and DARN at the mean, REBAR and RELAX at relaxed
//! points) get the per-example slope they expect.
//!
//! The second layer draws its noise from a generator split off the caller's before
//! the first estimator runs, so a step is still a deterministic function of the seed.
//! Estimators that call the cost several times (MuProp, DARN, REBAR, RELAX) therefore
//! run layer 2 several times per step, each time with fresh noise: the cost they see is
//! itself a random variable, independent of layer 1's sample, which keeps the unbiased
//! ones unbiased (tested by enumeration in `tests/suite/sbn.rs`), and stateful layer-2
//! estimators (moving-average baselines) update once per call.
//!
//! # MuProp's mean-field network
//! MuProp expands layer 1's cost around `h1_bar = E[h_1]`. Gu et al. evaluate that
//! expansion with the *mean-field network*: from `h1_bar`, layer 2 is replaced by its
//! mean `E[h_2 | h1_bar]` (sigmoid or softmax of `logits_2`), with no sampling, so the
//! baseline `f(h1_bar) + <f'(h1_bar), h_1 - h1_bar>` is a deterministic function of the
//! input. [`Sbn::training_cost`] hands this second closure to the first estimator
//! through [`GradientEstimator::estimate_with_mean_field`]; only MuProp uses it. Through
//! the sampling closure instead, `f(h1_bar)` and `f'(h1_bar)` would carry layer 2's noise
//! (its sample, and its own score-function term in the slope), a baseline less correlated
//! with the cost: on a small SBN the layer-1 gradient's variance doubles
//! (`tests/suite/sbn.rs`). Either way the estimate is unbiased, since the baseline is linear in
//! `h_1` with coefficients independent of its sample.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::error::{Error, Result};
use crate::estimators::GradientEstimator;
use crate::estimators::noise::{sample_bernoulli, sample_categorical};
use crate::float::Float;
use crate::kernels::softmax::logsumexp;
use crate::models::discrete_vae::Latent;
use crate::nn::{BoundParameters, Init, Linear, Parameters};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Sizes of an SBN. [`SbnConfig::bernoulli`] and [`SbnConfig::categorical`] give the
/// paper's two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbnConfig {
    /// Pixels of the observed half (392 for MNIST).
    pub input_dim: usize,
    /// Pixels of the predicted half (392 for MNIST).
    pub output_dim: usize,
    /// Each of the two stochastic layers.
    pub latent: Latent,
}

impl SbnConfig {
    /// The paper's Bernoulli SBN: 392-200-200-392 with `units` binary units per layer.
    pub fn bernoulli(units: usize) -> Self {
        SbnConfig {
            input_dim: 392,
            output_dim: 392,
            latent: Latent::Bernoulli { units },
        }
    }

    /// The paper's categorical SBN: 392-(20x10)-(20x10)-392 for `(20, 10)`.
    pub fn categorical(variables: usize, classes: usize) -> Self {
        SbnConfig {
            input_dim: 392,
            output_dim: 392,
            latent: Latent::Categorical { variables, classes },
        }
    }
}

/// The terms of one training step, on the tape.
#[derive(Debug, Clone, Copy)]
pub struct SbnTerms<'t, T: Float> {
    /// What to backpropagate: value `mean_b -log p(x_lower | h_b)`, gradient from the two
    /// estimators.
    pub loss: Var<'t, T>,
    /// Per-example `-log p(x_lower | h)` at the sampled `h`, `[batch, 1]`.
    pub cost: Var<'t, T>,
    /// The first layer's sample `h_1`.
    pub first_sample: Var<'t, T>,
}

/// A two-stochastic-layer network predicting `x_lower` from `x_upper`.
#[derive(Debug, Clone)]
pub struct Sbn<T: Float> {
    config: SbnConfig,
    params: Parameters<T>,
    first: Linear,
    second: Linear,
    output: Linear,
}

impl<T: Float> Sbn<T> {
    /// Builds the network with Glorot-uniform weights and zero biases (parameters named
    /// `first.*`, `second.*`, `output.*`).
    pub fn new<R: Rng + ?Sized>(config: SbnConfig, rng: &mut R) -> Result<Self> {
        if !config.latent.is_well_formed() || config.input_dim == 0 || config.output_dim == 0 {
            return Err(Error::invalid_argument(
                "Sbn::new",
                format!("need non-empty halves and at least one latent per layer; got {config:?}"),
            ));
        }
        let width = config.latent.width();
        let mut params = Parameters::new();
        let init = Init::GlorotUniform;
        let first = Linear::new(&mut params, "first", config.input_dim, width, init, rng)?;
        let second = Linear::new(&mut params, "second", width, width, init, rng)?;
        let output = Linear::new(&mut params, "output", width, config.output_dim, init, rng)?;
        Ok(Sbn {
            config,
            params,
            first,
            second,
            output,
        })
    }

    /// The network's sizes.
    pub fn config(&self) -> &SbnConfig {
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

    /// Logits of the first stochastic layer, `[batch, width]`, from `x_upper`.
    pub fn first_logits<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        upper: Var<'t, T>,
    ) -> Var<'t, T> {
        self.first.forward(params, upper)
    }

    /// Logits of the second stochastic layer from a first-layer code `h_1`.
    pub fn second_logits<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        first: Var<'t, T>,
    ) -> Var<'t, T> {
        self.second.forward(params, first)
    }

    /// `-log p(x_lower | h_2)` per example, `[batch, 1]`: the binary cross-entropies of
    /// the predicted pixels, summed.
    pub fn output_cost<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        second: Var<'t, T>,
        lower: Var<'t, T>,
    ) -> Var<'t, T> {
        self.output
            .forward(params, second)
            .bce_with_logits_sum_cols(lower)
    }

    /// Checks that an estimator suits the latent layer (as
    /// [`DiscreteVae::check_estimator`](crate::models::DiscreteVae::check_estimator)).
    pub fn check_estimator(&self, estimator: &dyn GradientEstimator<T>) -> Result<()> {
        self.config.latent.check_estimator(estimator, "Sbn")
    }

    /// The training cost of a batch: one sample of `h`, with `first` estimating the
    /// gradient for layer 1 and `second` for layer 2 (see the module docs for how the two
    /// calls nest). `upper` is `[batch, input_dim]`, `lower` `[batch, output_dim]`.
    ///
    /// ```
    /// use gumbelgrad::estimators::Estimator;
    /// use gumbelgrad::models::{Latent, Sbn, SbnConfig};
    /// use gumbelgrad::{Tape, Tensor};
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let config = SbnConfig { input_dim: 6, output_dim: 4, latent: Latent::Bernoulli { units: 3 } };
    /// let model = Sbn::<f64>::new(config, &mut rng)?;
    /// // any estimator, one per stochastic layer
    /// let (mut first, mut second) = (Estimator::muprop(), Estimator::muprop());
    /// let tape = Tape::new();
    /// let params = model.parameters().bind(&tape);
    /// let upper = tape.constant(&Tensor::full(5, 6, 1.0));
    /// let lower = tape.constant(&Tensor::full(5, 4, 0.0));
    /// let terms = model.training_cost(&params, upper, lower, &mut first, &mut second, &mut rng);
    /// tape.backward(terms.loss)?;
    /// assert!(params.gradients().global_norm() > 0.0);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn training_cost<'t>(
        &self,
        params: &BoundParameters<'t, T>,
        upper: Var<'t, T>,
        lower: Var<'t, T>,
        first: &mut dyn GradientEstimator<T>,
        second: &mut dyn GradientEstimator<T>,
        rng: &mut dyn RngCore,
    ) -> SbnTerms<'t, T> {
        let group_size = self.config.latent.group_size();
        // Layer 2's noise comes from its own stream, split off before layer 1 draws.
        let mut second_rng = StdRng::seed_from_u64(rng.next_u64());
        let logits = self.first_logits(params, upper);
        let mut first_layer_cost = |h1: Var<'t, T>| {
            let logits2 = self.second_logits(params, h1);
            let inner = second.estimate(
                logits2,
                group_size,
                &mut |h2| self.output_cost(params, h2, lower),
                &mut second_rng,
            );
            // value: the sampled cost per example; gradient: layer 2's estimator.
            inner.cost.detach() + (inner.loss - inner.loss.detach())
        };
        // MuProp's mean-field network: layer 2 replaced by its mean, no sampling.
        let mut mean_field_cost = |h1: Var<'t, T>| {
            let mean2 = self.config.latent.mean(self.second_logits(params, h1));
            self.output_cost(params, mean2, lower)
        };
        let outer = first.estimate_with_mean_field(
            logits,
            group_size,
            &mut first_layer_cost,
            &mut mean_field_cost,
            rng,
        );
        SbnTerms {
            loss: outer.loss,
            cost: outer.cost,
            first_sample: outer.sample,
        }
    }

    /// `log p(x_lower | h_i)` for `samples` ancestral samples `h_i ~ p(h | x_upper)` of
    /// every example: `[examples, samples]` in f64. Passes hold `batch_size` rows.
    pub fn sample_log_likelihoods<R: Rng + ?Sized>(
        &self,
        upper: &Tensor<T>,
        lower: &Tensor<T>,
        samples: usize,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<Tensor<f64>> {
        let mut out = Vec::with_capacity(upper.rows() * samples);
        self.for_each_example_log_likelihoods(
            upper,
            lower,
            samples,
            batch_size,
            rng,
            "Sbn::sample_log_likelihoods",
            &mut |row| out.extend_from_slice(row),
        )?;
        Tensor::from_vec(upper.rows(), samples, out)
    }

    /// Draws the `samples` ancestral samples of every example in order and hands each
    /// example's `samples` log-likelihoods to `sink` as soon as they are complete, so
    /// only one example's row (plus one pass) is held at a time.
    #[allow(clippy::too_many_arguments)]
    fn for_each_example_log_likelihoods<R: Rng + ?Sized>(
        &self,
        upper: &Tensor<T>,
        lower: &Tensor<T>,
        samples: usize,
        batch_size: usize,
        rng: &mut R,
        op: &str,
        sink: &mut dyn FnMut(&[f64]),
    ) -> Result<()> {
        self.check_halves(upper, lower, op)?;
        if samples == 0 {
            return Err(Error::invalid_argument(op, "need at least one sample"));
        }
        let (width, output_dim) = (self.config.latent.width(), self.config.output_dim);
        let batch_size = batch_size.max(1);
        let mut tape = Tape::new();
        // Layer 1's logits depend only on the image: computed once per image, not per sample.
        let mut first_logits = Vec::with_capacity(upper.rows() * width);
        for start in (0..upper.rows()).step_by(batch_size) {
            let end = (start + batch_size).min(upper.rows());
            tape.clear();
            let params = self.params.bind(&tape);
            let up = tape.constant(&crate::models::discrete_vae::rows(upper, start, end)?);
            self.first_logits(&params, up)
                .with_value(|logits| first_logits.extend_from_slice(logits.as_slice()))?;
        }
        let pairs = upper.rows() * samples;
        // The current example's log-likelihoods, handed on when its row is full.
        let mut row = Vec::with_capacity(samples);
        for start in (0..pairs).step_by(batch_size) {
            let end = (start + batch_size).min(pairs);
            let mut logits = Vec::with_capacity((end - start) * width);
            let mut low = Vec::with_capacity((end - start) * output_dim);
            for pair in start..end {
                let image = pair / samples;
                logits.extend_from_slice(&first_logits[image * width..(image + 1) * width]);
                low.extend_from_slice(lower.row(image));
            }
            let logits = Tensor::from_vec(end - start, width, logits)?;
            tape.clear();
            let params = self.params.bind(&tape);
            let low = tape.constant(&Tensor::from_vec(end - start, output_dim, low)?);
            let h1 = tape.constant(&self.sample_hard(&logits, rng)?);
            let h2 = self.sample_hard(&self.second_logits(&params, h1).value()?, rng)?;
            let h2 = tape.constant(&h2);
            let cost = self.output_cost(&params, h2, low).value()?;
            for value in cost.as_slice() {
                row.push(-value.to_f64());
                if row.len() == samples {
                    sink(&row);
                    row.clear();
                }
            }
        }
        Ok(())
    }

    /// The paper's evaluation: the mean over examples of
    /// `-log (1/m) sum_i p(x_lower | h_i)` with `m = samples` ancestral samples, in nats.
    /// Each example's `m` terms are reduced as soon as they are drawn (memory: one row,
    /// not the `[examples, m]` table of [`Sbn::sample_log_likelihoods`]; same numbers).
    pub fn negative_log_likelihood<R: Rng + ?Sized>(
        &self,
        upper: &Tensor<T>,
        lower: &Tensor<T>,
        samples: usize,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<f64> {
        let log_m = (samples as f64).ln();
        let mut total = 0.0;
        self.for_each_example_log_likelihoods(
            upper,
            lower,
            samples,
            batch_size,
            rng,
            "Sbn::negative_log_likelihood",
            &mut |row| total += -(logsumexp(row) - log_m),
        )?;
        Ok(total / upper.rows().max(1) as f64)
    }

    /// A discrete sample of every row of `logits`: one-hot groups (Gumbel-max) or 0/1
    /// units.
    pub fn sample_hard<R: Rng + ?Sized>(
        &self,
        logits: &Tensor<T>,
        rng: &mut R,
    ) -> Result<Tensor<T>> {
        match self.config.latent {
            Latent::Categorical { classes, .. } => {
                Ok(sample_categorical(logits, classes, rng)?.one_hot)
            }
            Latent::Bernoulli { .. } => Ok(sample_bernoulli(logits, rng).0),
        }
    }

    fn check_halves(&self, upper: &Tensor<T>, lower: &Tensor<T>, op: &str) -> Result<()> {
        if upper.cols() != self.config.input_dim
            || lower.cols() != self.config.output_dim
            || upper.rows() != lower.rows()
        {
            return Err(Error::shape_mismatch(
                op,
                upper.shape(),
                lower.shape(),
                format!(
                    "the halves must have the same number of rows and {} and {} columns",
                    self.config.input_dim, self.config.output_dim
                ),
            ));
        }
        upper.check_finite("upper half")?;
        lower.check_finite("lower half")
    }
}

/// Splits images `[n, 784]` (28 x 28, row-major) into their upper and lower halves,
/// `[n, 392]` each: the first and the last half of every row. (A plain copy: doing it
/// with `slice_cols` on a tape held four copies of the training set at once.)
pub fn split_halves<T: Float>(images: &Tensor<T>) -> Result<(Tensor<T>, Tensor<T>)> {
    if !images.cols().is_multiple_of(2) {
        return Err(Error::invalid_argument(
            "split_halves",
            format!("images have an odd number of columns ({})", images.cols()),
        ));
    }
    let half = images.cols() / 2;
    let mut upper = Vec::with_capacity(images.rows() * half);
    let mut lower = Vec::with_capacity(images.rows() * half);
    for row in 0..images.rows() {
        let (up, low) = images.row(row).split_at(half);
        upper.extend_from_slice(up);
        lower.extend_from_slice(low);
    }
    Ok((
        Tensor::from_vec(images.rows(), half, upper)?,
        Tensor::from_vec(images.rows(), half, lower)?,
    ))
}
