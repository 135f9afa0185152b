//! The estimators that came after the Gumbel-Softmax paper, checked against exact
//! gradients by enumeration with fixed seeds: RLOO, ARM and DisARM (unbiased: every
//! component within 4 standard errors of the exact gradient), Gumbel-Rao, ReinMax and
//! gapped ST (biased: their bias and variance measured against straight-through
//! Gumbel-Softmax or ST and, where the expectation is computable, against it exactly). Tolerances come from
//! standard errors, never hand-picked.

use gumbelgrad::estimators::score::{ArmEstimator, Baseline, Reinforce, Rloo};
use gumbelgrad::estimators::{GradientEstimator, exact};
use gumbelgrad::{Tape, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::sample_summary::Summary;

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
    let mut reinforce = Reinforce::new(Baseline::None).unwrap();
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
        for mut estimator in [ArmEstimator::arm(), ArmEstimator::disarm()] {
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
        let arm = Summary::of(&toy.estimates(&mut ArmEstimator::arm(), 1, samples, &mut rng));
        let disarm = Summary::of(&toy.estimates(&mut ArmEstimator::disarm(), 1, samples, &mut rng));
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
    ArmEstimator::arm().unit_estimates(&u, &phi, &b1, &b2, 2.0, &mut out);
    assert!((out[0] - 2.0 * 0.4).abs() < 1e-15 && (out[1] - 2.0 * -0.4).abs() < 1e-15);
    ArmEstimator::disarm().unit_estimates(&u, &phi, &b1, &b2, 2.0, &mut out);
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert!((out[0] - s(0.8)).abs() < 1e-15, "{out:?}");
    assert!((out[1] + s(1.5)).abs() < 1e-15, "{out:?}");
    // equal pair: DisARM is exactly zero for that unit, ARM is not
    ArmEstimator::disarm().unit_estimates(&u, &phi, &[1.0, 1.0], &[1.0, 0.0], 2.0, &mut out);
    assert_eq!(out[0], 0.0);
}

#[test]
fn arm_rejects_a_group_size_that_does_not_divide_the_logits() {
    let mut rng = StdRng::seed_from_u64(1);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::zeros(2, 4));
    let estimate = ArmEstimator::disarm().estimate(logits, 3, &mut |z| z.sum_cols(), &mut rng);
    assert!(estimate.loss.is_poisoned());
    let error = tape.error().unwrap().to_string();
    assert!(
        error.contains("disarm") && error.contains("group size"),
        "{error}"
    );
}

/// Categorical groups through the stick-breaking bits: unbiased against enumeration
/// for ARM and DisARM, and the samples are one-hot.
#[test]
fn arm_and_disarm_are_unbiased_on_categorical_groups() {
    for (case, (k, groups)) in [(2, 2), (3, 2), (4, 2)].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1925 + case as u64);
        let toy = Toy::new(k * groups, 1.0, &mut rng);
        let truth = toy.exact(k);
        for mut estimator in [ArmEstimator::arm(), ArmEstimator::disarm()] {
            let grads = toy.estimates(&mut estimator, k, 200_000, &mut rng);
            let s = Summary::of(&grads);
            eprintln!(
                "{} K={k} N={groups}: total variance {:.4} (se {:.4})",
                estimator.name(),
                s.variance,
                s.variance_se
            );
            s.assert_unbiased(
                &truth.gradient,
                &format!("{} K={k} N={groups}", estimator.name()),
            );
        }
        let rloo = Summary::of(&toy.estimates(&mut Rloo::new(2).unwrap(), k, 200_000, &mut rng));
        eprintln!(
            "rloo-2 K={k} N={groups}: total variance {:.4} (se {:.4})",
            rloo.variance, rloo.variance_se
        );
    }
}

/// The stick-breaking map's logits give the categorical law, and its vector-Jacobian
/// product matches finite differences.
#[test]
fn stick_breaking_map_and_its_gradient() {
    use gumbelgrad::estimators::score::{stick_breaking_logits, stick_breaking_vjp};
    let mut rng = StdRng::seed_from_u64(1926);
    let k = 5;
    let theta = Tensor::<f64>::random_normal(1, 2 * k, 0.0, 2.0, &mut rng);
    let eta = stick_breaking_logits(&theta, k);
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    for n in 0..2 {
        let p = softmax(&theta.as_slice()[n * k..(n + 1) * k]);
        let mut remaining = 1.0;
        for (c, &pc) in p.iter().enumerate() {
            let q = if c < k - 1 {
                remaining * s(eta.as_slice()[n * (k - 1) + c])
            } else {
                remaining
            };
            assert!((q - pc).abs() < 1e-14, "class {c}: {q} vs {pc}");
            if c < k - 1 {
                remaining *= 1.0 - s(eta.as_slice()[n * (k - 1) + c]);
            }
        }
    }
    let g: Vec<f64> = (0..2 * (k - 1)).map(|i| (i as f64 * 0.7).sin()).collect();
    let analytic = stick_breaking_vjp(theta.as_slice(), &g, k);
    let numeric = numeric_gradient(theta.as_slice(), |x| {
        let eta = stick_breaking_logits(&Tensor::from_vec(1, 2 * k, x.to_vec()).unwrap(), k);
        dot(eta.as_slice(), &g)
    });
    for (a, b) in analytic.iter().zip(&numeric) {
        assert!((a - b).abs() < 1e-8, "{a} vs {b}");
    }
}

// ---------------------------------------------------------------- shared helpers

fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central finite differences of `h` at `x` (step `1e-6`).
fn numeric_gradient(x: &[f64], h: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let step = 1e-6;
    (0..x.len())
        .map(|i| {
            let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
            plus[i] += step;
            minus[i] -= step;
            (h(&plus) - h(&minus)) / (2.0 * step)
        })
        .collect()
}

