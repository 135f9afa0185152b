//! Redraws Figure 1 of Jang, Gu and Poole (2017): a categorical distribution, the
//! expectation of Gumbel-Softmax samples, and single samples, at tau = 0.1, 0.5, 1, 10.
//!
//! ```text
//! cargo run --release --example gumbel_samples -- [--out DIR] [--seed N] [--samples M]
//! ```
//!
//! Writes `DIR/figure1.svg` (default `out/gumbel_samples/`) and `DIR/values.csv`, both
//! atomically, and prints the same numbers. Columns of the picture: the categorical
//! distribution itself, then one column per temperature. Top row: the expectation
//! `E[y]` over `M` samples (Monte Carlo). Bottom row: one sample `y` (the first column
//! shows a one-hot categorical sample drawn by Gumbel-max with the same noise).
//! As in the paper, low temperatures give near one-hot samples whose expectation is
//! the categorical distribution, and high temperatures give near-uniform samples.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::estimators::{gumbel_softmax, noise};
use gumbelgrad::io::svg::escape;
use gumbelgrad::io::write_atomic;
use gumbelgrad::{Error, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

const TEMPERATURES: [f64; 4] = [0.1, 0.5, 1.0, 10.0];
/// The categorical distribution drawn (any probabilities work).
const PROBABILITIES: [f64; 5] = [0.05, 0.35, 0.15, 0.40, 0.05];
const COLOURS: [[u8; 3]; 5] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
];

/// Redraw Figure 1 of Jang, Gu & Poole (2017): a categorical distribution, the
/// expectation of Gumbel-Softmax samples and single samples at tau = 0.1, 0.5, 1, 10.
#[derive(Debug, Parser)]
#[command(name = "gumbel_samples", version)]
struct Options {
    /// Folder for figure1.svg and values.csv
    #[arg(long, value_name = "DIR", default_value = "out/gumbel_samples")]
    out: PathBuf,
    #[command(flatten)]
    seed: cli::Seed,
    /// Samples averaged for each expectation
    #[arg(long, value_name = "M", default_value_t = 20_000, value_parser = cli::at_least_one)]
    samples: usize,
}

/// The numbers behind the figure: for each column, the expectation and one sample.
struct Column {
    label: String,
    expectation: Vec<f64>,
    sample: Vec<f64>,
}

fn compute(options: &Options) -> Result<Vec<Column>, Error> {
    let k = PROBABILITIES.len();
    let logits = Tensor::from_vec(1, k, PROBABILITIES.map(f64::ln).to_vec())?;
    let mut rng = StdRng::seed_from_u64(options.seed.seed);
    let m = options.samples;
    // One noise tensor for everything: the same Gumbel draws at every temperature, so
    // the columns differ only by tau (as in the paper's figure).
    let g = noise::gumbel::<f64, _>(m, k, &mut rng);
    let first_noise = Tensor::from_slice(1, k, g.row(0))?;
    let categorical = noise::gumbel_max(&logits, &first_noise, k)?;
    let mut columns = vec![Column {
        label: "categorical".into(),
        expectation: PROBABILITIES.to_vec(),
        sample: noise::one_hot::<f64>(1, &categorical, k)?.into_vec(),
    }];
    for tau in TEMPERATURES {
        let tape = Tape::new();
        // [m, k] logits: the [1, k] row repeated, then the relaxed samples
        let x = tape.constant(&logits) + tape.constant(&Tensor::zeros(m, k));
        let y = gumbel_softmax(x, tape.constant(&g), tau, k).value()?;
        let mut expectation = vec![0.0; k];
        for row in 0..m {
            for (e, &v) in expectation.iter_mut().zip(y.row(row)) {
                *e += v / m as f64;
            }
        }
        columns.push(Column {
            label: format!("{tau}"),
            expectation,
            sample: y.row(0).to_vec(),
        });
    }
    Ok(columns)
}

