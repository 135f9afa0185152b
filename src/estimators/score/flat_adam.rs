//! The crate's [`Adam`] on a flat vector of an estimator's own
//! parameters (REBAR's `eta` and temperature, RELAX's as well plus its surrogate
//! network's weights), with its state for checkpoints.
//!
//! The vector is held as one `[1, n]` parameter called `flat`, so the update, its
//! numerics and its saved moments are exactly those of [`Adam`] elsewhere in the crate.

use crate::error::Result;
use crate::estimators::{EstimatorState, StateValue};
use crate::nn::{Gradients, Parameters};
use crate::optim::{Adam, Optimizer, OptimizerState};
use crate::tensor::Tensor;

const NAME: &str = "flat";

/// Adam (`beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`) over a flat `f64` vector.
#[derive(Debug, Clone)]
pub(crate) struct FlatAdam {
    adam: Adam<f64>,
    params: Parameters<f64>,
}

impl FlatAdam {
    /// Adam at `learning_rate` for vectors of `len` values.
    pub(crate) fn new(learning_rate: f64, len: usize) -> Self {
        let mut params = Parameters::new();
        params
            .add(NAME, Tensor::zeros(1, len))
            .expect("a fresh store has no name clash");
        FlatAdam {
            adam: Adam::new(learning_rate),
            params,
        }
    }

    /// One descent step on `values` from `grads` (non-finite gradients count as 0).
    pub(crate) fn step(&mut self, values: &mut [f64], grads: &[f64]) {
        let n = values.len();
        let clean: Vec<f64> = grads
            .iter()
            .map(|g| if g.is_finite() { *g } else { 0.0 })
            .collect();
        let (Ok(p), Ok(g)) = (
            Tensor::from_slice(1, n, values),
            Tensor::from_vec(1, n, clean),
        ) else {
            return;
        };
        if self.params.set(NAME, p).is_err() {
            return;
        }
        if self
            .adam
            .step(&mut self.params, &Gradients::from_tensors(vec![g]))
            .is_ok()
        {
            let id = self.params.id(NAME).expect("own name");
            values.copy_from_slice(self.params.get(id).as_slice());
        }
    }

    /// Writes Adam's moments (`adam.m.flat`, `adam.v.flat`) and step count (`adam.steps`).
    pub(crate) fn save_state(&self, state: &mut EstimatorState) {
        let adam = self.adam.state(&self.params);
        for (name, tensor) in adam.tensors {
            state.set_tensor(name, tensor);
        }
        state.set_scalar("adam.steps", adam.steps as f64);
    }

    /// Reads the state written by [`FlatAdam::save_state`].
    pub(crate) fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
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
