//! The estimator lab: every gradient estimator in the crate against exact gradients.
//!
//! ```text
//! cargo run --release --example estimator_lab                 # table on stdout
//! cargo run --release --example estimator_lab -- --json       # only a JSON array (one line) on stdout
//! cargo run --release --example estimator_lab -- --out DIR    # where the picture goes
//! ```
//!
//! Problems (all with exact answers):
//! - `bernoulli t=0.45` and `bernoulli t=0.499`: the REBAR/RELAX toy
//!   `E[(b - t)^2]`, `b ~ Bernoulli(sigmoid(phi))` at `phi = 0`, run as a 2-class
//!   categorical with logits `[0, phi]`; the reported gradient is `dL/dphi`, exactly
//!   `(1 - 2t) theta (1 - theta)`.
//! - `categorical K=4 N=2` and `categorical K=10 N=3`: fixed random logits and the
//!   non-quadratic cost `exp(<w, z>) + <u, z>^2`; the exact gradient enumerates all
//!   `K^N` configurations (`estimators::exact`). The table reports the logit with the
//!   largest exact gradient; the unbiasedness check uses every logit.
//! - `binary units N=4`: independent Bernoulli units (`group_size = 1`, samples of zeros
//!   and ones) with the same kind of cost, exact by enumeration of the `2^4`
//!   configurations; here the relaxations are the Bernoulli ones (relaxed Bernoulli,
//!   ST Bernoulli, slope-annealed ST).
//! - `bernoulli bound m=4 t=0.45`: VIMCO's own objective, the 4-sample bound
//!   `E[-log (1/4) sum_j exp(-(b_j - t)^2)]` of the toy, exact by enumerating the `2^4`
//!   sample tuples; only `vimco-bound` runs on it.
//!
//! Each estimator gives `calls x batch` single-sample estimates (VIMCO and RLOO: one
//! estimate per example from its `m = 4` samples). `std` is the standard deviation of single
//! estimates, `se = std / sqrt(samples)` the standard error of their mean, and
//! `z = bias / se`. Every estimator that theory calls unbiased must have `|z| < 4` on
//! every logit; the lab says so on stderr and exits with status 1 if one does not.
//! Timings (`us_per_sample`: estimate plus backward, per example) are wall-clock on
//! this machine and only indicative.
//!
//! It also writes `gumbel_softmax_temperature.svg` (atomically) into the output folder
//! (default `target/estimator_lab`): the bias and the variance of Gumbel-Softmax,
//! straight-through Gumbel-Softmax, Gumbel-Rao (`K = 10`), ReinMax and gapped ST
//! (gap 1) against the temperature on `categorical K=4 N=2`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gumbelgrad::estimators::score::Baseline;
use gumbelgrad::estimators::{Estimator, GAPPED_ST_DEFAULT_GAP, GradientEstimator, exact};
use gumbelgrad::io::ProgressBar;
use gumbelgrad::io::json::Json;
use gumbelgrad::{Tape, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

/// A problem with an exact answer.
struct Problem {
    name: String,
    logits: Vec<f64>,
    group_size: usize,
    cost: Cost,
    exact: Vec<f64>,
    /// The logit reported in the table.
    report: usize,
    /// Which estimators the problem is for.
    kind: Kind,
}

/// Which roster a problem gets.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `E[f]` over categorical groups: everything but the Bernoulli relaxations.
    Categorical,
    /// `E[f]` over binary units: everything but the categorical relaxations.
    Binary,
    /// The `m`-sample bound: VIMCO on the bound only.
    Bound,
}

enum Cost {
    /// `exp(<w, b>) + <u, b>^2` on binary units `b`.
    Binary { w: Vec<f64>, u: Vec<f64> },
    /// `(z_1 - target)^2` on a 2-class one-hot `[1 - b, b]`.
    Toy { target: f64 },
    /// `exp(<w, z>) + <u, z>^2`.
    Smooth { w: Vec<f64>, u: Vec<f64> },
}

