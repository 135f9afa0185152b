//! The estimators that came after the Gumbel-Softmax paper, checked against exact
//! gradients by enumeration with fixed seeds: RLOO, ARM and DisARM (unbiased: every
//! component within 4 standard errors of the exact gradient), Gumbel-Rao and ReinMax
//! (biased: their bias and variance measured against straight-through Gumbel-Softmax
//! and, where the expectation is computable, against it exactly). Tolerances come from
//! standard errors, never hand-picked.

use gumbelgrad::estimators::score::{Arm, Baseline, Reinforce, Rloo};
use gumbelgrad::estimators::{GradientEstimator, exact};
use gumbelgrad::{Tape, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The toy cost on a `[batch, D]` latent: `f(z) = tanh(<z, a>) + <z, b>^2`.
fn toy_cost<'t>(z: Var<'t, f64>, a: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
    (z * a).sum_cols().tanh() + (z * b).sum_cols().square()
}

fn toy_cost_plain(z: &[f64], a: &[f64], b: &[f64]) -> f64 {
    let za: f64 = z.iter().zip(a).map(|(x, y)| x * y).sum();
    let zb: f64 = z.iter().zip(b).map(|(x, y)| x * y).sum();
    za.tanh() + zb * zb
}

/// A toy problem: logits of one example and the cost's two weight vectors.
struct Toy {
    logits: Tensor<f64>,
    a: Tensor<f64>,
    b: Tensor<f64>,
}

impl Toy {
    fn new(columns: usize, scale: f64, rng: &mut StdRng) -> Toy {
        Toy {
            logits: Tensor::random_normal(1, columns, 0.0, scale, rng),
            a: Tensor::random_normal(1, columns, 0.0, 1.0, rng),
            b: Tensor::random_normal(1, columns, 0.0, 0.7, rng),
        }
    }

    fn cost(&self, z: &[f64]) -> f64 {
        toy_cost_plain(z, self.a.as_slice(), self.b.as_slice())
    }

    /// Exact `E[f]` and gradient: categorical groups of `group_size`, or Bernoulli
    /// units for `group_size = 1`.
    fn exact(&self, group_size: usize) -> exact::ExactExpectation {
        let f = |z: &[f64]| self.cost(z);
        if group_size == 1 {
            exact::bernoulli(self.logits.as_slice(), f).unwrap()
        } else {
            exact::categorical(self.logits.as_slice(), group_size, f).unwrap()
        }
    }

    /// `samples` independent estimates of `d E[f] / d logits`, one per row: the logits
    /// are replicated over `samples` rows and the loss is a mean, so row `i` of
    /// `samples * grad` is the `i`-th estimate.
    fn estimates(
        &self,
        estimator: &mut dyn GradientEstimator<f64>,
        group_size: usize,
        samples: usize,
        rng: &mut StdRng,
    ) -> Tensor<f64> {
        let cols = self.logits.cols();
        let batch = Tensor::from_vec(
            samples,
            cols,
            (0..samples)
                .flat_map(|_| self.logits.as_slice().iter().copied())
                .collect(),
        )
        .unwrap();
        let tape = Tape::new();
        let x = tape.variable(&batch);
        let (a, b) = (tape.constant(&self.a), tape.constant(&self.b));
        let estimate = estimator.estimate(x, group_size, &mut |z| toy_cost(z, a, b), rng);
        tape.backward(estimate.loss).unwrap();
        x.grad().unwrap().map(|g| g * samples as f64)
    }
}

/// Per-component mean and standard error of the rows, the total variance (sum of the
/// per-component variances) and its standard error.
struct Summary {
    mean: Vec<f64>,
    se: Vec<f64>,
    variance: f64,
    variance_se: f64,
}

impl Summary {
    fn of(samples: &Tensor<f64>) -> Summary {
        let (m, d) = (samples.rows(), samples.cols());
        let mut mean = vec![0.0; d];
        for r in 0..m {
            for (a, &x) in mean.iter_mut().zip(samples.row(r)) {
                *a += x / m as f64;
            }
        }
        let mut var = vec![0.0; d];
        let mut norms = Vec::with_capacity(m);
        for r in 0..m {
            let mut norm = 0.0;
            for ((v, &x), &mu) in var.iter_mut().zip(samples.row(r)).zip(&mean) {
                *v += (x - mu).powi(2) / (m - 1) as f64;
                norm += (x - mu).powi(2);
            }
            norms.push(norm);
        }
        let variance: f64 = var.iter().sum();
        let spread = norms.iter().map(|s| (s - variance).powi(2)).sum::<f64>() / (m - 1) as f64;
        Summary {
            se: var.iter().map(|v| (v / m as f64).sqrt()).collect(),
            mean,
            variance,
            variance_se: (spread / m as f64).sqrt(),
        }
    }

