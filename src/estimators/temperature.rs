//! Temperature schedules for the relaxed estimators, and a learnable temperature.
//!
//! The paper starts training at a high temperature (smooth samples, low-variance but
//! biased gradients) and anneals towards a small positive one (§2.1, §4.2):
//!
//! `tau = max(tau_min, tau0 * exp(-r * t))`, with `t` the global step, updated every `N`
//! steps. "Updated every N steps" means `t` is the step of the last update, so
//! `tau(step) = max(tau_min, tau0 * exp(-r * N * floor(step / N)))`.
//!
//! ```
//! use gumbelgrad::estimators::TemperatureSchedule;
//!
//! // The paper's VAE setting: tau0 = 1, r = 1e-4, N = 1000, floor at 0.5.
//! let schedule = TemperatureSchedule::exponential(1.0, 1e-4, 1000, 0.5)?;
//! assert_eq!(schedule.at(999)?, 1.0); // no update yet
//! assert!((schedule.at(1000)? - (-0.1f64).exp()).abs() < 1e-15);
//! assert_eq!(schedule.at(1_000_000)?, 0.5); // floored
//! assert!(TemperatureSchedule::constant(0.0).is_err()); // tau must be > 0
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use crate::error::{Error, Result, check_temperature_for};
use crate::float::Float;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// How the temperature evolves with the training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TemperatureSchedule {
    /// The same temperature at every step.
    Constant {
        /// The temperature, `> 0`.
        temperature: f64,
    },
    /// `max(minimum, initial * exp(-rate * every * floor(step / every)))`.
    Exponential {
        /// `tau0`, the temperature at step 0.
        initial: f64,
        /// `r >= 0`, the decay rate per step.
        rate: f64,
        /// `N >= 1`: the temperature changes only every `N` steps.
        every: u64,
        /// `tau_min > 0`, the floor.
        minimum: f64,
    },
}

impl TemperatureSchedule {
    /// A constant temperature (an error unless finite and `> 0`).
    pub fn constant(temperature: f64) -> Result<Self> {
        check_temperature_for::<f64>("TemperatureSchedule::constant", temperature)?;
        Ok(TemperatureSchedule::Constant { temperature })
    }

    /// The paper's annealing schedule; checks `initial > 0`, `minimum > 0`, `rate`
    /// finite and `>= 0`, `every >= 1`.
    pub fn exponential(initial: f64, rate: f64, every: u64, minimum: f64) -> Result<Self> {
        let op = "TemperatureSchedule::exponential";
        check_temperature_for::<f64>(op, initial)?;
        check_temperature_for::<f64>(op, minimum)?;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Error::invalid_argument(
                op,
                format!("the decay rate must be finite and >= 0, got {rate}"),
            ));
        }
        if every == 0 {
            return Err(Error::invalid_argument(
                op,
                "the update interval must be at least 1 step",
            ));
        }
        Ok(TemperatureSchedule::Exponential {
            initial,
            rate,
            every,
            minimum,
        })
    }

    /// The temperature at training step `step`, checked again (so a schedule built by
    /// hand with bad fields is rejected here rather than producing NaN samples).
    pub fn at(&self, step: u64) -> Result<f64> {
        let temperature = match *self {
            TemperatureSchedule::Constant { temperature } => temperature,
            TemperatureSchedule::Exponential {
                initial,
                rate,
                every,
                minimum,
            } => {
                let every = every.max(1);
                let last_update = (step / every) * every;
                minimum.max(initial * (-rate * last_update as f64).exp())
            }
        };
        check_temperature_for::<f64>("TemperatureSchedule::at", temperature)?;
        Ok(temperature)
    }
}

/// A temperature learned by gradient descent, stored as `log tau` so that any real
/// parameter value gives a valid `tau = exp(log tau) > 0`.
///
/// Use it with
/// [`gumbel_softmax_learned_temperature`](super::gumbel_softmax_learned_temperature):
///
/// ```
/// use gumbelgrad::estimators::{gumbel_softmax_learned_temperature, noise, LearnableTemperature};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let temperature = LearnableTemperature::<f64>::new(0.7)?;
/// let tape = Tape::new();
/// let (log_tau, tau) = temperature.on_tape(&tape);
/// let logits = tape.variable(&Tensor::from_vec(1, 3, vec![0.2, -0.4, 1.0])?);
/// let g = tape.constant(&noise::gumbel(1, 3, &mut rng));
/// let y = gumbel_softmax_learned_temperature(logits, g, tau, 3);
/// tape.backward((y * y).sum())?;
/// assert!(log_tau.grad().is_some()); // d loss / d log tau flows
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LearnableTemperature<T: Float> {
    log_temperature: Tensor<T>,
}

impl<T: Float> LearnableTemperature<T> {
    /// Starts at `temperature` (an error unless finite and `> 0`).
    pub fn new(temperature: f64) -> Result<Self> {
        check_temperature_for::<T>("LearnableTemperature", temperature)?;
        Ok(LearnableTemperature {
            log_temperature: Tensor::scalar(T::from_f64(temperature.ln())),
        })
    }
    /// The current temperature `exp(log tau)`.
    pub fn temperature(&self) -> f64 {
        self.log_temperature.as_slice()[0].to_f64().exp()
    }
    /// Sets the temperature (an error unless finite and `> 0`).
    pub fn set(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("LearnableTemperature::set", temperature)?;
        self.log_temperature.as_mut_slice()[0] = T::from_f64(temperature.ln());
        Ok(())
    }
    /// The parameter `log tau` (a `1x1` tensor), for optimisers.
    pub fn log_temperature(&self) -> &Tensor<T> {
        &self.log_temperature
    }
    /// Mutable access to the parameter `log tau`; a non-finite value makes the next
    /// [`LearnableTemperature::on_tape`] fail with a tape error.
    pub fn log_temperature_mut(&mut self) -> &mut Tensor<T> {
        &mut self.log_temperature
    }
    /// Feeds `log tau` to the tape as a variable and returns `(log_tau, tau)` with
    /// `tau = exp(log_tau)`; gradients reach `log_tau`.
    pub fn on_tape<'t>(&self, tape: &'t Tape<T>) -> (Var<'t, T>, Var<'t, T>) {
        let log_tau = tape.variable_named("log_temperature", &self.log_temperature);
        (log_tau, log_tau.exp())
    }
}
