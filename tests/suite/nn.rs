//! nn: parameter store, initialisation statistics, Linear, and gradient checks of an
//! MLP's parameter gradients.

use gumbelgrad::nn::{Activation, BoundParameters, Gradients, Init, Linear, Mlp, Parameters};
use gumbelgrad::testing::config;
use gumbelgrad::{Error, GradcheckOptions, Tape, Tensor, gradcheck};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn linear_computes_x_w_plus_b() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut params = Parameters::<f64>::new();
    let layer = Linear::new(&mut params, "fc", 2, 3, Init::Zeros, &mut rng).unwrap();
    params
        .set(
            "fc.weight",
            Tensor::from_vec(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
        )
        .unwrap();
    params
        .set(
            "fc.bias",
            Tensor::from_vec(1, 3, vec![0.5, -0.5, 1.0]).unwrap(),
        )
        .unwrap();
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let x = tape.constant(&Tensor::from_vec(2, 2, vec![1.0, 0.0, 1.0, 2.0]).unwrap());
    let y = layer.forward(&bound, x).value().unwrap();
    // row 0: [1, 2, 3] + b; row 1: [1+8, 2+10, 3+12] + b
    assert_eq!(y.as_slice(), &[1.5, 1.5, 4.0, 9.5, 11.5, 16.0]);
    assert_eq!(
        params.names().collect::<Vec<_>>(),
        vec!["fc.weight", "fc.bias"]
    );
}