    /// Euclidean distance of the mean from `target`, and the standard error of that
    /// distance (at most the norm of the mean's error).
    fn bias(&self, target: &[f64]) -> (f64, f64) {
        let bias = self
            .mean
            .iter()
            .zip(target)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let se = self.se.iter().map(|s| s * s).sum::<f64>().sqrt();
        (bias, se)
    }

    /// Asserts every component of the mean is within 4 standard errors of `target`,
    /// and that the test has power: 4 standard errors are below a tenth of the
    /// largest component of `target`.
    fn assert_unbiased(&self, target: &[f64], what: &str) {
        let largest = target.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (i, ((&mean, &se), &t)) in self.mean.iter().zip(&self.se).zip(target).enumerate() {
            assert!(
                (mean - t).abs() < 4.0 * se,
                "{what}: component {i}: mean {mean:.5} vs exact {t:.5} (se {se:.5})"
            );
            assert!(
                4.0 * se < 0.1 * largest,
                "{what}: component {i}: se {se:.5} too large to test against {largest:.5}"
            );
        }
    }
}

// ---------------------------------------------------------------- RLOO

#[test]
fn rloo_is_unbiased_for_categorical_and_binary_latents() {
    for (case, (group_size, groups, m)) in [(3, 2, 2), (4, 2, 4), (1, 5, 2), (1, 4, 5)]
        .into_iter()
        .enumerate()
    {
        let mut rng = StdRng::seed_from_u64(1900 + case as u64);
        let toy = Toy::new(group_size.max(1) * groups, 1.0, &mut rng);
        let truth = toy.exact(group_size);
        let mut rloo = Rloo::new(m).unwrap();
        let grads = toy.estimates(&mut rloo, group_size, 200_000, &mut rng);
        let s = Summary::of(&grads);
        eprintln!(
            "rloo m={m} K={group_size} N={groups}: total variance {:.4} (se {:.4})",
            s.variance, s.variance_se
        );
        s.assert_unbiased(&truth.gradient, &format!("rloo m={m} K={group_size}"));
    }
}

/// More samples, less variance: RLOO with `m = 4` against plain single-sample
/// REINFORCE and against RLOO with `m = 2`, on the same toy.
#[test]
fn rloo_variance_falls_with_the_number_of_samples() {
    let mut rng = StdRng::seed_from_u64(1910);
    let toy = Toy::new(8, 1.0, &mut rng);
    let samples = 100_000;
    let mut reinforce = Reinforce::new(Baseline::None);
    let single = Summary::of(&toy.estimates(&mut reinforce, 4, samples, &mut rng));
    let two = Summary::of(&toy.estimates(&mut Rloo::new(2).unwrap(), 4, samples, &mut rng));
    let four = Summary::of(&toy.estimates(&mut Rloo::new(4).unwrap(), 4, samples, &mut rng));
    eprintln!(
        "K=4 N=2 total variance: reinforce {:.4} (se {:.4}), rloo-2 {:.4} (se {:.4}), rloo-4 {:.4} (se {:.4})",
        single.variance,
        single.variance_se,
        two.variance,
        two.variance_se,
        four.variance,
        four.variance_se
    );
    for (worse, better) in [(&single, &two), (&two, &four)] {
        let margin = 4.0 * (worse.variance_se.powi(2) + better.variance_se.powi(2)).sqrt();
        assert!(worse.variance - better.variance > margin);
    }
}

/// A cost that does not depend on the sample gets exactly zero gradient: every
/// leave-one-out signal is zero.
#[test]
fn rloo_gives_zero_gradient_for_a_constant_cost() {
    let mut rng = StdRng::seed_from_u64(1911);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::random_normal(6, 6, 0.0, 1.0, &mut rng));
    let estimate = Rloo::new(3).unwrap().estimate(
        logits,
        3,
        &mut |z| z.sum_cols().scale(0.0).add_scalar(2.5),
        &mut rng,
    );
    assert_eq!(estimate.loss.scalar().unwrap(), 2.5);
    tape.backward(estimate.loss).unwrap();
    assert!(logits.grad().unwrap().as_slice().iter().all(|&g| g == 0.0));
}

#[test]
fn rloo_rejects_a_single_sample() {
    assert!(matches!(
        Rloo::new(1),
        Err(gumbelgrad::Error::InvalidArgument { .. })
    ));
    assert_eq!(
        GradientEstimator::<f64>::name(&Rloo::new(2).unwrap()),
        "rloo"
    );
}

