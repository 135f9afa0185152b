//! Baselines for the score-function estimator, and NVIL's variance normalisation
//! (Mnih and Gregor, arXiv 1402.0030).
//!
//! Subtracting a baseline `b` from the cost leaves REINFORCE unbiased as long as `b`
//! does not depend on the sample `z` it multiplies:
//! `E[b d log q(z)] = b d/d logits sum_z q(z) = b d/d logits 1 = 0`. All three
//! baselines here are computed *before* the current sample's cost is seen (from past
//! costs and from the logits), and updated only afterwards, so they keep the estimator
//! exactly unbiased at every step. A good baseline is close to `E[f(z)]`, which
//! shrinks the learning signal `f(z) - b` and with it the variance.
//!
//! Constants follow NVIL (Mnih and Gregor, 2014, appendix) as implemented in
//! beam2d/sbn: decay `alpha = 0.8`.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::error::{Error, Result};
use crate::estimators::{EstimatorState, StateValue};
use crate::nn::{Activation, Mlp, Parameters};
use crate::optim::{Adam, Optimizer, OptimizerState};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// Which baseline a [`Reinforce`](super::Reinforce) estimator subtracts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// Plain REINFORCE: the signal is the cost itself.
    None,
    /// An exponential moving average of past mean costs: `c <- decay c + (1 - decay) mean(f)`.
    MovingAverage {
        /// Weight on the old value (NVIL: 0.8).
        decay: f64,
    },
    /// NVIL's baseline: a moving average `c` plus a learned input-dependent network
    /// `b_psi` fitted to the centred cost `f - c`.
    Learned {
        /// Decay of the moving average (NVIL: 0.8).
        decay: f64,
        /// Hidden units of the one-hidden-layer tanh network.
        hidden: usize,
        /// Adam learning rate for the network.
        learning_rate: f64,
    },
}

impl Baseline {
    /// Checks the baseline's settings: every decay finite and in `[0, 1)` (at 1 the
    /// average never moves from 0; outside `[0, 1]` it diverges), a learned baseline
    /// with at least one hidden unit and a finite, positive learning rate. A bad value
    /// is an [`Error::InvalidArgument`] naming the setting and the value.
    /// [`Reinforce::new`](super::Reinforce::new) calls this.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Baseline::None => Ok(()),
            Baseline::MovingAverage { decay } => check_decay("Baseline::MovingAverage", decay),
            Baseline::Learned {
                decay,
                hidden,
                learning_rate,
            } => {
                check_decay("Baseline::Learned", decay)?;
                if hidden == 0 {
                    return Err(Error::invalid_argument(
                        "Baseline::Learned",
                        "hidden must be at least 1 unit, got 0",
                    ));
                }
                if !(learning_rate.is_finite() && learning_rate > 0.0) {
                    return Err(Error::invalid_argument(
                        "Baseline::Learned",
                        format!("learning_rate must be finite and > 0, got {learning_rate}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A moving-average decay must be finite and in `[0, 1)`.
pub(crate) fn check_decay(op: &str, decay: f64) -> Result<()> {
    if (0.0..1.0).contains(&decay) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            op,
            format!("decay must be in [0, 1), got {decay}"),
        ))
    }
}

/// An exponential moving average `c <- decay c + (1 - decay) x`, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovingAverage {
    /// Weight on the old value.
    pub decay: f64,
    /// The current average.
    pub value: f64,
}

impl MovingAverage {
    /// A moving average with the given decay, starting at 0.
    pub fn new(decay: f64) -> Self {
        MovingAverage { decay, value: 0.0 }
    }

    /// `c <- c + (1 - decay)(x - c)`.
    pub fn update(&mut self, x: f64) {
        if x.is_finite() {
            self.value += (1.0 - self.decay) * (x - self.value);
        }
    }

    /// Writes the current value as `{key}`.
    pub fn save_state(&self, key: &str, state: &mut EstimatorState) {
        state.set_scalar(key, self.value);
    }

    /// Reads the value written by [`MovingAverage::save_state`].
    pub fn load_state(&mut self, key: &str, state: &EstimatorState) -> Result<()> {
        self.value = state.scalar(key)?;
        Ok(())
    }
}

/// NVIL's variance normalisation: divide the learning signal by `max(1, sqrt(v))`,
/// with `v` a moving average of the signal's second moment.
///
/// `v <- v + (1 - decay)(mean_r signal_r^2 - v)`, where `signal = f - c - b_psi` is the
/// centred signal *before* scaling. (beam2d/sbn averages the batch variance; the mean
/// square about the baseline is used here so that a batch of one example works too.)
/// The scale is fixed before the current sample is seen, so the estimator stays an
/// unbiased estimate of `gradient / scale`: a per-step learning-rate change that keeps
/// the step size steady when the cost's scale drifts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarianceNormaliser {
    /// Moving average of the squared signal.
    pub variance: MovingAverage,
}

impl VarianceNormaliser {
    /// A normaliser with the given decay (NVIL: 0.8), starting at `v = 0` (scale 1).
    pub fn new(decay: f64) -> Self {
        VarianceNormaliser {
            variance: MovingAverage::new(decay),
        }
    }