/// Every configuration of `groups` one-hot groups of `k` classes, with its
/// probability under `softmax(logits)` per group.
fn configurations(logits: &[f64], k: usize) -> Vec<(Vec<f64>, f64)> {
    let groups = logits.len() / k;
    let probs: Vec<f64> = logits.chunks(k).flat_map(softmax).collect();
    let mut out = Vec::new();
    for index in 0..k.pow(groups as u32) {
        let mut z = vec![0.0; logits.len()];
        let mut q = 1.0;
        let mut rest = index;
        for n in 0..groups {
            let c = rest % k;
            rest /= k;
            z[n * k + c] = 1.0;
            q *= probs[n * k + c];
        }
        out.push((z, q));
    }
    out
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

// ---------------------------------------------------------------- Gumbel-Rao

use gumbelgrad::estimators::gumbel_rao::sample_with_conditional_noise;
use gumbelgrad::estimators::{
    GumbelRao, ReinMax, StraightThroughEstimator, StraightThroughKind, gumbel_rao, noise, reinmax,
    st, st_gumbel_softmax,
};

/// The node's backward, with the noise fixed, is the gradient of the averaged
/// relaxation `(1/K) sum_k <w, softmax((x + G_k)/tau)>` (finite differences in f64).
#[test]
fn gumbel_rao_backward_is_the_gradient_of_the_averaged_relaxation() {
    let mut rng = StdRng::seed_from_u64(1940);
    let (rows, k, groups, draws, tau) = (2, 3, 2, 5, 0.7);
    let cols = k * groups;
    let x = Tensor::<f64>::random_normal(rows, cols, 0.0, 1.0, &mut rng);
    let (sample, g) = sample_with_conditional_noise(&x, k, draws, &mut rng).unwrap();
    let w = Tensor::<f64>::random_normal(rows, cols, 0.0, 1.0, &mut rng);
    let tape = Tape::new();
    let xv = tape.variable(&x);
    let z = gumbel_rao(xv, tape.constant(&sample), tape.constant(&g), tau, k);
    assert_eq!(z.value().unwrap(), sample);
    tape.backward((z * tape.constant(&w)).sum()).unwrap();
    let analytic = xv.grad().unwrap();
    for r in 0..rows {
        let h = |xr: &[f64]| {
            let mut total = 0.0;
            for j in 0..draws {
                let noise = g.row(r * draws + j);
                for n in 0..groups {
                    let span = n * k..(n + 1) * k;
                    let shifted: Vec<f64> =
                        span.clone().map(|i| (xr[i] + noise[i]) / tau).collect();
                    total += dot(&softmax(&shifted), &w.row(r)[span]) / draws as f64;
                }
            }
            total
        };
        let numeric = numeric_gradient(x.row(r), h);
        for (a, b) in analytic.row(r).iter().zip(&numeric) {
            assert!((a - b).abs() < 1e-8, "row {r}: {a} vs {b}");
        }
    }
}

/// With one noise, and that noise the one that drew the sample, the node is ST-GS.
#[test]
fn gumbel_rao_with_the_sampling_noise_is_st_gumbel_softmax() {
    let mut rng = StdRng::seed_from_u64(1941);
    let x = Tensor::<f64>::random_normal(3, 8, 0.0, 1.0, &mut rng);
    let drawn = noise::sample_categorical(&x, 4, &mut rng).unwrap();
    let w = Tensor::<f64>::random_normal(3, 8, 0.0, 1.0, &mut rng);
    let grad = |rao: bool| {
        let tape = Tape::new();
        let xv = tape.variable(&x);
        let g = tape.constant(&drawn.noise);
        let z = if rao {
            gumbel_rao(xv, tape.constant(&drawn.one_hot), g, 0.6, 4)
        } else {
            st_gumbel_softmax(xv, g, 0.6, 4)
        };
        assert_eq!(z.value().unwrap(), drawn.one_hot);
        tape.backward((z * tape.constant(&w)).sum()).unwrap();
        xv.grad().unwrap()
    };
    let (a, b) = (grad(true), grad(false));
    for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
        assert!((x - y).abs() < 1e-14, "{x} vs {y}");
    }
}

/// Every conditional noise keeps the sampled class on top, for large logits too.
#[test]
fn gumbel_rao_noise_keeps_the_sample_on_top() {
    let mut rng = StdRng::seed_from_u64(1942);
    let x = Tensor::<f64>::random_normal(50, 12, 0.0, 30.0, &mut rng);
    let (sample, g) = sample_with_conditional_noise(&x, 4, 7, &mut rng).unwrap();
    assert!(g.all_finite());
    for r in 0..50 {
        for j in 0..7 {
            let perturbed: Vec<f64> = x
                .row(r)
                .iter()
                .zip(g.row(r * 7 + j))
                .map(|(a, b)| a + b)
                .collect();
            let top = noise::gumbel_max(
                &Tensor::from_vec(1, 12, perturbed).unwrap(),
                &Tensor::zeros(1, 12),
                4,
            )
            .unwrap();
            for (n, &c) in top.iter().enumerate() {
                assert_eq!(sample.row(r)[n * 4 + c], 1.0);
            }
        }
    }
}

/// GR-MC K has ST-GS's mean (the tower property; a wrong conditional noise would move
/// it) and less variance, falling with K; both are biased on the toy.
#[test]
fn gumbel_rao_has_st_gumbel_softmax_mean_and_less_variance() {
    let samples = 100_000;
    for (case, tau) in [0.5, 1.0].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1950 + case as u64);
        let toy = Toy::new(8, 1.0, &mut rng);
        let truth = toy.exact(4);
        let mut stgs =
            StraightThroughEstimator::new(StraightThroughKind::GumbelSoftmax, tau).unwrap();
        let st = Summary::of(&toy.estimates(&mut stgs, 4, samples, &mut rng));
        let (st_bias, st_bias_se) = st.bias(&truth.gradient);
        eprintln!(
            "K=4 N=2 tau={tau} st-gumbel-softmax: bias {st_bias:.4} (se {st_bias_se:.4}), variance {:.4} (se {:.4})",
            st.variance, st.variance_se
        );
        assert!(st_bias > 4.0 * st_bias_se);
        let (mut previous, mut previous_se) = (st.variance, st.variance_se);
        for draws in [1, 10, 100] {
            let mut gr = GumbelRao::new(tau, draws).unwrap();
            let s = Summary::of(&toy.estimates(&mut gr, 4, samples, &mut rng));
            let (bias, bias_se) = s.bias(&truth.gradient);
            eprintln!(
                "K=4 N=2 tau={tau} gumbel-rao K={draws}: bias {bias:.4} (se {bias_se:.4}), variance {:.4} (se {:.4})",
                s.variance, s.variance_se
            );
            assert!(bias > 4.0 * bias_se, "gumbel-rao is biased like ST-GS");
            for i in 0..s.mean.len() {
                let se = (s.se[i].powi(2) + st.se[i].powi(2)).sqrt();
                assert!(
                    (s.mean[i] - st.mean[i]).abs() < 4.0 * se,
                    "tau {tau} K={draws} component {i}: {} vs ST-GS {} (se {se})",
                    s.mean[i],
                    st.mean[i]
                );
            }
            // K = 1 is ST-GS in distribution; K = 10 is clearly below it; from 10 to
            // 100 only the remaining 1/K part falls (measured 0.537 -> 0.526 at
            // tau = 1, about the resolution of 100 000 samples), so it must not rise.
            let margin = 4.0 * (s.variance_se.powi(2) + previous_se.powi(2)).sqrt();
            match draws {
                1 => assert!((s.variance - previous).abs() < margin, "K = 1 is ST-GS"),
                10 => assert!(previous - s.variance > margin, "variance falls with K"),
                _ => assert!(
                    s.variance - previous < margin,
                    "variance does not rise with K"
                ),
            }
            (previous, previous_se) = (s.variance, s.variance_se);
        }
    }
}

