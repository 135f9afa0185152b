//! REBAR and RELAX tuning every k-th call: they tune on the first call and then every
//! k-th, leave `eta` and the temperature alone in between, and refuse k = 0.

use gumbelgrad::estimators::GradientEstimator;
use gumbelgrad::estimators::score::{Rebar, Relax};
use gumbelgrad::{Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The temperature after each of `calls` calls on a 3-class toy.
fn trajectory(estimator: &mut dyn GradientEstimator<f64>, calls: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..calls)
        .map(|_| {
            let tape = Tape::<f64>::new();
            let logits =
                tape.variable(&Tensor::from_vec(6, 3, [0.2, -0.3, 0.5].repeat(6)).unwrap());
            let weights = tape.constant(&Tensor::from_vec(3, 1, vec![1.0, -1.0, 0.5]).unwrap());
            let estimate =
                estimator.estimate(logits, 3, &mut |z| z.matmul(weights).exp(), &mut rng);
            tape.backward(estimate.loss).unwrap();
            estimator.temperature().unwrap()
        })
        .collect()
}

/// Which of the calls changed the tuned temperature (from `start`).
fn tuned_calls(start: f64, trajectory: &[f64]) -> Vec<usize> {
    let mut previous = start;
    let mut out = Vec::new();
    for (call, &now) in trajectory.iter().enumerate() {
        if now != previous {
            out.push(call);
        }
        previous = now;
    }
    out
}

#[test]
fn rebar_and_relax_tune_on_every_kth_call_only() {
    let mut rebar = Rebar::new(1.0, 0.5)
        .unwrap()
        .with_tuning_interval(3)
        .unwrap();
    let path = trajectory(&mut rebar, 7);
    assert_eq!(tuned_calls(0.5, &path), vec![0, 3, 6]);
    // the default tunes on every call
    let mut every = Rebar::new(1.0, 0.5).unwrap();
    let path = trajectory(&mut every, 4);
    assert_eq!(tuned_calls(0.5, &path), vec![0, 1, 2, 3]);

    let mut relax = Relax::new(1.0, 0.5, 4)
        .unwrap()
        .with_tuning_interval(2)
        .unwrap();
    let path = trajectory(&mut relax, 5);
    assert_eq!(tuned_calls(0.5, &path), vec![0, 2, 4]);
}

#[test]
fn a_tuning_interval_of_zero_is_an_error() {
    assert!(
        Rebar::new(1.0, 0.5)
            .unwrap()
            .with_tuning_interval(0)
            .is_err()
    );
    assert!(
        Relax::new(1.0, 0.5, 4)
            .unwrap()
            .with_tuning_interval(0)
            .is_err()
    );
}
