//! # gumbelgrad
//!
//! Gradients through discrete random choices, on a CPU, in plain Rust. gumbelgrad is a
//! tape-based reverse-mode autodiff engine whose graph nodes include the gradient
//! estimators for discrete latent variables: the Gumbel-Softmax relaxation of Jang, Gu
//! and Poole (ICLR 2017) and the estimators it is compared with. It is for learning and
//! teaching how these estimators work (each keeps its formula beside its forward and
//! backward pass, and the tests check each one against the exact gradient by
//! enumeration), for training categorical VAEs without Python, and for property-testing
//! gradients.
//!
//! ## Gumbel-Softmax
//!
//! A categorical variable with class probabilities `pi_1, ..., pi_K` is sampled exactly by
//! `argmax_i (log pi_i + g_i)` with `g_i = -log(-log u_i)`, `u_i ~ Uniform(0, 1)` (Gumbel
//! noise). Replacing the argmax by a softmax at temperature `tau > 0` gives a sample on the
//! simplex that is differentiable in `pi`:
//!
//! ```text
//! y_i = exp((log pi_i + g_i) / tau) / sum_j exp((log pi_j + g_j) / tau)
//! ```
//!
//! As `tau -> 0` the samples become one-hot and their distribution that of the
//! categorical; at larger `tau` they are smoother and their gradients less noisy. The
//! straight-through variant uses the one-hot `argmax` forward and this `y`'s gradient
//! backward. See [`mod@estimators::gumbel_softmax`].
//!
//! ## An estimator against the exact gradient
//!
//! The gradient of `E[f(z)]` for one variable of 3 classes and the linear cost
//! `f(z) = 1 z_1 + 4 z_2 + 9 z_3`: 4,000 Gumbel-Softmax samples at `tau = 0.5`, averaged,
//! beside the exact gradient by enumeration. Each row of `logits` is one example, and the
//! gradient of `estimate.loss` (the mean cost) is the per-example estimates' mean.
//!
//! ```
//! use gumbelgrad::estimators::{GradientEstimator, GumbelSoftmaxEstimator, exact};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let (rows, x, w) = (4000, [0.5, -1.0, 2.0], [1.0, 4.0, 9.0]);
//! let tape = Tape::<f64>::new();
//! let logits = tape.variable(&Tensor::from_vec(rows, 3, x.repeat(rows))?);
//! let weights = tape.constant(&Tensor::from_vec(3, 1, w.to_vec())?);
//!
//! let mut estimator = GumbelSoftmaxEstimator::new(0.5)?;
//! let estimate = estimator.estimate(logits, 3, &mut |z| z.matmul(weights), &mut rng);
//! tape.backward(estimate.loss)?;
//! let grad = logits.grad().unwrap();
//! let mut mean = [0.0; 3];
//! for row in grad.as_slice().chunks(3) {
//!     for (m, g) in mean.iter_mut().zip(row) {
//!         *m += g; // the loss is a mean over rows, so the rows' gradients sum to the mean estimate
//!     }
//! }
//!
//! let truth = exact::categorical(&x, 3, |z| w[0] * z[0] + w[1] * z[1] + w[2] * z[2])?;
//! for (estimated, exact) in mean.iter().zip(&truth.gradient) {
//!     // About [-1.09, -0.14, 1.23] against [-1.12, -0.13, 1.26]: close, though
//!     // Gumbel-Softmax is biased for any tau > 0.
//!     assert!((estimated - exact).abs() < 0.1, "{mean:?} against {:?}", truth.gradient);
//! }
//! # Ok::<(), gumbelgrad::Error>(())
//! ```
//!
//! Every estimator implements [`estimators::GradientEstimator`]; swapping one for another
//! changes one line. `cargo run --release --example estimator_lab` measures every
//! estimator's bias and standard deviation against the exact gradient.
//!
//! ## Layers
//!
//! Each layer uses only the ones below it:
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | kernels | [`kernels`] | raw loops over slices: matrix products (AVX-512, AVX2, portable), grouped softmax, finiteness checks |
//! | tensor | [`Tensor`], [`Float`] | dense row-major 2-D arrays of `f32` / `f64` |
//! | tape and ops | [`Tape`], [`Var`], [`Op`], [`ops`] | recording operations and differentiating them; each op's forward and backward side by side |
//! | estimators | [`estimators`], [`estimators::score`] | Gumbel-Softmax, straight-through, binary Concrete, the score-function family, exact enumeration |
//! | nn and optim | [`nn`], [`optim`] | linear layers, MLPs, initialisers; Adam, SGD, clipping, schedules |
//! | models | [`models`] | the categorical and Bernoulli VAEs, the stochastic binary network, the semi-supervised M2, their training loops |
//! | data | [`data`] | MNIST (IDX) and binarised MNIST (`.amat`) readers, minibatches, binarisation, built-in synthetic digits |
//! | io | [`io`] | atomic writes, safetensors checkpoints, PNG image grids and plots, a progress bar |
//!
//! Beside the stack: [`Error`] (every failure is a typed error), [`gradcheck()`] (finite
//! differences against the tape) and, with the default `testing` feature, `testing`
//! (proptest strategies).
//!
//! ## Papers
//!
//! The estimators the crate implements, with the paper each one comes from:
//!
//! | estimator | paper |
//! |---|---|
//! | Gumbel-Softmax, straight-through Gumbel-Softmax | Jang, Gu and Poole 2017, *Categorical Reparameterization with Gumbel-Softmax*, [arXiv 1611.01144](https://arxiv.org/abs/1611.01144) |
//! | Concrete, binary Concrete (relaxed Bernoulli), ExpConcrete densities | Maddison, Mnih and Teh 2017, *The Concrete Distribution*, [arXiv 1611.00712](https://arxiv.org/abs/1611.00712) |
//! | REINFORCE (score function) | Williams 1992, *Simple statistical gradient-following algorithms for connectionist reinforcement learning*, Machine Learning 8 |
//! | NVIL (baselines, variance normalisation) | Mnih and Gregor 2014, *Neural Variational Inference and Learning in Belief Networks*, [arXiv 1402.0030](https://arxiv.org/abs/1402.0030) |
//! | MuProp | Gu, Levine, Sutskever and Mnih 2016, [arXiv 1511.05176](https://arxiv.org/abs/1511.05176) |
//! | DARN | Gregor, Danihelka, Mnih, Blundell and Wierstra 2014, *Deep AutoRegressive Networks*, [arXiv 1310.8499](https://arxiv.org/abs/1310.8499) |
//! | VIMCO | Mnih and Rezende 2016, *Variational inference for Monte Carlo objectives*, [arXiv 1602.06725](https://arxiv.org/abs/1602.06725) |
//! | REBAR | Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein 2017, [arXiv 1703.07370](https://arxiv.org/abs/1703.07370) |
//! | RELAX | Grathwohl, Choi, Wu, Roeder and Duvenaud 2018, [arXiv 1711.00123](https://arxiv.org/abs/1711.00123) |
//! | straight-through | Bengio, Léonard and Courville 2013, [arXiv 1308.3432](https://arxiv.org/abs/1308.3432) |
//! | slope-annealed straight-through | Chung, Ahn and Bengio 2017, *Hierarchical Multiscale Recurrent Neural Networks*, [arXiv 1609.01704](https://arxiv.org/abs/1609.01704) |
//!
//! And the models: the semi-supervised M2 of Kingma, Rezende, Mohamed and Welling 2014
//! ([arXiv 1406.5298](https://arxiv.org/abs/1406.5298), [`models::semi_supervised`]) and the
//! sigmoid belief network of Neal 1992 (*Connectionist learning of belief networks*,
//! Artificial Intelligence 56), whose two-layer form is the stochastic binary network of
//! [`models::sbn`].
//!
//! The repository's `docs/` folder has the reference pages: the architecture, every
//! estimator's formula, bias and variance, the VAE, results against the paper, speed,
//! and how each estimator maps to PyTorch, JAX/TFP and Pyro.

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
