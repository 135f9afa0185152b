//! One leaderboard cell, `(model, estimator)`, and how it is run so that a run killed
//! at any point continues where it stopped.
//!
//! A cell trains the Table 1 VAE of its model (`"VAE Cat."`: 20 x 10 categories,
//! `"VAE Bern."`: 200 binary units; `vae_setup` in examples/table1/cells.rs) with one
//! estimator of [`ESTIMATOR_NAMES`], once per learning rate of the grid, keeps the
//! rate whose model scores best on the validation images (`m = valid_samples`; ties
//! keep the earlier rate), reports that model's test bound (`m = eval_samples`) and the
//! estimator's encoder-gradient variance at the model's fixed reference checkpoint
//! (see [`reference_model`] and `variance.rs`).
//!
//! Work folder of a cell (`<work>/<cell slug>/`, e.g. `out/leaderboard/vae-cat-gumbel-softmax/`):
//!
//! | file | what | written |
//! |---|---|---|
//! | `lr-<rate>/checkpoint.safetensors` | the trainer (model, Adam, counters, estimator state) | after every epoch, atomically |
//! | `lr-<rate>/seconds.json` | training seconds so far (a kill between the checkpoint and this file loses that epoch's seconds) | after every checkpoint, atomically |
//! | `lr-<rate>/candidate.json` | the finished candidate's validation score | once, atomically |
//! | `test.json`, `variance.json` | the chosen model's test bound, the gradient variance | once, atomically |
//!
//! and the reference checkpoint of a model in `<work>/<model slug>-reference/`. Every
//! saved score records the settings it was computed with and is recomputed when they
//! differ; a checkpoint whose settings differ from the run's is an error naming the
//! file (the trainer checks them), so one work folder serves one protocol.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cli;
use super::table1::{
    ANNEAL_RATE, Budget, Selection, TrainedCell, annealed_temperature, evaluate_cell,
    rounded_number, row_latent, vae_setup,
};
use super::variance::{VarianceSetup, encoder_gradient_variance};

use gumbelgrad::data::Pixels;
use gumbelgrad::error::{Error, Result};
use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, GradientEstimator, TemperatureSchedule};
use gumbelgrad::io::atomic::remove_stale_temporaries;
use gumbelgrad::io::json::Json;
use gumbelgrad::io::write_atomic;
use gumbelgrad::models::training::Trainer;
use gumbelgrad::models::{DiscreteVae, Latent};

/// The models, in table order.
pub const MODELS: &[&str] = &["VAE Cat.", "VAE Bern."];

/// The estimators that tune their own temperature: they start at 1 and the trainer
/// never sets it again.
pub const SELF_TUNED: &[&str] = &["rebar", "relax"];

/// Estimators that run at a constant temperature their authors prescribe, rather than
/// the common annealed schedule, which would take them below it: `(model, estimator,
/// tau)`. ReinMax's authors recommend `tau >= 1` and their package rejects `tau < 1`
/// (Liu et al. 2023, arXiv 2304.08612); the values are those of their MNIST VAE scripts
/// for the nearest configuration, `mnist_vae/reinmax_10_30.sh` (10 classes x 30
/// variables) for the 20 x 10 categorical VAE and `mnist_vae/reinmax_2_200_rodeo.sh`
/// (200 binary variables) for the Bernoulli one.
pub const AUTHORS_TEMPERATURE: &[(&str, &str, f64)] =
    &[("VAE Cat.", "reinmax", 1.3), ("VAE Bern.", "reinmax", 1.1)];

/// The learning rate of the reference checkpoint's one epoch.
pub const REFERENCE_LEARNING_RATE: f64 = 1e-3;

/// One cell: a model of [`MODELS`] and an estimator of [`ESTIMATOR_NAMES`] that fits
/// its latent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// One of [`MODELS`].
    pub model: &'static str,
    /// One of [`ESTIMATOR_NAMES`].
    pub estimator: &'static str,
}

