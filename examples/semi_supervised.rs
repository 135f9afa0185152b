//! Semi-supervised classification with the M2 model (Kingma et al. 2014), §4.3 of Jang,
//! Gu & Poole (2017): how much faster one Gumbel-Softmax sample of the class is than
//! marginalising over all `k` classes (the paper's Fig. 5), and what accuracy the
//! classifier `q(y|x)` reaches with 100 labels (the paper's Table 2).
//!
//! ```text
//! cargo run --release --example semi_supervised -- --timing-only --threads 1
//! cargo run --release --example semi_supervised -- --no-timing --mnist /work/shared/data/mnist --estimator gs --epochs 75
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

const HELP: &str = "\
Semi-supervised M2 model: cost of marginalising over k classes versus one Gumbel-Softmax
sample (k = 10 and 100), and test accuracy with 100 labels.

USAGE: cargo run --release --example semi_supervised -- [OPTIONS]

  --mnist DIR          MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...), dynamically
                       binarised; default: the crate's synthetic digits (20,000 + 2,000)
  --estimator NAME     unlabelled objective for the accuracy run: gs, st-gs or marginal
                       (default gs)
  --epochs N           passes over the unlabelled images (default 10)
  --alpha A            weight of the labelled cross-entropy (default 100)
  --unlabelled-weight W  weight of the unlabelled loss (default 1; 0 = labels alone, the baseline)
  --lr RATE            Adam learning rate (default 1e-3)
  --labels-per-class N labelled images per class (default 10, i.e. 100 labels)
  --threads N          threads for the matrix products (default 1)
  --seed S             seed of every random number (default 0)
  --timing-only        only the timing part
  --no-timing          only the accuracy part
  --timing-steps N     timed steps per (k, objective) (default 20, after 3 warm-up steps)
  --help               this text
";

