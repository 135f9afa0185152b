//! Kernels: raw loops over slices, the lowest layer of the crate.
//!
//! Nothing here knows about tensors or tapes; every function takes plain slices and
//! dimensions. Keeping the loops here, away from the ops, lets them be optimised (and
//! tested against plain scalar references) without touching the maths above.

pub(crate) mod adam;
pub mod bce;
pub mod finite;
pub mod gemm;
pub mod matmul;
pub(crate) mod per_isa;
pub mod softmax;
pub mod threads;

pub use threads::{default_num_threads, num_threads, set_num_threads};
