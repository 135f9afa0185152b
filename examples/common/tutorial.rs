//! What the tutorial's examples share: the `--out`/`--seed` options, the
//! `figure NAME = VALUE` lines that the chapters quote (and `tests/suite/tutorial.rs` checks),
//! and the statistics of many single-sample estimates against an exact gradient.
//!
//! An example includes it with
//!
//! ```text
//! #[path = "common/tutorial.rs"]
//! #[allow(dead_code)] // each example uses a part of it
//! mod tutorial;
//! ```

use std::path::{Path, PathBuf};

use clap::Args;
use gumbelgrad::estimators::GradientEstimator;
use gumbelgrad::{Error, Tape, Tensor, Var};
use rand::RngCore;

/// `--out DIR` and `--seed S`, the options every tutorial example has.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Folder for the SVG figures (`--out docs/tutorial/figures` refreshes the ones the
    /// chapters show)
    #[arg(long, value_name = "DIR", default_value = "out/tutorial")]
    pub out: PathBuf,
    /// Seed of every random number (the chapters quote seed 0)
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
}

impl Common {
    /// Creates the output folder and checks that `files` can be written into it.
    pub fn prepare(&self, files: &[&str]) -> gumbelgrad::Result<()> {
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, &e))?;
        for name in files {
            gumbelgrad::io::atomic::check_writable(self.out.join(name))?;
        }
        Ok(())
    }

    /// Where the figure `name` goes.
    pub fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// `value` with three significant digits, as the chapters quote it: `0.0123`, `1.23`,
