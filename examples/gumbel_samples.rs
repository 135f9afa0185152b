//! Redraws Figure 1 of Jang, Gu and Poole (2017): a categorical distribution, the
//! expectation of Gumbel-Softmax samples, and single samples, at tau = 0.1, 0.5, 1, 10.
//!
//! ```text
//! cargo run --release --example gumbel_samples -- [--out DIR] [--seed N] [--samples M]
//! ```
//!
//! Writes `DIR/figure1.png` (default `out/gumbel_samples/`) and `DIR/values.csv`, both
//! atomically, and prints the same numbers. Columns of the picture: the categorical
//! distribution itself, then one column per temperature. Top row: the expectation
//! `E[y]` over `M` samples (Monte Carlo). Bottom row: one sample `y` (the first column
//! shows a one-hot categorical sample drawn by Gumbel-max with the same noise).
//! As in the paper, low temperatures give near one-hot samples whose expectation is
//! the categorical distribution, and high temperatures give near-uniform samples.

use std::path::PathBuf;
use std::process::ExitCode;

use gumbelgrad::estimators::{gumbel_softmax, noise};
use gumbelgrad::io::{RgbImage, write_atomic};
use gumbelgrad::{Error, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

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

struct Options {
    out: PathBuf,
    seed: u64,
    samples: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        out: PathBuf::from("out/gumbel_samples"),
        seed: 0,
        samples: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => options.out = PathBuf::from(value()?),
            "--seed" => options.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--samples" => {
                options.samples = value()?.parse().map_err(|e| format!("--samples: {e}"))?;
                if options.samples == 0 {
                    return Err("--samples must be at least 1".into());
                }
            }
            "--help" | "-h" => {
                return Err("usage: gumbel_samples [--out DIR] [--seed N] [--samples M]".into());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(options)
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
    let mut rng = StdRng::seed_from_u64(options.seed);
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

/// 3x5 bitmaps for the characters of the temperature labels.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0, 0, 0, 0, 0b010],
        _ => return None,
    })
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` wide.
fn draw_text(image: &mut RgbImage, text: &str, x: i64, y: i64, scale: i64) {
    let mut cursor = x;
    for c in text.chars() {
        if let Some(rows) = glyph(c) {
            for (dy, bits) in rows.iter().enumerate() {
                for dx in 0..3 {
                    if bits & (0b100 >> dx) != 0 {
                        fill(
                            image,
                            cursor + dx * scale,
                            y + dy as i64 * scale,
                            scale,
                            scale,
                            [0, 0, 0],
                        );
                    }
                }
            }
        }
        cursor += 4 * scale;
    }
}

fn fill(image: &mut RgbImage, x: i64, y: i64, width: i64, height: i64, colour: [u8; 3]) {
    for py in y..y + height {
        for px in x..x + width {
            image.put(px, py, colour);
        }
    }
}

/// One bar chart of `values` (in `[0, 1]`) in the panel with top-left `(x, y)`.
fn draw_bars(image: &mut RgbImage, values: &[f64], x: i64, y: i64, width: i64, height: i64) {
    fill(image, x, y, width, height, [245, 245, 245]);
    fill(image, x, y, width, 1, [200, 200, 200]); // the 1.0 line
    let slot = width / values.len() as i64;
    for (i, &v) in values.iter().enumerate() {
        let bar = (v.clamp(0.0, 1.0) * height as f64).round() as i64;
        let left = x + i as i64 * slot + slot / 6;
        fill(
            image,
            left,
            y + height - bar,
            slot * 2 / 3,
            bar,
            COLOURS[i % COLOURS.len()],
        );
    }
    fill(image, x, y + height, width, 2, [0, 0, 0]); // axis
}

fn draw(columns: &[Column]) -> RgbImage {
    let (panel_w, panel_h, gap, top) = (170i64, 120i64, 24i64, 40i64);
    let width = gap + columns.len() as i64 * (panel_w + gap);
    let height = top + 2 * (panel_h + gap) + gap;
    let mut image = RgbImage::new(width as usize, height as usize, [255, 255, 255]);
    for (c, column) in columns.iter().enumerate() {
        let x = gap + c as i64 * (panel_w + gap);
        if c > 0 {
            let text_width = column.label.len() as i64 * 16 - 4; // 4 px per font pixel
            draw_text(
                &mut image,
                &column.label,
                x + (panel_w - text_width) / 2,
                12,
                4,
            );
        }
        draw_bars(&mut image, &column.expectation, x, top, panel_w, panel_h);
        draw_bars(
            &mut image,
            &column.sample,
            x,
            top + panel_h + gap,
            panel_w,
            panel_h,
        );
    }
    image
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
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, &e))?;
    let png = options.out.join("figure1.png");
    draw(&columns).save(&png)?;
    let table = options.out.join("values.csv");
    write_atomic(&table, csv(&columns).as_bytes())?;
    println!("wrote {} and {}", png.display(), table.display());
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