#[test]
fn gumbel_rao_runs_on_binary_units_and_rejects_bad_settings() {
    let mut rng = StdRng::seed_from_u64(1943);
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::random_normal(4, 5, 0.0, 1.0, &mut rng));
    let mut gr = GumbelRao::new(0.5, 4).unwrap();
    let estimate = gr.estimate(logits, 1, &mut |b| b.square().sum_cols(), &mut rng);
    let b = estimate.sample.value().unwrap();
    assert_eq!(b.shape(), gumbelgrad::Shape::new(4, 5));
    assert!(b.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
    tape.backward(estimate.loss).unwrap();
    assert!(logits.grad().unwrap().all_finite());
    assert!(GumbelRao::new(0.0, 3).is_err());
    assert!(GumbelRao::new(1.0, 0).is_err());
    assert!(gr.set_temperature(f64::NAN).is_err());
    assert_eq!(GradientEstimator::<f64>::name(&gr), "gumbel-rao");
}

// ---------------------------------------------------------------- ReinMax

/// The node's backward at a fixed sample is the gradient of the sheet's surrogate
/// `2 <w, softmax(x + c)> - 1/2 <w, softmax(x)>`, `c = ln pi_1 - x` held fixed.
#[test]
fn reinmax_backward_is_the_gradient_of_its_surrogate() {
    let mut rng = StdRng::seed_from_u64(1960);
    let (k, tau) = (4, 1.4);
    let x = Tensor::<f64>::random_normal(1, 2 * k, 0.0, 1.5, &mut rng);
    let d = noise::sample_categorical(&x, k, &mut rng).unwrap().one_hot;
    let w = Tensor::<f64>::random_normal(1, 2 * k, 0.0, 1.0, &mut rng);
    let tape = Tape::new();
    let xv = tape.variable(&x);
    let z = reinmax(xv, tape.constant(&d), tau, k);
    assert_eq!(z.value().unwrap(), d);
    tape.backward((z * tape.constant(&w)).sum()).unwrap();
    let analytic = xv.grad().unwrap();
    let mut c = vec![0.0; 2 * k];
    for n in 0..2 {
        let span = n * k..(n + 1) * k;
        let tempered: Vec<f64> = x.as_slice()[span.clone()].iter().map(|v| v / tau).collect();
        let p = softmax(&tempered);
        for (j, i) in span.enumerate() {
            c[i] = (0.5 * (p[j] + d.as_slice()[i])).ln() - x.as_slice()[i];
        }
    }
    let h = |xs: &[f64]| {
        (0..2)
            .map(|n| {
                let span = n * k..(n + 1) * k;
                let shifted: Vec<f64> = span.clone().map(|i| xs[i] + c[i]).collect();
                let wn = &w.as_slice()[span.clone()];
                2.0 * dot(&softmax(&shifted), wn) - 0.5 * dot(&softmax(&xs[span]), wn)
            })
            .sum()
    };
    let numeric = numeric_gradient(x.as_slice(), h);
    for (a, b) in analytic.as_slice().iter().zip(&numeric) {
        assert!((a - b).abs() < 1e-8, "{a} vs {b}");
    }
}

/// `E[estimate]` of a straight-through-type node by enumeration: the node is a
/// deterministic function of the sample `D`, so the mean is `sum_D q(D) grad(D)`.
/// `paper_st` selects the paper's ST (`softmax(x/tau)` backward) instead of ReinMax.
fn expected_estimate(toy: &Toy, k: usize, tau: f64, quadratic: bool, paper_st: bool) -> Vec<f64> {
    let mut mean = vec![0.0; toy.logits.cols()];
    for (z, q) in configurations(toy.logits.as_slice(), k) {
        let tape = Tape::new();
        let x = tape.variable(&toy.logits);
        let d = Tensor::from_vec(1, z.len(), z).unwrap();
        let node = if paper_st {
            // noise that puts the argmax at D; ST's backward ignores it
            st(x, tape.constant(&d.map(|v| 1e3 * v)), tau, k)
        } else {
            reinmax(x, tape.constant(&d), tau, k)
        };
        assert_eq!(node.value().unwrap(), d);
        let (a, b) = (tape.constant(&toy.a), tape.constant(&toy.b));
        let cost = if quadratic {
            (node * a).sum_cols() + (node * b).sum_cols().square()
        } else {
            toy_cost(node, a, b)
        };
        tape.backward(cost.sum()).unwrap();
        for (m, g) in mean.iter_mut().zip(x.grad().unwrap().as_slice()) {
            *m += q * g;
        }
    }
    mean
}

/// ReinMax's second-order claim, exactly: at `tau = 1` its mean is the exact gradient
/// for a cost quadratic in `z`, where ST's is not; on the non-quadratic toy both are
/// biased and ReinMax less so.
#[test]
fn reinmax_is_exact_in_expectation_for_quadratic_costs_at_unit_temperature() {
    for (case, (k, groups)) in [(3, 1), (4, 2), (3, 3)].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1970 + case as u64);
        let toy = Toy::new(k * groups, 1.0, &mut rng);
        let quadratic = exact::categorical(toy.logits.as_slice(), k, |z| {
            dot(z, toy.a.as_slice()) + dot(z, toy.b.as_slice()).powi(2)
        })
        .unwrap();
        let norm = distance(&quadratic.gradient, &vec![0.0; k * groups]);
        let reinmax_mean = expected_estimate(&toy, k, 1.0, true, false);
        let st_mean = expected_estimate(&toy, k, 1.0, true, true);
        let reinmax_bias = distance(&reinmax_mean, &quadratic.gradient);
        let st_bias = distance(&st_mean, &quadratic.gradient);
        eprintln!(
            "K={k} N={groups} quadratic cost, tau=1: |exact| {norm:.4}, reinmax bias {reinmax_bias:.2e}, st bias {st_bias:.4}"
        );
        assert!(reinmax_bias < 1e-12 * norm.max(1.0));
        assert!(st_bias > 1e-2 * norm);
        // at another temperature the exactness is lost
        let hot = distance(
            &expected_estimate(&toy, k, 2.0, true, false),
            &quadratic.gradient,
        );
        eprintln!("K={k} N={groups} quadratic cost, tau=2: reinmax bias {hot:.4}");
        assert!(hot > 1e-3 * norm);

        let truth = toy.exact(k);
        let norm = distance(&truth.gradient, &vec![0.0; k * groups]);
        for tau in [1.0, 1.5] {
            let reinmax_bias = distance(
                &expected_estimate(&toy, k, tau, false, false),
                &truth.gradient,
            );
            let st_bias = distance(
                &expected_estimate(&toy, k, tau, false, true),
                &truth.gradient,
            );
            eprintln!(
                "K={k} N={groups} toy cost tau={tau}: |exact| {norm:.4}, reinmax bias {reinmax_bias:.4}, st bias {st_bias:.4}"
            );
            assert!(
                reinmax_bias > 1e-6,
                "the toy is not quadratic: ReinMax is biased"
            );
            if tau == 1.0 {
                assert!(reinmax_bias < st_bias);
            }
        }
    }
}

