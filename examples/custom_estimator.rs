//! An estimator written outside the crate, plugged in exactly like the crate's own.
//!
//! `PerVariableReinforce` is REINFORCE with a *per-variable* baseline of our own
//! design, which the crate does not ship: for the categorical variable `n` of an
//! example, the learning signal is `f(z) - b_n`, with
//!
//! ```text
//! b_n = avg[f(z) |s_n|^2] / avg[|s_n|^2],     s_n = z_n - softmax(logits_n)  (the score)
//! ```
//!
//! running averages over *past* calls (decay 0.9). That ratio is the constant baseline
//! that minimises the variance of `(f - b) s_n` for each variable separately; because
//! it is fixed before the current sample is drawn, the estimator stays unbiased.
//!
//! The program first checks that claim against the exact gradient by enumeration (the
//! public `exact` module) on a toy problem, printing mean, exact value and standard
//! error per logit, then trains the categorical VAE on the crate's built-in synthetic
//! digits for one epoch through the public `Trainer`. The last line is JSON with the
//! keys `estimator`, `bias_z` (largest |mean - exact| / SE on the toy problem) and
//! `test_neg_elbo`.
//!
//! ```text
//! cargo run --release --example custom_estimator [-- --seed S --train-images N --test-images N]
//! ```

use std::process::ExitCode;

use clap::Parser;

use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::score::inject_gradient;
use gumbelgrad::estimators::{
    Estimate, EstimatorState, GradientEstimator, bernoulli_as_categorical, check_cost_shape,
    constant_from, exact, poisoned_estimate, read_logits, sample_one_hot, softmax_f64, values_f64,
};
use gumbelgrad::io::json::Json;
use gumbelgrad::models::{EvalMode, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::{Error, Float, Tape, Tensor, Var};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

/// REINFORCE with one running-average baseline per latent variable (see the module
/// documentation).
#[derive(Debug, Clone)]
struct PerVariableReinforce {
    decay: f64,
    /// Running averages of `f |s_n|^2` and of `|s_n|^2`, one per variable.
    weighted_cost: Vec<f64>,
    weight: Vec<f64>,
}

impl PerVariableReinforce {
    fn new(decay: f64) -> Self {
        PerVariableReinforce {
            decay,
            weighted_cost: Vec::new(),
            weight: Vec::new(),
        }
    }

    fn baseline(&self, n: usize) -> f64 {
        if self.weight[n] > 0.0 {
            self.weighted_cost[n] / self.weight[n]
        } else {
            0.0
        }
    }
}

impl<T: Float> GradientEstimator<T> for PerVariableReinforce {
    fn name(&self) -> &'static str {
        "reinforce-per-variable"
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
        // Binary units: run the two-class version on the pairs [0, phi].
        if group_size == 1 {
            return bernoulli_as_categorical(logits, cost, rng, |pairs, cost, rng| {
                self.estimate(pairs, 2, cost, rng)
            });
        }
        let name = <Self as GradientEstimator<T>>::name(self);
        let values = match read_logits(logits, group_size, name) {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let (rows, cols) = (values.rows(), values.cols());
        let variables = cols / group_size;
        if self.weight.len() != variables {
            self.weighted_cost = vec![0.0; variables];
            self.weight = vec![0.0; variables];
        }
        // Sample z, evaluate the cost at it.
        let sample = sample_one_hot(&values, group_size, 1, rng).into_vec();
        let z = constant_from(logits, rows, cols, sample.clone());
        let cost_value = check_cost_shape(z, cost(z));
        let costs = values_f64(cost_value);
        if costs.len() != rows {
            return poisoned_estimate(cost_value);
        }
        // Per-entry gradient (f_r - b_n) (z - p), with baselines fixed before this sample.
        let probs = softmax_f64(values.as_slice(), group_size);
        let mut gradient = vec![0.0; rows * cols];
        let (mut sum_fw, mut sum_w) = (vec![0.0; variables], vec![0.0; variables]);
        for (r, &f) in costs.iter().enumerate() {
            for n in 0..variables {
                let b = self.baseline(n);
                let mut norm = 0.0;
                for k in 0..group_size {
                    let j = r * cols + n * group_size + k;
                    let score = sample[j] - probs[j];
                    gradient[j] = (f - b) * score;
                    norm += score * score;
                }
                sum_fw[n] += f * norm;
                sum_w[n] += norm;
            }
        }
        // Only now learn from this sample.
        let rate = 1.0 - self.decay;
        for n in 0..variables {
            self.weighted_cost[n] += rate * (sum_fw[n] / rows as f64 - self.weighted_cost[n]);
            self.weight[n] += rate * (sum_w[n] / rows as f64 - self.weight[n]);
        }
        // Value mean(cost); gradient w.r.t. the logits (1/B) sum_r gradient_r.
        let gradient = constant_from(logits, rows, cols, gradient);
        Estimate {
            sample: z,
            cost: cost_value,
            loss: (cost_value + inject_gradient(logits, gradient)).mean(),
        }
    }

    fn save_state(&self, state: &mut EstimatorState) {
        let n = self.weight.len();
        if n > 0 {
            let t = |v: &[f64]| Tensor::from_slice(1, n, v).expect("length");
            state.set_tensor("weighted_cost", t(&self.weighted_cost));
            state.set_tensor("weight", t(&self.weight));
        }
    }

    fn load_state(&mut self, state: &EstimatorState) -> gumbelgrad::Result<()> {
        if state.contains("weight") {
            self.weight = state.tensor("weight")?.as_slice().to_vec();
            let n = self.weight.len();
            self.weighted_cost = state
                .tensor_shaped("weighted_cost", 1, n)?
                .as_slice()
                .to_vec();
        }
        Ok(())
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "custom_estimator",
    version,
    about = "An estimator written outside the crate, checked against exact enumeration, then training the categorical VAE"
)]
struct Args {
    #[command(flatten)]
    seed: cli::Seed,
    #[command(flatten)]
    threads: cli::Threads,
    /// Train on the first N built-in training digits [default: all]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    train_images: Option<usize>,
    /// Evaluate on the first N built-in test digits
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = cli::at_least_one)]
    test_images: usize,
}

