//! The cells of the paper's Table 1 (Jang, Gu and Poole 2017, arXiv 1611.01144,
//! §4.1-4.2) and how to run one: which model, which estimator, which temperature, how it
//! is evaluated, and the machine-readable results file (the published one is
//! `docs/results/table1.json`).
//!
//! Rows: `"SBN Bern."`, `"SBN Cat."` (the structured-output network of
//! [`Sbn`], negative log-likelihood of the lower half given the upper half, `m`-sample
//! estimate) and `"VAE Bern."`, `"VAE Cat."` (the [`DiscreteVae`],
//! `m`-sample importance-weighted bound). Columns and the estimator each one runs:
//!
//! | column | categorical latents | binary latents | temperature |
//! |---|---|---|---|
//! | `SF` | `nvil` | `nvil` | - |
//! | `DARN` | `darn-sample-slope` | `darn-sample-slope` | - |
//! | `MuProp` | SBN `muprop`, VAE `muprop-normalised` | SBN `muprop`, VAE `muprop-normalised` | - |
//! | `ST` | `st` (one-hot forward, `softmax(logits)` backward) | `st-bernoulli` | 1 |
//! | `Annealed ST` | `st` with the annealed temperature | `slope-annealed-st` (slope `1/tau`) | annealed |
//! | `GS` | `gumbel-softmax` | `relaxed-bernoulli` | SBN 1, VAE annealed |
//! | `ST-GS` | `st-gumbel-softmax` | `st-relaxed-bernoulli` (the binary ST Gumbel-Softmax) | SBN 1, VAE annealed |
//! | `REBAR` | `rebar` (SBN: tuned every [`SBN_TUNING_INTERVAL`]-th call) | `rebar` (same) | 1 (start) |
//! | `RELAX` | `relax` (SBN: tuned every [`SBN_TUNING_INTERVAL`]-th call) | `relax` (same) | 1 (start) |
//!
//! Why DARN runs the sample-slope form and MuProp the normalised form in the VAE rows
//! (both chosen on the validation set) is in docs/results.md; `--estimator` runs another
//! estimator under the same cell (the SBN MuProp cells run `muprop-nvil` that way).
//!
//! The SBN rows checkpoint after every epoch and resume ([`train_cell_resumable`]).
//!
//! "Annealed" is the paper's `tau = max(0.5, exp(-r t))` updated every `N` steps, with
//! `r = 1e-4` ([`ANNEAL_RATE`]), `N = 1000` (one point of the paper's grid); a cell can
//! run another `r` ([`Cell::with_anneal_rate`], `table1 --anneal-rate`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cli; // the examples' command-line module: its JSON numbers

use gumbelgrad::data::Pixels;
use gumbelgrad::error::{Error, Result};
use gumbelgrad::estimators::score::{Rebar, Relax};
use gumbelgrad::estimators::{GradientEstimator, TemperatureSchedule};
use gumbelgrad::io::json::Json;
use gumbelgrad::io::write_atomic;
use gumbelgrad::models::discrete_vae::DiscreteVae;
use gumbelgrad::models::sbn::{Sbn, SbnConfig, split_halves};
use gumbelgrad::models::sbn_training::{SbnTrainConfig, SbnTrainer};
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::models::training::{TrainConfig, Trainer};
use gumbelgrad::models::{Latent, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;

/// The model rows, in table order.
pub const ROWS: &[&str] = &["SBN Bern.", "SBN Cat.", "VAE Bern.", "VAE Cat."];
/// The estimator columns, in table order (the paper's seven, then REBAR and RELAX).
pub const COLUMNS: &[&str] = &[
    "SF",
    "DARN",
    "MuProp",
    "ST",
    "Annealed ST",
    "GS",
    "ST-GS",
    "REBAR",
    "RELAX",
];

/// The paper's Table 1 in nats (lower is better); `None` where the paper has no column.
pub fn paper_value(model: &str, estimator: &str) -> Option<f64> {
    let row: [f64; 7] = match model {
        "SBN Bern." => [72.0, 59.7, 58.9, 58.9, 58.7, 58.5, 59.3],
        "SBN Cat." => [73.1, 67.9, 63.0, 61.8, 61.1, 59.0, 59.7],
        "VAE Bern." => [112.2, 110.9, 109.7, 116.0, 111.5, 105.0, 111.5],
        "VAE Cat." => [110.6, 128.8, 107.0, 110.9, 107.8, 101.5, 107.8],
        _ => return None,
    };
    let column = COLUMNS.iter().position(|c| *c == estimator)?;
    row.get(column).copied()
}

/// One cell: a model row and an estimator column.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// One of [`ROWS`].
    pub model: &'static str,
    /// One of [`COLUMNS`].
    pub estimator: &'static str,
    /// Another estimator to run in this cell's place (an ablation, see
    /// [`Cell::with_estimator`]); `None` runs the column's own (the module table).
    pub variant: Option<&'static str>,
    /// The rate `r` of the annealed temperature `max(0.5, exp(-r t))` (see
    /// [`Cell::with_anneal_rate`]); `None` uses [`ANNEAL_RATE`].
    pub anneal_rate: Option<f64>,
}

