//! Times training steps of the paper's categorical VAE (Jang, Gu & Poole 2017) at
//! batch 100 on random binary data, the workload of `docs/performance.md`.
//!
//! ```text
//! cargo run --release --example bench_step -- --threads 2 --steps 300
//! ```
//!
//! Model (the same as the PyTorch and JAX references of `docs/performance.md`): encoder 784-512-256 (ReLU)
//! -> 200 logits = 20 categorical variables x 10 classes; relaxed sample
//! `y = softmax((logits + g) / tau)` per group of 10 with Gumbel noise `g` drawn outside
//! the tape; decoder 200-256-512 (ReLU) -> 784 Bernoulli logits; loss = batch mean of
//! [sum of BCE-with-logits over pixels + KL(q || uniform)]; Adam (lr 1e-3); f32. Each
//! step is `models::Trainer::step`, the crate's real training path (the one
//! `examples/categorical_vae.rs` runs), so what is timed is what users train with.
//!
//! Options (`--help` lists them with their defaults): `--threads N`, `--steps S` (timed
//! steps), `--warmup W` (untimed steps first), `--seed X`, `--batch-size N` (100 in
//! the comparisons), `--shards N` (data parallelism: the minibatch cut into N shards,
//! each on its own tape and thread; see `TrainConfig::shards`), `--alternate-threads M`
//! (blocks of four steps alternate between N and M threads in this one process, and
//! both medians and their ratio are printed: on a shared machine whose speed drifts,
//! the gain from a second core measured in one run rather than in two). Progress goes
//! to stderr.
//! Prints the median, min and max milliseconds per step, the matrix-product GFLOP/s
//! implied by the median, the median time of the step's 17 matrix products run alone
//! (same kernel, same threads: how much of the step is GEMM), and as its last line
//! `ms_per_step: X` (the median step).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gumbelgrad::io::ProgressBar;

