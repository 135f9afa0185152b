//! Runs cells of the paper's Table 1 (Jang, Gu and Poole 2017, arXiv 1611.01144): one
//! command per cell, resumable, each result merged into a JSON results file
//! (`out/table1.json` unless `--out`) as soon as it exists. SBN cells also checkpoint
//! after every epoch (`out/table1-checkpoints/` unless `--checkpoints`), and the same
//! command rerun after an interruption continues from the last finished epoch.
//!
//! ```text
//! cargo run --release --example table1 -- --cell "VAE Cat.:GS" --binarized-mnist "$GUMBELGRAD_DATA/binarized_mnist" --epochs 10
//! cargo run --release --example table1 -- --all --binarized-mnist "$GUMBELGRAD_DATA/binarized_mnist"
//! cargo run --release --example table1 -- --smoke --cell "SBN Bern.:MuProp"   # seconds, synthetic digits, temp file
//! cargo run --release --example table1 -- --markdown --out docs/results/table1.json
//! cargo run --release --example table1 -- --help
//! ```
//!
//! What each row and column runs is in `cells.rs` (this folder) and docs/results.md.
//! Results go to stdout (one line per cell), progress to stderr.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::Error;
use gumbelgrad::data::{AmatSplit, SyntheticDigits, load_binarized_mnist};
use gumbelgrad::io::ProgressBar;
use gumbelgrad::io::json::Json;

mod cells;
#[path = "../common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

use cells::{
    ANNEAL_RATE, Budget, COLUMNS, Cell, ROWS, ResultsFile, paper_value, run_cell_resumable,
    run_cell_with_selection,
};

/// Where results go without `--out`: a git-ignored folder, never into docs/.
const DEFAULT_OUT: &str = "out/table1.json";

/// Where the SBN cells' checkpoints go without `--checkpoints`: git-ignored as well.
const DEFAULT_CHECKPOINTS: &str = "out/table1-checkpoints";

/// Run cells of the paper's Table 1: train one model with one estimator, evaluate it
/// with m samples, and merge the result into a JSON table (atomically, as each cell
/// finishes).
///
/// Give --all or one or more --cell, and --binarized-mnist DIR (trains on the 50,000
/// training images, reports on the 10,000 test images) or --smoke.
#[derive(Debug, Parser)]
#[command(name = "table1", version, after_help = cell_list())]
struct Args {
    /// A cell "ROW:COLUMN", e.g. "VAE Cat.:GS" (repeatable; rows and columns below)
    #[arg(long = "cell", value_name = "ROW:COLUMN", value_parser = parse_cell)]
    cells: Vec<Cell>,
    /// Every cell, row by row (cells already in the results file are skipped)
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    data: cli::BinarizedMnist,
    /// A tiny run on 200 synthetic digits the crate draws (no data folder): 1 epoch of
    /// batch 20, m = 5; writes to a temporary file unless --out
    #[arg(long)]
    smoke: bool,
    /// Train on only the first N training images (short runs and timing) [default: all]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    train_images: Option<usize>,
    /// Evaluate on only the first N test images (short runs and timing) [default: all]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    test_images: Option<usize>,
    /// Passes over the training set [default: 10; 1 with --smoke]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// m of the test evaluation [default: 1000, the paper's; 5 with --smoke]
    #[arg(long, value_name = "M", value_parser = cli::at_least_one)]
    eval_samples: Option<usize>,
    /// Adam learning rate
    #[arg(long, value_name = "RATE", default_value_t = 1e-3, value_parser = cli::positive)]
    lr: f64,
    /// Choose the learning rate on the validation set, as the paper did: train once per
    /// rate, keep the one with the best validation score (binarised MNIST's 10,000
    /// validation images; with --smoke 20 held-out synthetic digits), report its test
    /// score; the JSON records every candidate [default: none, train with --lr]
    #[arg(long, value_name = "R1,R2,...", value_parser = parse_grid)]
    lr_grid: Option<Grid>,
    /// m of the validation scores of --lr-grid
    #[arg(long, value_name = "M", default_value_t = 100, value_parser = cli::at_least_one)]
    valid_samples: usize,
    /// Examples per step [default: 100; 20 with --smoke]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one)]
    batch_size: Option<usize>,
    #[command(flatten)]
    seed: cli::Seed,
    #[command(flatten)]
    threads: cli::Threads,
    /// Run the named cells with this estimator instead of the column's own (an
    /// ablation, e.g. muprop-normalised; filed under the same cell, with the estimator
    /// in "estimator_name"; use --out to keep the table apart) [default: the column's]
    #[arg(long, value_name = "NAME")]
    estimator: Option<String>,
    /// Rate r of the annealed temperature max(0.5, exp(-r t)) of the named cells that
    /// anneal (Annealed ST; the VAE's GS and ST-GS); the paper chose r from {1e-5,
    /// 1e-4} on validation; recorded as "anneal_rate" [default: 1e-4]
    #[arg(long, value_name = "R", value_parser = cli::positive)]
    anneal_rate: Option<f64>,
    /// Results file, read and merged into [default: out/table1.json (git-ignored); with
    /// --smoke a file in the temporary folder]. The published table is
    /// docs/results/table1.json: only an explicit --out writes there
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Folder of the SBN cells' checkpoints, written after every epoch: rerunning a
    /// killed SBN cell with the same arguments continues from its last epoch (VAE cells
    /// and --lr-grid do not checkpoint) [default: out/table1-checkpoints; with --smoke
    /// none]
    #[arg(long, value_name = "DIR")]
    checkpoints: Option<PathBuf>,
    /// Rerun cells that are already in the results file
    #[arg(long)]
    force: bool,
    /// Print the paper's table beside the results file's (ours / paper) as Markdown,
    /// then each of our cells with its command; runs nothing
    #[arg(long)]
    markdown: bool,
}