/// The estimator's Monte Carlo mean agrees with the enumerated expectation of its
/// node (so its samples have the right law), categorical and binary; the binary
/// expectation is computed from the closed form in the module documentation.
#[test]
fn reinmax_monte_carlo_mean_matches_its_enumerated_expectation() {
    let samples = 100_000;
    let mut rng = StdRng::seed_from_u64(1980);
    let toy = Toy::new(8, 1.0, &mut rng);
    for tau in [1.0, 1.5] {
        let expected = expected_estimate(&toy, 4, tau, false, false);
        let s = Summary::of(&toy.estimates(&mut ReinMax::new(tau).unwrap(), 4, samples, &mut rng));
        let (bias, se) = s.bias(&toy.exact(4).gradient);
        eprintln!(
            "K=4 N=2 reinmax tau={tau}: bias {bias:.4} (se {se:.4}), variance {:.4} (se {:.4})",
            s.variance, s.variance_se
        );
        s.assert_unbiased(&expected, &format!("reinmax tau={tau} vs its expectation"));
    }
    // binary units: E over b of f'(b)_v (2 p1 (1 - p1) - p0 (1 - p0) / 2)
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let units = Toy::new(4, 1.0, &mut rng);
    let phi = units.logits.as_slice().to_vec();
    for tau in [1.0, 2.0] {
        let mut expected = vec![0.0; 4];
        for index in 0..16 {
            let b: Vec<f64> = (0..4).map(|v| ((index >> v) & 1) as f64).collect();
            let q: f64 = (0..4)
                .map(|v| {
                    if b[v] == 1.0 {
                        sigmoid(phi[v])
                    } else {
                        1.0 - sigmoid(phi[v])
                    }
                })
                .product();
            let (za, zb) = (dot(&b, units.a.as_slice()), dot(&b, units.b.as_slice()));
            for v in 0..4 {
                let slope = (1.0 - za.tanh().powi(2)) * units.a.as_slice()[v]
                    + 2.0 * zb * units.b.as_slice()[v];
                let p0 = sigmoid(phi[v]);
                let p1 = 0.5 * (b[v] + sigmoid(phi[v] / tau));
                expected[v] += q * slope * (2.0 * p1 * (1.0 - p1) - 0.5 * p0 * (1.0 - p0));
            }
        }
        let s =
            Summary::of(&units.estimates(&mut ReinMax::new(tau).unwrap(), 1, samples, &mut rng));
        s.assert_unbiased(&expected, &format!("binary reinmax tau={tau}"));
    }
}

#[test]
fn reinmax_rejects_bad_temperatures_and_has_its_name() {
    assert!(ReinMax::new(-1.0).is_err());
    assert!(ReinMax::new(f64::INFINITY).is_err());
    let mut r = ReinMax::new(1.0).unwrap();
    assert!(r.set_temperature(0.0).is_err());
    r.set_temperature(1.3).unwrap();
    assert_eq!(r.temperature(), 1.3);
    assert_eq!(GradientEstimator::<f64>::name(&r), "reinmax");
    assert!(!GradientEstimator::<f64>::is_unbiased(&r));
}

// ---------------------------------------------------------------- gapped ST

use gumbelgrad::estimators::{GappedSt, InjectedNoise, gapped_st, gumbel_softmax};

/// The moves of the reference code, written out literally for one group: with
/// `M = max x` and `i` the sampled class, `m1 = (M - x) ⊙ D`,
/// `m2 = max(0, x - M + gap)` with `m2_i = 0`; returns `m1 - m2`.
fn reference_moves(x: &[f64], d: &[f64], gap: f64) -> Vec<f64> {
    let top = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    x.iter()
        .zip(d)
        .map(|(&xj, &dj)| {
            let m1 = (top - xj) * dj;
            let m2 = if dj == 1.0 {
                0.0
            } else {
                (xj - top + gap).max(0.0)
            };
            m1 - m2
        })
        .collect()
}

/// The node's gradient of `sum(w * z)` at logits `x` and one-hot sample `d`.
fn gapped_st_grad(
    x: &Tensor<f64>,
    d: &Tensor<f64>,
    w: &Tensor<f64>,
    tau: f64,
    gap: f64,
    k: usize,
) -> Tensor<f64> {
    let tape = Tape::new();
    let xv = tape.variable(x);
    let z = gapped_st(xv, tape.constant(d), tau, gap, k);
    assert_eq!(&z.value().unwrap(), d, "the forward is the sample");
    tape.backward((z * tape.constant(w)).sum()).unwrap();
    xv.grad().unwrap()
}

