//! Log-densities of the relaxed distributions: normalisation by quadrature, the
//! change-of-variables identity between eq. 3 and ExpConcrete, hand-computed values,
//! agreement with sampled histograms, and the tape version's gradient.

use gumbelgrad::estimators::density::{
    concrete_log_density, concrete_log_density_var, exp_concrete_log_density,
    exp_concrete_log_density_var, ln_gamma_of_classes, logit_relaxed_bernoulli_log_density,
    logit_relaxed_bernoulli_log_density_var, relaxed_bernoulli_log_density,
    relaxed_bernoulli_log_density_var,
};
use gumbelgrad::estimators::{exp_concrete, gumbel_softmax, noise};
use gumbelgrad::testing::{config, grouped_shape, tensor_of_shape};
use gumbelgrad::{Error, GradcheckOptions, Shape, Tape, Tensor, gradcheck};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// `integral_0^1 p((t, 1-t)) dt` for the K = 2 Concrete density, by the trapezoid rule
/// in logit space (`t = sigmoid(u)`, `dt = t (1 - t) du`), where the integrand decays
/// like `e^(-tau |u|)` and has no endpoint singularity.
fn integrate_k2(logits: [f64; 2], tau: f64) -> f64 {
    let x = Tensor::from_vec(1, 2, logits.to_vec()).unwrap();
    let half_width = 60.0 / tau.min(1.0) + (logits[0] - logits[1]).abs() / tau;
    let steps = 40_000;
    let du = 2.0 * half_width / steps as f64;
    let mut total = 0.0;
    for i in 0..=steps {
        let u = -half_width + i as f64 * du;
        let t = 1.0 / (1.0 + (-u).exp());
        let (ln_t, ln_1mt) = (-(-u).exp().ln_1p(), -(u.exp().ln_1p()));
        let y = Tensor::from_vec(1, 2, vec![t, 1.0 - t]).unwrap();
        let log_p = if t > 0.0 && t < 1.0 {
            concrete_log_density(&y, &x, tau, 2).unwrap().get(0, 0)
        } else {
            f64::NEG_INFINITY
        };
        let weight = if i == 0 || i == steps { 0.5 } else { 1.0 };
        total += weight * (log_p + ln_t + ln_1mt).exp() * du;
    }
    total
}

#[test]
fn concrete_density_integrates_to_one_for_two_classes() {
    for logits in [[0.0, 0.0], [1.5, -0.5], [-3.0, 2.0]] {
        for tau in [0.5, 1.0, 2.0, 5.0] {
            let total = integrate_k2(logits, tau);
            // the trapezoid error at this step is far below 1e-6 for a smooth integrand
            assert!(
                (total - 1.0).abs() < 1e-6,
                "logits {logits:?}, tau {tau}: {total}"
            );
        }
    }
}

#[test]
fn hand_computed_values() {
    // K = 2, equal logits, tau = 1: uniform on the segment, density 1.
    let x = Tensor::<f64>::from_vec(1, 2, vec![-0.7, -0.7]).unwrap();
    for t in [0.01, 0.3, 0.5, 0.99] {
        let y = Tensor::from_vec(1, 2, vec![t, 1.0 - t]).unwrap();
        assert!(
            concrete_log_density(&y, &x, 1.0, 2)
                .unwrap()
                .get(0, 0)
                .abs()
                < 1e-13
        );
    }
    // K = 3, pi = (0.2, 0.3, 0.5), tau = 0.5, y = pi, in the product form of eq. 3:
    // Gamma(3) tau^2 (sum pi_i / y_i^tau)^(-3) prod pi_i / y_i^(tau + 1)
    let pi: [f64; 3] = [0.2, 0.3, 0.5];
    let tau: f64 = 0.5;
    let sum: f64 = pi.iter().map(|p| p / p.powf(tau)).sum();
    let product: f64 = pi.iter().map(|p| p / p.powf(tau + 1.0)).product();
    let expected = (2.0 * tau * tau * sum.powi(-3) * product).ln();
    let logits = Tensor::from_vec(1, 3, pi.map(f64::ln).to_vec()).unwrap();
    let y = Tensor::from_vec(1, 3, pi.to_vec()).unwrap();
    let got = concrete_log_density(&y, &logits, tau, 3).unwrap().get(0, 0);
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    // ... which is -0.535352... by hand: ln 2 - 2 ln 2 - 0.5 ln(0.03) - 3 ln(sum sqrt(pi))
    assert!((got - (-0.535_352)).abs() < 1e-5, "{got}");
    // unnormalised logits give the same density
    let shifted = logits.map(|v| v + 4.2);
    let again = concrete_log_density(&y, &shifted, tau, 3)
        .unwrap()
        .get(0, 0);
    assert!((again - got).abs() < 1e-12);
    assert!((ln_gamma_of_classes(5) - 24f64.ln()).abs() < 1e-14);
}