/// The default rate `r` of the annealed temperature `tau = max(0.5, exp(-r t))`, one point
/// of the paper's grid `r in {1e-5, 1e-4}` (updated every [`ANNEAL_EVERY`] steps).
pub const ANNEAL_RATE: f64 = 1e-4;

/// Steps between updates of the annealed temperature (`N` of the paper, from {500, 1000}).
pub const ANNEAL_EVERY: u64 = 1000;

impl Cell {
    /// Parses `"ROW:COLUMN"`, e.g. `"VAE Cat.:GS"` (case and spaces around the colon
    /// ignored).
    pub fn parse(text: &str) -> Result<Cell> {
        let bad = || {
            Error::invalid_argument(
                "Cell::parse",
                format!(
                    "`{text}` is not ROW:COLUMN with ROW one of {ROWS:?} and COLUMN one of {COLUMNS:?}"
                ),
            )
        };
        let (row, column) = text.rsplit_once(':').ok_or_else(bad)?;
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
        let model = ROWS.iter().find(|r| same(row, r)).ok_or_else(bad)?;
        let estimator = COLUMNS.iter().find(|c| same(column, c)).ok_or_else(bad)?;
        Ok(Cell {
            model,
            estimator,
            variant: None,
            anneal_rate: None,
        })
    }

    /// Every cell, row by row.
    pub fn all() -> Vec<Cell> {
        ROWS.iter()
            .flat_map(|model| {
                COLUMNS.iter().map(move |estimator| Cell {
                    model,
                    estimator,
                    variant: None,
                    anneal_rate: None,
                })
            })
            .collect()
    }