impl Cell {
    /// Parses `"MODEL:ESTIMATOR"`, e.g. `"VAE Cat.:gumbel-softmax"` (case and spaces
    /// around the colon ignored). An unknown model or estimator, or an estimator that
    /// does not fit the model's latents, is an [`Error::InvalidArgument`].
    pub fn parse(text: &str) -> Result<Cell> {
        let bad = |why: String| Error::invalid_argument("leaderboard cell", why);
        let (model, estimator) = text.rsplit_once(':').ok_or_else(|| {
            bad(format!(
                "`{text}` is not MODEL:ESTIMATOR with MODEL one of {MODELS:?}"
            ))
        })?;
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
        let model = MODELS.iter().find(|m| same(model, m)).ok_or_else(|| {
            bad(format!(
                "unknown model `{}`; known: {}",
                model.trim(),
                MODELS.join(", ")
            ))
        })?;
        let estimator = ESTIMATOR_NAMES
            .iter()
            .find(|e| same(estimator, e))
            .ok_or_else(|| {
                bad(format!(
                    "unknown estimator `{}`; known: {}",
                    estimator.trim(),
                    ESTIMATOR_NAMES.join(", ")
                ))
            })?;
        if !fits(model, estimator) {
            return Err(bad(format!(
                "{estimator} does not fit the latents of {model}; its estimators: {}",
                estimators_of(model).join(", ")
            )));
        }
        Ok(Cell { model, estimator })
    }

    /// Every cell, model by model, estimators in [`ESTIMATOR_NAMES`] order.
    pub fn all() -> Vec<Cell> {
        MODELS
            .iter()
            .flat_map(|model| {
                estimators_of(model)
                    .into_iter()
                    .map(move |estimator| Cell { model, estimator })
            })
            .collect()
    }

    /// `"MODEL:ESTIMATOR"`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.model, self.estimator)
    }

    /// The cell's folder name: the label in lower case, other characters than letters
    /// and digits as `-` (`vae-cat-gumbel-softmax`).
    pub fn slug(&self) -> String {
        slug(&self.label())
    }

    /// The model's latent layer.
    pub fn latent(&self) -> Latent {
        row_latent(self.model)
    }

    /// The temperature schedule (see [`temperature_for`]).
    pub fn temperature(&self) -> Result<TemperatureSchedule> {
        temperature_for(self.model, self.estimator)
    }
}

/// `text` in lower case with every run of other characters than letters and digits as
/// one `-`, none at the ends.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Whether `estimator` fits the latent layer of `model` (asked of the estimator:
/// [`Latent::check_estimator`]).
pub fn fits(model: &str, estimator: &str) -> bool {
    Estimator::<f32>::from_name(estimator, 1.0)
        .is_ok_and(|e| row_latent(model).check_estimator(&e, model).is_ok())
}

/// The estimators of [`ESTIMATOR_NAMES`] that fit `model`, in that order.
pub fn estimators_of(model: &str) -> Vec<&'static str> {
    ESTIMATOR_NAMES
        .iter()
        .copied()
        .filter(|e| fits(model, e))
        .collect()
}

/// The temperature of an estimator on `model`: the annealed `max(0.5, exp(-1e-4 t))`
/// updated every 1000 steps (the Table 1 VAE GS cells') for every estimator that has a
/// temperature, except REBAR and RELAX ([`SELF_TUNED`]), which start at 1 and tune their
/// own, and those with their authors' constant ([`AUTHORS_TEMPERATURE`]); constant 1
/// (unused) for those without one.
pub fn temperature_for(model: &str, estimator: &str) -> Result<TemperatureSchedule> {
    if let Some(&(_, _, tau)) = AUTHORS_TEMPERATURE
        .iter()
        .find(|(m, e, _)| *m == model && *e == estimator)
    {
        return TemperatureSchedule::constant(tau);
    }
    let has_one = Estimator::<f32>::from_name(estimator, 1.0)?
        .temperature()
        .is_some();
    if has_one && !SELF_TUNED.contains(&estimator) {
        annealed_temperature(ANNEAL_RATE)
    } else {
        TemperatureSchedule::constant(1.0)
    }
}

/// The leaderboard's protocol: the budget (its `learning_rate` is unused: the grid
/// gives the rates), the learning-rate grid, `m` of the validation scores, and how the
/// gradient variance is measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Epochs, batch size, test `m` and seed.
    pub budget: Budget,
    /// The learning rates tried, in order.
    pub lr_grid: Vec<f64>,
    /// `m` of the validation scores.
    pub valid_samples: usize,
    /// `W`, `S` and the fixed minibatch's size.
    pub variance: VarianceSetup,
}

