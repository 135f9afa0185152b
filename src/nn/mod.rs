//! Neural-network building blocks: parameters, initialisation, layers, MLPs.
//!
//! # How parameters meet the tape
//!
//! A tape lives for one training step, but a model's weights live for the whole run.
//! So parameters are kept **outside** the tape, in a [`Parameters`] store that owns
//! one named [`Tensor`](crate::Tensor) per weight matrix and bias row. Each step:
//!
//! 1. `let bound = params.bind(&tape);` feeds every parameter into the tape as a
//!    variable (a leaf that wants a gradient) and gives back their [`Var`](crate::Var)s;
//! 2. the model runs its forward pass, each layer looking its weights up in `bound`
//!    by the [`ParamId`] it got when it registered them;
//! 3. `tape.backward(loss)?` computes every gradient;
//! 4. `let grads = bound.gradients();` copies them out, in the store's order;
//! 5. an optimizer ([`crate::optim`]) updates the store in place from `grads`.
//!
//! ```
//! use gumbelgrad::nn::{Activation, Mlp, Parameters};
//! use gumbelgrad::optim::{Adam, Optimizer};
//! use gumbelgrad::{Tape, Tensor};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut params = Parameters::<f32>::new();
//! let mlp = Mlp::new(&mut params, "net", &[2, 8, 1], Activation::Tanh, &mut rng)?;
//! let mut adam = Adam::new(1e-2);
//! let x = Tensor::from_vec(4, 2, vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])?;
//! let y = Tensor::from_vec(4, 1, vec![0.0, 1.0, 1.0, 0.0])?;
//! let mut tape = Tape::new();
//! let mut losses = Vec::new();
//! for _ in 0..300 {
//!     tape.clear();
//!     let bound = params.bind(&tape);
//!     let error = mlp.forward(&bound, tape.constant(&x)) - tape.constant(&y);
//!     let loss = error.square().mean();
//!     tape.backward(loss)?;
//!     losses.push(loss.scalar()?);
//!     let grads = bound.gradients();
//!     adam.step(&mut params, &grads)?;
//! }
//! assert!(losses[299] < 0.1 * losses[0]); // it learns XOR
//! assert_eq!(params.names().next(), Some("net.0.weight"));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

pub mod activation;
pub mod init;
pub mod linear;
pub mod mlp;
pub mod params;

pub use activation::Activation;
pub use init::Init;
pub use linear::Linear;
pub use mlp::Mlp;
pub use params::{BoundParameters, Gradients, ParamId, Parameters};
