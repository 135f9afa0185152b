//! Gumbel-Softmax and straight-through nodes: gradchecks with the noise held fixed,
//! exact one-hot forwards, temperatures, extremes, the `Estimator` enum.

use gumbelgrad::estimators::{
    Estimator, GradientEstimator, LearnableTemperature, TemperatureSchedule, exp_concrete,
    gumbel_softmax, gumbel_softmax_learned_temperature, noise, st, st_argmax, st_gumbel_softmax,
};
use gumbelgrad::testing::{config, grouped_shape, tensor_of_shape};
use gumbelgrad::{Error, Float, GradcheckOptions, Tape, Tensor, gradcheck};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Logits, Gumbel noise (from `seed`) and a temperature, for grouped shapes up to 8 columns.
fn relaxation_case() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>, usize, f64)> {
    (grouped_shape(1..=3, 8), any::<u64>(), 0.3f64..3.0).prop_flat_map(
        |((rows, k, groups), seed, tau)| {
            let shape = gumbelgrad::Shape::new(rows, k * groups);
            let mut rng = StdRng::seed_from_u64(seed);
            let g = noise::gumbel::<f64, _>(rows, k * groups, &mut rng);
            (
                tensor_of_shape(shape, -3.0..3.0),
                Just(g),
                Just(k),
                Just(tau),
            )
        },
    )
}

const TOLERANCE: f64 = 1e-7;

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn gumbel_softmax_gradcheck((logits, g, k, tau) in relaxation_case()) {
        // both inputs as variables: y depends on x + g, so both get the same VJP
        let report = gradcheck(&[logits, g], GradcheckOptions::default(), |_, v| {
            gumbel_softmax(v[0], v[1], tau, k)
        }).unwrap();
        prop_assert!(report.max_rel_error < TOLERANCE, "{}", report);
    }

    #[test]
    fn gumbel_softmax_learned_temperature_gradcheck((logits, g, k, tau) in relaxation_case()) {
        let tau = Tensor::scalar(tau);
        let report = gradcheck(&[logits, tau], GradcheckOptions::default(), |tape, v| {
            let g = tape.constant(&g);
            gumbel_softmax_learned_temperature(v[0], g, v[1], k)
        }).unwrap();
        prop_assert!(report.max_rel_error < TOLERANCE, "{}", report);
    }

    #[test]
    fn learnable_log_temperature_gradcheck((logits, g, k, tau) in relaxation_case()) {
        // d/d log tau through tau = exp(log tau)
        let log_tau = Tensor::scalar(tau.ln());
        let report = gradcheck(&[logits, log_tau], GradcheckOptions::default(), |tape, v| {
            let g = tape.constant(&g);
            gumbel_softmax_learned_temperature(v[0], g, v[1].exp(), k)
        }).unwrap();
        prop_assert!(report.max_rel_error < TOLERANCE, "{}", report);
    }

    #[test]
    fn exp_concrete_gradcheck((logits, g, k, tau) in relaxation_case()) {
        let report = gradcheck(&[logits, g], GradcheckOptions::default(), |_, v| {
            exp_concrete(v[0], v[1], tau, k)
        }).unwrap();
        prop_assert!(report.max_rel_error < TOLERANCE, "{}", report);
    }

    #[test]
    fn exp_concrete_is_log_of_gumbel_softmax((logits, g, k, tau) in relaxation_case()) {
        let tape = Tape::new();
        let x = tape.constant(&logits);
        let n = tape.constant(&g);
        let y = gumbel_softmax(x, n, tau, k).value().unwrap();
        let log_y = exp_concrete(x, n, tau, k).value().unwrap();
        for (a, b) in y.as_slice().iter().zip(log_y.as_slice()) {
            prop_assert!((a.ln() - b).abs() < 1e-12 * (1.0 + b.abs()), "{} vs {}", a.ln(), b);
        }
    }

    /// ST-GS: forward exactly one-hot at argmax(x + g) = argmax of the GS sample;
    /// backward equal to the gradient of the (gradchecked) GS op.
    #[test]
    fn st_gumbel_softmax_forward_one_hot_backward_gs((logits, g, k, tau) in relaxation_case()) {
        let weights = Tensor::random_uniform(logits.rows(), logits.cols(), -1.0, 1.0,
            &mut StdRng::seed_from_u64(5));
        let (hard, hard_grad) = grad_of(&logits, |x| {
            let n = x.tape().constant(&g);
            st_gumbel_softmax(x, n, tau, k)
        }, &weights);
        let (soft, soft_grad) = grad_of(&logits, |x| {
            let n = x.tape().constant(&g);
            gumbel_softmax(x, n, tau, k)
        }, &weights);
        for (h, s) in hard.groups(k).unwrap().zip(soft.groups(k).unwrap()) {
            prop_assert_eq!(h.iter().filter(|&&v| v == 1.0).count(), 1);
            prop_assert_eq!(h.iter().filter(|&&v| v == 0.0).count(), k - 1);
            let hot = h.iter().position(|&v| v == 1.0).unwrap();
            let best = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert_eq!(s[hot], best);
        }
        prop_assert!(hard_grad.max_abs_diff(&soft_grad).unwrap() < 1e-14);
    }

    /// ST (categorical) and ST-argmax: backward equal to the gradient of
    /// softmax(x / tau), i.e. the GS op with zero noise.
    #[test]
    fn st_categorical_and_argmax_backward_is_tempered_softmax((logits, g, k, tau) in relaxation_case()) {
        let weights = Tensor::random_uniform(logits.rows(), logits.cols(), -1.0, 1.0,
            &mut StdRng::seed_from_u64(6));
        let zero = Tensor::zeros(logits.rows(), logits.cols());
        let (_, soft_grad) = grad_of(&logits, |x| {
            let n = x.tape().constant(&zero);
            gumbel_softmax(x, n, tau, k)
        }, &weights);
        let (hard, st_grad) = grad_of(&logits, |x| {
            let n = x.tape().constant(&g);
            st(x, n, tau, k)
        }, &weights);
        let classes = noise::gumbel_max(&logits, &g, k).unwrap();
        prop_assert_eq!(&hard, &noise::one_hot(logits.rows(), &classes, k).unwrap());
        prop_assert!(st_grad.max_abs_diff(&soft_grad).unwrap() < 1e-14);
        let (hard, argmax_grad) = grad_of(&logits, |x| st_argmax(x, tau, k), &weights);
        let classes = noise::gumbel_max(&logits, &zero, k).unwrap();
        prop_assert_eq!(&hard, &noise::one_hot(logits.rows(), &classes, k).unwrap());
        prop_assert!(argmax_grad.max_abs_diff(&soft_grad).unwrap() < 1e-14);
    }
}

