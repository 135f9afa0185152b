//! An estimator's saved state: named `f64` scalars and tensors.
//!
//! Estimators that learn or average as they go (moving-average and learned baselines,
//! NVIL's variance normaliser, REBAR's and RELAX's tuned `eta` and temperature, RELAX's
//! surrogate network, the Adam moments that train them, step counters) write that state
//! with [`GradientEstimator::save_state`](super::GradientEstimator::save_state) and read it
//! back with [`GradientEstimator::load_state`](super::GradientEstimator::load_state), so a
//! checkpoint resumes them bit for bit. Everything is stored in `f64`, whatever the
//! model's float type, and never includes a random generator: estimators draw their
//! noise from the generator the caller passes to each call.
//!
//! ```
//! use gumbelgrad::estimators::EstimatorState;
//! use gumbelgrad::Tensor;
//! let mut state = EstimatorState::new();
//! state.set_scalar("baseline.value", 0.25);
//! state.set_tensor("net.weight", Tensor::<f64>::ones(2, 3));
//! assert_eq!(state.scalar("baseline.value")?, 0.25);
//! assert_eq!(state.tensor("net.weight")?.shape().cols, 3);
//! assert!(state.scalar("missing").is_err());
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One entry of an [`EstimatorState`].
#[derive(Debug, Clone, PartialEq)]
pub enum StateValue {
    /// A number (an average, a scale, a step count stored exactly below `2^53`).
    Scalar(f64),
    /// A tensor (network weights, optimiser moments).
    Tensor(Tensor<f64>),
}

/// Named scalars and tensors, sorted by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EstimatorState {
    entries: BTreeMap<String, StateValue>,
}

impl EstimatorState {
    /// An empty state.
    pub fn new() -> Self {
        EstimatorState::default()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an entry called `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// All entries, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &StateValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Stores a scalar under `key` (replacing any entry of that name).
    pub fn set_scalar(&mut self, key: impl Into<String>, value: f64) {
        self.entries.insert(key.into(), StateValue::Scalar(value));
    }

    /// Stores a tensor under `key` (replacing any entry of that name).
    pub fn set_tensor(&mut self, key: impl Into<String>, value: Tensor<f64>) {
        self.entries.insert(key.into(), StateValue::Tensor(value));
    }

    /// Stores any entry under `key`.
    pub fn insert(&mut self, key: impl Into<String>, value: StateValue) {
        self.entries.insert(key.into(), value);
    }

    /// The scalar called `key`; an [`Error::InvalidArgument`] naming it if it is
    /// missing or a tensor.
    pub fn scalar(&self, key: &str) -> Result<f64> {
        match self.entries.get(key) {
            Some(StateValue::Scalar(x)) => Ok(*x),
            Some(StateValue::Tensor(_)) => Err(wrong(key, "a scalar", "a tensor")),
            None => Err(missing(key)),
        }
    }

    /// A scalar stored as a count: an error unless it is a whole number `>= 0`.
    pub fn count(&self, key: &str) -> Result<u64> {
        let x = self.scalar(key)?;
        if x >= 0.0 && x.fract() == 0.0 && x < 9.007_199_254_740_992e15 {
            Ok(x as u64)
        } else {
            Err(wrong(key, "a whole count", &x.to_string()))
        }
    }

    /// The tensor called `key`; an [`Error::InvalidArgument`] naming it if it is
    /// missing or a scalar.
    pub fn tensor(&self, key: &str) -> Result<&Tensor<f64>> {
        match self.entries.get(key) {
            Some(StateValue::Tensor(t)) => Ok(t),
            Some(StateValue::Scalar(_)) => Err(wrong(key, "a tensor", "a scalar")),
            None => Err(missing(key)),
        }
    }

    /// The tensor called `key`, checked to be `[rows, cols]`.
    pub fn tensor_shaped(&self, key: &str, rows: usize, cols: usize) -> Result<&Tensor<f64>> {
        let t = self.tensor(key)?;
        if t.rows() != rows || t.cols() != cols {
            return Err(wrong(
                key,
                &format!("a [{rows}, {cols}] tensor"),
                &format!("[{}, {}]", t.rows(), t.cols()),
            ));
        }
        Ok(t)
    }

    /// Copies every entry of `other` in, its names prefixed with `"{prefix}."` (for an
    /// estimator made of parts, each writing its own state).
    pub fn insert_all(&mut self, prefix: &str, other: &EstimatorState) {
        for (k, v) in &other.entries {
            self.entries.insert(format!("{prefix}.{k}"), v.clone());
        }
    }

    /// The entries whose names start with `"{prefix}."`, with that prefix removed: the
    /// inverse of [`EstimatorState::insert_all`].
    pub fn part(&self, prefix: &str) -> EstimatorState {
        let head = format!("{prefix}.");
        EstimatorState {
            entries: self
                .entries
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&head).map(|k| (k.to_string(), v.clone())))
                .collect(),
        }
    }
}

fn missing(key: &str) -> Error {
    Error::invalid_argument(
        "EstimatorState",
        format!("the estimator state has no entry `{key}` (saved by a different estimator?)"),
    )
}

fn wrong(key: &str, expected: &str, found: &str) -> Error {
    Error::invalid_argument(
        "EstimatorState",
        format!("entry `{key}` should be {expected}, found {found}"),
    )
}