/// `123`, `1.23e-5` (plain decimals from 1e-4 to 1e6).
pub fn three_digits(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = (2 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    // Rounding may carry into a new digit (9.996 -> "10.00"): redo with one decimal less.
    let rounded: f64 = text.parse().unwrap_or(value);
    if rounded != 0.0 && rounded.abs().log10().floor() as i32 > magnitude && decimals > 0 {
        let decimals = decimals - 1;
        return format!("{value:.decimals$}");
    }
    text
}

/// Prints `figure NAME = VALUE` (three significant digits) on stdout: a number a chapter
/// quotes.
pub fn figure(name: &str, value: f64) {
    println!("figure {name} = {}", three_digits(value));
}

/// Prints `figure NAME = VALUE within TOLERANCE`: a number from a trained model.
///
/// Training runs thousands of matrix products whose last bits depend on the SIMD kernel
/// the CPU selects (AVX-512 and AVX2 tile the sums differently), and the sampled
/// training path can amplify that; `tests/suite/tutorial.rs` therefore accepts a quoted value
/// within `tolerance` of the printed one. The tolerances are below the spread between
/// seeds, so a change in the model or the training protocol still shows.
pub fn figure_within(name: &str, value: f64, tolerance: f64) {
    println!("figure {name} = {} within {tolerance}", three_digits(value));
}

/// Prints `figure NAME = TEXT` for a whole number or a word.
pub fn figure_text(name: &str, text: impl std::fmt::Display) {
    println!("figure {name} = {text}");
}

/// Means and variances of many single-sample gradient estimates, one entry per logit.
#[derive(Debug, Clone)]
pub struct Stats {
    /// How many estimates.
    pub count: usize,
    /// Their mean.
    pub mean: Vec<f64>,
    /// Their (unbiased) variance, per logit.
    pub variance: Vec<f64>,
    /// The mean cost the estimator saw (at its own, possibly relaxed, samples).
    pub mean_cost: f64,
}

impl Stats {
    /// The total variance: the sum of the per-logit variances.
    pub fn total_variance(&self) -> f64 {
        self.variance.iter().sum()
    }

    /// `|mean - exact|`, the measured bias.
    pub fn bias(&self, exact: &[f64]) -> f64 {
        self.mean
            .iter()
            .zip(exact)
            .map(|(m, e)| (m - e).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// The standard error of [`bias`](Self::bias): `sqrt(total variance / count)`.
    pub fn bias_se(&self) -> f64 {
        (self.total_variance() / self.count as f64).sqrt()
    }

    /// The largest `|mean - exact| / SE` over the logits: about 2 at most when the
    /// estimator is unbiased, growing like `sqrt(count)` when it is not.
    pub fn worst_z(&self, exact: &[f64]) -> f64 {
        let n = self.count as f64;
        self.mean
            .iter()
            .zip(exact)
            .zip(&self.variance)
            .map(|((m, e), v)| (m - e).abs() / (v / n).sqrt().max(1e-300))
            .fold(0.0, f64::max)
    }
}

/// A cost for the toy problems: maps the sample `[rows, N*K]` to `[rows, 1]` on its tape.
pub type Cost = dyn for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>;

/// Runs `estimator` on `calls` batches of `rows` copies of one example's `logits`
/// (`group_size` as the estimators take it) and collects every single-sample estimate.
///
/// The loss is a batch mean, so row `r` of the logits' gradient times `rows` is the
/// estimate of example `r`. `on_call(call, stats of that call)` sees each batch (for
/// curves over the calls of an estimator that learns as it goes).
pub fn estimates(
    estimator: &mut dyn GradientEstimator<f64>,
    logits: &[f64],
    group_size: usize,
    cost: &Cost,
    (rows, calls): (usize, usize),
    rng: &mut dyn RngCore,
    mut on_call: impl FnMut(usize, &Stats),
) -> Result<Stats, Error> {
    let width = logits.len();
    let batch = Tensor::from_vec(rows, width, logits.repeat(rows))?;
    let mut all = Accumulator::new(width);
    for call in 0..calls {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&batch);
        let estimate = estimator.estimate(x, group_size, &mut |z| cost(z), rng);
        tape.backward(estimate.loss)?;
        let mean_cost = estimate.cost.value()?.sum() / rows as f64;
        let grad = x.grad().expect("the logits are a variable");
        let mut this = Accumulator::new(width);
        for row in grad.as_slice().chunks(width) {
            let row: Vec<f64> = row.iter().map(|g| g * rows as f64).collect();
            this.add(&row, mean_cost);
            all.add(&row, mean_cost);
        }
        on_call(call, &this.stats());
    }
    Ok(all.stats())
}

/// Running sums of estimates.
#[derive(Debug, Clone)]
pub struct Accumulator {
    count: usize,
    sum: Vec<f64>,
    squares: Vec<f64>,
    cost: f64,
}

impl Accumulator {
    /// Empty, for estimates of `width` logits.
    pub fn new(width: usize) -> Self {
        Accumulator {
            count: 0,
            sum: vec![0.0; width],
            squares: vec![0.0; width],
            cost: 0.0,
        }
    }

    /// Adds one estimate and the cost it came with.
    pub fn add(&mut self, estimate: &[f64], cost: f64) {
        self.count += 1;
        self.cost += cost;
        for ((s, q), g) in self.sum.iter_mut().zip(&mut self.squares).zip(estimate) {
            *s += g;
            *q += g * g;
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> Stats {
        let n = self.count.max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let variance = self
            .squares
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m) * n / (n - 1.0).max(1.0)).max(0.0))
            .collect();
        Stats {
            count: self.count,
            mean,
            variance,
            mean_cost: self.cost / n,
        }
    }
}

/// Prints that the figure at `path` was written (progress, so on stderr).
pub fn wrote(path: &Path) {
    eprintln!("wrote {}", path.display());
}

/// The categorical toy of chapters 3 to 6: one variable of four classes ("levels"
/// 0, 1/3, 2/3, 1) with these logits.
pub const TOY_LOGITS: [f64; 4] = [0.5, -0.3, 0.1, 0.8];
/// The toy's levels `w`: `f(z) = (<z, w> - TOY_TARGET)^2`.
pub const TOY_LEVELS: [f64; 4] = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
/// The toy's target.
pub const TOY_TARGET: f64 = 0.45;

/// The toy cost at a one-hot (or relaxed) sample, in plain numbers.
pub fn toy_cost(z: &[f64]) -> f64 {
    let level: f64 = z.iter().zip(&TOY_LEVELS).map(|(a, b)| a * b).sum();
    (level - TOY_TARGET).powi(2)
}

/// The toy cost on the tape: `(z w - t)^2`, `[rows, 4] -> [rows, 1]`.
pub fn toy_cost_on_tape(z: Var<'_, f64>) -> Var<'_, f64> {
    let w = z
        .tape()
        .constant(&Tensor::from_slice(4, 1, &TOY_LEVELS).expect("4 levels"));
    (z.matmul(w) - TOY_TARGET).square()
}

/// `softmax(TOY_LOGITS)`.
pub fn toy_probabilities() -> Vec<f64> {
    let m = TOY_LOGITS.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = TOY_LOGITS.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