/// Value of `f(x)` and the gradient of `sum(weights * f(x))` with respect to `x`.
fn grad_of<F>(x: &Tensor<f64>, f: F, weights: &Tensor<f64>) -> (Tensor<f64>, Tensor<f64>)
where
    F: for<'t> Fn(gumbelgrad::Var<'t, f64>) -> gumbelgrad::Var<'t, f64>,
{
    let tape = Tape::new();
    let v = tape.variable(x);
    let y = f(v);
    let w = tape.constant(weights);
    tape.backward((y * w).sum()).unwrap();
    (y.value().unwrap(), v.grad().unwrap())
}

#[test]
fn uniform_draws_avoid_zero_and_one_and_extreme_noise_is_finite() {
    for u in [f64::MIN_POSITIVE, 1e-300, 0.5, 1.0 - f64::EPSILON / 2.0] {
        assert!(noise::gumbel_from_uniform(u).is_finite(), "u = {u}");
        assert!(noise::logistic_from_uniform(u).is_finite(), "u = {u}");
    }
    for u in [f32::MIN_POSITIVE, 0.5, 1.0 - f32::EPSILON / 2.0] {
        assert!(noise::gumbel_from_uniform(u).is_finite(), "u = {u}");
        assert!(noise::logistic_from_uniform(u).is_finite(), "u = {u}");
    }
    let mut rng = StdRng::seed_from_u64(11);
    let u = noise::uniform::<f32, _>(200, 500, &mut rng);
    assert!(
        u.as_slice()
            .iter()
            .all(|&x| (f32::MIN_POSITIVE..1.0).contains(&x))
    );
}