/// The cost closure sees ordinary `[batch, N*K]` samples, `m` times, and the estimate
/// reports the per-example mean cost.
#[test]
fn rloo_calls_the_cost_m_times_on_batch_shaped_samples() {
    let mut rng = StdRng::seed_from_u64(1912);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::random_normal(5, 6, 0.0, 1.0, &mut rng));
    let weights =
        tape.constant(&Tensor::from_vec(1, 6, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    let mut seen = Vec::new();
    let estimate = Rloo::new(4).unwrap().estimate(
        logits,
        3,
        &mut |z| {
            seen.push(z.value().unwrap());
            (z * weights).sum_cols()
        },
        &mut rng,
    );
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|z| z.rows() == 5 && z.cols() == 6));
    let cost = estimate.cost.value().unwrap();
    for r in 0..5 {
        let expected: f64 = seen
            .iter()
            .map(|z| {
                z.row(r)
                    .iter()
                    .zip(1..=6)
                    .map(|(v, w)| v * w as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 4.0;
        assert!((cost.get(r, 0) - expected).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------- ARM and DisARM

#[test]
fn arm_and_disarm_are_unbiased_on_binary_units() {
    for (case, (units, scale)) in [(3, 1.0), (5, 1.0), (4, 2.5)].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1920 + case as u64);
        let toy = Toy::new(units, scale, &mut rng);
        let truth = toy.exact(1);
        for mut estimator in [Arm::arm(), Arm::disarm()] {
            let grads = toy.estimates(&mut estimator, 1, 200_000, &mut rng);
            let s = Summary::of(&grads);
            eprintln!(
                "{} N={units} logit scale {scale}: total variance {:.5} (se {:.5})",
                estimator.name(),
                s.variance,
                s.variance_se
            );
            s.assert_unbiased(&truth.gradient, &format!("{} N={units}", estimator.name()));
        }
    }
}

/// DisARM is ARM with the uniform integrated out given the pair, so its variance is
/// lower; both are compared with 2-sample RLOO, which has the same cost (two
/// evaluations per example).
#[test]
fn disarm_has_lower_variance_than_arm() {
    for (case, (units, scale)) in [(4, 1.0), (6, 2.0)].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1930 + case as u64);
        let toy = Toy::new(units, scale, &mut rng);
        let samples = 100_000;
        let arm = Summary::of(&toy.estimates(&mut Arm::arm(), 1, samples, &mut rng));
        let disarm = Summary::of(&toy.estimates(&mut Arm::disarm(), 1, samples, &mut rng));
        let rloo = Summary::of(&toy.estimates(&mut Rloo::new(2).unwrap(), 1, samples, &mut rng));
        eprintln!(
            "N={units} logit scale {scale} total variance: arm {:.5} (se {:.5}), disarm {:.5} (se {:.5}), rloo-2 {:.5} (se {:.5})",
            arm.variance,
            arm.variance_se,
            disarm.variance,
            disarm.variance_se,
            rloo.variance,
            rloo.variance_se
        );
        let margin = 4.0 * (arm.variance_se.powi(2) + disarm.variance_se.powi(2)).sqrt();
        assert!(arm.variance - disarm.variance > margin);
    }
}

/// The antithetic pair has the right marginals, and the per-unit formulas match the
/// module documentation on hand-computed cases.
#[test]
fn arm_formulas_on_hand_computed_cases() {
    let (phi, u) = ([0.8, -1.5], [0.9, 0.1]);
    // p = sigmoid(0.8) = 0.690, sigmoid(-0.8) = 0.310: u = 0.9 gives b1 = 1, b2 = 0.
    // p = sigmoid(-1.5) = 0.182, sigmoid(1.5) = 0.818: u = 0.1 gives b1 = 0, b2 = 1.
    let (b1, b2) = ([1.0, 0.0], [0.0, 1.0]);
    let mut out = [0.0; 2];
    Arm::arm().unit_estimates(&u, &phi, &b1, &b2, 2.0, &mut out);
    assert!((out[0] - 2.0 * 0.4).abs() < 1e-15 && (out[1] - 2.0 * -0.4).abs() < 1e-15);
    Arm::disarm().unit_estimates(&u, &phi, &b1, &b2, 2.0, &mut out);
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert!((out[0] - s(0.8)).abs() < 1e-15, "{out:?}");
    assert!((out[1] + s(1.5)).abs() < 1e-15, "{out:?}");
    // equal pair: DisARM is exactly zero for that unit, ARM is not
    Arm::disarm().unit_estimates(&u, &phi, &[1.0, 1.0], &[1.0, 0.0], 2.0, &mut out);
    assert_eq!(out[0], 0.0);
}

#[test]
fn arm_rejects_categorical_groups() {
    let mut rng = StdRng::seed_from_u64(1);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::zeros(2, 4));
    let estimate = Arm::disarm().estimate(logits, 2, &mut |z| z.sum_cols(), &mut rng);
    assert!(estimate.loss.is_poisoned());
    let error = tape.error().unwrap().to_string();
    assert!(
        error.contains("disarm") && error.contains("group_size"),
        "{error}"
    );
}