#[derive(Debug)]
struct Args {
    mnist: Option<String>,
    estimator: String,
    epochs: u64,
    alpha: f64,
    unlabelled_weight: f64,
    learning_rate: f64,
    labels_per_class: usize,
    threads: usize,
    seed: u64,
    timing: bool,
    accuracy: bool,
    timing_steps: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        mnist: None,
        estimator: "gs".into(),
        epochs: 10,
        alpha: 100.0,
        unlabelled_weight: 1.0,
        learning_rate: 1e-3,
        labels_per_class: 10,
        threads: 1,
        seed: 0,
        timing: true,
        accuracy: true,
        timing_steps: 20,
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
            "--mnist" => args.mnist = Some(value(&flag)?),
            "--estimator" => args.estimator = value(&flag)?,
            "--epochs" => args.epochs = number(&flag, value(&flag)?)?,
            "--alpha" => args.alpha = number(&flag, value(&flag)?)?,
            "--unlabelled-weight" => args.unlabelled_weight = number(&flag, value(&flag)?)?,
            "--lr" => args.learning_rate = number(&flag, value(&flag)?)?,
            "--labels-per-class" => args.labels_per_class = number(&flag, value(&flag)?)?,
            "--threads" => args.threads = number(&flag, value(&flag)?)?,
            "--seed" => args.seed = number(&flag, value(&flag)?)?,
            "--timing-only" => args.accuracy = false,
            "--no-timing" => args.timing = false,
            "--timing-steps" => args.timing_steps = number(&flag, value(&flag)?)?,
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if !matches!(
        args.estimator.as_str(),
        "gs" | "gumbel-softmax" | "st-gs" | "st-gumbel-softmax" | "marginal"
    ) {
        return Err(format!(
            "--estimator must be gs, st-gs or marginal, got '{}'",
            args.estimator
        ));
    }
    if args.threads == 0 || args.timing_steps == 0 || args.labels_per_class == 0 {
        return Err("--threads, --timing-steps and --labels-per-class must be at least 1".into());
    }
    if !args.timing && !args.accuracy {
        return Err("--timing-only and --no-timing together leave nothing to do".into());
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    gumbelgrad::kernels::set_num_threads(args.threads);
    let result = (|| -> Result<(), Error> {
        if args.timing {
            time_steps(&args)?;
        }
        if args.accuracy {
            train_and_test(&args)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
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
    let mut rng = StdRng::seed_from_u64(args.seed);
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
                    seed: args.seed,
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
        args.threads, args.timing_steps
    );
    for round in 0..3 + args.timing_steps {
        for cell in cells.iter_mut() {
            let labelled_batch = cell.with_labelled.then_some((&labelled, &cell.labels[..]));
            let started = Instant::now();
            cell.trainer.step(&unlabelled, labelled_batch)?;
            if round >= 3 {
                cell.times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
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
    let (train, test, name) = match &args.mnist {
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
            let (train, test) = SyntheticDigits::new(args.seed).generate();
            (
                train,
                test,
                "synthetic digits drawn by the crate (20,000 + 2,000)",
            )
        }
    };
    let test_images = gumbelgrad::data::binarize::sample(
        &test.images.to_tensor(),
        &mut rng_for(args.seed, Stream::Eval, 1),
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
    let data = load_data(args)?;
    let train_labels = labels_of(&data.train)?;
    let (labelled_rows, unlabelled_rows) =
        split_labelled(&train_labels, args.labels_per_class, args.seed);
    let labelled_labels: Vec<usize> = labelled_rows.iter().map(|&r| train_labels[r]).collect();
    let objective = match args.estimator.as_str() {
        "gs" => "gumbel-softmax",
        "st-gs" => "st-gumbel-softmax",
        other => other,
    };
    let config = SemiSupervisedTrainConfig {
        learning_rate: LearningRateSchedule::Constant(args.learning_rate),
        temperature: TemperatureSchedule::exponential(1.0, 3e-5, 2000, 0.5)?,
        objective: objective.to_string(),
        alpha: args.alpha,
        unlabelled_weight: args.unlabelled_weight,
        seed: args.seed,
    };
    let mut trainer = SemiSupervisedTrainer::<f32>::new(SemiSupervisedConfig::mnist(10), config)?;
    let steps_per_epoch = gumbelgrad::models::semi_supervised::steps_per_epoch(
        labelled_rows.len(),
        unlabelled_rows.len(),
        BATCH,
    )?;
    println!(
        "accuracy: {}; {} labelled ({} per class), {} unlabelled; objective {objective}; alpha {}; unlabelled weight {}; \
         Adam {}; {} epochs of {steps_per_epoch} steps (each {BATCH} unlabelled + all {} labelled); {} thread(s)",
        data.name,
        labelled_rows.len(),
        args.labels_per_class,
        unlabelled_rows.len(),
        args.alpha,
        args.unlabelled_weight,
        args.learning_rate,
        args.epochs,
        labelled_rows.len(),
        args.threads
    );
    let started = Instant::now();
    for epoch in 0..args.epochs {
        let epoch_started = Instant::now();
        let batches = Minibatches::for_epoch(unlabelled_rows.len(), BATCH, true, args.seed, epoch)?;
        let mut bar = ProgressBar::new(steps_per_epoch);
        let (mut total, mut unlabelled_total, mut labelled_total) = (0.0, 0.0, 0.0);
        for (index, batch) in batches.iter().enumerate() {
            let mut rng = rng_for(args.seed ^ 0x5eed_b1a5, Stream::Step, trainer.steps());
            let rows: Vec<usize> = batch.iter().map(|&i| unlabelled_rows[i]).collect();
            let unlabelled = binarised_rows(&data.train.images, &rows, &mut rng);
            let labelled = binarised_rows(&data.train.images, &labelled_rows, &mut rng);
            let report = trainer.step(&unlabelled, Some((&labelled, &labelled_labels)))?;
            total += report.loss;
            unlabelled_total += report.unlabelled_loss;
            labelled_total += report.labelled_loss;
            bar.set(
                index as u64 + 1,
                &format!(
                    "epoch {}  U {:7.2}  labelled {:7.2}  tau {:.3}",
                    epoch + 1,
                    report.unlabelled_loss,
                    report.labelled_loss,
                    report.temperature
                ),
            );
        }
        bar.finish(&format!("epoch {} done", epoch + 1));
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
    let train_seconds = started.elapsed().as_secs_f64();
    let model = trainer.model();
    let accuracy = model.accuracy(&data.test_images, &data.test_labels, 1000)?;
    let bound = model.marginal_bound(
        &data.test_images,
        500,
        &mut rng_for(args.seed, Stream::Eval, 2),
    )?;
    println!(
        "final: test accuracy of q(y|x) {:.2}% (paper, CNNs: GS 92.4%, ST-GS 93.6%, marginal 92.6%); \
         test bound U(x) with y marginalised {bound:.2} nats (paper's ELBO: GS -109.6); \
         trained {train_seconds:.0} s",
        100.0 * accuracy
    );
    Ok(())
}
