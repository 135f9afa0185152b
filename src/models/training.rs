//! Training a [`DiscreteVae`]: the loop, the schedules, and checkpoints that resume
//! bit for bit.
//!
//! One step: draw a minibatch (the epoch's shuffle comes from `(seed, epoch)`,
//! see [`Minibatches::for_epoch`]), set the
//! temperature and learning rate for this step from their schedules, record the
//! negative ELBO on the tape with the chosen estimator (its noise comes from
//! `(seed, step)`), backpropagate, and let Adam update the parameters. Because every
//! random number is derived from the seed and a counter, a checkpoint needs only the
//! parameters, Adam's moments, the counters and the estimator's own state (baselines,
//! tuned temperatures, learned networks: [`GradientEstimator::save_state`]) to continue
//! exactly where it stopped.
//!
//! With [`TrainConfig::shards`] above 1 the minibatch is cut into shards, each recorded
//! on its own tape with its own noise, and the step averages their gradients (data
//! parallelism; see `models/data_parallel.rs`).
//!
//! # Checkpoint layout
//! One safetensors file ([`Checkpoint`]):
//!
//! | where | what |
//! |---|---|
//! | tensors `model.<parameter>` | the model's weights (`model.encoder.0.weight`, ...) |
//! | tensors `optim.adam.m.<parameter>`, `optim.adam.v.<parameter>` | Adam's moments |
//! | metadata `optimizer_steps`, `step`, `epoch`, `seed`, `scheduled_temperature` | counters (exact) |
//! | metadata `model`, `estimator` | the model's configuration and the estimator's name, checked on resume |
//! | metadata `batch_size`, `learning_rate`, `temperature`, `dynamic_binarization`, `shards`, `train_images`, `steps_per_epoch` | the training settings, checked on resume unless [`ResumeOptions::allow_changed_settings`] |
//! | metadata `estimator.<key>` | the estimator's state, `f64` scalars and tensors stored bit for bit |
//! | metadata `gumbelgrad` | JSON for other programs: the model ([`DiscreteVae::description`]: kind, layer sizes, activations, latent shape), the estimator and its temperature, the counters, and which tensor prefixes hold what |
//!
//! Model weights, optimiser moments and estimator state never share a prefix, so a
//! program that only wants the model reads `model.*` and the `gumbelgrad` JSON
//! (`interop/torch_vae.py` rebuilds the VAE in PyTorch that way).

use std::path::Path;

use rand::{Rng, RngCore};

use crate::data::{Minibatches, RowSource};
use crate::error::{Error, Result};
use crate::estimators::{
    Estimator, EstimatorState, GradientEstimator, StateValue, TemperatureSchedule,
};
use crate::float::Float;
use crate::io::Checkpoint;
use crate::io::json::Json;
use crate::models::data_parallel::{Shards, StepInputs, cannot_be_split};
use crate::models::discrete_vae::{DiscreteVae, VaeConfig};
use crate::models::seeds::{Stream, rng_for};
use crate::nn::{Gradients, Parameters};
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
    /// Estimator name, as accepted by [`Estimator::from_name`] (used by
    /// [`Trainer::new`]; [`Trainer::with_estimator`] ignores it).
    pub estimator: String,
    /// Resample binary pixels from grey levels at every step (dynamic binarisation);
    /// off for data that is already binary.
    pub dynamic_binarization: bool,
    /// The seed every random number of the run derives from.
    pub seed: u64,
    /// Shards each minibatch is cut into (data parallelism, see
    /// `models/data_parallel.rs`): each shard of `batch_size / shards` examples is
    /// recorded on its own tape with its own copy of the estimator, on whichever thread
    /// is free, and the step averages their gradients. 1 (the default) records the
    /// whole minibatch on one tape. The result depends on the number of shards (the
    /// batch's sums are grouped per shard, and each shard draws its own noise) but never
    /// on the number of threads. It must divide `batch_size`, and above 1 the estimator
    /// must provide [`GradientEstimator::shard_copy`] (those without state between
    /// steps do). Use at least as many shards as threads.
    pub shards: usize,
}