/// A learning-rate grid, `R1,R2,...` (one value for clap, so a repeated `--lr-grid` is
/// rejected like every single-valued option).
#[derive(Debug, Clone)]
struct Grid(Vec<f64>);

fn parse_grid(text: &str) -> Result<Grid, String> {
    cli::learning_rates(text).map(Grid)
}

fn parse_cell(text: &str) -> Result<Cell, String> {
    Cell::parse(text).map_err(|e| e.to_string())
}

fn cell_list() -> String {
    format!(
        "Rows: {}\nColumns: {}\nEstimators for --estimator: {}",
        ROWS.join(", "),
        COLUMNS.join(", "),
        gumbelgrad::estimators::ESTIMATOR_NAMES.join(", ")
    )
}

/// The options that shape a cell's result, recorded (as typed) in its command.
const RECORDED: [&str; 13] = [
    "--binarized-mnist",
    "--train-images",
    "--test-images",
    "--epochs",
    "--eval-samples",
    "--lr",
    "--lr-grid",
    "--valid-samples",
    "--batch-size",
    "--seed",
    "--threads",
    "--estimator",
    "--anneal-rate",
];

/// The recorded options of a command line clap has accepted (see
/// [`cli::recorded_options`]).
fn recorded_options(words: impl IntoIterator<Item = OsString>) -> Vec<String> {
    cli::recorded_options(words, &RECORDED, &["--smoke"])
}

