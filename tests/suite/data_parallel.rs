//! Data parallelism (`TrainConfig::shards`): a minibatch cut into shards, each on its
//! own tape, gives the gradient of the whole minibatch; estimators with state are
//! refused; a sharded run resumes bit for bit and checks its shard count. (That the
//! thread count changes no bit is checked in `tests/threads.rs`.)

use crate::same_bits::assert_same_parameters;
use gumbelgrad::Error;
use gumbelgrad::Tensor;
use gumbelgrad::estimators::TemperatureSchedule;
use gumbelgrad::io::Checkpoint;
use gumbelgrad::models::{Latent, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn model() -> VaeConfig {
    VaeConfig {
        input_dim: 12,
        latent: Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        encoder_hidden: vec![7],
        decoder_hidden: vec![6],
    }
}

fn config(estimator: &str, shards: usize) -> TrainConfig {
    TrainConfig {
        batch_size: 8,
        learning_rate: LearningRateSchedule::Constant(3e-3),
        temperature: TemperatureSchedule::exponential(1.0, 0.05, 3, 0.5).unwrap(),
        estimator: estimator.to_string(),
        dynamic_binarization: false,
        seed: 9,
        shards,
    }
}

fn images() -> Tensor<f64> {
    Tensor::<f64>::random_uniform(16, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(3))
        .map(|x| if x > 0.5 { 1.0 } else { 0.0 })
}

/// The loss and the gradients (flattened) of the first step on rows 0..8.
fn first_step(estimator: &str, shards: usize) -> (f64, Vec<f64>) {
    let mut trainer = Trainer::<f64>::new(model(), config(estimator, shards)).unwrap();
    let rows: Vec<usize> = (0..8).collect();
    let report = trainer.step(&images(), &rows).unwrap();
    let grads = trainer
        .gradients()
        .as_slice()
        .iter()
        .flat_map(|g| g.as_slice().iter().copied())
        .collect();
    (report.loss, grads)
}

#[test]
fn the_mean_of_the_shards_gradients_is_the_minibatch_gradient() {
    // st-argmax draws no noise, so every shard count estimates the same quantity and
    // only the grouping of the batch's sums differs.
    let (loss, grads) = first_step("st-argmax", 1);
    assert!(grads.iter().any(|g| g.abs() > 1e-3));
    for shards in [2, 4, 8] {
        let (sharded_loss, sharded) = first_step("st-argmax", shards);
        assert!(
            (sharded_loss - loss).abs() <= 1e-12 * loss.abs(),
            "{shards} shards: loss {sharded_loss} against {loss}"
        );
        let scale = grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (i, (a, b)) in sharded.iter().zip(&grads).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * scale,
                "{shards} shards: gradient {i} is {a}, the minibatch's {b}"
            );
        }
    }
}

#[test]
fn shards_draw_their_own_noise() {
    // With noise, two shards are not one tape: each draws from its own stream.
    let (_, one) = first_step("gumbel-softmax", 1);
    let (_, two) = first_step("gumbel-softmax", 2);
    let (_, again) = first_step("gumbel-softmax", 2);
    assert_ne!(one, two);
    assert_eq!(two, again);
}

#[test]
fn estimators_with_state_and_uneven_shards_are_refused() {
    for estimator in ["reinforce-ema", "nvil", "muprop", "rebar", "relax"] {
        let error = Trainer::<f64>::new(model(), config(estimator, 2)).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument { .. }) && error.to_string().contains("shard"),
            "{estimator}: {error}"
        );
        // One shard is fine.
        Trainer::<f64>::new(model(), config(estimator, 1)).unwrap();
    }
    for estimator in [
        "gumbel-softmax",
        "reinforce",
        "vimco",
        "rloo",
        "disarm",
        "reinmax",
    ] {
        Trainer::<f64>::new(model(), config(estimator, 2)).unwrap();
    }
    for shards in [0, 3] {
        let error = Trainer::<f64>::new(model(), config("gumbel-softmax", shards)).unwrap_err();
        assert!(error.to_string().contains("shards"), "{shards}: {error}");
    }
}

