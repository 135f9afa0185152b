//! Command-line conventions shared by every example: options defined once (data
//! folders, threads, seed), value checks, the error style, output-folder checks and
//! JSON numbers.
//!
//! An example includes this file with
//!
//! ```text
//! #[path = "common/cli.rs"]
//! #[allow(dead_code)] // each example uses a part of it
//! mod cli;
//! ```
//!
//! and derives its own `clap::Parser` (with `#[command(name = "<example>", version)]`,
//! so that usage lines and `--version` name the example), flattening the groups it needs
//! (`#[command(flatten)] threads: cli::Threads`). Every example then behaves the same:
//! `--help`/`-h` lists every option with its default and exits 0, `--version` prints
//! the crate's version, `--flag=value` and `--flag value` both work, a value that
//! looks like a flag is rejected (`--epochs --out x`), a single-valued option given
//! twice is rejected, and every usage error (clap's or [`usage_error`]) is one message
//! plus a usage hint on stderr, exit code 2. Failures while running print
//! `error: ...` and exit 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, error::ErrorKind};
use gumbelgrad::io::json::Json;

/// Parses the command line into `T`, exiting as described in the module doc on
/// `--help`, `--version` and usage errors.
pub fn parse<T: Parser>() -> T {
    T::parse()
}

/// Reports a usage error found after parsing (two options that contradict each other,
/// say) in clap's style and exits with code 2.
pub fn usage_error<T: CommandFactory>(message: impl std::fmt::Display) -> ! {
    T::command()
        .error(ErrorKind::ArgumentConflict, message)
        .exit()
}

/// Prints a run-time error and gives exit code 1.
pub fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// The default number of matrix-product threads of every example: the library's own
/// default, [`gumbelgrad::kernels::default_num_threads`] (all cores the process may
/// use, at most 4; why is in `gumbelgrad::kernels::threads`). Results do not depend on
/// the thread count, so the default only changes speed.
pub fn default_threads() -> usize {
    gumbelgrad::kernels::default_num_threads()
}

/// `--threads N`: threads for the matrix products.
#[derive(Debug, Clone, Args)]
pub struct Threads {
    /// Threads for the matrix products (results are bit-identical for every count;
    /// default: the available cores, at most 4)
    #[arg(long, value_name = "N", default_value_t = default_threads(), value_parser = at_least_one)]
    pub threads: usize,
}

impl Threads {
    /// Sets the library's thread count.
    pub fn apply(&self) {
        gumbelgrad::kernels::set_num_threads(self.threads);
    }
}

/// `--seed S`: the seed of every random number.
#[derive(Debug, Clone, Args)]
pub struct Seed {
    /// Seed of every random number
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
}

const MNIST_HELP: &str = "MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...), binarised \
    dynamically [default: synthetic digits drawn by the crate]";
const BINARIZED_MNIST_HELP: &str =
    "Statically binarised MNIST (binarized_mnist_{train,valid,test}.amat[.gz])";

/// `--mnist DIR`; none means the crate's synthetic digits.
#[derive(Debug, Clone, Args)]
pub struct Mnist {
    #[arg(long, value_name = "DIR", help = MNIST_HELP)]
    pub mnist: Option<PathBuf>,
}

/// `--binarized-mnist DIR`, alone (for tools that read it beside `--mnist`).
#[derive(Debug, Clone, Args)]
pub struct BinarizedMnist {
    #[arg(long, value_name = "DIR", help = BINARIZED_MNIST_HELP)]
    pub binarized_mnist: Option<PathBuf>,
}

/// `--mnist DIR` or `--binarized-mnist DIR` (not both); neither means the crate's
/// synthetic digits.
#[derive(Debug, Clone, Args)]
pub struct Data {
    #[arg(long, value_name = "DIR", help = MNIST_HELP, conflicts_with = "binarized_mnist")]
    pub mnist: Option<PathBuf>,
    #[arg(long, value_name = "DIR", help = BINARIZED_MNIST_HELP)]
    pub binarized_mnist: Option<PathBuf>,
}

impl Data {
    /// Whether a real data set (not the synthetic digits) was asked for.
    pub fn is_real(&self) -> bool {
        self.mnist.is_some() || self.binarized_mnist.is_some()
    }
}

/// A whole number of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number greater than 0.
pub fn positive(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err("must be a finite number greater than 0".to_string())
    }
}

/// A comma-separated list of finite numbers greater than 0 (`R1,R2,...`, a
/// learning-rate grid), each checked by [`positive`].
pub fn learning_rates(text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|rate| positive(rate.trim()).map_err(|e| format!("'{rate}': {e}")))
        .collect()
}

/// A finite number of at least 0.
pub fn non_negative(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err("must be a finite number of at least 0".to_string())
    }
}

/// Creates the output folder and checks, before any work, that files can be written
/// into it and that none of `files` (names inside it) is a folder: a read-only folder
/// must fail now, not after an hour of training.
pub fn prepare_output(dir: &Path, files: &[&str]) -> gumbelgrad::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| gumbelgrad::Error::io(dir, &e))?;
    for name in files {
        gumbelgrad::io::atomic::check_writable(dir.join(name))?;
    }
    Ok(())
}

/// A JSON number; a non-finite value becomes `null` and a warning on stderr naming it.
pub fn number(name: &str, value: f64) -> Json {
    if !value.is_finite() {
        eprintln!("warning: {name} is {value}; written as null");
    }
    Json::from_f64(value)
}

/// A JSON object from `(key, value)` pairs, keys in order.
pub fn object<const N: usize>(members: [(&str, Json); N]) -> Json {
    Json::Object(
        members
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// The options of a command line clap has accepted that shape a result, in the order
/// typed, each as `--flag value` (also when typed `--flag=value`): the valued options
/// named in `valued` and the switches named in `switches`; everything else is left out.
pub fn recorded_options(
    words: impl IntoIterator<Item = std::ffi::OsString>,
    valued: &[&str],
    switches: &[&str],
) -> Vec<String> {
    let mut recorded = Vec::new();
    let mut words = words.into_iter().map(|w| w.to_string_lossy().into_owned());
    while let Some(word) = words.next() {
        if switches.contains(&word.as_str()) {
            recorded.push(word);
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (word, None),
        };
        if valued.contains(&flag.as_str()) {
            // clap has checked that every valued option has its value.
            let value = inline.or_else(|| words.next()).unwrap_or_default();
            recorded.push(flag);
            recorded.push(value);
        }
    }
    recorded
}

/// A data folder under `$GUMBELGRAD_DATA` written relative to it, so that a recorded
/// command names no folder of the machine it ran on; any other word as it is.
pub fn portable_path(word: &str) -> String {
    if let Some(root) = std::env::var_os("GUMBELGRAD_DATA") {
        let root = Path::new(&root);
        if let Ok(rest) = Path::new(word).strip_prefix(root)
            && !root.as_os_str().is_empty()
        {
            return format!("$GUMBELGRAD_DATA/{}", rest.display());
        }
    }
    word.to_string()
}