    /// `"ROW:COLUMN"`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.model, self.estimator)
    }

    /// Whether the row has binary latents.
    pub fn is_bernoulli(&self) -> bool {
        self.model.contains("Bern.")
    }

    /// Whether the row is a structured-output SBN (else a VAE).
    pub fn is_sbn(&self) -> bool {
        self.model.starts_with("SBN")
    }

    /// The same cell run with another estimator, one of
    /// [`ESTIMATOR_NAMES`](gumbelgrad::estimators::ESTIMATOR_NAMES): for ablations and for
    /// choosing between variants of a column (say `muprop` and `muprop-normalised`) on the
    /// validation set. The result is still filed under the cell's row and column, with the
    /// estimator it ran in `estimator_name`. An unknown name is an
    /// [`Error::InvalidArgument`].
    pub fn with_estimator(self, name: &str) -> Result<Cell> {
        let known = gumbelgrad::estimators::ESTIMATOR_NAMES;
        let variant = known.iter().find(|k| **k == name.trim()).ok_or_else(|| {
            Error::invalid_argument(
                "Cell::with_estimator",
                format!("unknown estimator `{name}`; known: {}", known.join(", ")),
            )
        })?;
        Ok(Cell {
            variant: Some(variant),
            ..self
        })
    }

    /// The [`Estimator::from_name`](gumbelgrad::estimators::Estimator::from_name) name the
    /// cell runs (see the module table), or its [`variant`](Cell::variant).
    pub fn estimator_name(&self) -> &'static str {
        if let Some(variant) = self.variant {
            return variant;
        }
        let bernoulli = self.is_bernoulli();
        match (self.estimator, bernoulli) {
            ("SF", _) => "nvil",
            ("DARN", _) => "darn-sample-slope",
            ("MuProp", _) if self.is_sbn() => "muprop",
            ("MuProp", _) => "muprop-normalised",
            ("ST", false) | ("Annealed ST", false) => "st",
            ("ST", true) => "st-bernoulli",
            ("ST-GS", true) => "st-relaxed-bernoulli",
            ("Annealed ST", true) => "slope-annealed-st",
            ("GS", false) => "gumbel-softmax",
            ("GS", true) => "relaxed-bernoulli",
            ("ST-GS", false) => "st-gumbel-softmax",
            ("REBAR", _) => "rebar",
            ("RELAX", _) => "relax",
            _ => unreachable!("COLUMNS lists every column"),
        }
    }

    /// The same cell with the annealed temperature's rate `r` set to `rate` (the paper
    /// chose `r` from {1e-5, 1e-4} on the validation set). It changes only cells whose
    /// temperature is annealed ([`Cell::is_annealed`]). A rate that is not finite and
    /// positive is an [`Error::InvalidArgument`].
    pub fn with_anneal_rate(self, rate: f64) -> Result<Cell> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::invalid_argument(
                "Cell::with_anneal_rate",
                format!("the anneal rate must be finite and > 0, got {rate}"),
            ));
        }
        Ok(Cell {
            anneal_rate: Some(rate),
            ..self
        })
    }

    /// Whether the cell anneals its temperature: "Annealed ST", and the VAE's GS and
    /// ST-GS (the paper fixes `tau = 1` for the SBN).
    pub fn is_annealed(&self) -> bool {
        self.estimator == "Annealed ST"
            || (!self.is_sbn() && matches!(self.estimator, "GS" | "ST-GS"))
    }

    /// The rate `r` the cell's temperature anneals with (its own or [`ANNEAL_RATE`]), or
    /// `None` if the temperature is fixed.
    pub fn effective_anneal_rate(&self) -> Option<f64> {
        self.is_annealed()
            .then(|| self.anneal_rate.unwrap_or(ANNEAL_RATE))
    }

    /// The temperature schedule: `max(0.5, exp(-r t))` updated every [`ANNEAL_EVERY`]
    /// steps if [`Cell::is_annealed`], else constant 1.
    pub fn temperature(&self) -> Result<TemperatureSchedule> {
        match self.effective_anneal_rate() {
            Some(rate) => annealed_temperature(rate),
            None => TemperatureSchedule::constant(1.0),
        }
    }

    /// The latent layer of the row (see [`row_latent`]).
    pub fn latent(&self) -> Latent {
        row_latent(self.model)
    }
}

/// The annealed temperature `max(0.5, exp(-rate t))`, updated every [`ANNEAL_EVERY`]
/// steps, starting at 1.
pub fn annealed_temperature(rate: f64) -> Result<TemperatureSchedule> {
    TemperatureSchedule::exponential(1.0, rate, ANNEAL_EVERY, 0.5)
}

/// The latent layer of a row: 200 binary units for the `Bern.` rows, else 20 x 10
/// categories.
pub fn row_latent(model: &str) -> Latent {
    if model.contains("Bern.") {
        Latent::Bernoulli { units: 200 }
    } else {
        Latent::Categorical {
            variables: 20,
            classes: 10,
        }
    }
}