/// The f64 gradient check of the node with the sample fixed: its backward is the
/// finite-difference gradient of the reference surrogate
/// `sum_groups <w, softmax((x + c - mean(x + c))/tau)>`, the moves `c = m1 - m2`
/// computed at `x` from the reference formula and held fixed (the centering included).
#[test]
fn gapped_st_backward_is_the_gradient_of_its_moved_softmax() {
    let mut moved_up = 0;
    let mut pushed_down = 0;
    for (case, (k, tau, gap, scale)) in [
        (4, 1.0, 1.0, 1.5),
        (3, 0.5, 1.0, 2.0),
        (5, 1.3, 0.3, 1.0),
        (4, 0.7, 2.5, 3.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = StdRng::seed_from_u64(2000 + case as u64);
        let (rows, groups) = (3, 2);
        let x = Tensor::<f64>::random_normal(rows, k * groups, 0.0, scale, &mut rng);
        let d = noise::sample_categorical(&x, k, &mut rng).unwrap().one_hot;
        let w = Tensor::<f64>::random_normal(rows, k * groups, 0.0, 1.0, &mut rng);
        let analytic = gapped_st_grad(&x, &d, &w, tau, gap, k);
        for r in 0..rows {
            let mut c = Vec::new();
            for n in 0..groups {
                let span = n * k..(n + 1) * k;
                let moves = reference_moves(&x.row(r)[span.clone()], &d.row(r)[span], gap);
                moved_up += moves.iter().filter(|&&m| m > 0.0).count();
                pushed_down += moves.iter().filter(|&&m| m < 0.0).count();
                c.extend(moves);
            }
            let h = |xs: &[f64]| {
                (0..groups)
                    .map(|n| {
                        let span = n * k..(n + 1) * k;
                        let moved: Vec<f64> = span.clone().map(|i| xs[i] + c[i]).collect();
                        let mean = moved.iter().sum::<f64>() / k as f64;
                        let tempered: Vec<f64> = moved.iter().map(|v| (v - mean) / tau).collect();
                        dot(&softmax(&tempered), &w.row(r)[span])
                    })
                    .sum()
            };
            let numeric = numeric_gradient(x.row(r), h);
            for (a, b) in analytic.row(r).iter().zip(&numeric) {
                assert!((a - b).abs() < 1e-8, "case {case} row {r}: {a} vs {b}");
            }
        }
    }
    // the check covers both moves, not only samples that were already on top
    eprintln!("gapped-st gradcheck: {moved_up} logits raised, {pushed_down} pushed down");
    assert!(moved_up > 0 && pushed_down > 0);
}

/// Logits and a one-hot sample drawn from them (from `seed`), a temperature and a gap,
/// for grouped shapes up to 8 columns.
fn gapped_case() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>, usize, f64, f64)> {
    use gumbelgrad::testing::{grouped_shape, tensor_of_shape};
    (
        grouped_shape(1..=3, 8),
        any::<u64>(),
        0.3f64..3.0,
        0.1f64..3.0,
    )
        .prop_flat_map(|((rows, k, groups), seed, tau, gap)| {
            let shape = gumbelgrad::Shape::new(rows, k * groups);
            (tensor_of_shape(shape, -3.0..3.0), Just(seed)).prop_map(move |(logits, seed)| {
                let mut rng = StdRng::seed_from_u64(seed);
                let d = noise::sample_categorical(&logits, k, &mut rng)
                    .unwrap()
                    .one_hot;
                (logits, d, k, tau, gap)
            })
        })
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(gumbelgrad::testing::config(48))]

    /// For any logits, sample, temperature and gap: the forward is the sample exactly,
    /// and the backward is the gradient of the (gradchecked) Gumbel-Softmax op at noise
    /// `g = m1 - m2`, the reference moves held fixed.
    #[test]
    fn gapped_st_backward_is_gumbel_softmax_at_the_moves((x, d, k, tau, gap) in gapped_case()) {
        let w = Tensor::random_uniform(x.rows(), x.cols(), -1.0, 1.0, &mut StdRng::seed_from_u64(9));
        let node = gapped_st_grad(&x, &d, &w, tau, gap, k);
        let mut moves = Vec::new();
        for (xs, ds) in x.as_slice().chunks(k).zip(d.as_slice().chunks(k)) {
            moves.extend(reference_moves(xs, ds, gap));
        }
        let moves = Tensor::from_vec(x.rows(), x.cols(), moves).unwrap();
        let tape = Tape::new();
        let xv = tape.variable(&x);
        let y = gumbel_softmax(xv, tape.constant(&moves), tau, k);
        tape.backward((y * tape.constant(&w)).sum()).unwrap();
        let soft = xv.grad().unwrap();
        prop_assert!(node.max_abs_diff(&soft).unwrap() < 1e-13, "{node:?} vs {soft:?}");
    }
}

/// Where nothing moves (the sample is the argmax and every other logit is already at
/// least the gap below it), gapped ST is the paper's ST at the same temperature.
#[test]
fn gapped_st_is_st_when_nothing_moves() {
    let x = Tensor::from_vec(2, 3, vec![2.0, 0.5, -1.0, -0.3, 1.4, 0.2]).unwrap();
    let d = Tensor::from_vec(2, 3, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
    let w = Tensor::from_vec(2, 3, vec![0.3, -1.2, 0.8, 1.1, 0.4, -0.6]).unwrap();
    for tau in [0.5, 1.0, 2.0] {
        let gapped = gapped_st_grad(&x, &d, &w, tau, 1.0, 3);
        let tape = Tape::new();
        let xv = tape.variable(&x);
        let z = st(xv, tape.constant(&d.map(|v| 1e3 * v)), tau, 3);
        tape.backward((z * tape.constant(&w)).sum()).unwrap();
        let plain = xv.grad().unwrap();
        assert!(gapped.max_abs_diff(&plain).unwrap() < 1e-15, "tau {tau}");
        // a gap wider than the spread moves the others down: no longer ST
        let wide = gapped_st_grad(&x, &d, &w, tau, 1.5, 3);
        assert!(wide.max_abs_diff(&plain).unwrap() > 1e-3, "tau {tau}");
    }
}

/// The estimate of `GappedSt` at an injected sample `D`: one row of gradient.
fn gapped_st_at(
    toy: &Toy,
    k: usize,
    d: &[f64],
    tau: f64,
    gap: f64,
) -> (Tensor<f64>, f64, Vec<f64>) {
    let tape = Tape::new();
    let x = tape.variable(&toy.logits);
    let (a, b) = (tape.constant(&toy.a), tape.constant(&toy.b));
    let injected = InjectedNoise::Sample(Tensor::from_vec(1, d.len(), d.to_vec()).unwrap());
    let estimate = GappedSt::new(tau, gap).unwrap().estimate_with_noise(
        x,
        k,
        &injected,
        &mut |z| toy_cost(z, a, b),
        &mut StdRng::seed_from_u64(0),
    );
    let sample = estimate.sample.value().unwrap();
    let cost = estimate.cost.scalar().unwrap();
    tape.backward(estimate.loss).unwrap();
    (sample, cost, x.grad().unwrap().into_vec())
}

/// `E[gapped ST]` by enumerating the samples `D` (the estimate is a function of `D`).
fn expected_gapped_st(toy: &Toy, k: usize, tau: f64, gap: f64) -> Vec<f64> {
    let mut mean = vec![0.0; toy.logits.cols()];
    for (z, q) in configurations(toy.logits.as_slice(), k) {
        let (sample, cost, grad) = gapped_st_at(toy, k, &z, tau, gap);
        // the forward is the hard sample, exactly, and the cost is f(D)
        assert_eq!(sample.as_slice(), &z[..]);
        assert_eq!(cost, toy.cost(&z));
        for (m, g) in mean.iter_mut().zip(grad) {
            *m += q * g;
        }
    }
    mean
}

/// The measured bias, exactly: `E[gapped ST]` and `E[ST]` by enumeration against the
/// exact gradient of the toy, at three temperatures; the toys are ReinMax's (the same
/// seeds), so the figures sit beside its table. Neither is ahead everywhere, so only
/// the bias itself is asserted.
#[test]
fn gapped_st_bias_by_enumeration_beside_st() {
    let mut wins = 0;
    let mut cases = 0;
    for (case, (k, groups)) in [(3, 1), (4, 2), (3, 3)].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(1970 + case as u64);
        let toy = Toy::new(k * groups, 1.0, &mut rng);
        let truth = toy.exact(k);
        let norm = distance(&truth.gradient, &vec![0.0; k * groups]);
        for tau in [0.5, 1.0, 1.5] {
            let gst_bias = distance(&expected_gapped_st(&toy, k, tau, 1.0), &truth.gradient);
            let st_bias = distance(
                &expected_estimate(&toy, k, tau, false, true),
                &truth.gradient,
            );
            eprintln!(
                "K={k} N={groups} toy cost tau={tau}: |exact| {norm:.4}, gapped-st bias {gst_bias:.4}, st bias {st_bias:.4}"
            );
            assert!(gst_bias > 1e-3 * norm, "gapped ST is biased");
            cases += 1;
            wins += usize::from(gst_bias < st_bias);
        }
    }
    eprintln!("gapped-st less biased than st in {wins} of {cases} cases");
}

