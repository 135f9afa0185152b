//! Gradient estimators for discrete latent variables, as graph nodes.
//!
//! Every estimator answers the same question: given the logits of a categorical (or
//! Bernoulli) distribution `q(z)` and a downstream per-example cost `f(z)`, produce a
//! scalar whose gradient with respect to the logits estimates
//! `d/d logits E_{z~q}[f(z)]`. They differ in how: by relaxing `z` (Gumbel-Softmax),
//! by pretending the sample is its mean in the backward pass (straight-through, and its
//! refinements Gumbel-Rao, gapped ST and ReinMax), or by the score function `f(z) d log q(z)` with
//! variance-reducing baselines (leave-one-out, antithetic pairs, control variates).
//!
//! All of them implement [`GradientEstimator`]; the [`Estimator`] enum picks one by
//! value, so switching estimator in a model is changing one argument.
//!
//! | file | what |
//! |---|---|
//! | [`noise`] | Gumbel / logistic noise, Gumbel-max sampling, conditional noise |
//! | [`conditional`] | conditional noise as differentiable ops (REBAR, RELAX) |
//! | [`density`] | Concrete (eq. 3), ExpConcrete and relaxed Bernoulli log-densities |
//! | [`exact`] | exact expectations and gradients by enumeration (the test oracle) |
//! | [`gumbel_softmax`](mod@gumbel_softmax) | Gumbel-Softmax, learnable-temperature and ExpConcrete ops |
//! | [`straight_through`] | ST Gumbel-Softmax, ST categorical, ST argmax |
//! | [`gumbel_rao`](mod@gumbel_rao) | Gumbel-Rao: ST-GS averaged over conditional noises (arXiv 2010.04838) |
//! | [`gapped_st`](mod@gapped_st) | gapped straight-through: ST through logits moved to put the sample on top (arXiv 2206.07235) |
//! | [`reinmax`](mod@reinmax) | ReinMax: second-order straight-through (arXiv 2304.08612) |
//! | [`bernoulli`] | relaxed Bernoulli, ST Bernoulli, slope-annealed ST |
//! | [`temperature`] | temperature schedules, learnable temperature |
//! | [`state`] | an estimator's saved state, for checkpoints |
//! | [`injected`](mod@injected) | noise given to an estimator instead of drawn |
//! | [`score`] | REINFORCE, NVIL, MuProp, DARN, VIMCO, REBAR, RELAX, RLOO, ARM, DisARM |
//!
//! # The closure contract
//! `cost` receives the latent sample `[batch, N*K]` (a `Var` on the same tape as the
//! logits) and must return the per-example costs `[batch, 1]` built from it with tape
//! ops (a decoder's negative log-likelihood, say). It may be called more than once by
//! estimators that need the cost at several points, so it must not consume anything.
//!
//! ```
//! use gumbelgrad::estimators::{Estimator, GradientEstimator};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(42);
//! let mut estimator = Estimator::<f64>::from_name("gumbel-softmax", 0.5)?;
//! let tape = Tape::new();
//! // a batch of 2 examples, one categorical variable with 3 classes each
//! let logits = tape.variable(&Tensor::from_vec(2, 3, vec![0.0, 1.0, -1.0, 2.0, 0.0, 0.0])?);
//! let target = tape.constant(&Tensor::from_vec(1, 3, vec![1.0, 2.0, 3.0])?);
//! // f(z) = <z, target> per example: [batch, N*K] -> [batch, 1]. Written inline,
//! // the closure's argument type (a `Var` of this tape) is inferred.
//! let estimate = estimator.estimate(logits, 3, &mut |z| (z * target).sum_cols(), &mut rng);
//! tape.backward(estimate.loss)?;
//! let gradient = logits.grad().unwrap(); // the estimator's d E[f] / d logits
//! assert_eq!(gradient.shape(), logits.shape());
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

pub mod bernoulli;
pub mod conditional;
pub mod density;
pub mod exact;
pub mod gapped_st;
pub mod gumbel_rao;
pub mod gumbel_softmax;
pub mod injected;
pub mod noise;
pub mod reinmax;
pub mod straight_through;
pub mod temperature;

pub use bernoulli::{
    BernoulliEstimator, BernoulliKind, RelaxedBernoulli, SlopeAnnealedSt, StBernoulli,
    StRelaxedBernoulli, relaxed_bernoulli, slope_annealed_st, st_bernoulli, st_relaxed_bernoulli,
};
pub use conditional::{
    ConditionalGumbel, ConditionalLogistic, conditional_gumbel, conditional_logistic,
};
pub use gapped_st::{GappedSt, GappedStOp, gapped_st};
pub use gumbel_rao::{GumbelRao, GumbelRaoOp, gumbel_rao};
pub use gumbel_softmax::{
    ExpConcrete, GumbelSoftmax, GumbelSoftmaxEstimator, GumbelSoftmaxLearnedTemperature,
    exp_concrete, gumbel_softmax, gumbel_softmax_learned_temperature,
};
pub use injected::{InjectedNoise, bernoulli_as_categorical_with_noise};
pub use reinmax::{ReinMax, ReinMaxOp, reinmax};
pub use straight_through::{
    St, StArgmax, StGumbelSoftmax, StraightThroughEstimator, StraightThroughKind, st, st_argmax,
    st_gumbel_softmax,
};
pub use temperature::{LearnableTemperature, TemperatureSchedule};