/// The VAE rows' model on `input_dim` pixels with the given latent layer (the
/// architecture of [`VaeConfig::bernoulli`] / [`VaeConfig::categorical`]), and its
/// training settings: the budget's batch size, seed and constant learning rate, the
/// estimator `estimator` (a name of
/// [`ESTIMATOR_NAMES`](gumbelgrad::estimators::ESTIMATOR_NAMES)) at `temperature`, data
/// already binary.
pub fn vae_setup(
    latent: Latent,
    input_dim: usize,
    budget: &Budget,
    estimator: &str,
    temperature: TemperatureSchedule,
) -> (VaeConfig, TrainConfig) {
    let model = VaeConfig {
        input_dim,
        ..match latent {
            Latent::Bernoulli { units } => VaeConfig::bernoulli(units),
            Latent::Categorical { variables, classes } => {
                VaeConfig::categorical(variables, classes)
            }
        }
    };
    let config = TrainConfig {
        batch_size: budget.batch_size,
        learning_rate: LearningRateSchedule::Constant(budget.learning_rate),
        temperature,
        estimator: estimator.to_string(),
        dynamic_binarization: false,
        seed: budget.seed,
        shards: 1,
    };
    (model, config)
}

/// How long and how to train a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Passes over the training images.
    pub epochs: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// `m` of the evaluation (the paper: 1000).
    pub eval_samples: usize,
    /// Seed of everything random.
    pub seed: u64,
}

/// What one finished cell reports: the keys of `docs/results/table1.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellResult {
    /// The row.
    pub model: String,
    /// The column.
    pub estimator: String,
    /// Test negative log-likelihood (SBN) or importance-weighted bound (VAE), nats.
    pub nats: f64,
    /// `m` of the evaluation.
    pub eval_samples: usize,
    /// Epochs trained.
    pub epochs: u64,
    /// Training plus evaluation time.
    pub wall_seconds: f64,
    /// The command that produced it.
    pub command: String,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// The seed.
    pub seed: u64,
    /// The estimator name actually run.
    pub estimator_name: String,
    /// The annealed temperature's rate `r`, for cells that anneal.
    pub anneal_rate: Option<f64>,
    /// How the learning rate was chosen on the validation set, if it was.
    pub selection: Option<Selection>,
}

impl CellResult {
    /// The result of `cell` trained with `budget`, scoring `nats`, started at `started`.
    fn new(
        cell: &Cell,
        budget: &Budget,
        nats: f64,
        started: Instant,
        command: &str,
        selection: Option<Selection>,
    ) -> Self {
        CellResult {
            model: cell.model.to_string(),
            estimator: cell.estimator.to_string(),
            nats,
            eval_samples: budget.eval_samples,
            epochs: budget.epochs,
            wall_seconds: started.elapsed().as_secs_f64(),
            command: command.to_string(),
            learning_rate: budget.learning_rate,
            seed: budget.seed,
            estimator_name: cell.estimator_name().to_string(),
            anneal_rate: cell.effective_anneal_rate(),
            selection,
        }
    }

    /// As a JSON object (the required keys first, then `learning_rate`, `seed`,
    /// `estimator_name`, for annealed cells `anneal_rate` (entries written before it
    /// existed ran [`ANNEAL_RATE`]), and with a selection `valid_samples` and `lr_grid`:
    /// an array of `{"learning_rate", "valid_nats"}`).
    pub fn to_json(&self) -> Json {
        // Through the examples' one JSON writer: a non-finite value is `null` and a
        // warning. Nats to 3 decimals, seconds to 1, as the published table shows them.
        let mut fields = vec![
            ("model".into(), Json::String(self.model.clone())),
            ("estimator".into(), Json::String(self.estimator.clone())),
            ("nats".into(), rounded_number("nats", self.nats, 3)),
            (
                "eval_samples".into(),
                Json::from_u64(self.eval_samples as u64),
            ),
            ("epochs".into(), Json::from_u64(self.epochs)),
            (
                "wall_seconds".into(),
                rounded_number("wall_seconds", self.wall_seconds, 1),
            ),
            ("command".into(), Json::String(self.command.clone())),
            (
                "learning_rate".into(),
                cli::number("learning_rate", self.learning_rate),
            ),
            ("seed".into(), Json::from_u64(self.seed)),
            (
                "estimator_name".into(),
                Json::String(self.estimator_name.clone()),
            ),
        ];
        if let Some(rate) = self.anneal_rate {
            fields.push(("anneal_rate".into(), cli::number("anneal_rate", rate)));
        }
        if let Some(selection) = &self.selection {
            fields.extend(selection.json_fields());
        }
        Json::Object(fields)
    }
}

