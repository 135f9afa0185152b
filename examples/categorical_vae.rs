//! Trains the categorical VAE of Jang, Gu & Poole (2017) and shows what it learned.
//!
//! With no arguments it trains on digits the crate draws itself (no download), in about
//! 15 seconds on two cores, and writes pictures and metrics to `out/categorical_vae/`:
//!
//! ```text
//! cargo run --release --example categorical_vae
//! cargo run --release --example categorical_vae -- --binarized-mnist path/to/binarized_mnist --epochs 10
//! cargo run --release --example categorical_vae -- --help
//! ```
//!
//! Results go to stdout (or, with `--json`, only one JSON line goes there and the text
//! goes to stderr); progress goes to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gumbelgrad::data::{
    AmatSplit, Dataset, MnistSplit, SyntheticDigits, load_binarized_mnist, load_mnist,
};
use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, TemperatureSchedule};
use gumbelgrad::io::atomic::remove_stale_temporaries;
use gumbelgrad::io::json::Json;
use gumbelgrad::io::{GridFigure, LinePlot, ProgressBar, Series, image_grid, write_atomic};
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::models::{
    DiscreteVae, EvalMode, Latent, ResumeOptions, TrainConfig, Trainer, VaeConfig,
};
use gumbelgrad::optim::LearningRateSchedule;
use gumbelgrad::{Error, Tape, Tensor};
use rand::rngs::StdRng;

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

const METRICS: &str = "metrics.jsonl";
const CHECKPOINT: &str = "checkpoint.safetensors";
const LOSS_PLOT: &str = "loss.svg";
const RECONSTRUCTIONS: &str = "reconstructions.svg";
const LATENT_CLASSES: &str = "latent_classes.svg";
const SAMPLES: &str = "samples.svg";
/// Every file a run may write into `--out`.
const OUTPUTS: [&str; 6] = [
    METRICS,
    CHECKPOINT,
    LOSS_PLOT,
    RECONSTRUCTIONS,
    LATENT_CLASSES,
    SAMPLES,
];

/// Train a categorical VAE (20 variables x 10 classes; or a Bernoulli VAE) with a
/// discrete-latent gradient estimator, then evaluate it on the test images.
///
/// Data: the crate's synthetic digits (20,000 + 2,000) unless --mnist or
/// --binarized-mnist names a folder.
#[derive(Debug, Parser)]
#[command(name = "categorical_vae", version, after_help = estimator_list())]
struct Args {
    #[command(flatten)]
    data: cli::Data,
    /// Use only the first N training images [default: all]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    train_images: Option<usize>,
    /// Gradient estimator (see the list below) [default: gumbel-softmax, or
    /// relaxed-bernoulli with --bernoulli]
    #[arg(long, value_name = "NAME")]
    estimator: Option<String>,
    /// Train the Bernoulli VAE with UNITS binary latents (the paper: 200) instead of
    /// the categorical one (20 variables x 10 classes)
    #[arg(long, value_name = "UNITS", value_parser = cli::at_least_one)]
    bernoulli: Option<usize>,
    /// Passes over the training set, counted from the start of the run (a resumed run
    /// trains up to this many) [default: 8; 10 on MNIST]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Examples per step
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = cli::at_least_one)]
    batch_size: usize,
    /// Adam learning rate
    #[arg(long, value_name = "RATE", default_value_t = 1e-3, value_parser = cli::positive)]
    lr: f64,
    /// Initial temperature
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = cli::positive)]
    tau0: f64,
    /// Temperature floor (at most --tau0)
    #[arg(long, value_name = "T", default_value_t = 0.5, value_parser = cli::positive)]
    tau_min: f64,
    /// Annealing rate R: tau = max(tau-min, tau0 * exp(-R * step))
    #[arg(long, value_name = "R", default_value_t = 3e-5, value_parser = cli::non_negative)]
    anneal_rate: f64,
    /// Update the temperature every N steps
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    anneal_every: u64,
    #[command(flatten)]
    seed: cli::Seed,
    #[command(flatten)]
    threads: cli::Threads,
    /// Cut each minibatch into N shards, each on its own tape and thread if one is
    /// free, and average their gradients (must divide --batch-size; the result depends
    /// on N, never on --threads; estimators with a baseline or tuned state need 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = cli::at_least_one)]
    shards: usize,
    /// Continue from a checkpoint written by an earlier run (metrics.jsonl in --out is
    /// cut back to the checkpoint's epoch)
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// With --resume: continue even if the batch size, learning rate, temperature
    /// schedule, binarisation or number of training images differ from the checkpoint's
    /// (otherwise an error naming the setting)
    #[arg(long, requires = "resume")]
    allow_changed_settings: bool,
    /// Folder for pictures, metrics and the checkpoint
    #[arg(long, value_name = "DIR", default_value = "out/categorical_vae")]
    out: PathBuf,
    /// Samples per image of the importance-weighted test bound (1 = skip it)
    #[arg(long, value_name = "M", default_value_t = 100, value_parser = cli::at_least_one)]
    eval_samples: usize,
    /// Evaluate on the first N test images only [default: all]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    eval_images: Option<usize>,
    /// Seed of the evaluation's samples [default: --seed]
    #[arg(long, value_name = "S")]
    eval_seed: Option<u64>,
    /// Print one JSON line with every result on stdout (text goes to stderr)
    #[arg(long)]
    json: bool,
}

