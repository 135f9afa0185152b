//! Random hyper-parameters, extreme and non-finite ones included, through every
//! estimator constructor reachable by name and the temperature schedules: each gives a
//! typed error at construction, or an estimator whose estimate and backward pass on a
//! small batch give a finite loss and finite gradients. Never a panic, never a NaN.
//!
//! Temperatures are checked against the range in which the computation in the tensor's
//! float type stays finite ([`gumbelgrad::temperature_range`]): `tau = 1e-45` is valid
//! in f64 but subnormal in f32, so it is refused for f32 and accepted for f64.

use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, GradientEstimator, TemperatureSchedule};
use gumbelgrad::{Error, Float, Tape, Tensor, temperature_range};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Temperatures a hostile or careless user might pass: non-finite, zero, negative,
/// subnormal, huge, just inside and outside each float type's range, and ordinary ones.
fn temperature() -> impl Strategy<Value = f64> {
    let (min32, max32) = temperature_range::<f32>();
    let (min64, max64) = temperature_range::<f64>();
    prop_oneof![
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            -1.0,
            -1e-300,
            5e-324,
            1e-310,
            1e-50,
            1e-45,
            1e-40,
            f64::from(f32::MIN_POSITIVE),
            1e-20,
            1e20,
            1e39,
            1e300,
            f64::MAX,
            min32,
            max32,
            min32 * 0.999,
            max32 * 1.001,
            min64,
            max64,
            min64 * 0.999,
            max64 * 1.001,
        ]),
        // Log-uniform over the whole positive f64 range.
        (-320.0f64..308.0).prop_map(|e| 10f64.powf(e)),
        // Ordinary temperatures.
        (-3.0f64..2.0).prop_map(|e| 10f64.powf(e)),
    ]
}

fn is_typed_temperature_error(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidTemperature { .. } | Error::TemperatureOutOfRange { .. }
    )
}

/// Group size for `name`: Bernoulli estimators treat every column as one variable.
fn group_size(name: &str) -> usize {
    if name.contains("bernoulli") || name.contains("slope-annealed") {
        1
    } else {
        4
    }
}

/// Whether `Estimator::<T>::from_name(name, tau)` should accept `tau`: every estimator
/// with a temperature checks it for `T`; the others ignore it.
fn uses_temperature(name: &str) -> bool {
    TEMPERATURE_NAMES.contains(&name)
}

/// The estimators with a temperature (or, for slope-annealed ST, an inverse one).
const TEMPERATURE_NAMES: [&str; 12] = [
    "gumbel-softmax",
    "st-gumbel-softmax",
    "st",
    "st-argmax",
    "relaxed-bernoulli",
    "st-relaxed-bernoulli",
    "slope-annealed-st",
    "rebar",
    "relax",
    "gumbel-rao",
    "reinmax",
    "gapped-st",
];

