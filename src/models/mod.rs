//! Models built from the layers below: the categorical and Bernoulli VAEs of the paper
//! (§4.2), the stochastic binary network of §4.1, the loops that train them (the VAE's
//! with checkpoints that resume bit for bit), and the semi-supervised M2 model of §4.3.

mod data_parallel;
pub mod discrete_vae;
mod importance_weighted;
pub mod sbn;
pub mod sbn_training;
pub mod seeds;
pub mod semi_supervised;
pub mod training;

pub use discrete_vae::{DiscreteVae, EvalMode, Latent, VaeConfig, VaeTerms};
pub use sbn::{Sbn, SbnConfig, SbnTerms, split_halves};
pub use sbn_training::{SbnTrainConfig, SbnTrainer};
pub use semi_supervised::{
    SemiSupervisedConfig, SemiSupervisedTrainer, SemiSupervisedVae, UnlabelledObjective,
};
pub use training::{
    DESCRIPTION_KEY, ResumeOptions, TrainConfig, Trainer, read_estimator_state,
    write_estimator_state,
};
