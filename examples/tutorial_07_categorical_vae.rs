//! Tutorial chapter 7 (docs/tutorial/07-categorical-vae.md): the categorical VAE trained
//! with three estimators side by side (Gumbel-Softmax, ST Gumbel-Softmax, REINFORCE with
//! a moving average) on the crate's built-in digits; the ELBO split into reconstruction
//! and KL, the importance-weighted bound, a loss plot and the reconstructions.
//!
//! By default each estimator trains for half an epoch (100 steps of 100 digits), about
//! 15 s in all; `--epochs N` trains N full epochs of 20,000 digits instead.
//!
//! ```text
//! cargo run --release --example tutorial_07_categorical_vae [-- --out docs/tutorial/figures]
//! cargo run --release --example tutorial_07_categorical_vae -- --epochs 10
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::io::{GridFigure, LinePlot, Series, image_grid};
use gumbelgrad::models::{DiscreteVae, EvalMode, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::{Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::figure;

const LOSS_FIGURE: &str = "07_training.svg";
const RECONSTRUCTION_FIGURE: &str = "07_reconstructions.svg";
const ESTIMATORS: [&str; 3] = ["gumbel-softmax", "st-gumbel-softmax", "reinforce-ema"];
/// Test digits for the single-sample bound, and (the first of them) for the
/// importance-weighted one.
const TEST_IMAGES: usize = 1000;
const IW_IMAGES: usize = 200;
const IW_SAMPLES: usize = 100;

/// Chapter 7: the categorical VAE, three estimators side by side.
#[derive(Debug, Parser)]
#[command(name = "tutorial_07_categorical_vae", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
    /// Train this many full epochs of 20,000 digits (default: half an epoch)
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
}

/// `KL(q(z|x) || uniform)` averaged over `images`, in plain numbers from the logits:
/// `sum_n sum_k q_nk (log q_nk + log K)`.
fn mean_kl(
    model: &DiscreteVae<f32>,
    images: &Tensor<f32>,
    classes: usize,
) -> gumbelgrad::Result<f64> {
    let logits = model.logits_of(images, 500)?;
    let mut total = 0.0;
    for group in logits.as_slice().chunks(classes) {
        let m = group.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = group.iter().map(|&x| (x as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        for v in e {
            let q = v / s;
            if q > 0.0 {
                total += q * (q.ln() + (classes as f64).ln());
            }
        }
    }
    Ok(total / images.rows() as f64)
}

fn decode_probabilities(
    model: &DiscreteVae<f32>,
    codes: &Tensor<f32>,
) -> gumbelgrad::Result<Tensor<f32>> {
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    model
        .decode(&params, tape.constant(codes))
        .sigmoid()
        .value()
}

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[LOSS_FIGURE, RECONSTRUCTION_FIGURE])?;
    let seed = args.common.seed;
    let (train_size, epochs) = match args.epochs {
        Some(n) => (20_000, n),
        None => (10_000, 1),
    };
    let (train, test) = SyntheticDigits::new(seed)
        .with_sizes(train_size, TEST_IMAGES)
        .generate();
    let test_images = test.images.to_tensor::<f32>();
    let iw_images: Tensor<f32> = test.images.gather(&(0..IW_IMAGES).collect::<Vec<_>>());
    let (variables, classes) = (20, 10);
    figure("max_kl", variables as f64 * (classes as f64).ln());

    let mut plot = LinePlot::new(720, 440)
        .title("Categorical VAE (20 x 10 latents) on the built-in digits")
        .x_label("training step (minibatch of 100)")
        .y_label("training loss, mean of 10 steps (nats per image)");
    let mut pictures = None;
    for name in ESTIMATORS {
        let config = TrainConfig {
            seed,
            estimator: name.to_string(),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::<f32>::new(VaeConfig::categorical(variables, classes), config)?;
        let mut losses = Vec::new();
        for _ in 0..epochs {
            trainer.train_epoch(&train.images, |step| {
                losses.push(step.loss);
                if step.step % 50 == 0 {
                    eprintln!("{name}: step {}, loss {:.1}", step.step, step.loss);
                }
            })?;
        }
        let model = trainer.model();
        let mut rng = StdRng::seed_from_u64(seed);
        let elbo = model.evaluate(&test_images, 500, EvalMode::Hard, &mut rng)?;
        let kl = mean_kl(model, &test_images, classes)?;
        let elbo_iw_images = model.evaluate(&iw_images, IW_IMAGES, EvalMode::Hard, &mut rng)?;
        let iw = model.importance_weighted_bound(&iw_images, IW_SAMPLES, IW_IMAGES, &mut rng)?;
        let key = name.replace('-', "_");
        tutorial::figure_text(&format!("{key}_steps"), trainer.steps());
        // Nats; tolerances for other CPUs' rounding (see `figure_within`).
        tutorial::figure_within(&format!("{key}_test_neg_elbo"), elbo, 2.0);
        tutorial::figure_within(&format!("{key}_test_kl"), kl, 0.5);
        tutorial::figure_within(&format!("{key}_test_reconstruction"), elbo - kl, 2.0);
        tutorial::figure_within(&format!("{key}_neg_elbo_200"), elbo_iw_images, 2.0);
        tutorial::figure_within(&format!("{key}_iw_bound_200"), iw, 2.0);
        let smoothed: Vec<(f64, f64)> = losses
            .chunks(10)
            .enumerate()
            .map(|(i, c)| {
                (
                    (i * 10 + c.len()) as f64,
                    c.iter().sum::<f64>() / c.len() as f64,
                )
            })
            .collect();
        plot = plot.series(Series::new(name, smoothed));
        if pictures.is_none() {
            // Reconstructions of the first model (Gumbel-Softmax).
            let count = 16;
            let originals: Tensor<f32> = test.images.gather(&(0..count).collect::<Vec<_>>());
            let logits = model.logits_of(&originals, count)?;
            let (codes, _) = model.sample_hard(&logits, &mut rng)?;
            let decoded = decode_probabilities(model, &codes)?;
            let mut pairs = Vec::new();
            for row in 0..count {
                pairs.extend_from_slice(originals.row(row));
                pairs.extend_from_slice(decoded.row(row));
            }
            pictures = Some(Tensor::from_vec(2 * count, 784, pairs)?);
        }
    }
    plot.save_svg(args.common.path(LOSS_FIGURE))?;
    tutorial::wrote(&args.common.path(LOSS_FIGURE));
    if let Some(pairs) = pictures {
        GridFigure::new(image_grid(&pairs, 28, 28, 8, 1)?, 28, 28, 1)
            .title("Test digits and their reconstructions (Gumbel-Softmax model)")
            .column_labels((0..8).map(|c| if c % 2 == 0 { "digit" } else { "recon." }))
            .caption("Pairs: a test digit, then the decoder's pixel probabilities for one hard")
            .caption("(one-hot) sample of its 20 x 10 latent code; white = 1.")
            .save(args.common.path(RECONSTRUCTION_FIGURE))?;
        tutorial::wrote(&args.common.path(RECONSTRUCTION_FIGURE));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
