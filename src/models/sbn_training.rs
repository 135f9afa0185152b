//! Training an [`Sbn`]: Adam on the single-sample cost, one estimator per stochastic
//! layer, every random number derived from `(seed, step)` as in
//! [`Trainer`](crate::models::Trainer).
//!
//! # Checkpoints
//! [`SbnTrainer::save_checkpoint`] writes one safetensors file, atomically, laid out as
//! the [VAE trainer's](crate::models::training#checkpoint-layout): tensors `model.*`
//! and `optim.*`, metadata `optimizer_steps`, `step`, `epoch`, `seed`,
//! `scheduled_temperature`, `model`, the settings `batch_size`, `learning_rate`,
//! `temperature` and (after an epoch) `train_images`, and the two layers' estimators:
//! names `estimator.first`, `estimator.second` and states under
//! `estimator.first.state.*`, `estimator.second.state.*`. Because every random number
//! derives from the seed and the counters, [`SbnTrainer::resume`] continues bit for bit:
//! an interrupted run resumed from its last checkpoint ends exactly where the
//! uninterrupted run does.

use std::path::Path;

use crate::data::{Minibatches, RowSource};
use crate::error::{Error, Result};
use crate::estimators::{Estimator, GradientEstimator, TemperatureSchedule};
use crate::float::Float;
use crate::io::Checkpoint;
use crate::models::sbn::{Sbn, SbnConfig};
use crate::models::seeds::{Stream, rng_for};
use crate::models::training::{
    expect_metadata, read_estimator_state, read_parameters_and_optimizer, write_estimator_state,
    write_parameters_and_optimizer,
};
use crate::optim::{Adam, Optimizer};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// How to train an SBN.
#[derive(Debug, Clone, PartialEq)]
pub struct SbnTrainConfig {
    /// Examples per minibatch.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// The temperature as a function of the step (the paper: constant 1; annealed only
    /// for "Annealed ST"). Ignored by estimators without a temperature.
    pub temperature: TemperatureSchedule,
    /// Estimator name for both layers, as accepted by [`Estimator::from_name`]
    /// (used by [`SbnTrainer::new`]; [`SbnTrainer::with_estimators`] ignores it).
    pub estimator: String,
    /// The seed every random number derives from.
    pub seed: u64,
}

/// A model, its optimiser, the two layers' estimators and the counters.
#[derive(Debug)]
pub struct SbnTrainer<T: Float> {
    model: Sbn<T>,
    optimizer: Adam<T>,
    first: Box<dyn GradientEstimator<T>>,
    second: Box<dyn GradientEstimator<T>>,
    config: SbnTrainConfig,
    step: u64,
    epoch: u64,
    tape: Tape<T>,
    /// The scheduled temperature last handed to the estimators.
    scheduled_temperature: f64,
    /// Training examples of the last epoch (recorded in checkpoints).
    train_images: Option<u64>,
    /// The checkpoint's number of training examples, checked by the first epoch after a
    /// resume.
    resumed_train_images: Option<u64>,
}

impl<T: Float> SbnTrainer<T> {
    /// A fresh run, the model initialised from `(seed, Init)`, both layers' estimators
    /// built from `config.estimator` by [`Estimator::from_name`].
    pub fn new(model_config: SbnConfig, config: SbnTrainConfig) -> Result<Self> {
        let temperature = config.temperature.at(0)?;
        let first = Estimator::from_name(&config.estimator, temperature)?;
        let second = Estimator::from_name(&config.estimator, temperature)?;
        Self::with_estimators(model_config, config, Box::new(first), Box::new(second))
    }