/// The images a cell uses.
#[derive(Debug, Clone, Copy)]
pub struct Splits<'a> {
    /// Training images.
    pub train: &'a Pixels,
    /// Validation images (the learning rate is chosen on them).
    pub valid: &'a Pixels,
    /// Test images (the reported bound).
    pub test: &'a Pixels,
}

/// What a running cell reports; the callback that receives it may stop the run by
/// returning an error (a run stopped after an epoch is a run killed after that epoch's
/// checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A training run continues from its checkpoint at this epoch.
    Resumed {
        /// The run's learning rate (`None` for the reference checkpoint).
        learning_rate: Option<f64>,
        /// Epochs already trained.
        epoch: u64,
    },
    /// An epoch finished and its checkpoint is written.
    Epoch {
        /// The run's learning rate (`None` for the reference checkpoint).
        learning_rate: Option<f64>,
        /// Epochs trained.
        epoch: u64,
        /// Mean training loss of the epoch.
        loss: f64,
    },
    /// A candidate learning rate's validation score (computed now or read back).
    Candidate {
        /// The rate.
        learning_rate: f64,
        /// Validation bound, nats.
        valid_nats: f64,
        /// Whether it was read from the work folder.
        saved: bool,
    },
    /// The test evaluation starts.
    Testing,
    /// The gradient-variance measurement starts.
    Variance,
}

/// A finished cell: the keys of the leaderboard's results file.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardResult {
    /// The model.
    pub model: String,
    /// The estimator's name.
    pub estimator: String,
    /// Test importance-weighted bound, nats (lower is better).
    pub nats: f64,
    /// `m` of the test bound.
    pub eval_samples: usize,
    /// Epochs trained.
    pub epochs: u64,
    /// Seconds of training of the chosen learning rate's run (all its epochs, summed
    /// over resumed pieces; evaluations not counted).
    pub train_seconds: f64,
    /// Mean per-coordinate variance of the encoder gradient at the reference checkpoint.
    pub grad_variance: f64,
    /// The command that runs the cell.
    pub command: String,
    /// The chosen learning rate.
    pub learning_rate: f64,
    /// The seed.
    pub seed: u64,
    /// Every candidate's validation score.
    pub selection: Selection,
    /// `W` and `S` of the variance.
    pub variance: VarianceSetup,
}

impl LeaderboardResult {
    /// As a JSON object: `model`, `estimator`, `nats`, `eval_samples`, `epochs`,
    /// `train_seconds`, `grad_variance`, `command`, `learning_rate`, `seed`,
    /// `valid_samples`, `lr_grid` (`{"learning_rate", "valid_nats"}` per candidate),
    /// `variance_warmup` (`W`), `variance_samples` (`S`).
    pub fn to_json(&self) -> Json {
        let mut fields = vec![
            ("model".to_string(), Json::string(&self.model)),
            ("estimator".into(), Json::string(&self.estimator)),
            ("nats".into(), rounded_number("nats", self.nats, 3)),
            (
                "eval_samples".into(),
                Json::from_u64(self.eval_samples as u64),
            ),
            ("epochs".into(), Json::from_u64(self.epochs)),
            (
                "train_seconds".into(),
                rounded_number("train_seconds", self.train_seconds, 1),
            ),
            (
                "grad_variance".into(),
                cli::number("grad_variance", self.grad_variance),
            ),
            ("command".into(), Json::string(&self.command)),
            (
                "learning_rate".into(),
                cli::number("learning_rate", self.learning_rate),
            ),
            ("seed".into(), Json::from_u64(self.seed)),
        ];
        fields.extend(self.selection.json_fields());
        fields.push((
            "variance_warmup".into(),
            Json::from_u64(self.variance.warmup as u64),
        ));
        fields.push((
            "variance_samples".into(),
            Json::from_u64(self.variance.samples as u64),
        ));
        Json::Object(fields)
    }
}