/// Runs the GS, ST-GS, ExpConcrete, ST and ST-argmax nodes at extreme logits and
/// temperatures with the finite check on, in `T`.
fn extremes<T: Float>() {
    let mut rng = StdRng::seed_from_u64(12);
    let logits = Tensor::<T>::from_vec(
        2,
        4,
        [1e4, -1e4, 0.0, 1e4, -1e4, -1e4, -1e4, 1e4]
            .map(T::from_f64)
            .to_vec(),
    )
    .unwrap();
    for tau in [1e-3, 1.0, 1e3] {
        for k in [2, 4] {
            let tape = Tape::<T>::new();
            tape.set_finite_check(true);
            let x = tape.variable(&logits);
            let g = tape.constant(&noise::gumbel(2, 4, &mut rng));
            let w = tape.constant(&Tensor::random_uniform(2, 4, -1.0, 1.0, &mut rng));
            let outputs = [
                gumbel_softmax(x, g, tau, k),
                st_gumbel_softmax(x, g, tau, k),
                exp_concrete(x, g, tau, k),
                st(x, g, tau, k),
                st_argmax(x, tau, k),
            ];
            let mut loss = tape.scalar(T::ZERO);
            for y in outputs {
                assert!(y.value().unwrap().all_finite(), "tau {tau}, k {k}");
                loss = loss + (y * w).sum();
            }
            tape.backward(loss).unwrap();
            assert!(x.grad().unwrap().all_finite(), "tau {tau}, k {k}");
        }
    }
}

#[test]
fn extreme_logits_and_temperatures_stay_finite_f64() {
    extremes::<f64>();
}

#[test]
fn extreme_logits_and_temperatures_stay_finite_f32() {
    extremes::<f32>();
}