/// A checked command line: the options, the cells they name and the recorded options.
struct Run {
    args: Args,
    /// The cells to run, with `--estimator` and `--anneal-rate` applied.
    cells: Vec<Cell>,
    /// The options that shape a cell's result, as typed, for the recorded command.
    recorded: Vec<String>,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    let recorded = recorded_options(std::env::args_os().skip(1));
    if args.markdown {
        return match print_markdown(args.out.as_deref().unwrap_or(Path::new(DEFAULT_OUT))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => cli::fail(error),
        };
    }
    if (args.estimator.is_some() || args.anneal_rate.is_some()) && args.all {
        cli::usage_error::<Args>(
            "--estimator and --anneal-rate apply to named cells; give --cell \"ROW:COLUMN\", not --all",
        );
    }
    if args.all != args.cells.is_empty() {
        cli::usage_error::<Args>("give --all or one or more --cell \"ROW:COLUMN\"");
    }
    if args.smoke == args.data.binarized_mnist.is_some() {
        cli::usage_error::<Args>("give --binarized-mnist DIR for a real run, or --smoke");
    }
    // Each named cell with the overrides it was given.
    let with_overrides = |cell: Cell| -> gumbelgrad::Result<Cell> {
        let cell = match args.anneal_rate {
            Some(rate) => cell.with_anneal_rate(rate)?,
            None => cell,
        };
        match &args.estimator {
            Some(name) => cell.with_estimator(name),
            None => Ok(cell),
        }
    };
    let cells = if args.all {
        Cell::all()
    } else {
        match args.cells.iter().cloned().map(with_overrides).collect() {
            Ok(cells) => cells,
            Err(error) => cli::usage_error::<Args>(error),
        }
    };
    let run = Run {
        args,
        cells,
        recorded,
    };
    match run_cells(&run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

/// The command that reruns one cell with the same options.
fn command_for(cell: &Cell, recorded: &[String]) -> String {
    let mut words = vec![
        "cargo run --release --example table1 --".to_string(),
        "--cell".to_string(),
        format!("\"{}\"", cell.label()),
    ];
    words.extend(recorded.iter().map(|w| {
        let w = &cli::portable_path(w);
        if w.contains(' ') || w.starts_with('$') {
            format!("\"{w}\"")
        } else {
            w.clone()
        }
    }));
    words.join(" ")
}

/// The paper's Table 1 beside ours, then our cells' commands, as Markdown. Written in
/// one piece, and a closed pipe (`| head`) ends it quietly.
fn print_markdown(path: &Path) -> Result<(), Error> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let table = ResultsFile::load(path)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Nats, lower is better; each cell is ours / the paper's (\"-\": the paper has no such column).\n"
    );
    let _ = writeln!(out, "| | {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(COLUMNS.len()));
    for (model, row) in ROWS.iter().zip(Cell::all().chunks(COLUMNS.len())) {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| {
                let ours = table
                    .get(cell)
                    .and_then(|e| e.get("nats"))
                    .map_or("not run yet".to_string(), |n| format!("**{n}**"));
                let paper = paper_value(cell.model, cell.estimator)
                    .map_or("-".to_string(), |v| format!("{v:.1}"));
                format!("{ours} / {paper}")
            })
            .collect();
        let _ = writeln!(out, "| {model} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n| cell | nats | m | epochs | Adam lr | wall time | command |\n|---|---|---|---|---|---|---|"
    );
    for entry in table.entries() {
        let text = |entry: &Json, key: &str| {
            entry.get(key).map_or(String::new(), |v| match v.as_str() {
                Some(s) => s.to_string(),
                None => v.to_string(),
            })
        };
        // A rate chosen on the validation set lists every candidate's score.
        let mut rate = text(entry, "learning_rate");
        if let Some(grid) = entry.get("lr_grid").and_then(|g| g.as_array()) {
            let candidates: Vec<String> = grid
                .iter()
                .map(|c| format!("{}: {}", text(c, "learning_rate"), text(c, "valid_nats")))
                .collect();
            rate = format!(
                "{rate}, best on validation (m = {}) of {}",
                text(entry, "valid_samples"),
                candidates.join(", ")
            );
        }
        // The estimator that ran, when it is not the column's name.
        let estimator = text(entry, "estimator");
        let ran = text(entry, "estimator_name");
        let mut shown = if ran.is_empty() || ran == estimator.to_lowercase() {
            estimator
        } else {
            format!("{estimator} (`{ran}`)")
        };
        // An annealing rate other than the default.
        let anneal = text(entry, "anneal_rate");
        if !anneal.is_empty() && anneal.parse::<f64>().ok() != Some(ANNEAL_RATE) {
            shown = format!("{shown}, r = {anneal}");
        }
        let _ = writeln!(
            out,
            "| {}:{} | {} | {} | {} | {} | {} s | `{}` |",
            text(entry, "model"),
            shown,
            text(entry, "nats"),
            text(entry, "eval_samples"),
            text(entry, "epochs"),
            rate,
            text(entry, "wall_seconds"),
            text(entry, "command")
        );
    }
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("standard output", &error))
        }
        _ => Ok(()),
    }
}

