//! nn + optim + data together: a small autoencoder learns the synthetic digits.

use gumbelgrad::Tape;
use gumbelgrad::data::{Minibatches, SyntheticDigits};
use gumbelgrad::nn::{Activation, Mlp, Parameters};
use gumbelgrad::optim::{Adam, LearningRateSchedule, Optimizer, clip_global_norm};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A 784-64-784 ReLU autoencoder with a Bernoulli (binary cross-entropy) output,
/// trained with Adam on binary synthetic digits: the mean loss of the last 20 steps is
/// well below that of the first 20. Binary cross-entropy with logits `l` and data `x`
/// is `softplus(l) - x l` per pixel.
#[test]
fn autoencoder_loss_falls_on_synthetic_digits() {
    let (train, _) = SyntheticDigits::new(1).with_sizes(2000, 0).generate();
    let mut rng = StdRng::seed_from_u64(2);
    let mut params = Parameters::<f32>::new();
    let encoder = Mlp::new(
        &mut params,
        "encoder",
        &[784, 64],
        Activation::Relu,
        &mut rng,
    )
    .unwrap();
    let decoder = Mlp::new(
        &mut params,
        "decoder",
        &[64, 784],
        Activation::Relu,
        &mut rng,
    )
    .unwrap();
    let mut adam = Adam::new(1e-3);
    let schedule = LearningRateSchedule::StepDecay {
        initial: 1e-3,
        factor: 0.9,
        every: 100,
    };
    let mut losses = Vec::new();
    let mut tape = Tape::new();
    let mut step = 0u64;
    for epoch in 0..2 {
        let batches = Minibatches::for_epoch(train.len(), 20, true, 3, epoch).unwrap();
        for batch in batches.iter() {
            tape.clear();
            let bound = params.bind(&tape);
            let x = tape.constant(&train.gather(batch));
            let hidden = encoder.forward(&bound, x).relu();
            let logits = decoder.forward(&bound, hidden);
            let loss = (logits.softplus() - x * logits).sum_cols().mean();
            tape.backward(loss).unwrap();
            losses.push(loss.scalar().unwrap());
            let mut grads = bound.gradients();
            clip_global_norm(&mut grads, 100.0).unwrap();
            adam.set_learning_rate(schedule.rate_at(step));
            adam.step(&mut params, &grads).unwrap();
            step += 1;
        }
    }
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..20]), mean(&losses[losses.len() - 20..]));
    println!(
        "autoencoder BCE per image: first 20 steps {first:.1}, last 20 steps {last:.1} ({} steps)",
        losses.len()
    );
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}
