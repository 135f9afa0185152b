//! SBN checkpoints: two epochs straight and one epoch, save, resume, one epoch give
//! byte-identical checkpoint files (model, Adam, counters and both layers' estimator
//! states, REBAR's and RELAX's tuning included), and a resume with other settings is
//! refused.

use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::score::{Rebar, Relax};
use gumbelgrad::estimators::{GradientEstimator, TemperatureSchedule};
use gumbelgrad::models::{SbnConfig, SbnTrainConfig, SbnTrainer, split_halves};
use gumbelgrad::{Error, Tensor};

fn config(name: &str) -> SbnTrainConfig {
    SbnTrainConfig {
        batch_size: 5,
        learning_rate: 3e-3,
        temperature: TemperatureSchedule::constant(1.0).unwrap(),
        estimator: name.to_string(),
        seed: 7,
    }
}

fn model(categorical: bool) -> SbnConfig {
    if categorical {
        SbnConfig::categorical(2, 3)
    } else {
        SbnConfig::bernoulli(4)
    }
}

fn data() -> (Tensor<f32>, Tensor<f32>) {
    let (train, _) = SyntheticDigits::new(3).with_sizes(20, 1).generate();
    split_halves(&train.images.to_tensor()).unwrap()
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "gumbelgrad-sbn-resume-{}-{tag}.safetensors",
        std::process::id()
    ))
}

fn read_and_remove(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    bytes
}

type Pair = (
    Box<dyn GradientEstimator<f32>>,
    Box<dyn GradientEstimator<f32>>,
);

/// Checkpoint bytes after two epochs straight and after one epoch, save, resume, one
/// epoch; `estimators` builds a fresh pair (or `None`: by name).
fn straight_and_resumed(
    tag: &str,
    name: &str,
    categorical: bool,
    estimators: &dyn Fn() -> Option<Pair>,
) -> (Vec<u8>, Vec<u8>) {
    let (up, low) = data();
    let fresh = || match estimators() {
        Some((a, b)) => SbnTrainer::with_estimators(model(categorical), config(name), a, b),
        None => SbnTrainer::new(model(categorical), config(name)),
    };
    let (straight, half, split) = (
        temp_path(&format!("{tag}-straight")),
        temp_path(&format!("{tag}-half")),
        temp_path(&format!("{tag}-split")),
    );
    let mut trainer = fresh().unwrap();
    for _ in 0..2 {
        trainer.train_epoch(&up, &low, |_, _| {}).unwrap();
    }
    trainer.save_checkpoint(&straight).unwrap();

    let mut first = fresh().unwrap();
    first.train_epoch(&up, &low, |_, _| {}).unwrap();
    first.save_checkpoint(&half).unwrap();
    drop(first);
    let mut resumed = match estimators() {
        Some((a, b)) => {
            SbnTrainer::resume_with_estimators(&half, model(categorical), config(name), a, b)
        }
        None => SbnTrainer::resume(&half, model(categorical), config(name)),
    }
    .unwrap();
    assert_eq!((resumed.epochs(), resumed.steps()), (1, 4));
    resumed.train_epoch(&up, &low, |_, _| {}).unwrap();
    resumed.save_checkpoint(&split).unwrap();
    std::fs::remove_file(&half).unwrap();
    (read_and_remove(&straight), read_and_remove(&split))
}

#[test]
fn a_resumed_sbn_run_ends_byte_for_byte_where_the_straight_run_does() {
    for name in ["rebar", "relax", "muprop", "nvil", "gumbel-softmax"] {
        for categorical in [false, true] {
            if name == "gumbel-softmax" && !categorical {
                continue;
            }
            let tag = format!("{name}-{categorical}");
            let (straight, split) = straight_and_resumed(&tag, name, categorical, &|| None);
            assert!(straight == split, "{tag}: the resumed run differs");
        }
    }
}

/// REBAR and RELAX tuning every third call: the call counter is part of the state, so
/// a resumed run tunes on the same calls.
#[test]
fn the_tuning_interval_resumes_on_the_same_calls() {
    let rebar = || -> Option<Pair> {
        let one = || {
            Box::new(
                Rebar::new(1.0, 1.0)
                    .unwrap()
                    .with_tuning_interval(3)
                    .unwrap(),
            )
        };
        Some((one(), one()))
    };
    let relax = || -> Option<Pair> {
        let one = || {
            Box::new(
                Relax::new(1.0, 1.0, 4)
                    .unwrap()
                    .with_tuning_interval(3)
                    .unwrap(),
            )
        };
        Some((one(), one()))
    };
    for (tag, pair) in [
        ("rebar-3", &rebar as &dyn Fn() -> Option<Pair>),
        ("relax-3", &relax),
    ] {
        let (straight, split) = straight_and_resumed(tag, "unused", false, pair);
        assert!(straight == split, "{tag}: the resumed run differs");
    }
}

#[test]
fn a_resume_with_other_settings_is_refused() {
    let (up, low) = data();
    let path = temp_path("settings");
    let mut trainer = SbnTrainer::<f32>::new(model(false), config("rebar")).unwrap();
    trainer.train_epoch(&up, &low, |_, _| {}).unwrap();
    trainer.save_checkpoint(&path).unwrap();
    let changed = [
        SbnTrainConfig {
            seed: 8,
            ..config("rebar")
        },
        SbnTrainConfig {
            batch_size: 4,
            ..config("rebar")
        },
        SbnTrainConfig {
            learning_rate: 1e-3,
            ..config("rebar")
        },
        config("relax"),
    ];
    for other in changed {
        let described = format!("{other:?}");
        match SbnTrainer::<f32>::resume(&path, model(false), other) {
            Err(Error::BadFile { .. }) => {}
            other => panic!("{described}: expected a bad-file error, got {other:?}"),
        }
    }
    assert!(SbnTrainer::<f32>::resume(&path, model(true), config("rebar")).is_err());
    // another training set: refused at the next epoch
    let mut resumed = SbnTrainer::<f32>::resume(&path, model(false), config("rebar")).unwrap();
    let first_rows =
        |t: &Tensor<f32>| Tensor::from_slice(15, t.cols(), &t.as_slice()[..15 * t.cols()]).unwrap();
    let (fewer_up, fewer_low) = (first_rows(&up), first_rows(&low));
    assert!(
        resumed
            .train_epoch(&fewer_up, &fewer_low, |_, _| {})
            .is_err()
    );
    std::fs::remove_file(&path).unwrap();
}