/// How often the SBN rows' REBAR and RELAX tune `eta` and the temperature: every
/// [`SBN_TUNING_INTERVAL`]-th call of each layer's estimator
/// ([`Rebar::with_tuning_interval`]). Tuning evaluates the cost at two more
/// temperatures, and in the SBN layer 1's cost runs all of layer 2, so tuning on every
/// call costs about 5 times as much per step; the estimates stay unbiased either way.
pub const SBN_TUNING_INTERVAL: u64 = 10;

/// The two layers' estimators of an SBN cell when they are not simply built by name:
/// REBAR and RELAX tuning every [`SBN_TUNING_INTERVAL`]-th call.
type EstimatorPair = (
    Box<dyn GradientEstimator<f32>>,
    Box<dyn GradientEstimator<f32>>,
);

fn sbn_estimators(cell: &Cell) -> Result<Option<EstimatorPair>> {
    // The temperature is set by the trainer from the cell's schedule.
    let one = || -> Result<Option<Box<dyn GradientEstimator<f32>>>> {
        Ok(match cell.estimator_name() {
            "rebar" => Some(Box::new(
                Rebar::new(1.0, 1.0)?.with_tuning_interval(SBN_TUNING_INTERVAL)?,
            )),
            "relax" => Some(Box::new(
                Relax::new(1.0, 1.0, RELAX_HIDDEN)?.with_tuning_interval(SBN_TUNING_INTERVAL)?,
            )),
            _ => None,
        })
    };
    Ok(match (one()?, one()?) {
        (Some(first), Some(second)) => Some((first, second)),
        _ => None,
    })
}

/// Hidden units of RELAX's surrogate (as `Estimator::from_name("relax", _)`).
const RELAX_HIDDEN: usize = 10;

/// `x` rounded to `decimals` decimals, as a JSON number (through the examples' one JSON
/// writer: a non-finite value is `null` and a warning naming it).
pub fn rounded_number(name: &str, x: f64, decimals: i32) -> Json {
    let scale = 10f64.powi(decimals);
    cli::number(name, (x * scale).round() / scale)
}

/// A cell's model after training, ready to be evaluated on any images.
#[derive(Debug, Clone)]
pub enum TrainedCell {
    /// A structured-output network (the SBN rows).
    Sbn(Sbn<f32>),
    /// A VAE (the VAE rows).
    Vae(DiscreteVae<f32>),
}

/// Trains one cell's model on `train` images (`[n, 784]`, binary) for the budget's
/// epochs at its learning rate. `on_epoch(epoch, mean training cost)` is called after
/// every epoch; a non-finite cost stops training with an error naming the cell.
pub fn train_cell(
    cell: &Cell,
    budget: &Budget,
    train: &Pixels,
    on_epoch: &mut dyn FnMut(u64, f64),
) -> Result<TrainedCell> {
    train_cell_resumable(cell, budget, train, None, on_epoch)
}

/// The file an SBN cell checkpoints to in `dir`: named after the row, the estimator
/// and every setting that changes the run (learning rate, batch size, seed, number of
/// training images), so a run with other settings never resumes from it. The number
/// of epochs is not in the name: a longer run continues a shorter one's checkpoint.
pub fn checkpoint_path(cell: &Cell, budget: &Budget, train_images: usize, dir: &Path) -> PathBuf {
    let slug: String = cell
        .model
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    dir.join(format!(
        "{slug}-{}-lr{}-batch{}-seed{}-train{train_images}.safetensors",
        cell.estimator_name(),
        budget.learning_rate,
        budget.batch_size,
        budget.seed
    ))
}

