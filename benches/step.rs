//! One training step of the paper's categorical VAE (784-512-256-(20 x 10)-256-512-784,
//! batch 100, Gumbel-Softmax, Adam 1e-3) through `models::Trainer::step`, the crate's
//! real training path, on random binary images, with 1 and 2 threads.
//!
//! ```text
//! cargo bench --bench step
//! ```
//!
//! divan reports the time per step; the item counter is set to the step's matrix-product
//! floating-point operations (620.13 MFLOP), so "Gitem/s" reads as the GFLOP/s the whole
//! step sustains. `examples/bench_step.rs` times the same step for docs/performance.md
//! and prints the products' share.

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use gumbelgrad::Tensor;
use gumbelgrad::kernels::set_num_threads;
use gumbelgrad::models::{TrainConfig, Trainer, VaeConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() {
    divan::main();
}

const BATCH: usize = 100;
const PIXELS: usize = 784;
/// Distinct minibatches cycled through, so the step does not see one batch only.
const NUM_BATCHES: usize = 8;
/// Multiply-adds of one step's 17 matrix products, times 2 (as `bench_step` counts).
const STEP_FLOPS: usize = 620_130_000;

fn bench_step(bencher: Bencher, threads: usize) {
    set_num_threads(threads);
    let mut rng = StdRng::seed_from_u64(0);
    let config = TrainConfig {
        batch_size: BATCH,
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::<f32>::new(VaeConfig::default(), config).expect("the default VAE builds");
    let pixels = (0..NUM_BATCHES * BATCH * PIXELS)
        .map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 })
        .collect();
    let images = Tensor::<f32>::from_vec(NUM_BATCHES * BATCH, PIXELS, pixels).expect("sizes agree");
    let batches: Vec<Vec<usize>> = (0..NUM_BATCHES)
        .map(|b| (b * BATCH..(b + 1) * BATCH).collect())
        .collect();
    // Warm up: the tape's buffer pool and Adam's moments reach their steady state.
    for batch in &batches {
        trainer.step(&images, batch).expect("a step on valid data");
    }
    let mut next = 0;
    bencher
        .counter(ItemsCount::new(STEP_FLOPS))
        .bench_local(|| {
            let report = trainer
                .step(&images, &batches[next % NUM_BATCHES])
                .expect("a step on valid data");
            next += 1;
            black_box(report.loss)
        });
    set_num_threads(1);
}

#[divan::bench(sample_count = 100)]
fn vae_step_1_thread(bencher: Bencher) {
    bench_step(bencher, 1);
}

#[divan::bench(sample_count = 100)]
fn vae_step_2_threads(bencher: Bencher) {
    bench_step(bencher, 2);
}
