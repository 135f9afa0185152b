//! REINFORCE (the score-function estimator) with baselines; NVIL.
//!
//! Papers: Williams, *Simple Statistical Gradient-Following Algorithms for
//! Connectionist Reinforcement Learning* (Machine Learning 8, 1992; no arXiv id); Mnih
//! and Gregor, *Neural Variational Inference and Learning in Belief Networks* (NVIL,
//! arXiv 1402.0030).
//!
//! For a hard sample `z ~ q(z) = Categorical(softmax(logits))` and per-example cost `f`:
//!
//! ```text
//! g = (f(z) - c - b_psi(x)) / s * d log q(z) / d logits,     d log q(z)/d logits = z - softmax(logits)
//! ```
//!
//! with `c` a moving average of past costs, `b_psi` NVIL's learned baseline and `s`
//! NVIL's variance normaliser (each optional, see [`Baseline`] and
//! [`VarianceNormaliser`]). Unbiased: none of `c`, `b_psi`, `s` depends on the current
//! sample (see `baselines.rs`); with normalisation it is unbiased for `gradient / s`.
//! Variance: large, roughly `E[(f - b)^2] E[|z - p|^2]`, so it grows with the spread
//! of the cost and with the number of latent variables; a baseline close to `E[f]`
//! removes most of it.
//!
//! On the tape: the cost is evaluated at the one-hot sample (a constant), so the
//! decoder gets its ordinary gradient at the sample; the logits get the score term from
//! the zero-valued [`ScoreFunction`](super::ScoreFunction) node, and
//! `loss = mean_r (f_r + score_term_r)` has value `mean(cost)`.

use rand::RngCore;

use super::baselines::{Baseline, LearnedBaseline, MovingAverage, VarianceNormaliser};
use super::{constant_from, fail, read_logits, sample_one_hot, score_function_term, values_f64};
use crate::error::Result;
use crate::estimators::{
    Estimate, EstimatorState, GradientEstimator, InjectedNoise,
    bernoulli_as_categorical_with_noise, check_cost_shape,
};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// The score-function estimator with an optional baseline and variance normalisation.
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::{Baseline, Reinforce};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let mut estimator = Reinforce::new(Baseline::MovingAverage { decay: 0.8 })?;
/// let tape = Tape::<f64>::new();
/// // Two examples, one categorical variable with 3 classes each.
/// let logits = tape.variable(&Tensor::from_vec(2, 3, vec![0.0, 1.0, -1.0, 0.5, 0.5, 0.5])?);
/// let weights = tape.constant(&Tensor::from_vec(3, 1, vec![1.0, 2.0, 3.0])?);
/// let estimate = estimator.estimate(logits, 3, &mut |z| z.matmul(weights).square(), &mut rng);
/// tape.backward(estimate.loss)?;
/// let gradient = logits.grad().unwrap(); // one single-sample estimate per example, / 2
/// assert_eq!(gradient.shape(), gumbelgrad::Shape::new(2, 3));
/// // A decay outside [0, 1) is refused at construction.
/// assert!(Reinforce::new(Baseline::MovingAverage { decay: 5.0 }).is_err());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reinforce {
    moving_average: Option<MovingAverage>,
    learned: Option<LearnedBaseline>,
    normaliser: Option<VarianceNormaliser>,
    last_scale: f64,
}

impl Reinforce {
    /// REINFORCE with the given baseline and no variance normalisation; an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a baseline that
    /// [`Baseline::validate`] refuses.
    pub fn new(baseline: Baseline) -> Result<Self> {
        baseline.validate()?;
        let (moving_average, learned) = match baseline {
            Baseline::None => (None, None),
            Baseline::MovingAverage { decay } => (Some(MovingAverage::new(decay)), None),
            Baseline::Learned {
                decay,
                hidden,
                learning_rate,
            } => (
                Some(MovingAverage::new(decay)),
                Some(LearnedBaseline::new(hidden, learning_rate)),
            ),
        };
        Ok(Reinforce {
            moving_average,
            learned,
            normaliser: None,
            last_scale: 1.0,
        })
    }

    /// NVIL (Mnih and Gregor, 2014): moving average and learned baseline (16 tanh units,
    /// Adam at 0.01), with variance normalisation; all decays `alpha = 0.8`.
    pub fn nvil() -> Self {
        Reinforce::new(Baseline::Learned {
            decay: 0.8,
            hidden: 16,
            learning_rate: 0.01,
        })
        .and_then(|reinforce| reinforce.with_variance_normalisation(0.8))
        .expect("NVIL's constants are valid")
    }