    /// The current divisor `max(1, sqrt(v))`.
    pub fn scale(&self) -> f64 {
        self.variance.value.max(0.0).sqrt().max(1.0)
    }
}

/// NVIL's two corrections to a learning signal, for the estimators whose signal is
/// already a residual (MuProp's and DARN's `f(z) - b(z)`): subtract a moving average
/// `c` of the signal, then divide by `max(1, sqrt(v))` ([`VarianceNormaliser`]).
///
/// Both `c` and the scale are fixed before the current signal is seen and updated only
/// afterwards, as in [`Reinforce`](super::Reinforce): the centring keeps an unbiased
/// estimator unbiased (a constant times the score has mean zero) and the scale turns it
/// into an unbiased estimate of `gradient / scale`. The paper says SF, DARN and MuProp
/// all needed this to compete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalNormalisation {
    /// Moving average of the mean raw signal (`c`).
    pub centre: MovingAverage,
    /// Moving average of the mean squared centred signal (`v`).
    pub normaliser: VarianceNormaliser,
}

impl SignalNormalisation {
    /// Writes `c` as `centre` and `v` as `variance`.
    pub fn save_state(&self, state: &mut EstimatorState) {
        self.centre.save_state("centre", state);
        self.normaliser.variance.save_state("variance", state);
    }

    /// Reads the state written by [`SignalNormalisation::save_state`].
    pub fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        self.centre.load_state("centre", state)?;
        self.normaliser.variance.load_state("variance", state)
    }

    /// Both moving averages with NVIL's decay `alpha = 0.8`, starting at `c = 0, v = 0`.
    pub fn nvil() -> Self {
        SignalNormalisation {
            centre: MovingAverage::new(0.8),
            normaliser: VarianceNormaliser::new(0.8),
        }
    }

    /// `(signal_r - c) / max(1, sqrt(v))` for every row, and the divisor used; then
    /// updates `c` with `mean(signal)` and `v` with `mean((signal - c)^2)`.
    pub fn apply(&mut self, signal: &[f64]) -> (Vec<f64>, f64) {
        self.apply_with_baseline(signal, |centred| vec![0.0; centred.len()])
    }

    /// As [`apply`](Self::apply), with a per-row baseline subtracted after centring:
    /// `(signal_r - c - b_r) / max(1, sqrt(v))`, where `baseline` maps the centred
    /// signal to the predictions `b_r` (made before it learns from that signal), and
    /// `v` is updated with `mean((signal - c - b)^2)`.
    fn apply_with_baseline(
        &mut self,
        signal: &[f64],
        baseline: impl FnOnce(&[f64]) -> Vec<f64>,
    ) -> (Vec<f64>, f64) {
        let (centre, scale) = (self.centre.value, self.normaliser.scale());
        let centred: Vec<f64> = signal.iter().map(|s| s - centre).collect();
        let predicted = baseline(&centred);
        let residual: Vec<f64> = centred.iter().zip(&predicted).map(|(c, b)| c - b).collect();
        let rows = signal.len().max(1) as f64;
        self.centre.update(signal.iter().sum::<f64>() / rows);
        self.normaliser
            .variance
            .update(residual.iter().map(|s| s * s).sum::<f64>() / rows);
        (residual.iter().map(|s| s / scale).collect(), scale)
    }
}

