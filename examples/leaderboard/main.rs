//! The leaderboard: every estimator of the crate on the paper's two VAEs (Jang, Gu and
//! Poole 2017, arXiv 1611.01144, §4.2) at one budget, on statically binarised MNIST,
//! one command per cell, resumable, each result merged into a JSON results file
//! (`out/leaderboard.json` unless `--out`).
//!
//! ```text
//! cargo run --release --example leaderboard -- --list
//! cargo run --release --example leaderboard -- --cell "VAE Cat.:gumbel-softmax" --binarized-mnist "$GUMBELGRAD_DATA/binarized_mnist"
//! cargo run --release --example leaderboard -- --all --binarized-mnist "$GUMBELGRAD_DATA/binarized_mnist"
//! cargo run --release --example leaderboard -- --smoke --cell "VAE Bern.:disarm"   # seconds, synthetic digits, temp files
//! cargo run --release --example leaderboard -- --markdown docs/results/leaderboard.json
//! ```
//!
//! # Protocol
//! - Models: `"VAE Cat."` (20 variables x 10 classes) and `"VAE Bern."` (200 binary
//!   units), the Table 1 VAE (784-512-256-latent encoder, mirrored decoder, ReLU,
//!   uniform prior; examples/table1/cells.rs).
//! - Estimators: every name of `gumbelgrad::estimators::ESTIMATOR_NAMES` whose
//!   estimator fits the model's latents (`Latent::check_estimator`); one cell is
//!   `(model, estimator)`.
//! - Budget: 30 epochs, batch 100, Adam with a constant learning rate chosen from
//!   {3e-4, 1e-3, 3e-3} on the 10,000 validation images (importance-weighted bound,
//!   m = 100, the best wins, ties keep the smaller rate), test bound with m = 1000 on
//!   the 10,000 test images, seed 0.
//! - Temperature: every estimator that has one runs the annealed schedule of the
//!   Table 1 VAE GS cells, `tau = max(0.5, exp(-1e-4 t))` updated every 1000 steps,
//!   except `rebar` and `relax`, which start at 1 and tune their own (the schedule is
//!   constant, so the trainer never overwrites their tuning), and `reinmax`, which runs
//!   at its authors' constant for the nearest configuration of their scripts (tau = 1.3
//!   on the categorical VAE, 1.1 on the Bernoulli one; they recommend tau >= 1, which
//!   the annealed schedule goes below; `cell::AUTHORS_TEMPERATURE`).
//! - Gradient variance (`grad_variance`): at one fixed checkpoint per model (one epoch
//!   of `gumbel-softmax`, resp. `relaxed-bernoulli`, annealed, Adam 1e-3, batch 100,
//!   seed 0, cached in the work folder), on the first 100 training images, each
//!   estimator warms up its state with W = 100 estimates (the model is not updated),
//!   then draws S = 100 estimates of the gradient of the minibatch's negative ELBO with
//!   respect to the encoder's parameters (`encoder.*`, on the gradient's own scale for
//!   variance-normalised estimators); the figure is the mean over encoder coordinates
//!   of the per-coordinate sample variance (`variance.rs`, which also says what
//!   `muprop-nvil` and `vimco-bound` are measured on).
//!
//! # Resuming
//! A cell killed at any point and rerun with the same command continues where it
//! stopped: each learning rate's run checkpoints every epoch into
//! `<work>/<cell>/lr-<rate>/` (`--work`, default `out/leaderboard`) and resumes from it,
//! a finished candidate's validation score, the test bound and the variance are saved
//! atomically and not recomputed, and the finished cell is merged into the results file
//! atomically, under a lock on `<out>.lock`, so processes running different cells can
//! share one results file (`ResultsFile::merge_into`).
//!
//! Results go to stdout (one line per cell), progress to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::Error;
use gumbelgrad::data::{AmatSplit, SyntheticDigits, load_binarized_mnist};
use gumbelgrad::estimators::ESTIMATOR_NAMES;
use gumbelgrad::io::json::Json;

mod cell;
#[path = "../common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;
#[path = "../table1/cells.rs"]
#[allow(dead_code)] // the leaderboard uses the Table 1 runner's VAE pieces
mod table1;
mod variance;

