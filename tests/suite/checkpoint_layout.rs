//! A checkpoint can be read by another program: its `gumbelgrad` metadata is JSON that
//! describes the model, and the tensors are laid out as that description says (model
//! weights `[in, out]` and biases `[1, out]` under `model.`, optimiser moments under
//! `optim.`, nothing else), which is what `interop/torch_vae.py` relies on.

use gumbelgrad::Tensor;
use gumbelgrad::estimators::TemperatureSchedule;
use gumbelgrad::io::Checkpoint;
use gumbelgrad::io::json::Json;
use gumbelgrad::models::{DESCRIPTION_KEY, Latent, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn sizes(mlp: &Json) -> Vec<usize> {
    mlp.get("sizes")
        .and_then(Json::as_array)
        .expect("an MLP description has sizes")
        .iter()
        .map(|n| n.as_u64().expect("sizes are integers") as usize)
        .collect()
}

fn saved_checkpoint(latent: Latent, estimator: &str, tag: &str) -> Checkpoint<f32> {
    let config = VaeConfig {
        input_dim: 12,
        latent,
        encoder_hidden: vec![7, 5],
        decoder_hidden: vec![6],
    };
    let train = TrainConfig {
        batch_size: 4,
        learning_rate: LearningRateSchedule::Constant(1e-3),
        temperature: TemperatureSchedule::constant(0.7).unwrap(),
        estimator: estimator.to_string(),
        dynamic_binarization: false,
        seed: 1,
        shards: 1,
    };
    let images = Tensor::<f32>::random_uniform(8, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(2))
        .map(|x| if x > 0.5 { 1.0 } else { 0.0 });
    let mut trainer = Trainer::<f32>::new(config, train).unwrap();
    trainer.train_epoch(&images, |_| {}).unwrap();
    let path = std::env::temp_dir().join(format!(
        "gumbelgrad-checkpoint-layout-{}-{tag}.safetensors",
        std::process::id()
    ));
    trainer.save_checkpoint(&path).unwrap();
    let checkpoint = Checkpoint::<f32>::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    checkpoint
}

#[test]
fn the_description_says_what_the_weights_are() {
    let checkpoint = saved_checkpoint(
        Latent::Categorical {
            variables: 2,
            classes: 3,
        },
        "gumbel-softmax",
        "categorical",
    );
    let text = checkpoint.get(DESCRIPTION_KEY).unwrap();
    let description = Json::parse(text).unwrap();
    assert_eq!(
        description.get("format").and_then(Json::as_str),
        Some("gumbelgrad-checkpoint")
    );
    assert_eq!(description.get("version").and_then(Json::as_u64), Some(1));
    assert_eq!(description.get("step").and_then(Json::as_u64), Some(2));
    assert_eq!(description.get("epoch").and_then(Json::as_u64), Some(1));
    let estimator = description.get("estimator").unwrap();
    assert_eq!(
        estimator.get("name").and_then(Json::as_str),
        Some("gumbel-softmax")
    );
    assert_eq!(
        estimator.get("temperature").and_then(Json::as_f64),
        Some(0.7)
    );

    let model = description.get("model").unwrap();
    assert_eq!(
        model.get("kind").and_then(Json::as_str),
        Some("discrete_vae")
    );
    assert_eq!(model.get("input_dim").and_then(Json::as_u64), Some(12));
    let latent = model.get("latent").unwrap();
    assert_eq!(
        latent.get("kind").and_then(Json::as_str),
        Some("categorical")
    );
    assert_eq!(latent.get("variables").and_then(Json::as_u64), Some(2));
    assert_eq!(latent.get("classes").and_then(Json::as_u64), Some(3));

    // Every layer the description names is a model tensor of the stated layout, and
    // the model has no other tensor.
    let mut expected = Vec::new();
    for (name, want) in [("encoder", vec![12, 7, 5, 6]), ("decoder", vec![6, 6, 12])] {
        let mlp = model.get(name).unwrap();
        assert_eq!(sizes(mlp), want, "{name}");
        assert_eq!(mlp.get("activation").and_then(Json::as_str), Some("relu"));
        for (layer, pair) in want.windows(2).enumerate() {
            let weight = format!("model.{name}.{layer}.weight");
            let bias = format!("model.{name}.{layer}.bias");
            let w = checkpoint.tensor(&weight).unwrap();
            assert_eq!((w.rows(), w.cols()), (pair[0], pair[1]), "{weight}");
            let b = checkpoint.tensor(&bias).unwrap();
            assert_eq!((b.rows(), b.cols()), (1, pair[1]), "{bias}");
            expected.push(weight);
            expected.push(bias);
        }
    }
    let mut model_tensors: Vec<String> = checkpoint
        .tensors()
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| name.starts_with("model."))
        .collect();
    model_tensors.sort();
    expected.sort();
    assert_eq!(model_tensors, expected);
    // Weights, optimiser moments and estimator state never share a prefix.
    for (name, _) in checkpoint.tensors() {
        assert!(
            name.starts_with("model.") || name.starts_with("optim."),
            "unexpected tensor {name}"
        );
    }
}

#[test]
fn binary_units_and_estimators_without_a_temperature_are_described_too() {
    let checkpoint = saved_checkpoint(Latent::Bernoulli { units: 4 }, "reinforce", "bernoulli");
    let description = Json::parse(checkpoint.get(DESCRIPTION_KEY).unwrap()).unwrap();
    let latent = description
        .get("model")
        .and_then(|m| m.get("latent"))
        .unwrap();
    assert_eq!(latent.get("kind").and_then(Json::as_str), Some("bernoulli"));
    assert_eq!(latent.get("units").and_then(Json::as_u64), Some(4));
    let estimator = description.get("estimator").unwrap();
    assert_eq!(
        estimator.get("name").and_then(Json::as_str),
        Some("reinforce")
    );
    assert_eq!(estimator.get("temperature"), Some(&Json::Null));
}
