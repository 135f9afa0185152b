//! Conditional noise for REBAR / RELAX: the distribution of `z_tilde | b` matches that of
//! `z` restricted to `H(z) = b`, and the ops' gradients match finite differences.

use gumbelgrad::estimators::{conditional_gumbel, conditional_logistic, noise};
use gumbelgrad::testing::{config, grouped_shape, tensor_of_shape};
use gumbelgrad::{GradcheckOptions, Shape, Tensor, gradcheck};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Running mean and variance of a stream.
#[derive(Default, Clone)]
struct Moments {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sum_sq += x * x;
    }
    fn mean(&self) -> f64 {
        self.sum / self.n
    }
    fn se2(&self) -> f64 {
        let var = (self.sum_sq / self.n - self.mean().powi(2)) * self.n / (self.n - 1.0);
        var / self.n
    }
}

/// Two independent sample means agree within 4 standard errors of their difference.
fn assert_same_mean(a: &Moments, b: &Moments, what: &str) {
    let se = (a.se2() + b.se2()).sqrt();
    assert!(
        (a.mean() - b.mean()).abs() < 4.0 * se,
        "{what}: {} vs {} (se {se})",
        a.mean(),
        b.mean()
    );
}

#[test]
fn conditional_gumbel_matches_the_restricted_joint() {
    let k = 4;
    let logits = Tensor::<f64>::from_vec(1, k, vec![1.0, -0.5, 0.3, 0.0]).unwrap();
    let log_probs: Vec<f64> = {
        let lse = logits.as_slice().iter().map(|x| x.exp()).sum::<f64>().ln();
        logits.as_slice().iter().map(|x| x - lse).collect()
    };
    let mut rng = StdRng::seed_from_u64(41);
    let draws = 60_000;
    // joint: z = ln theta + g, grouped by b = argmax z; conditional: z_tilde | b
    let mut joint = vec![vec![Moments::default(); k]; k];
    let mut conditional = vec![vec![Moments::default(); k]; k];
    for _ in 0..draws {
        let g = noise::gumbel::<f64, _>(1, k, &mut rng);
        let z: Vec<f64> = log_probs
            .iter()
            .zip(g.as_slice())
            .map(|(l, g)| l + g)
            .collect();
        let b = (0..k).max_by(|&i, &j| z[i].total_cmp(&z[j])).unwrap();
        for i in 0..k {
            joint[b][i].push(z[i]);
        }
        let (z_tilde, _) = noise::conditional_gumbel(&logits, &[b], k, &mut rng).unwrap();
        let zt = z_tilde.as_slice();
        let top = (0..k).max_by(|&i, &j| zt[i].total_cmp(&zt[j])).unwrap();
        assert_eq!(top, b, "z_tilde must have its maximum at b");
        for i in 0..k {
            conditional[b][i].push(zt[i]);
        }
    }
    for b in 0..k {
        for i in 0..k {
            assert_same_mean(&joint[b][i], &conditional[b][i], &format!("b={b} i={i}"));
        }
    }
}

#[test]
fn conditional_logistic_matches_the_restricted_joint() {
    let mut rng = StdRng::seed_from_u64(42);
    for x in [-1.5, 0.0, 0.8] {
        let logits = Tensor::<f64>::scalar(x);
        let mut joint = [Moments::default(), Moments::default()];
        let mut conditional = [Moments::default(), Moments::default()];
        for _ in 0..60_000 {
            let (sample, l) = noise::sample_bernoulli(&logits, &mut rng);
            let z = x + l.as_slice()[0];
            let b = sample.as_slice()[0] as usize;
            assert_eq!(b == 1, z > 0.0);
            joint[b].push(z);
            let (z_tilde, _) = noise::conditional_logistic(&logits, &sample, &mut rng).unwrap();
            let zt = z_tilde.as_slice()[0];
            assert_eq!(zt > 0.0, b == 1, "z_tilde must have the sign of b");
            conditional[b].push(zt);
        }
        for b in 0..2 {
            assert_same_mean(&joint[b], &conditional[b], &format!("x={x} b={b}"));
        }
    }
}

#[test]
fn conditional_noise_is_finite_at_extreme_logits() {
    let mut rng = StdRng::seed_from_u64(43);
    let logits = Tensor::<f64>::from_vec(1, 3, vec![1e4, -1e4, 0.0]).unwrap();
    for b in 0..3 {
        let (z, _) = noise::conditional_gumbel(&logits, &[b], 3, &mut rng).unwrap();
        assert!(z.all_finite(), "b={b}: {z:?}");
    }
    // the ops' gradients too, for every sampled class
    for b in 0..3 {
        let tape = gumbelgrad::Tape::<f64>::new();
        tape.set_finite_check(true);
        let x = tape.variable(&logits);
        let v = tape.constant(&noise::uniform(1, 3, &mut rng));
        let one_hot = tape.constant(&noise::one_hot(1, &[b], 3).unwrap());
        let z = conditional_gumbel(x, v, one_hot, 3);
        tape.backward((z * z).sum()).unwrap();
        assert!(x.grad().unwrap().all_finite(), "b={b}");
    }
    let logits = Tensor::<f64>::from_vec(1, 2, vec![1e4, -1e4]).unwrap();
    for sample in [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] {
        let tape = gumbelgrad::Tape::<f64>::new();
        tape.set_finite_check(true);
        let x = tape.variable(&logits);
        let v = tape.constant(&noise::uniform(1, 2, &mut rng));
        let b = tape.constant(&Tensor::from_vec(1, 2, sample.to_vec()).unwrap());
        let z = conditional_logistic(x, v, b);
        tape.backward((z * z).sum()).unwrap();
        assert!(x.grad().unwrap().all_finite(), "{sample:?}");
    }
    for sample in [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] {
        let sample = Tensor::from_vec(1, 2, sample.to_vec()).unwrap();
        let (z, _) = noise::conditional_logistic(&logits, &sample, &mut rng).unwrap();
        assert!(z.all_finite(), "{sample:?}: {z:?}");
    }
}

fn conditional_case() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>, Tensor<f64>, usize)> {
    (grouped_shape(1..=3, 8), any::<u64>()).prop_flat_map(|((rows, k, groups), seed)| {
        let shape = Shape::new(rows, k * groups);
        let mut rng = StdRng::seed_from_u64(seed);
        let v = Tensor::random_uniform(rows, k * groups, 0.02, 0.98, &mut rng);
        let classes: Vec<usize> = (0..rows * groups).map(|_| rng.random_range(0..k)).collect();
        let b = noise::one_hot(rows, &classes, k).unwrap();
        (tensor_of_shape(shape, -3.0..3.0), Just(v), Just(b), Just(k))
    })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn conditional_gumbel_gradcheck((logits, v, b, k) in conditional_case()) {
        let report = gradcheck(&[logits], GradcheckOptions::default(), |tape, x| {
            conditional_gumbel(x[0], tape.constant(&v), tape.constant(&b), k)
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-7, "{}", report);
    }

    #[test]
    fn conditional_logistic_gradcheck((logits, v, b, _k) in conditional_case()) {
        // reuse the one-hot tensor as an arbitrary 0/1 sample
        let report = gradcheck(&[logits], GradcheckOptions::default(), |tape, x| {
            conditional_logistic(x[0], tape.constant(&v), tape.constant(&b))
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-7, "{}", report);
    }
}
