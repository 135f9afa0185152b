//! The stochastic binary network: gradients against finite differences with the noise
//! fixed, the m-sample evaluation against exact enumeration, the nested estimator calls
//! unbiased against the exact gradient, and training on synthetic digits.

use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::{Estimator, GradientEstimator, TemperatureSchedule};
use gumbelgrad::models::{Latent, Sbn, SbnConfig, SbnTrainConfig, SbnTrainer, split_halves};
use gumbelgrad::nn::BoundParameters;
use gumbelgrad::{GradcheckOptions, Tape, Tensor, gradcheck};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn tiny(latent: Latent) -> SbnConfig {
    SbnConfig {
        input_dim: 3,
        output_dim: 4,
        latent,
    }
}

fn halves(rows: usize, seed: u64) -> (Tensor<f64>, Tensor<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let bits = |r, c, rng: &mut StdRng| {
        Tensor::<f64>::random_uniform(r, c, 0.0, 1.0, rng).map(|p| if p > 0.5 { 1.0 } else { 0.0 })
    };
    (bits(rows, 3, &mut rng), bits(rows, 4, &mut rng))
}

/// Every code of one stochastic layer, one per row.
fn all_codes(latent: Latent) -> Tensor<f64> {
    let (count, width, digits, base) = match latent {
        Latent::Bernoulli { units } => (1usize << units, units, units, 2usize),
        Latent::Categorical { variables, classes } => (
            classes.pow(variables as u32),
            variables * classes,
            variables,
            classes,
        ),
    };
    let mut data = vec![0.0; count * width];
    for code in 0..count {
        let mut rest = code;
        for digit in 0..digits {
            let value = rest % base;
            rest /= base;
            match latent {
                Latent::Bernoulli { .. } => data[code * width + digit] = value as f64,
                Latent::Categorical { classes, .. } => {
                    data[code * width + digit * classes + value] = 1.0
                }
            }
        }
    }
    Tensor::from_vec(count, width, data).unwrap()
}

/// `log q(code | logits)` of a code under one row of logits.
fn log_prob(latent: Latent, logits: &[f64], code: &[f64]) -> f64 {
    match latent {
        Latent::Bernoulli { .. } => logits
            .iter()
            .zip(code)
            .map(|(&x, &b)| {
                let s = if b == 1.0 { x } else { -x };
                -(1.0 + (-s).exp()).ln()
            })
            .sum(),
        Latent::Categorical { classes, .. } => logits
            .chunks(classes)
            .zip(code.chunks(classes))
            .map(|(g, z)| {
                let max = g.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + g.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
                g.iter().zip(z).map(|(x, z)| z * (x - lse)).sum::<f64>()
            })
            .sum(),
    }
}

/// Exact `p(x_lower | x_upper)` for every example and exact `E_h[-log p(x_lower | h)]`,
/// by summing over every pair of codes.
fn exact(model: &Sbn<f64>, upper: &Tensor<f64>, lower: &Tensor<f64>) -> (Vec<f64>, Vec<f64>) {
    let latent = model.config().latent;
    let codes = all_codes(latent);
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    let (mut likelihoods, mut expected_costs) = (Vec::new(), Vec::new());
    for r in 0..upper.rows() {
        let up = tape.constant(&Tensor::from_slice(1, 3, upper.row(r)).unwrap());
        let first = model.first_logits(&params, up).value().unwrap();
        let second = model
            .second_logits(&params, tape.constant(&codes))
            .value()
            .unwrap();
        let repeated: Vec<f64> = (0..codes.rows())
            .flat_map(|_| lower.row(r).to_vec())
            .collect();
        let low = tape.constant(&Tensor::from_vec(codes.rows(), 4, repeated).unwrap());
        let costs = model
            .output_cost(&params, tape.constant(&codes), low)
            .value()
            .unwrap();
        let (mut p, mut expected) = (0.0, 0.0);
        for a in 0..codes.rows() {
            let qa = log_prob(latent, first.row(0), codes.row(a)).exp();
            for b in 0..codes.rows() {
                let qb = log_prob(latent, second.row(a), codes.row(b)).exp();
                let cost = costs.get(b, 0);
                p += qa * qb * (-cost).exp();
                expected += qa * qb * cost;
            }
        }
        likelihoods.push(p);
        expected_costs.push(expected);
    }
    (likelihoods, expected_costs)
}

fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn latents() -> [Latent; 2] {
    [
        Latent::Bernoulli { units: 2 },
        Latent::Categorical {
            variables: 2,
            classes: 3,
        },
    ]
}