    /// A fresh run with any estimators, the crate's or your own (one per stochastic
    /// layer: each keeps its own state). Their temperature is set from
    /// `config.temperature` (those without one ignore it); each must suit the latent
    /// layer ([`Sbn::check_estimator`]).
    pub fn with_estimators(
        model_config: SbnConfig,
        config: SbnTrainConfig,
        mut first: Box<dyn GradientEstimator<T>>,
        mut second: Box<dyn GradientEstimator<T>>,
    ) -> Result<Self> {
        let model = Sbn::new(model_config, &mut rng_for(config.seed, Stream::Init, 0))?;
        let temperature = config.temperature.at(0)?;
        first.set_temperature(temperature)?;
        second.set_temperature(temperature)?;
        model.check_estimator(first.as_ref())?;
        model.check_estimator(second.as_ref())?;
        if config.batch_size == 0 {
            return Err(Error::invalid_argument(
                "SbnTrainer::new",
                "batch size must be > 0",
            ));
        }
        Ok(SbnTrainer {
            model,
            optimizer: Adam::new(config.learning_rate),
            first,
            second,
            config,
            step: 0,
            epoch: 0,
            tape: Tape::new(),
            scheduled_temperature: temperature,
            train_images: None,
            resumed_train_images: None,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &Sbn<T> {
        &self.model
    }

    /// The two layers' estimators (with their state: baselines, tuned temperatures).
    pub fn estimators(&self) -> (&dyn GradientEstimator<T>, &dyn GradientEstimator<T>) {
        (self.first.as_ref(), self.second.as_ref())
    }

    /// Steps completed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Epochs completed.
    pub fn epochs(&self) -> u64 {
        self.epoch
    }

    /// One step on the given rows of the two halves; returns the batch's mean cost
    /// `-log p(x_lower | h)` at the sampled `h`.
    pub fn step<S: RowSource<T> + ?Sized>(
        &mut self,
        upper: &S,
        lower: &S,
        batch: &[usize],
    ) -> Result<f64> {
        let next_step = crate::error::next_step(self.step, "SbnTrainer::step")?;
        // Only when the schedule moves: REBAR and RELAX tune their own temperature, which
        // setting it every step would undo.
        let temperature = self.config.temperature.at(self.step)?;
        if temperature != self.scheduled_temperature {
            self.first.set_temperature(temperature)?;
            self.second.set_temperature(temperature)?;
            self.scheduled_temperature = temperature;
        }
        let mut rng = rng_for(self.config.seed, Stream::Step, self.step);
        let up = gather(upper, batch)?;
        let low = gather(lower, batch)?;
        self.tape.clear();
        let tape = &self.tape;
        let params = self.model.parameters().bind(tape);
        let (up, low) = (tape.constant(&up), tape.constant(&low));
        let terms = self.model.training_cost(
            &params,
            up,
            low,
            self.first.as_mut(),
            self.second.as_mut(),
            &mut rng,
        );
        tape.backward(terms.loss)?;
        let loss = terms.loss.scalar()?.to_f64();
        let grads = params.gradients();
        drop(params);
        self.optimizer.step(self.model.parameters_mut(), &grads)?;
        self.step = next_step;
        Ok(loss)
    }

    /// One shuffled pass (order from `(seed, epoch)`); returns the mean training cost.
    /// `on_step(step, cost)` is called after every step.
    pub fn train_epoch<S: RowSource<T> + ?Sized>(
        &mut self,
        upper: &S,
        lower: &S,
        mut on_step: impl FnMut(u64, f64),
    ) -> Result<f64> {
        let rows = upper.num_rows() as u64;
        if let Some(recorded) = self.resumed_train_images.filter(|&n| n != rows) {
            return Err(Error::invalid_argument(
                "SbnTrainer::train_epoch",
                format!(
                    "this run trained on {recorded} examples per epoch; given {rows} (a resumed \
                     run must see the same training set)"
                ),
            ));
        }
        let order = Minibatches::for_epoch(
            upper.num_rows(),
            self.config.batch_size,
            true,
            self.config.seed,
            self.epoch,
        )?;
        let mut total = 0.0;
        let mut count = 0usize;
        for batch in order.iter() {
            if batch.len() < self.config.batch_size {
                continue; // drop a last partial batch, as the VAE trainer does
            }
            let loss = self.step(upper, lower, batch)?;
            total += loss;
            count += 1;
            on_step(self.step, loss);
        }
        if count == 0 {
            return Err(Error::invalid_argument(
                "SbnTrainer::train_epoch",
                format!(
                    "{} examples do not fill one batch of {}",
                    upper.num_rows(),
                    self.config.batch_size
                ),
            ));
        }
        self.epoch += 1;
        self.train_images = Some(rows);
        self.resumed_train_images = None;
        Ok(total / count as f64)
    }

    /// Saves parameters, Adam's state, the counters and both estimators' states,
    /// atomically (layout in the [module documentation](self#checkpoints)).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut checkpoint = Checkpoint::<T>::new();
        write_parameters_and_optimizer(&mut checkpoint, self.model.parameters(), &self.optimizer);
        checkpoint.set_u64("step", self.step);
        checkpoint.set_u64("epoch", self.epoch);
        checkpoint.set_u64("seed", self.config.seed);
        checkpoint.set_f64("scheduled_temperature", self.scheduled_temperature);
        checkpoint.set("model", format!("{:?}", self.model.config()));
        for (key, value) in recorded_settings(&self.config) {
            checkpoint.set(key, value);
        }
        if let Some(images) = self.train_images {
            checkpoint.set_u64("train_images", images);
        }
        for (layer, estimator) in [("first", &self.first), ("second", &self.second)] {
            checkpoint.set(format!("estimator.{layer}"), estimator.name());
            write_estimator_state(
                &mut checkpoint,
                &format!("estimator.{layer}.state."),
                estimator.as_ref(),
            );
        }
        checkpoint.save(path)
    }

    /// Continues a run from a checkpoint written by [`SbnTrainer::save_checkpoint`], both
    /// layers' estimators built from `config.estimator` (see
    /// [`SbnTrainer::resume_with_estimators`]).
    pub fn resume(
        path: impl AsRef<Path>,
        model_config: SbnConfig,
        config: SbnTrainConfig,
    ) -> Result<Self> {
        let temperature = config.temperature.at(0)?;
        let first = Estimator::from_name(&config.estimator, temperature)?;
        let second = Estimator::from_name(&config.estimator, temperature)?;
        Self::resume_with_estimators(
            path,
            model_config,
            config,
            Box::new(first),
            Box::new(second),
        )
    }

    /// Continues a run from a checkpoint written by [`SbnTrainer::save_checkpoint`], with
    /// fresh estimators configured as the ones that wrote it (their state is loaded from
    /// the file). The model's sizes, the seed, the estimators' names and the settings
    /// (batch size, learning rate, temperature schedule) must match the file's, else an
    /// [`Error::BadFile`] naming the key; the number of training examples is checked at
    /// the next [`train_epoch`](Self::train_epoch).
    pub fn resume_with_estimators(
        path: impl AsRef<Path>,
        model_config: SbnConfig,
        config: SbnTrainConfig,
        first: Box<dyn GradientEstimator<T>>,
        second: Box<dyn GradientEstimator<T>>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::<T>::load(path)?;
        let mut trainer = Self::with_estimators(model_config, config, first, second)?;
        let expect = |key: &str, ours: String| expect_metadata(&checkpoint, path, key, &ours);
        expect("model", format!("{:?}", trainer.model.config()))?;
        expect("seed", trainer.config.seed.to_string())?;
        expect("estimator.first", trainer.first.name().to_string())?;
        expect("estimator.second", trainer.second.name().to_string())?;
        for (key, ours) in recorded_settings(&trainer.config) {
            expect(key, ours)?;
        }
        read_parameters_and_optimizer(
            &checkpoint,
            trainer.model.parameters_mut(),
            &mut trainer.optimizer,
        )?;
        trainer.step = checkpoint.u64("step")?;
        trainer.epoch = checkpoint.u64("epoch")?;
        if checkpoint.metadata().contains_key("train_images") {
            let images = checkpoint.u64("train_images")?;
            trainer.train_images = Some(images);
            trainer.resumed_train_images = Some(images);
        }
        let temperature = checkpoint.f64("scheduled_temperature")?;
        trainer.first.set_temperature(temperature)?;
        trainer.second.set_temperature(temperature)?;
        trainer.scheduled_temperature = temperature;
        for (layer, estimator) in [
            ("first", &mut trainer.first),
            ("second", &mut trainer.second),
        ] {
            let state = read_estimator_state(&checkpoint, &format!("estimator.{layer}.state."))?;
            estimator
                .load_state(&state)
                .map_err(|e| Error::bad_file(path, format!("{layer} estimator's state: {e}")))?;
        }
        Ok(trainer)
    }
}

/// The settings a checkpoint records and a resumed run must match: key and value.
fn recorded_settings(config: &SbnTrainConfig) -> [(&'static str, String); 3] {
    [
        ("batch_size", config.batch_size.to_string()),
        ("learning_rate", format!("{:?}", config.learning_rate)),
        ("temperature", format!("{:?}", config.temperature)),
    ]
}

/// The rows `batch` of `source` as a tensor; an index out of range is an error.
fn gather<T: Float, S: RowSource<T> + ?Sized>(source: &S, batch: &[usize]) -> Result<Tensor<T>> {
    let mut data = Vec::with_capacity(batch.len() * source.num_cols());
    source.append_rows(batch, &mut data)?;
    Tensor::from_vec(batch.len(), source.num_cols(), data)
}