/// Trains (or continues training) a VAE with `latent` on `train` with the named
/// estimator and temperature schedule, to `budget.epochs` epochs, checkpointing into
/// `dir/checkpoint.safetensors` after every epoch and resuming from it if it is there.
/// Returns the trainer and the training seconds of all the run's pieces. A checkpoint
/// already past `budget.epochs`, or with other settings, is an error naming it.
#[allow(clippy::too_many_arguments)]
pub fn train_resumable(
    latent: Latent,
    budget: &Budget,
    estimator: &str,
    temperature: TemperatureSchedule,
    train: &Pixels,
    dir: &Path,
    label: Option<f64>,
    on_event: &mut dyn FnMut(Event) -> Result<()>,
) -> Result<(Trainer<f32>, f64)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    let checkpoint = dir.join("checkpoint.safetensors");
    let seconds_file = dir.join("seconds.json");
    remove_stale_temporaries(&checkpoint)?;
    remove_stale_temporaries(&seconds_file)?;
    let (model, config) = vae_setup(latent, train.cols(), budget, estimator, temperature);
    let mut trainer = if checkpoint.exists() {
        let trainer = Trainer::<f32>::resume(&checkpoint, model, config)?;
        on_event(Event::Resumed {
            learning_rate: label,
            epoch: trainer.epochs(),
        })?;
        trainer
    } else {
        Trainer::<f32>::new(model, config)?
    };
    if trainer.epochs() > budget.epochs {
        return Err(Error::bad_file(
            &checkpoint,
            format!(
                "the checkpoint has {} epochs, more than the {} asked for (use another work folder)",
                trainer.epochs(),
                budget.epochs
            ),
        ));
    }
    let mut seconds = read_json(&seconds_file)?
        .and_then(|j| j.get("train_seconds").and_then(Json::as_f64))
        .filter(|_| trainer.epochs() > 0)
        .unwrap_or(0.0);
    while trainer.epochs() < budget.epochs {
        let started = Instant::now();
        let report = trainer.train_epoch(train, |_| {})?;
        if !report.mean_loss.is_finite() {
            return Err(Error::invalid_argument(
                "leaderboard",
                format!(
                    "{estimator}: the training loss became {} at epoch {}",
                    report.mean_loss, report.epoch
                ),
            ));
        }
        seconds += started.elapsed().as_secs_f64();
        trainer.save_checkpoint(&checkpoint)?;
        let record = cli::object([
            ("epoch", Json::from_u64(trainer.epochs())),
            ("train_seconds", Json::from_f64(seconds)),
        ]);
        write_atomic(&seconds_file, format!("{record}\n").as_bytes())?;
        on_event(Event::Epoch {
            learning_rate: label,
            epoch: report.epoch,
            loss: report.mean_loss,
        })?;
    }
    Ok((trainer, seconds))
}

/// The fixed model the gradient variance of every estimator of `model` is measured
/// at: one epoch of the model's reference relaxation (`gumbel-softmax` for categorical
/// latents, `relaxed-bernoulli` for binary ones) with the annealed temperature, Adam at
/// [`REFERENCE_LEARNING_RATE`], the budget's batch size and seed, trained once and
/// kept in `work/<model slug>-reference/` (resumable like every run). Returns it and
/// the training steps it took.
pub fn reference_model(
    model: &str,
    budget: &Budget,
    train: &Pixels,
    work: &Path,
    on_event: &mut dyn FnMut(Event) -> Result<()>,
) -> Result<(DiscreteVae<f32>, u64)> {
    let latent = row_latent(model);
    let estimator = reference_estimator(latent);
    let budget = Budget {
        epochs: 1,
        learning_rate: REFERENCE_LEARNING_RATE,
        ..budget.clone()
    };
    let dir = work.join(format!("{}-reference", slug(model)));
    let (trainer, _) = train_resumable(
        latent,
        &budget,
        estimator,
        temperature_for(model, estimator)?,
        train,
        &dir,
        None,
        on_event,
    )?;
    Ok((trainer.model().clone(), trainer.steps()))
}

/// `gumbel-softmax` for categorical latents, `relaxed-bernoulli` for binary ones.
pub fn reference_estimator(latent: Latent) -> &'static str {
    match latent {
        Latent::Categorical { .. } => "gumbel-softmax",
        Latent::Bernoulli { .. } => "relaxed-bernoulli",
    }
}