proptest! {
    #![proptest_config(config(24))]

    /// eq. 3 at y equals ExpConcrete at ln y minus sum ln y (the Jacobian of exp).
    #[test]
    fn concrete_equals_exp_concrete_minus_sum_log_y(
        (shape, k, seed, tau) in (grouped_shape(1..=3, 8), any::<u64>(), 0.2f64..4.0)
            .prop_map(|((r, k, g), seed, tau)| (Shape::new(r, k * g), k, seed, tau))
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let logits = Tensor::<f64>::random_normal(shape.rows, shape.cols, 0.0, 1.5, &mut rng);
        let g = noise::gumbel(shape.rows, shape.cols, &mut rng);
        let tape = Tape::new();
        let (x, n) = (tape.constant(&logits), tape.constant(&g));
        let log_y = exp_concrete(x, n, tau, k).value().unwrap();
        let y = gumbel_softmax(x, n, tau, k).value().unwrap();
        prop_assume!(y.as_slice().iter().all(|&v| v > 0.0));
        let eq3 = concrete_log_density(&y, &logits, tau, k).unwrap();
        let exp = exp_concrete_log_density(&log_y, &logits, tau, k).unwrap();
        for (row, (a, b)) in eq3.as_slice().iter().zip(exp.as_slice()).enumerate() {
            let sum_log_y: f64 = log_y.as_slice()[row * k..(row + 1) * k].iter().sum();
            prop_assert!((a - (b - sum_log_y)).abs() < 1e-9 * (1.0 + a.abs()), "{} vs {}", a, b - sum_log_y);
        }
    }

    /// The tape version agrees with the plain one and is gradchecked in both inputs.
    #[test]
    fn exp_concrete_density_on_tape(
        (logits, log_y, k, tau) in (grouped_shape(1..=3, 8), 0.3f64..3.0).prop_flat_map(|((r, k, g), tau)| {
            let shape = Shape::new(r, k * g);
            (tensor_of_shape(shape, -2.0..2.0), tensor_of_shape(shape, -4.0..0.0), Just(k), Just(tau))
        })
    ) {
        let plain = exp_concrete_log_density(&log_y, &logits, tau, k).unwrap();
        let tape = Tape::new();
        let t = tape.constant(&Tensor::scalar(tau));
        let on_tape = exp_concrete_log_density_var(tape.constant(&log_y), tape.constant(&logits), t, k)
            .value().unwrap();
        for (row, &v) in on_tape.as_slice().iter().enumerate() {
            let expected: f64 = plain.row(row).iter().sum();
            prop_assert!((v - expected).abs() < 1e-10 * (1.0 + v.abs()));
        }
        let report = gradcheck(&[log_y, logits, Tensor::scalar(tau)], GradcheckOptions::default(), |_, v| {
            exp_concrete_log_density_var(v[0], v[1], v[2], k)
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-7, "{}", report);
    }

    /// The Concrete (eq. 3) density on the tape agrees with the plain one and is
    /// gradchecked in the sample, the logits and the temperature.
    #[test]
    fn concrete_density_on_tape(
        (logits, y, k, tau) in (grouped_shape(1..=3, 8), 0.3f64..3.0).prop_flat_map(|((r, k, g), tau)| {
            let shape = Shape::new(r, k * g);
            (tensor_of_shape(shape, -2.0..2.0), tensor_of_shape(shape, 0.05..1.0), Just(k), Just(tau))
        })
    ) {
        let plain = concrete_log_density(&y, &logits, tau, k).unwrap();
        let tape = Tape::new();
        let t = tape.constant(&Tensor::scalar(tau));
        let on_tape = concrete_log_density_var(tape.constant(&y), tape.constant(&logits), t, k)
            .value().unwrap();
        for (row, &v) in on_tape.as_slice().iter().enumerate() {
            let expected: f64 = plain.row(row).iter().sum();
            prop_assert!((v - expected).abs() < 1e-9 * (1.0 + v.abs()), "{} vs {}", v, expected);
        }
        let report = gradcheck(&[y, logits, Tensor::scalar(tau)], GradcheckOptions::default(), |_, v| {
            concrete_log_density_var(v[0], v[1], v[2], k)
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-6, "{}", report);
    }

    /// The binary Concrete densities (in `(0, 1)` and in logit space) on the tape agree
    /// with the plain ones and are gradchecked in the sample, the logits and the
    /// temperature.
    #[test]
    fn relaxed_bernoulli_densities_on_tape(
        (logits, y, z, tau) in (1usize..=3, 1usize..=5, 0.3f64..3.0).prop_flat_map(|(r, n, tau)| {
            let shape = Shape::new(r, n);
            (tensor_of_shape(shape, -2.0..2.0), tensor_of_shape(shape, 0.05..0.95),
             tensor_of_shape(shape, -3.0..3.0), Just(tau))
        })
    ) {
        let tape = Tape::new();
        let t = tape.constant(&Tensor::scalar(tau));
        let x = tape.constant(&logits);
        for (on_tape, plain) in [
            (relaxed_bernoulli_log_density_var(tape.constant(&y), x, t).value().unwrap(),
             relaxed_bernoulli_log_density(&y, &logits, tau).unwrap()),
            (logit_relaxed_bernoulli_log_density_var(tape.constant(&z), x, t).value().unwrap(),
             logit_relaxed_bernoulli_log_density(&z, &logits, tau).unwrap()),
        ] {
            for (row, &v) in on_tape.as_slice().iter().enumerate() {
                let expected: f64 = plain.row(row).iter().sum();
                prop_assert!((v - expected).abs() < 1e-9 * (1.0 + v.abs()), "{} vs {}", v, expected);
            }
        }
        let report = gradcheck(&[y, logits.clone(), Tensor::scalar(tau)], GradcheckOptions::default(), |_, v| {
            relaxed_bernoulli_log_density_var(v[0], v[1], v[2])
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-6, "{}", report);
        let report = gradcheck(&[z, logits, Tensor::scalar(tau)], GradcheckOptions::default(), |_, v| {
            logit_relaxed_bernoulli_log_density_var(v[0], v[1], v[2])
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-7, "{}", report);
    }
}

/// The relaxed Bernoulli with logit x is the K = 2 Concrete with logits (x, 0); its
/// logit-space density integrates to 1; its density matches a histogram of samples.
#[test]
fn relaxed_bernoulli_density_agrees_with_concrete_and_samples() {
    for (x, tau) in [(0.8, 0.5), (-1.2, 1.0), (0.0, 2.0)] {
        let logits = Tensor::<f64>::scalar(x);
        for t in [0.05, 0.4, 0.77, 0.95] {
            let y = Tensor::scalar(t);
            let bernoulli = relaxed_bernoulli_log_density(&y, &logits, tau)
                .unwrap()
                .get(0, 0);
            let concrete = concrete_log_density(
                &Tensor::from_vec(1, 2, vec![t, 1.0 - t]).unwrap(),
                &Tensor::from_vec(1, 2, vec![x, 0.0]).unwrap(),
                tau,
                2,
            )
            .unwrap()
            .get(0, 0);
            assert!(
                (bernoulli - concrete).abs() < 1e-12,
                "{bernoulli} vs {concrete}"
            );
        }
        // logit space: trapezoid over z
        let (lo, hi, steps) = (-80.0, 80.0, 80_000);
        let dz = (hi - lo) / steps as f64;
        let total: f64 = (0..=steps)
            .map(|i| {
                let z = Tensor::scalar(lo + i as f64 * dz);
                let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
                w * logit_relaxed_bernoulli_log_density(&z, &logits, tau)
                    .unwrap()
                    .get(0, 0)
                    .exp()
                    * dz
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "x {x} tau {tau}: {total}");
        // histogram of sampled y = sigmoid((x + l)/tau) on [0.2, 0.4): probability mass
        // from the density (trapezoid) vs the sampled frequency, within 4 SE
        let mut rng = StdRng::seed_from_u64(71);
        let draws = 100_000;
        let l = noise::logistic::<f64, _>(draws, 1, &mut rng);
        let hits = l
            .as_slice()
            .iter()
            .map(|&li| 1.0 / (1.0 + (-(x + li) / tau).exp()))
            .filter(|y| (0.2..0.4).contains(y))
            .count();
        let n = 2000;
        let mass: f64 = (0..=n)
            .map(|i| {
                let t = 0.2 + 0.2 * i as f64 / n as f64;
                let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                w * relaxed_bernoulli_log_density(&Tensor::scalar(t), &logits, tau)
                    .unwrap()
                    .get(0, 0)
                    .exp()
                    * 0.2
                    / n as f64
            })
            .sum();
        let freq = hits as f64 / draws as f64;
        let se = (mass * (1.0 - mass) / draws as f64).sqrt();
        assert!(
            (freq - mass).abs() < 4.0 * se,
            "x {x} tau {tau}: {freq} vs {mass}"
        );
    }
}

#[test]
fn density_errors_are_typed() {
    let x = Tensor::<f64>::zeros(1, 3);
    let y = Tensor::from_vec(1, 3, vec![0.5, 0.5, 0.0]).unwrap();
    assert!(matches!(
        concrete_log_density(&y, &x, 1.0, 3),
        Err(Error::InvalidArgument { .. })
    ));
    let y = Tensor::from_vec(1, 3, vec![0.2, 0.3, 0.5]).unwrap();
    assert!(matches!(
        concrete_log_density(&y, &x, 0.0, 3),
        Err(Error::InvalidTemperature { .. })
    ));
    assert!(matches!(
        concrete_log_density(&y, &x, 1.0, 2),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        concrete_log_density(&y, &Tensor::zeros(1, 6), 1.0, 3),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        relaxed_bernoulli_log_density(&Tensor::scalar(1.0), &Tensor::scalar(0.0), 1.0),
        Err(Error::InvalidArgument { .. })
    ));
    let tape = Tape::<f64>::new();
    // (a NaN cannot even enter the tape: that is a NonFiniteInput error)
    let zero = tape.constant(&Tensor::scalar(0.0));
    let v = exp_concrete_log_density_var(tape.constant(&y), tape.constant(&x), zero, 3);
    assert!(
        matches!(v.value(), Err(Error::InvalidTemperature { .. })),
        "{:?}",
        v.value()
    );
    let tape = Tape::<f64>::new();
    let negative = tape.constant(&Tensor::scalar(-0.5));
    let v = relaxed_bernoulli_log_density_var(
        tape.constant(&Tensor::scalar(0.5)),
        tape.constant(&Tensor::scalar(0.0)),
        negative,
    );
    assert!(matches!(v.value(), Err(Error::InvalidTemperature { .. })));
    let tape = Tape::<f64>::new();
    let not_scalar = tape.constant(&Tensor::ones(1, 2));
    let v = concrete_log_density_var(tape.constant(&y), tape.constant(&x), not_scalar, 3);
    assert!(matches!(v.value(), Err(Error::ShapeMismatch { .. })));
}

/// Huge equal logits (`1e16`, where the `f64` spacing is 2) must not swallow the
/// sample: `K = 3`, `tau = 1`, `y = (0.2, 0.3, 0.5)`. By shift invariance the value is
/// the one at logits 0: `ln 2 + 2 sum(-ln y) - 3 ln sum(1/y) = 0.70014` (Concrete) and
/// `ln 2 + sum(-ln y) - 3 ln sum(1/y) = -2.80642` (ExpConcrete), for the plain and the
/// tape versions.
#[test]
fn huge_equal_logits_give_the_shift_invariant_density() {
    let y = [0.2f64, 0.3, 0.5];
    let sum_neg_ln: f64 = y.iter().map(|v| -v.ln()).sum();
    let lse = y.iter().map(|v| 1.0 / v).sum::<f64>().ln();
    let concrete = 2f64.ln() + 2.0 * sum_neg_ln - 3.0 * lse;
    let exp = 2f64.ln() + sum_neg_ln - 3.0 * lse;
    assert!((concrete - 0.700_138).abs() < 1e-6 && (exp + 2.806_420).abs() < 1e-6);
    let sample = Tensor::<f64>::from_vec(1, 3, y.to_vec()).unwrap();
    let log_sample = Tensor::from_vec(1, 3, y.iter().map(|v| v.ln()).collect()).unwrap();
    for big in [1e16, -1e16, 1e300, 0.0] {
        let logits = Tensor::<f64>::full(1, 3, big);
        let plain = concrete_log_density(&sample, &logits, 1.0, 3)
            .unwrap()
            .get(0, 0);
        assert!(
            (plain - concrete).abs() < 1e-12,
            "Concrete at {big:e}: {plain}"
        );
        let plain = exp_concrete_log_density(&log_sample, &logits, 1.0, 3)
            .unwrap()
            .get(0, 0);
        assert!(
            (plain - exp).abs() < 1e-12,
            "ExpConcrete at {big:e}: {plain}"
        );
        let tape = Tape::new();
        let (x, tau) = (tape.variable(&logits), tape.constant(&Tensor::scalar(1.0)));
        let on_tape = concrete_log_density_var(tape.constant(&sample), x, tau, 3);
        let value = on_tape.scalar().unwrap();
        assert!(
            (value - concrete).abs() < 1e-12,
            "Concrete var at {big:e}: {value}"
        );
        tape.backward(on_tape).unwrap();
        let grad = x.grad().unwrap();
        // d ln p / d x_i = 1 - K softmax(x - tau ln y)_i, finite and summing to 0
        assert!(grad.all_finite() && grad.sum().abs() < 1e-12, "{grad:?}");
        let value = exp_concrete_log_density_var(tape.constant(&log_sample), x, tau, 3)
            .scalar()
            .unwrap();
        assert!(
            (value - exp).abs() < 1e-12,
            "ExpConcrete var at {big:e}: {value}"
        );
    }
    // f32: 1e16 has a spacing of 2^30 there; the shift keeps the same answer.
    let logits = Tensor::<f32>::full(1, 3, 1e16);
    let sample32 = sample.cast::<f32>();
    let plain = concrete_log_density(&sample32, &logits, 1.0, 3)
        .unwrap()
        .get(0, 0);
    assert!((f64::from(plain) - concrete).abs() < 1e-5, "f32: {plain}");
    let tape = Tape::<f32>::new();
    let value = concrete_log_density_var(
        tape.constant(&sample32),
        tape.constant(&logits),
        tape.constant(&Tensor::scalar(1.0)),
        3,
    )
    .scalar()
    .unwrap();
    assert!(
        (f64::from(value) - concrete).abs() < 1e-5,
        "f32 var: {value}"
    );
}

proptest! {
    #![proptest_config(config(32))]

    /// Adding a constant (small or huge) to one group's logits changes neither the
    /// Concrete nor the ExpConcrete log-density, plain or on the tape, nor the tape
    /// version's gradient in the logits. The logits lie on a grid of `2^-10` and the
    /// shifts are whole numbers below `2^40`, so that `x + c` is exact in `f64` and
    /// the shifted logits are the same distribution (equal huge logits, where the grid
    /// does not matter, are the regression test above).
    #[test]
    fn concrete_densities_are_shift_invariant(
        (logits, log_y, k, tau) in (grouped_shape(1..=3, 8), 0.3f64..3.0).prop_flat_map(|((r, k, g), tau)| {
            let k = k.max(2);
            let shape = Shape::new(r, k * g);
            (tensor_of_shape(shape, -3.0..3.0).prop_map(|t| t.map(|v| (v * 1024.0).round() / 1024.0)), tensor_of_shape(shape, -4.0..-0.01), Just(k), Just(tau))
        }),
        shift in prop_oneof![(-(1i64 << 40)..(1i64 << 40)).prop_map(|c| c as f64), Just((1u64 << 40) as f64), Just(-((1u64 << 40) as f64)), (-50i64..50).prop_map(|c| c as f64)],
        group_pick in any::<usize>(),
    ) {
        let groups = logits.len() / k;
        let group = group_pick % groups;
        let mut shifted = logits.clone();
        for v in &mut shifted.as_mut_slice()[group * k..(group + 1) * k] {
            *v += shift;
        }
        let y = Tensor::from_vec(log_y.rows(), log_y.cols(), log_y.as_slice().iter().map(|v| v.exp()).collect()).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs());
        let pairs = [
            (concrete_log_density(&y, &logits, tau, k).unwrap(), concrete_log_density(&y, &shifted, tau, k).unwrap()),
            (exp_concrete_log_density(&log_y, &logits, tau, k).unwrap(), exp_concrete_log_density(&log_y, &shifted, tau, k).unwrap()),
        ];
        for (a, b) in &pairs {
            for (p, q) in a.as_slice().iter().zip(b.as_slice()) {
                prop_assert!(close(*p, *q), "shift {:e}: {} vs {}", shift, p, q);
            }
        }
        let on_tape = |x: &Tensor<f64>| {
            let tape = Tape::new();
            let xs = tape.variable(x);
            let t = tape.constant(&Tensor::scalar(tau));
            let c = concrete_log_density_var(tape.constant(&y), xs, t, k);
            let e = exp_concrete_log_density_var(tape.constant(&log_y), xs, t, k);
            let (cv, ev) = (c.value().unwrap(), e.value().unwrap());
            tape.backward(c.sum()).unwrap();
            (cv, ev, xs.grad().unwrap())
        };
        let (c0, e0, g0) = on_tape(&logits);
        let (c1, e1, g1) = on_tape(&shifted);
        for (a, b) in c0.as_slice().iter().zip(c1.as_slice()).chain(e0.as_slice().iter().zip(e1.as_slice())) {
            prop_assert!(close(*a, *b), "tape, shift {:e}: {} vs {}", shift, a, b);
        }
        for (a, b) in g0.as_slice().iter().zip(g1.as_slice()) {
            prop_assert!((a - b).abs() <= 1e-9, "gradient, shift {:e}: {} vs {}", shift, a, b);
        }
    }
}
