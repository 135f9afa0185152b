//! Optimizers that update a [`Parameters`] store from [`Gradients`], plus gradient clipping and learning-rate
//! schedules.
//!
//! Every optimizer can hand out its whole internal state ([`OptimizerState`]: the
//! step count and its moment tensors, named after the parameters) and take it back, so
//! a checkpoint can resume training bit for bit.

pub mod adam;
pub mod clip;
pub mod schedule;
pub mod sgd;

pub use adam::Adam;
pub use clip::clip_global_norm;
pub use schedule::LearningRateSchedule;
pub use sgd::Sgd;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::nn::{Gradients, Parameters};
use crate::tensor::Tensor;

/// A first-order optimizer.
pub trait Optimizer<T: Float> {
    /// Updates every parameter in place from its gradient.
    fn step(&mut self, params: &mut Parameters<T>, grads: &Gradients<T>) -> Result<()>;

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (a [`LearningRateSchedule`] calls this).
    fn set_learning_rate(&mut self, learning_rate: f64);

    /// Number of steps taken so far.
    fn steps(&self) -> u64;

    /// The full internal state, with tensors named `"{kind}.{slot}.{parameter name}"`
    /// (e.g. `"adam.m.encoder.0.weight"`).
    fn state(&self, params: &Parameters<T>) -> OptimizerState<T>;

    /// Restores a state produced by [`Optimizer::state`] for the same parameters.
    fn load_state(&mut self, params: &Parameters<T>, state: &OptimizerState<T>) -> Result<()>;
}

/// An optimizer's saved state: step count plus named tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<T: Float> {
    /// Steps taken.
    pub steps: u64,
    /// Named moment tensors.
    pub tensors: Vec<(String, Tensor<T>)>,
}

impl<T: Float> OptimizerState<T> {
    /// Finds the tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Zero-filled buffers shaped like the parameters (lazily built moment slots).
pub(crate) fn zeros_like<T: Float>(params: &Parameters<T>) -> Vec<Tensor<T>> {
    params
        .iter()
        .map(|(_, p)| Tensor::zeros(p.rows(), p.cols()))
        .collect()
}

/// Names each slot tensor `"{prefix}.{parameter name}"`.
pub(crate) fn export_slot<T: Float>(
    prefix: &str,
    params: &Parameters<T>,
    slot: &[Tensor<T>],
) -> Vec<(String, Tensor<T>)> {
    let zeros;
    let slot = if slot.is_empty() {
        zeros = zeros_like(params);
        &zeros
    } else {
        slot
    };
    params
        .names()
        .zip(slot)
        .map(|(name, t)| (format!("{prefix}.{name}"), t.clone()))
        .collect()
}

/// Reads the slot `"{prefix}.{parameter name}"` back, checking names and shapes.
pub(crate) fn import_slot<T: Float>(
    prefix: &str,
    params: &Parameters<T>,
    state: &OptimizerState<T>,
) -> Result<Vec<Tensor<T>>> {
    params
        .iter()
        .map(|(name, p)| {
            let key = format!("{prefix}.{name}");
            let t = state.get(&key).ok_or_else(|| {
                Error::invalid_argument(
                    "Optimizer::load_state",
                    format!("the saved state has no tensor `{key}`"),
                )
            })?;
            if t.shape() != p.shape() {
                return Err(Error::shape_mismatch(
                    format!("Optimizer::load_state ({key})"),
                    p.shape(),
                    t.shape(),
                    "a saved moment must have its parameter's shape",
                ));
            }
            Ok(t.clone())
        })
        .collect()
}

/// The result of an update that found parameter `non_finite` (its index in `params`),
/// if any, NaN or infinite after writing it: an
/// [`Error::NonFiniteInput`](crate::Error::NonFiniteInput) naming the parameter and the
/// first bad position, said to come from `optimizer`'s update.
pub(crate) fn check_updated<T: Float>(
    params: &Parameters<T>,
    non_finite: Option<usize>,
    optimizer: &str,
) -> Result<()> {
    match non_finite {
        None => Ok(()),
        Some(index) => {
            let (name, value) = params.iter().nth(index).expect("an index of a parameter");
            value.check_finite(&format!("parameter {name} after the {optimizer} update"))
        }
    }
}

pub(crate) fn check_hyper(op: &str, name: &str, value: f64, ok: bool) -> Result<()> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            op,
            format!("invalid {name}: {value}"),
        ))
    }
}
