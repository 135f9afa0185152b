//! Tutorial chapter 8 (docs/tutorial/08-next.md): the estimators the crate ships, by
//! name, with what each claims about its bias, the starting point for what to try next.
//!
//! ```text
//! cargo run --release --example tutorial_08_next
//! ```

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, GradientEstimator};

#[path = "common/tutorial.rs"]
#[allow(dead_code)] // each example uses a part of it
mod tutorial;

/// Chapter 8: the estimators the crate has.
#[derive(Debug, Parser)]
#[command(name = "tutorial_08_next", version)]
struct Args {
    #[command(flatten)]
    common: tutorial::Common,
}

fn run() -> gumbelgrad::Result<()> {
    let mut unbiased = 0;
    println!("{:<32} {:<10} temperature", "name", "unbiased");
    for name in ESTIMATOR_NAMES {
        let estimator = Estimator::<f32>::from_name(name, 1.0)?;
        let claims = estimator.is_unbiased();
        unbiased += usize::from(claims);
        let temperature = match estimator.temperature() {
            Some(_) => "yes",
            None => "no",
        };
        println!(
            "{name:<32} {:<10} {temperature}",
            if claims { "yes" } else { "no" }
        );
    }
    tutorial::figure_text("estimators", ESTIMATOR_NAMES.len());
    tutorial::figure_text("unbiased", unbiased);
    Ok(())
}

fn main() -> ExitCode {
    let _args = Args::parse();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