/// The folder of one learning rate's run: `lr-<rate>` (`lr-0.001`).
pub fn candidate_folder(cell_dir: &Path, learning_rate: f64) -> PathBuf {
    cell_dir.join(format!("lr-{learning_rate}"))
}

/// Runs one cell under `protocol` on `data`, keeping its work in `work/<cell slug>/`
/// (see the module doc): every candidate learning rate is trained (or continued, or
/// read back when finished) and scored on validation, the best one's model is
/// evaluated on the test images, and the estimator's gradient variance is measured at
/// the model's reference checkpoint. `command` is recorded in the result.
pub fn run_cell(
    cell: &Cell,
    protocol: &Protocol,
    data: Splits<'_>,
    work: &Path,
    command: &str,
    on_event: &mut dyn FnMut(Event) -> Result<()>,
) -> Result<LeaderboardResult> {
    let grid = &protocol.lr_grid;
    if grid.is_empty() || grid.iter().any(|rate| !(rate.is_finite() && *rate > 0.0)) {
        return Err(Error::invalid_argument(
            "leaderboard",
            format!("the learning-rate grid must be non-empty and positive, got {grid:?}"),
        ));
    }
    let budget = &protocol.budget;
    let cell_dir = work.join(cell.slug());
    let temperature = cell.temperature()?;
    let mut candidates = Vec::with_capacity(grid.len());
    let mut best: Option<(f64, f64, f64)> = None; // (rate, valid nats, seconds)
    // Everything a training run and its validation score depend on: a saved score is
    // used only by a run with the same settings.
    let settings = cli::object([
        ("estimator", Json::string(cell.estimator)),
        ("temperature", Json::string(format!("{temperature:?}"))),
        ("epochs", Json::from_u64(budget.epochs)),
        ("batch_size", Json::from_u64(budget.batch_size as u64)),
        ("seed", Json::from_u64(budget.seed)),
        ("train_images", Json::from_u64(data.train.rows() as u64)),
        ("valid_images", Json::from_u64(data.valid.rows() as u64)),
        (
            "valid_samples",
            Json::from_u64(protocol.valid_samples as u64),
        ),
    ]);
    for &learning_rate in grid {
        let dir = candidate_folder(&cell_dir, learning_rate);
        let key = cli::object([
            ("settings", settings.clone()),
            ("learning_rate", Json::from_f64(learning_rate)),
        ]);
        let record = dir.join("candidate.json");
        let (valid_nats, seconds, saved) = match saved_value(&record, &key)? {
            Some(value) => (
                number_in(&value, "valid_nats", &record)?,
                number_in(&value, "train_seconds", &record)?,
                true,
            ),
            None => {
                let candidate = Budget {
                    learning_rate,
                    ..budget.clone()
                };
                let (trainer, seconds) = train_resumable(
                    cell.latent(),
                    &candidate,
                    cell.estimator,
                    temperature,
                    data.train,
                    &dir,
                    Some(learning_rate),
                    on_event,
                )?;
                let trained = TrainedCell::Vae(trainer.model().clone());
                let valid_nats =
                    evaluate_cell(&trained, data.valid, protocol.valid_samples, budget.seed, 1)?;
                let value = cli::object([
                    ("valid_nats", Json::from_f64(valid_nats)),
                    ("train_seconds", Json::from_f64(seconds)),
                ]);
                save_value(&record, key, value)?;
                (valid_nats, seconds, false)
            }
        };
        on_event(Event::Candidate {
            learning_rate,
            valid_nats,
            saved,
        })?;
        candidates.push((learning_rate, valid_nats));
        // A score that is not a number never wins over one that is.
        if best
            .is_none_or(|(_, nats, _)| valid_nats < nats || (nats.is_nan() && !valid_nats.is_nan()))
        {
            best = Some((learning_rate, valid_nats, seconds));
        }
    }
    let (learning_rate, _, train_seconds) = best.expect("the grid is not empty");

    let key = cli::object([
        ("settings", settings),
        ("learning_rate", Json::from_f64(learning_rate)),
        ("eval_samples", Json::from_u64(budget.eval_samples as u64)),
        ("test_images", Json::from_u64(data.test.rows() as u64)),
    ]);
    let record = cell_dir.join("test.json");
    let nats = match saved_value(&record, &key)? {
        Some(value) => number_in(&value, "nats", &record)?,
        None => {
            let chosen = Budget {
                learning_rate,
                ..budget.clone()
            };
            // The finished run is read back from its checkpoint (nothing to train).
            let (trainer, _) = train_resumable(
                cell.latent(),
                &chosen,
                cell.estimator,
                temperature,
                data.train,
                &candidate_folder(&cell_dir, learning_rate),
                Some(learning_rate),
                &mut |_| Ok(()),
            )?;
            on_event(Event::Testing)?;
            let trained = TrainedCell::Vae(trainer.model().clone());
            let nats = evaluate_cell(&trained, data.test, budget.eval_samples, budget.seed, 0)?;
            save_value(&record, key, cli::object([("nats", Json::from_f64(nats))]))?;
            nats
        }
    };

    let setup = protocol.variance;
    let key = cli::object([
        ("estimator", Json::string(cell.estimator)),
        ("temperature", Json::string(format!("{temperature:?}"))),
        ("warmup", Json::from_u64(setup.warmup as u64)),
        ("samples", Json::from_u64(setup.samples as u64)),
        ("batch", Json::from_u64(setup.batch as u64)),
        ("batch_size", Json::from_u64(budget.batch_size as u64)),
        ("train_images", Json::from_u64(data.train.rows() as u64)),
        ("seed", Json::from_u64(budget.seed)),
    ]);
    let record = cell_dir.join("variance.json");
    let grad_variance = match saved_value(&record, &key)? {
        Some(value) => number_in(&value, "grad_variance", &record)?,
        None => {
            let (model, steps) = reference_model(cell.model, budget, data.train, work, on_event)?;
            on_event(Event::Variance)?;
            let rows: Vec<usize> = (0..setup.batch.min(data.train.rows())).collect();
            let images = data.train.gather::<f32>(&rows);
            let mut estimator =
                Estimator::<f32>::from_name(cell.estimator, temperature.at(steps)?)?;
            let variance =
                encoder_gradient_variance(&model, &mut estimator, &images, &setup, budget.seed)?;
            save_value(
                &record,
                key,
                cli::object([("grad_variance", Json::from_f64(variance))]),
            )?;
            variance
        }
    };

    Ok(LeaderboardResult {
        model: cell.model.to_string(),
        estimator: cell.estimator.to_string(),
        nats,
        eval_samples: budget.eval_samples,
        epochs: budget.epochs,
        train_seconds,
        grad_variance,
        command: command.to_string(),
        learning_rate,
        seed: budget.seed,
        selection: Selection {
            candidates,
            valid_samples: protocol.valid_samples,
        },
        variance: setup,
    })
}

