//! Trains the categorical VAE of Jang, Gu & Poole (2017) and shows what it learned.
//!
//! With no arguments it trains on digits the crate draws itself (no download), in about
//! a minute on two cores, and writes pictures and metrics to `out/categorical_vae/`:
//!
//! ```text
//! cargo run --release --example categorical_vae
//! cargo run --release --example categorical_vae -- --binarized-mnist ../shared/data/binarized_mnist --epochs 10
//! cargo run --release --example categorical_vae -- --help
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use gumbelgrad::data::{
    AmatSplit, Dataset, MnistSplit, SyntheticDigits, load_binarized_mnist, load_mnist,
};
use gumbelgrad::estimators::{ESTIMATOR_NAMES, TemperatureSchedule};
use gumbelgrad::io::{LinePlot, ProgressBar, Series, save_image_grid, write_atomic};
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::models::{DiscreteVae, EvalMode, Latent, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use gumbelgrad::{Error, Tape, Tensor};

const HELP: &str = "\
Train a categorical VAE (20 variables x 10 classes; or a Bernoulli VAE) with a discrete-latent
gradient estimator.

USAGE: cargo run --release --example categorical_vae -- [OPTIONS]

DATA (default: 20,000 + 2,000 synthetic binary digits drawn by the crate)
  --mnist DIR             MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...), binarised
                          dynamically (resampled every minibatch)
  --binarized-mnist DIR   statically binarised MNIST (binarized_mnist_{train,test}.amat[.gz])

TRAINING
  --estimator NAME        gradient estimator (default gumbel-softmax, or relaxed-bernoulli with
                          --bernoulli); one of: {names}
  --bernoulli UNITS       train the Bernoulli VAE with UNITS binary latents (the paper: 200)
                          instead of the categorical one (20 variables x 10 classes)
  --epochs N              passes over the training set (default 8; 10 on MNIST)
  --batch-size N          examples per step (default 100)
  --lr RATE               Adam learning rate (default 1e-3)
  --tau0 T                initial temperature (default 1.0)
  --tau-min T             temperature floor (default 0.5)
  --anneal-rate R         tau = max(tau-min, tau0 * exp(-R * step)) (default 3e-5)
  --anneal-every N        ... updated every N steps (default 1000)
  --seed S                seed of every random number (default 0)
  --threads N             threads for the matrix products (default 2)
  --resume FILE           continue from a checkpoint written by an earlier run

OUTPUT
  --out DIR               where pictures, metrics and checkpoints go (default out/categorical_vae)
  --eval-samples M        samples of the importance-weighted test bound (default 100; 1 = none)
  --json                  end with one JSON line: test_neg_elbo, test_iw_bound, epochs, train_seconds
  --help                  this text
";

#[derive(Debug)]
struct Args {
    mnist: Option<PathBuf>,
    binarized_mnist: Option<PathBuf>,
    estimator: Option<String>,
    bernoulli: Option<usize>,
    epochs: Option<u64>,
    batch_size: usize,
    learning_rate: f64,
    tau0: f64,
    tau_min: f64,
    anneal_rate: f64,
    anneal_every: u64,
    seed: u64,
    threads: usize,
    out: PathBuf,
    eval_samples: usize,
    resume: Option<PathBuf>,
    json: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        mnist: None,
        binarized_mnist: None,
        estimator: None,
        bernoulli: None,
        epochs: None,
        batch_size: 100,
        learning_rate: 1e-3,
        tau0: 1.0,
        tau_min: 0.5,
        anneal_rate: 3e-5,
        anneal_every: 1000,
        seed: 0,
        threads: 2,
        out: PathBuf::from("out/categorical_vae"),
        eval_samples: 100,
        resume: None,
        json: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = |name: &str| words.next().ok_or_else(|| format!("{name} needs a value"));
        fn number<N: std::str::FromStr>(flag: &str, text: String) -> Result<N, String> {
            text.parse()
                .map_err(|_| format!("{flag}: '{text}' is not a valid number"))
        }
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--json" => args.json = true,
            "--mnist" => args.mnist = Some(value(&flag)?.into()),
            "--binarized-mnist" => args.binarized_mnist = Some(value(&flag)?.into()),
            "--estimator" => args.estimator = Some(value(&flag)?),
            "--bernoulli" => args.bernoulli = Some(number(&flag, value(&flag)?)?),
            "--epochs" => args.epochs = Some(number(&flag, value(&flag)?)?),
            "--batch-size" => args.batch_size = number(&flag, value(&flag)?)?,
            "--lr" => args.learning_rate = number(&flag, value(&flag)?)?,
            "--tau0" => args.tau0 = number(&flag, value(&flag)?)?,
            "--tau-min" => args.tau_min = number(&flag, value(&flag)?)?,
            "--anneal-rate" => args.anneal_rate = number(&flag, value(&flag)?)?,
            "--anneal-every" => args.anneal_every = number(&flag, value(&flag)?)?,
            "--seed" => args.seed = number(&flag, value(&flag)?)?,
            "--threads" => args.threads = number(&flag, value(&flag)?)?,
            "--out" => args.out = value(&flag)?.into(),
            "--eval-samples" => args.eval_samples = number(&flag, value(&flag)?)?,
            "--resume" => args.resume = Some(value(&flag)?.into()),
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if args.mnist.is_some() && args.binarized_mnist.is_some() {
        return Err("give --mnist or --binarized-mnist, not both".into());
    }
    if args.batch_size == 0 || args.threads == 0 || args.eval_samples == 0 {
        return Err("--batch-size, --threads and --eval-samples must be at least 1".into());
    }
    if !(args.learning_rate.is_finite() && args.learning_rate > 0.0) {
        return Err(format!(
            "--lr must be a positive number, got {}",
            args.learning_rate
        ));
    }
    Ok(Some(args))
}