pub mod score;
pub mod state;

pub use score::{
    bernoulli_as_categorical, bernoulli_pairs, constant_from, on_bits_estimate, poisoned_estimate,
    read_logits, sample_one_hot, softmax_f64, values_f64,
};
pub use state::{EstimatorState, StateValue};

use rand::RngCore;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::Op;
use crate::tape::{Tape, Var};
use crate::tensor::{Shape, Tensor};

/// What an estimator hands back to the model.
#[derive(Debug, Clone, Copy)]
pub struct Estimate<'t, T: Float> {
    /// The latent sample the cost was evaluated at, `[batch, N*K]`: one-hot for hard
    /// samples, a point of the simplex for relaxed ones.
    pub sample: Var<'t, T>,
    /// The per-example cost at that sample, `[batch, 1]`.
    pub cost: Var<'t, T>,
    /// The scalar to backpropagate. Its *value* is `mean(cost)`; its *gradient* with
    /// respect to the logits is this estimator's estimate of
    /// `d/d logits mean_b E[f_b(z_b)]`, and with respect to the cost's own parameters
    /// (a decoder, say) their ordinary gradient at the sample.
    pub loss: Var<'t, T>,
}

/// The interface every estimator implements.
///
/// `cost` maps a latent sample `[batch, N*K]` to per-example costs `[batch, 1]`,
/// built on the same tape. Estimators that need the cost at several points (MuProp,
/// DARN, REBAR, RELAX) call it several times; the others call it once.
pub trait GradientEstimator<T: Float>: std::fmt::Debug {
    /// Short name for tables, e.g. `"gumbel-softmax"`.
    fn name(&self) -> &'static str;

    /// What theory says: is `E[gradient]` the exact gradient of `E[f(z)]`?
    fn is_unbiased(&self) -> bool;

    /// Samples a latent from `logits` (groups of `group_size` consecutive columns are
    /// one categorical variable), evaluates `cost`, and returns the [`Estimate`].
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T>;

    /// [`estimate`](Self::estimate) for a cost that also has a deterministic
    /// *mean-field* version: `mean_field_cost(z)` is what the cost would be if every
    /// stochastic choice made *after* `z` (deeper layers of a network) were replaced by
    /// its mean. Only MuProp uses it: Gu et al. expand the cost around `z_bar = E[z]`
    /// through this mean-field network, which makes the Taylor baseline and its slope
    /// `f'(z_bar)` deterministic given the input. Every other estimator ignores it (the
    /// default), as does a cost with nothing stochastic after `z`, where both are equal.
    ///
    /// The estimate stays unbiased for any `mean_field_cost`: MuProp's baseline is
    /// linear in `z` with coefficients that do not depend on the sample.
    fn estimate_with_mean_field<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        mean_field_cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let _ = mean_field_cost;
        self.estimate(logits, group_size, cost, rng)
    }

    /// [`estimate`](Self::estimate) at the given randomness instead of noise drawn from
    /// `rng`, so that the output for a given sample can be reproduced by hand: what each
    /// estimator reads from `noise` is in [`injected`](mod@injected). `rng` is still
    /// used for anything that is not the sample's noise (initialising a learned
    /// baseline or surrogate at the first call). Noise of the wrong shape, a sample
    /// that is not one-hot, or a kind of noise this estimator cannot use is an error on
    /// the tape. Estimators that cannot run at injected noise (the default) record an
    /// [`Error::InvalidArgument`].
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let _ = (group_size, noise, cost, rng);
        score::poisoned_estimate(fail(
            logits.tape(),
            Error::invalid_argument(self.name(), "this estimator cannot run at injected noise"),
        ))
    }

    /// The divisor `s` this estimator applied to its last estimate: NVIL's variance
    /// normalisation makes the estimate unbiased for `gradient / s`, not `gradient`.
    /// 1 for every estimator that does not normalise (the default).
    ///
    /// A model that adds an exact gradient term for the *same* logits (the VAE's
    /// closed-form KL) must divide that term's gradient by `s` too; otherwise the
    /// normalisation shrinks the sampled part against the exact part, and the sum is no
    /// longer an unbiased estimate of any multiple of the gradient.
    fn signal_scale(&self) -> f64 {
        1.0
    }

    /// Which latent layouts this estimator handles: categorical groups (`group_size >= 2`),
    /// independent binary units (`group_size = 1`), or both (the default, right for any
    /// estimator that goes through the score function or [`bernoulli_as_categorical`]).
    /// Models ask this before training instead of matching on estimator types.
    fn latent_kinds(&self) -> LatentKinds {
        LatentKinds::BOTH
    }

    /// Whether [`sample`](Self::sample) works: the gradient flows through the sample
    /// itself (Gumbel-Softmax, straight-through, relaxed Bernoulli), so a model may use
    /// the sample without handing over a cost. `false` by default (the score-function
    /// family needs the cost).
    fn gradient_through_sample(&self) -> bool {
        false
    }

    /// The temperature (or, for slope-annealed ST, `1 / slope`), for estimators that have
    /// one; `None` (the default) for those that do not.
    fn temperature(&self) -> Option<f64> {
        None
    }

    /// Sets the temperature (a [`TemperatureSchedule`] calls this). Rejects `<= 0`, NaN
    /// and infinity with [`Error::InvalidTemperature`]; estimators without a temperature
    /// (the default) check the value and otherwise ignore it.
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        crate::error::check_temperature_for::<T>(self.name(), temperature)
    }

    /// Writes whatever this estimator learns or accumulates between calls (baseline
    /// averages, learned-baseline and surrogate weights and their optimiser moments, a
    /// tuned temperature, step counters) into `state`, so that
    /// [`load_state`](Self::load_state) on a fresh estimator of the same configuration
    /// continues bit for bit. Never a random generator: noise comes from the caller's.
    /// Stateless estimators write nothing (the default).
    fn save_state(&self, state: &mut EstimatorState) {
        let _ = state;
    }

    /// Restores a state written by [`save_state`](Self::save_state). An entry that is
    /// missing or has the wrong shape is an [`Error::InvalidArgument`] naming it.
    /// Stateless estimators accept any state (the default).
    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        let _ = state;
        Ok(())
    }

    /// A copy that estimates exactly as this estimator does, for one shard of a
    /// data-parallel step: the minibatch is cut into shards, each estimated by its own
    /// copy on its own tape (possibly on another thread), and the gradients averaged.
    ///
    /// Only an estimator that carries nothing from one call to the next (no baseline
    /// average, learned network or tuned temperature) can be copied this way; the
    /// shards' copies would otherwise each update their own state and disagree. Those
    /// return `Some` (the stateless estimators of the crate clone themselves); the
    /// default, `None`, means "train me on one tape". A copy sees only its shard's
    /// examples, so an estimator whose estimate for one example uses the others (a
    /// baseline from the rest of the batch) becomes the same estimator at the shard's
    /// batch size. An estimator of your own without state implements it as
    /// `Some(Box::new(self.clone()))`.
    ///
    /// ```
    /// use gumbelgrad::estimators::{Estimator, GradientEstimator};
    /// let relaxed = Estimator::<f32>::gumbel_softmax(1.0)?;
    /// assert!(relaxed.shard_copy().is_some());
    /// let with_a_learned_baseline = Estimator::<f32>::from_name("nvil", 1.0)?;
    /// assert!(with_a_learned_baseline.shard_copy().is_none());
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        None
    }

    /// For models that only want the sample: the latent (relaxed or straight-through)
    /// whose backward pass carries this estimator's gradient, without a cost closure.
    ///
    /// Only estimators whose gradient flows *through the sample* (Gumbel-Softmax,
    /// straight-through, relaxed Bernoulli) can do this. The default, used by the
    /// score-function family (which needs the cost to form its gradient), records an
    /// [`Error::InvalidArgument`] on the tape and returns a poisoned variable.
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        let _ = (group_size, rng);
        fail(
            logits.tape(),
            Error::invalid_argument(
                self.name(),
                "this estimator needs the downstream cost; call `estimate` instead of `sample`",
            ),
        )
    }
}