fn run_cells(run: &Run) -> Result<(), Error> {
    let args = &run.args;
    args.threads.apply();
    let seed = args.seed.seed;
    let selecting = args.lr_grid.is_some();
    let out = args.out.clone().unwrap_or_else(|| {
        if args.smoke {
            std::env::temp_dir().join("gumbelgrad-table1-smoke.json")
        } else {
            PathBuf::from(DEFAULT_OUT)
        }
    });
    // A results file that cannot be written must fail now, not after the first cell.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    }
    gumbelgrad::io::atomic::check_writable(&out)?;
    ResultsFile::load(&out)?;
    let (train, valid, test, data_name) = match &args.data.binarized_mnist {
        Some(dir) => (
            load_binarized_mnist(dir, AmatSplit::Train)?,
            if selecting {
                Some(load_binarized_mnist(dir, AmatSplit::Valid)?)
            } else {
                None
            },
            load_binarized_mnist(dir, AmatSplit::Test)?,
            "statically binarised MNIST (50,000 train / 10,000 valid / 10,000 test)",
        ),
        None => {
            // 200 training digits; with a grid, 20 more held out for validation.
            let held_out = if selecting { 20 } else { 0 };
            let (train, test) = SyntheticDigits::new(seed)
                .with_sizes(200 + held_out, 20)
                .generate();
            let (train, valid) = train.split_validation(held_out, seed)?;
            let valid = selecting.then_some(valid);
            (train, valid, test, "200 synthetic digits (smoke)")
        }
    };
    let train = match args.train_images {
        Some(n) => train.take(n),
        None => train,
    };
    let test = match args.test_images {
        Some(n) => test.take(n),
        None => test,
    };
    let budget = Budget {
        epochs: args.epochs.unwrap_or(if args.smoke { 1 } else { 10 }),
        batch_size: args.batch_size.unwrap_or(if args.smoke { 20 } else { 100 }),
        learning_rate: args.lr,
        eval_samples: args
            .eval_samples
            .unwrap_or(if args.smoke { 5 } else { 1000 }),
        seed,
    };
    // With --lr-grid the rate is chosen per cell on validation, so name the candidates.
    let rate = match &args.lr_grid {
        Some(Grid(grid)) => format!(
            "from {{{}}} on validation",
            grid.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => budget.learning_rate.to_string(),
    };
    eprintln!(
        "data: {data_name}; {} epoch(s), batch {}, Adam lr {rate}, m = {}, seed {}, {} thread(s); results -> {}",
        budget.epochs,
        budget.batch_size,
        budget.eval_samples,
        budget.seed,
        args.threads.threads,
        out.display()
    );
    let checkpoints = match (&args.checkpoints, args.smoke) {
        (Some(dir), _) => Some(dir.clone()),
        (None, true) => None,
        (None, false) => Some(PathBuf::from(DEFAULT_CHECKPOINTS)),
    };
    let candidates = args.lr_grid.as_ref().map_or(1, |Grid(grid)| grid.len()) as u64;
    for (index, cell) in run.cells.iter().enumerate() {
        let label = format!("cell {}/{} {}", index + 1, run.cells.len(), cell.label());
        // Re-read before every cell: another process may have added cells meanwhile.
        if !args.force && ResultsFile::load(&out)?.get(cell).is_some() {
            eprintln!(
                "{label}: already in {}, skipped (--force reruns it)",
                out.display()
            );
            continue;
        }
        eprintln!("{label}: training with {}", cell.estimator_name());
        let command = command_for(cell, &run.recorded);
        // One bar over every epoch of the cell (of every candidate rate with a grid).
        let total = budget.epochs * candidates;
        let bar = RefCell::new(ProgressBar::new(total).unit("epochs"));
        let done = std::cell::Cell::new(0u64);
        // The test evaluation (m = 1000 on 10,000 images) takes minutes.
        let announce_test = || {
            eprintln!(
                "{label}: evaluating on {} test images, m = {}",
                test.images.rows(),
                budget.eval_samples
            )
        };
        let scored = std::cell::Cell::new(0u64);
        let mut on_epoch = |epoch: u64, cost: f64| {
            done.set(done.get() + 1);
            let candidate = (done.get() - 1) / budget.epochs.max(1);
            let rate = match &args.lr_grid {
                Some(Grid(grid)) => format!("lr {}  ", grid[candidate as usize]),
                None => String::new(),
            };
            let message = format!("{rate}epoch {epoch}/{}  loss {cost:.3}", budget.epochs);
            let mut bar = bar.borrow_mut();
            bar.set(done.get(), &message);
            if done.get() == total {
                bar.finish(&message);
            }
            if done.get() == total && !selecting {
                announce_test();
            }
        };
        let result = match (&args.lr_grid, &valid) {
            (Some(Grid(grid)), Some(valid)) => run_cell_with_selection(
                cell,
                &budget,
                grid,
                &train.images,
                &valid.images,
                args.valid_samples,
                &test.images,
                &command,
                &mut |rate, nats| {
                    bar.borrow_mut().clear();
                    eprintln!(
                        "{label}: lr {rate}: validation {nats:.3} nats (m = {})",
                        args.valid_samples
                    );
                    scored.set(scored.get() + 1);
                    if scored.get() == candidates {
                        announce_test();
                    }
                },
                &mut on_epoch,
            )?,
            _ => run_cell_resumable(
                cell,
                &budget,
                &train.images,
                &test.images,
                &command,
                checkpoints.as_deref(),
                &mut on_epoch,
            )?,
        };
        ResultsFile::merge_into(&out, result.to_json(), ROWS, COLUMNS)?;
        let paper =
            paper_value(cell.model, cell.estimator).map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{}\t{:.2} nats (paper {paper})\tm = {}\t{} epochs\t{:.0} s",
            cell.label(),
            result.nats,
            result.eval_samples,
            result.epochs,
            result.wall_seconds
        );
    }
    Ok(())
}
