//! The semi-supervised M2 model: gradients against finite differences (marginal and
//! fixed-noise Gumbel-Softmax paths, labelled loss), the marginal loss against an
//! explicit loop over classes, a few training steps, and typed errors for bad input.

use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::Estimator;
use gumbelgrad::estimators::noise::one_hot;
use gumbelgrad::models::semi_supervised::SemiSupervisedTrainConfig;
use gumbelgrad::models::{
    SemiSupervisedConfig, SemiSupervisedTrainer, SemiSupervisedVae, UnlabelledObjective,
};
use gumbelgrad::nn::BoundParameters;
use gumbelgrad::{Error, GradcheckOptions, Tape, Tensor, gradcheck};
use rand::SeedableRng;
use rand::rngs::StdRng;

const CLASSES: usize = 3;
const BATCH: usize = 4;

fn tiny_config() -> SemiSupervisedConfig {
    SemiSupervisedConfig {
        input_dim: 7,
        classes: CLASSES,
        latent_dim: 2,
        classifier_hidden: vec![5],
        encoder_hidden: vec![4],
        decoder_hidden: vec![5],
    }
}

fn tiny_model() -> SemiSupervisedVae<f64> {
    SemiSupervisedVae::new(tiny_config(), &mut StdRng::seed_from_u64(11)).unwrap()
}

/// Grey "images" in (0.1, 0.9): the BCE targets need not be binary.
fn images(rows: usize, seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(rows, 7, 0.1, 0.9, &mut StdRng::seed_from_u64(seed))
}

fn parameter_tensors(model: &SemiSupervisedVae<f64>) -> Vec<Tensor<f64>> {
    model.parameters().iter().map(|(_, t)| t.clone()).collect()
}

#[test]
fn marginal_and_labelled_gradients_match_finite_differences() {
    let model = tiny_model();
    let x = images(BATCH, 1);
    let mut rng = StdRng::seed_from_u64(2);
    let marginal_noise = model.latent_noise(CLASSES * BATCH, &mut rng);
    let labelled_noise = model.latent_noise(BATCH, &mut rng);
    let labels = [2, 0, 1, 2];
    let report = gradcheck(
        &parameter_tensors(&model),
        GradcheckOptions::default(),
        |tape, vars| {
            let params = BoundParameters::from_vars(vars.to_vec());
            let x = tape.constant(&x);
            let unlabelled = model
                .marginal_unlabelled_loss(&params, x, &marginal_noise)
                .unwrap();
            let labelled = model
                .labelled_loss(&params, x, &labels, 0.7, &labelled_noise)
                .unwrap();
            unlabelled.loss + labelled.loss
        },
    )
    .unwrap();
    assert!(report.max_rel_error < 1e-6, "{report}");
}

#[test]
fn gumbel_softmax_gradients_with_fixed_noise_match_finite_differences() {
    let model = tiny_model();
    let x = images(BATCH, 3);
    let noise = model.latent_noise(BATCH, &mut StdRng::seed_from_u64(4));
    let report = gradcheck(
        &parameter_tensors(&model),
        GradcheckOptions::default(),
        |tape, vars| {
            let params = BoundParameters::from_vars(vars.to_vec());
            let mut estimator = Estimator::gumbel_softmax(0.7).unwrap();
            // The same Gumbel noise at every evaluation: a fresh generator, same seed.
            let mut gumbel_rng = StdRng::seed_from_u64(5);
            model
                .sampled_unlabelled_loss(
                    &params,
                    tape.constant(&x),
                    &mut estimator,
                    &noise,
                    &mut gumbel_rng,
                )
                .unwrap()
                .loss
        },
    )
    .unwrap();
    assert!(report.max_rel_error < 1e-6, "{report}");
}

#[test]
fn marginal_loss_equals_an_explicit_loop_over_classes() {
    let model = tiny_model();
    let x = images(BATCH, 6);
    let noise = model.latent_noise(CLASSES * BATCH, &mut StdRng::seed_from_u64(7));
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    let xv = tape.constant(&x);
    let terms = model.marginal_unlabelled_loss(&params, xv, &noise).unwrap();
    let expected_per_example = terms.expected_negative_elbo.value().unwrap();

    // The same quantity, one class at a time, on a separate tape.
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    let xv = tape.constant(&x);
    let logits = model.classify(&params, xv).value().unwrap();
    let mut per_class = Vec::new(); // per_class[c].get(b, 0) = -ELBO(x_b, c)
    for class in 0..CLASSES {
        let y = tape.constant(&one_hot::<f64>(BATCH, &[class; BATCH], CLASSES).unwrap());
        let rows = Tensor::from_slice(
            BATCH,
            2,
            &noise.as_slice()[class * BATCH * 2..(class + 1) * BATCH * 2],
        )
        .unwrap();
        let value = model
            .negative_elbo(&params, xv, y, tape.constant(&rows))
            .value()
            .unwrap();
        per_class.push(value);
    }
    let mut total = 0.0;
    for b in 0..BATCH {
        let row = logits.row(b);
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let norm: f64 = row.iter().map(|l| (l - max).exp()).sum();
        let q: Vec<f64> = row.iter().map(|l| (l - max).exp() / norm).collect();
        let expected: f64 = (0..CLASSES).map(|c| q[c] * per_class[c].get(b, 0)).sum();
        let entropy: f64 = -q.iter().map(|p| p * p.ln()).sum::<f64>();
        assert!(
            (expected - expected_per_example.get(b, 0)).abs() < 1e-12,
            "example {b}: loop {expected} vs marginal {}",
            expected_per_example.get(b, 0)
        );
        total += expected - entropy;
    }
    let loss = terms.loss.scalar().unwrap();
    assert!(
        (loss - total / BATCH as f64).abs() < 1e-12,
        "loss {loss} vs loop {}",
        total / BATCH as f64
    );
}