/// [`train_cell`], and for the SBN rows with `checkpoints = Some(dir)`: resumes from
/// the cell's checkpoint in `dir` ([`checkpoint_path`]) if there is one, and writes it
/// (atomically) after every epoch, so a killed run rerun with the same arguments
/// continues from its last finished epoch and ends with the same bits as an
/// uninterrupted one. `on_epoch` is called for the epochs trained by this call only.
/// A checkpoint further than `budget.epochs` is an error.
pub fn train_cell_resumable(
    cell: &Cell,
    budget: &Budget,
    train: &Pixels,
    checkpoints: Option<&Path>,
    on_epoch: &mut dyn FnMut(u64, f64),
) -> Result<TrainedCell> {
    let estimator = cell.estimator_name().to_string();
    let temperature = cell.temperature()?;
    if cell.is_sbn() {
        // Byte halves: the trainer converts each minibatch as it draws it.
        let (train_up, train_low) = train.split_cols(train.cols() / 2)?;
        let model = SbnConfig {
            input_dim: train_up.cols(),
            output_dim: train_low.cols(),
            latent: cell.latent(),
        };
        let config = SbnTrainConfig {
            batch_size: budget.batch_size,
            learning_rate: budget.learning_rate,
            temperature,
            estimator,
            seed: budget.seed,
        };
        let path = checkpoints.map(|dir| checkpoint_path(cell, budget, train.rows(), dir));
        let resume_from = path.as_ref().filter(|p| p.exists());
        let estimators = sbn_estimators(cell)?;
        let mut trainer = match (resume_from, estimators) {
            (Some(path), Some((first, second))) => {
                SbnTrainer::resume_with_estimators(path, model, config, first, second)?
            }
            (Some(path), None) => SbnTrainer::<f32>::resume(path, model, config)?,
            (None, Some((first, second))) => {
                SbnTrainer::with_estimators(model, config, first, second)?
            }
            (None, None) => SbnTrainer::<f32>::new(model, config)?,
        };
        if let Some(path) = resume_from {
            if trainer.epochs() > budget.epochs {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "this checkpoint has trained {} epochs, more than the {} asked for \
                         (ask for at least as many, or remove it)",
                        trainer.epochs(),
                        budget.epochs
                    ),
                ));
            }
            eprintln!(
                "{}: resuming at epoch {}/{} from {}",
                cell.label(),
                trainer.epochs(),
                budget.epochs,
                path.display()
            );
        }
        while trainer.epochs() < budget.epochs {
            let cost = trainer.train_epoch(&train_up, &train_low, |_, _| {})?;
            check_finite_cost(cell, cost)?;
            if let Some(path) = &path {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
                }
                trainer.save_checkpoint(path)?;
            }
            on_epoch(trainer.epochs(), cost);
        }
        Ok(TrainedCell::Sbn(trainer.model().clone()))
    } else {
        let (model, config) =
            vae_setup(cell.latent(), train.cols(), budget, &estimator, temperature);
        let mut trainer = Trainer::<f32>::new(model, config)?;
        while trainer.epochs() < budget.epochs {
            let report = trainer.train_epoch(train, |_| {})?;
            check_finite_cost(cell, report.mean_loss)?;
            on_epoch(report.epoch, report.mean_loss);
        }
        Ok(TrainedCell::Vae(trainer.model().clone()))
    }
}

/// The cell's measure on `images` with `samples` samples per image, in nats: the SBN's
/// `-log (1/m) sum_i p(x_lower | h_i)` or the VAE's importance-weighted bound. The
/// sampling noise comes from `(seed, stream)`: stream 0 is the test evaluation, others
/// are for validation.
pub fn evaluate_cell(
    trained: &TrainedCell,
    images: &Pixels,
    samples: usize,
    seed: u64,
    stream: u64,
) -> Result<f64> {
    let mut rng = rng_for(seed, Stream::Eval, stream);
    let eval_batch = 1000;
    match trained {
        TrainedCell::Sbn(model) => {
            let (upper, lower) = split_halves(&images.to_tensor::<f32>())?;
            model.negative_log_likelihood(&upper, &lower, samples, eval_batch, &mut rng)
        }
        TrainedCell::Vae(model) => {
            model.importance_weighted_bound(&images.to_tensor(), samples, eval_batch, &mut rng)
        }
    }
}