/// Which latent layouts an estimator handles (see
/// [`GradientEstimator::latent_kinds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatentKinds {
    /// Groups of `K >= 2` consecutive logits, one categorical variable each.
    pub categorical: bool,
    /// Independent binary units, one logit each (`group_size = 1`).
    pub binary: bool,
}

impl LatentKinds {
    /// Categorical groups and binary units.
    pub const BOTH: LatentKinds = LatentKinds {
        categorical: true,
        binary: true,
    };
    /// Categorical groups only.
    pub const CATEGORICAL: LatentKinds = LatentKinds {
        categorical: true,
        binary: false,
    };
    /// Binary units only.
    pub const BINARY: LatentKinds = LatentKinds {
        categorical: false,
        binary: true,
    };
}

/// An op that never records: its `output_shape` returns the stored error, which the
/// tape then keeps as its sticky first error.
#[derive(Debug)]
struct Reject {
    error: Error,
}

impl<T: Float> Op<T> for Reject {
    fn name(&self) -> &'static str {
        "reject"
    }
    fn output_shape(&self, _inputs: &[Shape]) -> Result<Shape> {
        Err(self.error.clone())
    }
    fn forward(&self, _inputs: &[&Tensor<T>], _output: &mut Tensor<T>) {}
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        _grad_output: &Tensor<T>,
        _grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
    }
}

/// Stores `error` on the tape (unless it already holds an earlier one) and returns a
/// poisoned variable: how estimators report bad arguments through the sticky-error
/// mechanism instead of panicking. The error surfaces at the next `backward` or `value`.
///
/// ```
/// use gumbelgrad::estimators::fail;
/// use gumbelgrad::{Error, Tape};
/// let tape = Tape::<f64>::new();
/// let bad = fail(&tape, Error::invalid_argument("my-estimator", "no logits"));
/// assert!(bad.is_poisoned());
/// assert!(tape.backward(bad).is_err());
/// ```
pub fn fail<'t, T: Float>(tape: &'t Tape<T>, error: Error) -> Var<'t, T> {
    tape.record(Reject { error }, &[])
}

/// Records the op `make(temperature)` on `inputs` after checking the temperature: the
/// recording function every tempered op shares (`gumbel_softmax`, `exp_concrete`,
/// `st_gumbel_softmax`, `st`, `st_argmax`, `relaxed_bernoulli`,
/// `st_relaxed_bernoulli`). An invalid temperature (`<= 0`, NaN, infinite) is stored on
/// the tape as [`Error::InvalidTemperature`] and a poisoned variable returned.
pub(crate) fn record_tempered<'t, T: Float, O: Op<T>>(
    op: &str,
    inputs: &[Var<'t, T>],
    temperature: f64,
    make: impl FnOnce(T) -> O,
) -> Var<'t, T> {
    let tape = inputs[0].tape();
    if let Err(error) = crate::error::check_temperature_for::<T>(op, temperature) {
        return fail(tape, error);
    }
    tape.record(make(T::from_f64(temperature)), inputs)
}