/// Builds `name` at `tau`, optionally moves it to `retune`, and runs one estimate and
/// backward on an 8 x 8 batch: a typed error, or a finite loss and finite gradients.
fn check<T: Float>(name: &str, tau: f64, retune: Option<f64>, seed: u64) -> Result<(), String> {
    let (min, max) = temperature_range::<T>();
    let valid = |t: f64| t.is_finite() && t > 0.0 && (min..=max).contains(&t);
    let mut estimator = match Estimator::<T>::from_name(name, tau) {
        Ok(estimator) => {
            if uses_temperature(name) && !valid(tau) {
                return Err(format!("{name} in {} accepted tau = {tau:e}", T::NAME));
            }
            estimator
        }
        Err(error) => {
            if !is_typed_temperature_error(&error) {
                return Err(format!("{name}: unexpected error {error:?}"));
            }
            if valid(tau) {
                return Err(format!(
                    "{name} in {} refused tau = {tau:e}: {error}",
                    T::NAME
                ));
            }
            return Ok(());
        }
    };
    if let Some(retune) = retune {
        match estimator.set_temperature(retune) {
            Ok(()) => {
                if !valid(retune) {
                    return Err(format!("{name}: set_temperature accepted {retune:e}"));
                }
            }
            Err(error) => {
                if !is_typed_temperature_error(&error) || valid(retune) {
                    return Err(format!("{name}: set_temperature({retune:e}) gave {error}"));
                }
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let tape = Tape::<T>::new();
    let logits = tape.variable(&Tensor::random_normal(8, 8, 0.0, 2.0, &mut rng));
    let target = tape.constant(&Tensor::random_normal(1, 8, 0.0, 1.0, &mut rng));
    let estimate = estimator.estimate(
        logits,
        group_size(name),
        &mut |z| (z * target).sum_cols(),
        &mut rng,
    );
    let loss = estimate
        .loss
        .value()
        .map_err(|e| format!("{name} in {} at tau {tau:e}: {e}", T::NAME))?;
    if !loss.all_finite() {
        return Err(format!(
            "{name} in {} at tau {tau:e}: loss {loss:?}",
            T::NAME
        ));
    }
    tape.backward(estimate.loss)
        .map_err(|e| format!("{name} in {} at tau {tau:e}: backward {e}", T::NAME))?;
    let grad = logits
        .grad()
        .ok_or_else(|| format!("{name} in {} at tau {tau:e}: no gradient", T::NAME))?;
    if !grad.all_finite() {
        return Err(format!(
            "{name} in {} at tau {tau:e} (retuned {retune:?}): non-finite gradient",
            T::NAME
        ));
    }
    Ok(())
}

#[test]
fn every_estimator_gives_a_typed_error_or_a_finite_result() {
    let mut runner = TestRunner::new(gumbelgrad::testing::config(48));
    let strategy = (
        prop::sample::select(ESTIMATOR_NAMES.to_vec()),
        temperature(),
        prop::option::of(temperature()),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(name, tau, retune, seed)| {
            check::<f32>(name, tau, retune, seed).map_err(TestCaseError::fail)?;
            check::<f64>(name, tau, retune, seed).map_err(TestCaseError::fail)?;
            Ok(())
        })
        .unwrap();
}

/// Every name at the fixed extreme temperatures of the report, both float types.
#[test]
fn every_estimator_at_the_reported_extremes() {
    for &name in ESTIMATOR_NAMES {
        for tau in [1e-45, 1e-50, 1e300, 0.0, f64::NAN, 1e-30, 0.5] {
            for (index, retune) in [None, Some(1e-45), Some(0.7)].into_iter().enumerate() {
                check::<f32>(name, tau, retune, index as u64).unwrap();
                check::<f64>(name, tau, retune, index as u64).unwrap();
            }
        }
    }
}

/// The cases of the report, spelled out: refused in f32 at construction, valid in f64.
#[test]
fn temperatures_invalid_in_f32_are_refused_at_construction() {
    for name in TEMPERATURE_NAMES {
        for tau in [1e-45, 1e-50, 1e300] {
            match Estimator::<f32>::from_name(name, tau) {
                Err(Error::TemperatureOutOfRange { float, .. }) => assert_eq!(float, "f32"),
                other => panic!("{name} at {tau:e} in f32: {:?}", other.map(|e| e.name())),
            }
            let mut fine = Estimator::<f32>::from_name(name, 1.0).unwrap();
            assert!(fine.set_temperature(tau).is_err(), "{name} set {tau:e}");
        }
        for tau in [1e-45, 1e-50] {
            let estimator = Estimator::<f64>::from_name(name, tau);
            assert!(estimator.is_ok(), "{name} at {tau:e} in f64");
        }
        assert!(Estimator::<f64>::from_name(name, 1e300).is_err());
    }
}

proptest! {
    #![proptest_config(gumbelgrad::testing::config(256))]

    /// Schedules: a typed error at construction, or temperatures that are finite and
    /// positive at every step, the last one included.
    #[test]
    fn schedules_give_typed_errors_or_finite_temperatures(
        initial in temperature(),
        minimum in temperature(),
        rate in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), 0.0f64..10.0, Just(1e300)],
        every in prop_oneof![Just(0u64), Just(1u64), Just(u64::MAX), any::<u64>()],
        step in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
    ) {
        match TemperatureSchedule::constant(initial) {
            Ok(schedule) => {
                let tau = schedule.at(step).unwrap();
                prop_assert!(tau.is_finite() && tau > 0.0);
            }
            Err(error) => prop_assert!(is_typed_temperature_error(&error), "{:?}", error),
        }
        match TemperatureSchedule::exponential(initial, rate, every, minimum) {
            Ok(schedule) => {
                for s in [0, step, u64::MAX] {
                    match schedule.at(s) {
                        Ok(tau) => prop_assert!(tau.is_finite() && tau > 0.0, "{}", tau),
                        Err(error) => prop_assert!(is_typed_temperature_error(&error)),
                    }
                }
            }
            Err(error) => prop_assert!(
                is_typed_temperature_error(&error) || matches!(error, Error::InvalidArgument { .. }),
                "{:?}", error
            ),
        }
    }
}

/// The score-function estimators' other hyper-parameters: a moving-average decay, a
/// learned baseline's width and learning rate, a variance normaliser's decay, VIMCO's
/// sample count. Each is refused at construction with `Error::InvalidArgument`, or the
/// estimator gives a finite loss and gradients.
#[test]
fn baselines_and_sample_counts_give_typed_errors_or_finite_results() {
    use gumbelgrad::estimators::score::{Baseline, Reinforce, Vimco};
    let valid_decay = |d: f64| (0.0..1.0).contains(&d);
    let decays = [
        f64::NAN,
        f64::INFINITY,
        -3.0,
        -0.0,
        0.0,
        0.5,
        0.8,
        0.999,
        1.0,
        5.0,
        1e300,
    ];
    let run = |mut estimator: Box<dyn GradientEstimator<f64>>, label: &str| {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..3 {
            let tape = Tape::<f64>::new();
            let logits = tape.variable(&Tensor::random_normal(6, 8, 0.0, 2.0, &mut rng));
            let target = tape.constant(&Tensor::random_normal(1, 8, 0.0, 1.0, &mut rng));
            let estimate =
                estimator.estimate(logits, 4, &mut |z| (z * target).sum_cols(), &mut rng);
            let loss = estimate.loss.scalar().unwrap();
            assert!(loss.is_finite(), "{label}: loss {loss}");
            tape.backward(estimate.loss).unwrap();
            assert!(logits.grad().unwrap().all_finite(), "{label}");
        }
    };
    for decay in decays {
        let baseline = Baseline::MovingAverage { decay };
        match Reinforce::new(baseline) {
            Ok(r) => {
                assert!(valid_decay(decay), "accepted decay {decay}");
                run(Box::new(r.clone()), &format!("{baseline:?}"));
                match r.with_variance_normalisation(decay) {
                    Ok(r) => run(Box::new(r), "normalised"),
                    Err(e) => panic!("normaliser refused valid {decay}: {e}"),
                }
            }
            Err(error) => {
                assert!(!valid_decay(decay), "refused decay {decay}: {error}");
                assert!(matches!(error, Error::InvalidArgument { .. }), "{error:?}");
                assert!(error.to_string().contains("decay"), "{error}");
            }
        }
        let normalised = Reinforce::new(Baseline::None)
            .unwrap()
            .with_variance_normalisation(decay);
        assert_eq!(
            normalised.is_ok(),
            valid_decay(decay),
            "normaliser decay {decay}"
        );
    }
    for hidden in [0usize, 1, 4] {
        for learning_rate in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e-45, 0.01] {
            let baseline = Baseline::Learned {
                decay: 0.8,
                hidden,
                learning_rate,
            };
            let valid = hidden > 0 && learning_rate.is_finite() && learning_rate > 0.0;
            match Reinforce::new(baseline) {
                Ok(r) => {
                    assert!(valid, "accepted {baseline:?}");
                    run(Box::new(r), &format!("{baseline:?}"));
                }
                Err(error) => {
                    assert!(!valid, "refused {baseline:?}: {error}");
                    assert!(matches!(error, Error::InvalidArgument { .. }), "{error:?}");
                }
            }
        }
    }
    for m in [0usize, 1, 2, 5] {
        for vimco in [Vimco::new(m), Vimco::log_mean_exp(m)] {
            match vimco {
                Ok(v) => {
                    assert!(m >= 2 && v.num_samples() == m, "m = {m}");
                    if v.objective() == gumbelgrad::estimators::score::VimcoObjective::Mean {
                        run(Box::new(v), "vimco");
                    }
                }
                Err(error) => {
                    assert!(m < 2, "refused m = {m}");
                    assert!(error.to_string().contains(&format!("got {m}")), "{error}");
                }
            }
        }
        assert_eq!(Estimator::<f32>::vimco(m).is_ok(), m >= 2);
    }
}
