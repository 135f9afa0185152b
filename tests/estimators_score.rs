//! Statistical and gradient checks of the score-function family (REINFORCE and its
//! baselines, NVIL, MuProp, DARN, VIMCO, REBAR, RELAX) against exact gradients.
//!
//! Every test uses a fixed seed, and every tolerance is derived from the estimator's own
//! standard error: `|mean - exact| < 4 SE` (a fair estimator fails this with
//! probability about 6e-5 per check).

use gumbelgrad::estimators::GradientEstimator;
use gumbelgrad::estimators::score::{self, Baseline, Reinforce};
use gumbelgrad::{Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// How many standard errors a fair estimate may miss by.
const Z: f64 = 4.0;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Mean and standard error of the mean.
fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

fn sample_variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

/// The REBAR/RELAX toy (paper-notes §4.4): `b ~ Bernoulli(sigmoid(phi))`, cost
/// `(b - t)^2`. The Bernoulli is run as a K = 2 categorical with logits `[0, phi]`,
/// whose one-hot sample is `[1 - b, b]`; the estimate for `phi` is the second logit's
/// gradient.
struct Toy {
    phi: f64,
    target: f64,
}

impl Toy {
    fn theta(&self) -> f64 {
        sigmoid(self.phi)
    }
    /// dL/dphi = (1 - 2t) theta (1 - theta).
    fn exact(&self) -> f64 {
        let theta = self.theta();
        (1.0 - 2.0 * self.target) * theta * (1.0 - theta)
    }

    /// Per-example single-sample estimates of dL/dphi from `calls` calls of `batch`
    /// examples each; `scale` reads the factor that makes the call's estimate unbiased
    /// (NVIL's variance normaliser), 1 for the others.
    fn estimates<E: GradientEstimator<f64>>(
        &self,
        estimator: &mut E,
        calls: usize,
        batch: usize,
        seed: u64,
        scale: impl Fn(&E) -> f64,
    ) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(calls * batch);
        for _ in 0..calls {
            let tape = Tape::<f64>::new();
            let logits =
                tape.variable(&Tensor::from_vec(batch, 2, [0.0, self.phi].repeat(batch)).unwrap());
            let pick = tape.constant(&Tensor::from_vec(2, 1, vec![0.0, 1.0]).unwrap());
            let target = self.target;
            let estimate = estimator.estimate(
                logits,
                2,
                &mut |z| (z.matmul(pick) - target).square(),
                &mut rng,
            );
            tape.backward(estimate.loss).unwrap();
            let factor = scale(estimator) * batch as f64;
            let grad = logits.grad().unwrap();
            for row in 0..batch {
                // The two logits' gradients are opposite: only their difference matters.
                assert!((grad.get(row, 0) + grad.get(row, 1)).abs() < 1e-9);
                out.push(grad.get(row, 1) * factor);
            }
        }
        out
    }
}

fn toys() -> [Toy; 3] {
    [
        Toy {
            phi: 0.0,
            target: 0.45,
        },
        Toy {
            phi: 0.0,
            target: 0.499,
        },
        Toy {
            phi: 0.8,
            target: 0.45,
        },
    ]
}

fn assert_unbiased(name: &str, values: &[f64], exact: f64) {
    let (mean, se) = mean_and_se(values);
    assert!(
        (mean - exact).abs() < Z * se.max(1e-12),
        "{name}: mean {mean} vs exact {exact}, standard error {se}"
    );
}

#[test]
fn toy_exact_values_match_the_notes() {
    let toy = Toy {
        phi: 0.0,
        target: 0.45,
    };
    assert!((toy.exact() - 0.025).abs() < 1e-15);
    let toy = Toy {
        phi: 0.0,
        target: 0.499,
    };
    assert!((toy.exact() - 0.0005).abs() < 1e-15);
}

#[test]
fn reinforce_with_every_baseline_is_unbiased_on_the_toy() {
    for (index, toy) in toys().iter().enumerate() {
        let seed = 100 + index as u64;
        let mut plain = Reinforce::new(Baseline::None);
        assert_unbiased(
            "reinforce",
            &toy.estimates(&mut plain, 40, 500, seed, |_| 1.0),
            toy.exact(),
        );
        let mut ema = Reinforce::new(Baseline::MovingAverage { decay: 0.8 });
        assert_unbiased(
            "reinforce-ema",
            &toy.estimates(&mut ema, 40, 500, seed, |_| 1.0),
            toy.exact(),
        );
        let mut normalised =
            Reinforce::new(Baseline::MovingAverage { decay: 0.8 }).with_variance_normalisation(0.8);
        assert_unbiased(
            "reinforce-ema-normalised",
            &toy.estimates(&mut normalised, 40, 500, seed, Reinforce::last_scale),
            toy.exact(),
        );
        let mut learned = Reinforce::new(Baseline::Learned {
            decay: 0.8,
            hidden: 8,
            learning_rate: 0.01,
        });
        assert_unbiased(
            "reinforce-learned",
            &toy.estimates(&mut learned, 40, 500, seed, |_| 1.0),
            toy.exact(),
        );
        let mut nvil = Reinforce::nvil();
        assert_unbiased(
            "nvil",
            &toy.estimates(&mut nvil, 40, 500, seed, Reinforce::last_scale),
            toy.exact(),
        );
    }
}

