//! Gradient estimators for discrete latent variables, as graph nodes.
//!
//! Every estimator answers the same question: given the logits of a categorical (or
//! Bernoulli) distribution `q(z)` and a downstream per-example cost `f(z)`, produce a
//! scalar whose gradient with respect to the logits estimates
//! `d/d logits E_{z~q}[f(z)]`. They differ in how: by relaxing `z` (Gumbel-Softmax),
//! by pretending the sample is its mean in the backward pass (straight-through), or by
//! the score function `f(z) d log q(z)` with variance-reducing baselines.
//!
//! All of them implement [`GradientEstimator`]; the [`Estimator`] enum picks one by
//! value, so switching estimator in a model is changing one argument.

pub mod score;

use rand::RngCore;

use crate::float::Float;
use crate::tape::Var;

/// What an estimator hands back to the model.
#[derive(Debug, Clone, Copy)]
pub struct Estimate<'t, T: Float> {
    /// The latent sample the cost was evaluated at, `[batch, N*K]`: one-hot for hard
    /// samples, a point of the simplex for relaxed ones.
    pub sample: Var<'t, T>,
    /// The per-example cost at that sample, `[batch, 1]`.
    pub cost: Var<'t, T>,
    /// The scalar to backpropagate. Its *value* is `mean(cost)`; its *gradient* with
    /// respect to the logits is this estimator's estimate of
    /// `d/d logits mean_b E[f_b(z_b)]`, and with respect to the cost's own parameters
    /// (a decoder, say) their ordinary gradient at the sample.
    pub loss: Var<'t, T>,
}

/// The interface every estimator implements.
///
/// `cost` maps a latent sample `[batch, N*K]` to per-example costs `[batch, 1]`,
/// built on the same tape. Estimators that need the cost at several points (MuProp,
/// DARN, REBAR, RELAX) call it several times; the others call it once.
pub trait GradientEstimator<T: Float> {
    /// Short name for tables, e.g. `"gumbel-softmax"`.
    fn name(&self) -> &'static str;

    /// What theory says: is `E[gradient]` the exact gradient of `E[f(z)]`?
    fn is_unbiased(&self) -> bool;

    /// Samples a latent from `logits` (groups of `group_size` consecutive columns are
    /// one categorical variable), evaluates `cost`, and returns the [`Estimate`].
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T>;
}
