//! # gumbelgrad
//!
//! A small, tape-based reverse-mode autodiff engine built around *discrete latent
//! variables*: the Gumbel-Softmax relaxation of Jang, Gu and Poole (ICLR 2017) and the
//! gradient estimators it is compared with, as first-class graph nodes.
//!
//! The crate is layered, each layer using only the ones below it:
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | kernels | [`kernels`] | raw loops over slices (matrix products, ...) |
//! | tensor | [`Tensor`], [`Float`] | dense row-major 2-D arrays of `f32`/`f64` |
//! | tape and ops | [`Tape`], [`Var`], [`Op`], [`ops`] | recording and differentiating |
//! | checking | [`gradcheck()`], `testing` | finite differences, proptest strategies |
//!
//! ```
//! use gumbelgrad::{Tape, Tensor};
//!
//! let tape = Tape::<f64>::new();
//! let w = tape.variable(&Tensor::from_vec(2, 1, vec![0.5, -0.25])?);
//! let x = tape.constant(&Tensor::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?);
//! let loss = x.matmul(w).mean(); // mean of x w
//! tape.backward(loss)?;
//! // d mean(x w) / d w = mean of the rows of x
//! assert_eq!(w.grad().unwrap().as_slice(), &[3.0, 4.0]);
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod estimators;
pub mod float;
pub mod gradcheck;
pub mod io;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod op;
pub mod ops;
pub mod optim;
pub mod tape;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result, check_temperature, check_temperature_for, temperature_range};
pub use float::Float;
pub use gradcheck::{GradcheckOptions, GradcheckReport, Mismatch, gradcheck};
pub use op::Op;
pub use tape::{Tape, Var};
pub use tensor::{Shape, Tensor};

/// The code blocks of README.md, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
