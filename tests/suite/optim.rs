//! optim: Adam and SGD against hand-computed steps, minimising a quadratic, clipping,
//! schedules, and state save/restore.

use gumbelgrad::nn::{Activation, Gradients, Mlp, Parameters};
use gumbelgrad::optim::{Adam, LearningRateSchedule, Optimizer, Sgd, clip_global_norm};
use gumbelgrad::{Error, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn scalar_grad(g: f64) -> Gradients<f64> {
    Gradients::from_tensors(vec![Tensor::scalar(g)])
}

/// Three Adam steps on one scalar, against values worked out by hand from the
/// textbook formulas (m, v, bias-corrected m_hat / (sqrt(v_hat) + eps)):
/// t=1, g=0.5:  m=0.05,    v=0.00025,      p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
/// t=2, g=-1:   m=-0.055,  v=0.00124975,   p = 0.9366103542405654
/// t=3, g=0.25: m=-0.0245, v=0.00131100025, p = 0.9502794203389762
#[test]
fn adam_matches_hand_computed_steps() {
    let mut params = Parameters::<f64>::new();
    let id = params.add("p", Tensor::scalar(1.0)).unwrap();
    let mut adam = Adam::new(0.1);
    let expected = [
        (0.5, 0.05, 0.00025, 0.900000002),
        (-1.0, -0.055, 0.00124975, 0.9366103542405654),
        (0.25, -0.0245, 0.00131100025, 0.9502794203389762),
    ];
    for (g, m, v, p) in expected {
        adam.step(&mut params, &scalar_grad(g)).unwrap();
        let state = adam.state(&params);
        assert!((state.get("adam.m.p").unwrap().as_slice()[0] - m).abs() < 1e-15);
        assert!((state.get("adam.v.p").unwrap().as_slice()[0] - v).abs() < 1e-15);
        assert!((params.get(id).as_slice()[0] - p).abs() < 1e-12);
    }
    assert_eq!(adam.steps(), 3);
}

/// A first moment that decays below the smallest normal number is stored as zero (so the
/// update never multiplies a subnormal, which x86 does in slow microcode), and the
/// parameter ends where the unflushed update would leave it.
#[test]
fn adam_stores_a_decayed_first_moment_as_zero_not_subnormal() {
    let mut params = Parameters::<f32>::new();
    let id = params.add("p", Tensor::scalar(0.5f32)).unwrap();
    let mut adam = Adam::new(1e-3);
    let mut reference = (0.5f32, 0.0f32, 0.0f32); // (p, m, v) without the flush
    let mut saw_subnormal_in_reference = false;
    for step in 1..=1000 {
        let g = if step == 1 { 1e-3f32 } else { 0.0 };
        adam.step(
            &mut params,
            &Gradients::from_tensors(vec![Tensor::scalar(g)]),
        )
        .unwrap();
        let (p, m, v) = &mut reference;
        *m = 0.9 * *m + 0.1 * g;
        *v = 0.999 * *v + 0.001 * g * g;
        let correction1 = 1.0 - 0.9f32.powi(step);
        let sqrt_correction2 = (1.0 - 0.999f32.powi(step)).sqrt();
        *p -= 1e-3 / correction1 * *m / (v.sqrt() / sqrt_correction2 + 1e-8);
        saw_subnormal_in_reference |= m.is_subnormal();
        let state = adam.state(&params);
        let stored = state.get("adam.m.p").unwrap().as_slice()[0];
        assert!(!stored.is_subnormal(), "step {step}: m = {stored:e}");
        if !m.is_subnormal() {
            assert!(
                (stored - *m).abs() <= 1e-6 * m.abs(),
                "step {step}: {stored:e} {m:e}"
            );
        }
    }
    assert!(
        saw_subnormal_in_reference,
        "the test must reach the subnormal range"
    );
    assert_eq!(
        adam.state(&params).get("adam.m.p").unwrap().as_slice()[0],
        0.0
    );
    let p = params.get(id).as_slice()[0];
    assert!(
        (p - reference.0).abs() <= 1e-6 * reference.0,
        "{p} {}",
        reference.0
    );
}

#[test]
fn adam_names_a_parameter_its_update_made_non_finite() {
    let mut params = Parameters::<f32>::new();
    params.add("finite", Tensor::scalar(1.0)).unwrap();
    // 200,000 values: several of the update's chunks, the bad one in a later chunk.
    let mut values = vec![0.5f32; 200_000];
    values[150_001] = 2.0;
    params
        .add("big", Tensor::from_vec(1, values.len(), values).unwrap())
        .unwrap();
    let mut grads = vec![0.1f32; 200_000];
    grads[150_001] = f32::NAN;
    let grads = Gradients::from_tensors(vec![
        Tensor::scalar(0.5),
        Tensor::from_vec(1, grads.len(), grads).unwrap(),
    ]);
    let mut adam = Adam::new(1e-3);
    match adam.step(&mut params, &grads) {
        Err(Error::NonFiniteInput { what }) => {
            assert!(what.contains("parameter big"), "{what}");
            assert!(what.contains("column 150001"), "{what}");
        }
        other => panic!("expected a non-finite parameter, got {other:?}"),
    }
    // A finite step of the same optimiser is fine.
    let finite = Gradients::from_tensors(vec![
        Tensor::scalar(0.5),
        Tensor::from_vec(1, 200_000, vec![0.1f32; 200_000]).unwrap(),
    ]);
    let mut fresh = Parameters::<f32>::new();
    fresh.add("finite", Tensor::scalar(1.0)).unwrap();
    fresh
        .add(
            "big",
            Tensor::from_vec(1, 200_000, vec![0.5f32; 200_000]).unwrap(),
        )
        .unwrap();
    Adam::new(1e-3).step(&mut fresh, &finite).unwrap();
}

#[test]
fn sgd_names_a_parameter_its_update_made_non_finite() {
    let mut params = Parameters::<f32>::new();
    params.add("finite", Tensor::scalar(1.0)).unwrap();
    params
        .add(
            "big",
            Tensor::from_vec(1, 3, vec![0.5f32, 2.0, 0.5]).unwrap(),
        )
        .unwrap();
    // An infinite gradient makes `big`'s middle value infinite.
    let grads = Gradients::from_tensors(vec![
        Tensor::scalar(0.5),
        Tensor::from_vec(1, 3, vec![0.1f32, f32::INFINITY, 0.1]).unwrap(),
    ]);
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    match sgd.step(&mut params, &grads) {
        Err(Error::NonFiniteInput { what }) => {
            assert!(what.contains("parameter big"), "{what}");
            assert!(what.contains("column 1"), "{what}");
        }
        other => panic!("expected a non-finite parameter, got {other:?}"),
    }
}

#[test]
fn sgd_stores_a_subnormal_velocity_as_zero() {
    // A velocity of 1e-37 decays by 0.5 a step with a zero gradient: 5e-38, 2.5e-38,
    // 1.25e-38, then 6.25e-39, below f32::MIN_POSITIVE (1.18e-38): stored as zero.
    let mut params = Parameters::<f32>::new();
    let id = params.add("p", Tensor::scalar(0.0)).unwrap();
    let mut sgd = Sgd::new(1.0).with_momentum(0.5);
    let grad = |g: f32| Gradients::from_tensors(vec![Tensor::scalar(g)]);
    sgd.step(&mut params, &grad(1e-37)).unwrap();
    let velocity =
        |sgd: &Sgd<f32>, params: &Parameters<f32>| sgd.state(params).tensors[0].1.as_slice()[0];
    assert_eq!(velocity(&sgd, &params), 1e-37);
    for expected in [5e-38f32, 2.5e-38, 1.25e-38, 0.0] {
        sgd.step(&mut params, &grad(0.0)).unwrap();
        assert_eq!(velocity(&sgd, &params), expected);
    }
    // Once zero it stays zero, and the parameter stops moving.
    let p = params.get(id).as_slice()[0];
    sgd.step(&mut params, &grad(0.0)).unwrap();
    assert_eq!(params.get(id).as_slice()[0], p);
}

#[test]
fn adam_weight_decay_adds_to_the_gradient() {
    // With weight decay 1 and gradient 0 at p = 2, the effective gradient is 2, and
    // Adam's first step moves by lr * 2 / (2 + eps).
    let mut params = Parameters::<f64>::new();
    let id = params.add("p", Tensor::scalar(2.0)).unwrap();
    let mut adam = Adam::new(0.1).with_weight_decay(1.0);
    adam.step(&mut params, &scalar_grad(0.0)).unwrap();
    assert!((params.get(id).as_slice()[0] - (2.0 - 0.1 * 2.0 / (2.0 + 1e-8))).abs() < 1e-14);
}

/// f(x) = sum_i a_i (x_i - c_i)^2, gradient 2 a (x - c), minimum at c.
fn minimise_quadratic(optimizer: &mut dyn Optimizer<f64>, steps: usize) -> (f64, f64) {
    let a = [1.0, 10.0, 0.1, 3.0];
    let c = [1.0, -2.0, 3.0, 0.5];
    let mut params = Parameters::<f64>::new();
    let id = params.add("x", Tensor::zeros(1, 4)).unwrap();
    let f = |x: &[f64]| -> f64 {
        x.iter()
            .zip(a.iter().zip(&c))
            .map(|(x, (a, c))| a * (x - c) * (x - c))
            .sum()
    };
    let start = f(params.get(id).as_slice());
    for _ in 0..steps {
        let x = params.get(id).as_slice();
        let g: Vec<f64> = x
            .iter()
            .zip(a.iter().zip(&c))
            .map(|(x, (a, c))| 2.0 * a * (x - c))
            .collect();
        let grads = Gradients::from_tensors(vec![Tensor::from_vec(1, 4, g).unwrap()]);
        optimizer.step(&mut params, &grads).unwrap();
    }
    (start, f(params.get(id).as_slice()))
}

#[test]
fn adam_minimises_a_quadratic() {
    let (start, end) = minimise_quadratic(&mut Adam::new(0.05), 2000);
    assert!(start > 10.0);
    assert!(end < 1e-8, "f went from {start} to {end}");
}

#[test]
fn sgd_with_momentum_minimises_a_quadratic() {
    let (start, end) = minimise_quadratic(&mut Sgd::new(0.01).with_momentum(0.9), 2000);
    assert!(end < 1e-8, "f went from {start} to {end}");
}

#[test]
fn sgd_matches_hand_computed_steps() {
    // lr 0.1, momentum 0.5, weight decay 0.1, p0 = 1:
    // t=1: g = 1 + 0.1*1 = 1.1, u = 1.1, p = 1 - 0.11 = 0.89
    // t=2: g = -2 + 0.089 = -1.911, u = 0.55 - 1.911 = -1.361, p = 0.89 + 0.1361 = 1.0261
    let mut params = Parameters::<f64>::new();
    let id = params.add("p", Tensor::scalar(1.0)).unwrap();
    let mut sgd = Sgd::new(0.1).with_momentum(0.5).with_weight_decay(0.1);
    sgd.step(&mut params, &scalar_grad(1.0)).unwrap();
    assert!((params.get(id).as_slice()[0] - 0.89).abs() < 1e-15);
    sgd.step(&mut params, &scalar_grad(-2.0)).unwrap();
    assert!((params.get(id).as_slice()[0] - 1.0261).abs() < 1e-14);
}

#[test]
fn bad_hyperparameters_and_mismatched_gradients_are_errors() {
    let mut params = Parameters::<f64>::new();
    params.add("p", Tensor::zeros(2, 2)).unwrap();
    let wrong_shape = Gradients::from_tensors(vec![Tensor::zeros(2, 3)]);
    assert!(matches!(
        Adam::new(0.1).step(&mut params, &wrong_shape),
        Err(Error::ShapeMismatch { .. })
    ));
    let right = Gradients::from_tensors(vec![Tensor::zeros(2, 2)]);
    assert!(matches!(
        Adam::new(f64::NAN).step(&mut params, &right),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Sgd::new(0.1).with_momentum(1.5).step(&mut params, &right),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn clipping_rescales_only_above_the_threshold() {
    let make = || {
        Gradients::from_tensors(vec![
            Tensor::<f32>::from_vec(1, 2, vec![3.0, 0.0]).unwrap(),
            Tensor::from_vec(1, 1, vec![4.0]).unwrap(),
        ])
    };
    let mut g = make();
    assert_eq!(clip_global_norm(&mut g, 10.0).unwrap(), 5.0);
    assert_eq!(g, make());
    let norm = clip_global_norm(&mut g, 2.5).unwrap();
    assert_eq!(norm, 5.0);
    assert!((g.global_norm() - 2.5).abs() < 1e-6);
    assert_eq!(g.as_slice()[0].as_slice(), &[1.5, 0.0]);
    assert!(clip_global_norm(&mut g, 0.0).is_err());
    let mut bad = Gradients::from_tensors(vec![Tensor::<f32>::scalar(f32::NAN)]);
    assert!(matches!(
        clip_global_norm(&mut bad, 1.0),
        Err(Error::NonFiniteInput { .. })
    ));
}

#[test]
fn step_decay_matches_the_official_notebook() {
    let schedule = LearningRateSchedule::StepDecay {
        initial: 1e-3,
        factor: 0.9,
        every: 1000,
    };
    assert_eq!(schedule.rate_at(0), 1e-3);
    assert_eq!(schedule.rate_at(999), 1e-3);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-15 * b;
    assert!(close(schedule.rate_at(1000), 0.9e-3));
    assert!(close(schedule.rate_at(5999), 0.59049e-3));
    assert!(close(schedule.rate_at(6000), 0.531441e-3));
    assert_eq!(LearningRateSchedule::Constant(0.1).rate_at(123_456), 0.1);
}

/// Training an MLP for 20 steps straight equals training 10, saving the optimizer
/// state and the parameters, rebuilding everything from them, and training 10 more:
/// bit for bit, in f32.
#[test]
fn optimizer_state_restores_bit_identically() {
    let x = Tensor::<f32>::from_vec(4, 3, (0..12).map(|i| i as f32 / 6.0 - 1.0).collect()).unwrap();
    let y = Tensor::<f32>::from_vec(4, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]).unwrap();
    let build = || {
        let mut rng = StdRng::seed_from_u64(3);
        let mut params = Parameters::<f32>::new();
        let mlp = Mlp::new(&mut params, "m", &[3, 8, 2], Activation::Relu, &mut rng).unwrap();
        (params, mlp)
    };
    let train = |params: &mut Parameters<f32>, mlp: &Mlp, opt: &mut dyn Optimizer<f32>, n| {
        let mut tape = Tape::new();
        for _ in 0..n {
            tape.clear();
            let bound = params.bind(&tape);
            let loss = (mlp.forward(&bound, tape.constant(&x)) - tape.constant(&y))
                .square()
                .mean();
            tape.backward(loss).unwrap();
            let grads = bound.gradients();
            opt.step(params, &grads).unwrap();
        }
    };
    for make in [
        (|| Box::new(Adam::new(1e-2)) as Box<dyn Optimizer<f32>>)
            as fn() -> Box<dyn Optimizer<f32>>,
        || Box::new(Sgd::new(1e-1).with_momentum(0.9)),
    ] {
        let (mut straight, mlp) = build();
        let mut opt = make();
        train(&mut straight, &mlp, opt.as_mut(), 20);

        let (mut first, mlp) = build();
        let mut opt = make();
        train(&mut first, &mlp, opt.as_mut(), 10);
        let saved_state = opt.state(&first);
        let saved_params: Vec<(String, Tensor<f32>)> = first
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();

        let (mut resumed, mlp) = build();
        for (name, value) in saved_params {
            resumed.set(&name, value).unwrap();
        }
        let mut opt = make();
        opt.load_state(&resumed, &saved_state).unwrap();
        assert_eq!(opt.steps(), 10);
        train(&mut resumed, &mlp, opt.as_mut(), 10);
        assert_eq!(straight, resumed);
        assert_ne!(straight, build().0);
    }
}
