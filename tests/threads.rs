//! The thread count changes speed only: training the paper-sized categorical VAE gives
//! the same parameters, bit for bit, on 1, 2 or 3 threads (matrix products split into
//! bands, the Adam update into chunks, both shared out by a queue), with the minibatch
//! on one tape or cut into shards (data parallelism).

use gumbelgrad::Tensor;
use gumbelgrad::models::{TrainConfig, Trainer, VaeConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The parameters after `steps` training steps on `threads` threads with the
/// minibatch cut into `shards`, as bits.
fn train(threads: usize, shards: usize, images: &Tensor<f32>, steps: usize) -> Vec<u32> {
    gumbelgrad::kernels::set_num_threads(threads);
    let config = TrainConfig {
        batch_size: 100,
        seed: 3,
        shards,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::<f32>::new(VaeConfig::default(), config).unwrap();
    let rows: Vec<usize> = (0..100).collect();
    for _ in 0..steps {
        trainer.step(images, &rows).unwrap();
    }
    trainer
        .model()
        .parameters()
        .iter()
        .flat_map(|(_, value)| value.as_slice().iter().map(|v| v.to_bits()))
        .collect()
}

#[test]
fn training_gives_the_same_bits_on_any_number_of_threads() {
    let mut rng = StdRng::seed_from_u64(1);
    let pixels = (0..100 * 784)
        .map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 })
        .collect();
    let images = Tensor::<f32>::from_vec(100, 784, pixels).unwrap();
    for shards in [1, 2, 4] {
        let one = train(1, shards, &images, 3);
        for threads in [2, 3] {
            let many = train(threads, shards, &images, 3);
            let differing = one.iter().zip(&many).filter(|(a, b)| a != b).count();
            assert_eq!(
                differing, 0,
                "{shards} shard(s), {threads} threads: {differing} parameters differ"
            );
        }
    }
}
