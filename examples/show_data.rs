//! Look at the data: generates the embedded synthetic digits (and, if given, loads
//! MNIST or binarised MNIST), prints how long each took, and writes an SVG grid of
//! examples of each, one labelled row per class where there are labels.
//!
//! ```text
//! cargo run --release --example show_data
//! cargo run --release --example show_data -- --mnist path/to/mnist \
//!     --binarized-mnist path/to/binarized_mnist --out out/show_data
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gumbelgrad::data::amat::AmatSplit;
use gumbelgrad::data::{Dataset, MnistSplit, SyntheticDigits, load_binarized_mnist, load_mnist};
use gumbelgrad::io::{GridFigure, image_grid};

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

/// Look at the data: generate the crate's synthetic digits (and load MNIST and
/// binarised MNIST where given), say how long each took, and write a labelled grid of
/// examples of each (one row per class where there are labels).
#[derive(Debug, Parser)]
#[command(name = "show_data", version)]
struct Args {
    #[command(flatten)]
    mnist: cli::Mnist,
    #[command(flatten)]
    binarized_mnist: cli::BinarizedMnist,
    /// Folder for the grids (one SVG per data set and split)
    #[arg(long, value_name = "DIR", default_value = "out/show_data")]
    out: PathBuf,
    #[command(flatten)]
    seed: cli::Seed,
}

/// Indices of up to `per_class` examples of each label, class by class (or the first
/// images when there are no labels).
fn by_class(data: &Dataset, per_class: usize) -> Vec<usize> {
    match &data.labels {
        None => (0..(10 * per_class).min(data.len())).collect(),
        Some(labels) => (0..10u8)
            .flat_map(|class| {
                labels
                    .iter()
                    .enumerate()
                    .filter(move |(_, l)| **l == class)
                    .map(|(i, _)| i)
                    .take(per_class)
            })
            .collect(),
    }
}

fn show(name: &str, data: &Dataset, seconds: f64, out: &Path) -> gumbelgrad::Result<()> {
    let mean = data.images.sum() / data.images.len().max(1) as f64;
    let path = out.join(format!("{name}.svg"));
    let grid = image_grid(
        &data.gather(&by_class(data, 16)),
        data.height,
        data.width,
        16,
        2,
    )?;
    let figure = GridFigure::new(grid, data.height, data.width, 2).title(format!(
        "{name}: {} images of {}x{}",
        data.len(),
        data.height,
        data.width
    ));
    let figure = match &data.labels {
        Some(_) => figure
            .row_labels((0..10).map(|class| format!("label {class}")))
            .caption("Each row: the first 16 images with that label; white = 1."),
        None => figure.caption("The first images of the set (no labels); white = 1."),
    };
    figure.save(&path)?;
    println!(
        "{name:>22}: {:>6} images of {}x{}, mean pixel {mean:.4}, loaded in {seconds:.2} s -> {}",
        data.len(),
        data.height,
        data.width,
        path.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

fn run(args: &Args) -> gumbelgrad::Result<()> {
    let out = &args.out;
    cli::prepare_output(out, &[])?;
    let start = Instant::now();
    let (train, test) = SyntheticDigits::new(args.seed.seed).generate();
    let seconds = start.elapsed().as_secs_f64();
    show("synthetic_train", &train, seconds, out)?;
    show("synthetic_test", &test, 0.0, out)?;

    if let Some(dir) = &args.mnist.mnist {
        for (name, split) in [
            ("mnist_train", MnistSplit::Train),
            ("mnist_test", MnistSplit::Test),
        ] {
            let start = Instant::now();
            let data = load_mnist(dir, split)?;
            show(name, &data, start.elapsed().as_secs_f64(), out)?;
        }
    }
    if let Some(dir) = &args.binarized_mnist.binarized_mnist {
        for (name, split) in [
            ("binarized_mnist_train", AmatSplit::Train),
            ("binarized_mnist_valid", AmatSplit::Valid),
            ("binarized_mnist_test", AmatSplit::Test),
        ] {
            let start = Instant::now();
            let data = load_binarized_mnist(dir, split)?;
            show(name, &data, start.elapsed().as_secs_f64(), out)?;
        }
    }
    Ok(())
}
