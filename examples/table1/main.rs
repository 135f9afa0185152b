//! Runs cells of the paper's Table 1 (Jang, Gu and Poole 2017, arXiv 1611.01144): one
//! command per cell, resumable, each result merged into a JSON results file
//! (`out/table1.json` unless `--out`) as soon as it exists.
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

use std::path::PathBuf;
use std::process::ExitCode;

use gumbelgrad::Error;
use gumbelgrad::data::{AmatSplit, SyntheticDigits, load_binarized_mnist};
mod cells;

use cells::{
    ANNEAL_RATE, Budget, COLUMNS, Cell, ROWS, ResultsFile, paper_value, run_cell,
    run_cell_with_selection,
};

/// Where results go without `--out`: never into docs/.
const DEFAULT_OUT: &str = "out/table1.json";

const HELP: &str = "\
Run cells of the paper's Table 1: train one model with one estimator, evaluate it with m samples,
and merge the result into a JSON table (atomically, as each cell finishes).

USAGE: cargo run --release --example table1 -- (--cell \"ROW:COLUMN\")... | --all  [OPTIONS]

  --cell \"ROW:COLUMN\"     a cell, e.g. \"VAE Cat.:GS\" (repeatable)
                          ROW one of {rows}
                          COLUMN one of {columns}
  --all                   every cell, row by row (cells already in the results file are skipped)
  --binarized-mnist DIR   statically binarised MNIST (binarized_mnist_{train,valid,test}.amat[.gz]);
                          trains on the 50,000 training images, reports on the 10,000 test images
  --smoke                 a tiny run on 200 synthetic digits the crate draws (no data folder):
                          1 epoch of batch 20, m = 5; writes to a temporary file unless --out
  --epochs N              passes over the training set (default 10; smoke 1)
  --eval-samples M        m of the evaluation (default 1000, the paper's; smoke 5)
  --lr RATE               Adam learning rate (default 1e-3)
  --lr-grid R1,R2,...     choose the learning rate on the validation set, as the paper did: train
                          once per rate, keep the one with the best validation score (binarised
                          MNIST's 10,000 validation images; smoke: 20 held-out synthetic digits),
                          report its test score; the JSON records every candidate
  --valid-samples M       m of the validation scores (default 100)
  --batch-size N          examples per step (default 100; smoke 20)
  --seed S                seed of every random number (default 0)
  --threads N             threads for the matrix products (default 1)
  --estimator NAME        run the cells with this estimator instead of the column's own (an
                          ablation, e.g. muprop-normalised; filed under the same cell, with the
                          estimator in \"estimator_name\"; use --out to keep the table apart)
  --anneal-rate R         r of the annealed temperature max(0.5, exp(-r t)) of the named cells that
                          anneal (Annealed ST; the VAE's GS and ST-GS), default 1e-4; the paper
                          chose r from {1e-5, 1e-4} on validation; recorded as \"anneal_rate\"
  --out FILE              results file (default out/table1.json; the published table is
                          docs/results/table1.json)
  --force                 rerun cells that are already in the results file
  --markdown              print the paper's table beside the results file's (ours / paper) as
                          Markdown, then each of our cells with its command; runs nothing
  --help                  this text
";

#[derive(Debug)]
struct Args {
    cells: Vec<Cell>,
    all: bool,
    binarized_mnist: Option<PathBuf>,
    smoke: bool,
    epochs: Option<u64>,
    eval_samples: Option<usize>,
    learning_rate: f64,
    lr_grid: Option<Vec<f64>>,
    valid_samples: usize,
    batch_size: Option<usize>,
    seed: u64,
    threads: usize,
    out: Option<PathBuf>,
    estimator: Option<String>,
    anneal_rate: Option<f64>,
    force: bool,
    markdown: bool,
    /// The options that shape a cell's result, as typed, for the recorded command.
    recorded: Vec<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        cells: Vec::new(),
        all: false,
        binarized_mnist: None,
        smoke: false,
        epochs: None,
        eval_samples: None,
        learning_rate: 1e-3,
        lr_grid: None,
        valid_samples: 100,
        batch_size: None,
        seed: 0,
        threads: 1,
        out: None,
        estimator: None,
        anneal_rate: None,
        force: false,
        markdown: false,
        recorded: Vec::new(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = |flag: &str| words.next().ok_or_else(|| format!("{flag} needs a value"));
        fn number<N: std::str::FromStr>(flag: &str, text: &str) -> Result<N, String> {
            text.parse()
                .map_err(|_| format!("{flag} wants a number, got '{text}'"))
        }
        let mut record = |flag: &str, v: &str| {
            args.recorded.push(flag.to_string());
            args.recorded.push(v.to_string());
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--all" => args.all = true,
            "--smoke" => {
                args.smoke = true;
                args.recorded.push(flag);
            }
            "--force" => args.force = true,
            "--markdown" => args.markdown = true,
            "--cell" => {
                let v = value(&flag)?;
                args.cells.push(Cell::parse(&v).map_err(|e| e.to_string())?);
            }
            "--binarized-mnist" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.binarized_mnist = Some(v.into());
            }
            "--epochs" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.epochs = Some(number(&flag, &v)?);
            }
            "--eval-samples" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.eval_samples = Some(number(&flag, &v)?);
            }
            "--lr" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.learning_rate = number(&flag, &v)?;
            }
            "--lr-grid" => {
                let v = value(&flag)?;
                record(&flag, &v);
                let rates = v
                    .split(',')
                    .map(|rate| number::<f64>(&flag, rate.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                if rates.is_empty() || rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
                    return Err(format!("--lr-grid wants positive rates, got '{v}'"));
                }
                args.lr_grid = Some(rates);
            }
            "--valid-samples" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.valid_samples = number(&flag, &v)?;
            }
            "--batch-size" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.batch_size = Some(number(&flag, &v)?);
            }
            "--seed" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.seed = number(&flag, &v)?;
            }
            "--threads" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.threads = number(&flag, &v)?;
            }
            "--out" => args.out = Some(value(&flag)?.into()),
            "--estimator" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.estimator = Some(v);
            }
            "--anneal-rate" => {
                let v = value(&flag)?;
                record(&flag, &v);
                args.anneal_rate = Some(number(&flag, &v)?);
            }
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if args.markdown {
        return Ok(Some(args));
    }
    if (args.estimator.is_some() || args.anneal_rate.is_some()) && args.all {
        return Err(
            "--estimator and --anneal-rate apply to named cells; give --cell \"ROW:COLUMN\", not --all"
                .into(),
        );
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
    args.cells = std::mem::take(&mut args.cells)
        .into_iter()
        .map(with_overrides)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if args.all != args.cells.is_empty() {
        return Err("give --all or one or more --cell \"ROW:COLUMN\" (see --help)".into());
    }
    if args.smoke == args.binarized_mnist.is_some() {
        return Err("give --binarized-mnist DIR for a real run, or --smoke".into());
    }
    if args.threads == 0
        || args.batch_size == Some(0)
        || args.eval_samples == Some(0)
        || args.valid_samples == 0
    {
        return Err(
            "--threads, --batch-size, --eval-samples and --valid-samples must be at least 1".into(),
        );
    }
    if !(args.learning_rate.is_finite() && args.learning_rate > 0.0) {
        return Err(format!(
            "--lr must be a positive number, got {}",
            args.learning_rate
        ));
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!(
                "{}",
                HELP.replace("{rows}", &format!("{ROWS:?}"))
                    .replace("{columns}", &format!("{COLUMNS:?}"))
            );
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The command that reruns one cell with the same options.
fn command_for(cell: &Cell, args: &Args) -> String {
    let mut words = vec![
        "cargo run --release --example table1 --".to_string(),
        "--cell".to_string(),
        format!("\"{}\"", cell.label()),
    ];
    words.extend(args.recorded.iter().map(|w| {
        let w = &portable_path(w);
        if w.contains(' ') || w.starts_with('$') {
            format!("\"{w}\"")
        } else {
            w.clone()
        }
    }));
    words.join(" ")
}

/// A data folder under `$GUMBELGRAD_DATA` written relative to it, so that a recorded
/// command names no folder of the machine it ran on.
fn portable_path(word: &str) -> String {
    if let Some(root) = std::env::var_os("GUMBELGRAD_DATA") {
        let root = std::path::Path::new(&root);
        if let Ok(rest) = std::path::Path::new(word).strip_prefix(root)
            && !root.as_os_str().is_empty()
        {
            return format!("$GUMBELGRAD_DATA/{}", rest.display());
        }
    }
    word.to_string()
}

/// The paper's Table 1 beside ours, then our cells' commands, as Markdown. Written in
/// one piece, and a closed pipe (`| head`) ends it quietly.
fn print_markdown(path: &std::path::Path) -> Result<(), Error> {
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
        let text = |entry: &gumbelgrad::io::json::Json, key: &str| {
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

fn run(args: &Args) -> Result<(), Error> {
    if args.markdown {
        let path = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT));
        return print_markdown(&path);
    }
    gumbelgrad::kernels::set_num_threads(args.threads);
    let selecting = args.lr_grid.is_some();
    let (train, valid, test, data_name) = match &args.binarized_mnist {
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
            let (train, test) = SyntheticDigits::new(args.seed)
                .with_sizes(200 + held_out, 20)
                .generate();
            let (train, valid) = train.split_validation(held_out, args.seed)?;
            let valid = selecting.then_some(valid);
            (train, valid, test, "200 synthetic digits (smoke)")
        }
    };
    let budget = Budget {
        epochs: args.epochs.unwrap_or(if args.smoke { 1 } else { 10 }),
        batch_size: args.batch_size.unwrap_or(if args.smoke { 20 } else { 100 }),
        learning_rate: args.learning_rate,
        eval_samples: args
            .eval_samples
            .unwrap_or(if args.smoke { 5 } else { 1000 }),
        seed: args.seed,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        if args.smoke {
            std::env::temp_dir().join("gumbelgrad-table1-smoke.json")
        } else {
            PathBuf::from(DEFAULT_OUT)
        }
    });
    let cells = if args.all {
        Cell::all()
    } else {
        args.cells.clone()
    };
    // With --lr-grid the rate is chosen per cell on validation, so name the candidates.
    let rate = match &args.lr_grid {
        Some(grid) => format!(
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
        args.threads,
        out.display()
    );
    for cell in &cells {
        // Re-read before every cell: another process may have added cells meanwhile.
        if !args.force && ResultsFile::load(&out)?.get(cell).is_some() {
            eprintln!(
                "{}: already in {}, skipped (--force reruns it)",
                cell.label(),
                out.display()
            );
            continue;
        }
        eprintln!("{}: training with {}", cell.label(), cell.estimator_name());
        let command = command_for(cell, args);
        let mut on_epoch =
            |epoch: u64, cost: f64| eprintln!("  epoch {epoch}: mean training cost {cost:.3}");
        let result = match (&args.lr_grid, &valid) {
            (Some(grid), Some(valid)) => run_cell_with_selection(
                cell,
                &budget,
                grid,
                &train.images,
                &valid.images,
                args.valid_samples,
                &test.images,
                &command,
                &mut |rate, nats| {
                    eprintln!(
                        "  lr {rate}: validation {nats:.3} nats (m = {})",
                        args.valid_samples
                    )
                },
                &mut on_epoch,
            )?,
            _ => run_cell(
                cell,
                &budget,
                &train.images,
                &test.images,
                &command,
                &mut on_epoch,
            )?,
        };
        let mut table = ResultsFile::load(&out)?;
        table.insert(&result);
        table.save(&out)?;
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