/// The Monte Carlo mean of the estimator (its own sampling) agrees with the enumerated
/// expectation within 4 standard errors on every component, and is measurably off the
/// exact gradient; the same for binary units, whose expectation is the closed form of
/// the module documentation (each configuration checked exactly first).
#[test]
fn gapped_st_monte_carlo_mean_matches_its_enumerated_expectation() {
    let samples = 100_000;
    // ReinMax's Monte Carlo toy (the same seed)
    let mut rng = StdRng::seed_from_u64(1980);
    let toy = Toy::new(8, 1.0, &mut rng);
    let truth = toy.exact(4);
    for tau in [0.5, 1.0] {
        let expected = expected_gapped_st(&toy, 4, tau, 1.0);
        let mut gst = GappedSt::new(tau, 1.0).unwrap();
        let s = Summary::of(&toy.estimates(&mut gst, 4, samples, &mut rng));
        let (bias, se) = s.bias(&truth.gradient);
        let st_mean = Summary::of(&toy.estimates(
            &mut StraightThroughEstimator::new(StraightThroughKind::Categorical, tau).unwrap(),
            4,
            samples,
            &mut rng,
        ));
        let (st_bias, st_se) = st_mean.bias(&truth.gradient);
        eprintln!(
            "K=4 N=2 tau={tau}: gapped-st bias {bias:.4} (se {se:.4}), variance {:.4} (se {:.4}); st bias {st_bias:.4} (se {st_se:.4}), variance {:.4} (se {:.4})",
            s.variance, s.variance_se, st_mean.variance, st_mean.variance_se
        );
        s.assert_unbiased(
            &expected,
            &format!("gapped-st tau={tau} vs its expectation"),
        );
        assert!(bias > 4.0 * se, "gapped ST is measurably biased");
    }
    // binary units: grad_phi = (1/tau) s (1 - s) f'(b), s = sigmoid(max(phi, kappa)/tau)
    // for b = 1 and sigmoid(max(-phi, kappa)/tau) for b = 0
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let units = Toy::new(4, 1.5, &mut rng);
    let phi = units.logits.as_slice().to_vec();
    for (tau, gap) in [(1.0, 1.0), (0.5, 0.4)] {
        let mut expected = vec![0.0; 4];
        for index in 0..16 {
            let b: Vec<f64> = (0..4).map(|v| ((index >> v) & 1) as f64).collect();
            let q: f64 = (0..4)
                .map(|v| {
                    if b[v] == 1.0 {
                        sigmoid(phi[v])
                    } else {
                        1.0 - sigmoid(phi[v])
                    }
                })
                .product();
            let (za, zb) = (dot(&b, units.a.as_slice()), dot(&b, units.b.as_slice()));
            let (_, cost, grad) = gapped_st_at_bits(&units, &b, tau, gap);
            assert_eq!(cost, units.cost(&b));
            for v in 0..4 {
                let slope = (1.0 - za.tanh().powi(2)) * units.a.as_slice()[v]
                    + 2.0 * zb * units.b.as_slice()[v];
                let signed = if b[v] == 1.0 { phi[v] } else { -phi[v] };
                let s = sigmoid(signed.max(gap) / tau);
                let closed = slope * s * (1.0 - s) / tau;
                assert!(
                    (grad[v] - closed).abs() < 1e-12,
                    "bits {b:?} unit {v}: {} vs {closed}",
                    grad[v]
                );
                expected[v] += q * closed;
            }
        }
        let s = Summary::of(&units.estimates(
            &mut GappedSt::new(tau, gap).unwrap(),
            1,
            samples,
            &mut rng,
        ));
        let (bias, se) = s.bias(&units.exact(1).gradient);
        eprintln!(
            "binary N=4 gapped-st tau={tau} gap={gap}: bias {bias:.4} (se {se:.4}), variance {:.4}",
            s.variance
        );
        s.assert_unbiased(&expected, &format!("binary gapped-st tau={tau}"));
    }
}

/// `GappedSt` on binary units at injected bits: the sample, the cost and the gradient.
fn gapped_st_at_bits(toy: &Toy, bits: &[f64], tau: f64, gap: f64) -> (Tensor<f64>, f64, Vec<f64>) {
    let tape = Tape::new();
    let x = tape.variable(&toy.logits);
    let (a, b) = (tape.constant(&toy.a), tape.constant(&toy.b));
    let injected = InjectedNoise::Sample(Tensor::from_vec(1, bits.len(), bits.to_vec()).unwrap());
    let estimate = GappedSt::new(tau, gap).unwrap().estimate_with_noise(
        x,
        1,
        &injected,
        &mut |z| toy_cost(z, a, b),
        &mut StdRng::seed_from_u64(0),
    );
    let sample = estimate.sample.value().unwrap();
    assert_eq!(sample.as_slice(), bits, "the forward is the bits");
    let cost = estimate.cost.scalar().unwrap();
    tape.backward(estimate.loss).unwrap();
    (sample, cost, x.grad().unwrap().into_vec())
}