#[test]
fn evaluation_matches_exact_enumeration() {
    for (index, latent) in latents().into_iter().enumerate() {
        let model =
            Sbn::<f64>::new(tiny(latent), &mut StdRng::seed_from_u64(index as u64)).unwrap();
        let (upper, lower) = halves(3, 11 + index as u64);
        let (exact_p, _) = exact(&model, &upper, &lower);
        let samples = 20_000;
        let mut rng = StdRng::seed_from_u64(5);
        let table = model
            .sample_log_likelihoods(&upper, &lower, samples, 997, &mut rng)
            .unwrap();
        assert_eq!((table.rows(), table.cols()), (3, samples));
        for (r, exact_r) in exact_p.iter().enumerate() {
            // each exp(log p(x_lower | h_i)) is an unbiased estimate of p(x_lower | x_upper)
            let values: Vec<f64> = table.row(r).iter().map(|l| l.exp()).collect();
            let (mean, se) = mean_and_se(&values);
            assert!(
                (mean - exact_r).abs() < 4.0 * se,
                "{latent:?} example {r}: mean {mean} exact {exact_r} se {se}"
            );
        }
        // and the reported -log of the average is close to -log p for large m
        let nll = model
            .negative_log_likelihood(&upper, &lower, samples, 997, &mut StdRng::seed_from_u64(6))
            .unwrap();
        let exact_nll = exact_p.iter().map(|p| -p.ln()).sum::<f64>() / 3.0;
        assert!(
            (nll - exact_nll).abs() < 0.05,
            "{latent:?}: {nll} vs {exact_nll}"
        );
        // The streaming evaluation reduces the same draws as the table, to the bit.
        let table = model
            .sample_log_likelihoods(&upper, &lower, samples, 997, &mut StdRng::seed_from_u64(6))
            .unwrap();
        let log_m = (samples as f64).ln();
        let from_table = (0..3)
            .map(|r| -(gumbelgrad::kernels::softmax::logsumexp(table.row(r)) - log_m))
            .sum::<f64>()
            / 3.0;
        assert_eq!(nll.to_bits(), from_table.to_bits(), "{latent:?}");
    }
}

#[test]
fn relaxed_training_cost_passes_gradcheck_with_fixed_noise() {
    for (latent, name) in [
        (Latent::Bernoulli { units: 3 }, "relaxed-bernoulli"),
        (
            Latent::Categorical {
                variables: 2,
                classes: 3,
            },
            "gumbel-softmax",
        ),
    ] {
        let model = Sbn::<f64>::new(tiny(latent), &mut StdRng::seed_from_u64(1)).unwrap();
        let (upper, lower) = halves(4, 2);
        let tensors: Vec<Tensor<f64>> = model.parameters().iter().map(|(_, t)| t.clone()).collect();
        let report = gradcheck(&tensors, GradcheckOptions::default(), |tape, vars| {
            let params = BoundParameters::from_vars(vars.to_vec());
            let mut first = Estimator::from_name(name, 0.7).unwrap();
            let mut second = Estimator::from_name(name, 0.7).unwrap();
            // the same seed on every call: the noise is fixed, the cost smooth
            let mut rng = StdRng::seed_from_u64(9);
            let (up, low) = (tape.constant(&upper), tape.constant(&lower));
            model
                .training_cost(&params, up, low, &mut first, &mut second, &mut rng)
                .loss
        })
        .unwrap();
        assert!(report.max_rel_error < 1e-6, "{name}: {report:?}");
    }
}

/// The gradient of `E_h[mean cost]` for every parameter entry, by central differences
/// of the exact enumeration (smooth in the parameters, so this is accurate to ~1e-9).
fn exact_gradient(model: &Sbn<f64>, upper: &Tensor<f64>, lower: &Tensor<f64>) -> Vec<f64> {
    let names: Vec<String> = model.parameters().names().map(str::to_string).collect();
    let mut out = Vec::new();
    for name in &names {
        let id = model.parameters().id(name).unwrap();
        for i in 0..model.parameters().get(id).len() {
            let value_at = |delta: f64| {
                let mut shifted = model.clone();
                shifted.parameters_mut().get_mut(id).as_mut_slice()[i] += delta;
                let (_, costs) = exact(&shifted, upper, lower);
                costs.iter().sum::<f64>() / costs.len() as f64
            };
            let h = 1e-5;
            out.push((value_at(h) - value_at(-h)) / (2.0 * h));
        }
    }
    out
}