/// All three of NVIL's corrections to a residual learning signal `r`, in NVIL's order:
/// centre with a moving average `c`, subtract the learned input-dependent baseline
/// `b_psi(x)` fitted to `r - c` ([`LearnedBaseline`]), divide by `max(1, sqrt(v))`:
///
/// ```text
/// signal_r = (r_r - c - b_psi(x_r)) / max(1, sqrt(v))
/// ```
///
/// As in [`SignalNormalisation`], `c`, `b_psi` and `v` are fixed before the current
/// signal is seen and updated afterwards (`c` with `mean(r)`, `v` with
/// `mean((r - c - b_psi)^2)`, `b_psi` by one Adam step), so the signal's centring has
/// mean zero against the score. Used by [`MuProp::nvil`](super::MuProp::nvil).
#[derive(Debug, Clone)]
pub struct NvilSignal {
    /// The centre `c` and the variance normaliser `v`.
    pub normalisation: SignalNormalisation,
    /// The learned input-dependent baseline `b_psi`.
    pub baseline: LearnedBaseline,
}

impl NvilSignal {
    /// Writes `c`, `v` and the baseline network (under `baseline.`).
    pub fn save_state(&self, state: &mut EstimatorState) {
        self.normalisation.save_state(state);
        let mut net = EstimatorState::new();
        self.baseline.save_state(&mut net);
        state.insert_all("baseline", &net);
    }

    /// Reads the state written by [`NvilSignal::save_state`].
    pub fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        self.normalisation.load_state(state)?;
        self.baseline.load_state(&state.part("baseline"))
    }

    /// NVIL's constants, as [`Reinforce::nvil`](super::Reinforce::nvil): decays 0.8, a
    /// baseline network of 16 tanh units trained by Adam at 0.01.
    pub fn nvil() -> Self {
        NvilSignal {
            normalisation: SignalNormalisation::nvil(),
            baseline: LearnedBaseline::new(16, 0.01),
        }
    }

    /// `(signal_r - c - b_psi(inputs_r)) / max(1, sqrt(v))` for every row, and the
    /// divisor used; then updates `c`, `b_psi` and `v`. `inputs` is `[rows, D]`, one
    /// row of baseline input (the detached logits) per signal.
    pub fn apply(
        &mut self,
        inputs: &Tensor<f64>,
        signal: &[f64],
        rng: &mut dyn RngCore,
    ) -> (Vec<f64>, f64) {
        let baseline = &mut self.baseline;
        self.normalisation.apply_with_baseline(signal, |centred| {
            baseline.predict_and_fit(inputs, Some(centred), rng)
        })
    }
}

/// NVIL's input-dependent baseline `b_psi(x)`: an [`Mlp`] `D -> hidden -> 1` with a
/// tanh hidden layer, trained by the crate's [`Adam`].
///
/// The estimator sees only the logits, not the model's input, so the network's input
/// `x` is the **detached logits** of the example: they are a function of the input (the
/// encoder's output), which is all an input-dependent baseline needs, and detaching them
/// keeps the baseline independent of the sample and out of the model's gradient.
/// The network is fitted by one Adam step per call on `mean_r (f_r - c - b_psi(x_r))^2`
/// on its own private tape, *after* its prediction has been used. It is built at the
/// first call, when `D` is known, from the caller's generator (hidden layer He-style
/// uniform for tanh as [`Activation::suggested_init`] picks, output layer Glorot).
#[derive(Debug, Clone)]
pub struct LearnedBaseline {
    hidden: usize,
    learning_rate: f64,
    net: Option<Mlp>,
    params: Parameters<f64>,
    adam: Adam<f64>,
}

/// The name under which the network's parameters live (`baseline.0.weight`, ...).
const BASELINE_NET: &str = "baseline";

impl LearnedBaseline {
    /// A network with `hidden` tanh units trained by Adam at `learning_rate`.
    pub fn new(hidden: usize, learning_rate: f64) -> Self {
        LearnedBaseline {
            hidden: hidden.max(1),
            learning_rate,
            net: None,
            params: Parameters::new(),
            adam: Adam::new(learning_rate),
        }
    }

