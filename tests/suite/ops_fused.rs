//! The fused ops compute exactly what their unfused chains compute: the same bits for
//! the value and for every gradient, in f32 and f64, for random shapes, values and
//! activations. (Their gradients are also checked against finite differences in
//! `ops_gradcheck.rs`, like every other op.)

use gumbelgrad::ops::linear::FusedActivation;
use gumbelgrad::testing::config;
use gumbelgrad::{Error, Float, Tape, Tensor};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const ACTIVATIONS: [FusedActivation; 5] = [
    FusedActivation::Identity,
    FusedActivation::Relu,
    FusedActivation::LeakyRelu { slope: 0.1 },
    FusedActivation::Tanh,
    FusedActivation::Sigmoid,
];

/// The unfused chain: `matmul`, broadcast `+`, then the activation's own op.
fn unfused<'t, T: Float>(
    x: gumbelgrad::Var<'t, T>,
    w: gumbelgrad::Var<'t, T>,
    b: gumbelgrad::Var<'t, T>,
    activation: FusedActivation,
) -> gumbelgrad::Var<'t, T> {
    let z = x.matmul(w) + b;
    match activation {
        FusedActivation::Identity => z,
        FusedActivation::Relu => z.relu(),
        FusedActivation::LeakyRelu { slope } => z.leaky_relu(T::from_f64(slope)),
        FusedActivation::Tanh => z.tanh(),
        FusedActivation::Sigmoid => z.sigmoid(),
    }
}

type Run<T> = (Tensor<T>, Vec<Tensor<T>>);

/// The value and the gradients of `sum(y * weights)` with respect to `x`, `W`, `b`.
fn linear_run<T: Float>(
    inputs: &[Tensor<f64>; 4],
    activation: FusedActivation,
    fused: bool,
) -> Run<T> {
    let tape = Tape::<T>::new();
    let [x, w, b] = [0, 1, 2].map(|i| tape.variable(&inputs[i].cast()));
    let y = if fused {
        x.linear(w, b, activation)
    } else {
        unfused(x, w, b, activation)
    };
    tape.backward((y * tape.constant(&inputs[3].cast())).sum())
        .unwrap();
    (
        y.value().unwrap(),
        [x, w, b].map(|v| v.grad().unwrap()).to_vec(),
    )
}

fn bce_run<T: Float>(
    logits: &Tensor<f64>,
    targets: &Tensor<f64>,
    weights: &Tensor<f64>,
    fused: bool,
) -> Run<T> {
    let tape = Tape::<T>::new();
    let (x, t) = (
        tape.variable(&logits.cast()),
        tape.variable(&targets.cast()),
    );
    let y = if fused {
        x.bce_with_logits_sum_cols(t)
    } else {
        x.bce_with_logits(t).sum_cols()
    };
    tape.backward((y * tape.constant(&weights.cast())).sum())
        .unwrap();
    (
        y.value().unwrap(),
        vec![x.grad().unwrap(), t.grad().unwrap()],
    )
}

fn linear_case() -> impl Strategy<Value = ([Tensor<f64>; 4], usize)> {
    (
        1usize..=12,
        1usize..=12,
        1usize..=12,
        0..ACTIVATIONS.len(),
        any::<u64>(),
    )
        .prop_map(|(batch, features, units, activation, seed)| {
            let mut rng = StdRng::seed_from_u64(seed);
            (
                [
                    Tensor::random_normal(batch, features, 0.0, 1.0, &mut rng),
                    Tensor::random_normal(features, units, 0.0, 1.0, &mut rng),
                    Tensor::random_normal(1, units, 0.0, 1.0, &mut rng),
                    Tensor::random_uniform(batch, units, -1.0, 1.0, &mut rng),
                ],
                activation,
            )
        })
}

fn assert_same_bits<T: Float>(fused: &Run<T>, unfused: &Run<T>) -> Result<(), TestCaseError> {
    prop_assert_eq!(&fused.0, &unfused.0, "values differ");
    for (i, (a, b)) in fused.1.iter().zip(&unfused.1).enumerate() {
        prop_assert_eq!(a, b, "gradient of input {} differs", i);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn fused_linear_is_bit_identical_to_matmul_add_activation((inputs, activation) in linear_case()) {
        let activation = ACTIVATIONS[activation];
        assert_same_bits(
            &linear_run::<f32>(&inputs, activation, true),
            &linear_run::<f32>(&inputs, activation, false),
        )?;
        assert_same_bits(
            &linear_run::<f64>(&inputs, activation, true),
            &linear_run::<f64>(&inputs, activation, false),
        )?;
    }

    #[test]
    fn fused_bce_is_bit_identical_to_bce_then_sum_cols(
        (rows, cols, seed) in (1usize..=12, 1usize..=40, any::<u64>())
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let logits = Tensor::random_normal(rows, cols, 0.0, 4.0, &mut rng);
        let targets = Tensor::random_uniform(rows, cols, 0.0, 1.0, &mut rng);
        let weights = Tensor::random_uniform(rows, 1, -1.0, 1.0, &mut rng);
        assert_same_bits(
            &bce_run::<f32>(&logits, &targets, &weights, true),
            &bce_run::<f32>(&logits, &targets, &weights, false),
        )?;
        assert_same_bits(
            &bce_run::<f64>(&logits, &targets, &weights, true),
            &bce_run::<f64>(&logits, &targets, &weights, false),
        )?;
    }
}

/// Shape errors are caught when the op is recorded, naming the op and both shapes; a
/// leaky ReLU that cannot be fused is refused with a typed error.
#[test]
fn fused_ops_report_bad_shapes() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(&Tensor::zeros(2, 3));
    let w = tape.constant(&Tensor::zeros(4, 5));
    let b = tape.constant(&Tensor::zeros(1, 5));
    match x.linear(w, b, FusedActivation::Relu).value() {
        Err(Error::ShapeMismatch {
            op, left, right, ..
        }) => {
            assert_eq!(op, "linear");
            assert_eq!((left.rows, left.cols, right.rows, right.cols), (2, 3, 4, 5));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    let tape = Tape::<f64>::new();
    let x = tape.constant(&Tensor::zeros(2, 4));
    let w = tape.constant(&Tensor::zeros(4, 5));
    let wrong_bias = tape.constant(&Tensor::zeros(2, 5));
    assert!(matches!(
        x.linear(w, wrong_bias, FusedActivation::Identity).value(),
        Err(Error::ShapeMismatch { .. })
    ));
    let tape = Tape::<f64>::new();
    let (x, w, b) = (
        tape.constant(&Tensor::zeros(2, 4)),
        tape.constant(&Tensor::zeros(4, 5)),
        tape.constant(&Tensor::zeros(1, 5)),
    );
    assert!(matches!(
        x.linear(w, b, FusedActivation::LeakyRelu { slope: -0.5 })
            .value(),
        Err(Error::InvalidArgument { .. })
    ));
    let tape = Tape::<f64>::new();
    let logits = tape.constant(&Tensor::zeros(2, 4));
    let targets = tape.constant(&Tensor::zeros(2, 3));
    assert!(matches!(
        logits.bce_with_logits_sum_cols(targets).value(),
        Err(Error::ShapeMismatch { .. })
    ));
}
