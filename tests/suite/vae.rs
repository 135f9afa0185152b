//! The categorical VAE: analytic KL against enumeration, gradients against finite
//! differences, bit-identical resume.

use crate::same_bits::assert_same_parameters;
use gumbelgrad::estimators::{Estimator, GradientEstimator, TemperatureSchedule};
use gumbelgrad::models::{DiscreteVae, Latent, ResumeOptions, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use gumbelgrad::{Error, GradcheckOptions, Tape, Tensor, gradcheck};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn small_config() -> VaeConfig {
    VaeConfig {
        input_dim: 12,
        latent: Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        encoder_hidden: vec![6],
        decoder_hidden: vec![5],
    }
}

/// Random binary "images".
fn binary_images(rows: usize, cols: usize, seed: u64) -> Tensor<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::<f32>::random_uniform(rows, cols, 0.0, 1.0, &mut rng)
        .map(|p| if p > 0.5 { 1.0 } else { 0.0 })
}

/// Per-variable probability tables of one row of logits: softmax of each group, or
/// `[1 - sigmoid(x), sigmoid(x)]` for a binary unit.
fn probability_tables(latent: Latent, row: &[f64]) -> Vec<Vec<f64>> {
    match latent {
        Latent::Categorical { classes, .. } => row
            .chunks(classes)
            .map(|g| {
                let total: f64 = g.iter().map(|x| x.exp()).sum();
                g.iter().map(|x| x.exp() / total).collect()
            })
            .collect(),
        Latent::Bernoulli { .. } => row
            .iter()
            .map(|x| {
                let on = 1.0 / (1.0 + (-x).exp());
                vec![1.0 - on, on]
            })
            .collect(),
    }
}

