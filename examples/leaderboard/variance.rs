//! The variance of an estimator's gradient with respect to the encoder, at a fixed
//! model: the quantity the DisARM (Dong, Mnih and Tucker 2020, arXiv 2006.10680) and
//! ReinMax (Liu et al. 2023, arXiv 2304.08612) papers compare estimators by.
//!
//! Given a model that is not updated and a fixed minibatch of images:
//!
//! 1. the estimator warms up its own state (running baselines, a tuned temperature, a
//!    learned surrogate) with `W` estimates whose gradients are thrown away;
//! 2. it then draws `S` estimates `g_1..g_S` of the gradient of the minibatch's mean
//!    negative ELBO with respect to the encoder's parameters (those named
//!    `encoder.*`), each multiplied by the estimator's
//!    [`signal_scale`](gumbelgrad::estimators::GradientEstimator::signal_scale) (so the
//!    variance-normalised estimators, which return `gradient / s`, are measured on the
//!    gradient's own scale);
//! 3. the result is the mean over encoder coordinates `j` of the sample variance
//!    `1/(S-1) sum_s (g_sj - mean_j)^2`.
//!
//! Two estimators are measured on another scale, as they train: `muprop-nvil` divides
//! only its score term by `s` (its `signal_scale` is 1; the estimate is biased), and
//! `vimco-bound` estimates the gradient of the `m`-sample bound, not of the ELBO.
//!
//! Draw `i` (warm-up draws first) takes its noise from
//! `rng_for(seed, Stream::Eval, VARIANCE_STREAM + i)`, so the figure is a function of
//! the model, the images, `W`, `S` and the seed.

use gumbelgrad::Tape;
use gumbelgrad::error::{Error, Result};
use gumbelgrad::estimators::GradientEstimator;
use gumbelgrad::models::DiscreteVae;
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::tensor::Tensor;

/// The first index of the evaluation streams the variance draws use (far from the
/// test (0) and validation (1) evaluations' streams).
pub const VARIANCE_STREAM: u64 = 1 << 32;

/// How the gradient variance is measured: `W`, `S` and the number of images of the
/// fixed minibatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarianceSetup {
    /// `W`: estimates that only warm up the estimator's state.
    pub warmup: usize,
    /// `S`: estimates the variance is computed from (at least 2).
    pub samples: usize,
    /// Images of the fixed minibatch (the first ones of the training set).
    pub batch: usize,
}

/// The mean over the encoder's coordinates of the sample variance of `S` gradient
/// estimates, after `W` warm-up estimates (see the module doc). `images` is the fixed
/// minibatch `[batch, D]`; `model` is not changed, `estimator` keeps the state it
/// accumulated. Fewer than 2 samples, or a model without `encoder.*` parameters, is an
/// [`Error::InvalidArgument`]; a non-finite gradient an error naming the estimator.
pub fn encoder_gradient_variance(
    model: &DiscreteVae<f32>,
    estimator: &mut dyn GradientEstimator<f32>,
    images: &Tensor<f32>,
    setup: &VarianceSetup,
    seed: u64,
) -> Result<f64> {
    if setup.samples < 2 {
        return Err(Error::invalid_argument(
            "encoder_gradient_variance",
            format!(
                "a sample variance needs at least 2 samples, got {}",
                setup.samples
            ),
        ));
    }
    let encoder: Vec<_> = model
        .parameters()
        .names()
        .filter(|name| name.starts_with("encoder."))
        .filter_map(|name| model.parameters().id(name))
        .collect();
    if encoder.is_empty() {
        return Err(Error::invalid_argument(
            "encoder_gradient_variance",
            "the model has no encoder.* parameters",
        ));
    }
    let width: usize = encoder
        .iter()
        .map(|&id| model.parameters().get(id).len())
        .sum();
    // Welford's running mean and sum of squared deviations, per coordinate, in f64.
    let mut mean = vec![0.0f64; width];
    let mut squares = vec![0.0f64; width];
    let mut tape = Tape::new();
    for draw in 0..setup.warmup + setup.samples {
        tape.clear();
        let params = model.parameters().bind(&tape);
        let x = tape.constant(images);
        let mut rng = rng_for(seed, Stream::Eval, VARIANCE_STREAM + draw as u64);
        let terms = model.negative_elbo(&params, x, estimator, &mut rng);
        tape.backward(terms.loss)?;
        if draw < setup.warmup {
            continue;
        }
        let grads = params.gradients();
        let scale = estimator.signal_scale();
        let n = (draw - setup.warmup + 1) as f64;
        let mut j = 0;
        for &id in &encoder {
            for &g in grads.get(id).as_slice() {
                let g = f64::from(g) * scale;
                if !g.is_finite() {
                    return Err(Error::invalid_argument(
                        "encoder_gradient_variance",
                        format!("{}: a gradient coordinate is {g}", estimator.name()),
                    ));
                }
                let delta = g - mean[j];
                mean[j] += delta / n;
                squares[j] += delta * (g - mean[j]);
                j += 1;
            }
        }
    }
    let per_coordinate = squares.iter().map(|s| s / (setup.samples - 1) as f64);
    Ok(per_coordinate.sum::<f64>() / width as f64)
}