/// Injected uniforms give the Gumbel-max sample, the same one the estimator draws from
/// a generator in that state; noise that does not fit is a typed error on the tape.
#[test]
fn gapped_st_at_injected_noise() {
    let mut rng = StdRng::seed_from_u64(2030);
    let logits = Tensor::<f64>::random_normal(5, 8, 0.0, 1.0, &mut rng);
    let u = Tensor::<f64>::random_uniform(5, 8, 1e-6, 1.0 - 1e-6, &mut rng);
    let g = u.map(|u| -(-u.ln()).ln());
    let classes = noise::gumbel_max(&logits, &g, 4).unwrap();
    let expected = noise::one_hot(5, &classes, 4).unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.variable(&logits);
    let injected = InjectedNoise::Uniforms {
        u: u.clone(),
        v: u.clone(),
    };
    let estimate = GappedSt::new(1.0, 1.0).unwrap().estimate_with_noise(
        x,
        4,
        &injected,
        &mut |z| z.square().sum_cols(),
        &mut rng,
    );
    assert_eq!(estimate.sample.value().unwrap(), expected);
    tape.backward(estimate.loss).unwrap();
    // a sample that is not one-hot, and bits of the wrong width
    for (group_size, noise) in [
        (4, InjectedNoise::Sample(Tensor::zeros(5, 8))),
        (1, InjectedNoise::Sample(Tensor::zeros(5, 3))),
    ] {
        let tape = Tape::<f64>::new();
        let estimate = GappedSt::new(1.0, 1.0).unwrap().estimate_with_noise(
            tape.variable(&logits),
            group_size,
            &noise,
            &mut |z| z.sum_cols(),
            &mut rng,
        );
        assert!(estimate.loss.is_poisoned());
        match tape.error() {
            Some(gumbelgrad::Error::InvalidArgument { op, .. }) => assert_eq!(op, "gapped-st"),
            other => panic!("group {group_size}: {other:?}"),
        }
    }
}

#[test]
fn gapped_st_rejects_bad_gaps_and_temperatures() {
    use gumbelgrad::Error;
    use gumbelgrad::estimators::Estimator;
    for gap in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        match GappedSt::new(1.0, gap) {
            Err(Error::InvalidArgument { op, message }) => {
                assert_eq!(op, "GappedSt::new");
                assert!(message.contains("gap"), "{message}");
            }
            other => panic!("gap {gap}: {other:?}"),
        }
        assert!(matches!(
            Estimator::<f64>::gapped_st(1.0, gap),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        GappedSt::new(0.0, 1.0),
        Err(Error::InvalidTemperature { .. })
    ));
    assert!(matches!(
        Estimator::<f32>::gapped_st(1e-45, 1.0),
        Err(Error::TemperatureOutOfRange { .. })
    ));
    // a gap valid in f64 that f32 cannot hold is refused on an f32 tape
    let tape = Tape::<f32>::new();
    let estimate = GappedSt::new(1.0, 1e300).unwrap().estimate(
        tape.variable(&Tensor::zeros(2, 4)),
        4,
        &mut |z| z.sum_cols(),
        &mut StdRng::seed_from_u64(1),
    );
    assert!(estimate.loss.is_poisoned());
    assert!(matches!(tape.error(), Some(Error::InvalidArgument { .. })));
    let mut gst = GappedSt::new(1.0, 0.5).unwrap();
    assert!(gst.set_temperature(f64::NAN).is_err());
    gst.set_temperature(0.7).unwrap();
    assert_eq!((gst.temperature(), gst.gap()), (0.7, 0.5));
    assert_eq!(GradientEstimator::<f64>::name(&gst), "gapped-st");
    assert!(!GradientEstimator::<f64>::is_unbiased(&gst));
}

// ---------------------------------------------------------------- all six

/// The 4-standard-error test can fail: the same RLOO and DisARM estimates are rejected
/// against the exact gradient of a problem whose logits differ by 0.5 in one place
/// (measured: 74 standard errors off for RLOO, 7.4 for DisARM; a shift of 0.3 gives
/// DisARM only 4.5, so smaller errors than that go unseen at this sample size).
#[test]
fn the_unbiasedness_test_has_power() {
    let mut rng = StdRng::seed_from_u64(1990);
    let toy = Toy::new(6, 1.0, &mut rng);
    let mut shifted = toy.logits.clone();
    shifted.as_mut_slice()[0] += 0.5;
    let wrong = Toy {
        logits: shifted,
        a: toy.a.clone(),
        b: toy.b.clone(),
    };
    for (group_size, mut estimator) in [
        (
            3,
            Box::new(Rloo::new(2).unwrap()) as Box<dyn GradientEstimator<f64>>,
        ),
        (1, Box::new(ArmEstimator::disarm())),
    ] {
        let s = Summary::of(&toy.estimates(estimator.as_mut(), group_size, 200_000, &mut rng));
        let target = wrong.exact(group_size).gradient;
        let worst = s
            .mean
            .iter()
            .zip(&s.se)
            .zip(&target)
            .map(|((m, se), t)| (m - t).abs() / se)
            .fold(0.0f64, f64::max);
        eprintln!(
            "{}: largest deviation from the shifted problem's gradient: {worst:.1} se",
            estimator.name()
        );
        assert!(worst > 4.0, "{}: not rejected", estimator.name());
    }
}

/// Every estimator runs in `f32` on categorical and binary latents, with finite
/// gradients, an exactly discrete sample and the cost's mean as the loss value.
#[test]
fn all_six_run_in_f32_on_categorical_and_binary_latents() {
    let mut rng = StdRng::seed_from_u64(1991);
    let estimators: Vec<Box<dyn GradientEstimator<f32>>> = vec![
        Box::new(Rloo::new(3).unwrap()),
        Box::new(ArmEstimator::arm()),
        Box::new(ArmEstimator::disarm()),
        Box::new(GumbelRao::new(0.5, 8).unwrap()),
        Box::new(ReinMax::new(1.3).unwrap()),
        Box::new(GappedSt::new(0.8, 1.0).unwrap()),
    ];
    let names: Vec<&str> = estimators.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "rloo",
            "arm",
            "disarm",
            "gumbel-rao",
            "reinmax",
            "gapped-st"
        ]
    );
    for mut estimator in estimators {
        for group_size in [1, 4] {
            let tape = Tape::<f32>::new();
            let logits = tape.variable(&Tensor::random_normal(16, 12, 0.0, 2.0, &mut rng));
            let target = tape.constant(&Tensor::random_uniform(1, 12, 0.0, 1.0, &mut rng));
            let estimate = estimator.estimate(
                logits,
                group_size,
                &mut |z| (z - target).square().sum_cols(),
                &mut rng,
            );
            let sample = estimate.sample.value().unwrap();
            assert!(sample.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
            if group_size > 1 {
                assert_eq!(sample.sum(), 16.0 * 3.0);
            }
            let loss = estimate.loss.scalar().unwrap();
            let cost = estimate.cost.value().unwrap();
            assert!((loss - cost.sum() / 16.0).abs() < 1e-5);
            tape.backward(estimate.loss).unwrap();
            let grad = logits.grad().unwrap();
            assert!(grad.all_finite(), "{} group {group_size}", estimator.name());
            assert!(grad.as_slice().iter().any(|&g| g != 0.0));
        }
    }
}