/// Checks that two inputs have the same shape and that `group_size` divides its
/// columns; returns that shape.
pub(crate) fn same_shape_grouped(
    op: &str,
    logits: Shape,
    noise: Shape,
    group_size: usize,
) -> Result<Shape> {
    if logits != noise {
        return Err(Error::shape_mismatch(
            op,
            logits,
            noise,
            "logits and noise must have the same shape",
        ));
    }
    crate::tensor::num_groups(logits, group_size, op)?;
    Ok(logits)
}

/// The sample of an estimator that is written for categorical groups, for any latent:
/// `categorical(logits, group_size)` directly, or for binary units (`group_size = 1`)
/// on the two-class groups `[0, phi]` of [`bernoulli_pairs`], read back as each pair's
/// `1` column so the gradient reaches `phi` through the product. Poisoned `logits`
/// come back as they are.
pub(crate) fn sample_groups_or_units<'t, T: Float>(
    logits: Var<'t, T>,
    group_size: usize,
    categorical: impl FnOnce(Var<'t, T>, usize) -> Var<'t, T>,
) -> Var<'t, T> {
    if logits.is_poisoned() {
        return logits;
    }
    if group_size == 1 {
        let (pairs, pick) = bernoulli_pairs(logits);
        return categorical(pairs, 2).matmul(pick);
    }
    categorical(logits, group_size)
}

/// The node of a straight-through estimator that reads a hard one-hot sample (ReinMax,
/// gapped ST): the logits' values go to `draw`, which returns the sample (drawn from the
/// caller's generator, or injected); the sample is held as a constant and
/// `node(logits, sample)` recorded. Poisoned logits come back as they are; an error from
/// `draw` is stored on the tape.
pub(crate) fn one_hot_node<'t, T: Float>(
    logits: Var<'t, T>,
    draw: impl FnOnce(&Tensor<f64>) -> Result<Tensor<f64>>,
    node: impl FnOnce(Var<'t, T>, Var<'t, T>) -> Var<'t, T>,
) -> Var<'t, T> {
    let values = match logits.value() {
        Ok(values) => values.cast::<f64>(),
        Err(_) => return logits,
    };
    match draw(&values) {
        Ok(sample) => node(logits, logits.tape().constant(&sample.cast::<T>())),
        Err(error) => fail(logits.tape(), error),
    }
}

/// An estimator that is one node on a hard one-hot sample drawn from the logits (ReinMax,
/// gapped ST). Given the node, its [`GradientEstimator::sample`], `estimate` and
/// `estimate_with_noise` are always the same, and are [`one_hot_sample`],
/// [`one_hot_estimate`] and [`one_hot_estimate_with_noise`].
pub(crate) trait OneHotNode {
    /// The node on the sample `draw` makes from the logits' values (see [`one_hot_node`]).
    fn node<'t, T: Float>(
        &self,
        logits: Var<'t, T>,
        group_size: usize,
        draw: &mut dyn FnMut(&Tensor<f64>) -> Result<Tensor<f64>>,
    ) -> Var<'t, T>;
}

/// The node on a categorical sample from the caller's generator (binary units as
/// two-class groups).
pub(crate) fn one_hot_sample<'t, T: Float>(
    estimator: &impl OneHotNode,
    logits: Var<'t, T>,
    group_size: usize,
    rng: &mut dyn RngCore,
) -> Var<'t, T> {
    sample_groups_or_units(logits, group_size, |logits, k| {
        estimator.node(logits, k, &mut |values| {
            noise::sample_categorical(values, k, rng).map(|s| s.one_hot)
        })
    })
}

/// [`one_hot_sample`], then the cost at it.
pub(crate) fn one_hot_estimate<'t, T: Float>(
    estimator: &impl OneHotNode,
    logits: Var<'t, T>,
    group_size: usize,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    rng: &mut dyn RngCore,
) -> Estimate<'t, T> {
    let sample = one_hot_sample(estimator, logits, group_size, rng);
    if sample.is_poisoned() {
        return score::poisoned_estimate(sample);
    }
    relaxed_estimate(sample, cost)
}

/// The node at the sample of [`InjectedNoise::Sample`] (the estimate is a function of
/// it), or at the Gumbel-max sample of [`InjectedNoise::Uniforms`] /
/// [`InjectedNoise::Gumbel`] (`v` unused), then the cost at it. Binary units take bits,
/// or noise in the two-class layout; `name` names the estimator in errors.
pub(crate) fn one_hot_estimate_with_noise<'t, T: Float>(
    estimator: &impl OneHotNode,
    name: &str,
    logits: Var<'t, T>,
    group_size: usize,
    noise: &InjectedNoise,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
) -> Estimate<'t, T> {
    straight_through_estimate_with_noise(
        logits,
        group_size,
        noise,
        name,
        cost,
        |logits, k, noise| {
            estimator.node(logits, k, &mut |values| {
                noise.hard_sample(values, k, 1, name)
            })
        },
    )
}