/// Estimates on a toy problem against the exact gradient: returns the largest
/// |mean - exact| / SE over the logits.
fn check_against_exact(seed: u64) -> Result<f64, Error> {
    // One example, two variables of three classes; f(z) = (<z, w> - 1)^2.
    let (classes, logits) = (3, vec![0.5, -0.3, 0.1, -0.2, 0.4, 0.0]);
    let w = [1.0, 2.0, -1.0, 0.5, -2.0, 1.5];
    let f = |z: &[f64]| {
        let s: f64 = z.iter().zip(&w).map(|(a, b)| a * b).sum();
        (s - 1.0).powi(2)
    };
    let exact = exact::categorical(&logits, classes, f)?;

    let mut estimator = PerVariableReinforce::new(0.9);
    let mut rng = StdRng::seed_from_u64(seed);
    let (rows, calls) = (200, 25);
    let mut sums = vec![0.0; logits.len()];
    let mut squares = vec![0.0; logits.len()];
    let weights = Tensor::from_vec(6, 1, w.to_vec())?;
    for _ in 0..calls {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::from_vec(rows, 6, logits.repeat(rows))?);
        let wv = tape.constant(&weights);
        let estimate =
            estimator.estimate(x, classes, &mut |z| (z.matmul(wv) - 1.0).square(), &mut rng);
        tape.backward(estimate.loss)?;
        let grad = x.grad().expect("logits are a variable");
        // The loss is a batch mean, so each row times `rows` is one example's estimate.
        for row in grad.as_slice().chunks(6) {
            for (j, g) in row.iter().enumerate() {
                let g = g * rows as f64;
                sums[j] += g;
                squares[j] += g * g;
            }
        }
    }
    let n = (rows * calls) as f64;
    let mut worst: f64 = 0.0;
    println!(
        "toy problem: 2 variables x 3 classes, {} estimates",
        rows * calls
    );
    println!(
        "{:>5} {:>10} {:>10} {:>8} {:>6}",
        "logit", "mean", "exact", "SE", "z"
    );
    for j in 0..logits.len() {
        let mean = sums[j] / n;
        let variance = (squares[j] / n - mean * mean) * n / (n - 1.0);
        let se = (variance / n).sqrt();
        let z = (mean - exact.gradient[j]) / se;
        worst = worst.max(z.abs());
        println!(
            "{j:>5} {mean:>10.4} {:>10.4} {se:>8.4} {z:>6.2}",
            exact.gradient[j]
        );
    }
    Ok(worst)
}

fn run(args: &Args) -> Result<(), Error> {
    args.threads.apply();
    let seed = args.seed.seed;
    let bias_z = check_against_exact(seed)?;

    let (train, test) = SyntheticDigits::new(seed).generate();
    let first = |n: usize, total: usize| (0..n.min(total)).collect::<Vec<usize>>();
    let train_images = match args.train_images {
        Some(n) => train.images.select(&first(n, train.images.rows())),
        None => train.images,
    };
    let test_images = test
        .images
        .select(&first(args.test_images, test.images.rows()))
        .to_tensor::<f32>();
    let config = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    let estimator = Box::new(PerVariableReinforce::new(0.9));
    let mut trainer = Trainer::<f32>::with_estimator(VaeConfig::default(), config, estimator)?;
    let report = trainer.train_epoch(&train_images, |_| {})?;
    let mut rng = StdRng::seed_from_u64(seed);
    let test_neg_elbo = trainer
        .model()
        .evaluate(&test_images, 500, EvalMode::Hard, &mut rng)?;
    println!(
        "categorical VAE, one epoch ({} steps) with {}: train loss {:.2}, test -ELBO {:.2} on {} images",
        report.steps,
        trainer.estimator().name(),
        report.mean_loss,
        test_neg_elbo,
        test_images.rows()
    );
    let json = cli::object([
        ("estimator", Json::string(trainer.estimator().name())),
        ("bias_z", cli::number("bias_z", bias_z)),
        ("test_neg_elbo", cli::number("test_neg_elbo", test_neg_elbo)),
    ]);
    println!("{json}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}
