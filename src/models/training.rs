//! Training a [`DiscreteVae`]: the loop, the schedules, and checkpoints that resume
//! bit for bit.
//!
//! One step: draw a minibatch (the epoch's shuffle comes from `(seed, epoch)`,
//! see [`Minibatches::for_epoch`]), set the
//! temperature and learning rate for this step from their schedules, record the
//! negative ELBO on the tape with the chosen estimator (its noise comes from
//! `(seed, step)`), backpropagate, and let Adam update the parameters. Because every
//! random number is derived from the seed and a counter, a checkpoint needs only the
//! parameters, Adam's moments and the counters to continue exactly where it stopped.

use std::path::Path;

use rand::Rng;

use crate::data::{Minibatches, RowSource};
use crate::error::{Error, Result};
use crate::estimators::{Estimator, TemperatureSchedule};
use crate::float::Float;
use crate::io::Checkpoint;
use crate::models::discrete_vae::{DiscreteVae, VaeConfig};
use crate::models::seeds::{Stream, rng_for};
use crate::nn::Gradients;
use crate::optim::{Adam, LearningRateSchedule, Optimizer, OptimizerState};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Examples per minibatch (the paper's notebook uses 100).
    pub batch_size: usize,
    /// Adam's learning rate as a function of the step.
    pub learning_rate: LearningRateSchedule,
    /// The temperature as a function of the step (ignored by estimators without one).
    pub temperature: TemperatureSchedule,
    /// Estimator name, as accepted by [`Estimator::from_name`].
    pub estimator: String,
    /// Resample binary pixels from grey levels at every step (dynamic binarisation);
    /// off for data that is already binary.
    pub dynamic_binarization: bool,
    /// The seed every random number of the run derives from.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The paper's categorical-VAE protocol: batch 100, Adam 1e-3, Gumbel-Softmax with
    /// `tau = max(0.5, exp(-3e-5 t))` updated every 1000 steps.
    fn default() -> Self {
        TrainConfig {
            batch_size: 100,
            learning_rate: LearningRateSchedule::Constant(1e-3),
            temperature: TemperatureSchedule::exponential(1.0, 3e-5, 1000, 0.5)
                .expect("valid default schedule"),
            estimator: "gumbel-softmax".to_string(),
            dynamic_binarization: false,
            seed: 0,
        }
    }
}

/// What one training step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Steps completed, this one included.
    pub step: u64,
    /// The minibatch's mean training loss (negative ELBO with the training sample).
    pub loss: f64,
    /// The temperature used.
    pub temperature: f64,
    /// The learning rate used.
    pub learning_rate: f64,
}

/// What one epoch reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// Epochs completed, this one included.
    pub epoch: u64,
    /// Mean training loss over the epoch's minibatches.
    pub mean_loss: f64,
    /// Steps completed so far.
    pub steps: u64,
    /// The temperature at the epoch's last step.
    pub temperature: f64,
}

/// A model, its optimiser and estimator, and the counters of a run.
#[derive(Debug)]
pub struct Trainer<T: Float> {
    model: DiscreteVae<T>,
    optimizer: Adam<T>,
    estimator: Estimator<T>,
    config: TrainConfig,
    step: u64,
    epoch: u64,
    // Buffers reused from step to step, so a warm training loop barely allocates.
    tape: Tape<T>,
    batch: Tensor<T>,
    grads: Gradients<T>,
    // The temperature last handed to the estimator by the schedule.
    scheduled_temperature: Option<f64>,
}

