//! Tutorial chapter 6 (docs/tutorial/06-your-estimator.md): an estimator written outside
//! the crate. `LeaveOneOut` is REINFORCE whose baseline for each example is the mean
//! cost of the *other* examples in the batch. The program checks it against the exact
//! gradient on chapter 3's toy, then trains the categorical VAE with it for a few steps
//! beside the crate's REINFORCE and REINFORCE with a moving average.
//!
//! ```text
//! cargo run --release --example tutorial_06_your_estimator [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::score::score_function_term;
use gumbelgrad::estimators::{
    Estimate, Estimator, GradientEstimator, bernoulli_as_categorical, check_cost_shape,
    constant_from, exact, read_logits, sample_one_hot, values_f64,
};
use gumbelgrad::io::{LinePlot, Series};
use gumbelgrad::models::{EvalMode, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::{Float, Var};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::{TOY_LOGITS, figure};

const FIGURE: &str = "06_training.svg";

/// Chapter 6: write an estimator, check it, train with it.
#[derive(Debug, Parser)]
#[command(name = "tutorial_06_your_estimator", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

/// REINFORCE with a leave-one-out baseline across the batch: example `r`'s signal is
/// `f_r - mean_{s != r} f_s`. The other examples' samples are independent of example
/// `r`'s, so the baseline is too, and the estimate stays unbiased.
#[derive(Debug, Clone, Default)]
struct LeaveOneOut;

impl<T: Float> GradientEstimator<T> for LeaveOneOut {
    fn name(&self) -> &'static str {
        "leave-one-out"
    }

    fn is_unbiased(&self) -> bool {
        true
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        // Binary units: the two-class version on the pairs [0, phi].
        if group_size == 1 {
            return bernoulli_as_categorical(logits, cost, rng, |pairs, cost, rng| {
                self.estimate(pairs, 2, cost, rng)
            });
        }
        let values = match read_logits(logits, group_size, "leave-one-out") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let (rows, cols) = (values.rows(), values.cols());
        // Sample z ~ softmax(logits) by Gumbel-max and evaluate the cost there.
        let z = constant_from(
            logits,
            rows,
            cols,
            sample_one_hot(&values, group_size, 1, rng).into_vec(),
        );
        let f = check_cost_shape(z, cost(z));
        let costs = values_f64(f);
        // The signal f_r - b_r, b_r the mean of the other rows' costs (0 for one row).
        let total: f64 = costs.iter().sum();
        let signal: Vec<f64> = costs
            .iter()
            .map(|&c| {
                let baseline = if rows > 1 {
                    (total - c) / (rows - 1) as f64
                } else {
                    0.0
                };
                c - baseline
            })
            .collect();
        // Zero-valued term whose gradient is signal * (z - softmax(logits)).
        let term = score_function_term(
            logits,
            z,
            constant_from(logits, signal.len(), 1, signal),
            group_size,
        );
        Estimate {
            sample: z,
            cost: f,
            loss: (f + term).mean(),
        }
    }
}

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[FIGURE])?;
    let seed = args.common.seed;

    // 1. Check it against enumeration: 1000 calls of 100 estimates on the toy.
    let k = TOY_LOGITS.len();
    let exact = exact::categorical(&TOY_LOGITS, k, tutorial::toy_cost)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine = LeaveOneOut;
    let stats = tutorial::estimates(
        &mut mine,
        &TOY_LOGITS,
        k,
        &tutorial::toy_cost_on_tape,
        (100, 1000),
        &mut rng,
        |_, _| {},
    )?;
    figure("toy_bias", stats.bias(&exact.gradient));
    figure("toy_bias_se", stats.bias_se());
    figure("toy_worst_z", stats.worst_z(&exact.gradient));
    figure("toy_variance", stats.total_variance());

    // 2. Train the categorical VAE with it, next to two of the crate's estimators.
    let (train, test) = SyntheticDigits::new(seed).with_sizes(8000, 500).generate();
    let test_images = test.images.to_tensor::<f32>();
    let config = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    let contenders: [(&str, Box<dyn GradientEstimator<f32>>); 3] = [
        (
            "reinforce",
            Box::new(Estimator::<f32>::from_name("reinforce", 1.0)?),
        ),
        (
            "reinforce_ema",
            Box::new(Estimator::<f32>::from_name("reinforce-ema", 1.0)?),
        ),
        ("leave_one_out", Box::new(LeaveOneOut)),
    ];
    let mut plot = LinePlot::new(720, 440)
        .title("Categorical VAE, first 80 steps on the built-in digits")
        .x_label("training step (minibatch of 100)")
        .y_label("training loss, negative ELBO (nats per image)");
    for (key, estimator) in contenders {
        let mut trainer =
            Trainer::<f32>::with_estimator(VaeConfig::default(), config.clone(), estimator)?;
        let mut losses = Vec::new();
        let report = trainer.train_epoch(&train.images, |step| {
            losses.push((step.step as f64, step.loss));
            if step.step % 20 == 0 {
                eprintln!("{key}: step {}, loss {:.1}", step.step, step.loss);
            }
        })?;
        let mut eval_rng = StdRng::seed_from_u64(seed);
        let test_loss =
            trainer
                .model()
                .evaluate(&test_images, 500, EvalMode::Hard, &mut eval_rng)?;
        tutorial::figure_text(&format!("{key}_steps"), report.steps);
        // Nats; a tolerance for other CPUs' rounding (see `figure_within`).
        tutorial::figure_within(&format!("{key}_test_neg_elbo"), test_loss, 2.0);
        plot = plot.series(Series::new(trainer.estimator().name(), losses));
    }
    plot.save_svg(args.common.path(FIGURE))?;
    tutorial::wrote(&args.common.path(FIGURE));
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