#[test]
fn invalid_temperatures_are_typed_errors() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, -0.0] {
        let is_temperature_error =
            |r: Result<(), Error>| matches!(r, Err(Error::InvalidTemperature { .. }));
        assert!(is_temperature_error(
            Estimator::<f64>::gumbel_softmax(bad).map(|_| ())
        ));
        assert!(is_temperature_error(
            Estimator::<f64>::st_gumbel_softmax(bad).map(|_| ())
        ));
        assert!(is_temperature_error(
            TemperatureSchedule::constant(bad).map(|_| ())
        ));
        assert!(is_temperature_error(
            TemperatureSchedule::exponential(1.0, 1e-4, 1000, bad).map(|_| ())
        ));
        assert!(is_temperature_error(
            LearnableTemperature::<f64>::new(bad).map(|_| ())
        ));
        let mut estimator = Estimator::<f64>::gumbel_softmax(1.0).unwrap();
        assert!(is_temperature_error(estimator.set_temperature(bad)));
        assert_eq!(estimator.temperature(), Some(1.0));
        // on the tape: sticky error, no NaN
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::zeros(1, 3));
        let g = tape.constant(&Tensor::zeros(1, 3));
        let y = gumbel_softmax(x, g, bad, 3);
        assert!(matches!(y.value(), Err(Error::InvalidTemperature { .. })));
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::zeros(1, 3));
        let g = tape.constant(&Tensor::zeros(1, 3));
        let tau = tape.constant(&Tensor::scalar(if bad.is_finite() { bad } else { -2.0 }));
        let y = gumbel_softmax_learned_temperature(x, g, tau, 3);
        assert!(matches!(
            tape.backward(y.sum()),
            Err(Error::InvalidTemperature { .. })
        ));
    }
    // a temperature that underflows to 0 in f32 is rejected too
    let tape = Tape::<f32>::new();
    let x = tape.variable(&Tensor::zeros(1, 2));
    let y = gumbel_softmax(x, x, 1e-60, 2);
    assert!(matches!(
        y.value(),
        Err(Error::TemperatureOutOfRange { .. })
    ));
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 6));
    let g = tape.constant(&Tensor::zeros(2, 4));
    let y = gumbel_softmax(x, g, 1.0, 2);
    match y.value() {
        Err(Error::ShapeMismatch {
            op, left, right, ..
        }) => {
            assert_eq!(op, "gumbel_softmax");
            assert_eq!((left.cols, right.cols), (6, 4));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 6));
    let y = st_argmax(x, 1.0, 4); // 4 does not divide 6
    assert!(matches!(y.value(), Err(Error::InvalidArgument { .. })));
    // a cost closure returning the wrong shape
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 6));
    let mut estimator = Estimator::<f64>::gumbel_softmax(1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let estimate = estimator.estimate(x, 3, &mut |z| z.sum(), &mut rng);
    assert!(matches!(
        estimate.loss.value(),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn temperature_schedule_matches_the_paper_formula() {
    let schedule = TemperatureSchedule::exponential(2.0, 3e-5, 2000, 0.5).unwrap();
    for step in [0u64, 1, 1999, 2000, 2001, 45_678, 10_000_000] {
        let last_update = (step / 2000 * 2000) as f64;
        let expected = f64::max(0.5, 2.0 * (-3e-5 * last_update).exp());
        assert_eq!(schedule.at(step).unwrap(), expected, "step {step}");
    }
    assert_eq!(schedule.at(1999).unwrap(), 2.0);
    assert!(schedule.at(2000).unwrap() < 2.0);
    assert!(TemperatureSchedule::exponential(1.0, -1.0, 10, 0.5).is_err());
    assert!(TemperatureSchedule::exponential(1.0, 1e-4, 0, 0.5).is_err());
    // a hand-built schedule with a bad floor is caught on use
    let bad = TemperatureSchedule::Exponential {
        initial: 1.0,
        rate: 1.0,
        every: 1,
        minimum: 0.0,
    };
    assert!(matches!(
        bad.at(10_000),
        Err(Error::InvalidTemperature { .. })
    ));
    assert_eq!(
        TemperatureSchedule::constant(0.7).unwrap().at(123).unwrap(),
        0.7
    );
}

#[test]
fn learnable_temperature_round_trips() {
    let mut t = LearnableTemperature::<f64>::new(0.25).unwrap();
    assert!((t.temperature() - 0.25).abs() < 1e-15);
    t.set(3.0).unwrap();
    assert!((t.temperature() - 3.0).abs() < 1e-14);
    assert!(t.set(0.0).is_err());
    assert!((t.temperature() - 3.0).abs() < 1e-14);
}

#[test]
fn estimator_enum_by_name_and_dispatch() {
    let mut rng = StdRng::seed_from_u64(3);
    for (name, expected, one_hot) in [
        ("gumbel-softmax", "gumbel-softmax", false),
        ("GS", "gumbel-softmax", false),
        ("st-gumbel-softmax", "st-gumbel-softmax", true),
        ("st", "st", true),
        ("st_argmax", "st-argmax", true),
    ] {
        let mut estimator = Estimator::<f64>::from_name(name, 0.8).unwrap();
        assert_eq!(estimator.name(), expected);
        assert!(!estimator.is_unbiased());
        assert_eq!(estimator.temperature(), Some(0.8));
        let tape = Tape::new();
        let logits = tape.variable(&Tensor::random_normal(3, 8, 0.0, 1.0, &mut rng));
        let target = tape.constant(&Tensor::random_normal(1, 8, 0.0, 1.0, &mut rng));
        let mut calls = 0;
        let estimate = estimator.estimate(
            logits,
            4,
            &mut |z| {
                calls += 1;
                (z * target).sum_cols()
            },
            &mut rng,
        );
        assert_eq!(calls, 1);
        let sample = estimate.sample.value().unwrap();
        for group in sample.groups(4).unwrap() {
            assert!((group.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let ones = group.iter().filter(|&&v| v == 1.0).count();
            assert_eq!(
                one_hot,
                ones == 1 && group.iter().all(|&v| v == 0.0 || v == 1.0)
            );
        }
        assert_eq!(estimate.cost.shape(), gumbelgrad::Shape::new(3, 1));
        tape.backward(estimate.loss).unwrap();
        let grad = logits.grad().unwrap();
        assert!(grad.all_finite());
        assert!(grad.as_slice().iter().any(|&g| g != 0.0));
    }
    match Estimator::<f64>::from_name("nope", 1.0) {
        Err(Error::InvalidArgument { message, .. }) => assert!(message.contains("gumbel-softmax")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn saved_noise_replays_the_same_sample() {
    let mut rng = StdRng::seed_from_u64(9);
    let logits = Tensor::random_normal(2, 6, 0.0, 1.0, &mut rng);
    let mut estimator = gumbelgrad::estimators::GumbelSoftmaxEstimator::<f64>::new(0.5).unwrap();
    let tape = Tape::new();
    let x = tape.variable(&logits);
    let first = GradientEstimator::sample(&mut estimator, x, 3, &mut rng)
        .value()
        .unwrap();
    let noise = estimator.last_noise().unwrap().clone();
    let again = estimator.sample_with_noise(x, 3, &noise).value().unwrap();
    assert_eq!(first, again);
}
