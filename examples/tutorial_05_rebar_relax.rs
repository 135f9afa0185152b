//! Tutorial chapter 5 (docs/tutorial/05-rebar-relax.md): REBAR and RELAX against
//! REINFORCE on the four-class toy of chapter 3: bias (about zero, measured against the
//! exact gradient) and variance, and how the variance falls while they tune themselves.
//!
//! ```text
//! cargo run --release --example tutorial_05_rebar_relax [-- --out docs/tutorial/figures]
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{Estimator, GradientEstimator, exact};
use gumbelgrad::io::{LinePlot, Series};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;
use tutorial::{TOY_LOGITS, figure};

const FIGURE: &str = "05_variance_over_calls.svg";

/// Chapter 5: REBAR and RELAX.
#[derive(Debug, Parser)]
#[command(name = "tutorial_05_rebar_relax", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

/// 100 estimates per call, 1000 calls: 100,000 estimates per estimator.
const ROWS: usize = 100;
const CALLS: usize = 1000;
const NAMES: [&str; 4] = ["reinforce", "reinforce-ema", "rebar", "relax"];

fn run(args: &Args) -> gumbelgrad::Result<()> {
    args.common.prepare(&[FIGURE])?;
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let k = TOY_LOGITS.len();
    let exact = exact::categorical(&TOY_LOGITS, k, tutorial::toy_cost)?;
    figure(
        "exact_norm",
        exact.gradient.iter().map(|g| g * g).sum::<f64>().sqrt(),
    );
    let mut plot = LinePlot::new(720, 440)
        .title("Variance per call on the four-class toy while the estimators tune")
        .x_label("call (100 estimates each)")
        .y_label("total variance of one estimate");
    for name in NAMES {
        let mut estimator = Estimator::<f64>::from_name(name, 0.5)?;
        let mut curve = Vec::new();
        let stats = tutorial::estimates(
            &mut estimator,
            &TOY_LOGITS,
            k,
            &tutorial::toy_cost_on_tape,
            (ROWS, CALLS),
            &mut rng,
            |call, stats| curve.push(((call + 1) as f64, stats.total_variance())),
        )?;
        let key = name.replace('-', "_");
        figure(&format!("{key}_bias"), stats.bias(&exact.gradient));
        figure(&format!("{key}_bias_se"), stats.bias_se());
        figure(&format!("{key}_z"), stats.worst_z(&exact.gradient));
        figure(&format!("{key}_variance"), stats.total_variance());
        let last: f64 = curve[CALLS - 100..].iter().map(|(_, v)| v).sum::<f64>() / 100.0;
        figure(&format!("{key}_last_variance"), last);
        if let Some(tau) = estimator.temperature() {
            figure(&format!("{key}_tuned_temperature"), tau);
        }
        eprintln!("{name}: variance {:.5}", stats.total_variance());
        plot = plot.series(Series::new(name, curve));
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