/// Mean loss of the first and of the last `window` of `steps` training steps on
/// synthetic digits with a small model.
fn train_on_synthetic_digits(objective: &str, steps: usize, window: usize) -> (f64, f64) {
    let (train, _) = SyntheticDigits::new(3).with_sizes(400, 10).generate();
    let labels: Vec<usize> = train
        .labels
        .as_ref()
        .unwrap()
        .iter()
        .map(|&l| l as usize)
        .collect();
    let model_config = SemiSupervisedConfig {
        input_dim: 784,
        classes: 10,
        latent_dim: 8,
        classifier_hidden: vec![32],
        encoder_hidden: vec![32],
        decoder_hidden: vec![32],
    };
    let config = SemiSupervisedTrainConfig {
        objective: objective.to_string(),
        seed: 1,
        ..SemiSupervisedTrainConfig::default()
    };
    let mut trainer = SemiSupervisedTrainer::<f32>::new(model_config, config).unwrap();
    // Images 0..20 are labelled (labels cycle 0..9), the other 380 unlabelled.
    let images: Tensor<f32> = train.images.to_tensor();
    let labelled = Tensor::from_slice(20, 784, &images.as_slice()[..20 * 784]).unwrap();
    let mut losses = Vec::new();
    for step in 0..steps {
        let start = 20 + (step * 40) % 360;
        let unlabelled =
            Tensor::from_slice(40, 784, &images.as_slice()[start * 784..(start + 40) * 784])
                .unwrap();
        let report = trainer
            .step(&unlabelled, Some((&labelled, &labels[..20])))
            .unwrap();
        assert!(report.loss.is_finite());
        losses.push(report.loss);
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..window]), mean(&losses[steps - window..]))
}

#[test]
fn training_a_few_steps_lowers_the_loss() {
    for objective in ["marginal", "gumbel-softmax", "st-gumbel-softmax"] {
        let (first, last) = train_on_synthetic_digits(objective, 40, 5);
        assert!(
            last < 0.8 * first,
            "{objective}: loss went from {first:.2} to {last:.2}"
        );
    }
}

fn is_invalid_argument(result: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::InvalidArgument { .. }))
}

#[test]
fn bad_input_gives_typed_errors() {
    let model = tiny_model();
    let x = images(BATCH, 8);
    let noise = model.latent_noise(BATCH, &mut StdRng::seed_from_u64(9));
    let tape = Tape::new();
    let params = model.parameters().bind(&tape);
    let xv = tape.constant(&x);

    // Wrong number of labels, a label >= k, a negative alpha.
    assert!(is_invalid_argument(model.labelled_loss(
        &params,
        xv,
        &[0, 1, 2],
        1.0,
        &noise
    )));
    assert!(is_invalid_argument(model.labelled_loss(
        &params,
        xv,
        &[0, 1, 2, CLASSES],
        1.0,
        &noise
    )));
    assert!(is_invalid_argument(model.labelled_loss(
        &params,
        xv,
        &[0, 1, 2, 0],
        -1.0,
        &noise
    )));
    // Noise for one copy where the marginal needs k; images of the wrong width.
    assert!(is_invalid_argument(
        model.marginal_unlabelled_loss(&params, xv, &noise)
    ));
    let narrow = tape.constant(&Tensor::zeros(BATCH, 6));
    assert!(is_invalid_argument(
        model.marginal_unlabelled_loss(&params, narrow, &noise)
    ));
    // An estimator whose gradient does not flow through the sample.
    let mut reinforce = Estimator::from_name("reinforce", 1.0).unwrap();
    assert!(is_invalid_argument(model.sampled_unlabelled_loss(
        &params,
        xv,
        &mut reinforce,
        &noise,
        &mut StdRng::seed_from_u64(0)
    )));
    assert!(is_invalid_argument(UnlabelledObjective::<f64>::from_name(
        "reinforce",
        1.0
    )));
    assert!(UnlabelledObjective::<f64>::from_name("no-such-thing", 1.0).is_err());
    // Accuracy with the wrong number of labels; a model with one class.
    assert!(is_invalid_argument(model.accuracy(&x, &[0, 1], 2)));
    let one_class = SemiSupervisedConfig {
        classes: 1,
        ..tiny_config()
    };
    assert!(is_invalid_argument(SemiSupervisedVae::<f64>::new(
        one_class,
        &mut StdRng::seed_from_u64(0)
    )));

    // Through the trainer: the same checks, and nothing is updated.
    let mut trainer =
        SemiSupervisedTrainer::<f64>::new(tiny_config(), SemiSupervisedTrainConfig::default())
            .unwrap();
    assert!(is_invalid_argument(
        trainer.step(&x, Some((&x, &[0, 1, 7, 0])))
    ));
    assert!(is_invalid_argument(trainer.step(&x, Some((&x, &[0])))));
    assert_eq!(trainer.steps(), 0);
    assert!(trainer.step(&x, Some((&x, &[0, 1, 2, 0]))).is_ok());
    assert_eq!(trainer.steps(), 1);
}
