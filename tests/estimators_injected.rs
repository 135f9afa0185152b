//! Score-function estimates at an injected sample, reproduced by hand.

use gumbelgrad::estimators::score::{Baseline, Reinforce};
use gumbelgrad::{Error, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// `f(z) = <z, w>^2` per row, on the tape and by hand.
const W: [f64; 3] = [1.0, -2.0, 0.5];
fn f_by_hand(z: &[f64]) -> f64 {
    z.iter().zip(W).map(|(a, b)| a * b).sum::<f64>().powi(2)
}

#[test]
fn reinforce_at_a_given_sample_matches_the_formula() {
    let logits = Tensor::from_vec(2, 3, vec![0.3, -0.2, 0.1, 1.0, 0.0, -1.0]).unwrap();
    let sample = Tensor::from_vec(2, 3, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    // plain REINFORCE, then the moving-average baseline on its second call
    for (baseline, calls) in [
        (Baseline::None, 1),
        (Baseline::MovingAverage { decay: 0.8 }, 2),
    ] {
        let mut estimator = Reinforce::new(baseline).unwrap();
        let mut average = 0.0;
        for call in 0..calls {
            let tape = Tape::<f64>::new();
            let x = tape.variable(&logits);
            let w = tape.constant(&Tensor::from_vec(3, 1, W.to_vec()).unwrap());
            let estimate = estimator.estimate_with_sample(
                x,
                3,
                &sample,
                &mut |z| z.matmul(w).square(),
                &mut rng,
            );
            tape.backward(estimate.loss).unwrap();
            let grad = x.grad().unwrap();
            let costs: Vec<f64> = (0..2).map(|r| f_by_hand(sample.row(r))).collect();
            let b = if calls == 2 { average } else { 0.0 };
            for (r, &f) in costs.iter().enumerate() {
                let p = softmax(logits.row(r));
                for (j, &pj) in p.iter().enumerate() {
                    let expected = (f - b) * (sample.get(r, j) - pj) / 2.0;
                    let got = grad.get(r, j);
                    assert!(
                        (got - expected).abs() < 1e-12,
                        "{baseline:?} call {call} [{r},{j}]: {got} vs {expected}"
                    );
                }
            }
            assert_eq!(estimate.sample.value().unwrap(), sample);
            average += 0.2 * ((costs[0] + costs[1]) / 2.0 - average);
        }
    }
}

#[test]
fn reinforce_at_given_bits_matches_the_formula() {
    // Binary units: d/d phi = f (b - sigmoid(phi)) / B.
    let phi = Tensor::from_vec(1, 2, vec![0.4, -1.1]).unwrap();
    let bits = Tensor::from_vec(1, 2, vec![1.0, 0.0]).unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.variable(&phi);
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            1,
            &bits,
            &mut |z| (z.sum_cols() + 1.0).square(),
            &mut StdRng::seed_from_u64(0),
        );
    tape.backward(estimate.loss).unwrap();
    let f = (1.0f64 + 0.0 + 1.0).powi(2);
    for j in 0..2 {
        let s = 1.0 / (1.0 + (-phi.get(0, j)).exp());
        let expected = f * (bits.get(0, j) - s);
        let got = x.grad().unwrap().get(0, j);
        assert!((got - expected).abs() < 1e-12, "{j}: {got} vs {expected}");
    }
}

#[test]
fn a_sample_that_is_not_one_hot_is_a_typed_error() {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(1, 3));
    let bad = Tensor::from_vec(1, 3, vec![0.5, 0.5, 0.0]).unwrap();
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            3,
            &bad,
            &mut |z| z.sum_cols(),
            &mut StdRng::seed_from_u64(0),
        );
    assert!(matches!(
        tape.backward(estimate.loss),
        Err(Error::InvalidArgument { .. })
    ));
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(1, 3));
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            3,
            &Tensor::zeros(2, 3),
            &mut |z| z.sum_cols(),
            &mut StdRng::seed_from_u64(0),
        );
    assert!(matches!(
        tape.backward(estimate.loss),
        Err(Error::ShapeMismatch { .. })
    ));
}