/// Reads a JSON file; a missing one is `None`, a malformed one an error naming it.
fn read_json(path: &Path) -> Result<Option<Json>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Json::parse(&text)
            .map(Some)
            .map_err(|why| Error::bad_file(path, why)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, &e)),
    }
}

/// The `value` saved in `path` by [`save_value`] if it was computed with the settings
/// `key`; `None` if there is no such file or its settings differ.
fn saved_value(path: &Path, key: &Json) -> Result<Option<Json>> {
    remove_stale_temporaries(path)?;
    Ok(read_json(path)?
        .filter(|saved| saved.get("key") == Some(key))
        .and_then(|saved| saved.get("value").cloned()))
}

/// Saves `value` with the settings `key` it was computed with, atomically.
fn save_value(path: &Path, key: Json, value: Json) -> Result<()> {
    let record = cli::object([("key", key), ("value", value)]);
    write_atomic(path, format!("{record}\n").as_bytes())
}

/// The number `name` of a saved value (`null`, how a non-finite number is saved, is
/// NaN), or an error naming the file.
fn number_in(value: &Json, name: &str, path: &Path) -> Result<f64> {
    match value.get(name) {
        Some(Json::Null) => Some(f64::NAN),
        Some(number) => number.as_f64(),
        None => None,
    }
    .ok_or_else(|| Error::bad_file(path, format!("no number \"{name}\"")))
}