/// Train and test images, and whether they need dynamic binarisation.
fn load_data(args: &Args) -> Result<(Dataset, Dataset, bool, &'static str), Error> {
    if let Some(dir) = &args.mnist {
        let train = load_mnist(dir, MnistSplit::Train)?;
        let test = load_mnist(dir, MnistSplit::Test)?;
        // Test images get one fixed binarisation, so every evaluation sees the same data.
        let test_images = gumbelgrad::data::binarize::sample(
            &test.images.to_tensor(),
            &mut rng_for(args.seed, Stream::Eval, 1),
        );
        let test = Dataset::new(test_images, test.labels, test.height, test.width)?;
        Ok((train, test, true, "MNIST (dynamically binarised)"))
    } else if let Some(dir) = &args.binarized_mnist {
        let train = load_binarized_mnist(dir, AmatSplit::Train)?;
        let test = load_binarized_mnist(dir, AmatSplit::Test)?;
        Ok((train, test, false, "statically binarised MNIST"))
    } else {
        let (train, test) = SyntheticDigits::new(args.seed).generate();
        Ok((train, test, false, "synthetic digits drawn by the crate"))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", HELP.replace("{names}", &ESTIMATOR_NAMES.join(", ")));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    gumbelgrad::kernels::set_num_threads(args.threads);
    let (train, test, dynamic_binarization, data_name) = load_data(args)?;
    let on_mnist = args.mnist.is_some() || args.binarized_mnist.is_some();
    let epochs = args.epochs.unwrap_or(if on_mnist { 10 } else { 8 });
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
        learning_rate: LearningRateSchedule::Constant(args.learning_rate),
        temperature: TemperatureSchedule::exponential(
            args.tau0,
            args.anneal_rate,
            args.anneal_every,
            args.tau_min,
        )?,
        estimator: estimator.clone(),
        dynamic_binarization,
        seed: args.seed,
    };
    let mut trainer = match &args.resume {
        Some(path) => Trainer::<f32>::resume(path, model_config, config)?,
        None => Trainer::<f32>::new(model_config, config)?,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, &e))?;
    let say = |text: String| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    say(format!(
        "data: {data_name}, {} train / {} test images; estimator {}; {epochs} epochs of {} steps; {} thread(s)",
        train.len(),
        test.len(),
        estimator,
        trainer.steps_per_epoch(&train.images),
        args.threads
    ));
    if trainer.epochs() > 0 {
        say(format!(
            "resumed at epoch {} (step {})",
            trainer.epochs(),
            trainer.steps()
        ));
    }

    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics = match &args.resume {
        Some(_) => std::fs::read_to_string(&metrics_path).unwrap_or_default(),
        None => String::new(),
    };
    let mut losses: Vec<f64> = Vec::new();
    let mut test_curve: Vec<(f64, f64)> = Vec::new();
    let steps_per_epoch = trainer.steps_per_epoch(&train.images);
    // Training draws its minibatches from the byte pixels; the (smaller) test set is
    // evaluated many times, so it is converted to floats once.
    let test_images: Tensor<f32> = test.images.to_tensor();
    let started = Instant::now();
    while trainer.epochs() < epochs {
        let epoch_started = Instant::now();
        let first_step = trainer.steps();
        let mut bar = ProgressBar::new(steps_per_epoch);
        let report = trainer.train_epoch(&train.images, |step| {
            losses.push(step.loss);
            bar.set(
                step.step - first_step,
                &format!(
                    "epoch {}  loss {:7.2}  tau {:.3}",
                    trainer_epoch_label(step.step, steps_per_epoch),
                    step.loss,
                    step.temperature
                ),
            );
        })?;
        let test_neg_elbo = trainer.model().evaluate(
            &test_images,
            500,
            EvalMode::Hard,
            &mut rng_for(args.seed, Stream::Eval, report.epoch),
        )?;
        test_curve.push((report.steps as f64, test_neg_elbo));
        metrics.push_str(&format!(
            "{{\"epoch\": {}, \"steps\": {}, \"train_loss\": {:.4}, \"test_neg_elbo\": {:.4}, \"temperature\": {:.5}, \"epoch_seconds\": {:.3}}}\n",
            report.epoch,
            report.steps,
            report.mean_loss,
            test_neg_elbo,
            report.temperature,
            epoch_started.elapsed().as_secs_f64()
        ));
        write_atomic(&metrics_path, metrics.as_bytes())?;
        trainer.save_checkpoint(args.out.join("checkpoint.safetensors"))?;
        bar.finish(&format!("epoch {} done", report.epoch));
        say(format!(
            "epoch {:3}  train -ELBO {:8.3}  test -ELBO (hard) {:8.3}  tau {:.3}  {:.1} s",
            report.epoch,
            report.mean_loss,
            test_neg_elbo,
            report.temperature,
            epoch_started.elapsed().as_secs_f64()
        ));
    }
    let train_seconds = started.elapsed().as_secs_f64();

    let model = trainer.model();
    let mut eval_rng = rng_for(args.seed, Stream::Eval, u64::MAX);
    let hard = model.evaluate(&test_images, 500, EvalMode::Hard, &mut eval_rng)?;
    let relaxed = model.evaluate(
        &test_images,
        500,
        EvalMode::Relaxed(trainer.last_temperature()?),
        &mut eval_rng,
    )?;
    say(format!(
        "test -ELBO, hard samples (the discrete model's bound): {hard:.3} nats"
    ));
    say(format!(
        "test -ELBO, relaxed samples at tau {:.3} (what Gumbel-Softmax trains on; not a bound): {relaxed:.3} nats",
        trainer.last_temperature()?
    ));
    let iw_bound = if args.eval_samples > 1 {
        let bound = model.importance_weighted_bound(
            &test_images,
            args.eval_samples,
            1000,
            &mut eval_rng,
        )?;
        say(format!(
            "test importance-weighted bound, m = {}: {bound:.3} nats",
            args.eval_samples
        ));
        Some(bound)
    } else {
        None
    };
    say(format!("trained for {train_seconds:.1} s"));

    draw_pictures(model, &test, &args.out, losses, test_curve, args.seed)?;
    say(format!(
        "wrote {0}/reconstructions.png, {0}/latent_classes.png, {0}/samples.png, {0}/loss.png, {0}/metrics.jsonl, {0}/checkpoint.safetensors",
        args.out.display()
    ));
    if args.json {
        let mut line = format!("{{\"test_neg_elbo\": {hard:.4}");
        if let Some(bound) = iw_bound {
            line.push_str(&format!(", \"test_iw_bound\": {bound:.4}"));
        }
        line.push_str(&format!(
            ", \"epochs\": {epochs}, \"train_seconds\": {train_seconds:.2}}}"
        ));
        println!("{line}");
    }
    Ok(())
}

