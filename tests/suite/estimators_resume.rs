//! Every estimator's state survives a checkpoint: two epochs straight and one epoch,
//! save, resume, one epoch give byte-identical checkpoint files, for every name in
//! `ESTIMATOR_NAMES` (each on the VAE whose latents it fits).

use gumbelgrad::Tensor;
use gumbelgrad::estimators::{
    ESTIMATOR_NAMES, Estimator, EstimatorState, GradientEstimator, TemperatureSchedule,
};
use gumbelgrad::models::{Latent, TrainConfig, Trainer, VaeConfig};
use gumbelgrad::optim::LearningRateSchedule;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn vae(latent: Latent) -> VaeConfig {
    VaeConfig {
        input_dim: 12,
        latent,
        encoder_hidden: vec![6],
        decoder_hidden: vec![5],
    }
}

fn latent_for(name: &str) -> Latent {
    let estimator = Estimator::<f32>::from_name(name, 1.0).unwrap();
    if estimator.latent_kinds().categorical {
        Latent::Categorical {
            variables: 2,
            classes: 3,
        }
    } else {
        Latent::Bernoulli { units: 4 }
    }
}

fn config(name: &str) -> TrainConfig {
    TrainConfig {
        batch_size: 8,
        learning_rate: LearningRateSchedule::Constant(3e-3),
        // moves every 3 steps, so the split lands between two moves
        temperature: TemperatureSchedule::exponential(1.0, 0.05, 3, 0.5).unwrap(),
        estimator: name.to_string(),
        dynamic_binarization: true,
        seed: 5,
        shards: 1,
    }
}

/// A file name of its own for every call: the tests run on parallel threads and
/// train the same estimators, so a name made of the estimator alone would be shared.
fn temp_path(tag: &str, name: &str) -> std::path::PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "gumbelgrad-estimator-resume-{}-{call}-{name}-{tag}.safetensors",
        std::process::id()
    ))
}

/// The bytes of the checkpoint after two epochs straight, and after one epoch, save,
/// resume (with `resume`), one epoch.
fn both_checkpoints(
    name: &str,
    resume: impl Fn(&std::path::Path) -> Trainer<f32>,
) -> (Vec<u8>, Vec<u8>) {
    let images = Tensor::<f32>::random_uniform(40, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(3));
    let latent = latent_for(name);
    let (straight, half, split) = (
        temp_path("straight", name),
        temp_path("half", name),
        temp_path("split", name),
    );
    let mut trainer = Trainer::<f32>::new(vae(latent), config(name)).unwrap();
    for _ in 0..2 {
        trainer.train_epoch(&images, |_| {}).unwrap();
    }
    trainer.save_checkpoint(&straight).unwrap();

    let mut first = Trainer::<f32>::new(vae(latent), config(name)).unwrap();
    first.train_epoch(&images, |_| {}).unwrap();
    first.save_checkpoint(&half).unwrap();
    drop(first);
    let mut resumed = resume(&half);
    resumed.train_epoch(&images, |_| {}).unwrap();
    resumed.save_checkpoint(&split).unwrap();

    let read = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        std::fs::remove_file(p).unwrap();
        bytes
    };
    let out = (read(&straight), read(&split));
    std::fs::remove_file(&half).unwrap();
    out
}

#[test]
fn every_estimator_resumes_byte_for_byte() {
    for name in ESTIMATOR_NAMES {
        let (straight, split) = both_checkpoints(name, |path| {
            Trainer::<f32>::resume(path, vae(latent_for(name)), config(name)).unwrap()
        });
        assert!(
            straight == split,
            "{name}: the resumed run's checkpoint differs from the straight run's"
        );
    }
}

/// The estimators that carry state from step to step, and so would not resume without
/// it.
const STATEFUL: &[&str] = &[
    "reinforce-ema",
    "nvil",
    "muprop-normalised",
    "muprop-nvil",
    "darn-normalised",
    "darn-uniform-normalised",
    "darn-sample-slope-normalised",
    "rebar",
    "relax",
];

#[test]
fn the_state_is_what_makes_resume_exact() {
    // The same split run, resumed with the model and optimiser but *without* loading the
    // estimator's state (a fresh estimator of the same name), must end elsewhere: the
    // test above could not pass without the state.
    #[derive(Debug)]
    struct Forgetful(Estimator<f32>);
    impl GradientEstimator<f32> for Forgetful {
        fn name(&self) -> &'static str {
            self.0.name()
        }
        fn is_unbiased(&self) -> bool {
            self.0.is_unbiased()
        }
        fn estimate<'t>(
            &mut self,
            logits: gumbelgrad::Var<'t, f32>,
            group_size: usize,
            cost: &mut dyn FnMut(gumbelgrad::Var<'t, f32>) -> gumbelgrad::Var<'t, f32>,
            rng: &mut dyn rand::RngCore,
        ) -> gumbelgrad::estimators::Estimate<'t, f32> {
            self.0.estimate(logits, group_size, cost, rng)
        }
        fn latent_kinds(&self) -> gumbelgrad::estimators::LatentKinds {
            self.0.latent_kinds()
        }
        fn signal_scale(&self) -> f64 {
            self.0.signal_scale()
        }
        fn temperature(&self) -> Option<f64> {
            self.0.temperature()
        }
        fn set_temperature(&mut self, t: f64) -> gumbelgrad::Result<()> {
            self.0.set_temperature(t)
        }
        fn save_state(&self, state: &mut EstimatorState) {
            self.0.save_state(state)
        }
        // load_state: the default, which ignores the state
    }
    for name in STATEFUL {
        let mut state = EstimatorState::new();
        Estimator::<f32>::from_name(name, 1.0)
            .unwrap()
            .save_state(&mut state);
        assert!(!state.is_empty(), "{name} saves no state");
        let (straight, split) = both_checkpoints(name, |path| {
            let estimator = Forgetful(Estimator::from_name(name, 1.0).unwrap());
            Trainer::<f32>::resume_with_estimator(
                path,
                vae(latent_for(name)),
                config(name),
                Box::new(estimator),
            )
            .unwrap()
        });
        assert!(
            straight != split,
            "{name}: resuming without the estimator's state still gave the same checkpoint"
        );
    }
}

#[test]
fn a_checkpoint_resumed_with_another_estimator_is_an_error() {
    let images = Tensor::<f32>::random_uniform(16, 12, 0.0, 1.0, &mut StdRng::seed_from_u64(3));
    let latent = latent_for("nvil");
    let path = temp_path("other", "nvil");
    let mut trainer = Trainer::<f32>::new(vae(latent), config("nvil")).unwrap();
    trainer.train_epoch(&images, |_| {}).unwrap();
    trainer.save_checkpoint(&path).unwrap();
    let error = Trainer::<f32>::resume(&path, vae(latent), config("reinforce-ema")).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(error, gumbelgrad::Error::BadFile { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("estimator"), "{error}");
}