impl Problem {
    fn toy(target: f64) -> Self {
        let theta: f64 = 0.5;
        let d = (1.0 - 2.0 * target) * theta * (1.0 - theta);
        Problem {
            name: format!("bernoulli t={target}"),
            logits: vec![0.0, 0.0],
            group_size: 2,
            cost: Cost::Toy { target },
            exact: vec![-d, d],
            report: 1,
            kind: Kind::Categorical,
        }
    }

    /// The toy's `m`-sample bound `E[-log (1/m) sum_j exp(-(b_j - t)^2)]` at `phi = 0`,
    /// exact by enumerating all `2^m` sample tuples.
    fn toy_bound(target: f64, m: usize) -> Self {
        let theta: f64 = 0.5;
        let mut d = 0.0;
        for bits in 0..(1usize << m) {
            let b: Vec<f64> = (0..m).map(|j| ((bits >> j) & 1) as f64).collect();
            let p: f64 = b
                .iter()
                .map(|&x| if x == 1.0 { theta } else { 1.0 - theta })
                .product();
            let mean: f64 = b.iter().map(|x| (-(x - target).powi(2)).exp()).sum::<f64>() / m as f64;
            d += p * (-mean.ln()) * b.iter().map(|x| x - theta).sum::<f64>();
        }
        Problem {
            name: format!("bernoulli bound m={m} t={target}"),
            logits: vec![0.0, 0.0],
            group_size: 2,
            cost: Cost::Toy { target },
            exact: vec![-d, d],
            report: 1,
            kind: Kind::Bound,
        }
    }

    fn categorical(classes: usize, variables: usize, seed: u64) -> gumbelgrad::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = classes * variables;
        let mut draw = |scale: f64| {
            Tensor::<f64>::random_uniform(1, n, -scale, scale, &mut rng)
                .as_slice()
                .to_vec()
        };
        let (logits, w, u) = (draw(1.5), draw(0.8), draw(1.0));
        let f = |z: &[f64]| {
            let a: f64 = z.iter().zip(&w).map(|(z, w)| z * w).sum();
            let b: f64 = z.iter().zip(&u).map(|(z, u)| z * u).sum();
            a.exp() + b * b
        };
        let exact = exact::categorical(&logits, classes, f)?.gradient;
        let report = (0..n)
            .max_by(|&i, &j| exact[i].abs().total_cmp(&exact[j].abs()))
            .unwrap_or(0);
        Ok(Problem {
            name: format!("categorical K={classes} N={variables}"),
            logits,
            group_size: classes,
            cost: Cost::Smooth { w, u },
            exact,
            report,
            kind: Kind::Categorical,
        })
    }

    /// Independent Bernoulli units (`group_size = 1`), exact by `exact::bernoulli`.
    fn binary(units: usize, seed: u64) -> gumbelgrad::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw = |scale: f64| {
            Tensor::<f64>::random_uniform(1, units, -scale, scale, &mut rng)
                .as_slice()
                .to_vec()
        };
        let (logits, w, u) = (draw(1.5), draw(0.8), draw(1.0));
        let f = |b: &[f64]| {
            let a: f64 = b.iter().zip(&w).map(|(b, w)| b * w).sum();
            let c: f64 = b.iter().zip(&u).map(|(b, u)| b * u).sum();
            a.exp() + c * c
        };
        let exact = exact::bernoulli(&logits, f)?.gradient;
        let report = (0..units)
            .max_by(|&i, &j| exact[i].abs().total_cmp(&exact[j].abs()))
            .unwrap_or(0);
        Ok(Problem {
            name: format!("binary units N={units}"),
            logits,
            group_size: 1,
            cost: Cost::Binary { w, u },
            exact,
            report,
            kind: Kind::Binary,
        })
    }

    fn cost<'t>(&self, z: Var<'t, f64>) -> Var<'t, f64> {
        let tape = z.tape();
        match &self.cost {
            Cost::Toy { target } => {
                let pick = tape.constant(&Tensor::from_vec(2, 1, vec![0.0, 1.0]).expect("2x1"));
                (z.matmul(pick) - *target).square()
            }
            Cost::Smooth { w, u } | Cost::Binary { w, u } => {
                let n = w.len();
                let w = tape.constant(&Tensor::from_slice(n, 1, w).expect("n x 1"));
                let u = tape.constant(&Tensor::from_slice(n, 1, u).expect("n x 1"));
                z.matmul(w).exp() + z.matmul(u).square()
            }
        }
    }
}

