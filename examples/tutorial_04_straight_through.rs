//! Tutorial chapter 4 (docs/tutorial/04-straight-through.md): straight-through (ST) and
//! straight-through Gumbel-Softmax (ST-GS) on the four-class toy of chapter 3: their
//! bias and variance against temperature next to Gumbel-Softmax's, and the cost each one
//! sees in its forward pass.
//!
//! ```text
//! cargo run --release --example tutorial_04_straight_through [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{Estimator, exact};
use gumbelgrad::io::{LinePlot, Series};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::{TOY_LOGITS, figure};

const BIAS_FIGURE: &str = "04_bias.svg";
const SPREAD_FIGURE: &str = "04_spread.svg";

/// Chapter 4: straight-through estimators.
#[derive(Debug, Parser)]
#[command(name = "tutorial_04_straight_through", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

const DRAWS: usize = 100_000;
const TEMPERATURES: [f64; 9] = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0];
const NAMES: [&str; 3] = ["gumbel-softmax", "st-gumbel-softmax", "st"];

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[BIAS_FIGURE, SPREAD_FIGURE])?;
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let k = TOY_LOGITS.len();
    let exact = exact::categorical(&TOY_LOGITS, k, tutorial::toy_cost)?;
    figure("expected_cost", exact.value);
    figure(
        "exact_norm",
        exact.gradient.iter().map(|g| g * g).sum::<f64>().sqrt(),
    );
    // The standard error of a mean cost over DRAWS exact samples.
    figure("cost_se", (exact.variance / DRAWS as f64).sqrt());
    let mut bias_plot = LinePlot::new(720, 440)
        .title("Bias against temperature on the four-class toy")
        .x_label("log10 temperature tau")
        .y_label("bias |mean estimate - exact gradient|");
    let mut spread_plot = LinePlot::new(720, 440)
        .title("Spread against temperature on the four-class toy")
        .x_label("log10 temperature tau")
        .y_label("standard deviation of one estimate");
    for name in NAMES {
        let (mut bias_curve, mut spread_curve) = (Vec::new(), Vec::new());
        for tau in TEMPERATURES {
            let mut estimator = Estimator::<f64>::from_name(name, tau)?;
            let stats = tutorial::estimates(
                &mut estimator,
                &TOY_LOGITS,
                k,
                &tutorial::toy_cost_on_tape,
                (DRAWS, 1),
                &mut rng,
                |_, _| {},
            )?;
            let key = name.replace('-', "_");
            let bias = stats.bias(&exact.gradient);
            figure(&format!("{key}_bias_tau_{tau}"), bias);
            figure(&format!("{key}_variance_tau_{tau}"), stats.total_variance());
            figure(&format!("{key}_cost_tau_{tau}"), stats.mean_cost);
            bias_curve.push((tau.log10(), bias));
            spread_curve.push((tau.log10(), stats.total_variance().sqrt()));
        }
        bias_plot = bias_plot.series(Series::new(name, bias_curve));
        spread_plot = spread_plot.series(Series::new(name, spread_curve));
    }
    bias_plot.save_svg(args.common.path(BIAS_FIGURE))?;
    tutorial::wrote(&args.common.path(BIAS_FIGURE));
    spread_plot.save_svg(args.common.path(SPREAD_FIGURE))?;
    tutorial::wrote(&args.common.path(SPREAD_FIGURE));
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