/// The estimate of a straight-through node at injected noise: `node(logits, K, noise)`
/// on categorical groups (binary units as two-class pairs, the noise moved to the pair
/// layout, [`InjectedNoise::on_pairs`]), then the cost at its output. Poisoned logits,
/// noise that does not fit, and an error of `node` come back as a poisoned estimate;
/// `name` names the estimator in errors.
pub(crate) fn straight_through_estimate_with_noise<'t, T: Float>(
    logits: Var<'t, T>,
    group_size: usize,
    noise: &InjectedNoise,
    name: &str,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
    node: impl FnOnce(Var<'t, T>, usize, &InjectedNoise) -> Var<'t, T>,
) -> Estimate<'t, T> {
    if logits.is_poisoned() {
        return score::poisoned_estimate(logits);
    }
    let noise = if group_size == 1 {
        match noise.on_pairs(logits.shape().cols, name) {
            Ok(pairs) => pairs,
            Err(error) => return score::poisoned_estimate(fail(logits.tape(), error)),
        }
    } else {
        noise.clone()
    };
    let sample = sample_groups_or_units(logits, group_size, |logits, k| node(logits, k, &noise));
    if sample.is_poisoned() {
        return score::poisoned_estimate(sample);
    }
    relaxed_estimate(sample, cost)
}

/// Checks that `group_size` divides the logits' columns and that the `sample` has the
/// logits' shape; returns that shape. The shape check of the nodes that read a hard
/// sample beside the logits (Gumbel-Rao, ReinMax, gapped ST).
pub(crate) fn sample_like_logits(
    op: &str,
    logits: Shape,
    sample: Shape,
    group_size: usize,
) -> Result<Shape> {
    crate::tensor::num_groups(logits, group_size, op)?;
    if sample != logits {
        return Err(Error::shape_mismatch(
            op,
            logits,
            sample,
            "the sample must have the logits' shape",
        ));
    }
    Ok(logits)
}

/// Evaluates `cost` at `sample`, checks it is `[batch, 1]`, and forms the
/// [`Estimate`] with `loss = mean(cost)`: the whole estimator for the families whose
/// gradient flows through the sample. A custom estimator whose gradient also flows
/// through its sample (a new relaxation, say) ends with this.
pub fn relaxed_estimate<'t, T: Float>(
    sample: Var<'t, T>,
    cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
) -> Estimate<'t, T> {
    let value = cost(sample);
    let value = check_cost_shape(sample, value);
    Estimate {
        sample,
        cost: value,
        loss: value.mean(),
    }
}

/// Returns `cost` if it is `[batch, 1]` for a `[batch, _]` sample; otherwise records a
/// shape-mismatch error naming both shapes and returns a poisoned variable.
pub fn check_cost_shape<'t, T: Float>(sample: Var<'t, T>, cost: Var<'t, T>) -> Var<'t, T> {
    if sample.is_poisoned() || cost.is_poisoned() {
        return cost;
    }
    let (s, c) = (sample.shape(), cost.shape());
    if c.cols != 1 || c.rows != s.rows {
        return fail(
            cost.tape(),
            Error::shape_mismatch(
                "estimator cost",
                s,
                c,
                "the cost closure must return one value per example, [batch, 1]",
            ),
        );
    }
    cost
}

/// Every estimator by value: switching estimator is changing this one argument.
///
/// One variant per estimator *type*, wrapping the struct that implements it (and keeps
/// its state: the last noise, a temperature, a baseline...). A variant names no more
/// than its type, so it cannot hold a value of another kind: which estimator it is
/// (`st` or `st-argmax`, `reinforce` or `nvil`) is the value's
/// [`name`](GradientEstimator::name), one of [`ESTIMATOR_NAMES`]. Build estimators with
/// the constructors, which validate their parameters, or by name with
/// [`Estimator::from_name`]. Models take any [`GradientEstimator`]; this enum is only a
/// convenience for choosing among the crate's by value.
///
/// ```
/// use gumbelgrad::estimators::{Estimator, GradientEstimator, TemperatureSchedule};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let schedule = TemperatureSchedule::exponential(1.0, 1e-4, 1000, 0.5)?;
/// let mut estimator = Estimator::<f32>::st_gumbel_softmax(1.0)?;
/// for step in 0..3 {
///     estimator.set_temperature(schedule.at(step)?)?;
///     let tape = Tape::new();
///     let logits = tape.variable(&Tensor::zeros(4, 20)); // 4 examples, 2 x 10 classes
///     let z = estimator.sample(logits, 10, &mut rng);
///     // ST-GS samples are exactly one-hot: two ones per row
///     assert_eq!(z.value()?.sum(), 8.0);
/// }
/// assert!(Estimator::<f32>::gumbel_softmax(-1.0).is_err());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub enum Estimator<T: Float> {
    /// Gumbel-Softmax (relaxed sample, biased, §2.1): `gumbel-softmax`.
    GumbelSoftmax(GumbelSoftmaxEstimator<T>),
    /// The straight-through family, one-hot forward and a softmax backward; which one
    /// its [`StraightThroughKind`] says: `st-gumbel-softmax` (§2.2), `st` (§3.1) or
    /// `st-argmax`.
    StraightThrough(StraightThroughEstimator<T>),
    /// The binary-unit estimators (`group_size = 1`), which one its [`BernoulliKind`]
    /// says: `relaxed-bernoulli`, `st-relaxed-bernoulli`, `st-bernoulli` or
    /// `slope-annealed-st`.
    Bernoulli(BernoulliEstimator<T>),
    /// REINFORCE with its baselines, unbiased (§3.2): `reinforce`, `reinforce-ema`,
    /// `nvil` (variance-normalised: unbiased for `gradient / s`).
    Reinforce(score::Reinforce),
    /// MuProp: Taylor baseline at the mean with its analytic correction; `muprop`,
    /// `muprop-normalised`, and the biased `muprop-nvil`.
    MuProp(score::MuProp),
    /// DARN: Taylor baseline without the correction, biased; `darn` and its variants.
    Darn(score::Darn),
    /// VIMCO-style leave-one-out baselines over `m` samples per example, unbiased (for
    /// `E[f]`, or for the `m`-sample bound with [`score::VimcoObjective::LogMeanExp`]):
    /// `vimco`, `vimco-bound`.
    Vimco(score::Vimco),
    /// REBAR: Gumbel-Softmax control variate with conditional noise, unbiased: `rebar`.
    Rebar(score::Rebar),
    /// RELAX: REBAR plus a learned surrogate network, unbiased: `relax`.
    Relax(score::Relax),
    /// RLOO: `m` samples per example, each with the mean cost of the others as its
    /// baseline, unbiased: `rloo`.
    Rloo(score::Rloo),
    /// The antithetic pair estimators for binary units (categorical groups by
    /// stick-breaking), unbiased; which one its [`score::ArmKind`] says: `arm` or
    /// `disarm`.
    Arm(score::ArmEstimator),
    /// Gumbel-Rao: ST Gumbel-Softmax averaged over `K` conditional Gumbel noises, biased
    /// as ST-GS with less variance: `gumbel-rao`.
    GumbelRao(GumbelRao),
    /// ReinMax: second-order straight-through, biased: `reinmax`.
    ReinMax(ReinMax),
    /// Gapped straight-through: ST through the logits moved to put the sample on top
    /// with a gap below it, biased: `gapped-st`.
    GappedSt(GappedSt),
}