#[test]
fn analytic_kl_equals_enumeration() {
    let latents = [
        Latent::Categorical {
            variables: 1,
            classes: 2,
        },
        Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        Latent::Categorical {
            variables: 3,
            classes: 4,
        },
        Latent::Bernoulli { units: 1 },
        Latent::Bernoulli { units: 5 },
    ];
    for latent in latents {
        let config = VaeConfig {
            latent,
            ..small_config()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let model = DiscreteVae::<f64>::new(config, &mut rng).unwrap();
        let logits = Tensor::<f64>::random_normal(2, latent.width(), 0.0, 2.0, &mut rng);
        let tape = Tape::new();
        let kl = model.kl_to_uniform(tape.constant(&logits)).value().unwrap();
        for row in 0..2 {
            // KL(q || p) = sum over every configuration z of q(z) (log q(z) - log p(z)).
            let tables = probability_tables(latent, logits.row(row));
            let values = tables[0].len();
            let configurations = values.pow(tables.len() as u32);
            let mut exact = 0.0;
            for mut index in 0..configurations {
                let mut q = 1.0;
                for table in &tables {
                    q *= table[index % values];
                    index /= values;
                }
                exact += q * (q.ln() - latent.log_prior());
            }
            assert!(
                (kl.get(row, 0) - exact).abs() < 1e-12,
                "{latent:?}: {} vs {exact}",
                kl.get(row, 0)
            );
        }
    }
}

#[test]
fn bernoulli_vae_gradients_match_finite_differences() {
    let config = VaeConfig {
        latent: Latent::Bernoulli { units: 4 },
        ..small_config()
    };
    let model = DiscreteVae::<f64>::new(config.clone(), &mut StdRng::seed_from_u64(5)).unwrap();
    let images =
        Tensor::<f64>::random_uniform(3, config.input_dim, 0.1, 0.9, &mut StdRng::seed_from_u64(6));
    let inputs: Vec<Tensor<f64>> = model.parameters().iter().map(|(_, t)| t.clone()).collect();
    let report = gradcheck(&inputs, GradcheckOptions::default(), |tape, vars| {
        let params = gumbelgrad::nn::BoundParameters::from_vars(vars.to_vec());
        let x = tape.constant(&images);
        let mut estimator = Estimator::relaxed_bernoulli(0.7).unwrap();
        model
            .negative_elbo(&params, x, &mut estimator, &mut StdRng::seed_from_u64(9))
            .loss
    })
    .unwrap();
    assert!(report.max_rel_error < 1e-6, "{report}");
}

#[test]
fn estimators_must_fit_the_latent_layer() {
    let bernoulli = VaeConfig {
        latent: Latent::Bernoulli { units: 4 },
        ..small_config()
    };
    let config = TrainConfig {
        estimator: "gumbel-softmax".into(),
        ..train_config()
    };
    let error = Trainer::<f32>::new(bernoulli.clone(), config).unwrap_err();
    assert!(error.to_string().contains("does not fit"), "{error}");
    let config = TrainConfig {
        estimator: "relaxed-bernoulli".into(),
        ..train_config()
    };
    assert!(Trainer::<f32>::new(small_config(), config.clone()).is_err());
    assert!(Trainer::<f32>::new(bernoulli, config).is_ok());
}

#[test]
fn negative_elbo_gradients_match_finite_differences() {
    // With the noise held fixed (a fresh generator with the same seed on every call),
    // the Gumbel-Softmax negative ELBO is a smooth function of the encoder's input and
    // of every parameter; check the gradient of the input pixels and of a weight.
    let config = small_config();
    let model = DiscreteVae::<f64>::new(config.clone(), &mut StdRng::seed_from_u64(5)).unwrap();
    let images =
        Tensor::<f64>::random_uniform(3, config.input_dim, 0.1, 0.9, &mut StdRng::seed_from_u64(6));
    let weight_names: Vec<String> = model.parameters().names().map(str::to_string).collect();
    let inputs: Vec<Tensor<f64>> = model.parameters().iter().map(|(_, t)| t.clone()).collect();
    let report = gradcheck(&inputs, GradcheckOptions::default(), |tape, vars| {
        let params = gumbelgrad::nn::BoundParameters::from_vars(vars.to_vec());
        let x = tape.constant(&images);
        let mut estimator = Estimator::gumbel_softmax(0.7).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        model
            .negative_elbo(&params, x, &mut estimator, &mut rng)
            .loss
    })
    .unwrap();
    assert!(
        report.max_rel_error < 1e-6,
        "{report} (parameters {weight_names:?})"
    );
}

#[test]
fn importance_weighted_bound_is_tighter_than_the_elbo() {
    for latent in [
        Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        Latent::Bernoulli { units: 3 },
    ] {
        iw_bound_between_exact_and_elbo(latent);
    }
}

fn iw_bound_between_exact_and_elbo(latent: Latent) {
    let config = VaeConfig {
        latent,
        ..small_config()
    };
    let model = DiscreteVae::<f64>::new(config.clone(), &mut StdRng::seed_from_u64(1)).unwrap();
    let images = binary_images(40, config.input_dim, 2).cast::<f64>();
    let mut rng = StdRng::seed_from_u64(3);
    let elbo = model
        .evaluate(&images, 20, gumbelgrad::models::EvalMode::Hard, &mut rng)
        .unwrap();
    let bound = model
        .importance_weighted_bound(&images, 200, 64, &mut rng)
        .unwrap();
    // Exact -log p(x) = -log sum_z p(x|z) p(z), enumerating every latent configuration.
    let codes: Vec<Vec<f64>> = match latent {
        Latent::Categorical { variables, classes } => (0..classes.pow(variables as u32))
            .map(|mut index| {
                let mut code = vec![0.0; variables * classes];
                for variable in 0..variables {
                    code[variable * classes + index % classes] = 1.0;
                    index /= classes;
                }
                code
            })
            .collect(),
        Latent::Bernoulli { units } => (0..1usize << units)
            .map(|bits| (0..units).map(|u| ((bits >> u) & 1) as f64).collect())
            .collect(),
    };
    let mut exact = 0.0;
    for row in 0..images.rows() {
        let mut log_terms = Vec::new();
        for code in &codes {
            let z = Tensor::<f64>::from_slice(1, latent.width(), code).unwrap();
            let tape = Tape::new();
            let params = model.parameters().bind(&tape);
            let x_row =
                tape.constant(&Tensor::from_slice(1, config.input_dim, images.row(row)).unwrap());
            let cost = model
                .reconstruction_cost(&params, tape.constant(&z), x_row)
                .scalar()
                .unwrap();
            log_terms.push(-cost + latent.log_prior());
        }
        exact -= gumbelgrad::kernels::softmax::logsumexp(&log_terms);
    }
    exact /= images.rows() as f64;
    assert!(
        bound >= exact - 1e-9,
        "{latent:?}: bound {bound} below the exact -log p(x) {exact}"
    );
    assert!(
        bound < elbo,
        "{latent:?}: IW bound {bound} not tighter than the ELBO {elbo}"
    );
    assert!(
        bound - exact < 0.1 * (elbo - exact),
        "{latent:?}: bound {bound}, exact {exact}, elbo {elbo}"
    );
}

fn train_config() -> TrainConfig {
    TrainConfig {
        batch_size: 8,
        learning_rate: LearningRateSchedule::StepDecay {
            initial: 3e-3,
            factor: 0.9,
            every: 5,
        },
        temperature: TemperatureSchedule::exponential(1.0, 0.05, 4, 0.5).unwrap(),
        estimator: "gumbel-softmax".into(),
        dynamic_binarization: true,
        seed: 11,
        shards: 1,
    }
}

#[test]
fn resume_continues_bit_for_bit() {
    let images = Tensor::<f32>::random_uniform(40, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(4));
    let mut uninterrupted = Trainer::<f32>::new(small_config(), train_config()).unwrap();
    for _ in 0..4 {
        uninterrupted.train_epoch(&images, |_| {}).unwrap();
    }

    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-resume-{}.safetensors",
        std::process::id()
    ));
    let mut first = Trainer::<f32>::new(small_config(), train_config()).unwrap();
    for _ in 0..2 {
        first.train_epoch(&images, |_| {}).unwrap();
    }
    first.save_checkpoint(&path).unwrap();
    drop(first);
    let mut resumed = Trainer::<f32>::resume(&path, small_config(), train_config()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(resumed.steps(), 10);
    for _ in 0..2 {
        resumed.train_epoch(&images, |_| {}).unwrap();
    }
    assert_same_parameters(
        uninterrupted.model().parameters(),
        resumed.model().parameters(),
        "after resume",
    );
}

