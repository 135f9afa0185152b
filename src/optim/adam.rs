//! Adam (Kingma & Ba 2015) with bias correction and optional L2 weight decay.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::float::Float;
use crate::kernels::adam::AdamConstants;
use crate::kernels::threads::for_each_shared;
use crate::nn::{Gradients, Parameters};
use crate::optim::{
    Optimizer, OptimizerState, check_hyper, check_updated, export_slot, import_slot, zeros_like,
};
use crate::tensor::Tensor;

/// Values per chunk when the update is shared among threads (256 KB of f32 per array).
const CHUNK: usize = 1 << 16;

/// Adam: per-parameter step sizes from running averages of the gradient and of its
/// square.
///
/// With more than one thread ([`num_threads`](crate::kernels::num_threads)) the update
/// is shared out in fixed chunks; it is elementwise, so the result is the same.
///
/// At step `t` (counting from 1), for every parameter `p` with gradient `g`:
///
/// ```text
/// g  <- g + weight_decay * p                   (optional L2 penalty, as torch.optim.Adam)
/// m  <- beta1 * m + (1 - beta1) * g            (first moment)
/// v  <- beta2 * v + (1 - beta2) * g^2          (second moment)
/// p  <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// The factors `1 - beta^t` undo the bias of `m` and `v` towards their zero start
/// (bias correction). The update is written exactly as PyTorch writes it, so both
/// agree to rounding, with one difference: an `m` that would be subnormal (below the
/// type's smallest normal number) is stored as zero, because x86 computes with
/// subnormals many times slower. The step it drops is below
/// `lr * MIN_POSITIVE / ((1 - beta1^t) * eps)`: about `1.2e-33` for f32 with `lr = 1e-3`
/// and the default `eps`.
///
/// [`Optimizer::step`] fails with [`Error::NonFiniteInput`](crate::Error::NonFiniteInput),
/// naming the parameter, when the update makes a parameter NaN or infinite (a
/// non-finite gradient, say); the update has been applied by then. Each value is checked
/// in the same pass that writes it.
///
/// ```
/// use gumbelgrad::nn::{Gradients, Parameters};
/// use gumbelgrad::optim::{Adam, Optimizer};
/// use gumbelgrad::Tensor;
/// let mut params = Parameters::<f64>::new();
/// let id = params.add("x", Tensor::scalar(1.0))?;
/// let mut adam = Adam::new(0.1);
/// adam.step(&mut params, &Gradients::from_tensors(vec![Tensor::scalar(0.5)]))?;
/// // the first step of Adam moves every coordinate by about lr, against the gradient
/// assert!((params.get(id).as_slice()[0] - 0.9).abs() < 1e-6);
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T: Float> {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    weight_decay: f64,
    steps: u64,
    first_moment: Vec<Tensor<T>>,
    second_moment: Vec<Tensor<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam with the usual defaults: `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`,
    /// no weight decay.
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
        }
    }

    /// Sets the decay rates of the two moving averages.
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets `eps`, added to the denominator.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets the L2 weight decay (added to the gradient; 0 = none).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self) -> Result<()> {
        let op = "Adam";
        check_hyper(
            op,
            "learning rate",
            self.learning_rate,
            self.learning_rate >= 0.0,
        )?;
        check_hyper(op, "beta1", self.beta1, (0.0..1.0).contains(&self.beta1))?;
        check_hyper(op, "beta2", self.beta2, (0.0..1.0).contains(&self.beta2))?;
        check_hyper(op, "epsilon", self.epsilon, self.epsilon > 0.0)?;
        check_hyper(
            op,
            "weight decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
        )
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut Parameters<T>, grads: &Gradients<T>) -> Result<()> {
        self.validate()?;
        grads.check_matches(params, "Adam::step")?;
        if self.first_moment.len() != params.len() {
            self.first_moment = zeros_like(params);
            self.second_moment = zeros_like(params);
        }
        self.steps += 1;
        let t = self.steps as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        let step_size = T::from_f64(self.learning_rate / correction1);
        let sqrt_correction2 = T::from_f64(correction2.sqrt());
        let (beta1, beta2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let (one_minus_beta1, one_minus_beta2) =
            (T::from_f64(1.0 - self.beta1), T::from_f64(1.0 - self.beta2));
        let constants = AdamConstants {
            beta1,
            beta2,
            one_minus_beta1,
            one_minus_beta2,
            step_size,
            sqrt_correction2,
            epsilon: T::from_f64(self.epsilon),
            weight_decay: (self.weight_decay != 0.0).then(|| T::from_f64(self.weight_decay)),
        };
        let finite: Vec<AtomicBool> = (0..params.len()).map(|_| AtomicBool::new(true)).collect();
        let tensors = params
            .iter_mut()
            .zip(grads.as_slice())
            .zip(self.first_moment.iter_mut().zip(&mut self.second_moment))
            .zip(&finite)
            .map(|((((_, p), g), (m, v)), finite)| {
                (
                    p.as_mut_slice(),
                    g.as_slice(),
                    m.as_mut_slice(),
                    v.as_mut_slice(),
                    finite,
                )
            });
        // Fixed chunks shared out among the threads: each value is updated by the same
        // expression whoever takes its chunk, so the result is the same for every thread
        // count.
        let chunks = tensors.flat_map(|(p, g, m, v, finite)| {
            p.chunks_mut(CHUNK)
                .zip(g.chunks(CHUNK))
                .zip(m.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK)))
                .map(move |chunk| (chunk, finite))
        });
        for_each_shared(chunks, |(((p, g), (m, v)), finite)| {
            if !constants.update(p, g, m, v) {
                finite.store(false, Ordering::Relaxed);
            }
        });
        let non_finite = finite
            .iter()
            .position(|finite| !finite.load(Ordering::Relaxed));
        check_updated(params, non_finite, "Adam")
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
        let mut tensors = export_slot("adam.m", params, &self.first_moment);
        tensors.extend(export_slot("adam.v", params, &self.second_moment));
        OptimizerState {
            steps: self.steps,
            tensors,
        }
    }

    fn load_state(&mut self, params: &Parameters<T>, state: &OptimizerState<T>) -> Result<()> {
        let first = import_slot("adam.m", params, state)?;
        let second = import_slot("adam.v", params, state)?;
        self.first_moment = first;
        self.second_moment = second;
        self.steps = state.steps;
        Ok(())
    }
}