#[test]
fn a_sharded_run_resumes_bit_for_bit_and_checks_its_shards() {
    let images = images();
    let mut uninterrupted = Trainer::<f64>::new(model(), config("gumbel-softmax", 2)).unwrap();
    for _ in 0..4 {
        uninterrupted.train_epoch(&images, |_| {}).unwrap();
    }
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-sharded-resume-{}.safetensors",
        std::process::id()
    ));
    let mut first = Trainer::<f64>::new(model(), config("gumbel-softmax", 2)).unwrap();
    for _ in 0..2 {
        first.train_epoch(&images, |_| {}).unwrap();
    }
    first.save_checkpoint(&path).unwrap();
    let other = Trainer::<f64>::resume(&path, model(), config("gumbel-softmax", 1)).unwrap_err();
    assert!(other.to_string().contains("shards"), "{other}");
    let mut resumed = Trainer::<f64>::resume(&path, model(), config("gumbel-softmax", 2)).unwrap();
    std::fs::remove_file(&path).unwrap();
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
fn a_checkpoint_without_the_shards_key_is_a_one_shard_run() {
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-unsharded-checkpoint-{}.safetensors",
        std::process::id()
    ));
    let mut trainer = Trainer::<f64>::new(model(), config("gumbel-softmax", 1)).unwrap();
    trainer.train_epoch(&images(), |_| {}).unwrap();
    trainer.save_checkpoint(&path).unwrap();
    // The file as a build from before data parallelism wrote it: no `shards` key.
    let saved = Checkpoint::<f64>::load(&path).unwrap();
    let mut older = Checkpoint::<f64>::new();
    older.extend(saved.tensors().iter().cloned());
    for (key, value) in saved.metadata() {
        if key != "shards" {
            older.set(key.clone(), value.clone());
        }
    }
    older.save(&path).unwrap();
    let error = Trainer::<f64>::resume(&path, model(), config("gumbel-softmax", 2)).unwrap_err();
    assert!(error.to_string().contains("shards = 1"), "{error}");
    let resumed = Trainer::<f64>::resume(&path, model(), config("gumbel-softmax", 1)).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(resumed.steps(), trainer.steps());
}

#[test]
fn a_resumed_sharded_run_checks_its_parameters_before_its_shards_use_them() {
    // The optimiser checks every value it writes, so the shards copy the parameters
    // unchecked after a step; parameters read from a file are checked on their first
    // step, in each shard as on one tape.
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-sharded-nan-{}.safetensors",
        std::process::id()
    ));
    let rows: Vec<usize> = (0..8).collect();
    let mut trainer = Trainer::<f64>::new(model(), config("gumbel-softmax", 2)).unwrap();
    trainer.step(&images(), &rows).unwrap();
    trainer.save_checkpoint(&path).unwrap();
    let first_parameter = trainer
        .model()
        .parameters()
        .iter()
        .next()
        .unwrap()
        .0
        .to_string();
    let saved = Checkpoint::<f64>::load(&path).unwrap();
    let mut broken = Checkpoint::<f64>::new();
    let mut poisoned = 0;
    for (name, tensor) in saved.tensors() {
        let mut tensor = tensor.clone();
        if *name == format!("model.{first_parameter}") {
            tensor.as_mut_slice()[0] = f64::NAN;
            poisoned += 1;
        }
        broken.push(name.clone(), tensor);
    }
    assert_eq!(poisoned, 1, "one tensor holds {first_parameter}");
    for (key, value) in saved.metadata() {
        broken.set(key.clone(), value.clone());
    }
    broken.save(&path).unwrap();
    let mut resumed = Trainer::<f64>::resume(&path, model(), config("gumbel-softmax", 2)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let error = resumed.step(&images(), &rows).unwrap_err();
    // Refused as it enters a shard's tape, not only once the update has spread it.
    assert!(
        matches!(&error, Error::NonFiniteInput { .. })
            && error.to_string().contains("tape input")
            && error.to_string().contains(&first_parameter),
        "{error}"
    );
}