    /// Adds NVIL's variance normalisation with the given decay; an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless the decay is
    /// finite and in `[0, 1)`.
    pub fn with_variance_normalisation(mut self, decay: f64) -> Result<Self> {
        super::baselines::check_decay("Reinforce::with_variance_normalisation", decay)?;
        self.normaliser = Some(VarianceNormaliser::new(decay));
        Ok(self)
    }

    /// The divisor `max(1, sqrt(v))` used in the last call (1 without normalisation):
    /// the last estimate times this is unbiased for the true gradient.
    pub fn last_scale(&self) -> f64 {
        self.last_scale
    }

    /// The moving-average baseline's current value, if there is one.
    pub fn moving_average(&self) -> Option<f64> {
        self.moving_average.map(|m| m.value)
    }
}

impl<T: Float> GradientEstimator<T> for Reinforce {
    fn name(&self) -> &'static str {
        match (
            self.moving_average.is_some(),
            self.learned.is_some(),
            self.normaliser.is_some(),
        ) {
            (_, true, true) => "nvil",
            (_, true, false) => "reinforce-learned",
            (true, false, false) => "reinforce-ema",
            (true, false, true) => "reinforce-ema-normalised",
            (false, false, false) => "reinforce",
            (false, false, true) => "reinforce-normalised",
        }
    }

    fn is_unbiased(&self) -> bool {
        true
    }

    /// A clone without a baseline (which keeps no state between calls); `None` with one.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        let stateless =
            self.moving_average.is_none() && self.learned.is_none() && self.normaliser.is_none();
        stateless.then(|| Box::new(self.clone()) as Box<dyn GradientEstimator<T> + Send>)
    }

    /// The moving average (`moving_average`), the learned baseline (`baseline.*`), the
    /// variance normaliser (`variance`) and the last scale, whichever it has.
    fn save_state(&self, state: &mut EstimatorState) {
        if let Some(average) = &self.moving_average {
            average.save_state("moving_average", state);
        }
        if let Some(learned) = &self.learned {
            let mut net = EstimatorState::new();
            learned.save_state(&mut net);
            state.insert_all("baseline", &net);
        }
        if let Some(normaliser) = &self.normaliser {
            normaliser.variance.save_state("variance", state);
        }
        state.set_scalar("last_scale", self.last_scale);
    }

    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        if let Some(average) = &mut self.moving_average {
            average.load_state("moving_average", state)?;
        }
        if let Some(learned) = &mut self.learned {
            learned.load_state(&state.part("baseline"))?;
        }
        if let Some(normaliser) = &mut self.normaliser {
            normaliser.variance.load_state("variance", state)?;
        }
        self.last_scale = state.scalar("last_scale")?;
        Ok(())
    }

    fn signal_scale(&self) -> f64 {
        self.last_scale
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size == 1 {
            return super::bernoulli_as_categorical(logits, cost, rng, |pairs, cost, rng| {
                <Self as GradientEstimator<T>>::estimate(self, pairs, 2, cost, rng)
            });
        }
        let name = <Self as GradientEstimator<T>>::name(self);
        let values = match read_logits(logits, group_size, name) {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let sample = sample_one_hot(&values, group_size, 1, rng).into_vec();
        self.estimate_at(logits, &values, group_size, sample, cost, rng)
    }

    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let name = <Self as GradientEstimator<T>>::name(self);
        if group_size == 1 {
            return bernoulli_as_categorical_with_noise(
                logits,
                Some(noise),
                cost,
                rng,
                name,
                |pairs, noise, cost, rng| match noise {
                    Some(noise) => self.estimate_with_noise(pairs, 2, noise, cost, rng),
                    None => <Self as GradientEstimator<T>>::estimate(self, pairs, 2, cost, rng),
                },
            );
        }
        let values = match read_logits(logits, group_size, name) {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        match noise.hard_sample(&values, group_size, 1, name) {
            Ok(sample) => {
                self.estimate_at(logits, &values, group_size, sample.into_vec(), cost, rng)
            }
            Err(error) => super::poisoned_estimate(fail(logits.tape(), error)),
        }
    }
}

