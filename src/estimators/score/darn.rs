//! DARN's estimator (Gregor et al., 2014, as described in Jang et al. §3.2): MuProp's
//! Taylor baseline *without* the correction term. **Biased.**
//!
//! ```text
//! g = (f(z) - f(z_bar) - <f'(z_bar), z - z_bar>) d log q(z)
//! ```
//!
//! The baseline `b(z) = f(z_bar) + <f'(z_bar), z - z_bar>` depends on the sample `z`, so
//! subtracting it changes the expectation by `-E[b(z) d log q(z)] = -<f'(z_bar), d E[z] / d logits>`,
//! which DARN drops (MuProp adds it back). The bias is therefore exactly
//! `-(d z_mean / d logits)^T f'(z_bar)`: zero only when `f'(z_bar)` is orthogonal to every
//! direction the mean can move in. The variance is MuProp's score term alone, so it is
//! the lowest of the family on smooth costs — the usual bias/variance trade.
//!
//! The expansion point is chosen by [`ExpansionPoint`]: the paper's `z_bar = 1/2` for
//! Bernoulli units generalises to the uniform point `1/K`; the mean `softmax(logits)`
//! is MuProp's point. [`Darn::with_normalisation`] adds NVIL's centring and variance
//! normalisation of the signal ([`SignalNormalisation`]), which the paper says DARN
//! needed to compete.

use rand::RngCore;

use super::muprop::{normalise, taylor_parts};
use super::{SignalNormalisation, constant_from, read_logits, score_function_term, softmax_f64};
use crate::estimators::{Estimate, GradientEstimator};
use crate::float::Float;
use crate::tape::Var;

/// Where DARN expands the cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpansionPoint {
    /// The mean of the sample, `softmax(logits)` (as MuProp).
    #[default]
    Mean,
    /// The centre of the simplex, `1/K` in every class (the paper's `1/2` for Bernoulli).
    Uniform,
}

/// The biased DARN estimator: see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Darn {
    /// Where the cost is expanded.
    pub expansion: ExpansionPoint,
    normalisation: Option<SignalNormalisation>,
    last_scale: f64,
}

impl Default for Darn {
    fn default() -> Self {
        Darn::new(ExpansionPoint::default())
    }
}

impl Darn {
    /// DARN expanding around the given point, with the raw residual as its signal.
    pub fn new(expansion: ExpansionPoint) -> Self {
        Darn {
            expansion,
            normalisation: None,
            last_scale: 1.0,
        }
    }

    /// The same, with NVIL's centring and variance normalisation (decay 0.8).
    pub fn with_normalisation(mut self) -> Self {
        self.normalisation = Some(SignalNormalisation::nvil());
        self
    }

    /// The divisor `s` of the last call (1 without normalisation).
    pub fn last_scale(&self) -> f64 {
        self.last_scale
    }
}

impl<T: Float> GradientEstimator<T> for Darn {
    fn name(&self) -> &'static str {
        match (self.expansion, self.normalisation.is_some()) {
            (ExpansionPoint::Mean, false) => "darn",
            (ExpansionPoint::Uniform, false) => "darn-uniform",
            (ExpansionPoint::Mean, true) => "darn-normalised",
            (ExpansionPoint::Uniform, true) => "darn-uniform-normalised",
        }
    }

    fn is_unbiased(&self) -> bool {
        false
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
        let values = match read_logits(logits, group_size, "darn") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let point = match self.expansion {
            ExpansionPoint::Mean => softmax_f64(values.as_slice(), group_size),
            ExpansionPoint::Uniform => vec![1.0 / group_size as f64; values.len()],
        };
        let parts = match taylor_parts(logits, &values, point, group_size, cost, rng) {
            Ok(parts) => parts,
            Err(poisoned) => return poisoned,
        };
        let (signal, scale) = normalise(&mut self.normalisation, parts.signal);
        self.last_scale = scale;
        let signal = constant_from(logits, values.rows(), 1, signal);
        let term = score_function_term(logits, parts.sample, signal, group_size);
        Estimate {
            sample: parts.sample,
            cost: parts.cost,
            loss: (parts.cost + term).mean(),
        }
    }
}