impl Default for TrainConfig {
    /// The paper's categorical-VAE protocol: batch 100, Adam 1e-3, Gumbel-Softmax with
    /// `tau = max(0.5, exp(-3e-5 t))` updated every 1000 steps; one shard.
    fn default() -> Self {
        TrainConfig {
            batch_size: 100,
            learning_rate: LearningRateSchedule::Constant(1e-3),
            temperature: TemperatureSchedule::exponential(1.0, 3e-5, 1000, 0.5)
                .expect("valid default schedule"),
            estimator: "gumbel-softmax".to_string(),
            dynamic_binarization: false,
            seed: 0,
            shards: 1,
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

/// Options of [`Trainer::resume_with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumeOptions {
    /// Resume even if a setting that changes the result (batch size, learning rate,
    /// temperature schedule, binarisation, number of training images) differs from the
    /// checkpoint's. Off by default: a difference is an [`Error::BadFile`] naming the
    /// key, the file's value and the run's.
    pub allow_changed_settings: bool,
}

/// The settings a checkpoint records and a resumed run must match (unless
/// [`ResumeOptions::allow_changed_settings`]): key, this run's value, and the value a
/// checkpoint written before the key existed implies (`None`: unknown, not checked).
fn recorded_settings(config: &TrainConfig) -> [(&'static str, String, Option<&'static str>); 5] {
    [
        ("batch_size", config.batch_size.to_string(), None),
        ("learning_rate", format!("{:?}", config.learning_rate), None),
        ("temperature", format!("{:?}", config.temperature), None),
        (
            "dynamic_binarization",
            config.dynamic_binarization.to_string(),
            None,
        ),
        // Runs before data parallelism had one shard.
        ("shards", config.shards.to_string(), Some("1")),
    ]
}

/// The data-set check a resumed run makes at its first epoch: the checkpoint's number
/// of training images, the file it came from, and whether a change is allowed.
#[derive(Debug, Clone)]
struct ResumedData {
    path: std::path::PathBuf,
    train_images: u64,
    allow_changed_settings: bool,
}

/// A model, its optimiser and estimator, and the counters of a run.
///
/// Any estimator trains it: [`Trainer::new`] builds one of the crate's by name,
/// [`Trainer::with_estimator`] takes any boxed [`GradientEstimator`], yours included.
#[derive(Debug)]
pub struct Trainer<T: Float> {
    model: DiscreteVae<T>,
    optimizer: Adam<T>,
    estimator: Box<dyn GradientEstimator<T>>,
    config: TrainConfig,
    step: u64,
    epoch: u64,
    // Buffers reused from step to step, so a warm training loop barely allocates.
    tape: Tape<T>,
    batch: Tensor<T>,
    grads: Gradients<T>,
    // The temperature last handed to the estimator by the schedule.
    scheduled_temperature: Option<f64>,
    // Each shard's images and gradients, when `config.shards > 1`.
    shards: Shards<T>,
    // Training images of the last epoch (recorded in checkpoints).
    train_images: Option<u64>,
    // Checked at the first epoch after a resume.
    resumed_data: Option<ResumedData>,
    // Whether the last optimiser step checked every parameter it wrote and found it
    // finite, so the next step need not read them all again to check them as tape inputs.
    parameters_checked: bool,
}

impl<T: Float> Trainer<T> {
    /// A fresh run: the model is initialised from `(config.seed, Init)`, the estimator
    /// built from `config.estimator` by [`Estimator::from_name`].
    pub fn new(model_config: VaeConfig, config: TrainConfig) -> Result<Self> {
        let estimator = Estimator::from_name(&config.estimator, config.temperature.at(0)?)?;
        Self::with_estimator(model_config, config, Box::new(estimator))
    }

    /// A fresh run with any estimator, the crate's or your own. Its temperature is set
    /// from `config.temperature` (estimators without one ignore it), it must suit the
    /// latent layer ([`DiscreteVae::check_estimator`]), and `config.estimator` is
    /// ignored (checkpoints record [`GradientEstimator::name`]).
    pub fn with_estimator(
        model_config: VaeConfig,
        config: TrainConfig,
        mut estimator: Box<dyn GradientEstimator<T>>,
    ) -> Result<Self> {
        let model = DiscreteVae::new(model_config, &mut rng_for(config.seed, Stream::Init, 0))?;
        estimator.set_temperature(config.temperature.at(0)?)?;
        model.check_estimator(estimator.as_ref())?;
        if config.batch_size == 0 {
            return Err(Error::invalid_argument(
                "Trainer::new",
                "batch size must be > 0",
            ));
        }
        if config.shards == 0 || !config.batch_size.is_multiple_of(config.shards) {
            return Err(Error::invalid_argument(
                "Trainer::new",
                format!(
                    "shards must be >= 1 and divide the batch size ({} shards, batch {})",
                    config.shards, config.batch_size
                ),
            ));
        }
        if config.shards > 1 && estimator.shard_copy().is_none() {
            return Err(cannot_be_split("Trainer::new", estimator.as_ref()));
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
            shards: Shards::default(),
            scheduled_temperature: None,
            train_images: None,
            resumed_data: None,
            parameters_checked: false,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &DiscreteVae<T> {
        &self.model
    }

    /// The estimator, with whatever state it keeps (a tuned temperature, a baseline).
    pub fn estimator(&self) -> &dyn GradientEstimator<T> {
        self.estimator.as_ref()
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

        let loss = if self.config.shards > 1 {
            let inputs = StepInputs {
                model: &self.model,
                estimator: self.estimator.as_ref(),
                batch: &self.batch,
                seed: self.config.seed,
                step: self.step,
                parameters_checked: self.parameters_checked,
            };
            self.shards
                .step(inputs, self.config.shards, &mut self.grads)?
        } else {
            self.one_tape_loss(&mut rng)?
        };
        // Adam checks each parameter as it writes it (an error names one that became
        // NaN or infinite).
        self.parameters_checked = false;
        self.optimizer
            .step(self.model.parameters_mut(), &self.grads)?;
        self.parameters_checked = true;
        self.step = next_step;
        Ok(StepReport {
            step: self.step,
            loss,
            temperature,
            learning_rate,
        })
    }

    /// The gradients of the last step, as the optimiser received them (empty before
    /// the first step): one per parameter, in the model's order.
    pub fn gradients(&self) -> &Gradients<T> {
        &self.grads
    }

    /// The minibatch's loss on the trainer's one tape, its gradients left in `grads`.
    fn one_tape_loss(&mut self, rng: &mut impl RngCore) -> Result<f64> {
        self.tape.clear();
        let tape = &self.tape;
        // The parameters are moved onto the tape, not copied, and given back below
        // before anything can return.
        let params = if self.parameters_checked {
            self.model.parameters_mut().bind_moved_known_finite(tape)
        } else {
            self.model.parameters_mut().bind_moved(tape)
        };
        let x = tape.constant(&self.batch);
        let terms = self
            .model
            .negative_elbo(&params, x, self.estimator.as_mut(), rng);
        let loss = tape
            .backward(terms.loss)
            .and_then(|()| terms.loss.with_value(|v| v.as_slice()[0].to_f64()));
        params.take_gradients_into(&mut self.grads);
        params.restore_into(self.model.parameters_mut());
        loss
    }

    /// One pass over `images` in a shuffled order drawn from `(seed, epoch)`, calling
    /// `on_step` after every step (for progress bars).
    pub fn train_epoch(
        &mut self,
        images: &(impl RowSource<T> + ?Sized),
        mut on_step: impl FnMut(&StepReport),
    ) -> Result<EpochReport> {
        if let Some(resumed) = self.resumed_data.take() {
            let ours = images.num_rows() as u64;
            if ours != resumed.train_images && !resumed.allow_changed_settings {
                let error = Error::bad_file(
                    &resumed.path,
                    format!(
                        "checkpoint has train_images = {}, this run has {ours} \
                         (allow changed settings to resume anyway)",
                        resumed.train_images
                    ),
                );
                self.resumed_data = Some(resumed);
                return Err(error);
            }
        }
        self.train_images = Some(images.num_rows() as u64);
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

    /// Saves parameters, Adam's state, the counters and the estimator's state,
    /// atomically, to a safetensors file laid out as the [module
    /// documentation](self#checkpoint-layout) says.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut checkpoint = Checkpoint::<T>::new();
        write_parameters_and_optimizer(&mut checkpoint, self.model.parameters(), &self.optimizer);
        checkpoint.set_u64("step", self.step);
        checkpoint.set_u64("epoch", self.epoch);
        checkpoint.set_u64("seed", self.config.seed);
        if let Some(t) = self.scheduled_temperature {
            checkpoint.set_f64("scheduled_temperature", t);
        }
        checkpoint.set("estimator", self.estimator.name());
        checkpoint.set("model", format!("{:?}", self.model.config()));
        write_estimator_state(&mut checkpoint, ESTIMATOR_PREFIX, self.estimator.as_ref());
        for (key, value, _) in recorded_settings(&self.config) {
            checkpoint.set(key, value);
        }
        if let Some(images) = self.train_images {
            checkpoint.set_u64("train_images", images);
            checkpoint.set_u64("steps_per_epoch", images / self.config.batch_size as u64);
        }
        checkpoint.set(DESCRIPTION_KEY, self.description().to_string());
        checkpoint.save(path)
    }

    /// What [`Trainer::save_checkpoint`] stores under the metadata key `gumbelgrad`: a
    /// JSON object with `format` (`"gumbelgrad-checkpoint"`), `version` (1), `model`
    /// ([`DiscreteVae::description`]), `estimator` (`name`, `temperature` or `null`),
    /// `step`, `epoch`, `seed`, and `tensors` (the prefix of each kind of tensor and the
    /// weight layout).
    pub fn description(&self) -> Json {
        let prefixes = Json::Object(vec![
            ("model".into(), Json::string(MODEL_PREFIX)),
            ("optimiser".into(), Json::string(OPTIM_PREFIX)),
            (
                "estimator_state".into(),
                Json::string(format!("metadata {ESTIMATOR_PREFIX}")),
            ),
            (
                "linear_weight".into(),
                Json::string("[in, out], y = x W + b: the transpose of torch.nn.Linear.weight"),
            ),
            ("linear_bias".into(), Json::string("[1, out]")),
        ]);
        let estimator = Json::Object(vec![
            ("name".into(), Json::string(self.estimator.name())),
            (
                "temperature".into(),
                self.estimator
                    .temperature()
                    .map_or(Json::Null, Json::from_f64),
            ),
        ]);
        Json::Object(vec![
            ("format".into(), Json::string("gumbelgrad-checkpoint")),
            ("version".into(), Json::from_u64(1)),
            ("model".into(), self.model.description()),
            ("estimator".into(), estimator),
            ("step".into(), Json::from_u64(self.step)),
            ("epoch".into(), Json::from_u64(self.epoch)),
            ("seed".into(), Json::from_u64(self.config.seed)),
            ("tensors".into(), prefixes),
        ])
    }

    /// Continues a run from a checkpoint written by [`Trainer::save_checkpoint`], with
    /// the estimator built from `config.estimator` (see [`Trainer::resume_with_estimator`]).
    pub fn resume(
        path: impl AsRef<Path>,
        model_config: VaeConfig,
        config: TrainConfig,
    ) -> Result<Self> {
        let estimator = Estimator::from_name(&config.estimator, config.temperature.at(0)?)?;
        Self::resume_with_estimator(path, model_config, config, Box::new(estimator))
    }

    /// Continues a run from a checkpoint written by [`Trainer::save_checkpoint`], with a
    /// fresh `estimator` of the same configuration as the one that wrote it: its state
    /// is loaded from the file ([`GradientEstimator::load_state`]). `model_config` and
    /// `config` must describe the same run: the model's sizes, the seed and the
    /// estimator's name are checked against the file (a mismatch is
    /// [`Error::BadFile`]).
    ///
    /// The training settings the file records (batch size, learning-rate and
    /// temperature schedules, binarisation, and the number of training images, checked
    /// at the first [`train_epoch`](Self::train_epoch)) must match too; see
    /// [`Trainer::resume_with_options`] to allow a change.
    pub fn resume_with_estimator(
        path: impl AsRef<Path>,
        model_config: VaeConfig,
        config: TrainConfig,
        estimator: Box<dyn GradientEstimator<T>>,
    ) -> Result<Self> {
        Self::resume_with_options(
            path,
            model_config,
            config,
            estimator,
            ResumeOptions::default(),
        )
    }

    /// [`Trainer::resume_with_estimator`] with options: with
    /// [`ResumeOptions::allow_changed_settings`], a training setting that differs from
    /// the checkpoint's is taken from `config` instead of being an error (the model's
    /// sizes, the estimator and the seed must still match).
    pub fn resume_with_options(
        path: impl AsRef<Path>,
        model_config: VaeConfig,
        config: TrainConfig,
        estimator: Box<dyn GradientEstimator<T>>,
        options: ResumeOptions,
    ) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::<T>::load(path)?;
        let mut trainer = Trainer::with_estimator(model_config, config, estimator)?;
        let expect = |key: &str, ours: String| expect_metadata(&checkpoint, path, key, &ours);
        expect("model", format!("{:?}", trainer.model.config()))?;
        expect("estimator", trainer.estimator.name().to_string())?;
        expect("seed", trainer.config.seed.to_string())?;
        // Checkpoints written before a key existed are checked against the value the
        // key's absence implies, if any.
        for (key, ours, implied) in recorded_settings(&trainer.config) {
            if options.allow_changed_settings {
                continue;
            }
            if checkpoint.metadata().contains_key(key) {
                expect(key, ours)?;
            } else if let Some(implied) = implied
                && implied != ours
            {
                return Err(Error::bad_file(
                    path,
                    format!("checkpoint has no {key} (so {key} = {implied}), this run has {ours}"),
                ));
            }
        }
        if checkpoint.metadata().contains_key("train_images") {
            let train_images = checkpoint.u64("train_images")?;
            trainer.train_images = Some(train_images);
            trainer.resumed_data = Some(ResumedData {
                path: path.to_path_buf(),
                train_images,
                allow_changed_settings: options.allow_changed_settings,
            });
        }
        read_parameters_and_optimizer(
            &checkpoint,
            trainer.model.parameters_mut(),
            &mut trainer.optimizer,
        )?;
        trainer.step = checkpoint.u64("step")?;
        trainer.epoch = checkpoint.u64("epoch")?;
        if checkpoint.metadata().contains_key("scheduled_temperature") {
            let t = checkpoint.f64("scheduled_temperature")?;
            trainer.estimator.set_temperature(t)?;
            trainer.scheduled_temperature = Some(t);
        }
        let state = read_estimator_state(&checkpoint, ESTIMATOR_PREFIX)?;
        trainer
            .estimator
            .load_state(&state)
            .map_err(|e| Error::bad_file(path, format!("estimator state: {e}")))?;
        Ok(trainer)
    }
}

/// Metadata key of the checkpoint's JSON description ([`Trainer::description`]).
pub const DESCRIPTION_KEY: &str = "gumbelgrad";
/// Prefix of the model's weights in a checkpoint.
const MODEL_PREFIX: &str = "model.";
/// Prefix of the optimiser's moments in a checkpoint.
const OPTIM_PREFIX: &str = "optim.";
/// Prefix of the estimator's state in a checkpoint's metadata.
const ESTIMATOR_PREFIX: &str = "estimator.";

/// Writes the parameters as tensors `model.<name>`, the optimiser's moments as
/// `optim.<name>` and its step count as metadata `optimizer_steps` (the part of a
/// checkpoint every trainer shares).
pub(crate) fn write_parameters_and_optimizer<T: Float>(
    checkpoint: &mut Checkpoint<T>,
    params: &Parameters<T>,
    optimizer: &Adam<T>,
) {
    checkpoint.extend(
        params
            .iter()
            .map(|(name, tensor)| (format!("{MODEL_PREFIX}{name}"), tensor.clone())),
    );
    let state = optimizer.state(params);
    checkpoint.extend(
        state
            .tensors
            .into_iter()
            .map(|(name, tensor)| (format!("{OPTIM_PREFIX}{name}"), tensor)),
    );
    checkpoint.set_u64("optimizer_steps", state.steps);
}

/// Reads back what [`write_parameters_and_optimizer`] wrote, into `params` (which must
/// have the same names and shapes) and `optimizer`.
pub(crate) fn read_parameters_and_optimizer<T: Float>(
    checkpoint: &Checkpoint<T>,
    params: &mut Parameters<T>,
    optimizer: &mut Adam<T>,
) -> Result<()> {
    let names: Vec<String> = params.names().map(str::to_string).collect();
    for name in &names {
        let tensor = checkpoint.tensor(&format!("{MODEL_PREFIX}{name}"))?;
        params.set(name, tensor.clone())?;
    }
    let state = OptimizerState {
        steps: checkpoint.u64("optimizer_steps")?,
        tensors: checkpoint
            .tensors()
            .iter()
            .filter_map(|(name, tensor)| {
                name.strip_prefix(OPTIM_PREFIX)
                    .map(|name| (name.to_string(), tensor.clone()))
            })
            .collect(),
    };
    optimizer.load_state(params, &state)
}

/// An [`Error::BadFile`] naming `path` unless the checkpoint's metadata `key` is `ours`.
pub(crate) fn expect_metadata<T: Float>(
    checkpoint: &Checkpoint<T>,
    path: &Path,
    key: &str,
    ours: &str,
) -> Result<()> {
    let theirs = checkpoint.get(key)?;
    if theirs != ours {
        return Err(Error::bad_file(
            path,
            format!("checkpoint has {key} = {theirs}, this run has {ours}"),
        ));
    }
    Ok(())
}

/// Writes `estimator`'s state ([`GradientEstimator::save_state`]) into the metadata of
/// `checkpoint`, each entry as `{prefix}{key}`: scalars with [`Checkpoint::set_f64`],
/// tensors with [`Checkpoint::set_f64_tensor`], both exact.
pub fn write_estimator_state<T: Float>(
    checkpoint: &mut Checkpoint<T>,
    prefix: &str,
    estimator: &dyn GradientEstimator<T>,
) {
    let mut state = EstimatorState::new();
    estimator.save_state(&mut state);
    for (key, value) in state.entries() {
        let key = format!("{prefix}{key}");
        match value {
            StateValue::Scalar(x) => checkpoint.set_f64(key, *x),
            StateValue::Tensor(t) => checkpoint.set_f64_tensor(key, t),
        }
    }
}

/// Reads back the state written by [`write_estimator_state`] under `prefix`.
pub fn read_estimator_state<T: Float>(
    checkpoint: &Checkpoint<T>,
    prefix: &str,
) -> Result<EstimatorState> {
    let mut state = EstimatorState::new();
    for (key, text) in checkpoint.metadata() {
        let Some(name) = key.strip_prefix(prefix) else {
            continue;
        };
        if text.contains(':') {
            state.set_tensor(name, checkpoint.f64_tensor(key)?);
        } else {
            state.set_scalar(name, checkpoint.f64(key)?);
        }
    }
    Ok(state)
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
