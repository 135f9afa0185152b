//! Every estimator on a batch of 0 rows: a loss of 0 with an empty sample and an empty
//! cost, never a panic or a NaN. An empty batch is a valid degenerate input (the last,
//! empty slice of a data set, say); the relaxed estimators always treated it so, and the
//! score-function family does the same.

use gumbelgrad::estimators::score::{ArmEstimator, Rloo};
use gumbelgrad::estimators::{
    ESTIMATOR_NAMES, Estimator, GappedSt, GradientEstimator, GumbelRao, LatentKinds, ReinMax,
};
use gumbelgrad::{Float, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Runs `estimator` on `[0, cols]` logits with group size `group_size`: the estimate
/// must have a loss of exactly 0, a `[0, cols]` sample, a `[0, 1]` cost, and a backward
/// pass giving a `[0, cols]` gradient.
fn check_empty<T: Float>(
    label: &str,
    estimator: &mut dyn GradientEstimator<T>,
    group_size: usize,
    cols: usize,
) {
    let mut rng = StdRng::seed_from_u64(7);
    let tape = Tape::<T>::new();
    let logits = tape.variable(&Tensor::zeros(0, cols));
    let target = tape.constant(
        &Tensor::from_vec(
            1,
            cols,
            (0..cols).map(|i| T::from_f64(i as f64 * 0.1)).collect(),
        )
        .unwrap(),
    );
    let estimate = estimator.estimate(
        logits,
        group_size,
        &mut |z| (z * target).sum_cols(),
        &mut rng,
    );
    let loss = estimate
        .loss
        .value()
        .unwrap_or_else(|e| panic!("{label} in {}: {e}", T::NAME));
    assert_eq!(loss.shape(), gumbelgrad::Shape::new(1, 1), "{label}");
    assert_eq!(
        loss.as_slice()[0].to_f64(),
        0.0,
        "{label} in {}: loss",
        T::NAME
    );
    let sample = estimate.sample.value().unwrap();
    assert_eq!(
        sample.shape(),
        gumbelgrad::Shape::new(0, cols),
        "{label}: sample"
    );
    let cost = estimate.cost.value().unwrap();
    assert_eq!(cost.shape(), gumbelgrad::Shape::new(0, 1), "{label}: cost");
    tape.backward(estimate.loss)
        .unwrap_or_else(|e| panic!("{label} in {}: backward {e}", T::NAME));
    if let Some(grad) = logits.grad() {
        assert_eq!(
            grad.shape(),
            gumbelgrad::Shape::new(0, cols),
            "{label}: gradient"
        );
    }
}

fn layouts(kinds: LatentKinds) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if kinds.categorical {
        out.push((4, 8));
        out.push((2, 2));
    }
    if kinds.binary {
        out.push((1, 5));
    }
    out
}

fn every_name<T: Float>() {
    for &name in ESTIMATOR_NAMES {
        let probe = Estimator::<T>::from_name(name, 0.5).unwrap();
        for (group_size, cols) in layouts(probe.latent_kinds()) {
            let mut estimator = Estimator::<T>::from_name(name, 0.5).unwrap();
            check_empty::<T>(name, &mut estimator, group_size, cols);
            // A second call, after the first updated any baseline or surrogate state.
            check_empty::<T>(name, &mut estimator, group_size, cols);
        }
    }
}

fn newer_estimators<T: Float>() {
    let mut estimators: Vec<Box<dyn GradientEstimator<T>>> = vec![
        Box::new(Rloo::new(3).unwrap()),
        Box::new(ArmEstimator::arm()),
        Box::new(ArmEstimator::disarm()),
        Box::new(GumbelRao::new(0.5, 4).unwrap()),
        Box::new(ReinMax::new(1.0).unwrap()),
        Box::new(GappedSt::new(1.0, 1.0).unwrap()),
    ];
    for estimator in &mut estimators {
        let name = estimator.name();
        for (group_size, cols) in layouts(estimator.latent_kinds()) {
            check_empty::<T>(name, estimator.as_mut(), group_size, cols);
            check_empty::<T>(name, estimator.as_mut(), group_size, cols);
        }
    }
}

#[test]
fn every_named_estimator_gives_a_zero_loss_on_an_empty_batch_f32() {
    every_name::<f32>();
}

#[test]
fn every_named_estimator_gives_a_zero_loss_on_an_empty_batch_f64() {
    every_name::<f64>();
}

#[test]
fn newer_estimators_give_a_zero_loss_on_an_empty_batch() {
    newer_estimators::<f32>();
    newer_estimators::<f64>();
}
