//! Every differentiable op, gradient-checked against finite differences.
//!
//! For each op: random shapes (rows and columns 1..=8, group sizes dividing the
//! columns, every broadcasting form for binary ops), random values from a domain where
//! the op is smooth (see `common::case`), and the tape's gradient with respect to
//! *every* input must match five-point central differences in f64 with
//! `max_rel_error <= 1e-6`.

use crate::common::{Kind, case};
use gumbelgrad::testing::config;
use gumbelgrad::{GradcheckOptions, gradcheck};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Largest accepted `max_rel_error` (relative for gradients above 1, absolute below).
const TOLERANCE: f64 = 1e-6;

/// Random cases per op.
const CASES: u32 = 256;

fn check(kind: Kind) {
    assert!(kind.differentiable(), "{kind:?} is not differentiable");
    let mut runner = TestRunner::new(config(CASES));
    let result = runner.run(&case(kind), |case| {
        let op = case.op;
        let report = gradcheck(&case.inputs, GradcheckOptions::default(), |tape, vars| {
            op.apply(tape, vars)
        })
        .map_err(|e| TestCaseError::fail(format!("{op:?} failed to record: {e}")))?;
        prop_assert!(
            report.max_rel_error <= TOLERANCE,
            "{op:?} on shapes {:?}: {report}",
            case.inputs.iter().map(|t| t.shape()).collect::<Vec<_>>()
        );
        // Every input element was checked (no input silently left out).
        prop_assert_eq!(
            report.elements,
            case.inputs.iter().map(|t| t.len()).sum::<usize>()
        );
        Ok(())
    });
    if let Err(error) = result {
        panic!("gradcheck of {kind:?}: {error}");
    }
}

macro_rules! gradcheck_tests {
    ($($test:ident: $kind:ident,)*) => {
        $(
            #[test]
            fn $test() {
                check(Kind::$kind);
            }
        )*

        /// The list above covers every differentiable op in the catalogue.
        #[test]
        fn every_differentiable_op_is_gradchecked() {
            let tested = [$(Kind::$kind),*];
            for kind in Kind::ALL {
                assert_eq!(
                    tested.contains(&kind),
                    kind.differentiable(),
                    "{kind:?}: gradchecked here iff differentiable"
                );
            }
        }
    };
}

gradcheck_tests! {
    add_broadcasting: Add,
    sub_broadcasting: Sub,
    mul_broadcasting: Mul,
    div_broadcasting: Div,
    neg: Neg,
    scale: Scale,
    add_scalar: AddScalar,
    affine: Affine,
    matmul: MatMul,
    matmul_transposed: MatMulTransposed,
    transposed_matmul: TransposedMatMul,
    sum: Sum,
    mean: Mean,
    sum_rows: SumRows,
    mean_rows: MeanRows,
    sum_cols: SumCols,
    mean_cols: MeanCols,
    relu: Relu,
    leaky_relu: LeakyRelu,
    sigmoid: Sigmoid,
    tanh: Tanh,
    exp: Exp,
    ln: Ln,
    softplus: Softplus,
    square: Square,
    sqrt: Sqrt,
    pow: Pow,
    softmax: Softmax,
    log_softmax: LogSoftmax,
    logsumexp: LogSumExp,
    bce_with_logits: BceWithLogits,
    bce_with_logits_sum_cols: BceWithLogitsSumCols,
    linear: Linear,
    slice_cols: SliceCols,
    slice_rows: SliceRows,
    concat_cols: ConcatCols,
    concat_rows: ConcatRows,
}

/// A gradient check that *can* fail: a deliberately wrong VJP is caught, so a passing
/// check above means something.
#[test]
fn gradcheck_catches_a_wrong_derivative() {
    use gumbelgrad::{Op, Result, Shape, Tensor};

    /// `y = x^3` with the wrong derivative `2x^2`.
    #[derive(Debug)]
    struct WrongCube;
    impl Op<f64> for WrongCube {
        fn name(&self) -> &'static str {
            "wrong_cube"
        }
        fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
            Ok(inputs[0])
        }
        fn forward(&self, inputs: &[&Tensor<f64>], output: &mut Tensor<f64>) {
            for (y, &x) in output.as_mut_slice().iter_mut().zip(inputs[0].as_slice()) {
                *y = x * x * x;
            }
        }
        fn backward(
            &self,
            inputs: &[&Tensor<f64>],
            _output: &Tensor<f64>,
            grad_output: &Tensor<f64>,
            grad_inputs: &mut [Option<&mut Tensor<f64>>],
        ) {
            if let Some(grad) = grad_inputs[0].as_deref_mut() {
                for ((d, &x), &g) in grad
                    .as_mut_slice()
                    .iter_mut()
                    .zip(inputs[0].as_slice())
                    .zip(grad_output.as_slice())
                {
                    *d += g * 2.0 * x * x;
                }
            }
        }
    }
    let x = Tensor::from_vec(1, 3, vec![0.5, -1.5, 2.0]).unwrap();
    let report = gradcheck(&[x], GradcheckOptions::default(), |tape, v| {
        tape.record(WrongCube, &[v[0]])
    })
    .unwrap();
    assert!(report.max_rel_error > 0.1, "{report}");
}