/// Per-logit statistics of an estimator on a problem.
struct Measured {
    mean: Vec<f64>,
    std: Vec<f64>,
    samples: usize,
    us_per_sample: f64,
}

impl Measured {
    fn se(&self, i: usize) -> f64 {
        self.std[i] / (self.samples as f64).sqrt()
    }
}

/// What makes one call's estimate unbiased: NVIL's variance normaliser divides it by
/// a known scale, which is multiplied back here.
fn unbiasing_scale(estimator: &Estimator<f64>) -> f64 {
    match estimator {
        Estimator::Reinforce(r) => r.last_scale(),
        _ => 1.0,
    }
}

fn measure(
    problem: &Problem,
    estimator: &mut Estimator<f64>,
    calls: usize,
    batch: usize,
    seed: u64,
) -> gumbelgrad::Result<Measured> {
    let mut rng = StdRng::seed_from_u64(seed);
    let cols = problem.logits.len();
    let row = Tensor::from_vec(batch, cols, problem.logits.repeat(batch))?;
    let mut sum = vec![0.0; cols];
    let mut sum_sq = vec![0.0; cols];
    let mut seconds = 0.0;
    for _ in 0..calls {
        let tape = Tape::<f64>::new();
        let start = Instant::now();
        let logits = tape.variable(&row);
        let estimate = estimator.estimate(
            logits,
            problem.group_size,
            &mut |z| problem.cost(z),
            &mut rng,
        );
        tape.backward(estimate.loss)?;
        seconds += start.elapsed().as_secs_f64();
        let factor = unbiasing_scale(estimator) * batch as f64;
        let grad = logits.grad().unwrap_or_else(|| Tensor::zeros(batch, cols));
        for r in 0..batch {
            for (i, g) in grad.row(r).iter().enumerate() {
                let g = g * factor;
                sum[i] += g;
                sum_sq[i] += g * g;
            }
        }
    }
    let n = (calls * batch) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sum_sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / n - m * m) * n / (n - 1.0)).max(0.0).sqrt())
        .collect();
    Ok(Measured {
        mean,
        std,
        samples: calls * batch,
        us_per_sample: seconds * 1e6 / n,
    })
}