impl Reinforce {
    /// [`estimate`](GradientEstimator::estimate) at a given sample instead of one drawn
    /// from `rng`: `sample` is one-hot `[batch, N*K]` (or, for binary units with
    /// `group_size = 1`, zeros and ones `[batch, N]`). So the output for a given sample
    /// can be reproduced by hand: the gradient of the returned loss with respect to
    /// the logits is `(1/B) sum_b signal_b (z_b - softmax(logits_b))`, with
    /// `signal_b = (f(z_b) - baselines) / s`. `rng` is used only to initialise a learned
    /// baseline at its first call. A sample of the wrong shape, or not one-hot, is an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) on the tape.
    pub fn estimate_with_sample<'t, T: Float>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        sample: &Tensor<f64>,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size == 1 {
            // bits b -> one-hot pairs [1 - b, b]
            let pairs: Vec<f64> = sample
                .as_slice()
                .iter()
                .flat_map(|&b| [1.0 - b, b])
                .collect();
            let pairs =
                Tensor::from_vec(sample.rows(), 2 * sample.cols(), pairs).expect("two per bit");
            return super::bernoulli_as_categorical(logits, cost, rng, |logits, cost, rng| {
                self.estimate_with_sample(logits, 2, &pairs, cost, rng)
            });
        }
        let name = <Self as GradientEstimator<T>>::name(self);
        let values = match read_logits(logits, group_size, name) {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        if let Err(error) = check_one_hot(sample, &values, group_size) {
            return super::poisoned_estimate(fail(logits.tape(), error));
        }
        self.estimate_at(
            logits,
            &values,
            group_size,
            sample.as_slice().to_vec(),
            cost,
            rng,
        )
    }

    /// The estimate at a one-hot `sample` (flattened like `values`).
    fn estimate_at<'t, T: Float>(
        &mut self,
        logits: Var<'t, T>,
        values: &Tensor<f64>,
        group_size: usize,
        sample: Vec<f64>,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let (rows, cols) = (values.rows(), values.cols());
        let sample = constant_from(logits, rows, cols, sample);
        let cost_value = check_cost_shape(sample, cost(sample));
        let costs = values_f64(cost_value);
        if costs.len() != rows {
            return super::poisoned_estimate(cost_value);
        }

        // Baselines, all fixed before this sample's cost is used to update them.
        let average = self.moving_average.map_or(0.0, |m| m.value);
        let centred: Vec<f64> = costs.iter().map(|f| f - average).collect();
        let learned = match &mut self.learned {
            Some(net) => net.predict_and_fit(values, Some(&centred), rng),
            None => vec![0.0; rows],
        };
        let scale = self.normaliser.map_or(1.0, |n| n.scale());
        self.last_scale = scale;
        let raw: Vec<f64> = centred.iter().zip(&learned).map(|(c, b)| c - b).collect();
        let signal: Vec<f64> = raw.iter().map(|s| s / scale).collect();

        if let Some(m) = &mut self.moving_average {
            m.update(costs.iter().sum::<f64>() / rows as f64);
        }
        if let Some(n) = &mut self.normaliser {
            n.variance
                .update(raw.iter().map(|s| s * s).sum::<f64>() / rows as f64);
        }

        let signal = constant_from(logits, rows, 1, signal);
        let term = score_function_term(logits, sample, signal, group_size);
        Estimate {
            sample,
            cost: cost_value,
            loss: (cost_value + term).mean(),
        }
    }
}

/// Checks that `sample` is one-hot per group and shaped like `values`.
fn check_one_hot(
    sample: &Tensor<f64>,
    values: &Tensor<f64>,
    group_size: usize,
) -> crate::error::Result<()> {
    let op = "Reinforce::estimate_with_sample";
    if sample.shape() != values.shape() {
        return Err(crate::Error::shape_mismatch(
            op,
            sample.shape(),
            values.shape(),
            "the sample must be shaped like the logits",
        ));
    }
    for group in sample.as_slice().chunks_exact(group_size) {
        let ones = group.iter().filter(|&&v| v == 1.0).count();
        let zeros = group.iter().filter(|&&v| v == 0.0).count();
        if ones != 1 || zeros != group_size - 1 {
            return Err(crate::Error::invalid_argument(
                op,
                format!("every group of {group_size} must be one-hot, got {group:?}"),
            ));
        }
    }
    Ok(())
}