use cell::{Cell, Event, MODELS, Protocol, Splits, estimators_of, run_cell};
use table1::{Budget, ResultsFile};
use variance::VarianceSetup;

/// Where results go without `--out`: a git-ignored folder, never into docs/.
const DEFAULT_OUT: &str = "out/leaderboard.json";
/// Where runs keep their checkpoints without `--work`.
const DEFAULT_WORK: &str = "out/leaderboard";
/// The data folder every recorded command names.
const DATA_IN_COMMANDS: &str = "$GUMBELGRAD_DATA/binarized_mnist";

const PROTOCOL: &str = "\
Protocol: models \"VAE Cat.\" (20x10) and \"VAE Bern.\" (200 units), the Table 1 VAE; every
estimator that fits the model's latents; 30 epochs, batch 100, Adam with the learning rate
chosen from {3e-4, 1e-3, 3e-3} on the validation images (m = 100); test bound m = 1000;
seed 0. Every estimator with a temperature runs tau = max(0.5, exp(-1e-4 t)) updated every
1000 steps, except rebar and relax, which start at 1 and tune their own, and reinmax, which
runs at its authors' constant (1.3 on VAE Cat., 1.1 on VAE Bern.). grad_variance: at
one fixed checkpoint per model (1 epoch of gumbel-softmax / relaxed-bernoulli, Adam 1e-3,
cached in the work folder), on the first 100 training images, W = 100 warm-up estimates,
then the mean over encoder coordinates of the sample variance of S = 100 estimates of the
encoder's gradient. A cell killed at any point continues when rerun with the same command.";

