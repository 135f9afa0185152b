//! Random values for categorical_vae's numeric flags, extreme and non-finite ones
//! included (`nan`, `inf`, `-1`, `0`, `1e-45`, `1e300`, integers past `u64::MAX`),
//! through the example binary with a tiny budget: the run either succeeds with one
//! line of valid JSON and no non-finite number (`null`) in it, or exits with status 1
//! or 2 and an error message. Never a panic (status 101), never a NaN printed.
//!
//! Like `examples_cli`, this runs the binary that `cargo test` builds (see
//! `example_binary`).

use std::path::PathBuf;
use std::process::Command;

use gumbelgrad::io::json::Json;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn categorical_vae() -> PathBuf {
    crate::example_binary::path("categorical_vae")
}

/// Values any numeric flag may get: invalid, extreme, or ordinary.
const ANY: [&str; 14] = [
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1e-45",
    "1e300",
    "18446744073709551616",
    "-0",
    "abc",
    "",
    "1",
    "0.5",
    "2",
];

/// Values for flags whose valid values set the amount of work (epochs, images,
/// samples): every invalid one, but only small valid ones, so that a run stays short.
const WORK: [&str; 11] = [
    "nan",
    "inf",
    "-1",
    "0",
    "1e-45",
    "1e300",
    "18446744073709551616",
    "-0",
    "abc",
    "1",
    "2",
];

fn flag(
    name: &'static str,
    values: &'static [&'static str],
) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.25,
        prop::sample::select(values).prop_map(move |v| format!("--{name}={v}")),
    )
}

#[test]
fn numeric_flags_give_an_error_or_finite_json_never_a_panic() {
    let binary = categorical_vae();
    let out = std::env::temp_dir().join(format!("gumbelgrad-cli-arguments-{}", std::process::id()));
    let strategy = (
        flag("tau0", &ANY),
        flag("tau-min", &ANY),
        flag("lr", &ANY),
        flag("anneal-rate", &ANY),
        flag("anneal-every", &ANY),
        flag("batch-size", &ANY),
        flag("epochs", &WORK),
        flag("eval-samples", &WORK),
        flag("eval-images", &WORK),
        flag("train-images", &WORK),
    );
    let successes = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(gumbelgrad::testing::config(24));
    runner
        .run(&strategy, |(a, b, c, d, e, f, g, h, i, j)| {
            let _ = std::fs::remove_dir_all(&out);
            // Defaults that keep the run tiny; a flag given twice is an error, so the
            // random ones replace them.
            let mut args: Vec<String> = Vec::new();
            let random: Vec<String> = [a, b, c, d, e, f, g, h, i, j]
                .into_iter()
                .flatten()
                .collect();
            for (name, default) in [
                ("--epochs", "--epochs=1"),
                ("--train-images", "--train-images=200"),
                ("--batch-size", "--batch-size=50"),
                ("--eval-images", "--eval-images=20"),
                ("--eval-samples", "--eval-samples=2"),
            ] {
                if !random.iter().any(|r| r.starts_with(&format!("{name}="))) {
                    args.push(default.to_string());
                }
            }
            args.extend(random);
            args.extend([
                "--threads=1".to_string(),
                "--json".to_string(),
                format!("--out={}", out.display()),
            ]);
            let output = Command::new(&binary)
                .args(&args)
                .output()
                .expect("example runs");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            let code = output.status.code();
            prop_assert!(
                !stderr.contains("panicked"),
                "{:?}: panic\n{}",
                args,
                stderr
            );
            match code {
                Some(0) => {
                    successes.set(successes.get() + 1);
                    prop_assert_eq!(stdout.lines().count(), 1, "{:?}: {}", args, stdout);
                    let json = Json::parse(stdout.trim());
                    prop_assert!(json.is_ok(), "{:?}: invalid JSON {}", args, stdout);
                    prop_assert!(
                        !stdout.contains("null") && !stdout.to_lowercase().contains("nan"),
                        "{:?}: non-finite value in {}",
                        args,
                        stdout
                    );
                }
                Some(1) | Some(2) => {
                    prop_assert!(
                        !stderr.trim().is_empty(),
                        "{:?}: exit {:?} without a message",
                        args,
                        code
                    );
                    prop_assert!(
                        !stderr.to_lowercase().contains("loss nan"),
                        "{:?}: {}",
                        args,
                        stderr
                    );
                }
                other => prop_assert!(false, "{:?}: exit {:?}\n{}", args, other, stderr),
            }
            Ok(())
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    // The strategy reaches both outcomes: some runs train and report.
    assert!(successes.get() > 0, "no case ran to the end");
}