/// The 1-based epoch a step belongs to.
fn trainer_epoch_label(step: u64, steps_per_epoch: u64) -> u64 {
    (step - 1) / steps_per_epoch.max(1) + 1
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

fn draw_pictures(
    model: &DiscreteVae<f32>,
    test: &Dataset,
    out: &Path,
    losses: Vec<f64>,
    test_curve: Vec<(f64, f64)>,
    seed: u64,
) -> Result<(), Error> {
    let config = model.config();
    let width = config.latent_dim();
    let mut rng = rng_for(seed, Stream::Eval, 7);

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
    save_image_grid(
        out.join("reconstructions.png"),
        &Tensor::from_vec(2 * count, config.input_dim, pairs)?,
        test.height,
        test.width,
        16,
        1,
    )?;

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
    save_image_grid(
        out.join("latent_classes.png"),
        &images,
        test.height,
        test.width,
        values,
        1,
    )?;

    // Samples from the uniform prior.
    let prior_logits = Tensor::zeros(100, width);
    let (codes, _) = model.sample_hard(&prior_logits, &mut rng)?;
    let images = decode_probabilities(model, &codes)?;
    save_image_grid(
        out.join("samples.png"),
        &images,
        test.height,
        test.width,
        10,
        1,
    )?;

    // Loss curve: training loss per step (smoothed over 20 steps) and test -ELBO per epoch.
    let smoothed: Vec<(f64, f64)> = losses
        .chunks(20)
        .enumerate()
        .map(|(i, chunk)| {
            (
                (i * 20 + chunk.len()) as f64,
                chunk.iter().sum::<f64>() / chunk.len() as f64,
            )
        })
        .collect();
    if !smoothed.is_empty() {
        LinePlot::new(640, 400)
            .series(Series::new("train -ELBO (relaxed, 20-step mean)", smoothed))
            .series(Series::new("test -ELBO (hard)", test_curve))
            .save(out.join("loss.png"))?;
    }
    Ok(())
}