/// Trains one cell on `train` images (`[n, 784]`, binary) and evaluates it on `test`.
/// `on_epoch(epoch, mean training cost)` is called after every epoch.
#[allow(dead_code)] // the runner calls `run_cell_resumable`; tests/suite/table1.rs calls this
pub fn run_cell(
    cell: &Cell,
    budget: &Budget,
    train: &Pixels,
    test: &Pixels,
    command: &str,
    on_epoch: &mut dyn FnMut(u64, f64),
) -> Result<CellResult> {
    run_cell_resumable(cell, budget, train, test, command, None, on_epoch)
}

/// [`run_cell`] with the SBN rows checkpointing to (and resuming from) `checkpoints`
/// (see [`train_cell_resumable`]). `wall_seconds` counts this call only.
pub fn run_cell_resumable(
    cell: &Cell,
    budget: &Budget,
    train: &Pixels,
    test: &Pixels,
    command: &str,
    checkpoints: Option<&Path>,
    on_epoch: &mut dyn FnMut(u64, f64),
) -> Result<CellResult> {
    let started = Instant::now();
    let trained = train_cell_resumable(cell, budget, train, checkpoints, on_epoch)?;
    let nats = evaluate_cell(&trained, test, budget.eval_samples, budget.seed, 0)?;
    Ok(CellResult::new(cell, budget, nats, started, command, None))
}

/// How a cell's learning rate was chosen: every candidate's validation score.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// `(learning rate, validation nats)` for every candidate, in the order tried.
    pub candidates: Vec<(f64, f64)>,
    /// `m` of the validation evaluation.
    pub valid_samples: usize,
}

impl Selection {
    /// The results file's keys for it: `valid_samples`, and `lr_grid`, an array of
    /// `{"learning_rate", "valid_nats"}` (nats to 3 decimals).
    pub fn json_fields(&self) -> [(String, Json); 2] {
        let grid = self
            .candidates
            .iter()
            .map(|&(rate, nats)| {
                Json::Object(vec![
                    ("learning_rate".into(), cli::number("learning_rate", rate)),
                    ("valid_nats".into(), rounded_number("valid_nats", nats, 3)),
                ])
            })
            .collect();
        [
            (
                "valid_samples".into(),
                Json::from_u64(self.valid_samples as u64),
            ),
            ("lr_grid".into(), Json::Array(grid)),
        ]
    }
}

/// The paper's protocol (§4): trains the cell once per learning rate in `grid`, scores
/// each model on the `valid` images with `valid_samples` samples, and reports the best
/// one's test measure (with the budget's `eval_samples`). `wall_seconds` counts every
/// candidate's training. Ties keep the earlier candidate.
#[allow(clippy::too_many_arguments)]
pub fn run_cell_with_selection(
    cell: &Cell,
    budget: &Budget,
    grid: &[f64],
    train: &Pixels,
    valid: &Pixels,
    valid_samples: usize,
    test: &Pixels,
    command: &str,
    on_candidate: &mut dyn FnMut(f64, f64),
    on_epoch: &mut dyn FnMut(u64, f64),
) -> Result<CellResult> {
    if grid.is_empty() || grid.iter().any(|rate| !(rate.is_finite() && *rate > 0.0)) {
        return Err(Error::invalid_argument(
            "run_cell_with_selection",
            format!("the learning-rate grid must be non-empty and positive, got {grid:?}"),
        ));
    }
    let started = Instant::now();
    let mut best: Option<(f64, f64, TrainedCell)> = None;
    let mut candidates = Vec::with_capacity(grid.len());
    for &learning_rate in grid {
        let candidate_budget = Budget {
            learning_rate,
            ..budget.clone()
        };
        let trained = train_cell(cell, &candidate_budget, train, on_epoch)?;
        let valid_nats = evaluate_cell(&trained, valid, valid_samples, budget.seed, 1)?;
        on_candidate(learning_rate, valid_nats);
        candidates.push((learning_rate, valid_nats));
        if best.as_ref().is_none_or(|(_, nats, _)| valid_nats < *nats) {
            best = Some((learning_rate, valid_nats, trained));
        }
    }
    let (learning_rate, _, trained) = best.expect("the grid is not empty");
    let nats = evaluate_cell(&trained, test, budget.eval_samples, budget.seed, 0)?;
    let chosen = Budget {
        learning_rate,
        ..budget.clone()
    };
    let selection = Selection {
        candidates,
        valid_samples,
    };
    Ok(CellResult::new(
        cell,
        &chosen,
        nats,
        started,
        command,
        Some(selection),
    ))
}

