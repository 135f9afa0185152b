//! Tutorial chapter 1 (docs/tutorial/01-one-choice.md): one binary choice
//! `b ~ Bernoulli(sigmoid(phi))` and the cost `f(b) = (b - t)^2`. The gradient of the
//! expectation `E[f(b)]` is not the gradient of the sample: prints the exact gradient by
//! enumeration, the closed form, a finite difference, and the two things one might
//! differentiate instead; plots `E[f]` and its gradient against `phi`.
//!
//! ```text
//! cargo run --release --example tutorial_01_one_choice [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{exact, noise};
use gumbelgrad::io::{LinePlot, Series};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::figure;

const FIGURE: &str = "01_expectation.svg";

/// Chapter 1: the gradient of an expectation over one binary choice.
#[derive(Debug, Parser)]
#[command(name = "tutorial_01_one_choice", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

const TARGET: f64 = 0.45;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn cost(b: f64) -> f64 {
    (b - TARGET).powi(2)
}

/// `E[f(b)]` and its gradient in `phi`, by enumerating `b` in {0, 1}.
fn expectation(phi: f64) -> gumbelgrad::Result<(f64, f64)> {
    let e = exact::bernoulli(&[phi], |b| cost(b[0]))?;
    Ok((e.value, e.gradient[0]))
}

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[FIGURE])?;
    let phi = 0.5;
    let p = sigmoid(phi);
    let (value, gradient) = expectation(phi)?;
    // Closed form: E[f] = p f(1) + (1 - p) f(0), dp/dphi = p (1 - p).
    let closed = p * (1.0 - p) * (cost(1.0) - cost(0.0));
    let h = 1e-5;
    let finite_difference = (expectation(phi + h)?.0 - expectation(phi - h)?.0) / (2.0 * h);
    // Differentiating the function at the mean instead: d f(p) / dphi = 2 (p - t) p (1 - p).
    let at_mean = 2.0 * (p - TARGET) * p * (1.0 - p);
    println!("one binary choice b ~ Bernoulli(sigmoid(phi)), f(b) = (b - {TARGET})^2");
    figure("p", p);
    figure("expected_cost", value);
    figure("exact_gradient", gradient);
    figure("closed_form_gradient", closed);
    figure("finite_difference_gradient", finite_difference);
    // The pathwise derivative of the sample: hold the noise fixed, move phi a little.
    // b = 1[phi + l > 0] with logistic noise l is a step function of phi.
    let draws = 100_000;
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let noise = noise::logistic::<f64, _>(1, draws, &mut rng);
    let step = |x: f64, l: f64| if x + l > 0.0 { 1.0 } else { 0.0 };
    let pathwise: f64 = noise
        .as_slice()
        .iter()
        .map(|&l| (cost(step(phi + h, l)) - cost(step(phi - h, l))) / (2.0 * h))
        .sum::<f64>()
        / draws as f64;
    figure("gradient_of_sample", pathwise);
    figure("gradient_at_mean", at_mean);
    figure("cost_at_mean", cost(p));

    let grid: Vec<f64> = (0..=120).map(|i| -3.0 + 0.05 * i as f64).collect();
    let mut value_curve = Vec::new();
    let mut gradient_curve = Vec::new();
    let mut mean_curve = Vec::new();
    let mut mean_gradient_curve = Vec::new();
    for &x in &grid {
        let (v, g) = expectation(x)?;
        let q = sigmoid(x);
        value_curve.push((x, v));
        gradient_curve.push((x, g));
        mean_curve.push((x, cost(q)));
        mean_gradient_curve.push((x, 2.0 * (q - TARGET) * q * (1.0 - q)));
    }
    LinePlot::new(720, 440)
        .title("One binary choice: E[(b - 0.45)^2] and f at the mean, against phi")
        .x_label("logit phi (P(b = 1) = sigmoid(phi))")
        .y_label("cost, or its derivative in phi")
        .series(Series::new("E[f(b)] (exact)", value_curve))
        .series(Series::new("d E[f(b)] / d phi (exact)", gradient_curve))
        .series(Series::new("f(E[b]) (not the objective)", mean_curve))
        .series(Series::new("d f(E[b]) / d phi", mean_gradient_curve))
        .save_svg(args.common.path(FIGURE))?;
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