/// The names [`Estimator::from_name`] accepts, in table order.
pub const ESTIMATOR_NAMES: &[&str] = &[
    "gumbel-softmax",
    "st-gumbel-softmax",
    "st",
    "st-argmax",
    "relaxed-bernoulli",
    "st-relaxed-bernoulli",
    "st-bernoulli",
    "slope-annealed-st",
    "reinforce",
    "reinforce-ema",
    "nvil",
    "muprop",
    "muprop-normalised",
    "muprop-nvil",
    "darn",
    "darn-normalised",
    "darn-uniform",
    "darn-uniform-normalised",
    "darn-sample-slope",
    "darn-sample-slope-normalised",
    "vimco",
    "vimco-bound",
    "rebar",
    "relax",
    "rloo",
    "arm",
    "disarm",
    "gumbel-rao",
    "reinmax",
    "gapped-st",
];

/// The number of samples per example `Estimator::from_name("rloo", _)` draws (as many
/// as `vimco`: four cost evaluations per example).
pub const RLOO_DEFAULT_SAMPLES: usize = 4;

/// The number `K` of conditional Gumbel noises per sample
/// `Estimator::from_name("gumbel-rao", _)` averages over (GR-MC10, the paper's
/// middle setting between 1 and 100).
pub const GUMBEL_RAO_DEFAULT_SAMPLES: usize = 10;

/// The gap `kappa` `Estimator::from_name("gapped-st", _)` uses (the reference code's
/// `gst-1.0`).
pub const GAPPED_ST_DEFAULT_GAP: f64 = 1.0;

impl<T: Float> Estimator<T> {
    /// Gumbel-Softmax at `temperature`.
    pub fn gumbel_softmax(temperature: f64) -> Result<Self> {
        Ok(Estimator::GumbelSoftmax(GumbelSoftmaxEstimator::new(
            temperature,
        )?))
    }
    /// Straight-through Gumbel-Softmax at `temperature`.
    pub fn st_gumbel_softmax(temperature: f64) -> Result<Self> {
        Ok(Estimator::StraightThrough(StraightThroughEstimator::new(
            StraightThroughKind::GumbelSoftmax,
            temperature,
        )?))
    }
    /// The paper's straight-through ("ST"), backward through `softmax(x/temperature)`
    /// (`temperature = 1` is the plain mean).
    pub fn st(temperature: f64) -> Result<Self> {
        Ok(Estimator::StraightThrough(StraightThroughEstimator::new(
            StraightThroughKind::Categorical,
            temperature,
        )?))
    }
    /// Straight-through argmax, backward through `softmax(x/temperature)`.
    pub fn st_argmax(temperature: f64) -> Result<Self> {
        Ok(Estimator::StraightThrough(StraightThroughEstimator::new(
            StraightThroughKind::Argmax,
            temperature,
        )?))
    }

