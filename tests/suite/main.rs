//! The crate's integration tests, one module per subject, built as one test binary (every
//! binary would compile its own copy of the crate's generic code; see "Layers" in
//! docs/architecture.md). `cargo test --release --test suite gemm::` runs one module.
//!
//! `tests/allocations.rs`, `tests/threads.rs` and `tests/importance_weighted.rs` stay
//! binaries of their own: they install a global allocator or set the process's thread
//! count.

mod common;

// The Table 1 and leaderboard runners are programs (examples/table1, examples/leaderboard),
// not library API; their tests compile the runners' modules, these two once for both.
#[path = "../../examples/common/cli.rs"]
#[allow(dead_code)] // the runners use only a part of it
mod cli;
#[path = "../../examples/table1/cells.rs"]
mod table1_cells;

mod checkpoint_layout;
mod data;
mod data_parallel;
mod empty_batch;
mod estimators_after_paper;
mod estimators_bernoulli;
mod estimators_conditional;
mod estimators_density;
mod estimators_injected;
mod estimators_relaxed;
mod estimators_resume;
mod estimators_score;
mod estimators_statistics;
mod estimators_tuning_interval;
mod example_binary;
mod examples_cli;
mod examples_cli_arguments;
mod gemm;
mod hyperparameters;
mod io;
mod io_output;
mod kernels_finite;
mod leaderboard;
mod nn;
mod ops_compositions;
mod ops_errors;
mod ops_fused;
mod ops_gradcheck;
mod ops_properties;
mod optim;
mod same_bits;
mod sample_summary;
mod sbn;
mod sbn_resume;
mod semi_supervised;
mod sizes;
mod splits;
mod step_counter;
mod table1;
mod tape;
mod train_smoke;
mod tutorial;
mod vae;
