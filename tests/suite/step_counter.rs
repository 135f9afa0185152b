//! A checkpoint whose step counter is at `u64::MAX` resumes, but the next step is a
//! typed error that leaves the model unchanged: the counter never wraps to 0 (which
//! would replay the temperature and learning-rate schedules and the random streams).

use gumbelgrad::Error;
use gumbelgrad::Tensor;
use gumbelgrad::estimators::TemperatureSchedule;
use gumbelgrad::io::checkpoint::Checkpoint;
use gumbelgrad::models::{Latent, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn model_config() -> VaeConfig {
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

fn train_config() -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        learning_rate: LearningRateSchedule::Constant(1e-3),
        temperature: TemperatureSchedule::exponential(1.0, 0.05, 4, 0.5).unwrap(),
        estimator: "gumbel-softmax".into(),
        dynamic_binarization: true,
        seed: 3,
        shards: 1,
    }
}

#[test]
fn a_step_counter_at_its_maximum_is_a_typed_error_not_a_wrap() {
    let images = Tensor::<f32>::random_uniform(8, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(1));
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-step-counter-{}.safetensors",
        std::process::id()
    ));
    let mut trainer = Trainer::<f32>::new(model_config(), train_config()).unwrap();
    trainer.step(&images, &[0, 1, 2, 3]).unwrap();
    trainer.save_checkpoint(&path).unwrap();
    let mut checkpoint = Checkpoint::<f32>::load(&path).unwrap();
    checkpoint.set_u64("step", u64::MAX);
    checkpoint.save(&path).unwrap();

    let mut resumed = Trainer::<f32>::resume(&path, model_config(), train_config()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(resumed.steps(), u64::MAX);
    let before: Vec<Tensor<f32>> = resumed
        .model()
        .parameters()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    let error = resumed.step(&images, &[0, 1, 2, 3]).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument { message, .. } if message.contains("step counter")),
        "{error:?}"
    );
    assert_eq!(resumed.steps(), u64::MAX, "the counter must not wrap");
    let after: Vec<Tensor<f32>> = resumed
        .model()
        .parameters()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert!(before == after, "a refused step must not change the model");
}