/// The six through the `Estimator` enum, built by name: their names, the trait's
/// answers (unbiasedness, latent kinds, temperature, gradient through the sample), the
/// number of cost calls, and `sample` working exactly for the two that pass their
/// gradient through it.
#[test]
fn the_six_through_the_enum() {
    use gumbelgrad::Error;
    use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, LatentKinds};
    let mut rng = StdRng::seed_from_u64(91);
    for (name, unbiased, calls_expected, through_sample) in [
        ("rloo", true, 4, false),
        ("arm", true, 2, false),
        ("disarm", true, 2, false),
        ("gumbel-rao", false, 1, true),
        ("reinmax", false, 1, true),
        ("gapped-st", false, 1, true),
    ] {
        assert!(ESTIMATOR_NAMES.contains(&name), "{name}");
        let mut estimator = Estimator::<f64>::from_name(name, 0.8).unwrap();
        assert_eq!(estimator.name(), name);
        assert_eq!(estimator.is_unbiased(), unbiased, "{name}");
        assert_eq!(estimator.latent_kinds(), LatentKinds::BOTH, "{name}");
        assert_eq!(
            estimator.gradient_through_sample(),
            through_sample,
            "{name}"
        );
        if through_sample {
            assert_eq!(estimator.temperature(), Some(0.8), "{name}");
            estimator.set_temperature(1.7).unwrap();
            assert_eq!(estimator.temperature(), Some(1.7), "{name}");
            assert!(estimator.set_temperature(-1.0).is_err(), "{name}");
            // valid in f64, out of range in f32: refused at construction and on set
            match Estimator::<f32>::from_name(name, 1e-45) {
                Err(Error::TemperatureOutOfRange { float, .. }) => assert_eq!(float, "f32"),
                other => panic!("{name}: {:?}", other.map(|e| e.name())),
            }
            let mut single = Estimator::<f32>::from_name(name, 1.0).unwrap();
            assert!(matches!(
                single.set_temperature(1e-45),
                Err(Error::TemperatureOutOfRange { .. })
            ));
            assert_eq!(single.temperature(), Some(1.0), "{name}");
        } else {
            assert_eq!(estimator.temperature(), None, "{name}");
        }
        for group_size in [4, 1] {
            let tape = Tape::new();
            let logits = tape.variable(&Tensor::random_normal(3, 8, 0.0, 1.0, &mut rng));
            let target = tape.constant(&Tensor::random_normal(1, 8, 0.0, 1.0, &mut rng));
            let mut calls = 0;
            let estimate = estimator.estimate(
                logits,
                group_size,
                &mut |z| {
                    calls += 1;
                    (z * target).sum_cols().square()
                },
                &mut rng,
            );
            assert_eq!(calls, calls_expected, "{name} group {group_size}");
            assert_eq!(estimate.cost.shape(), gumbelgrad::Shape::new(3, 1));
            tape.backward(estimate.loss).unwrap();
            let grad = logits.grad().unwrap();
            assert!(grad.all_finite(), "{name} group {group_size}");
            assert!(grad.as_slice().iter().any(|&g| g != 0.0), "{name}");
        }
        let tape = Tape::new();
        let z = estimator.sample(tape.variable(&Tensor::zeros(2, 8)), 4, &mut rng);
        if through_sample {
            // one-hot: two ones per row
            assert_eq!(z.value().unwrap().sum(), 4.0, "{name}");
        } else {
            assert!(z.is_poisoned(), "{name}");
        }
    }
    assert!(Estimator::<f64>::rloo(1).is_err());
    assert!(Estimator::<f64>::gumbel_rao(0.5, 0).is_err());
    assert!(Estimator::<f64>::reinmax(0.0).is_err());
    assert!(Estimator::<f64>::gapped_st(1.0, 0.0).is_err());
    match Estimator::<f64>::from_name("gapped-st", 0.5).unwrap() {
        Estimator::GappedSt(gst) => {
            assert_eq!(gst.gap(), gumbelgrad::estimators::GAPPED_ST_DEFAULT_GAP)
        }
        other => panic!("gapped-st built {other:?}"),
    }
    assert_eq!(
        Estimator::<f64>::from_name("gumbel-rao", 0.5)
            .map(|e| match e {
                Estimator::GumbelRao(gr) => gr.num_samples(),
                _ => 0,
            })
            .unwrap(),
        gumbelgrad::estimators::GUMBEL_RAO_DEFAULT_SAMPLES
    );
    match Estimator::<f64>::from_name("rloo", 0.5).unwrap() {
        Estimator::Rloo(rloo) => assert_eq!(
            rloo.num_samples(),
            gumbelgrad::estimators::RLOO_DEFAULT_SAMPLES
        ),
        other => panic!("rloo built {other:?}"),
    }
}

/// A few training steps of the VAE with each of the six, on both latent layouts: every
/// step's loss is finite and positive (a negative ELBO of binary images).
#[test]
fn the_six_train_both_vaes_for_a_few_steps() {
    use gumbelgrad::estimators::TemperatureSchedule;
    use gumbelgrad::models::{Latent, TrainConfig, Trainer, VaeConfig};
    use gumbelgrad::optim::LearningRateSchedule;
    let images = Tensor::<f32>::random_uniform(24, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(8))
        .map(|p| if p > 0.5 { 1.0 } else { 0.0 });
    for name in [
        "rloo",
        "arm",
        "disarm",
        "gumbel-rao",
        "reinmax",
        "gapped-st",
    ] {
        for latent in [
            Latent::Categorical {
                variables: 2,
                classes: 3,
            },
            Latent::Bernoulli { units: 4 },
        ] {
            let vae = VaeConfig {
                input_dim: 12,
                latent,
                encoder_hidden: vec![6],
                decoder_hidden: vec![5],
            };
            let config = TrainConfig {
                batch_size: 8,
                learning_rate: LearningRateSchedule::Constant(3e-3),
                temperature: TemperatureSchedule::exponential(1.0, 0.05, 2, 0.5).unwrap(),
                estimator: name.to_string(),
                dynamic_binarization: true,
                seed: 4,
                shards: 1,
            };
            let mut trainer = Trainer::<f32>::new(vae, config).unwrap();
            let mut losses = Vec::new();
            for _ in 0..2 {
                let report = trainer
                    .train_epoch(&images, |step| losses.push(step.loss))
                    .unwrap();
                assert!(report.mean_loss.is_finite(), "{name} on {latent:?}");
            }
            assert_eq!(losses.len(), 6, "{name} on {latent:?}");
            assert!(
                losses.iter().all(|l| l.is_finite() && *l > 0.0),
                "{name} on {latent:?}: {losses:?}"
            );
        }
    }
}