#[test]
fn nested_score_function_estimators_are_unbiased() {
    let latent = Latent::Bernoulli { units: 2 };
    let model = Sbn::<f64>::new(tiny(latent), &mut StdRng::seed_from_u64(3)).unwrap();
    let (upper, lower) = halves(2, 4);
    let exact = exact_gradient(&model, &upper, &lower);
    for name in ["reinforce-ema", "muprop", "rebar"] {
        let mut first = Estimator::from_name(name, 1.0).unwrap();
        let mut second = Estimator::from_name(name, 1.0).unwrap();
        let runs = 3000;
        let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); exact.len()];
        let mut tape = Tape::new();
        for run in 0..runs {
            tape.clear();
            let params = model.parameters().bind(&tape);
            let (up, low) = (tape.constant(&upper), tape.constant(&lower));
            let mut rng = StdRng::seed_from_u64(1000 + run as u64);
            let terms = model.training_cost(&params, up, low, &mut first, &mut second, &mut rng);
            tape.backward(terms.loss).unwrap();
            let grads = params.gradients();
            let flat: Vec<f64> = grads
                .as_slice()
                .iter()
                .flat_map(|g| g.as_slice().to_vec())
                .collect();
            for (d, g) in draws.iter_mut().zip(flat) {
                d.push(g);
            }
        }
        for (i, (d, e)) in draws.iter().zip(&exact).enumerate() {
            let (mean, se) = mean_and_se(d);
            assert!(
                (mean - e).abs() < 4.0 * se + 1e-9,
                "{name}, entry {i}: mean {mean} exact {e} se {se}"
            );
        }
    }
}

/// Layer 1's MuProp as `Estimator::estimate` alone would run it: the baseline's cost at
/// `z_bar_1` samples layer 2, as at the sample. (`Sbn::training_cost` instead evaluates
/// it through the mean-field network.) Returns the loss to backpropagate.
fn muprop_loss_with_sampled_baseline<'t>(
    model: &Sbn<f64>,
    params: &BoundParameters<'t, f64>,
    upper: gumbelgrad::Var<'t, f64>,
    lower: gumbelgrad::Var<'t, f64>,
    rng: &mut StdRng,
) -> gumbelgrad::Var<'t, f64> {
    use gumbelgrad::estimators::GradientEstimator;
    use rand::RngCore;
    let (mut first, mut second) = (Estimator::muprop(), Estimator::muprop());
    let group_size = model.config().latent.group_size();
    let mut second_rng = StdRng::seed_from_u64(rng.next_u64());
    let logits = model.first_logits(params, upper);
    let mut cost = |h1| {
        let logits2 = model.second_logits(params, h1);
        let inner = second.estimate(
            logits2,
            group_size,
            &mut |h2| model.output_cost(params, h2, lower),
            &mut second_rng,
        );
        inner.cost.detach() + (inner.loss - inner.loss.detach())
    };
    first.estimate(logits, group_size, &mut cost, rng).loss
}

/// MuProp expands layer 1's cost through the mean-field network (Gu et al.): unbiased
/// for both kinds of latent, by enumeration, and the layer-1 gradient's variance is
/// lower than with the baseline evaluated on a sampled layer 2.
#[test]
fn muprop_mean_field_baseline_is_unbiased_and_lowers_layer_one_variance() {
    for (index, latent) in latents().into_iter().enumerate() {
        let model = Sbn::<f64>::new(tiny(latent), &mut StdRng::seed_from_u64(5)).unwrap();
        let (upper, lower) = halves(2, 6);
        let exact = exact_gradient(&model, &upper, &lower);
        let first_layer: Vec<bool> = model
            .parameters()
            .iter()
            .flat_map(|(name, tensor)| vec![name.starts_with("first."); tensor.len()])
            .collect();
        let runs = 3000;
        let mut mean_field: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); exact.len()];
        let mut sampled: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); exact.len()];
        let mut tape = Tape::new();
        let (mut first, mut second) = (Estimator::muprop(), Estimator::muprop());
        for run in 0..runs {
            for (with_mean_field, draws) in [(true, &mut mean_field), (false, &mut sampled)] {
                tape.clear();
                let params = model.parameters().bind(&tape);
                let (up, low) = (tape.constant(&upper), tape.constant(&lower));
                let mut rng = StdRng::seed_from_u64(5000 + run as u64);
                let loss = if with_mean_field {
                    model
                        .training_cost(&params, up, low, &mut first, &mut second, &mut rng)
                        .loss
                } else {
                    muprop_loss_with_sampled_baseline(&model, &params, up, low, &mut rng)
                };
                tape.backward(loss).unwrap();
                let grads = params.gradients();
                let flat = grads.as_slice().iter().flat_map(|g| g.as_slice().to_vec());
                for (d, g) in draws.iter_mut().zip(flat) {
                    d.push(g);
                }
            }
        }
        let mut variance = [0.0, 0.0];
        for (i, e) in exact.iter().enumerate() {
            let (mean, se) = mean_and_se(&mean_field[i]);
            assert!(
                (mean - e).abs() < 4.0 * se + 1e-9,
                "latent {index}, entry {i}: mean {mean} exact {e} se {se}"
            );
            if first_layer[i] {
                variance[0] += se * se * runs as f64;
                variance[1] += mean_and_se(&sampled[i]).1.powi(2) * runs as f64;
            }
        }
        eprintln!(
            "latent {index}: layer-1 gradient variance, mean-field {:.4}, sampled {:.4}",
            variance[0], variance[1]
        );
        assert!(
            variance[0] < 0.9 * variance[1],
            "latent {index}: mean-field {} against sampled {}",
            variance[0],
            variance[1]
        );
    }
}