#[test]
fn parameter_names_are_unique_and_set_checks_shapes() {
    let mut params = Parameters::<f32>::new();
    params.add("a", Tensor::zeros(2, 2)).unwrap();
    assert!(matches!(
        params.add("a", Tensor::zeros(1, 1)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        params.set("a", Tensor::zeros(3, 2)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        params.set("missing", Tensor::zeros(2, 2)),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn mlp_names_its_layers_and_has_the_right_sizes() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut params = Parameters::<f32>::new();
    let mlp = Mlp::new(
        &mut params,
        "encoder",
        &[784, 512, 256, 200],
        Activation::Relu,
        &mut rng,
    )
    .unwrap();
    let names: Vec<&str> = params.names().collect();
    assert_eq!(
        names,
        vec![
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.1.weight",
            "encoder.1.bias",
            "encoder.2.weight",
            "encoder.2.bias"
        ]
    );
    assert_eq!(
        params.num_elements(),
        784 * 512 + 512 + 512 * 256 + 256 + 256 * 200 + 200
    );
    assert_eq!((mlp.in_features(), mlp.out_features()), (784, 200));
    assert!(matches!(
        Mlp::new(&mut params, "bad", &[3], Activation::Relu, &mut rng),
        Err(Error::InvalidArgument { .. })
    ));
}

/// The sample variance of a large initialised matrix matches the formula to within
/// 4 standard errors (SE of a sample variance of n iid draws: sqrt(Var(x^2) / n)).
#[test]
fn initialisations_have_their_documented_variance() {
    let (fan_in, fan_out) = (300, 200);
    let n = (fan_in * fan_out) as f64;
    let cases = [
        (Init::GlorotUniform, 2.0 / (fan_in + fan_out) as f64, 1.8),
        (Init::GlorotNormal, 2.0 / (fan_in + fan_out) as f64, 3.0),
        (Init::HeUniform, 2.0 / fan_in as f64, 1.8),
        (Init::HeNormal, 2.0 / fan_in as f64, 3.0),
    ];
    for (index, (init, variance, kurtosis)) in cases.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(10 + index as u64);
        let w = init.weight::<f64, _>(fan_in, fan_out, &mut rng);
        let mean_square = w.as_slice().iter().map(|x| x * x).sum::<f64>() / n;
        // E[x^4] = kurtosis * variance^2, so Var(x^2) = (kurtosis - 1) variance^2.
        let standard_error = ((kurtosis - 1.0) * variance * variance / n).sqrt();
        assert!(
            (mean_square - variance).abs() < 4.0 * standard_error,
            "{init:?}: mean square {mean_square} vs {variance} (SE {standard_error})"
        );
    }
}

#[test]
fn same_seed_same_weights() {
    let build = || {
        let mut rng = StdRng::seed_from_u64(42);
        let mut params = Parameters::<f32>::new();
        Mlp::new(&mut params, "m", &[5, 4, 3], Activation::Tanh, &mut rng).unwrap();
        params
    };
    assert_eq!(build(), build());
}

/// The gradients of an MLP's loss with respect to all its weights and biases (and its
/// input), through every activation, agree with finite differences.
#[test]
fn mlp_parameter_gradients_match_finite_differences() {
    let activations = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::LeakyRelu { slope: 0.1 },
        Activation::Identity,
    ];
    let strategy = (
        1usize..=4,
        proptest::collection::vec(1usize..=5, 2..=4),
        0usize..activations.len(),
        any::<u64>(),
    );
    let mut runner = TestRunner::new(config(24));
    runner
        .run(&strategy, |(batch, sizes, which, seed)| {
            let activation = activations[which];
            let mut rng = StdRng::seed_from_u64(seed);
            let mut params = Parameters::<f64>::new();
            let mlp = Mlp::with_init(
                &mut params,
                "mlp",
                &sizes,
                activation,
                Init::GlorotNormal,
                &mut rng,
            )
            .unwrap();
            // Non-zero biases, so they matter.
            for (_, value) in params.iter_mut() {
                if value.rows() == 1 {
                    *value = Tensor::random_uniform(1, value.cols(), -0.5, 0.5, &mut rng);
                }
            }
            let x = Tensor::random_uniform(batch, sizes[0], -1.5, 1.5, &mut rng);
            let mut inputs = vec![x];
            inputs.extend(params.iter().map(|(_, t)| t.clone()));
            let report = gradcheck(&inputs, GradcheckOptions::default(), |_tape, vars| {
                let bound = BoundParameters::from_vars(vars[1..].to_vec());
                mlp.forward(&bound, vars[0])
            })
            .unwrap();
            prop_assert!(
                report.max_rel_error < 1e-7,
                "{activation:?} sizes {sizes:?}: {report}"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn gradients_come_back_in_store_order_with_zeros_for_unused() {
    let mut params = Parameters::<f64>::new();
    let a = params
        .add("a", Tensor::from_vec(1, 2, vec![1.0, 2.0]).unwrap())
        .unwrap();
    params.add("unused", Tensor::ones(2, 2)).unwrap();
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let loss = (bound.var(a) * bound.var(a)).sum();
    tape.backward(loss).unwrap();
    let grads = bound.gradients();
    assert_eq!(grads.as_slice()[0].as_slice(), &[2.0, 4.0]);
    assert_eq!(grads.as_slice()[1], Tensor::zeros(2, 2));
    assert_eq!(grads.global_norm(), 20f64.sqrt());
    // Copying into buffers, and moving into them, give the same gradients; moving
    // leaves the tape holding the old buffers' contents.
    let mut copied = Gradients::from_tensors(Vec::new());
    bound.gradients_into(&mut copied);
    assert_eq!(copied, grads);
    let mut moved = bound.gradients(); // the right shapes: swapped, not reallocated
    moved.as_mut_slice()[0]
        .as_mut_slice()
        .copy_from_slice(&[7.0, 7.0]);
    bound.take_gradients_into(&mut moved);
    assert_eq!(moved, grads);
    assert_eq!(bound.var(a).grad().unwrap().as_slice(), &[7.0, 7.0]);
    let mut wrong_shapes = Gradients::from_tensors(Vec::new());
    bound.take_gradients_into(&mut wrong_shapes); // refilled from scratch
    assert_eq!(wrong_shapes.as_slice()[1], Tensor::zeros(2, 2));
}

#[test]
fn parameters_moved_onto_a_tape_come_back_unchanged() {
    let mut params = Parameters::<f64>::new();
    let a = params
        .add("a", Tensor::from_vec(1, 3, vec![1.0, 2.0, 3.0]).unwrap())
        .unwrap();
    let b = params
        .add("b", Tensor::from_vec(2, 1, vec![-1.0, 0.5]).unwrap())
        .unwrap();
    let before = params.clone();
    let mut tape = Tape::new();
    for _ in 0..3 {
        tape.clear();
        let bound = params.bind_moved(&tape);
        // The tape holds the values: the loss sees them and differentiates them.
        let loss = bound.var(a).sum() + bound.var(b).square().sum();
        assert_eq!(loss.scalar().unwrap(), 6.0 + 1.25);
        tape.backward(loss).unwrap();
        assert_eq!(bound.var(b).grad().unwrap().as_slice(), &[-2.0, 1.0]);
        bound.restore_into(&mut params);
        assert_eq!(params, before);
    }
}

#[test]
fn a_non_finite_parameter_is_an_error_and_nothing_is_lost() {
    let mut params = Parameters::<f64>::new();
    let finite = params
        .add("finite", Tensor::from_vec(1, 2, vec![1.0, 2.0]).unwrap())
        .unwrap();
    params
        .add("bad", Tensor::from_vec(1, 2, vec![f64::NAN, 2.0]).unwrap())
        .unwrap();
    params
        .add("after", Tensor::from_vec(1, 1, vec![7.0]).unwrap())
        .unwrap();
    let before: Vec<Vec<u64>> = params
        .iter()
        .map(|(_, v)| v.as_slice().iter().map(|x| x.to_bits()).collect())
        .collect();
    let tape = Tape::new();
    let bound = params.bind_moved(&tape);
    let loss = bound.var(finite).sum();
    assert!(loss.scalar().is_err(), "the NaN parameter poisons the tape");
    bound.restore_into(&mut params);
    let after: Vec<Vec<u64>> = params
        .iter()
        .map(|(_, v)| v.as_slice().iter().map(|x| x.to_bits()).collect())
        .collect();
    assert_eq!(before, after);
}