use gumbelgrad::Tensor;
use gumbelgrad::kernels::gemm::Isa;
use gumbelgrad::kernels::matmul::gemm;
use gumbelgrad::kernels::threads::join;
use gumbelgrad::models::{TrainConfig, Trainer, VaeConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

const PIXELS: usize = 784;
/// Random binary batches cycled through (enough that no batch repeats within a few steps).
const NUM_BATCHES: usize = 16;

/// Time training steps of the paper's categorical VAE (batch 100, random binary data),
/// the workload of docs/performance.md.
#[derive(Debug, Parser)]
#[command(name = "bench_step", version)]
struct Options {
    #[command(flatten)]
    threads: cli::Threads,
    /// Timed steps
    #[arg(long, value_name = "S", default_value_t = 200, value_parser = cli::at_least_one)]
    steps: usize,
    /// Untimed steps first
    #[arg(long, value_name = "W", default_value_t = 50)]
    warmup: usize,
    #[command(flatten)]
    seed: cli::Seed,
    /// Examples per step (the comparisons of docs/performance.md use 100)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = cli::at_least_one)]
    batch_size: usize,
    /// Cut each minibatch into N shards, each on its own tape and thread if one is free
    /// (data parallelism, `TrainConfig::shards`; must divide --batch-size)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = cli::at_least_one)]
    shards: usize,
    /// Also time M threads in this one run: blocks of 4 steps alternate between --threads
    /// and M, and the two medians and their ratio are printed (the gain from the extra
    /// threads, measured in the same minutes, so that a host's drift hits both alike)
    #[arg(long, value_name = "M", value_parser = cli::at_least_one)]
    alternate_threads: Option<usize>,
}

/// Steps per block when `--alternate-threads` switches the thread count.
const ALTERNATION_BLOCK: usize = 4;

/// FLOPs of the matrix products of one step: forward, weight gradients, and input
/// gradients for every layer but the first (the data needs none) — 620.13 M at batch 100.
fn matmul_flops_per_step(batch: usize) -> f64 {
    let layers = [
        (784, 512),
        (512, 256),
        (256, 200),
        (200, 256),
        (256, 512),
        (512, 784),
    ];
    let forward: f64 = layers
        .iter()
        .map(|&(i, o)| 2.0 * (batch * i * o) as f64)
        .sum();
    forward + forward + (forward - 2.0 * (batch * 784 * 512) as f64)
}

/// One matrix product of the step, `(transpose_a, transpose_b, m, n, k)` as the ops
/// issue it.
type Product = (bool, bool, usize, usize, usize);

/// The 17 matrix products of one step in the order the step runs them, in stages: the
/// forward `x W` of each layer, one at a time; then, layer by layer from the last, the
/// input gradient `G W^T` and the weight gradient `x^T G` side by side (the linear op runs
/// the two at once, `kernels::threads::join`); the first layer has no input gradient.
fn step_products(batch: usize) -> Vec<Vec<Product>> {
    let layers = [
        (784, 512),
        (512, 256),
        (256, 200),
        (200, 256),
        (256, 512),
        (512, 784),
    ];
    let forward = layers
        .iter()
        .map(|&(i, o)| vec![(false, false, batch, o, i)]);
    let backward = layers.iter().enumerate().rev().map(|(layer, &(i, o))| {
        let weight_grad = (true, false, i, o, batch);
        match layer {
            0 => vec![weight_grad],
            _ => vec![(false, true, batch, i, o), weight_grad],
        }
    });
    forward.chain(backward).collect()
}

/// A product with its operands `a`, `b` and output `c`.
type Operands = (
    bool,
    bool,
    usize,
    usize,
    usize,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
);

/// Runs one product as the ops do.
fn run_product((ta, tb, m, n, k, a, b, c): &mut Operands) {
    gemm(*ta, *tb, *m, *n, *k, a, b, c);
}

/// Median milliseconds of running just the step's matrix products, in step order
/// ([`step_products`]: the backward pairs side by side), through the same
/// `kernels::matmul::gemm` the ops call with the same thread setting, `repeats` times:
/// the part of a step the GEMM kernel is responsible for.
fn time_products_alone(batch: usize, repeats: usize, rng: &mut StdRng) -> f64 {
    let mut operand = |(ta, tb, m, n, k): Product| -> Operands {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        (ta, tb, m, n, k, a, b, vec![0.0f32; m * n])
    };
    let mut stages: Vec<Vec<Operands>> = step_products(batch)
        .into_iter()
        .map(|stage| stage.into_iter().map(&mut operand).collect())
        .collect();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats + 10 {
        let started = Instant::now();
        for stage in &mut stages {
            match stage.as_mut_slice() {
                [only] => run_product(only),
                [first, second] => {
                    join(|| run_product(first), || run_product(second));
                }
                _ => unreachable!("a stage holds one or two products"),
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut times = times.split_off(10);
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> ExitCode {
    let options: Options = cli::parse();
    if options.alternate_threads.is_some() && options.steps < 2 * ALTERNATION_BLOCK {
        cli::usage_error::<Options>(format!(
            "--alternate-threads needs at least {} timed steps (--steps), got {}",
            2 * ALTERNATION_BLOCK,
            options.steps
        ));
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

fn run(options: &Options) -> gumbelgrad::Result<()> {
    options.threads.apply();
    let seed = options.seed.seed;
    let mut rng = StdRng::seed_from_u64(seed);

    // The crate's own training path: `models::Trainer` on the paper's categorical VAE
    // (Gumbel-Softmax, Adam 1e-3), exactly what `examples/categorical_vae.rs` runs.
    let config = TrainConfig {
        batch_size: options.batch_size,
        seed,
        shards: options.shards,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::<f32>::new(VaeConfig::default(), config)?;
    let batch = options.batch_size;
    let pixels = (0..NUM_BATCHES * batch * PIXELS)
        .map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 })
        .collect();
    let images = Tensor::<f32>::from_vec(NUM_BATCHES * batch, PIXELS, pixels)?;
    let batches: Vec<Vec<usize>> = (0..NUM_BATCHES)
        .map(|b| (b * batch..(b + 1) * batch).collect())
        .collect();

    let mut step_ms = Vec::with_capacity(options.steps);
    // Steps timed at `--alternate-threads` (a count's results are the same bits as any
    // other's, so switching does not change the run).
    let mut alternate_ms = Vec::with_capacity(options.steps);
    let mut last_loss = f64::NAN;
    let total = options.warmup + options.steps;
    let mut bar = ProgressBar::new(total as u64);
    for step in 0..total {
        // Counted from the first timed step, which is always at --threads.
        let block = step.checked_sub(options.warmup).unwrap_or(step) / ALTERNATION_BLOCK;
        let alternate = options.alternate_threads.filter(|_| block % 2 == 1);
        gumbelgrad::kernels::set_num_threads(alternate.unwrap_or(options.threads.threads));
        let started = Instant::now();
        let report = trainer.step(&images, &batches[step % NUM_BATCHES])?;
        last_loss = report.loss;
        if step >= options.warmup {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            match alternate {
                Some(_) => alternate_ms.push(ms),
                None => step_ms.push(ms),
            }
        }
        let phase = if step < options.warmup {
            "warm-up"
        } else {
            "timed"
        };
        bar.set(
            step as u64 + 1,
            &format!(
                "{phase}  loss {last_loss:7.2}  tau {:.3}",
                report.temperature
            ),
        );
    }
    bar.finish("steps done");
    options.threads.apply();

    step_ms.sort_by(f64::total_cmp);
    let median = step_ms[step_ms.len() / 2];
    println!(
        "categorical VAE step, batch {batch}, f32, {} thread(s), {} shard(s), GEMM kernel {:?}, {} steps after {} warm-up",
        options.threads.threads,
        options.shards,
        Isa::detect(),
        step_ms.len(),
        options.warmup
    );
    if let Some(threads) = options.alternate_threads {
        alternate_ms.sort_by(f64::total_cmp);
        let alternate_median = alternate_ms[alternate_ms.len() / 2];
        println!(
            "alternating blocks of {ALTERNATION_BLOCK} steps: {} thread(s) {median:.3} ms, \
             {threads} thread(s) {alternate_median:.3} ms (medians of {} and {} steps); \
             ratio ({threads} / {}) {:.3}",
            options.threads.threads,
            step_ms.len(),
            alternate_ms.len(),
            options.threads.threads,
            alternate_median / median
        );
    }
    println!(
        "median {median:.3} ms, min {:.3} ms, max {:.3} ms; final loss {last_loss:.2}",
        step_ms[0],
        step_ms[step_ms.len() - 1]
    );
    println!(
        "matrix products: {:.1} MFLOP/step, {:.1} GFLOP/s at the median",
        matmul_flops_per_step(batch) / 1e6,
        matmul_flops_per_step(batch) / (median * 1e-3) / 1e9
    );
    let products_ms = time_products_alone(batch, options.steps, &mut rng);
    println!(
        "the step's 17 matrix products alone: {products_ms:.3} ms ({:.1} GFLOP/s), \
         the rest of the step: {:.3} ms",
        matmul_flops_per_step(batch) / (products_ms * 1e-3) / 1e9,
        median - products_ms
    );
    println!("ms_per_step: {median:.3}");
    Ok(())
}