#[test]
fn training_lowers_the_held_out_nll_on_synthetic_digits() {
    let (train, test) = SyntheticDigits::new(3).with_sizes(600, 100).generate();
    let (train_up, train_low) = split_halves(&train.images.to_tensor()).unwrap();
    let (test_up, test_low) = split_halves(&test.images.to_tensor()).unwrap();
    let config = SbnTrainConfig {
        batch_size: 50,
        learning_rate: 3e-3,
        temperature: TemperatureSchedule::constant(1.0).unwrap(),
        estimator: "gumbel-softmax".into(),
        seed: 1,
    };
    let mut trainer = SbnTrainer::<f32>::new(SbnConfig::categorical(5, 4), config).unwrap();
    let nll = |trainer: &SbnTrainer<f32>| {
        trainer
            .model()
            .negative_log_likelihood(&test_up, &test_low, 10, 1000, &mut StdRng::seed_from_u64(8))
            .unwrap()
    };
    let before = nll(&trainer);
    for _ in 0..4 {
        trainer
            .train_epoch(&train_up, &train_low, |_, _| {})
            .unwrap();
    }
    let after = nll(&trainer);
    assert_eq!(trainer.steps(), 4 * 12);
    // an untrained model predicts ~0.5 per pixel (~272 nats); a trained one far better
    assert!(after < before - 50.0, "before {before}, after {after}");
}

#[test]
fn split_halves_and_bad_input() {
    let images = Tensor::<f32>::from_vec(2, 4, vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
    let (up, low) = split_halves(&images).unwrap();
    assert_eq!(up.as_slice(), &[1., 2., 5., 6.]);
    assert_eq!(low.as_slice(), &[3., 4., 7., 8.]);
    let model = Sbn::<f64>::new(
        tiny(Latent::Bernoulli { units: 2 }),
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    let (upper, lower) = halves(2, 0);
    let wrong = Tensor::<f64>::zeros(2, 5);
    assert!(
        model
            .sample_log_likelihoods(&upper, &wrong, 3, 10, &mut StdRng::seed_from_u64(0))
            .is_err()
    );
    assert!(
        model
            .sample_log_likelihoods(&upper, &lower, 0, 10, &mut StdRng::seed_from_u64(0))
            .is_err()
    );
    assert!(
        model
            .check_estimator(&Estimator::gumbel_softmax(1.0).unwrap())
            .is_err()
    );
    assert!(model.check_estimator(&Estimator::muprop()).is_ok());
}

#[test]
fn the_trainer_leaves_rebar_tuning_its_own_temperature() {
    let (train, _) = SyntheticDigits::new(5).with_sizes(40, 1).generate();
    let (up, low) = split_halves(&train.images.to_tensor()).unwrap();
    let config = SbnTrainConfig {
        batch_size: 2,
        learning_rate: 1e-3,
        temperature: TemperatureSchedule::constant(1.0).unwrap(),
        estimator: "rebar".into(),
        seed: 2,
    };
    let mut trainer = SbnTrainer::<f32>::new(SbnConfig::bernoulli(4), config).unwrap();
    trainer.train_epoch(&up, &low, |_, _| {}).unwrap();
    let (first, second) = trainer.estimators();
    // a constant schedule does not reset the temperature REBAR tunes by its variance:
    // 20 steps of tuning (Adam, rate 0.01 on log tau) move it further than the one step
    // it would have if the trainer reset it every step
    let drift = |e: &dyn GradientEstimator<f32>| e.temperature().unwrap().ln().abs();
    assert!(drift(first) > 0.08 && drift(second) > 0.08);
}