    /// Relaxed Bernoulli (binary Concrete) at `temperature`.
    pub fn relaxed_bernoulli(temperature: f64) -> Result<Self> {
        Ok(Estimator::Bernoulli(BernoulliEstimator::new(
            BernoulliKind::Relaxed { temperature },
        )?))
    }
    /// Straight-through relaxed Bernoulli (binary ST Gumbel-Softmax) at `temperature`.
    pub fn st_relaxed_bernoulli(temperature: f64) -> Result<Self> {
        Ok(Estimator::Bernoulli(BernoulliEstimator::new(
            BernoulliKind::StraightThroughRelaxed { temperature },
        )?))
    }
    /// Straight-through Bernoulli.
    pub fn st_bernoulli() -> Result<Self> {
        Ok(Estimator::Bernoulli(BernoulliEstimator::new(
            BernoulliKind::StraightThrough,
        )?))
    }
    /// Slope-annealed straight-through at `slope` (raise it during training, e.g. with
    /// [`Estimator::set_temperature`], which sets `slope = 1/temperature`).
    pub fn slope_annealed_st(slope: f64) -> Result<Self> {
        Ok(Estimator::Bernoulli(BernoulliEstimator::new(
            BernoulliKind::SlopeAnnealed { slope },
        )?))
    }

    /// REINFORCE with the given baseline (an error for a baseline that
    /// [`score::Baseline::validate`] refuses).
    pub fn reinforce(baseline: score::Baseline) -> Result<Self> {
        Ok(Estimator::Reinforce(score::Reinforce::new(baseline)?))
    }
    /// NVIL with its defaults (see [`score::Reinforce::nvil`]).
    pub fn nvil() -> Self {
        Estimator::Reinforce(score::Reinforce::nvil())
    }
    /// MuProp.
    pub fn muprop() -> Self {
        Estimator::MuProp(score::MuProp::new())
    }
    /// DARN expanding around the mean.
    pub fn darn() -> Self {
        Estimator::Darn(score::Darn::default())
    }
    /// VIMCO with `num_samples` samples per example (see [`score::Vimco`] for the
    /// batch layout the cost then receives); an error below 2 samples.
    pub fn vimco(num_samples: usize) -> Result<Self> {
        Ok(Estimator::Vimco(score::Vimco::new(num_samples)?))
    }
    /// REBAR starting at `eta = 1` and `temperature`, tuned by its variance.
    pub fn rebar(temperature: f64) -> Result<Self> {
        crate::error::check_temperature_for::<T>("Estimator::rebar", temperature)?;
        Ok(Estimator::Rebar(score::Rebar::new(1.0, temperature)?))
    }
    /// RELAX starting at `eta = 1` and `temperature`, with a 10-unit surrogate.
    pub fn relax(temperature: f64) -> Result<Self> {
        crate::error::check_temperature_for::<T>("Estimator::relax", temperature)?;
        Ok(Estimator::Relax(score::Relax::new(1.0, temperature, 10)?))
    }
    /// RLOO with `num_samples >= 2` samples (and cost evaluations) per example.
    pub fn rloo(num_samples: usize) -> Result<Self> {
        Ok(Estimator::Rloo(score::Rloo::new(num_samples)?))
    }
    /// ARM (Yin and Zhou 2019).
    pub fn arm() -> Self {
        Estimator::Arm(score::ArmEstimator::arm())
    }
    /// DisARM (Dong, Mnih and Tucker 2020).
    pub fn disarm() -> Self {
        Estimator::Arm(score::ArmEstimator::disarm())
    }
    /// Gumbel-Rao GR-MC`num_samples` at `temperature` (checked for `T`).
    pub fn gumbel_rao(temperature: f64, num_samples: usize) -> Result<Self> {
        crate::error::check_temperature_for::<T>("Estimator::gumbel_rao", temperature)?;
        Ok(Estimator::GumbelRao(GumbelRao::new(
            temperature,
            num_samples,
        )?))
    }
    /// ReinMax at `temperature` (checked for `T`; the authors recommend `>= 1`).
    pub fn reinmax(temperature: f64) -> Result<Self> {
        crate::error::check_temperature_for::<T>("Estimator::reinmax", temperature)?;
        Ok(Estimator::ReinMax(ReinMax::new(temperature)?))
    }
    /// Gapped straight-through at `temperature` (checked for `T`) with gap `kappa = gap`
    /// (finite and positive).
    pub fn gapped_st(temperature: f64, gap: f64) -> Result<Self> {
        crate::error::check_temperature_for::<T>("Estimator::gapped_st", temperature)?;
        Ok(Estimator::GappedSt(GappedSt::new(temperature, gap)?))
    }

