//! GEMM throughput at the categorical VAE's shapes (batch 100), single-threaded and
//! with 2 threads, plus the plain reference loops for scale, and what handing work to a
//! helper thread costs.
//!
//! ```text
//! cargo bench --bench gemm
//! ```
//!
//! divan reports time per product and, through the item counter set to the product's
//! floating-point operations (`2 m n k`), throughput in "Gitem/s" = **GFLOP/s**.
//! One core's single-precision FMA peak on the reference machine is about 160 GFLOP/s (a loop
//! of independent AVX-512 FMAs).

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use gumbelgrad::kernels::gemm::{GemmConfig, gemm};
use gumbelgrad::kernels::matmul::gemm_reference;

fn main() {
    divan::main();
}

/// `(name, transpose_a, transpose_b, m, n, k)`: forward products of the six layers, and
/// the backward ones of the first encoder layer and the last decoder layer.
const SHAPES: &[(&str, bool, bool, usize, usize, usize)] = &[
    ("fwd [100,784]x[784,512]", false, false, 100, 512, 784),
    ("fwd [100,512]x[512,256]", false, false, 100, 256, 512),
    ("fwd [100,256]x[256,200]", false, false, 100, 200, 256),
    ("fwd [100,200]x[200,256]", false, false, 100, 256, 200),
    ("fwd [100,512]x[512,784]", false, false, 100, 784, 512),
    (
        "dW  [784,100]x[100,512] (A^T G)",
        true,
        false,
        784,
        512,
        100,
    ),
    (
        "dX  [100,512]x[512,784]^T (G W^T)",
        false,
        true,
        100,
        784,
        512,
    ),
    (
        "dW  [512,100]x[100,784] (A^T G)",
        true,
        false,
        512,
        784,
        100,
    ),
    (
        "dX  [100,784]x[784,512]^T (G W^T)",
        false,
        true,
        100,
        512,
        784,
    ),
];

fn operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b = (0..k * n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    (a, b, vec![0.0; m * n])
}

/// The names of the shapes, divan's benchmark arguments.
const NAMES: [&str; 9] = [
    SHAPES[0].0,
    SHAPES[1].0,
    SHAPES[2].0,
    SHAPES[3].0,
    SHAPES[4].0,
    SHAPES[5].0,
    SHAPES[6].0,
    SHAPES[7].0,
    SHAPES[8].0,
];

fn shape(name: &str) -> (bool, bool, usize, usize, usize) {
    let &(_, ta, tb, m, n, k) = SHAPES.iter().find(|s| s.0 == name).expect("known shape");
    (ta, tb, m, n, k)
}

fn run(bencher: Bencher, name: &str, threads: usize) {
    let (ta, tb, m, n, k) = shape(name);
    let (a, b, mut c) = operands(m, n, k);
    let config = GemmConfig::current().with_threads(threads);
    bencher
        .counter(ItemsCount::new(2 * m * n * k))
        .bench_local(|| {
            gemm(
                &config,
                ta,
                tb,
                m,
                n,
                k,
                black_box(&a),
                black_box(&b),
                &mut c,
            )
            .expect("lengths fit the dimensions")
        });
}

#[divan::bench(args = NAMES, sample_count = 60)]
fn fast_1_thread(bencher: Bencher, name: &str) {
    run(bencher, name, 1);
}

#[divan::bench(args = NAMES, sample_count = 60)]
fn fast_2_threads(bencher: Bencher, name: &str) {
    run(bencher, name, 2);
}

#[divan::bench(args = [NAMES[0], NAMES[6]], sample_count = 10)]
fn reference_loops(bencher: Bencher, name: &str) {
    let (ta, tb, m, n, k) = shape(name);
    let (a, b, mut c) = operands(m, n, k);
    bencher
        .counter(ItemsCount::new(2 * m * n * k))
        .bench_local(|| gemm_reference(ta, tb, m, n, k, black_box(&a), black_box(&b), &mut c));
}

/// What handing work to one kept-alive helper thread costs (a one-thread `rayon` pool,
/// as the crate's `kernels::threads` keeps, running an empty task in a scope): the
/// fixed price a product pays per helper thread. On a busy machine the mean is far
/// above the median (the scope waits until the helper got a core at all), which is why
/// small products stay single-threaded.
#[divan::bench(sample_count = 500)]
fn pool_thread_hand_off(bencher: Bencher) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one thread");
    bencher.bench_local(|| {
        pool.in_place_scope(|scope| {
            scope.spawn(|_| {
                black_box(1);
            });
        })
    });
}

/// For comparison: starting and joining a scoped thread per product
/// (`std::thread::scope` spawning an empty closure), what the kept-alive pool replaces.
#[divan::bench(sample_count = 500)]
fn scoped_thread_start_and_join() {
    std::thread::scope(|scope| {
        scope.spawn(|| black_box(1));
    });
}