#[test]
fn resume_rejects_a_different_run() {
    let images = binary_images(16, 12, 1);
    let mut trainer = Trainer::<f32>::new(small_config(), train_config()).unwrap();
    trainer.train_epoch(&images, |_| {}).unwrap();
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-resume-other-{}.safetensors",
        std::process::id()
    ));
    trainer.save_checkpoint(&path).unwrap();
    let other = TrainConfig {
        seed: 12,
        ..train_config()
    };
    let error = Trainer::<f32>::resume(&path, small_config(), other).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(error.to_string().contains("seed"), "{error}");
}

#[test]
fn loss_falls_on_the_built_in_digits() {
    // A few hundred steps of a slimmer model on the crate's own digits: the training
    // loss must fall clearly (by more than a third from its first steps).
    let (train, _) = gumbelgrad::data::SyntheticDigits::new(3)
        .with_sizes(1600, 10)
        .generate();
    let model_config = VaeConfig {
        encoder_hidden: vec![128],
        decoder_hidden: vec![128],
        ..VaeConfig::default()
    };
    let config = TrainConfig {
        batch_size: 32,
        seed: 5,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::<f32>::new(model_config, config).unwrap();
    let mut losses = Vec::new();
    for _ in 0..6 {
        trainer
            .train_epoch(&train.images, |step| losses.push(step.loss))
            .unwrap();
    }
    assert_eq!(losses.len(), 300);
    let first: f64 = losses[..20].iter().sum::<f64>() / 20.0;
    let last: f64 = losses[losses.len() - 20..].iter().sum::<f64>() / 20.0;
    println!("mean loss of the first 20 steps {first:.1}, of the last 20 {last:.1}");
    assert!(
        last < first * 2.0 / 3.0,
        "loss went from {first:.1} to {last:.1}"
    );
}

#[test]
fn every_estimator_trains_both_vaes() {
    // One switch of the estimator argument is all a model needs: every estimator the
    // enum knows runs a step of the VAE whose latents it fits, with a finite loss and
    // a gradient reaching the encoder (through the sample or through the score).
    let images = binary_images(8, 12, 7);
    let mut ran = std::collections::BTreeSet::new();
    for latent in [
        Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        Latent::Bernoulli { units: 4 },
    ] {
        let config = VaeConfig {
            latent,
            ..small_config()
        };
        let model = DiscreteVae::<f32>::new(config, &mut StdRng::seed_from_u64(1)).unwrap();
        for name in gumbelgrad::estimators::ESTIMATOR_NAMES {
            let mut estimator = Estimator::<f32>::from_name(name, 0.8).unwrap();
            if model.check_estimator(&estimator).is_err() {
                continue;
            }
            let tape = Tape::new();
            let params = model.parameters().bind(&tape);
            let x = tape.constant(&images);
            let terms =
                model.negative_elbo(&params, x, &mut estimator, &mut StdRng::seed_from_u64(2));
            tape.backward(terms.loss)
                .unwrap_or_else(|e| panic!("{name} on {latent:?}: {e}"));
            let loss = terms.loss.scalar().unwrap();
            assert!(loss.is_finite(), "{name} on {latent:?}: loss {loss}");
            let grads = params.gradients();
            let encoder_norm: f32 = grads.as_slice()[0].as_slice().iter().map(|g| g * g).sum();
            ran.insert(*name);
            assert!(
                encoder_norm.is_finite() && encoder_norm > 0.0,
                "{name} on {latent:?}: encoder gradient {encoder_norm}"
            );
        }
    }
    assert_eq!(
        ran.len(),
        gumbelgrad::estimators::ESTIMATOR_NAMES.len(),
        "ran {ran:?}"
    );
}

#[test]
fn the_schedule_does_not_undo_rebar_tuning_its_temperature() {
    // REBAR tunes its own temperature by descending the estimator's variance (Adam,
    // rate 0.01 on log tau). The trainer hands it the schedule's temperature only when
    // the schedule moves, so under a constant schedule 20 steps of tuning move log tau
    // further than the single step (at most about 0.01) left if it were reset every step.
    let config = TrainConfig {
        estimator: "rebar".into(),
        temperature: TemperatureSchedule::constant(0.5).unwrap(),
        ..train_config()
    };
    let images = binary_images(40, 12, 8);
    let mut trainer = Trainer::<f32>::new(small_config(), config).unwrap();
    for _ in 0..4 {
        trainer.train_epoch(&images, |_| {}).unwrap();
    }
    assert_eq!(trainer.steps(), 20);
    let drift = (trainer.estimator().temperature().unwrap() / 0.5)
        .ln()
        .abs();
    assert!(drift > 0.08, "log tau moved by only {drift}");
}

/// The gradient of `-ELBO` for one image, exactly: `sum_z q(z|x) (-log p(x|z)) + KL`,
/// enumerating the `K` values of a single categorical latent, differentiated on a tape.
fn exact_negative_elbo_gradient(model: &DiscreteVae<f64>, image: &Tensor<f64>) -> Vec<Vec<f64>> {
    let classes = model.config().latent.group_size();
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    let x = tape.constant(image);
    let logits = model.encode(&params, x);
    let q = logits.softmax(classes);
    let mut total = model.kl_to_uniform(logits);
    for k in 0..classes {
        let mut one_hot = vec![0.0; classes];
        one_hot[k] = 1.0;
        let pick = tape.constant(&Tensor::from_vec(classes, 1, one_hot.clone()).unwrap());
        let z = tape.constant(&Tensor::from_vec(1, classes, one_hot).unwrap());
        total = total + q.matmul(pick) * model.reconstruction_cost(&params, z, x);
    }
    tape.backward(total.sum()).unwrap();
    params
        .gradients()
        .as_slice()
        .iter()
        .map(|g| g.as_slice().to_vec())
        .collect()
}

/// NVIL divides its reconstruction estimate by `s`; the VAE divides the exact KL
/// gradient by the same `s`, so `s` times the encoder's gradient (and the decoder's
/// gradient as it is) are unbiased for the exact gradient of `-ELBO`, checked by
/// enumeration. (Without the KL scaling the encoder's mean misses by `(s - 1) dKL`:
/// 14 standard errors here, against 1.9 with it.)
#[test]
fn a_normalised_score_function_estimate_is_unbiased_for_the_whole_negative_elbo() {
    let config = VaeConfig {
        input_dim: 40,
        latent: Latent::Categorical {
            variables: 1,
            classes: 3,
        },
        encoder_hidden: vec![4],
        decoder_hidden: vec![4],
    };
    let mut model = DiscreteVae::<f64>::new(config, &mut StdRng::seed_from_u64(5)).unwrap();
    // Move q away from the uniform prior, where the KL's gradient would vanish.
    let last_bias = model
        .parameters()
        .names()
        .position(|n| n == "encoder.1.bias");
    let decoder_input = model
        .parameters()
        .names()
        .position(|n| n == "decoder.0.weight");
    for (index, (_, value)) in model.parameters_mut().iter_mut().enumerate() {
        if Some(index) == last_bias {
            value.as_mut_slice().copy_from_slice(&[1.5, -1.0, 0.0]);
        }
        // A decoder that depends strongly on z keeps the signal's variance, and so the
        // normaliser's divisor s, well above 1 throughout.
        if Some(index) == decoder_input {
            value.as_mut_slice().iter_mut().for_each(|w| *w *= 20.0);
        }
    }
    let image = binary_images(1, 40, 6).cast::<f64>();
    let exact = exact_negative_elbo_gradient(&model, &image);
    let names: Vec<String> = model.parameters().names().map(str::to_string).collect();

    let (calls, batch) = (3000, 25);
    let images = Tensor::from_vec(batch, 40, image.as_slice().repeat(batch)).unwrap();
    let mut estimator = Estimator::<f64>::from_name("nvil", 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut samples: Vec<Vec<Vec<f64>>> = Vec::with_capacity(calls);
    let mut largest_scale = 1.0f64;
    let mut mean_scale = 0.0;
    for _ in 0..calls {
        let tape = Tape::new();
        let params = model.parameters().bind(&tape);
        let x = tape.constant(&images);
        let terms = model.negative_elbo(&params, x, &mut estimator, &mut rng);
        tape.backward(terms.loss).unwrap();
        let scale = gumbelgrad::estimators::GradientEstimator::signal_scale(&estimator);
        largest_scale = largest_scale.max(scale);
        mean_scale += scale / calls as f64;
        let grads = params.gradients();
        samples.push(
            grads
                .as_slice()
                .iter()
                .zip(&names)
                .map(|(g, name)| {
                    let factor = if name.starts_with("encoder") {
                        scale
                    } else {
                        1.0
                    };
                    g.as_slice().iter().map(|v| v * factor).collect()
                })
                .collect(),
        );
    }
    assert!(
        mean_scale > 2.0,
        "the test needs s well above 1; mean s {mean_scale}"
    );
    let mut worst: f64 = 0.0;
    for (p, exact_p) in exact.iter().enumerate() {
        for (i, &want) in exact_p.iter().enumerate() {
            let values: Vec<f64> = samples.iter().map(|s| s[p][i]).collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let se = (var / n).sqrt().max(1e-9);
            worst = worst.max((mean - want).abs() / se);
        }
    }
    eprintln!("mean s {mean_scale}, largest s {largest_scale}, worst |mean - exact| / SE {worst}");
    assert!(
        worst < 4.5,
        "worst |mean - exact| / SE over every parameter = {worst}"
    );
}

/// Every training setting the checkpoint records: resuming with a different one is an
/// `Error::BadFile` naming the key, the file's value and the run's, unless the resume
/// allows changed settings. The number of training images is checked at the first
/// epoch, when the data is known.
#[test]
fn resume_rejects_changed_settings_unless_allowed() {
    let images = binary_images(16, 12, 1);
    let mut trainer = Trainer::<f32>::new(small_config(), train_config()).unwrap();
    trainer.train_epoch(&images, |_| {}).unwrap();
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-resume-settings-{}.safetensors",
        std::process::id()
    ));
    trainer.save_checkpoint(&path).unwrap();
    let changed: Vec<(&str, &str, &str, TrainConfig)> = vec![
        (
            "batch_size",
            "8",
            "4",
            TrainConfig {
                batch_size: 4,
                ..train_config()
            },
        ),
        (
            "learning_rate",
            "initial: 0.003",
            "Constant(0.001)",
            TrainConfig {
                learning_rate: LearningRateSchedule::Constant(1e-3),
                ..train_config()
            },
        ),
        (
            "temperature",
            "minimum: 0.5",
            "minimum: 0.7",
            TrainConfig {
                temperature: TemperatureSchedule::exponential(1.0, 0.05, 4, 0.7).unwrap(),
                ..train_config()
            },
        ),
        (
            "dynamic_binarization",
            "true",
            "false",
            TrainConfig {
                dynamic_binarization: false,
                ..train_config()
            },
        ),
    ];
    let estimator = || -> Box<dyn GradientEstimator<f32>> {
        Box::new(Estimator::<f32>::from_name("gumbel-softmax", 1.0).unwrap())
    };
    for (key, theirs, ours, config) in changed {
        let error = Trainer::<f32>::resume(&path, small_config(), config.clone()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::BadFile { .. }), "{key}: {error:?}");
        assert!(
            message.contains(key) && message.contains(theirs) && message.contains(ours),
            "{key}: {message}"
        );
        let allowed = ResumeOptions {
            allow_changed_settings: true,
        };
        let mut resumed =
            Trainer::resume_with_options(&path, small_config(), config, estimator(), allowed)
                .unwrap();
        resumed.train_epoch(&images, |_| {}).unwrap();
    }
    // A different data set (number of training images): refused at the first epoch,
    // before any step.
    let more = binary_images(24, 12, 2);
    let mut resumed = Trainer::<f32>::resume(&path, small_config(), train_config()).unwrap();
    let steps = resumed.steps();
    let error = resumed.train_epoch(&more, |_| {}).unwrap_err();
    assert!(matches!(error, Error::BadFile { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("train_images = 16") && message.contains("24"),
        "{message}"
    );
    assert_eq!(resumed.steps(), steps);
    resumed.train_epoch(&images, |_| {}).unwrap();
    let mut allowed = Trainer::resume_with_options(
        &path,
        small_config(),
        train_config(),
        estimator(),
        ResumeOptions {
            allow_changed_settings: true,
        },
    )
    .unwrap();
    allowed.train_epoch(&more, |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
}
