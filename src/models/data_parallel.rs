//! Data parallelism: one training step of a [`DiscreteVae`] with its minibatch cut into
//! shards, each recorded on its own tape, possibly on its own thread
//! ([`TrainConfig::shards`](super::TrainConfig::shards)).
//!
//! A tape is single-threaded by design, and a minibatch of 100 gives the matrix
//! products too little work to share well between threads, one product at a time (see
//! `docs/performance.md`). Independent shards share nothing until their gradients are
//! averaged: with `S` shards of a batch of `B`, shard `s` holds rows `s B/S ..
//! (s+1) B/S`, and
//!
//! ```text
//! loss = (1/S) sum_s loss_s,    grad = (1/S) sum_s grad_s,
//! ```
//!
//! where `loss_s` is the shard's mean negative ELBO (each shard is a minibatch of `B/S`
//! in its own right) and `grad_s` its gradient. The sum over the batch is the same
//! quantity as on one tape, grouped differently.
//!
//! # Same bits for any thread count
//!
//! The number of shards is a training setting, never derived from the thread count.
//! Shard `s` draws its noise from its own generator,
//! [`rng_for_shard`]`(seed, step, s)`, and its own copy
//! of the estimator ([`GradientEstimator::shard_copy`]); one thread records and
//! differentiates it, and its products run on that thread alone (they give the same
//! bits on any number of threads anyway); the mean is taken in shard order, in fixed
//! chunks ([`Gradients::set_mean_of`]). Which thread runs which shard changes nothing
//! but the time. The bits differ from an unsharded step's: the batch's sums are grouped
//! by shard, and the noise comes from other streams.
//!
//! Only estimators that carry no state from one step to the next can be split this
//! way (the shards' copies of a baseline would each learn their own); the others
//! return `None` from [`GradientEstimator::shard_copy`], and a trainer refuses them
//! with more than one shard.

use std::any::Any;
use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::estimators::GradientEstimator;
use crate::float::Float;
use crate::kernels::threads::{for_each_shared, on_one_thread};
use crate::models::discrete_vae::DiscreteVae;
use crate::models::seeds::rng_for_shard;
use crate::nn::Gradients;
use crate::tape::Tape;
use crate::tensor::Tensor;

thread_local! {
    /// The tape each thread records shards on, kept from step to step so that its
    /// buffer pool is reused (one per element type, as `Box<Tape<T>>`).
    static SHARD_TAPES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's shard tape for elements `T` (made on first use). The tape
/// is taken out while `f` runs, so nothing is borrowed across the call.
fn with_shard_tape<T: Float, R>(f: impl FnOnce(&mut Tape<T>) -> R) -> R {
    let kept = SHARD_TAPES.with(|tapes| {
        let mut tapes = tapes.borrow_mut();
        let index = tapes.iter().position(|tape| tape.is::<Tape<T>>())?;
        tapes.swap_remove(index).downcast::<Tape<T>>().ok()
    });
    let mut tape = kept.unwrap_or_default();
    let result = f(&mut tape);
    SHARD_TAPES.with(|tapes| tapes.borrow_mut().push(tape));
    result
}

/// What a data-parallel trainer keeps between steps: each shard's images and
/// gradients (their buffers are reused).
#[derive(Debug, Default)]
pub(crate) struct Shards<T: Float> {
    images: Vec<Tensor<T>>,
    grads: Vec<Gradients<T>>,
}

/// The error for an estimator without [`GradientEstimator::shard_copy`] given more than
/// one shard, from `op`.
pub(crate) fn cannot_be_split<T: Float>(op: &str, estimator: &dyn GradientEstimator<T>) -> Error {
    Error::invalid_argument(
        op,
        format!(
            "estimator {} keeps state between steps and cannot be split into shards \
             (GradientEstimator::shard_copy); use shards = 1",
            estimator.name()
        ),
    )
}

/// The step's fixed inputs, shared by every shard.
#[derive(Clone, Copy)]
pub(crate) struct StepInputs<'a, T: Float> {
    /// The model, read only.
    pub model: &'a DiscreteVae<T>,
    /// The estimator the shards copy.
    pub estimator: &'a dyn GradientEstimator<T>,
    /// The whole minibatch, `[B, D]`.
    pub batch: &'a Tensor<T>,
    /// The run's seed (for the shards' generators).
    pub seed: u64,
    /// The step's number (for the shards' generators).
    pub step: u64,
    /// Whether every parameter is known to be finite (the optimiser checked it as it
    /// wrote it), so the shards copy them onto their tapes without checking again.
    pub parameters_checked: bool,
}

impl<T: Float> Shards<T> {
    /// One step's loss and gradients with the batch cut into `count` shards: returns the
    /// mean of the shards' losses and writes the mean of their gradients into `mean`. An
    /// error of a shard (the first, in shard order) is returned as it is.
    pub(crate) fn step(
        &mut self,
        inputs: StepInputs<'_, T>,
        count: usize,
        mean: &mut Gradients<T>,
    ) -> Result<f64> {
        let StepInputs {
            model,
            estimator,
            batch,
            seed,
            step,
            parameters_checked,
        } = inputs;
        let rows = batch.rows() / count.max(1);
        if count == 0 || rows * count != batch.rows() {
            return Err(Error::invalid_argument(
                "Trainer::step",
                format!("{} shards do not divide a batch of {}", count, batch.rows()),
            ));
        }
        self.images.resize_with(count, || Tensor::zeros(0, 0));
        self.grads
            .resize_with(count, || Gradients::from_tensors(Vec::new()));
        let width = batch.cols();
        for (shard, images) in self.images.iter_mut().enumerate() {
            let mut data = std::mem::replace(images, Tensor::zeros(0, 0)).into_vec();
            data.clear();
            data.extend_from_slice(&batch.as_slice()[shard * rows * width..][..rows * width]);
            *images = Tensor::from_vec(rows, width, data)?;
        }
        let copies = (0..count)
            .map(|_| {
                estimator
                    .shard_copy()
                    .ok_or_else(|| cannot_be_split("Trainer::step", estimator))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut losses: Vec<Option<Result<f64>>> = (0..count).map(|_| None).collect();
        let work = self
            .images
            .iter()
            .zip(self.grads.iter_mut())
            .zip(copies)
            .zip(losses.iter_mut())
            .enumerate();
        for_each_shared(work, |(shard, (((images, grads), mut estimator), loss))| {
            let mut rng = rng_for_shard(seed, step, shard as u64);
            *loss = Some(on_one_thread(|| {
                with_shard_tape(|tape: &mut Tape<T>| {
                    tape.clear();
                    let tape = &*tape;
                    let params = if parameters_checked {
                        model.parameters().bind_known_finite(tape)
                    } else {
                        model.parameters().bind(tape)
                    };
                    let x = tape.constant(images);
                    let terms = model.negative_elbo(&params, x, estimator.as_mut(), &mut rng);
                    let loss = tape
                        .backward(terms.loss)
                        .and_then(|()| terms.loss.with_value(|v| v.as_slice()[0].to_f64()));
                    params.take_gradients_into(grads);
                    loss
                })
            }));
        });
        let mut total = 0.0;
        for loss in losses {
            total += loss.expect("every shard ran")?;
        }
        mean.set_mean_of(&self.grads);
        Ok(total / count as f64)
    }
}