/// The figure as SVG: one column per distribution (titled "categorical" or
/// "tau = ..."), the expectation in the top row and one sample in the bottom row, each
/// a bar chart over the classes with a probability axis.
fn draw(columns: &[Column], samples: usize) -> String {
    let (panel_w, panel_h, gap, left, top) = (170.0, 120.0, 34.0, 190.0, 64.0);
    let width = left + columns.len() as f64 * (panel_w + gap);
    let height = top + 2.0 * (panel_h + gap) + 60.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Gumbel-Softmax samples and their expectation at four temperatures</text>"#,
        width / 2.0
    );
    let rows = [
        (
            "expectation E[y]".to_string(),
            format!("mean of {samples} samples"),
        ),
        (
            "one sample y".to_string(),
            "same noise in each column".to_string(),
        ),
    ];
    for (r, (name, note)) in rows.iter().enumerate() {
        let y = top + r as f64 * (panel_h + gap) + panel_h / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{y}" font-weight="bold">{}</text><text x="10" y="{}">{}</text>"#,
            escape(name),
            y + 16.0,
            escape(note)
        );
    }
    for (c, column) in columns.iter().enumerate() {
        let x = left + c as f64 * (panel_w + gap);
        let title = if c == 0 {
            "categorical".to_string()
        } else {
            format!("tau = {}", column.label)
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>"#,
            x + panel_w / 2.0,
            top - 12.0,
            escape(&title)
        );
        for (r, values) in [&column.expectation, &column.sample]
            .into_iter()
            .enumerate()
        {
            let y = top + r as f64 * (panel_h + gap);
            let _ = writeln!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{panel_w}" height="{panel_h}" fill="#f5f5f5"/><line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="#c8c8c8"/><line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="black"/>"##,
                x + panel_w,
                y + panel_h,
                x + panel_w,
                y + panel_h
            );
            if c == 0 {
                for (value, at) in [("1", y + 4.0), ("0", y + panel_h + 4.0)] {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{}" y="{at}" text-anchor="end" font-size="10">{value}</text>"#,
                        x - 3.0
                    );
                }
            }
            let slot = panel_w / values.len() as f64;
            for (i, &v) in values.iter().enumerate() {
                let bar = v.clamp(0.0, 1.0) * panel_h;
                let [red, green, blue] = COLOURS[i % COLOURS.len()];
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bar:.1}" fill="rgb({red},{green},{blue})"/><text x="{:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"#,
                    x + i as f64 * slot + slot / 6.0,
                    y + panel_h - bar,
                    slot * 2.0 / 3.0,
                    x + (i as f64 + 0.5) * slot,
                    y + panel_h + 12.0,
                    i + 1
                );
            }
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}">Bars: probability of each class (1 to {}, axis from 0 to 1). The categorical column shows the distribution and a one-hot Gumbel-max sample.</text>"#,
        height - 30.0,
        PROBABILITIES.len()
    );
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}">Low tau: samples near one-hot, expectation near the categorical; high tau: samples and expectation near uniform.</text>"#,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn csv(columns: &[Column]) -> String {
    let mut text = String::from("column,row");
    for i in 0..PROBABILITIES.len() {
        text.push_str(&format!(",class{i}"));
    }
    text.push('\n');
    for column in columns {
        for (row, values) in [
            ("expectation", &column.expectation),
            ("sample", &column.sample),
        ] {
            text.push_str(&format!("{},{row}", column.label));
            for v in values {
                text.push_str(&format!(",{v:.6}"));
            }
            text.push('\n');
        }
    }
    text
}

fn run(options: &Options) -> Result<(), Error> {
    cli::prepare_output(&options.out, &["figure1.svg", "values.csv"])?;
    let columns = compute(options)?;
    println!("{:<12} {:<12} values per class", "column", "row");
    for column in &columns {
        for (row, values) in [
            ("expectation", &column.expectation),
            ("sample", &column.sample),
        ] {
            let shown: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
            println!("{:<12} {:<12} {}", column.label, row, shown.join("  "));
        }
    }
    let figure = options.out.join("figure1.svg");
    write_atomic(&figure, draw(&columns, options.samples).as_bytes())?;
    let table = options.out.join("values.csv");
    write_atomic(&table, csv(&columns).as_bytes())?;
    println!("wrote {} and {}", figure.display(), table.display());
    Ok(())
}

fn main() -> ExitCode {
    let options: Options = cli::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}