/// The estimators of the table: a label and a fresh estimator. Binary units
/// (`group_size = 1`) get the Bernoulli relaxations instead of the categorical ones.
fn roster(kind: Kind) -> gumbelgrad::Result<Vec<(String, Estimator<f64>)>> {
    if kind == Kind::Bound {
        return Ok(vec![(
            "vimco-bound(m=4)".to_string(),
            Estimator::from_name("vimco-bound", 1.0)?,
        )]);
    }
    let binary = kind == Kind::Binary;
    let mut list = vec![
        (
            "reinforce".to_string(),
            Estimator::reinforce(Baseline::None)?,
        ),
        (
            "reinforce-ema".to_string(),
            Estimator::reinforce(Baseline::MovingAverage { decay: 0.8 })?,
        ),
        ("nvil".to_string(), Estimator::nvil()),
        ("muprop".to_string(), Estimator::muprop()),
        ("vimco(m=4)".to_string(), Estimator::vimco(4)?),
        ("rloo(m=4)".to_string(), Estimator::rloo(4)?),
        ("arm".to_string(), Estimator::arm()),
        ("disarm".to_string(), Estimator::disarm()),
        ("rebar".to_string(), Estimator::rebar(0.5)?),
        ("relax".to_string(), Estimator::relax(0.5)?),
        ("darn".to_string(), Estimator::darn()),
        (
            "darn-sample-slope".to_string(),
            Estimator::from_name("darn-sample-slope", 1.0)?,
        ),
        (
            "gumbel-rao(tau=1,K=10)".to_string(),
            Estimator::gumbel_rao(1.0, 10)?,
        ),
        ("reinmax(tau=1)".to_string(), Estimator::reinmax(1.0)?),
    ];
    if binary {
        for tau in [0.1, 0.5, 1.0, 2.0] {
            list.push((
                format!("relaxed-bernoulli(tau={tau})"),
                Estimator::relaxed_bernoulli(tau)?,
            ));
        }
        list.push((
            "st-relaxed-bernoulli(tau=0.5)".to_string(),
            Estimator::st_relaxed_bernoulli(0.5)?,
        ));
        list.push(("st-bernoulli".to_string(), Estimator::st_bernoulli()?));
        list.push((
            "slope-annealed-st(slope=1)".to_string(),
            Estimator::slope_annealed_st(1.0)?,
        ));
        list.push(gapped_st_row()?);
        return Ok(list);
    }
    for tau in [0.1, 0.5, 1.0, 2.0] {
        list.push((
            format!("gumbel-softmax(tau={tau})"),
            Estimator::gumbel_softmax(tau)?,
        ));
    }
    list.push((
        "st-gumbel-softmax(tau=1)".to_string(),
        Estimator::st_gumbel_softmax(1.0)?,
    ));
    list.push(("st(tau=1)".to_string(), Estimator::st(1.0)?));
    list.push(("st-argmax(tau=1)".to_string(), Estimator::st_argmax(1.0)?));
    list.push(gapped_st_row()?);
    Ok(list)
}

/// Gapped ST at `tau = 1` with its default gap, last in each roster so that the rows
/// before it keep their seeds.
fn gapped_st_row() -> gumbelgrad::Result<(String, Estimator<f64>)> {
    Ok((
        "gapped-st(tau=1,gap=1)".to_string(),
        Estimator::gapped_st(1.0, GAPPED_ST_DEFAULT_GAP)?,
    ))
}

struct Row {
    problem: String,
    estimator: String,
    unbiased: bool,
    mean: f64,
    exact: f64,
    bias: f64,
    std: f64,
    se: f64,
    worst_z: f64,
    samples: usize,
    us_per_sample: f64,
}

/// `bias / se`, with a deterministic estimator (se = 0) giving 0 when exact and
/// infinity otherwise (floating-point noise below 1e-9 relative counts as exact).
fn ratio(bias: f64, se: f64) -> f64 {
    if se > 1e-9 * bias.abs().max(1e-12) {
        bias / se
    } else if bias.abs() < 1e-12 {
        0.0
    } else {
        bias.signum() * f64::INFINITY
    }
}

/// One point of the temperature sweep.
#[derive(Clone)]
struct SweepPoint {
    temperature: f64,
    bias: f64,
    noise_floor: f64,
    variance: f64,
}

/// The estimators of the temperature sweep, in legend order: a label and a constructor.
type Family = (&'static str, fn(f64) -> gumbelgrad::Result<Estimator<f64>>);

/// The sweep's estimators: every one whose bias and variance move with a temperature.
const SWEEP_FAMILIES: [Family; 5] = [
    ("gumbel-softmax", Estimator::gumbel_softmax),
    ("st-gumbel-softmax", Estimator::st_gumbel_softmax),
    ("gumbel-rao(K=10)", |tau| Estimator::gumbel_rao(tau, 10)),
    ("reinmax", Estimator::reinmax),
    ("gapped-st(gap=1)", |tau| {
        Estimator::gapped_st(tau, GAPPED_ST_DEFAULT_GAP)
    }),
];

/// Bias norm `|E[g] - exact|`, its noise floor `sqrt(sum_i se_i^2)`, and the total
/// variance `sum_i Var[g_i]` of every [`SWEEP_FAMILIES`] member over a grid of
/// temperatures.
fn temperature_sweep(problem: &Problem) -> gumbelgrad::Result<Vec<Vec<SweepPoint>>> {
    let temperatures = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0];
    let mut out = vec![Vec::new(); SWEEP_FAMILIES.len()];
    for (points, (_, build)) in out.iter_mut().zip(SWEEP_FAMILIES) {
        for (index, &temperature) in temperatures.iter().enumerate() {
            let mut estimator = build(temperature)?;
            let m = measure(problem, &mut estimator, 20, 500, 7000 + index as u64)?;
            let cols = problem.exact.len();
            let bias = (0..cols)
                .map(|i| (m.mean[i] - problem.exact[i]).powi(2))
                .sum::<f64>()
                .sqrt();
            let noise_floor = (0..cols).map(|i| m.se(i).powi(2)).sum::<f64>().sqrt();
            let variance = m.std.iter().map(|s| s * s).sum();
            points.push(SweepPoint {
                temperature,
                bias,
                noise_floor,
                variance,
            });
        }
    }
    Ok(out)
}

