//! Tutorial chapter 3 (docs/tutorial/03-gumbel-softmax.md): Gumbel-max sampling checked
//! against the softmax, and the Gumbel-Softmax relaxation's bias and variance against
//! its temperature on a four-class toy, `f(z) = (<z, w> - 0.45)^2`.
//!
//! ```text
//! cargo run --release --example tutorial_03_gumbel_softmax [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{Estimator, exact, noise};
use gumbelgrad::io::{LinePlot, Series};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::{TOY_LOGITS, figure};

const FREQUENCY_FIGURE: &str = "03_gumbel_max.svg";
const TEMPERATURE_FIGURE: &str = "03_bias_variance.svg";

/// Chapter 3: Gumbel-max and Gumbel-Softmax.
#[derive(Debug, Parser)]
#[command(name = "tutorial_03_gumbel_softmax", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

const DRAWS: usize = 100_000;
const TEMPERATURES: [f64; 9] = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0];

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common
        .prepare(&[FREQUENCY_FIGURE, TEMPERATURE_FIGURE])?;
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let k = TOY_LOGITS.len();
    let p = tutorial::toy_probabilities();

    // Gumbel-max by hand: argmax_i (x_i + g_i), g = -ln(-ln u).
    let g = noise::gumbel::<f64, _>(DRAWS, k, &mut rng);
    let mut counts = vec![0usize; k];
    let mut relaxed_sum = vec![0.0; k];
    for row in g.as_slice().chunks(k) {
        let noisy: Vec<f64> = row.iter().zip(&TOY_LOGITS).map(|(g, x)| x + g).collect();
        let best = (0..k)
            .max_by(|&a, &b| noisy[a].total_cmp(&noisy[b]))
            .expect("k > 0");
        counts[best] += 1;
        // The relaxed sample at tau = 1 from the same noise: softmax(x + g).
        let m = noisy.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = noisy.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        for (acc, v) in relaxed_sum.iter_mut().zip(&e) {
            *acc += v / s;
        }
    }
    let frequency: Vec<f64> = counts.iter().map(|&c| c as f64 / DRAWS as f64).collect();
    let chi_square: f64 = counts
        .iter()
        .zip(&p)
        .map(|(&c, &q)| (c as f64 - DRAWS as f64 * q).powi(2) / (DRAWS as f64 * q))
        .sum();
    for (i, (f, q)) in frequency.iter().zip(&p).enumerate() {
        figure(&format!("frequency_{i}"), *f);
        figure(&format!("softmax_{i}"), *q);
    }
    figure("chi_square", chi_square);
    let relaxed_mean_gap = relaxed_sum
        .iter()
        .zip(&p)
        .map(|(s, q)| (s / DRAWS as f64 - q).abs())
        .fold(0.0, f64::max);
    figure("relaxed_mean_gap", relaxed_mean_gap);
    LinePlot::new(720, 440)
        .title("Gumbel-max: frequencies of argmax(x + g) against softmax(x)")
        .x_label("class i (logits 0.5, -0.3, 0.1, 0.8)")
        .y_label("probability")
        .series(Series::from_values("softmax(x)", &p))
        .series(Series::from_values(
            "frequency in 100,000 Gumbel-max draws",
            &frequency,
        ))
        .save_svg(args.common.path(FREQUENCY_FIGURE))?;
    tutorial::wrote(&args.common.path(FREQUENCY_FIGURE));

    // Gumbel-Softmax at each temperature: bias and variance against the exact gradient.
    let exact = exact::categorical(&TOY_LOGITS, k, tutorial::toy_cost)?;
    let exact_norm = exact.gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
    figure("exact_norm", exact_norm);
    figure("expected_cost", exact.value);
    let (mut bias_curve, mut std_curve) = (Vec::new(), Vec::new());
    for tau in TEMPERATURES {
        let mut estimator = Estimator::<f64>::gumbel_softmax(tau)?;
        let stats = tutorial::estimates(
            &mut estimator,
            &TOY_LOGITS,
            k,
            &tutorial::toy_cost_on_tape,
            (DRAWS, 1),
            &mut rng,
            |_, _| {},
        )?;
        let (bias, variance) = (stats.bias(&exact.gradient), stats.total_variance());
        figure(&format!("bias_tau_{tau}"), bias);
        figure(&format!("bias_se_tau_{tau}"), stats.bias_se());
        figure(&format!("variance_tau_{tau}"), variance);
        figure(&format!("relaxed_cost_tau_{tau}"), stats.mean_cost);
        eprintln!("tau {tau}: bias {bias:.4}, variance {variance:.4}");
        bias_curve.push((tau.log10(), bias));
        std_curve.push((tau.log10(), variance.sqrt()));
    }
    LinePlot::new(720, 440)
        .title("Gumbel-Softmax on the four-class toy: bias and spread against temperature")
        .x_label("log10 temperature tau")
        .y_label(format!(
            "gradient units (|exact gradient| = {})",
            tutorial::three_digits(exact_norm)
        ))
        .series(Series::new("bias |mean - exact|", bias_curve))
        .series(Series::new("standard deviation of one estimate", std_curve))
        .save_svg(args.common.path(TEMPERATURE_FIGURE))?;
    tutorial::wrote(&args.common.path(TEMPERATURE_FIGURE));
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