/// Plain REINFORCE on the toy takes two values: `(1-t)^2 (1-theta)` when b = 1
/// (probability theta) and `-t^2 theta` when b = 0. Its exact variance is
/// `E[g^2] - E[g]^2` with `E[g^2] = theta (1-theta)^2 (1-t)^4 + (1-theta) theta^2 t^4`,
/// and the standard error of a sample variance is
/// `sqrt((mu4 - sigma^4 (n-3)/(n-1)) / n)`.
#[test]
fn plain_reinforce_variance_matches_the_exact_variance() {
    for (index, toy) in toys().iter().enumerate() {
        let (theta, t) = (toy.theta(), toy.target);
        let second = theta * (1.0 - theta).powi(2) * (1.0 - t).powi(4)
            + (1.0 - theta) * theta.powi(2) * t.powi(4);
        let mean = toy.exact();
        let variance = second - mean * mean;
        let (high, low) = ((1.0 - t).powi(2) * (1.0 - theta), -t * t * theta);
        let fourth = theta * (high - mean).powi(4) + (1.0 - theta) * (low - mean).powi(4);
        let values = toy.estimates(
            &mut Reinforce::new(Baseline::None),
            40,
            500,
            200 + index as u64,
            |_| 1.0,
        );
        let n = values.len() as f64;
        // Exact variance of the unbiased sample variance of n i.i.d. draws.
        let se = ((fourth - variance * variance * (n - 3.0) / (n - 1.0)) / n).sqrt();
        let measured = sample_variance(&values);
        assert!(
            (measured - variance).abs() < Z * se,
            "variance {measured} vs exact {variance} (SE {se})"
        );
        if index == 0 {
            assert!(
                (second - 0.0165640625).abs() < 1e-15 && (variance - 0.0159390625).abs() < 1e-15
            );
        }
    }
}

/// At theta = 1/2 a moving average that has settled at E[f] makes the toy's estimate
/// nearly constant: the baseline must remove most of the variance.
#[test]
fn moving_average_baseline_reduces_variance() {
    let toy = Toy {
        phi: 0.0,
        target: 0.45,
    };
    let plain =
        sample_variance(&toy.estimates(&mut Reinforce::new(Baseline::None), 40, 500, 7, |_| 1.0));
    let values = toy.estimates(
        &mut Reinforce::new(Baseline::MovingAverage { decay: 0.8 }),
        40,
        500,
        7,
        |_| 1.0,
    );
    // Skip the first calls, while the average warms up from 0.
    let settled = sample_variance(&values[10 * 500..]);
    assert!(
        settled < plain / 10.0,
        "baseline variance {settled} vs plain {plain}"
    );
}

/// The score node's backward equals the gradient of `signal * log q(z)`, and `log q`
/// itself matches finite differences (f64 gradcheck over random shapes).
mod score_node {
    use super::*;
    use gumbelgrad::testing::{config, grouped_shape, tensor_of_shape};
    use gumbelgrad::{GradcheckOptions, Shape, gradcheck};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(24))]

        #[test]
        fn log_prob_gradchecks(
            (logits, sample, group) in grouped_shape(1..=3, 4).prop_flat_map(|(rows, groups, k)| {
                let shape = Shape::new(rows, groups * k);
                let samples = Shape::new(rows * 2, groups * k);
                (tensor_of_shape(shape, -3.0..3.0), tensor_of_shape(samples, 0.0..1.0), Just(k))
            })
        ) {
            let report = gradcheck(&[logits], GradcheckOptions::default(), |tape, vars| {
                score::log_prob(vars[0], tape.constant(&sample), group)
            }).unwrap();
            prop_assert!(report.max_rel_error < 1e-8, "{report:?}");
        }

        #[test]
        fn score_node_backward_is_signal_times_score(
            (logits, sample, signal, group) in grouped_shape(1..=3, 4).prop_flat_map(|(rows, groups, k)| {
                (
                    tensor_of_shape(Shape::new(rows, groups * k), -3.0..3.0),
                    tensor_of_shape(Shape::new(rows * 3, groups * k), 0.0..1.0),
                    tensor_of_shape(Shape::new(rows * 3, 1), -2.0..2.0),
                    Just(k),
                )
            })
        ) {
            let tape = Tape::<f64>::new();
            let l = tape.variable(&logits);
            let (z, s) = (tape.constant(&sample), tape.constant(&signal));
            let term = score::score_function_term(l, z, s, group);
            prop_assert!(term.value().unwrap().as_slice().iter().all(|&v| v == 0.0));
            tape.backward(term.sum()).unwrap();
            let from_node = l.grad().unwrap();
            let reference = Tape::<f64>::new();
            let l2 = reference.variable(&logits);
            let lp = score::log_prob(l2, reference.constant(&sample), group);
            reference.backward((lp * reference.constant(&signal)).sum()).unwrap();
            prop_assert!(from_node.max_abs_diff(&l2.grad().unwrap()).unwrap() < 1e-12);
        }
    }
}

#[test]
fn bad_group_size_and_bad_cost_shape_are_typed_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::zeros(2, 3));
    let estimate =
        Reinforce::new(Baseline::None).estimate(logits, 2, &mut |z| z.sum_cols(), &mut rng);
    assert!(estimate.loss.is_poisoned());
    let message = tape.error().unwrap().to_string();
    assert!(
        message.contains("reinforce") && message.contains("group size 2"),
        "{message}"
    );

    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::zeros(2, 3));
    let estimate = Reinforce::new(Baseline::None).estimate(logits, 3, &mut |z| z * 2.0, &mut rng);
    assert!(estimate.loss.is_poisoned());
    let message = tape.error().unwrap().to_string();
    assert!(
        message.contains("[2, 3]") && message.contains("[2, 1]"),
        "{message}"
    );
}