    /// The network's parameters (empty before the first call).
    pub fn parameters(&self) -> &Parameters<f64> {
        &self.params
    }

    /// Input width `D` of the network, once built.
    pub fn input_dim(&self) -> Option<usize> {
        self.net.as_ref().map(Mlp::in_features)
    }

    fn build(&mut self, input_dim: usize, rng: &mut dyn RngCore) -> Result<()> {
        let mut params = Parameters::new();
        let net = Mlp::new(
            &mut params,
            BASELINE_NET,
            &[input_dim, self.hidden, 1],
            Activation::Tanh,
            rng,
        )?;
        self.net = Some(net);
        self.params = params;
        self.adam = Adam::new(self.learning_rate);
        Ok(())
    }

    /// Predicts `b_psi(x_r)` for each row of `inputs [rows, D]`, then (if `targets` is
    /// given) takes one Adam step on `mean_r (targets_r - b_psi(x_r))^2`. Returns the
    /// predictions made *before* the step (zeros if the inputs cannot be used).
    pub fn predict_and_fit(
        &mut self,
        inputs: &Tensor<f64>,
        targets: Option<&[f64]>,
        rng: &mut dyn RngCore,
    ) -> Vec<f64> {
        let zeros = vec![0.0; inputs.rows()];
        if self.input_dim() != Some(inputs.cols()) && self.build(inputs.cols(), rng).is_err() {
            return zeros;
        }
        let Some(net) = &self.net else {
            return zeros;
        };
        let tape = Tape::<f64>::new();
        let bound = self.params.bind(&tape);
        let prediction = net.forward(&bound, tape.constant(inputs));
        let predicted: Vec<f64> = prediction
            .with_value(|t| t.as_slice().to_vec())
            .unwrap_or(zeros);
        let Some(targets) = targets else {
            return predicted;
        };
        let Ok(target) = Tensor::from_slice(inputs.rows(), 1, targets) else {
            return predicted;
        };
        let loss = (prediction - tape.constant(&target)).square().mean();
        if tape.backward(loss).is_ok() {
            let grads = bound.gradients();
            drop(bound);
            if grads.global_norm().is_finite() {
                // Cannot fail: the gradients come from these parameters.
                let _ = self.adam.step(&mut self.params, &grads);
            }
        }
        predicted
    }

    /// Writes the network's weights (`net.<parameter>`) and Adam's moments and step
    /// count (`adam.*`), nothing before the first call.
    pub fn save_state(&self, state: &mut EstimatorState) {
        if self.net.is_none() {
            return;
        }
        for (name, tensor) in self.params.iter() {
            state.set_tensor(format!("net.{name}"), tensor.clone());
        }
        let adam = self.adam.state(&self.params);
        for (name, tensor) in adam.tensors {
            state.set_tensor(name, tensor);
        }
        state.set_scalar("adam.steps", adam.steps as f64);
    }

    /// Restores a state written by [`LearnedBaseline::save_state`] (an empty state
    /// leaves the network unbuilt, as before its first call).
    pub fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        let first = format!("net.{BASELINE_NET}.0.weight");
        if !state.contains(&first) {
            self.net = None;
            self.params = Parameters::new();
            self.adam = Adam::new(self.learning_rate);
            return Ok(());
        }
        let input_dim = state.tensor(&first)?.rows();
        // The draw is overwritten below; a fixed generator keeps loading free of noise.
        self.build(input_dim, &mut StdRng::seed_from_u64(0))?;
        let names: Vec<String> = self.params.names().map(str::to_string).collect();
        for name in &names {
            let like = self.params.get(self.params.id(name).expect("own name"));
            let (rows, cols) = (like.rows(), like.cols());
            let tensor = state.tensor_shaped(&format!("net.{name}"), rows, cols)?;
            self.params.set(name, tensor.clone())?;
        }
        let adam_state = OptimizerState {
            steps: state.count("adam.steps")?,
            tensors: state
                .entries()
                .filter_map(|(k, v)| match v {
                    StateValue::Tensor(t) if k.starts_with("adam.") => {
                        Some((k.to_string(), t.clone()))
                    }
                    _ => None,
                })
                .collect(),
        };
        self.adam.load_state(&self.params, &adam_state)
    }
}