/// A polyline to draw: colour index, points, dashed.
type Line = (usize, Vec<(f64, f64)>, bool);

/// Two log-log panels (bias, variance) against the temperature, as SVG written by hand;
/// `sweep[i]` is [`SWEEP_FAMILIES`]`[i]`.
fn sweep_svg(problem: &str, sweep: &[Vec<SweepPoint>]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 450.0;
    const PANEL: f64 = 360.0;
    const TOP: f64 = 60.0;
    const PLOT_H: f64 = 290.0;
    // one colour per family, then the noise floor's grey
    let colours = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#999999",
    ];
    let floor_colour = SWEEP_FAMILIES.len();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">Relaxed and straight-through estimators on {problem}: bias and variance against temperature</text>"#,
        W / 2.0
    );
    let log = |x: f64| x.max(1e-300).log10();
    let (t_min, t_max) = (log(0.05), log(5.0));
    type Pick = fn(&SweepPoint) -> f64;
    let panels: [(&str, Pick, Option<Pick>); 2] = [
        (
            "|E[g] - exact| (L2 over logits)",
            |p| p.bias,
            Some(|p| p.noise_floor),
        ),
        ("total variance sum_i Var[g_i]", |p| p.variance, None),
    ];
    for (panel, (title, value, floor)) in panels.iter().enumerate() {
        let left = 70.0 + panel as f64 * (PANEL + 90.0);
        let mut ys: Vec<f64> = sweep
            .iter()
            .flatten()
            .map(|p| log(value(p)))
            .filter(|y| y.is_finite())
            .collect();
        if let Some(floor) = floor {
            ys.extend(sweep[0].iter().map(|p| log(floor(p))));
        }
        let y_min = ys.iter().cloned().fold(f64::INFINITY, f64::min).floor();
        let y_max = ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max).ceil();
        let y_max = if y_max <= y_min { y_min + 1.0 } else { y_max };
        let px = |t: f64| left + (log(t) - t_min) / (t_max - t_min) * PANEL;
        let py = |v: f64| TOP + PLOT_H - (log(v) - y_min) / (y_max - y_min) * PLOT_H;
        let _ = writeln!(
            svg,
            r#"<rect x="{left}" y="{TOP}" width="{PANEL}" height="{PLOT_H}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{title}</text>"#,
            left + PANEL / 2.0,
            TOP - 8.0
        );
        for t in [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0] {
            let x = px(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#e5e5e5"/><text x="{x}" y="{}" text-anchor="middle">{t}</text>"##,
                TOP + PLOT_H,
                TOP + PLOT_H + 16.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">temperature tau (log scale)</text>"#,
            left + PANEL / 2.0,
            TOP + PLOT_H + 34.0
        );
        let mut e = y_min as i32;
        while e as f64 <= y_max {
            let y = TOP + PLOT_H - (e as f64 - y_min) / (y_max - y_min) * PLOT_H;
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#e5e5e5"/><text x="{}" y="{}" text-anchor="end">1e{e}</text>"##,
                left + PANEL,
                left - 4.0,
                y + 4.0
            );
            e += 1;
        }
        let mut lines: Vec<Line> = sweep
            .iter()
            .enumerate()
            .map(|(family, points)| {
                (
                    family,
                    points
                        .iter()
                        .map(|p| (px(p.temperature), py(value(p))))
                        .collect(),
                    false,
                )
            })
            .collect();
        if let Some(floor) = floor {
            lines.push((
                floor_colour,
                sweep[0]
                    .iter()
                    .map(|p| (px(p.temperature), py(floor(p))))
                    .collect(),
                true,
            ));
        }
        for (colour, points, dashed) in lines {
            let path: Vec<String> = points
                .iter()
                .filter(|(_, y)| y.is_finite())
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let dash = if dashed {
                r#" stroke-dasharray="5,4""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                colours[colour]
            );
            if !dashed {
                for (x, y) in points.iter().filter(|(_, y)| y.is_finite()) {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                        colours[colour]
                    );
                }
            }
        }
    }
    let mut legend: Vec<(String, &str)> = SWEEP_FAMILIES
        .iter()
        .zip(colours)
        .map(|((label, _), colour)| (label.to_string(), colour))
        .collect();
    legend.push((
        format!(
            "noise floor of the bias ({}): sqrt(sum se_i^2)",
            SWEEP_FAMILIES[0].0
        ),
        colours[floor_colour],
    ));
    // two rows: the families, then the noise floor
    for (i, (label, colour)) in legend.iter().enumerate() {
        let (column, row) = if i < SWEEP_FAMILIES.len() {
            (i, 0)
        } else {
            (0, 1)
        };
        let x = 70.0 + column as f64 * 165.0;
        let y = H - 34.0 + row as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{y}">{label}</text>"#,
            y - 4.0,
            x + 24.0,
            y - 4.0,
            x + 30.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Every gradient estimator of the crate against exact gradients (by enumeration) on
/// toy problems: mean, bias, standard deviation and time per sample; also a plot of
/// the relaxed and straight-through estimators' bias and variance against the temperature.
#[derive(Debug, Parser)]
#[command(name = "estimator_lab", version)]
struct Args {
    /// Print only a JSON array (one line) of the results on stdout
    #[arg(long)]
    json: bool,
    /// Folder for gumbel_softmax_temperature.svg
    #[arg(long, value_name = "DIR", default_value = "target/estimator_lab")]
    out: PathBuf,
    /// Calls of each estimator per problem
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = cli::at_least_one)]
    calls: usize,
    /// Examples per call (each gives one estimate)
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = cli::at_least_one)]
    batch: usize,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    if args.calls.saturating_mul(args.batch) < 2 {
        cli::usage_error::<Args>(format!(
            "--calls {} x --batch {} gives {} estimate per estimator: a standard error (and so \
             the unbiasedness check) needs at least 2",
            args.calls,
            args.batch,
            args.calls.saturating_mul(args.batch)
        ));
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => cli::fail(error),
    }
}

