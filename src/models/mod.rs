//! Models built from the layers below: the categorical and Bernoulli VAEs of the paper
//! (§4.2) and the loop that trains them, with checkpoints that resume bit for bit.

pub mod discrete_vae;
pub mod seeds;
pub mod training;

pub use discrete_vae::{DiscreteVae, EvalMode, Latent, VaeConfig, VaeTerms};
pub use training::{TrainConfig, Trainer};