    /// Builds an estimator from its name (as in tables and on command lines: see
    /// [`ESTIMATOR_NAMES`]); `temperature` is used by the estimators that have one
    /// (slope-annealed ST starts at `slope = 1/temperature`). `rloo` draws
    /// [`RLOO_DEFAULT_SAMPLES`] samples per example, `vimco` four, `gumbel-rao`
    /// averages [`GUMBEL_RAO_DEFAULT_SAMPLES`] conditional noises and `gapped-st` keeps a
    /// gap of [`GAPPED_ST_DEFAULT_GAP`]; build other settings
    /// with the constructors. An unknown name is an [`Error::InvalidArgument`] listing the known ones.
    pub fn from_name(name: &str, temperature: f64) -> Result<Self> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "gumbel-softmax" | "gs" | "concrete" => Self::gumbel_softmax(temperature),
            "st-gumbel-softmax" | "st-gs" => Self::st_gumbel_softmax(temperature),
            "st" | "straight-through" => Self::st(temperature),
            "st-argmax" => Self::st_argmax(temperature),
            "relaxed-bernoulli" | "binary-concrete" => Self::relaxed_bernoulli(temperature),
            "st-relaxed-bernoulli" | "st-binary-concrete" => {
                Self::st_relaxed_bernoulli(temperature)
            }
            "st-bernoulli" => Self::st_bernoulli(),
            "slope-annealed-st" | "annealed-st" => {
                crate::error::check_temperature_for::<T>("Estimator::from_name", temperature)?;
                Self::slope_annealed_st(1.0 / temperature)
            }
            "reinforce" | "sf" | "score-function" => Self::reinforce(score::Baseline::None),
            "reinforce-ema" => Self::reinforce(score::Baseline::MovingAverage { decay: 0.8 }),
            "nvil" => Ok(Self::nvil()),
            "muprop" => Ok(Self::muprop()),
            "muprop-normalised" => Ok(Estimator::MuProp(score::MuProp::normalised())),
            "muprop-nvil" => Ok(Estimator::MuProp(score::MuProp::nvil())),
            "darn" => Ok(Self::darn()),
            "darn-normalised" => Ok(Estimator::Darn(score::Darn::default().with_normalisation())),
            "darn-uniform" => Ok(Estimator::Darn(score::Darn::new(
                score::ExpansionPoint::Uniform,
            ))),
            "darn-uniform-normalised" => Ok(Estimator::Darn(
                score::Darn::new(score::ExpansionPoint::Uniform).with_normalisation(),
            )),
            "darn-sample-slope" => Ok(Estimator::Darn(score::Darn::sample_slope())),
            "darn-sample-slope-normalised" => Ok(Estimator::Darn(
                score::Darn::sample_slope().with_normalisation(),
            )),
            "vimco" => Self::vimco(4),
            "vimco-bound" => Ok(Estimator::Vimco(score::Vimco::log_mean_exp(4)?)),
            "rebar" => Self::rebar(temperature),
            "relax" => Self::relax(temperature),
            "rloo" => Self::rloo(RLOO_DEFAULT_SAMPLES),
            "arm" => Ok(Self::arm()),
            "disarm" => Ok(Self::disarm()),
            "gumbel-rao" | "gr-mc" => Self::gumbel_rao(temperature, GUMBEL_RAO_DEFAULT_SAMPLES),
            "reinmax" => Self::reinmax(temperature),
            "gapped-st" | "gst" => Self::gapped_st(temperature, GAPPED_ST_DEFAULT_GAP),
            other => Err(Error::invalid_argument(
                "Estimator::from_name",
                format!(
                    "unknown estimator `{other}`; known: {}",
                    ESTIMATOR_NAMES.join(", ")
                ),
            )),
        }
    }

    fn inner(&mut self) -> &mut dyn GradientEstimator<T> {
        match self {
            Estimator::GumbelSoftmax(e) => e,
            Estimator::StraightThrough(e) => e,
            Estimator::Bernoulli(e) => e,
            Estimator::Reinforce(e) => e,
            Estimator::MuProp(e) => e,
            Estimator::Darn(e) => e,
            Estimator::Vimco(e) => e,
            Estimator::Rebar(e) => e,
            Estimator::Relax(e) => e,
            Estimator::Rloo(e) => e,
            Estimator::Arm(e) => e,
            Estimator::GumbelRao(e) => e,
            Estimator::ReinMax(e) => e,
            Estimator::GappedSt(e) => e,
        }
    }

    fn inner_ref(&self) -> &dyn GradientEstimator<T> {
        match self {
            Estimator::GumbelSoftmax(e) => e,
            Estimator::StraightThrough(e) => e,
            Estimator::Bernoulli(e) => e,
            Estimator::Reinforce(e) => e,
            Estimator::MuProp(e) => e,
            Estimator::Darn(e) => e,
            Estimator::Vimco(e) => e,
            Estimator::Rebar(e) => e,
            Estimator::Relax(e) => e,
            Estimator::Rloo(e) => e,
            Estimator::Arm(e) => e,
            Estimator::GumbelRao(e) => e,
            Estimator::ReinMax(e) => e,
            Estimator::GappedSt(e) => e,
        }
    }
}

impl<T: Float> GradientEstimator<T> for Estimator<T> {
    fn name(&self) -> &'static str {
        self.inner_ref().name()
    }
    fn is_unbiased(&self) -> bool {
        self.inner_ref().is_unbiased()
    }
    fn signal_scale(&self) -> f64 {
        self.inner_ref().signal_scale()
    }
    fn latent_kinds(&self) -> LatentKinds {
        self.inner_ref().latent_kinds()
    }
    fn gradient_through_sample(&self) -> bool {
        self.inner_ref().gradient_through_sample()
    }
    fn temperature(&self) -> Option<f64> {
        self.inner_ref().temperature()
    }
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        crate::error::check_temperature_for::<T>("Estimator::set_temperature", temperature)?;
        self.inner().set_temperature(temperature)
    }
    fn save_state(&self, state: &mut EstimatorState) {
        self.inner_ref().save_state(state)
    }
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        self.inner_ref().shard_copy()
    }
    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        self.inner().load_state(state)
    }
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.inner().estimate(logits, group_size, cost, rng)
    }
    fn estimate_with_mean_field<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        mean_field_cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.inner()
            .estimate_with_mean_field(logits, group_size, cost, mean_field_cost, rng)
    }
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.inner()
            .estimate_with_noise(logits, group_size, noise, cost, rng)
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        self.inner().sample(logits, group_size, rng)
    }
}
