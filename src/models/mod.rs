//! Models built from the layers below: the categorical VAE of the paper (§4.2) and
//! the loop that trains it with checkpoints that resume bit for bit.

pub mod categorical_vae;
pub mod seeds;
pub mod training;

pub use categorical_vae::{CategoricalVae, EvalMode, VaeConfig, VaeTerms};
pub use training::{TrainConfig, Trainer};
