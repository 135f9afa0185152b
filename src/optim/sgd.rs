//! Stochastic gradient descent with (heavy-ball) momentum.

use crate::error::Result;
use crate::float::{Float, flush_subnormal};
use crate::nn::{Gradients, Parameters};
use crate::optim::{
    Optimizer, OptimizerState, check_hyper, check_updated, export_slot, import_slot, zeros_like,
};
use crate::tensor::Tensor;

/// SGD with momentum, in PyTorch's form:
///
/// ```text
/// g <- g + weight_decay * p      (optional L2 penalty)
/// u <- momentum * u + g          (velocity; u = g on the first step)
/// p <- p - lr * u
/// ```
///
/// With `momentum = 0` this is plain gradient descent.
///
/// A velocity that would be subnormal is stored as zero (see
/// [`Adam`](crate::optim::Adam) for why): the step it drops is below
/// `lr * MIN_POSITIVE`. [`Optimizer::step`] fails with
/// [`Error::NonFiniteInput`](crate::Error::NonFiniteInput), naming the parameter, when
/// the update makes a parameter NaN or infinite; the update has been applied by then.
///
/// ```
/// use gumbelgrad::nn::{Gradients, Parameters};
/// use gumbelgrad::optim::{Optimizer, Sgd};
/// use gumbelgrad::Tensor;
/// let mut params = Parameters::<f64>::new();
/// let id = params.add("x", Tensor::scalar(1.0))?;
/// let mut sgd = Sgd::new(0.1).with_momentum(0.9);
/// let g = Gradients::from_tensors(vec![Tensor::scalar(1.0)]);
/// sgd.step(&mut params, &g)?; // u = 1,   x = 1 - 0.1
/// sgd.step(&mut params, &g)?; // u = 1.9, x = 0.9 - 0.19
/// assert!((params.get(id).as_slice()[0] - 0.71).abs() < 1e-12);
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd<T: Float> {
    learning_rate: f64,
    momentum: f64,
    weight_decay: f64,
    steps: u64,
    velocity: Vec<Tensor<T>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD (no momentum, no weight decay).
    pub fn new(learning_rate: f64) -> Self {
        Sgd {
            learning_rate,
            momentum: 0.0,
            weight_decay: 0.0,
            steps: 0,
            velocity: Vec::new(),
        }
    }

    /// Sets the momentum coefficient (0.9 is common).
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the L2 weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut Parameters<T>, grads: &Gradients<T>) -> Result<()> {
        let op = "Sgd";
        check_hyper(
            op,
            "learning rate",
            self.learning_rate,
            self.learning_rate >= 0.0,
        )?;
        check_hyper(
            op,
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
        )?;
        check_hyper(
            op,
            "weight decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
        )?;
        grads.check_matches(params, "Sgd::step")?;
        if self.velocity.len() != params.len() {
            self.velocity = zeros_like(params);
        }
        let first = self.steps == 0;
        self.steps += 1;
        let learning_rate = T::from_f64(self.learning_rate);
        let momentum = T::from_f64(self.momentum);
        let weight_decay = T::from_f64(self.weight_decay);
        let mut non_finite = None;
        for (index, (((_, p), g), u)) in params
            .iter_mut()
            .zip(grads.as_slice())
            .zip(&mut self.velocity)
            .enumerate()
        {
            let mut finite = true;
            for ((p, &g), u) in p
                .as_mut_slice()
                .iter_mut()
                .zip(g.as_slice())
                .zip(u.as_mut_slice())
            {
                let g = g + weight_decay * *p;
                *u = flush_subnormal(if first { g } else { momentum * *u + g });
                *p -= learning_rate * *u;
                finite &= p.is_finite();
            }
            if !finite && non_finite.is_none() {
                non_finite = Some(index);
            }
        }
        check_updated(params, non_finite, "SGD")
    }

    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self, params: &Parameters<T>) -> OptimizerState<T> {
        OptimizerState {
            steps: self.steps,
            tensors: export_slot("sgd.velocity", params, &self.velocity),
        }
    }

    fn load_state(&mut self, params: &Parameters<T>, state: &OptimizerState<T>) -> Result<()> {
        self.velocity = import_slot("sgd.velocity", params, state)?;
        self.steps = state.steps;
        Ok(())
    }
}