/// Run the leaderboard: every estimator of the crate on the paper's two VAEs at one
/// budget, one cell (model, estimator) per command, resumable; each finished cell is
/// merged into a JSON results file.
///
/// Give --list, --markdown FILE, --all or one or more --cell; a run reads
/// --binarized-mnist DIR (default: $GUMBELGRAD_DATA/binarized_mnist) or uses --smoke.
#[derive(Debug, Parser)]
#[command(name = "leaderboard", version, after_help = after_help())]
struct Args {
    /// A cell "MODEL:ESTIMATOR", e.g. "VAE Cat.:gumbel-softmax" (repeatable)
    #[arg(long = "cell", value_name = "MODEL:ESTIMATOR", value_parser = parse_cell)]
    cells: Vec<Cell>,
    /// Every cell not yet in the results file, model by model, estimators in the
    /// crate's order
    #[arg(long)]
    all: bool,
    /// Print every cell's command, one per line (with the other options given); runs
    /// nothing
    #[arg(long)]
    list: bool,
    /// Print the table of a results file (model x estimator: nats, gradient variance,
    /// training seconds) as Markdown, then each cell's command; runs nothing
    #[arg(long, value_name = "FILE.json")]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    data: cli::BinarizedMnist,
    /// A tiny run on 200 synthetic digits the crate draws (no data folder): 1 epoch of
    /// batch 20, m = 5, W = S = 5; results and work in the temporary folder unless
    /// --out / --work
    #[arg(long)]
    smoke: bool,
    /// Passes over the training set [default: 30; 1 with --smoke]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Examples per step [default: 100; 20 with --smoke]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    batch_size: Option<usize>,
    /// The learning rates tried; the best validation score wins
    #[arg(long, value_name = "R1,R2,...", default_value = "3e-4,1e-3,3e-3", value_parser = parse_grid)]
    lr_grid: Grid,
    /// m of the validation scores [default: 100; 5 with --smoke]
    #[arg(long, value_name = "M", value_parser = cli::at_least_one)]
    valid_samples: Option<usize>,
    /// m of the test bound [default: 1000; 5 with --smoke]
    #[arg(long, value_name = "M", value_parser = cli::at_least_one)]
    eval_samples: Option<usize>,
    /// W, estimates that only warm up the estimator [default: 100; 5 with --smoke]
    #[arg(long, value_name = "W")]
    variance_warmup: Option<usize>,
    /// S, estimates the variance is taken over [default: 100; 5 with --smoke]
    #[arg(long, value_name = "S", value_parser = at_least_two)]
    variance_samples: Option<usize>,
    #[command(flatten)]
    seed: cli::Seed,
    #[command(flatten)]
    threads: cli::Threads,
    /// Checkpoints and saved scores, a subfolder per cell [default: out/leaderboard
    /// (git-ignored); with --smoke one in the temporary folder]
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Results file, read and merged into [default: out/leaderboard.json (git-ignored);
    /// with --smoke one in the temporary folder]. The published one is
    /// docs/results/leaderboard.json: only an explicit --out writes there
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Rerun cells that are already in the results file (saved work is still reused)
    #[arg(long)]
    force: bool,
}

/// A learning-rate grid, `R1,R2,...`.
#[derive(Debug, Clone)]
struct Grid(Vec<f64>);

fn parse_grid(text: &str) -> Result<Grid, String> {
    cli::learning_rates(text).map(Grid)
}

fn parse_cell(text: &str) -> Result<Cell, String> {
    Cell::parse(text).map_err(|e| e.to_string())
}

fn at_least_two(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n < 2 => Err("must be at least 2".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn after_help() -> String {
    let models: Vec<String> = MODELS
        .iter()
        .map(|m| format!("{m}: {}", estimators_of(m).join(", ")))
        .collect();
    format!(
        "{PROTOCOL}\n\nCells (MODEL: ESTIMATORS):\n{}",
        models.join("\n")
    )
}

/// The options that shape a cell's result, recorded (as typed) in its command.
const RECORDED: [&str; 10] = [
    "--epochs",
    "--batch-size",
    "--lr-grid",
    "--valid-samples",
    "--eval-samples",
    "--variance-warmup",
    "--variance-samples",
    "--seed",
    "--threads",
    // Written as DATA_IN_COMMANDS whatever folder was read (see `command_for`).
    "--binarized-mnist",
];

fn main() -> ExitCode {
    let args: Args = cli::parse();
    let recorded = cli::recorded_options(std::env::args_os().skip(1), &RECORDED, &["--smoke"]);
    let actions = [
        args.list,
        args.markdown.is_some(),
        args.all,
        !args.cells.is_empty(),
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        cli::usage_error::<Args>(
            "give one of --list, --markdown FILE, --all or one or more --cell \"MODEL:ESTIMATOR\"",
        );
    }
    if let Some(path) = &args.markdown {
        return match print_markdown(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => cli::fail(error),
        };
    }
    if args.list {
        let mut out = String::new();
        for cell in Cell::all() {
            out.push_str(&command_for(&cell, &recorded));
            out.push('\n');
        }
        return match print(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => cli::fail(error),
        };
    }
    if args.smoke && args.data.binarized_mnist.is_some() {
        cli::usage_error::<Args>("give --binarized-mnist DIR for a real run, or --smoke, not both");
    }
    let cells = if args.all {
        Cell::all()
    } else {
        args.cells.clone()
    };
    match run_cells(&args, &cells, &recorded) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

/// The command that runs one cell with the recorded options. A real run's data folder
/// is written `"$GUMBELGRAD_DATA/binarized_mnist"` (added when the options name none):
/// the data set is the same whatever folder holds it, and a command names no folder of
/// the machine it ran on.
fn command_for(cell: &Cell, recorded: &[String]) -> String {
    let mut words = vec![
        "cargo run --release --example leaderboard --".to_string(),
        "--cell".to_string(),
        format!("\"{}\"", cell.label()),
    ];
    let smoke = recorded.iter().any(|w| w == "--smoke");
    if !smoke {
        words.push("--binarized-mnist".into());
        words.push(format!("\"{DATA_IN_COMMANDS}\""));
    }
    let mut rest = recorded.iter();
    while let Some(word) = rest.next() {
        if word == "--binarized-mnist" {
            rest.next();
            continue;
        }
        let w = cli::portable_path(word);
        words.push(if w.contains(' ') || w.starts_with('$') {
            format!("\"{w}\"")
        } else {
            w
        });
    }
    words.join(" ")
}

/// Writes `text` to stdout in one piece; a closed pipe (`| head`) ends it quietly.
fn print(text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("standard output", &error))
        }
        _ => Ok(()),
    }
}

/// The results file as Markdown: one row per estimator, for each model the test bound,
/// the gradient variance and the training seconds ("-": the estimator does not fit the
/// model; "not run yet": no entry), then every entry's learning rate and command.
fn print_markdown(path: &Path) -> Result<(), Error> {
    use std::fmt::Write as _;
    if !path.exists() {
        return Err(Error::io(
            path,
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let table = ResultsFile::load(path)?;
    let text = |entry: &Json, key: &str| {
        entry.get(key).map_or(String::new(), |v| match v.as_str() {
            Some(s) => s.to_string(),
            None => v.to_string(),
        })
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Test bound in nats (m = 1000 unless stated; lower is better), encoder-gradient variance at the fixed checkpoint, training seconds of the chosen run.\n"
    );
    let mut header = "| estimator |".to_string();
    let mut rule = "|---|".to_string();
    for model in MODELS {
        let _ = write!(
            header,
            " {model} nats | {model} grad variance | {model} train s |"
        );
        rule.push_str("---|---|---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for estimator in ESTIMATOR_NAMES {
        let mut row = format!("| `{estimator}` |");
        for model in MODELS {
            if !cell::fits(model, estimator) {
                row.push_str(" - | - | - |");
                continue;
            }
            match table.get_entry(model, estimator) {
                Some(entry) => {
                    let m = text(entry, "eval_samples");
                    let nats = if m == "1000" {
                        text(entry, "nats")
                    } else {
                        format!("{} (m = {m})", text(entry, "nats"))
                    };
                    let variance = entry
                        .get("grad_variance")
                        .and_then(Json::as_f64)
                        .map_or("-".to_string(), |v| format!("{v:.3e}"));
                    let _ = write!(
                        row,
                        " {nats} | {variance} | {} |",
                        text(entry, "train_seconds")
                    );
                }
                None => row.push_str(" not run yet | | |"),
            }
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(
        out,
        "\n| cell | epochs | Adam lr (validation nats per candidate) | W, S | command |\n|---|---|---|---|---|"
    );
    for entry in table.entries() {
        let candidates: Vec<String> = entry
            .get("lr_grid")
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .map(|c| format!("{}: {}", text(c, "learning_rate"), text(c, "valid_nats")))
            .collect();
        let _ = writeln!(
            out,
            "| {}:{} | {} | {} ({}) | {}, {} | `{}` |",
            text(entry, "model"),
            text(entry, "estimator"),
            text(entry, "epochs"),
            text(entry, "learning_rate"),
            candidates.join(", "),
            text(entry, "variance_warmup"),
            text(entry, "variance_samples"),
            text(entry, "command")
        );
    }
    print(&out)
}

fn run_cells(args: &Args, cells: &[Cell], recorded: &[String]) -> Result<(), Error> {
    args.threads.apply();
    let seed = args.seed.seed;
    let smoke = args.smoke;
    let temporary = |name: &str| std::env::temp_dir().join(name);
    let out = args.out.clone().unwrap_or_else(|| {
        if smoke {
            temporary("gumbelgrad-leaderboard-smoke.json")
        } else {
            PathBuf::from(DEFAULT_OUT)
        }
    });
    let work = args.work.clone().unwrap_or_else(|| {
        if smoke {
            temporary("gumbelgrad-leaderboard-smoke")
        } else {
            PathBuf::from(DEFAULT_WORK)
        }
    });
    // A results file or work folder that cannot be written must fail now, not after
    // the first cell.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    }
    gumbelgrad::io::atomic::check_writable(&out)?;
    ResultsFile::load(&out)?;
    cli::prepare_output(&work, &[])?;

    let (train, valid, test, data_name) = if smoke {
        let (train, test) = SyntheticDigits::new(seed).with_sizes(220, 20).generate();
        let (train, valid) = train.split_validation(20, seed)?;
        (
            train,
            valid,
            test,
            "200 synthetic digits (smoke)".to_string(),
        )
    } else {
        let dir = match (
            &args.data.binarized_mnist,
            std::env::var_os("GUMBELGRAD_DATA"),
        ) {
            (Some(dir), _) => dir.clone(),
            (None, Some(root)) => Path::new(&root).join("binarized_mnist"),
            (None, None) => {
                return Err(Error::invalid_argument(
                    "leaderboard",
                    "give --binarized-mnist DIR, set GUMBELGRAD_DATA, or use --smoke",
                ));
            }
        };
        (
            load_binarized_mnist(&dir, AmatSplit::Train)?,
            load_binarized_mnist(&dir, AmatSplit::Valid)?,
            load_binarized_mnist(&dir, AmatSplit::Test)?,
            "statically binarised MNIST (50,000 train / 10,000 valid / 10,000 test)".to_string(),
        )
    };
    let small = |smoke_value: usize, value: usize| if smoke { smoke_value } else { value };
    let protocol = Protocol {
        budget: Budget {
            epochs: args.epochs.unwrap_or(if smoke { 1 } else { 30 }),
            batch_size: args.batch_size.unwrap_or(small(20, 100)),
            learning_rate: args.lr_grid.0[0],
            eval_samples: args.eval_samples.unwrap_or(small(5, 1000)),
            seed,
        },
        lr_grid: args.lr_grid.0.clone(),
        valid_samples: args.valid_samples.unwrap_or(small(5, 100)),
        variance: VarianceSetup {
            warmup: args.variance_warmup.unwrap_or(small(5, 100)),
            samples: args.variance_samples.unwrap_or(small(5, 100)),
            batch: 100,
        },
    };
    let budget = &protocol.budget;
    eprintln!(
        "data: {data_name}; {} epoch(s), batch {}, Adam lr from {:?} on validation (m = {}), test m = {}, \
         variance W = {}, S = {}, seed {}, {} thread(s); work in {}, results -> {}",
        budget.epochs,
        budget.batch_size,
        protocol.lr_grid,
        protocol.valid_samples,
        budget.eval_samples,
        protocol.variance.warmup,
        protocol.variance.samples,
        seed,
        args.threads.threads,
        work.display(),
        out.display()
    );
    let data = Splits {
        train: &train.images,
        valid: &valid.images,
        test: &test.images,
    };
    for (index, cell) in cells.iter().enumerate() {
        let label = format!("cell {}/{} {}", index + 1, cells.len(), cell.label());
        // Re-read before every cell: another process may have added cells meanwhile.
        if !args.force
            && ResultsFile::load(&out)?
                .get_entry(cell.model, cell.estimator)
                .is_some()
        {
            eprintln!(
                "{label}: already in {}, skipped (--force reruns it)",
                out.display()
            );
            continue;
        }
        eprintln!("{label}: work in {}", work.join(cell.slug()).display());
        let command = command_for(cell, recorded);
        let epochs = budget.epochs;
        let mut on_event = |event: Event| {
            let rate = |r: Option<f64>| {
                r.map_or("reference checkpoint".to_string(), |r| format!("lr {r}"))
            };
            match event {
                Event::Resumed {
                    learning_rate,
                    epoch,
                } => eprintln!("{label}: {}: resumed at epoch {epoch}", rate(learning_rate)),
                Event::Epoch {
                    learning_rate,
                    epoch,
                    loss,
                } => eprintln!(
                    "{label}: {}: epoch {epoch}/{}  loss {loss:.3}",
                    rate(learning_rate),
                    if learning_rate.is_some() { epochs } else { 1 }
                ),
                Event::Candidate {
                    learning_rate,
                    valid_nats,
                    saved,
                } => eprintln!(
                    "{label}: lr {learning_rate}: validation {valid_nats:.3} nats (m = {}){}",
                    protocol.valid_samples,
                    if saved { ", saved earlier" } else { "" }
                ),
                Event::Testing => eprintln!(
                    "{label}: evaluating on {} test images, m = {}",
                    data.test.rows(),
                    budget.eval_samples
                ),
                Event::Variance => eprintln!(
                    "{label}: gradient variance, W = {}, S = {}",
                    protocol.variance.warmup, protocol.variance.samples
                ),
            }
            Ok(())
        };
        let result = run_cell(cell, &protocol, data, &work, &command, &mut on_event)?;
        ResultsFile::merge_into(&out, result.to_json(), MODELS, ESTIMATOR_NAMES)?;
        println!(
            "{}\t{:.2} nats\tm = {}\t{} epochs\tlr {}\tgrad variance {:.4e}\t{:.0} s",
            cell.label(),
            result.nats,
            result.eval_samples,
            result.epochs,
            result.learning_rate,
            result.grad_variance,
            result.train_seconds
        );
    }
    Ok(())
}