fn estimator_list() -> String {
    format!("Estimators: {}", ESTIMATOR_NAMES.join(", "))
}

/// Train and test images, and whether they need dynamic binarisation.
fn load_data(args: &Args) -> Result<(Dataset, Dataset, bool, &'static str), Error> {
    let (train, test, dynamic, name) = if let Some(dir) = &args.data.mnist {
        let train = load_mnist(dir, MnistSplit::Train)?;
        let test = load_mnist(dir, MnistSplit::Test)?;
        // Test images get one fixed binarisation, so every evaluation sees the same data.
        let test_images = gumbelgrad::data::binarize::sample(
            &test.images.to_tensor(),
            &mut rng_for(args.seed.seed, Stream::Eval, 1),
        );
        let test = Dataset::new(test_images, test.labels, test.height, test.width)?;
        (train, test, true, "MNIST (dynamically binarised)")
    } else if let Some(dir) = &args.data.binarized_mnist {
        let train = load_binarized_mnist(dir, AmatSplit::Train)?;
        let test = load_binarized_mnist(dir, AmatSplit::Test)?;
        (train, test, false, "statically binarised MNIST")
    } else {
        let (train, test) = SyntheticDigits::new(args.seed.seed).generate();
        (train, test, false, "synthetic digits drawn by the crate")
    };
    let train = match args.train_images {
        Some(n) => train.take(n),
        None => train,
    };
    Ok((train, test, dynamic, name))
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    if args.tau_min > args.tau0 {
        cli::usage_error::<Args>(format!(
            "--tau-min {} is greater than --tau0 {}: the temperature would never anneal",
            args.tau_min, args.tau0
        ));
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

/// Text results: on stdout, or on stderr when stdout carries the JSON line.
struct Say {
    json: bool,
}

impl Say {
    fn line(&self, text: String) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// What is kept of `metrics.jsonl` on resume.
struct KeptMetrics {
    /// The rows up to and including the checkpoint's epoch, one JSON object a line.
    rows: String,
    /// `(steps, test -ELBO)` of those rows, for the loss plot.
    test_curve: Vec<(f64, f64)>,
    /// How many rows were dropped.
    dropped: usize,
}

/// The rows of `metrics.jsonl` up to and including `epoch`, and the test curve they
/// hold; rows of later epochs (written by a run that died before its checkpoint) are
/// dropped.
fn metrics_up_to(path: &Path, epoch: u64) -> Result<KeptMetrics, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(Error::io(path, &error)),
    };
    let (mut kept, mut curve, mut dropped) = (String::new(), Vec::new(), 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row = Json::parse(line).ok();
        let row_epoch = row
            .as_ref()
            .and_then(|r| r.get("epoch"))
            .and_then(Json::as_u64);
        match row_epoch {
            Some(e) if e <= epoch => {
                kept.push_str(line);
                kept.push('\n');
                let row = row.as_ref().expect("parsed above");
                if let (Some(steps), Some(loss)) = (
                    row.get("steps").and_then(Json::as_f64),
                    row.get("test_neg_elbo").and_then(Json::as_f64),
                ) {
                    curve.push((steps, loss));
                }
            }
            _ => dropped += 1,
        }
    }
    Ok(KeptMetrics {
        rows: kept,
        test_curve: curve,
        dropped,
    })
}

/// The first `count` rows of `images`.
fn first_rows(images: &Tensor<f32>, count: usize) -> Result<Tensor<f32>, Error> {
    let count = count.min(images.rows());
    Tensor::from_vec(
        count,
        images.cols(),
        images.as_slice()[..count * images.cols()].to_vec(),
    )
}

fn run(args: &Args) -> Result<(), Error> {
    let say = Say { json: args.json };
    // Fail now, not after an epoch, if the results cannot be written; and clear away
    // temporary files that a killed run left half-written.
    cli::prepare_output(&args.out, &OUTPUTS)?;
    let mut stale = 0;
    for name in OUTPUTS {
        stale += remove_stale_temporaries(args.out.join(name))?;
    }
    if stale > 0 {
        eprintln!(
            "removed {stale} temporary file(s) left in {} by a run that died",
            args.out.display()
        );
    }
    args.threads.apply();
    let seed = args.seed.seed;
    let eval_seed = args.eval_seed.unwrap_or(seed);
    let (train, test, dynamic_binarization, data_name) = load_data(args)?;
    let epochs = args
        .epochs
        .unwrap_or(if args.data.is_real() { 10 } else { 8 });
    let (model_config, default_estimator) = match args.bernoulli {
        Some(units) => (VaeConfig::bernoulli(units), "relaxed-bernoulli"),
        None => (VaeConfig::default(), "gumbel-softmax"),
    };
    let estimator = args
        .estimator
        .clone()
        .unwrap_or(default_estimator.to_string());
    let config = TrainConfig {
        batch_size: args.batch_size,
        learning_rate: LearningRateSchedule::Constant(args.lr),
        temperature: TemperatureSchedule::exponential(
            args.tau0,
            args.anneal_rate,
            args.anneal_every,
            args.tau_min,
        )?,
        estimator: estimator.clone(),
        dynamic_binarization,
        seed,
        shards: args.shards,
    };
    let mut trainer = match &args.resume {
        Some(path) => {
            let estimator = Estimator::<f32>::from_name(&estimator, config.temperature.at(0)?)?;
            let options = ResumeOptions {
                allow_changed_settings: args.allow_changed_settings,
            };
            Trainer::resume_with_options(path, model_config, config, Box::new(estimator), options)?
        }
        None => Trainer::<f32>::new(model_config, config)?,
    };
    let steps_per_epoch = trainer.steps_per_epoch(&train.images);
    // Training draws its minibatches from the byte pixels; the (smaller) test set is
    // evaluated many times, so it is converted to floats once.
    let all_test_images: Tensor<f32> = test.images.to_tensor();
    let test_images = first_rows(&all_test_images, args.eval_images.unwrap_or(usize::MAX))?;
    say.line(format!(
        "data: {data_name}, {} train / {} test images ({} evaluated); estimator {estimator}; {epochs} epochs of {steps_per_epoch} steps; {} thread(s)",
        train.len(),
        test.len(),
        test_images.rows(),
        args.threads.threads
    ));

    let metrics_path = args.out.join(METRICS);
    let checkpoint_path = args.out.join(CHECKPOINT);
    let (mut metrics, mut test_curve) = (String::new(), Vec::new());
    if args.resume.is_some() {
        say.line(format!(
            "resumed at epoch {} (step {})",
            trainer.epochs(),
            trainer.steps()
        ));
        // Metrics are written before the checkpoint, so a run killed between the two
        // leaves rows the checkpoint has not reached: cut them, so that the rows
        // always describe the weights on disk.
        let kept = metrics_up_to(&metrics_path, trainer.epochs())?;
        if kept.dropped > 0 {
            eprintln!(
                "{}: dropped {} row(s) past the checkpoint's epoch {}",
                metrics_path.display(),
                kept.dropped,
                trainer.epochs()
            );
            write_atomic(&metrics_path, kept.rows.as_bytes())?;
        }
        (metrics, test_curve) = (kept.rows, kept.test_curve);
    }
    let mut written: Vec<&str> = Vec::new();
    let mut losses: Vec<f64> = Vec::new();
    let started = Instant::now();
    let first_epoch = trainer.epochs();
    let run_steps = epochs.saturating_sub(first_epoch) * steps_per_epoch;
    let mut bar = ProgressBar::new(run_steps);
    let run_first_step = trainer.steps();
    while trainer.epochs() < epochs {
        let epoch_started = Instant::now();
        let epoch = trainer.epochs() + 1;
        let report = trainer.train_epoch(&train.images, |step| {
            losses.push(step.loss);
            bar.set(
                step.step - run_first_step,
                &format!(
                    "epoch {epoch}/{epochs}  loss {:7.2}  tau {:.3}",
                    step.loss, step.temperature
                ),
            );
        })?;
        let test_neg_elbo = trainer.model().evaluate(
            &test_images,
            500,
            EvalMode::Hard,
            &mut rng_for(eval_seed, Stream::Eval, report.epoch),
        )?;
        test_curve.push((report.steps as f64, test_neg_elbo));
        let epoch_seconds = epoch_started.elapsed().as_secs_f64();
        let row = cli::object([
            ("epoch", Json::from_u64(report.epoch)),
            ("steps", Json::from_u64(report.steps)),
            ("train_loss", cli::number("train_loss", report.mean_loss)),
            ("test_neg_elbo", cli::number("test_neg_elbo", test_neg_elbo)),
            (
                "temperature",
                cli::number("temperature", report.temperature),
            ),
            ("epoch_seconds", cli::number("epoch_seconds", epoch_seconds)),
        ]);
        metrics.push_str(&format!("{row}\n"));
        write_atomic(&metrics_path, metrics.as_bytes())?;
        trainer.save_checkpoint(&checkpoint_path)?;
        bar.clear();
        say.line(format!(
            "epoch {:3}/{epochs}  train -ELBO {:8.3}  test -ELBO (hard) {:8.3}  tau {:.3}  {:.1} s",
            report.epoch, report.mean_loss, test_neg_elbo, report.temperature, epoch_seconds
        ));
    }
    if run_steps > 0 {
        bar.finish(&format!("{epochs} epochs done"));
        written.extend([METRICS, CHECKPOINT]);
    }
    let train_seconds = started.elapsed().as_secs_f64();

    let eval_started = Instant::now();
    let model = trainer.model();
    let temperature = trainer.last_temperature()?;
    let mut eval_rng = rng_for(eval_seed, Stream::Eval, u64::MAX);
    let hard = model.evaluate(&test_images, 500, EvalMode::Hard, &mut eval_rng)?;
    let relaxed = model.evaluate(
        &test_images,
        500,
        EvalMode::Relaxed(temperature),
        &mut eval_rng,
    )?;
    say.line(format!(
        "test -ELBO, hard samples (the discrete model's bound): {hard:.3} nats"
    ));
    say.line(format!(
        "test -ELBO, relaxed samples at tau {temperature:.3} (what the relaxation trains on; not a bound): {relaxed:.3} nats"
    ));
    let iw_bound = if args.eval_samples > 1 {
        let bound =
            importance_weighted_bound(model, &test_images, args.eval_samples, &mut eval_rng)?;
        say.line(format!(
            "test importance-weighted bound, m = {}: {bound:.3} nats",
            args.eval_samples
        ));
        Some(bound)
    } else {
        None
    };
    let eval_seconds = eval_started.elapsed().as_secs_f64();
    say.line(format!(
        "trained for {train_seconds:.1} s, evaluated for {eval_seconds:.1} s"
    ));

    written.extend(draw_pictures(
        model,
        &test,
        &args.out,
        (run_first_step, losses),
        test_curve,
        seed,
    )?);
    if written.is_empty() {
        say.line(format!("wrote nothing to {}", args.out.display()));
    } else {
        say.line(format!(
            "wrote {} in {}",
            written.join(", "),
            args.out.display()
        ));
    }
    if args.json {
        let line = cli::object([
            ("estimator", Json::string(estimator)),
            ("data", Json::string(data_name)),
            ("epochs", Json::from_u64(trainer.epochs())),
            ("steps", Json::from_u64(trainer.steps())),
            ("train_images", Json::from_u64(train.len() as u64)),
            ("test_images", Json::from_u64(test_images.rows() as u64)),
            ("eval_seed", Json::from_u64(eval_seed)),
            ("shards", Json::from_u64(args.shards as u64)),
            ("test_neg_elbo", cli::number("test_neg_elbo", hard)),
            (
                "test_neg_elbo_relaxed",
                cli::number("test_neg_elbo_relaxed", relaxed),
            ),
            (
                "test_iw_bound",
                iw_bound.map_or(Json::Null, |b| cli::number("test_iw_bound", b)),
            ),
            ("iw_samples", Json::from_u64(args.eval_samples as u64)),
            (
                "final_temperature",
                cli::number("final_temperature", temperature),
            ),
            ("train_seconds", cli::number("train_seconds", train_seconds)),
            ("eval_seconds", cli::number("eval_seconds", eval_seconds)),
        ]);
        println!("{line}");
    }
    Ok(())
}

/// The importance-weighted bound over `images`, computed 200 images at a time so that
/// a progress bar can follow it (with m = 1000 it takes minutes); the same value as
/// one call on all images, since the bound is a mean over images.
fn importance_weighted_bound(
    model: &DiscreteVae<f32>,
    images: &Tensor<f32>,
    samples: usize,
    rng: &mut StdRng,
) -> Result<f64, Error> {
    const CHUNK: usize = 200;
    let mut bar = ProgressBar::new(images.rows() as u64).unit("images");
    let mut total = 0.0;
    let cols = images.cols();
    for start in (0..images.rows()).step_by(CHUNK) {
        let end = (start + CHUNK).min(images.rows());
        let chunk = Tensor::from_vec(
            end - start,
            cols,
            images.as_slice()[start * cols..end * cols].to_vec(),
        )?;
        total +=
            (end - start) as f64 * model.importance_weighted_bound(&chunk, samples, 1000, rng)?;
        bar.set(
            end as u64,
            &format!(
                "importance-weighted bound, m = {samples}: {:.3} so far",
                total / end as f64
            ),
        );
    }
    bar.finish(&format!("importance-weighted bound, m = {samples}"));
    Ok(total / images.rows().max(1) as f64)
}

/// Decoded pixel probabilities for a batch of latent codes.
fn decode_probabilities(
    model: &DiscreteVae<f32>,
    codes: &Tensor<f32>,
) -> Result<Tensor<f32>, Error> {
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    model
        .decode(&params, tape.constant(codes))
        .sigmoid()
        .value()
}

/// Draws the figures; returns the names of the files written.
fn draw_pictures(
    model: &DiscreteVae<f32>,
    test: &Dataset,
    out: &Path,
    (first_step, losses): (u64, Vec<f64>),
    test_curve: Vec<(f64, f64)>,
    seed: u64,
) -> Result<Vec<&'static str>, Error> {
    let mut written = Vec::new();
    let config = model.config();
    let width = config.latent_dim();
    let mut rng = rng_for(seed, Stream::Eval, 7);
    let (h, w) = (test.height, test.width);

    // Reconstructions: pairs of columns, a test image then its decoding from a hard sample.
    let count = 32.min(test.len());
    let originals: Tensor<f32> = test.images.gather(&(0..count).collect::<Vec<_>>());
    let logits = model.logits_of(&originals, count)?;
    let (sample, _) = model.sample_hard(&logits, &mut rng)?;
    let decoded = decode_probabilities(model, &sample)?;
    let mut pairs = Vec::with_capacity(2 * count * config.input_dim);
    for row in 0..count {
        pairs.extend_from_slice(originals.row(row));
        pairs.extend_from_slice(decoded.row(row));
    }
    let grid = image_grid(
        &Tensor::from_vec(2 * count, config.input_dim, pairs)?,
        h,
        w,
        16,
        1,
    )?;
    GridFigure::new(grid, h, w, 1)
        .title("Test images and their reconstructions")
        .column_labels((0..16).map(|c| if c % 2 == 0 { "image" } else { "recon." }))
        .caption(format!(
            "Pairs: the first {count} test images, each followed by the decoder's pixel probabilities"
        ))
        .caption("for one hard (one-hot) sample of its latent code; white = 1.")
        .save(out.join(RECONSTRUCTIONS))?;
    written.push(RECONSTRUCTIONS);

    // Latent classes: each row starts from its own code drawn from the prior and sweeps
    // one latent variable through its values (row n: variable n through its K classes,
    // or, for binary units, unit n off and on, the first 20 units), the others held
    // fixed: what changing one discrete variable does to a digit.
    let (rows, values) = match config.latent {
        Latent::Categorical { variables, classes } => (variables, classes),
        Latent::Bernoulli { units } => (units.min(20), 2),
    };
    let (bases, _) = model.sample_hard(&Tensor::zeros(rows, width), &mut rng)?;
    let mut sweep = Vec::with_capacity(rows * values * width);
    for variable in 0..rows {
        for value in 0..values {
            let mut code = bases.row(variable).to_vec();
            match config.latent {
                Latent::Categorical { classes, .. } => {
                    let group = &mut code[variable * classes..(variable + 1) * classes];
                    group.iter_mut().for_each(|x| *x = 0.0);
                    group[value] = 1.0;
                }
                Latent::Bernoulli { .. } => code[variable] = value as f32,
            }
            sweep.extend(code);
        }
    }
    let images = decode_probabilities(model, &Tensor::from_vec(rows * values, width, sweep)?)?;
    let (row_name, column_name) = match config.latent {
        Latent::Categorical { .. } => ("variable", "class"),
        Latent::Bernoulli { .. } => ("unit", "value"),
    };
    GridFigure::new(image_grid(&images, h, w, values, 1)?, h, w, 1)
        .title("What one latent variable does")
        .row_labels((0..rows).map(|r| format!("{row_name} {}", r + 1)))
        .column_labels((0..values).map(|v| format!("{column_name} {}", v + 1)))
        .caption(format!(
            "Row n: a code drawn from the prior with {row_name} n set to each {column_name} in turn,"
        ))
        .caption("the rest held fixed; decoder pixel probabilities, white = 1.")
        .save(out.join(LATENT_CLASSES))?;
    written.push(LATENT_CLASSES);

    // Samples from the uniform prior.
    let (codes, _) = model.sample_hard(&Tensor::zeros(100, width), &mut rng)?;
    let images = decode_probabilities(model, &codes)?;
    GridFigure::new(image_grid(&images, h, w, 10, 1)?, h, w, 1)
        .title("Samples from the model")
        .caption("100 latent codes drawn from the uniform prior, decoded to pixel probabilities (white = 1).")
        .save(out.join(SAMPLES))?;
    written.push(SAMPLES);

    // Loss curve: training loss per step (smoothed over 20 steps) and test -ELBO per epoch.
    let smoothed: Vec<(f64, f64)> = losses
        .chunks(20)
        .enumerate()
        .map(|(i, chunk)| {
            (
                (first_step as usize + i * 20 + chunk.len()) as f64,
                chunk.iter().sum::<f64>() / chunk.len() as f64,
            )
        })
        .collect();
    if !smoothed.is_empty() || !test_curve.is_empty() {
        LinePlot::new(720, 440)
            .title("Training and test loss")
            .x_label("training step (one minibatch each)")
            .y_label("negative ELBO (nats per image)")
            .series(Series::new(
                "train -ELBO (relaxed samples, mean of 20 steps)",
                smoothed,
            ))
            .series(Series::new(
                "test -ELBO (hard samples, after each epoch)",
                test_curve,
            ))
            .save_svg(out.join(LOSS_PLOT))?;
        written.push(LOSS_PLOT);
    }
    Ok(written)
}
