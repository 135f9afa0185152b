//! The tutorial cannot go stale: every chapter of `docs/tutorial/` quotes the numbers
//! its example prints, and this reruns each example (default budget, seed 0) and checks
//! them.
//!
//! An example prints `figure NAME = VALUE` lines on stdout (three significant digits);
//! the chapter quotes each as `**VALUE**<!-- fig:NAME -->`, and the two must be equal.
//! Numbers from trained models are printed as `figure NAME = VALUE within TOLERANCE`
//! (the last bits of the matrix kernels differ between CPUs, and training amplifies
//! them); the quoted value must then be within the tolerance of the printed one.
//!
//! A chapter fails if a quoted name is not printed, if its value does not match the
//! printed one, if it quotes nothing, or if a figure it shows (`](figures/FILE.svg)`) is
//! missing from `docs/tutorial/figures/` or was not drawn by the example.
//!
//! These run the example binaries that `cargo test` builds (see `example_binary`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::example_binary::path as example;

fn tutorial_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tutorial")
}

/// A printed figure: its text, and the tolerance a quote may differ by (none: equal text).
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    value: String,
    tolerance: Option<f64>,
}

impl Printed {
    fn accepts(&self, quoted: &str) -> bool {
        match self.tolerance {
            None => quoted == self.value,
            Some(tolerance) => match (quoted.parse::<f64>(), self.value.parse::<f64>()) {
                (Ok(q), Ok(v)) => (q - v).abs() <= tolerance,
                _ => false,
            },
        }
    }
}

/// The `figure NAME = VALUE [within TOLERANCE]` lines of an example's output.
fn printed_figures(stdout: &str) -> BTreeMap<String, Printed> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("figure "))
        .filter_map(|rest| rest.split_once(" = "))
        .map(|(name, rest)| {
            let (value, tolerance) = match rest.split_once(" within ") {
                Some((value, tolerance)) => (value, tolerance.trim().parse::<f64>().ok()),
                None => (rest, None),
            };
            (
                name.trim().to_string(),
                Printed {
                    value: value.trim().to_string(),
                    tolerance,
                },
            )
        })
        .collect()
}

/// The `(NAME, VALUE)` pairs a chapter quotes as `**VALUE**<!-- fig:NAME -->`; an error
/// for a marker without a bold value right before it.
fn quoted_figures(text: &str) -> Result<Vec<(String, String)>, String> {
    const OPEN: &str = "<!-- fig:";
    let mut quotes = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(at) = rest.find(OPEN) {
        let before = &text[..consumed + at];
        let after = &rest[at + OPEN.len()..];
        let end = after
            .find("-->")
            .ok_or_else(|| format!("unclosed marker at byte {}", consumed + at))?;
        let name = after[..end].trim().to_string();
        let value = before
            .strip_suffix("**")
            .and_then(|b| b.rfind("**").map(|start| b[start + 2..].to_string()))
            .ok_or_else(|| format!("marker fig:{name} is not right after a **bold** value"))?;
        quotes.push((name, value));
        let advance = at + OPEN.len() + end + 3;
        consumed += advance;
        rest = &rest[advance..];
    }
    Ok(quotes)
}

/// Every disagreement between a chapter's quotes and an example's printed figures.
fn stale_quotes(text: &str, printed: &BTreeMap<String, Printed>) -> Vec<String> {
    let quotes = match quoted_figures(text) {
        Ok(quotes) => quotes,
        Err(message) => return vec![message],
    };
    if quotes.is_empty() {
        return vec!["the chapter quotes no figure".to_string()];
    }
    quotes
        .into_iter()
        .filter_map(|(name, value)| match printed.get(&name) {
            None => Some(format!(
                "fig:{name} is quoted but the example does not print it"
            )),
            Some(p) if !p.accepts(&value) => Some(format!(
                "fig:{name}: the text says {value}, the example prints {}{}",
                p.value,
                p.tolerance
                    .map(|t| format!(" (within {t})"))
                    .unwrap_or_default()
            )),
            Some(_) => None,
        })
        .collect()
}

/// The SVG files a chapter shows: `](figures/NAME.svg)`.
fn shown_figures(text: &str) -> Vec<String> {
    text.split("](figures/")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(name, _)| name.to_string()))
        .collect()
}

fn check_chapter(chapter: &str, name: &str) {
    let text = std::fs::read_to_string(tutorial_dir().join(chapter)).expect("chapter exists");
    let out = std::env::temp_dir().join(format!("gumbelgrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(example(name))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = printed_figures(&stdout);
    let mut problems = stale_quotes(&text, &printed);
    for figure in shown_figures(&text) {
        if !tutorial_dir().join("figures").join(&figure).exists() {
            problems.push(format!("figures/{figure} is shown but not committed"));
        }
        if !out.join(&figure).exists() {
            problems.push(format!(
                "figures/{figure} is shown but {name} did not draw it"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        problems.is_empty(),
        "docs/tutorial/{chapter} is stale against `cargo run --release --example {name}`:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_catches_a_changed_number_and_a_missing_name() {
    let printed =
        printed_figures("text\nfigure a = 0.123\nfigure b = 4.56\nfigure c = 195 within 2\n");
    let good = "x is **0.123**<!-- fig:a --> and y **4.56**<!-- fig:b -->.";
    assert!(stale_quotes(good, &printed).is_empty());
    assert!(stale_quotes("**197**<!-- fig:c -->", &printed).is_empty());
    assert_eq!(stale_quotes("**198**<!-- fig:c -->", &printed).len(), 1);
    let changed = good.replace("0.123", "0.124");
    assert_eq!(stale_quotes(&changed, &printed).len(), 1);
    let unknown = format!("{good} **1**<!-- fig:d -->");
    assert_eq!(stale_quotes(&unknown, &printed).len(), 1);
    let not_bold = "x is 0.123<!-- fig:a -->";
    assert_eq!(stale_quotes(not_bold, &printed).len(), 1);
    assert_eq!(stale_quotes("no quotes", &printed).len(), 1);
}

#[test]
fn the_index_links_every_chapter() {
    let index = std::fs::read_to_string(tutorial_dir().join("README.md")).unwrap();
    for (chapter, name) in CHAPTERS {
        assert!(index.contains(&format!("]({chapter})")), "{chapter}");
        assert!(index.contains(&format!("`{name}`")), "{name}");
    }
}

const CHAPTERS: [(&str, &str); 8] = [
    ("01-one-choice.md", "tutorial_01_one_choice"),
    ("02-score-function.md", "tutorial_02_score_function"),
    ("03-gumbel-softmax.md", "tutorial_03_gumbel_softmax"),
    ("04-straight-through.md", "tutorial_04_straight_through"),
    ("05-rebar-relax.md", "tutorial_05_rebar_relax"),
    ("06-your-estimator.md", "tutorial_06_your_estimator"),
    ("07-categorical-vae.md", "tutorial_07_categorical_vae"),
    ("08-next.md", "tutorial_08_next"),
];

macro_rules! chapter_tests {
    ($($test:ident: $index:expr,)*) => {$(
        #[test]
        fn $test() {
            let (chapter, name) = CHAPTERS[$index];
            check_chapter(chapter, name);
        }
    )*};
}

chapter_tests! {
    chapter_01_one_choice: 0,
    chapter_02_score_function: 1,
    chapter_03_gumbel_softmax: 2,
    chapter_04_straight_through: 3,
    chapter_05_rebar_relax: 4,
    chapter_06_your_estimator: 5,
    chapter_07_categorical_vae: 6,
    chapter_08_next: 7,
}
