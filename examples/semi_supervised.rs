//! Semi-supervised classification with the M2 model (Kingma et al. 2014), §4.3 of Jang,
//! Gu & Poole (2017): how much faster one Gumbel-Softmax sample of the class is than
//! marginalising over all `k` classes (the paper's Fig. 5), and what accuracy the
//! classifier `q(y|x)` reaches with 100 labels (the paper's Table 2).
//!
//! ```text
//! cargo run --release --example semi_supervised -- --timing-only --threads 1
//! cargo run --release --example semi_supervised -- --no-timing --mnist path/to/mnist --estimator gs --epochs 75
//! cargo run --release --example semi_supervised -- --help
//! ```
//!
//! What these measured is in `docs/semi-supervised.md`.
//!
//! Part 1 (timing) trains M2 models with `k = 10` and `k = 100` classes on random binary
//! data of MNIST's shape, alternating marginalisation and one Gumbel-Softmax sample step
//! by step, and prints the median milliseconds per step and their ratio for each `k`.
//! Part 2 (accuracy) trains on 100 labelled images (10 per class) and the rest of the
//! training images unlabelled, and reports the test accuracy of `q(y|x)` after every
//! epoch. Without `--mnist` it uses the crate's synthetic digits.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use gumbelgrad::data::{Dataset, Minibatches, MnistSplit, Pixels, SyntheticDigits, load_mnist};
use gumbelgrad::estimators::TemperatureSchedule;
use gumbelgrad::io::ProgressBar;
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::models::semi_supervised::SemiSupervisedTrainConfig;
use gumbelgrad::models::{SemiSupervisedConfig, SemiSupervisedTrainer};
use gumbelgrad::optim::LearningRateSchedule;
use gumbelgrad::{Error, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

/// Semi-supervised M2 model: cost of marginalising over k classes versus one
/// Gumbel-Softmax sample (k = 10 and 100), and test accuracy with 100 labels.
#[derive(Debug, Parser)]
#[command(name = "semi_supervised", version)]
struct Args {
    #[command(flatten)]
    mnist: cli::Mnist,
    /// Unlabelled objective of the accuracy run
    #[arg(long, value_name = "NAME", default_value = "gs",
          value_parser = ["gs", "gumbel-softmax", "st-gs", "st-gumbel-softmax", "marginal"])]
    estimator: String,
    /// Passes over the unlabelled images
    #[arg(long, value_name = "N", default_value_t = 10)]
    epochs: u64,
    /// Weight of the labelled cross-entropy
    #[arg(long, value_name = "A", default_value_t = 100.0, value_parser = cli::non_negative)]
    alpha: f64,
    /// Weight of the unlabelled loss (0 = labels alone, the baseline)
    #[arg(long, value_name = "W", default_value_t = 1.0, value_parser = cli::non_negative)]
    unlabelled_weight: f64,
    /// Adam learning rate
    #[arg(long, value_name = "RATE", default_value_t = 1e-3, value_parser = cli::positive)]
    lr: f64,
    /// Labelled images per class
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = cli::at_least_one)]
    labels_per_class: usize,
    #[command(flatten)]
    threads: cli::Threads,
    #[command(flatten)]
    seed: cli::Seed,
    /// Only the timing part
    #[arg(long, conflicts_with = "no_timing")]
    timing_only: bool,
    /// Only the accuracy part
    #[arg(long)]
    no_timing: bool,
    /// Timed steps per (k, objective), after 3 warm-up steps
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = cli::at_least_one)]
    timing_steps: usize,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    args.threads.apply();
    let result = (|| -> Result<(), Error> {
        if !args.no_timing {
            time_steps(&args)?;
        }
        if !args.timing_only {
            train_and_test(&args)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

const BATCH: usize = 100;
const PIXELS: usize = 784;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Part 1: median ms per training step, marginal vs one Gumbel-Softmax sample, for
/// k = 10 and k = 100, the eight kinds of step (k, objective, with or without a labelled
/// batch) interleaved so that machine noise hits all of them alike.
fn time_steps(args: &Args) -> Result<(), Error> {
    let mut rng = StdRng::seed_from_u64(args.seed.seed);
    let binary = |rows: usize, rng: &mut StdRng| {
        let pixels = (0..rows * PIXELS)
            .map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 })
            .collect();
        Tensor::<f32>::from_vec(rows, PIXELS, pixels)
    };
    let unlabelled = binary(BATCH, &mut rng)?;
    let labelled = binary(BATCH, &mut rng)?;
    let class_counts = [10usize, 100];
    let objectives = ["marginal", "gumbel-softmax"];
    let step_kinds = [true, false]; // with a labelled batch, unlabelled only
    struct Cell {
        k: usize,
        with_labelled: bool,
        labels: Vec<usize>,
        trainer: SemiSupervisedTrainer<f32>,
        times: Vec<f64>,
    }
    let mut cells = Vec::new();
    for &with_labelled in &step_kinds {
        for &k in &class_counts {
            let labels: Vec<usize> = (0..BATCH).map(|_| rng.random_range(0..k)).collect();
            for objective in objectives {
                let config = SemiSupervisedTrainConfig {
                    objective: objective.to_string(),
                    seed: args.seed.seed,
                    ..SemiSupervisedTrainConfig::default()
                };
                let trainer =
                    SemiSupervisedTrainer::<f32>::new(SemiSupervisedConfig::mnist(k), config)?;
                cells.push(Cell {
                    k,
                    with_labelled,
                    labels: labels.clone(),
                    trainer,
                    times: Vec::new(),
                });
            }
        }
    }
    println!(
        "timing: M2 MLP (784-500-k classifier, (784+k)-500-100 encoder, (k+50)-500-784 decoder), f32, \
         {} thread(s); one step = forward + backward + Adam on {BATCH} unlabelled images (and {BATCH} \
         labelled ones where said); {} timed steps per cell after 3 warm-up, all cells interleaved",
        args.threads.threads, args.timing_steps
    );
    let rounds = 3 + args.timing_steps;
    let cells_len = cells.len();
    let mut bar = ProgressBar::new((rounds * cells.len()) as u64);
    for round in 0..rounds {
        for (index, cell) in cells.iter_mut().enumerate() {
            let labelled_batch = cell.with_labelled.then_some((&labelled, &cell.labels[..]));
            let started = Instant::now();
            cell.trainer.step(&unlabelled, labelled_batch)?;
            if round >= 3 {
                cell.times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            bar.set(
                (round * cells_len + index + 1) as u64,
                &format!(
                    "round {}/{rounds} ({})  k = {}",
                    round + 1,
                    if round < 3 { "warm-up" } else { "timed" },
                    cell.k
                ),
            );
        }
    }
    bar.finish("timing done");
    println!(
        "| step | k | marginal (ms/step) | Gumbel-Softmax (ms/step) | speedup | paper (Fig. 5) |"
    );
    println!("|---|---|---|---|---|---|");
    for pair in cells.chunks_mut(2) {
        let marginal = median(&mut pair[0].times);
        let sampled = median(&mut pair[1].times);
        let (k, with_labelled) = (pair[0].k, pair[0].with_labelled);
        let kind = if with_labelled {
            "100 unlabelled + 100 labelled"
        } else {
            "100 unlabelled"
        };
        let paper = if k == 10 { "2x" } else { "9.9x" };
        println!(
            "| {kind} | {k} | {marginal:.2} | {sampled:.2} | {:.2}x | {paper} |",
            marginal / sampled
        );
    }
    Ok(())
}

/// Train and test images (test binarised once, train dynamically), with labels as
/// `usize`, and a name for the data.
struct Data {
    train: Dataset,
    test_images: Tensor<f32>,
    test_labels: Vec<usize>,
    name: &'static str,
}

fn load_data(args: &Args) -> Result<Data, Error> {
    let (train, test, name) = match &args.mnist.mnist {
        Some(dir) => {
            // The paper's split: the first 50,000 training images (the last 10,000 are
            // the usual validation set, unused here).
            let train = load_mnist(dir, MnistSplit::Train)?.take(50_000);
            let test = load_mnist(dir, MnistSplit::Test)?;
            (
                train,
                test,
                "MNIST (train: first 50,000, dynamically binarised; test: 10,000 binarised once)",
            )
        }
        None => {
            let (train, test) = SyntheticDigits::new(args.seed.seed).generate();
            (
                train,
                test,
                "synthetic digits drawn by the crate (20,000 + 2,000)",
            )
        }
    };
    let test_images = gumbelgrad::data::binarize::sample(
        &test.images.to_tensor(),
        &mut rng_for(args.seed.seed, Stream::Eval, 1),
    );
    let test_labels = labels_of(&test)?;
    Ok(Data {
        train,
        test_images,
        test_labels,
        name,
    })
}

fn labels_of(data: &Dataset) -> Result<Vec<usize>, Error> {
    data.labels
        .as_ref()
        .map(|labels| labels.iter().map(|&l| l as usize).collect())
        .ok_or_else(|| Error::invalid_argument("semi_supervised", "the data set has no labels"))
}

/// Indices of `per_class` images of each of the 10 classes (seeded), and of all others.
fn split_labelled(labels: &[usize], per_class: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(&mut rng_for(seed, Stream::Init, 1));
    let mut taken = [0usize; 10];
    let (mut labelled, mut unlabelled) = (Vec::new(), Vec::new());
    for index in order {
        let class = labels[index];
        if class < 10 && taken[class] < per_class {
            taken[class] += 1;
            labelled.push(index);
        } else {
            unlabelled.push(index);
        }
    }
    labelled.sort_unstable();
    unlabelled.sort_unstable();
    (labelled, unlabelled)
}

/// Rows of `images`, each pixel resampled as Bernoulli(grey level)
/// (`data::binarize::sample` on the gathered minibatch).
fn binarised_rows(images: &Pixels, rows: &[usize], rng: &mut StdRng) -> Tensor<f32> {
    gumbelgrad::data::binarize::sample(&images.gather(rows), rng)
}

/// Part 2: 100 labels + the rest unlabelled; test accuracy of q(y|x) every epoch.
fn train_and_test(args: &Args) -> Result<(), Error> {
    let seed = args.seed.seed;
    let data = load_data(args)?;
    let train_labels = labels_of(&data.train)?;
    let (labelled_rows, unlabelled_rows) =
        split_labelled(&train_labels, args.labels_per_class, seed);
    if unlabelled_rows.len() < BATCH {
        return Err(Error::invalid_argument(
            "semi_supervised",
            format!(
                "--labels-per-class {} leaves {} unlabelled training images, fewer than one batch of {BATCH}",
                args.labels_per_class,
                unlabelled_rows.len()
            ),
        ));
    }
    let labelled_labels: Vec<usize> = labelled_rows.iter().map(|&r| train_labels[r]).collect();
    let objective = match args.estimator.as_str() {
        "gs" => "gumbel-softmax",
        "st-gs" => "st-gumbel-softmax",
        other => other,
    };
    let config = SemiSupervisedTrainConfig {
        learning_rate: LearningRateSchedule::Constant(args.lr),
        temperature: TemperatureSchedule::exponential(1.0, 3e-5, 2000, 0.5)?,
        objective: objective.to_string(),
        alpha: args.alpha,
        unlabelled_weight: args.unlabelled_weight,
        seed,
    };
    let mut trainer = SemiSupervisedTrainer::<f32>::new(SemiSupervisedConfig::mnist(10), config)?;
    let steps_per_epoch = (unlabelled_rows.len() / BATCH) as u64;
    println!(
        "accuracy: {}; {} labelled ({} per class), {} unlabelled; objective {objective}; alpha {}; unlabelled weight {}; \
         Adam {}; {} epochs of {steps_per_epoch} steps (each {BATCH} unlabelled + all {} labelled); {} thread(s)",
        data.name,
        labelled_rows.len(),
        args.labels_per_class,
        unlabelled_rows.len(),
        args.alpha,
        args.unlabelled_weight,
        args.lr,
        args.epochs,
        labelled_rows.len(),
        args.threads.threads
    );
    let started = Instant::now();
    let mut bar = ProgressBar::new(args.epochs * steps_per_epoch);
    for epoch in 0..args.epochs {
        let epoch_started = Instant::now();
        let batches = Minibatches::for_epoch(unlabelled_rows.len(), BATCH, true, seed, epoch)?;
        let (mut total, mut unlabelled_total, mut labelled_total) = (0.0, 0.0, 0.0);
        for (index, batch) in batches.iter().enumerate() {
            let mut rng = rng_for(seed ^ 0x5eed_b1a5, Stream::Step, trainer.steps());
            let rows: Vec<usize> = batch.iter().map(|&i| unlabelled_rows[i]).collect();
            let unlabelled = binarised_rows(&data.train.images, &rows, &mut rng);
            let labelled = binarised_rows(&data.train.images, &labelled_rows, &mut rng);
            let report = trainer.step(&unlabelled, Some((&labelled, &labelled_labels)))?;
            total += report.loss;
            unlabelled_total += report.unlabelled_loss;
            labelled_total += report.labelled_loss;
            bar.set(
                epoch * steps_per_epoch + index as u64 + 1,
                &format!(
                    "epoch {}/{}  U {:7.2}  labelled {:7.2}  tau {:.3}",
                    epoch + 1,
                    args.epochs,
                    report.unlabelled_loss,
                    report.labelled_loss,
                    report.temperature
                ),
            );
        }
        bar.clear();
        let accuracy = trainer
            .model()
            .accuracy(&data.test_images, &data.test_labels, 1000)?;
        let n = steps_per_epoch as f64;
        println!(
            "epoch {:3}  loss {:8.3}  unlabelled U {:8.3}  labelled {:8.3}  test accuracy {:6.2}%  {:.1} s",
            epoch + 1,
            total / n,
            unlabelled_total / n,
            labelled_total / n,
            100.0 * accuracy,
            epoch_started.elapsed().as_secs_f64()
        );
    }
    if args.epochs > 0 {
        bar.finish(&format!("{} epochs done", args.epochs));
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let model = trainer.model();
    let accuracy = model.accuracy(&data.test_images, &data.test_labels, 1000)?;
    let bound =
        model.marginal_bound(&data.test_images, 500, &mut rng_for(seed, Stream::Eval, 2))?;
    println!(
        "final: test accuracy of q(y|x) {:.2}% (paper, CNNs: GS 92.4%, ST-GS 93.6%, marginal 92.6%); \
         test bound U(x) with y marginalised {bound:.2} nats (paper's ELBO: GS -109.6); \
         trained {train_seconds:.0} s",
        100.0 * accuracy
    );
    Ok(())
}