impl<T: Float> Trainer<T> {
    /// A fresh run: the model is initialised from `(config.seed, Init)`.
    pub fn new(model_config: VaeConfig, config: TrainConfig) -> Result<Self> {
        let model = DiscreteVae::new(model_config, &mut rng_for(config.seed, Stream::Init, 0))?;
        let estimator = Estimator::from_name(&config.estimator, config.temperature.at(0)?)?;
        model.check_estimator(&estimator)?;
        if config.batch_size == 0 {
            return Err(Error::invalid_argument(
                "Trainer::new",
                "batch size must be > 0",
            ));
        }
        Ok(Trainer {
            model,
            optimizer: Adam::new(config.learning_rate.rate_at(0)),
            estimator,
            config,
            step: 0,
            epoch: 0,
            tape: Tape::new(),
            batch: Tensor::zeros(0, 0),
            grads: Gradients::from_tensors(Vec::new()),
            scheduled_temperature: None,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &DiscreteVae<T> {
        &self.model
    }

    /// The estimator, with whatever state it keeps (a tuned temperature, a baseline).
    pub fn estimator(&self) -> &Estimator<T> {
        &self.estimator
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps completed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Epochs completed.
    pub fn epochs(&self) -> u64 {
        self.epoch
    }

    /// The temperature the schedule gives for the next step.
    pub fn temperature(&self) -> Result<f64> {
        self.config.temperature.at(self.step)
    }

    /// The temperature of the last step taken (of step 0 before any).
    pub fn last_temperature(&self) -> Result<f64> {
        self.config.temperature.at(self.step.saturating_sub(1))
    }

    /// Number of full minibatches in an epoch over `images` (a last partial batch is
    /// dropped, as the reference implementations do).
    pub fn steps_per_epoch(&self, images: &(impl RowSource<T> + ?Sized)) -> u64 {
        (images.num_rows() / self.config.batch_size) as u64
    }

    /// One training step on the given rows of `images` (a [`Tensor`] or byte
    /// [`Pixels`](crate::data::Pixels), converted a minibatch at a time).
    pub fn step(
        &mut self,
        images: &(impl RowSource<T> + ?Sized),
        rows: &[usize],
    ) -> Result<StepReport> {
        let next_step = crate::error::next_step(self.step, "Trainer::step")?;
        let temperature = self.config.temperature.at(self.step)?;
        let learning_rate = self.config.learning_rate.rate_at(self.step);
        // Only when the schedule moves: REBAR and RELAX tune their own temperature
        // between those moves, and setting it every step would undo their tuning.
        if self.scheduled_temperature != Some(temperature) {
            self.estimator.set_temperature(temperature)?;
            self.scheduled_temperature = Some(temperature);
        }
        self.optimizer.set_learning_rate(learning_rate);
        let mut rng = rng_for(self.config.seed, Stream::Step, self.step);
        gather_rows(
            images,
            rows,
            self.config.dynamic_binarization,
            &mut rng,
            &mut self.batch,
        )?;

        self.tape.clear();
        let tape = &self.tape;
        let params = self.model.parameters().bind(tape);
        let x = tape.constant(&self.batch);
        let terms = self
            .model
            .negative_elbo(&params, x, &mut self.estimator, &mut rng);
        tape.backward(terms.loss)?;
        let loss = terms.loss.with_value(|v| v.as_slice()[0].to_f64())?;
        params.take_gradients_into(&mut self.grads);
        drop(params);
        self.optimizer
            .step(self.model.parameters_mut(), &self.grads)?;
        self.step = next_step;
        Ok(StepReport {
            step: self.step,
            loss,
            temperature,
            learning_rate,
        })
    }

    /// One pass over `images` in a shuffled order drawn from `(seed, epoch)`, calling
    /// `on_step` after every step (for progress bars).
    pub fn train_epoch(
        &mut self,
        images: &(impl RowSource<T> + ?Sized),
        mut on_step: impl FnMut(&StepReport),
    ) -> Result<EpochReport> {
        let batches = self.steps_per_epoch(images);
        if batches == 0 {
            return Err(Error::invalid_argument(
                "Trainer::train_epoch",
                format!(
                    "{} images do not fill one batch of {}",
                    images.num_rows(),
                    self.config.batch_size
                ),
            ));
        }
        let order = Minibatches::for_epoch(
            images.num_rows(),
            self.config.batch_size,
            true,
            self.config.seed,
            self.epoch,
        )?;
        let mut total = 0.0;
        let mut temperature = self.temperature()?;
        for batch in order.iter() {
            let report = self.step(images, batch)?;
            total += report.loss;
            temperature = report.temperature;
            on_step(&report);
        }
        self.epoch += 1;
        Ok(EpochReport {
            epoch: self.epoch,
            mean_loss: total / batches as f64,
            steps: self.step,
            temperature,
        })
    }

    /// Saves parameters, Adam's state and the counters, atomically, to a safetensors
    /// file (parameters under their own names, Adam's moments as `adam.m.<name>` and
    /// `adam.v.<name>`).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut checkpoint = Checkpoint::<T>::new();
        checkpoint.extend(
            self.model
                .parameters()
                .iter()
                .map(|(name, tensor)| (name.to_string(), tensor.clone())),
        );
        let state = self.optimizer.state(self.model.parameters());
        checkpoint.extend(state.tensors);
        checkpoint.set_u64("optimizer_steps", state.steps);
        checkpoint.set_u64("step", self.step);
        checkpoint.set_u64("epoch", self.epoch);
        checkpoint.set_u64("seed", self.config.seed);
        checkpoint.set("estimator", self.config.estimator.clone());
        checkpoint.set("model", format!("{:?}", self.model.config()));
        checkpoint.save(path)
    }

    /// Continues a run from a checkpoint written by [`Trainer::save_checkpoint`].
    /// `model_config` and `config` must describe the same run (the model's sizes, the
    /// seed and the estimator are checked against the file).
    pub fn resume(
        path: impl AsRef<Path>,
        model_config: VaeConfig,
        config: TrainConfig,
    ) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::<T>::load(path)?;
        let mut trainer = Trainer::new(model_config, config)?;
        let expect = |key: &str, ours: String| -> Result<()> {
            let theirs = checkpoint.get(key)?;
            if theirs != ours {
                return Err(Error::bad_file(
                    path,
                    format!("checkpoint has {key} = {theirs}, this run has {ours}"),
                ));
            }
            Ok(())
        };
        expect("model", format!("{:?}", trainer.model.config()))?;
        expect("estimator", trainer.config.estimator.clone())?;
        expect("seed", trainer.config.seed.to_string())?;
        let names: Vec<String> = trainer
            .model
            .parameters()
            .names()
            .map(str::to_string)
            .collect();
        for name in &names {
            trainer
                .model
                .parameters_mut()
                .set(name, checkpoint.tensor(name)?.clone())?;
        }
        let state = OptimizerState {
            steps: checkpoint.u64("optimizer_steps")?,
            tensors: checkpoint
                .tensors()
                .iter()
                .filter(|(name, _)| !names.contains(name))
                .cloned()
                .collect(),
        };
        trainer
            .optimizer
            .load_state(trainer.model.parameters(), &state)?;
        trainer.step = checkpoint.u64("step")?;
        trainer.epoch = checkpoint.u64("epoch")?;
        Ok(trainer)
    }
}

/// Copies the chosen rows into `batch` (reusing its buffer); with `binarize`, each
/// pixel becomes 1 with probability equal to its grey level.
fn gather_rows<T: Float, R: Rng + ?Sized>(
    images: &(impl RowSource<T> + ?Sized),
    rows: &[usize],
    binarize: bool,
    rng: &mut R,
    batch: &mut Tensor<T>,
) -> Result<()> {
    let mut data = std::mem::replace(batch, Tensor::zeros(0, 0)).into_vec();
    data.clear();
    images.append_rows(rows, &mut data)?;
    if binarize {
        for pixel in &mut data {
            *pixel = if rng.random::<f64>() < pixel.to_f64() {
                T::ONE
            } else {
                T::ZERO
            };
        }
    }
    *batch = Tensor::from_vec(rows.len(), images.num_cols(), data)?;
    Ok(())
}
