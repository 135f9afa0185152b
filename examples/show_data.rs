//! Look at the data: generates the embedded synthetic digits (and, if given, loads
//! MNIST or binarised MNIST), prints how long each took, and writes a PNG grid of
//! examples, one row per class where there are labels.
//!
//! ```text
//! cargo run --release --example show_data
//! cargo run --release --example show_data -- --mnist ../shared/data/mnist \
//!     --binarized-mnist ../shared/data/binarized_mnist --out out/show_data
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use gumbelgrad::data::amat::AmatSplit;
use gumbelgrad::data::{Dataset, MnistSplit, SyntheticDigits, load_binarized_mnist, load_mnist};
use gumbelgrad::io::save_image_grid;

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
    let path = out.join(format!("{name}.png"));
    save_image_grid(
        &path,
        &data.gather(&by_class(data, 16)),
        data.height,
        data.width,
        16,
        2,
    )?;
    println!(
        "{name:>22}: {:>6} images of {}x{}, mean pixel {mean:.4}, loaded in {seconds:.2} s -> {}",
        data.len(),
        data.height,
        data.width,
        path.display()
    );
    Ok(())
}

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut mnist = None;
    let mut binarized = None;
    let mut out = PathBuf::from("out/show_data");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--mnist" => mnist = Some(PathBuf::from(value()?)),
            "--binarized-mnist" => binarized = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            _ => {
                return Err(format!(
                    "unknown argument `{flag}` (options: --mnist DIR, --binarized-mnist DIR, --out DIR)"
                ));
            }
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    let start = Instant::now();
    let (train, test) = SyntheticDigits::new(0).generate();
    let seconds = start.elapsed().as_secs_f64();
    show("synthetic_train", &train, seconds, &out).map_err(|e| e.to_string())?;
    show("synthetic_test", &test, 0.0, &out).map_err(|e| e.to_string())?;

    if let Some(dir) = mnist {
        for (name, split) in [
            ("mnist_train", MnistSplit::Train),
            ("mnist_test", MnistSplit::Test),
        ] {
            let start = Instant::now();
            let data = load_mnist(&dir, split).map_err(|e| e.to_string())?;
            show(name, &data, start.elapsed().as_secs_f64(), &out).map_err(|e| e.to_string())?;
        }
    }
    if let Some(dir) = binarized {
        for (name, split) in [
            ("binarized_mnist_train", AmatSplit::Train),
            ("binarized_mnist_valid", AmatSplit::Valid),
            ("binarized_mnist_test", AmatSplit::Test),
        ] {
            let start = Instant::now();
            let data = load_binarized_mnist(&dir, split).map_err(|e| e.to_string())?;
            show(name, &data, start.elapsed().as_secs_f64(), &out).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
