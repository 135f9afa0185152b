//! The examples as command-line tools: one argument parser with one error style,
//! arguments checked before any work, truthful output, valid JSON, and metrics that
//! agree with the checkpoint after a crash.
//!
//! These run the example binaries that `cargo test` builds (see `example_binary`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gumbelgrad::io::json::Json;

const EXAMPLES: [&str; 18] = [
    "bench_step",
    "categorical_vae",
    "custom_estimator",
    "custom_op",
    "estimator_lab",
    "gumbel_samples",
    "leaderboard",
    "semi_supervised",
    "show_data",
    "table1",
    "tutorial_01_one_choice",
    "tutorial_02_score_function",
    "tutorial_03_gumbel_softmax",
    "tutorial_04_straight_through",
    "tutorial_05_rebar_relax",
    "tutorial_06_your_estimator",
    "tutorial_07_categorical_vae",
    "tutorial_08_next",
];

use crate::example_binary::path as example;

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name))
        .args(args)
        .output()
        .expect("example runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temporary_folder(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gumbelgrad-examples-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_version_and_unknown_flags_behave_alike_in_every_example() {
    for name in EXAMPLES {
        let help = run(name, &["--help"]);
        assert_eq!(help.status.code(), Some(0), "{name} --help");
        let help_text = text(&help.stdout);
        assert!(
            help_text.contains("--version"),
            "{name} --help:\n{help_text}"
        );
        let short = run(name, &["-h"]);
        assert_eq!(short.status.code(), Some(0), "{name} -h");

        let version = run(name, &["--version"]);
        assert_eq!(version.status.code(), Some(0), "{name} --version");
        assert_eq!(
            text(&version.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );

        let unknown = run(name, &["--no-such-flag"]);
        assert_eq!(unknown.status.code(), Some(2), "{name} --no-such-flag");
        let message = text(&unknown.stderr);
        assert!(
            message.starts_with("error: unexpected argument '--no-such-flag' found")
                && message.contains("For more information, try '--help'."),
            "{name}: {message}"
        );
        assert!(
            unknown.stdout.is_empty(),
            "{name} printed to stdout on error"
        );
    }
}

#[test]
fn help_shows_every_default() {
    let help = text(&run("categorical_vae", &["--help"]).stdout);
    for option in [
        "--batch-size",
        "--lr",
        "--tau0",
        "--tau-min",
        "--anneal-rate",
        "--anneal-every",
        "--seed",
        "--threads",
        "--out",
        "--eval-samples",
    ] {
        let section = help
            .split(&format!("\n      {option} <"))
            .nth(1)
            .expect(option);
        let until_next = section.split("\n      --").next().unwrap();
        assert!(
            until_next.contains("[default: "),
            "{option} shows no default:\n{until_next}"
        );
    }
}

#[test]
fn table1_help_shows_every_default() {
    let help = text(&run("table1", &["--help"]).stdout);
    for option in [
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
        "--out",
    ] {
        let section = help
            .split(&format!("\n      {option} <"))
            .nth(1)
            .expect(option);
        let until_next = section.split("\n      --").next().unwrap();
        assert!(
            until_next.contains("[default: "),
            "{option} shows no default:\n{until_next}"
        );
    }
    for listed in ["VAE Cat.", "Annealed ST", "muprop-normalised"] {
        assert!(help.contains(listed), "--help lacks {listed}");
    }
}

#[test]
fn leaderboard_help_shows_every_default_and_the_protocol() {
    let help = text(&run("leaderboard", &["--help"]).stdout);
    for option in [
        "--epochs",
        "--batch-size",
        "--lr-grid",
        "--valid-samples",
        "--eval-samples",
        "--variance-warmup",
        "--variance-samples",
        "--seed",
        "--threads",
        "--work",
        "--out",
    ] {
        let section = help
            .split(&format!("\n      {option} <"))
            .nth(1)
            .expect(option);
        let until_next = section.split("\n      --").next().unwrap();
        assert!(
            until_next.contains("[default: "),
            "{option} shows no default:\n{until_next}"
        );
    }
    for listed in [
        "VAE Cat.: gumbel-softmax",
        "VAE Bern.: relaxed-bernoulli",
        "rebar and relax, which start at 1",
        "max(0.5, exp(-1e-4 t))",
        "W = 100",
        "S = 100",
        "m = 1000",
    ] {
        assert!(help.contains(listed), "--help lacks {listed}:\n{help}");
    }
}

/// `--list` prints one command per cell, each naming the data by `$GUMBELGRAD_DATA`,
/// and every listed command is accepted by the runner's parser.
#[test]
fn leaderboard_lists_one_portable_command_per_cell() {
    let output = run("leaderboard", &["--list", "--epochs", "2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed = text(&output.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines.len() > 40, "{listed}");
    for line in &lines {
        assert!(
            line.starts_with("cargo run --release --example leaderboard -- --cell \"VAE ")
                && line.contains(" --binarized-mnist \"$GUMBELGRAD_DATA/binarized_mnist\"")
                && line.ends_with(" --epochs 2"),
            "{line}"
        );
    }
    assert!(lines.contains(
        &"cargo run --release --example leaderboard -- --cell \"VAE Cat.:gumbel-softmax\" \
          --binarized-mnist \"$GUMBELGRAD_DATA/binarized_mnist\" --epochs 2"
    ));
    // Parsed, not run: an --out that cannot be written fails after parsing (exit 1).
    let dir = temporary_folder("leaderboard-list");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    for line in lines.iter().step_by(7) {
        let (_, options) = line
            .split_once("--example leaderboard -- --cell \"")
            .unwrap();
        let (cell, _) = options.split_once('"').unwrap();
        let output = run(
            "leaderboard",
            &[
                "--cell",
                cell,
                "--binarized-mnist",
                "/no/such/data",
                "--out",
                blocker.join("x.json").to_str().unwrap(),
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "{line}: {}",
            text(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A smoke cell end to end: valid JSON with the leaderboard's keys, a rerun skips it,
/// and --markdown prints its row.
#[test]
fn leaderboard_smoke_cell_writes_its_entry_and_its_table() {
    let dir = temporary_folder("leaderboard-smoke");
    let out = dir.join("results").join("leaderboard.json");
    let work = dir.join("work");
    let args = [
        "--smoke",
        "--cell=VAE Bern.:disarm",
        "--eval-samples",
        "2",
        "--lr-grid=1e-3",
        "--threads=1",
        "--out",
        out.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ];
    let output = run("leaderboard", &args);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("VAE Bern.:disarm\t") && stdout.lines().count() == 1,
        "{stdout}"
    );
    let table = Json::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let entries = table.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    for key in ["nats", "train_seconds", "grad_variance", "learning_rate"] {
        assert!(
            entry
                .get(key)
                .and_then(Json::as_f64)
                .is_some_and(f64::is_finite),
            "{key}: {entry}"
        );
    }
    assert_eq!(entry.get("eval_samples").and_then(Json::as_u64), Some(2));
    assert_eq!(
        entry.get("command").and_then(Json::as_str),
        Some(
            "cargo run --release --example leaderboard -- --cell \"VAE Bern.:disarm\" --smoke \
             --eval-samples 2 --lr-grid 1e-3 --threads 1"
        )
    );
    assert!(
        work.join("vae-bern-disarm")
            .join("lr-0.001")
            .join("checkpoint.safetensors")
            .is_file()
    );
    // a rerun skips the finished cell
    let again = run("leaderboard", &args);
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("already in"),
        "{}",
        text(&again.stderr)
    );
    assert!(again.stdout.is_empty());
    let markdown = run("leaderboard", &["--markdown", out.to_str().unwrap()]);
    assert!(markdown.status.success(), "{}", text(&markdown.stderr));
    let page = text(&markdown.stdout);
    assert!(page.contains("| `disarm` | not run yet | | | "), "{page}");
    assert!(
        page.contains("| `relaxed-bernoulli` | - | - | - | not run yet"),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_values_are_usage_errors_before_any_work() {
    let cases: [(&str, &[&str], &str); 24] = [
        (
            "categorical_vae",
            &["--epochs", "--out", "x"],
            "a value is required for '--epochs",
        ),
        (
            "categorical_vae",
            &["--epochs", "1", "--epochs", "2"],
            "cannot be used multiple times",
        ),
        (
            "categorical_vae",
            &["--json", "--json"],
            "cannot be used multiple times",
        ),
        (
            "categorical_vae",
            &["--tau0", "1", "--tau-min", "2"],
            "greater than --tau0",
        ),
        ("categorical_vae", &["--lr", "0"], "greater than 0"),
        ("categorical_vae", &["--lr=nan"], "greater than 0"),
        ("semi_supervised", &["--lr", "0"], "greater than 0"),
        (
            "estimator_lab",
            &["--calls", "1", "--batch", "1"],
            "at least 2",
        ),
        ("gumbel_samples", &["--samples=0"], "at least 1"),
        ("table1", &["--smoke"], "give --all or one or more --cell"),
        (
            "table1",
            &["--all"],
            "--binarized-mnist DIR for a real run, or --smoke",
        ),
        (
            "table1",
            &["--smoke", "--cell", "VAE Cat.:Nope"],
            "is not ROW:COLUMN",
        ),
        (
            "table1",
            &["--smoke", "--all", "--epochs", "1", "--epochs=2"],
            "cannot be used multiple times",
        ),
        (
            "table1",
            &["--smoke", "--all", "--lr-grid", "1e-3", "--lr-grid", "3e-3"],
            "cannot be used multiple times",
        ),
        (
            "table1",
            &["--smoke", "--all", "--lr-grid=1e-3,0"],
            "greater than 0",
        ),
        (
            "table1",
            &["--smoke", "--all", "--threads", "0"],
            "at least 1",
        ),
        (
            "table1",
            &["--smoke", "--all", "--estimator", "gumbel-softmax"],
            "apply to named cells",
        ),
        (
            "table1",
            &["--smoke", "--cell", "VAE Cat.:GS", "--estimator", "nope"],
            "unknown estimator `nope`",
        ),
        ("leaderboard", &["--smoke"], "give one of --list"),
        ("leaderboard", &["--list", "--all"], "give one of --list"),
        (
            "leaderboard",
            &["--smoke", "--cell", "VAE Bern.:gumbel-softmax"],
            "does not fit",
        ),
        (
            "leaderboard",
            &["--smoke", "--cell", "VAE Cat.:nope"],
            "unknown estimator `nope`",
        ),
        (
            "leaderboard",
            &["--smoke", "--all", "--variance-samples", "1"],
            "at least 2",
        ),
        (
            "leaderboard",
            &["--smoke", "--all", "--lr-grid=1e-3,0"],
            "greater than 0",
        ),
    ];
    for (name, args, expected) in cases {
        let output = run(name, args);
        let message = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name} {args:?}: {message}");
        assert!(
            message.starts_with("error: ") && message.contains(expected),
            "{name} {args:?}: {message}"
        );
    }
}

/// A small categorical_vae run: `--flag=value` forms, the JSON line, the metrics and
/// the labelled loss plot.
fn small_run(out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let out_arg = format!("--out={}", out.display());
    let mut args = vec![
        epochs,
        "--train-images=400",
        "--batch-size=100",
        "--eval-images=50",
        "--eval-samples=3",
        "--threads=1",
        "--json",
        out_arg.as_str(),
    ];
    args.extend_from_slice(extra);
    run("categorical_vae", &args)
}

fn metrics_epochs(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let row = Json::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            row.get("epoch").and_then(Json::as_u64).unwrap()
        })
        .collect()
}

#[test]
fn categorical_vae_writes_valid_json_and_a_labelled_plot() {
    let out = temporary_folder("json");
    let output = small_run(&out, "--epochs=2", &[]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = text(&output.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout holds only the JSON line: {stdout}"
    );
    let line = Json::parse(stdout.trim()).unwrap();
    for key in [
        "test_neg_elbo",
        "test_neg_elbo_relaxed",
        "test_iw_bound",
        "final_temperature",
        "train_seconds",
        "eval_seconds",
    ] {
        let value = line.get(key).and_then(Json::as_f64);
        assert!(value.is_some_and(f64::is_finite), "{key} in {stdout}");
    }
    assert_eq!(line.get("epochs").and_then(Json::as_u64), Some(2));
    assert_eq!(line.get("test_images").and_then(Json::as_u64), Some(50));
    // The text output prints the same figures (rounded).
    let hard = line.get("test_neg_elbo").and_then(Json::as_f64).unwrap();
    assert!(stderr.contains(&format!("{hard:.3} nats")), "{stderr}");

    assert_eq!(metrics_epochs(&out), [1, 2]);
    let svg = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    for label in [
        ">Training and test loss</text>",
        ">training step (one minibatch each)</text>",
        ">negative ELBO (nats per image)</text>",
        ">train -ELBO (relaxed samples, mean of 20 steps)</text>",
        ">test -ELBO (hard samples, after each epoch)</text>",
    ] {
        assert!(svg.contains(label), "loss.svg lacks {label}");
    }
    for figure in ["reconstructions.svg", "latent_classes.svg", "samples.svg"] {
        let svg = std::fs::read_to_string(out.join(figure)).unwrap();
        assert!(
            svg.contains("font-weight=\"bold\"") && svg.contains("data:image/png;base64,"),
            "{figure}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_resumed_run_cuts_metrics_back_to_the_checkpoint_and_removes_stale_temporaries() {
    let out = temporary_folder("resume");
    let output = small_run(&out, "--epochs=1", &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // What a kill between the metrics and the checkpoint leaves: a metrics row one
    // epoch ahead of the checkpoint, and a half-written temporary of a dead process.
    let metrics = out.join("metrics.jsonl");
    let mut rows = std::fs::read_to_string(&metrics).unwrap();
    rows.push_str("{\"epoch\":2,\"steps\":8,\"train_loss\":1.0,\"test_neg_elbo\":-1.0}\n");
    std::fs::write(&metrics, rows).unwrap();
    let stale = out.join(format!(".checkpoint.safetensors.tmp.{}.0", u32::MAX - 1));
    std::fs::write(&stale, b"half a checkpoint").unwrap();

    let checkpoint = out.join("checkpoint.safetensors");
    let output = small_run(
        &out,
        "--epochs=2",
        &["--resume", checkpoint.to_str().unwrap()],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("dropped 1 row(s) past the checkpoint's epoch 1"),
        "{stderr}"
    );
    assert!(
        !stale.exists(),
        "the dead run's temporary file is still there"
    );
    assert_eq!(metrics_epochs(&out), [1, 2]);
    let text_rows = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        !text_rows.contains("-1.0"),
        "the row of the dead run survived: {text_rows}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn categorical_vae_fails_before_training_when_the_checkpoint_cannot_be_written() {
    let out = temporary_folder("unwritable");
    std::fs::create_dir_all(out.join("checkpoint.safetensors")).unwrap();
    let output = small_run(&out, "--epochs=1", &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("checkpoint.safetensors") && stderr.contains("is a folder"),
        "{stderr}"
    );
    assert!(
        !out.join("metrics.jsonl").exists(),
        "it trained before failing"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn zero_epochs_claims_only_files_it_wrote() {
    let out = temporary_folder("zero");
    let output = small_run(&out, "--epochs=0", &[]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let wrote = stderr
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .expect("a 'wrote' line");
    let names = wrote.split(" in ").next().unwrap();
    for name in names.split(", ") {
        assert!(
            out.join(name).is_file(),
            "claims {name}, which does not exist"
        );
    }
    assert!(!out.join("metrics.jsonl").exists() && !out.join("checkpoint.safetensors").exists());
    assert!(!names.contains("metrics.jsonl") && !names.contains("checkpoint"));
    let _ = std::fs::remove_dir_all(&out);
}

/// The Table 1 runner's arguments from a command quoted in the docs: the words after
/// `--`, with `"..."` grouping and `$GUMBELGRAD_DATA` standing for `data`.
fn table1_words(command: &str, data: &str) -> Vec<String> {
    let (_, options) = command.split_once("--example table1 --").unwrap();
    let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
    for c in options.replace("$GUMBELGRAD_DATA", data).chars() {
        match c {
            '"' => (quoted, started) = (!quoted, true),
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            _ => (word.push(c), started = true).1,
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Every `cargo run --release --example table1 -- ...` command in the README and docs/
/// is accepted by the runner's parser. Nothing trains: each command gets an `--out`
/// that cannot be written, which fails (exit 1) after parsing and before any work; a
/// `--markdown` command (which only reads) runs as quoted.
#[test]
fn every_table1_command_in_the_docs_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = temporary_folder("table1-docs");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let unwritable = blocker.join("table1.json");
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut checked = 0;
    for page in pages {
        let content = std::fs::read_to_string(&page).unwrap();
        for line in content.lines() {
            for (at, _) in line.match_indices("cargo run --release --example table1 --") {
                let command = line[at..].split('`').next().unwrap();
                let command = command.split("  #").next().unwrap().trim();
                if command.ends_with("...") {
                    continue; // a placeholder, not a command
                }
                let mut args = table1_words(command, "/no/such/data");
                let markdown = args.iter().any(|w| w == "--markdown");
                if !markdown {
                    args.push(format!("--out={}", unwritable.display()));
                }
                let output = Command::new(example("table1"))
                    .args(&args)
                    .current_dir(root)
                    .output()
                    .unwrap();
                let stderr = text(&output.stderr);
                let expected = if markdown { 0 } else { 1 };
                assert_eq!(
                    output.status.code(),
                    Some(expected),
                    "{}: {command}\n{stderr}",
                    page.display()
                );
                if !markdown {
                    assert!(stderr.contains("a-file"), "{command}: {stderr}");
                }
                checked += 1;
            }
        }
    }
    // results.md quotes one command per published cell, and a few more.
    assert!(checked > 36, "only {checked} commands found");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A smoke cell end to end: the results file is valid JSON written through the one JSON
/// writer, and the recorded command has every result-shaping option as `--flag value`.
#[test]
fn table1_smoke_cell_writes_valid_json_and_its_command() {
    let dir = temporary_folder("table1-smoke");
    let out = dir.join("results").join("table1.json");
    let output = run(
        "table1",
        &[
            "--smoke",
            "--cell=VAE Cat.:GS",
            "--epochs=1",
            "--eval-samples",
            "2",
            "--threads=1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("VAE Cat.:GS\t") && stdout.lines().count() == 1,
        "stdout holds one result line: {stdout}"
    );
    assert!(stderr.contains("epoch 1/1"), "no progress: {stderr}");
    let table = Json::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let entries = table.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert!(
        entry
            .get("nats")
            .and_then(Json::as_f64)
            .is_some_and(f64::is_finite)
    );
    assert_eq!(entry.get("eval_samples").and_then(Json::as_u64), Some(2));
    assert_eq!(
        entry.get("command").and_then(Json::as_str),
        Some(
            "cargo run --release --example table1 -- --cell \"VAE Cat.:GS\" --smoke \
             --epochs 1 --eval-samples 2 --threads 1"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_step_alternates_thread_counts_in_one_run() {
    let output = run(
        "bench_step",
        &[
            "--threads",
            "1",
            "--alternate-threads",
            "2",
            "--steps",
            "8",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 thread(s)") && stdout.contains("2 thread(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("medians of 4 and 4 steps"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("ms_per_step: ")
    );
    // Too few steps for two blocks: a usage error before any work.
    let output = run("bench_step", &["--alternate-threads", "2", "--steps", "7"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("at least 8 timed steps"));
}
