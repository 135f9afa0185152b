//! Tutorial chapter 2 (docs/tutorial/02-score-function.md): the score-function
//! estimator (REINFORCE) on chapter 1's coin, `f(b) = (b - 0.45)^2`,
//! `b ~ Bernoulli(sigmoid(0.5))`. Prints its mean against the exact gradient, its
//! variance against the closed form, and what a moving-average and a learned baseline
//! do to the variance; plots the variance against a constant baseline and over calls.
//!
//! ```text
//! cargo run --release --example tutorial_02_score_function [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::score::{Baseline, Reinforce};
use gumbelgrad::estimators::{GradientEstimator, exact, noise};
use gumbelgrad::io::{LinePlot, Series};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::figure;

const BASELINE_FIGURE: &str = "02_baseline_variance.svg";
const CALLS_FIGURE: &str = "02_variance_over_calls.svg";

/// Chapter 2: REINFORCE, its variance and its baselines.
#[derive(Debug, Parser)]
#[command(name = "tutorial_02_score_function", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

const TARGET: f64 = 0.45;
const PHI: f64 = 0.5;
/// Estimates per call and calls: 100,000 single-sample estimates in all.
const ROWS: usize = 500;
const CALLS: usize = 200;

fn cost(b: f64) -> f64 {
    (b - TARGET).powi(2)
}

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[BASELINE_FIGURE, CALLS_FIGURE])?;
    let exact = exact::bernoulli(&[PHI], |b| cost(b[0]))?;
    let p = 1.0 / (1.0 + (-PHI).exp());
    let (f1, f0) = (cost(1.0), cost(0.0));
    // g = (f(b) - c) (b - p): its exact variance for a constant baseline c.
    let closed_variance = |c: f64| {
        p * ((f1 - c) * (1.0 - p)).powi(2) + (1.0 - p) * ((f0 - c) * p).powi(2)
            - exact.gradient[0].powi(2)
    };
    figure("exact_gradient", exact.gradient[0]);

    // The crate's REINFORCE with each baseline, binary units (group size 1).
    let cost_on_tape: &tutorial::Cost = &|z| (z - TARGET).square();
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let kinds: [(&str, Baseline); 3] = [
        ("reinforce", Baseline::None),
        ("moving_average", Baseline::MovingAverage { decay: 0.8 }),
        (
            "learned",
            Baseline::Learned {
                decay: 0.8,
                hidden: 16,
                learning_rate: 0.01,
            },
        ),
    ];
    let mut curves = Vec::new();
    for (name, baseline) in kinds {
        let mut estimator = Reinforce::new(baseline)?;
        let mut per_call = Vec::new();
        let stats = tutorial::estimates(
            &mut estimator as &mut dyn GradientEstimator<f64>,
            &[PHI],
            1,
            cost_on_tape,
            (ROWS, CALLS),
            &mut rng,
            |call, stats| per_call.push(((call + 1) as f64, stats.total_variance())),
        )?;
        figure(&format!("{name}_mean"), stats.mean[0]);
        figure(&format!("{name}_z"), stats.worst_z(&exact.gradient));
        figure(&format!("{name}_variance"), stats.total_variance());
        // After the baselines have settled: the last half of the calls.
        let settled: f64 =
            per_call[CALLS / 2..].iter().map(|(_, v)| v).sum::<f64>() / (CALLS - CALLS / 2) as f64;
        figure(&format!("{name}_settled_variance"), settled);
        curves.push((name, per_call));
    }
    figure("closed_form_variance", closed_variance(0.0));
    figure("variance_at_expected_cost", closed_variance(exact.value));
    figure("best_constant_baseline", (1.0 - p) * f1 + p * f0);
    figure("expected_cost", exact.value);

    // Constant baselines by hand, same 100,000 coins for every c, against the formula.
    let u = noise::uniform::<f64, _>(1, ROWS * CALLS, &mut rng);
    let coins: Vec<f64> = u
        .as_slice()
        .iter()
        .map(|&u| if u < p { 1.0 } else { 0.0 })
        .collect();
    let grid: Vec<f64> = (0..=10).map(|i| 0.05 * i as f64).collect();
    let mut measured = Vec::new();
    let mut formula = Vec::new();
    for &c in &grid {
        let g: Vec<f64> = coins.iter().map(|&b| (cost(b) - c) * (b - p)).collect();
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        let variance = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (g.len() - 1) as f64;
        measured.push((c, variance));
        formula.push((c, closed_variance(c)));
    }
    figure(
        "largest_relative_error_by_hand",
        measured
            .iter()
            .zip(&formula)
            .map(|((_, m), (_, f))| ((m - f) / f).abs())
            .fold(0.0, f64::max),
    );
    LinePlot::new(720, 440)
        .title("REINFORCE on one coin: variance against a constant baseline c")
        .x_label("baseline c")
        .y_label("variance of one estimate (f(b) - c)(b - p)")
        .series(Series::new("closed form", formula))
        .series(Series::new("measured, 100,000 coins", measured))
        .save_svg(args.common.path(BASELINE_FIGURE))?;
    tutorial::wrote(&args.common.path(BASELINE_FIGURE));

    let mut plot = LinePlot::new(720, 440)
        .title("REINFORCE's variance while its baseline learns")
        .x_label("call (500 estimates each)")
        .y_label("variance of one estimate");
    for (name, curve) in curves {
        plot = plot.series(Series::new(name.replace('_', " "), curve));
    }
    plot.save_svg(args.common.path(CALLS_FIGURE))?;
    tutorial::wrote(&args.common.path(CALLS_FIGURE));
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