/// Runs the lab; `Ok(false)` if an unbiased estimator missed its exact gradient.
fn run(args: &Args) -> gumbelgrad::Result<bool> {
    let (json, calls, batch) = (args.json, args.calls, args.batch);
    cli::prepare_output(&args.out, &["gumbel_softmax_temperature.svg"])?;
    let problems = [
        Problem::toy(0.45),
        Problem::toy(0.499),
        Problem::categorical(4, 2, 12)?,
        Problem::categorical(10, 3, 15)?,
        Problem::binary(4, 16)?,
        Problem::toy_bound(0.45, 4),
    ];
    let mut rows = Vec::new();
    let rosters = problems
        .iter()
        .map(|problem| roster(problem.kind))
        .collect::<gumbelgrad::Result<Vec<_>>>()?;
    let mut bar =
        ProgressBar::new(rosters.iter().map(Vec::len).sum::<usize>() as u64).unit("estimators");
    for (p, (problem, roster)) in problems.iter().zip(rosters).enumerate() {
        for (e, (label, mut estimator)) in roster.into_iter().enumerate() {
            bar.set(bar.position(), &format!("{} on {}", label, problem.name));
            let m = measure(
                problem,
                &mut estimator,
                calls,
                batch,
                1000 * p as u64 + e as u64,
            )?;
            let i = problem.report;
            let worst_z = (0..problem.exact.len())
                .map(|j| ratio((m.mean[j] - problem.exact[j]).abs(), m.se(j)))
                .fold(0.0, f64::max);
            rows.push(Row {
                problem: problem.name.clone(),
                estimator: label,
                unbiased: estimator.is_unbiased(),
                mean: m.mean[i],
                exact: problem.exact[i],
                bias: m.mean[i] - problem.exact[i],
                std: m.std[i],
                se: m.se(i),
                worst_z,
                samples: m.samples,
                us_per_sample: m.us_per_sample,
            });
            bar.set(
                bar.position() + 1,
                &format!("{} on {}", rows[rows.len() - 1].estimator, problem.name),
            );
        }
    }
    bar.finish("measured every estimator");

    if json {
        let objects = rows
            .iter()
            .map(|r| {
                let number = |key: &str, value: f64| {
                    cli::number(&format!("{key} of {} on {}", r.estimator, r.problem), value)
                };
                cli::object([
                    ("problem", Json::string(r.problem.clone())),
                    ("estimator", Json::string(r.estimator.clone())),
                    ("unbiased", Json::Bool(r.unbiased)),
                    ("mean", number("mean", r.mean)),
                    ("exact", number("exact", r.exact)),
                    ("bias", number("bias", r.bias)),
                    ("std", number("std", r.std)),
                    ("se", number("se", r.se)),
                    ("max_abs_z", number("max_abs_z", r.worst_z)),
                    ("samples", Json::from_u64(r.samples as u64)),
                    ("us_per_sample", number("us_per_sample", r.us_per_sample)),
                ])
            })
            .collect();
        println!("{}", Json::Array(objects));
    } else {
        println!(
            "{:<22} {:<26} {:>8} {:>11} {:>11} {:>11} {:>10} {:>6} {:>7} {:>8} {:>8}",
            "problem",
            "estimator",
            "unbiased",
            "mean",
            "exact",
            "bias",
            "std",
            "z",
            "max|z|",
            "samples",
            "us/sample"
        );
        for r in &rows {
            println!(
                "{:<22} {:<26} {:>8} {:>11.3e} {:>11.3e} {:>11.3e} {:>10.3e} {:>6.1} {:>7.1} {:>8} {:>8.2}",
                r.problem,
                r.estimator,
                r.unbiased,
                r.mean,
                r.exact,
                r.bias,
                r.std,
                ratio(r.bias, r.se),
                r.worst_z,
                r.samples,
                r.us_per_sample
            );
        }
        println!(
            "\nz = bias / standard error on the reported logit; max|z| over every logit of the problem."
        );
    }

    let sweep_problem = &problems[2];
    let sweep = temperature_sweep(sweep_problem)?;
    let picture = args.out.join("gumbel_softmax_temperature.svg");
    gumbelgrad::io::write_atomic(&picture, sweep_svg(&sweep_problem.name, &sweep).as_bytes())?;
    eprintln!("wrote {}", picture.display());
    for ((name, _), points) in SWEEP_FAMILIES.iter().zip(&sweep) {
        for p in points {
            eprintln!(
                "  {name:<18} tau {:>5}: |bias| {:.3e} (noise floor {:.3e}), variance {:.3e}",
                p.temperature, p.bias, p.noise_floor, p.variance
            );
        }
    }

    let failures: Vec<&Row> = rows
        .iter()
        .filter(|r| r.unbiased && r.worst_z >= 4.0)
        .collect();
    if failures.is_empty() {
        eprintln!(
            "every unbiased estimator is within 4 standard errors of the exact gradient on every logit"
        );
        Ok(true)
    } else {
        for r in &failures {
            eprintln!(
                "NOT within error bars: {} on {} (max |z| = {:.1})",
                r.estimator, r.problem, r.worst_z
            );
        }
        Ok(false)
    }
}