fn check_finite_cost(cell: &Cell, cost: f64) -> Result<()> {
    if cost.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "run_cell",
            format!("{}: the training cost became {cost}", cell.label()),
        ))
    }
}

/// The results file: a JSON array of cell objects, read, merged and written atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultsFile {
    entries: Vec<Json>,
}

impl ResultsFile {
    /// Reads `path`; a missing file is an empty table, a malformed one an error naming
    /// the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(path, &e)),
        };
        let value = Json::parse(&text).map_err(|why| Error::bad_file(path, why))?;
        let entries = value
            .as_array()
            .ok_or_else(|| Error::bad_file(path, "expected a JSON array of cell objects"))?
            .to_vec();
        for entry in &entries {
            if entry.get("model").and_then(Json::as_str).is_none()
                || entry.get("estimator").and_then(Json::as_str).is_none()
            {
                return Err(Error::bad_file(
                    path,
                    format!("an entry lacks a \"model\" or \"estimator\" string: {entry}"),
                ));
            }
        }
        Ok(ResultsFile { entries })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Json] {
        &self.entries
    }

    /// The entry of a cell, if it has one.
    pub fn get(&self, cell: &Cell) -> Option<&Json> {
        self.get_entry(cell.model, cell.estimator)
    }

    /// The entry whose `model` and `estimator` are these, if there is one.
    pub fn get_entry(&self, model: &str, estimator: &str) -> Option<&Json> {
        self.entries.iter().find(|e| {
            e.get("model").and_then(Json::as_str) == Some(model)
                && e.get("estimator").and_then(Json::as_str) == Some(estimator)
        })
    }

    /// Adds `entry` (an object with `model` and `estimator` strings) or replaces the
    /// entry of the same model and estimator, then sorts the entries by the position of
    /// their model in `models`, then of their estimator in `estimators` (unknown ones
    /// last, in the order they came).
    pub fn insert_entry(&mut self, entry: Json, models: &[&str], estimators: &[&str]) {
        let key = |e: &Json| {
            (
                e.get("model").and_then(Json::as_str).map(str::to_string),
                e.get("estimator")
                    .and_then(Json::as_str)
                    .map(str::to_string),
            )
        };
        let new_key = key(&entry);
        self.entries.retain(|e| key(e) != new_key);
        self.entries.push(entry);
        let order = |e: &Json| {
            let find = |list: &[&str], key| {
                e.get(key)
                    .and_then(Json::as_str)
                    .and_then(|v| list.iter().position(|x| *x == v))
                    .unwrap_or(usize::MAX)
            };
            (find(models, "model"), find(estimators, "estimator"))
        };
        self.entries.sort_by_key(order);
    }

    /// Merges `entry` into the results file at `path` (see [`ResultsFile::insert_entry`])
    /// while holding an exclusive lock on `<path>.lock`, so that processes finishing
    /// cells of one results file at the same moment each keep their entry: without the
    /// lock, two could read the same table and the later write would drop the other's
    /// cell. The operating system releases the lock if the process dies; the lock file
    /// itself stays (it is empty).
    pub fn merge_into(
        path: impl AsRef<Path>,
        entry: Json,
        models: &[&str],
        estimators: &[&str],
    ) -> Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
        }
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock_path = std::path::PathBuf::from(lock_name);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, &e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, &e))?;
        let mut table = ResultsFile::load(path)?;
        table.insert_entry(entry, models, estimators);
        table.save(path)
        // Dropping `lock` closes the file, which releases the lock.
    }

    /// Writes the table atomically, one cell per line.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
        }
        let lines: Vec<String> = self.entries.iter().map(|e| format!("  {e}")).collect();
        let text = if lines.is_empty() {
            "[]\n".to_string()
        } else {
            format!("[\n{}\n]\n", lines.join(",\n"))
        };
        write_atomic(path, text.as_bytes())
    }
}
