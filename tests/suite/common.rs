//! A catalogue of every built-in op, shared by the op test suites.
//!
//! [`Kind`] names each op; [`case`] gives a proptest strategy producing that op with
//! random constants (group sizes, exponents, ranges...) and random inputs from the op's
//! well-conditioned domain; [`OpCase::apply`] records it on a tape of `f32` or `f64`.
//! One table, so "every op" in the gradient checks and in the f32/f64 comparison means
//! the same list.

#![allow(dead_code)]

use gumbelgrad::ops::linear::FusedActivation;
use gumbelgrad::testing::{
    broadcast_shapes, grouped_tensor, shape, sub_range, tensor_away_from_zero, tensor_of_shape,
};
use gumbelgrad::{Float, Shape, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// Rows and columns of random shapes.
pub const DIM: std::ops::RangeInclusive<usize> = 1..=8;

/// Every built-in op, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Scale,
    AddScalar,
    Affine,
    MatMul,
    MatMulTransposed,
    TransposedMatMul,
    Sum,
    Mean,
    SumRows,
    MeanRows,
    SumCols,
    MeanCols,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Exp,
    Ln,
    Softplus,
    Square,
    Sqrt,
    Pow,
    Softmax,
    LogSoftmax,
    LogSumExp,
    BceWithLogits,
    BceWithLogitsSumCols,
    Linear,
    SliceCols,
    SliceRows,
    ConcatCols,
    ConcatRows,
    OneHotArgmax,
}

impl Kind {
    /// All of them.
    pub const ALL: [Kind; 38] = [
        Kind::Add,
        Kind::Sub,
        Kind::Mul,
        Kind::Div,
        Kind::Neg,
        Kind::Scale,
        Kind::AddScalar,
        Kind::Affine,
        Kind::MatMul,
        Kind::MatMulTransposed,
        Kind::TransposedMatMul,
        Kind::Sum,
        Kind::Mean,
        Kind::SumRows,
        Kind::MeanRows,
        Kind::SumCols,
        Kind::MeanCols,
        Kind::Relu,
        Kind::LeakyRelu,
        Kind::Sigmoid,
        Kind::Tanh,
        Kind::Exp,
        Kind::Ln,
        Kind::Softplus,
        Kind::Square,
        Kind::Sqrt,
        Kind::Pow,
        Kind::Softmax,
        Kind::LogSoftmax,
        Kind::LogSumExp,
        Kind::BceWithLogits,
        Kind::BceWithLogitsSumCols,
        Kind::Linear,
        Kind::SliceCols,
        Kind::SliceRows,
        Kind::ConcatCols,
        Kind::ConcatRows,
        Kind::OneHotArgmax,
    ];

    /// False for the ops that are non-differentiable by design.
    pub fn differentiable(self) -> bool {
        self != Kind::OneHotArgmax
    }
}

/// One op with its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpCase {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Scale(f64),
    AddScalar(f64),
    Affine(f64, f64),
    MatMul,
    MatMulTransposed,
    TransposedMatMul,
    Sum,
    Mean,
    SumRows,
    MeanRows,
    SumCols,
    MeanCols,
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
    Exp,
    Ln,
    Softplus,
    Square,
    Sqrt,
    Pow(f64),
    Softmax(usize),
    LogSoftmax(usize),
    LogSumExp(usize),
    BceWithLogits,
    BceWithLogitsSumCols,
    Linear(FusedActivation),
    SliceCols(usize, usize),
    SliceRows(usize, usize),
    ConcatCols,
    ConcatRows,
    OneHotArgmax(usize),
}

impl OpCase {
    /// Records the op on `inputs`' tape, through the public `Var` API a user would call.
    pub fn apply<'t, T: Float>(self, tape: &'t Tape<T>, x: &[Var<'t, T>]) -> Var<'t, T> {
        let c = T::from_f64;
        match self {
            OpCase::Add => x[0] + x[1],
            OpCase::Sub => x[0] - x[1],
            OpCase::Mul => x[0] * x[1],
            OpCase::Div => x[0] / x[1],
            OpCase::Neg => -x[0],
            OpCase::Scale(factor) => x[0] * c(factor),
            OpCase::AddScalar(constant) => x[0] + c(constant),
            OpCase::Affine(scale, offset) => x[0].affine(c(scale), c(offset)),
            OpCase::MatMul => x[0].matmul(x[1]),
            OpCase::MatMulTransposed => x[0].matmul_transposed(x[1]),
            OpCase::TransposedMatMul => x[0].transposed_matmul(x[1]),
            OpCase::Sum => x[0].sum(),
            OpCase::Mean => x[0].mean(),
            OpCase::SumRows => x[0].sum_rows(),
            OpCase::MeanRows => x[0].mean_rows(),
            OpCase::SumCols => x[0].sum_cols(),
            OpCase::MeanCols => x[0].mean_cols(),
            OpCase::Relu => x[0].relu(),
            OpCase::LeakyRelu(slope) => x[0].leaky_relu(c(slope)),
            OpCase::Sigmoid => x[0].sigmoid(),
            OpCase::Tanh => x[0].tanh(),
            OpCase::Exp => x[0].exp(),
            OpCase::Ln => x[0].ln(),
            OpCase::Softplus => x[0].softplus(),
            OpCase::Square => x[0].square(),
            OpCase::Sqrt => x[0].sqrt(),
            OpCase::Pow(exponent) => x[0].pow(c(exponent)),
            OpCase::Softmax(k) => x[0].softmax(k),
            OpCase::LogSoftmax(k) => x[0].log_softmax(k),
            OpCase::LogSumExp(k) => x[0].logsumexp(k),
            OpCase::BceWithLogits => x[0].bce_with_logits(x[1]),
            OpCase::BceWithLogitsSumCols => x[0].bce_with_logits_sum_cols(x[1]),
            OpCase::Linear(activation) => x[0].linear(x[1], x[2], activation),
            OpCase::SliceCols(start, end) => x[0].slice_cols(start, end),
            OpCase::SliceRows(start, end) => x[0].slice_rows(start, end),
            OpCase::ConcatCols => tape.concat_cols(x),
            OpCase::ConcatRows => tape.concat_rows(x),
            OpCase::OneHotArgmax(k) => x[0].one_hot_argmax(k),
        }
    }
}

/// An op together with the inputs to apply it to.
#[derive(Debug, Clone)]
pub struct Case {
    pub op: OpCase,
    pub inputs: Vec<Tensor<f64>>,
}

fn unary(op: OpCase, values: std::ops::Range<f64>) -> BoxedStrategy<Case> {
    shape(DIM, DIM)
        .prop_flat_map(move |s| tensor_of_shape(s, values.clone()))
        .prop_map(move |x| Case {
            op,
            inputs: vec![x],
        })
        .boxed()
}

/// Inputs at least `1e-3` from the kink at zero (finite differences use steps of
/// `1e-4 * max(1, |x|)`, so they never straddle it).
fn unary_away_from_kink(op: impl Fn(f64) -> OpCase + 'static) -> BoxedStrategy<Case> {
    (shape(DIM, DIM), 0.0..0.5)
        .prop_flat_map(|(s, param)| (tensor_away_from_zero(s, 1e-3, 3.0), Just(param)))
        .prop_map(move |(x, param)| Case {
            op: op(param),
            inputs: vec![x],
        })
        .boxed()
}

fn with_param(
    values: std::ops::Range<f64>,
    params: std::ops::Range<f64>,
    op: impl Fn(f64) -> OpCase + 'static,
) -> BoxedStrategy<Case> {
    (shape(DIM, DIM), params)
        .prop_flat_map(move |(s, p)| (tensor_of_shape(s, values.clone()), Just(p)))
        .prop_map(move |(x, p)| Case {
            op: op(p),
            inputs: vec![x],
        })
        .boxed()
}

/// `a (op) b` on broadcasting shapes; the right operand is drawn from `right`.
fn broadcast_binary(
    op: OpCase,
    right: impl Fn(Shape) -> BoxedStrategy<Tensor<f64>> + 'static,
) -> BoxedStrategy<Case> {
    broadcast_shapes(DIM, DIM)
        .prop_flat_map(move |(left, right_shape)| {
            (tensor_of_shape(left, -3.0..3.0), right(right_shape))
        })
        .prop_map(move |(a, b)| Case {
            op,
            inputs: vec![a, b],
        })
        .boxed()
}

fn grouped(
    op: impl Fn(usize) -> OpCase + 'static,
    values: std::ops::Range<f64>,
) -> BoxedStrategy<Case> {
    grouped_tensor(DIM, 8, values)
        .prop_map(move |(k, x)| Case {
            op: op(k),
            inputs: vec![x],
        })
        .boxed()
}

/// `op(A) op(B)` for stored shapes given by `shapes(m, k, n)`.
fn matmul(op: OpCase, shapes: fn(usize, usize, usize) -> (Shape, Shape)) -> BoxedStrategy<Case> {
    (DIM, DIM, DIM)
        .prop_flat_map(move |(m, k, n)| {
            let (a, b) = shapes(m, k, n);
            (tensor_of_shape(a, -2.0..2.0), tensor_of_shape(b, -2.0..2.0))
        })
        .prop_map(move |(a, b)| Case {
            op,
            inputs: vec![a, b],
        })
        .boxed()
}

/// The fused dense layer `act(x W + b)` with a random activation. Cases whose
/// pre-activation `x W + b` comes within `1e-2` of a rectifier's kink at zero are
/// rejected: finite differences (and f32 rounding) must not straddle it.
fn linear() -> BoxedStrategy<Case> {
    let activations = prop_oneof![
        Just(FusedActivation::Identity),
        Just(FusedActivation::Relu),
        (0.05..0.5).prop_map(|slope| FusedActivation::LeakyRelu { slope }),
        Just(FusedActivation::Tanh),
        Just(FusedActivation::Sigmoid),
    ];
    (DIM, DIM, DIM, activations)
        .prop_flat_map(|(batch, features, units, activation)| {
            (
                tensor_of_shape(Shape::new(batch, features), -1.5..1.5),
                tensor_of_shape(Shape::new(features, units), -1.5..1.5),
                tensor_of_shape(Shape::new(1, units), -1.5..1.5),
                Just(activation),
            )
        })
        .prop_filter("pre-activation near a kink", |(x, w, b, activation)| {
            let rectifier = matches!(
                activation,
                FusedActivation::Relu | FusedActivation::LeakyRelu { .. }
            );
            !rectifier || {
                let (batch, units) = (x.rows(), w.cols());
                (0..batch).all(|i| {
                    (0..units).all(|j| {
                        let z: f64 = (0..x.cols())
                            .map(|k| x.get(i, k) * w.get(k, j))
                            .sum::<f64>()
                            + b.get(0, j);
                        z.abs() > 1e-2
                    })
                })
            }
        })
        .prop_map(|(x, w, b, activation)| Case {
            op: OpCase::Linear(activation),
            inputs: vec![x, w, b],
        })
        .boxed()
}

/// 2 or 3 tensors sharing their rows (`along_rows = false`) or their columns.
fn concat(op: OpCase, along_rows: bool) -> BoxedStrategy<Case> {
    (DIM, proptest::collection::vec(DIM, 2..=3))
        .prop_flat_map(move |(shared, sizes)| {
            sizes
                .into_iter()
                .map(|size| {
                    let s = if along_rows {
                        Shape::new(size, shared)
                    } else {
                        Shape::new(shared, size)
                    };
                    tensor_of_shape(s, -3.0..3.0)
                })
                .collect::<Vec<_>>()
        })
        .prop_map(move |inputs| Case { op, inputs })
        .boxed()
}

/// The strategy for one op: random constants and inputs from a domain where the op is
/// smooth and well-conditioned.
pub fn case(kind: Kind) -> BoxedStrategy<Case> {
    let any_tensor = |s: Shape| tensor_of_shape(s, -3.0..3.0).boxed();
    match kind {
        Kind::Add => broadcast_binary(OpCase::Add, any_tensor),
        Kind::Sub => broadcast_binary(OpCase::Sub, any_tensor),
        Kind::Mul => broadcast_binary(OpCase::Mul, any_tensor),
        // Denominators at least 0.5 away from zero.
        Kind::Div => broadcast_binary(OpCase::Div, |s| tensor_away_from_zero(s, 0.5, 3.0).boxed()),
        Kind::Neg => unary(OpCase::Neg, -3.0..3.0),
        Kind::Scale => with_param(-3.0..3.0, -3.0..3.0, OpCase::Scale),
        Kind::AddScalar => with_param(-3.0..3.0, -3.0..3.0, OpCase::AddScalar),
        Kind::Affine => (shape(DIM, DIM), -3.0..3.0, -3.0..3.0)
            .prop_flat_map(|(s, scale, offset)| {
                (
                    tensor_of_shape(s, -3.0..3.0),
                    Just(OpCase::Affine(scale, offset)),
                )
            })
            .prop_map(|(x, op)| Case {
                op,
                inputs: vec![x],
            })
            .boxed(),
        Kind::MatMul => matmul(OpCase::MatMul, |m, k, n| {
            (Shape::new(m, k), Shape::new(k, n))
        }),
        Kind::MatMulTransposed => matmul(OpCase::MatMulTransposed, |m, k, n| {
            (Shape::new(m, k), Shape::new(n, k))
        }),
        Kind::TransposedMatMul => matmul(OpCase::TransposedMatMul, |m, k, n| {
            (Shape::new(k, m), Shape::new(k, n))
        }),
        Kind::Sum => unary(OpCase::Sum, -3.0..3.0),
        Kind::Mean => unary(OpCase::Mean, -3.0..3.0),
        Kind::SumRows => unary(OpCase::SumRows, -3.0..3.0),
        Kind::MeanRows => unary(OpCase::MeanRows, -3.0..3.0),
        Kind::SumCols => unary(OpCase::SumCols, -3.0..3.0),
        Kind::MeanCols => unary(OpCase::MeanCols, -3.0..3.0),
        Kind::Relu => unary_away_from_kink(|_| OpCase::Relu),
        Kind::LeakyRelu => unary_away_from_kink(OpCase::LeakyRelu),
        Kind::Sigmoid => unary(OpCase::Sigmoid, -6.0..6.0),
        Kind::Tanh => unary(OpCase::Tanh, -3.0..3.0),
        Kind::Exp => unary(OpCase::Exp, -3.0..3.0),
        // Positive inputs for ln, sqrt and pow.
        Kind::Ln => unary(OpCase::Ln, 0.1..4.0),
        Kind::Softplus => unary(OpCase::Softplus, -6.0..6.0),
        Kind::Square => unary(OpCase::Square, -3.0..3.0),
        Kind::Sqrt => unary(OpCase::Sqrt, 0.1..4.0),
        Kind::Pow => with_param(0.2..3.0, -2.5..3.0, OpCase::Pow),
        Kind::Softmax => grouped(OpCase::Softmax, -4.0..4.0),
        Kind::LogSoftmax => grouped(OpCase::LogSoftmax, -4.0..4.0),
        Kind::LogSumExp => grouped(OpCase::LogSumExp, -4.0..4.0),
        Kind::BceWithLogits => shape(DIM, DIM)
            .prop_flat_map(|s| (tensor_of_shape(s, -6.0..6.0), tensor_of_shape(s, 0.0..1.0)))
            .prop_map(|(logits, targets)| Case {
                op: OpCase::BceWithLogits,
                inputs: vec![logits, targets],
            })
            .boxed(),
        Kind::BceWithLogitsSumCols => shape(DIM, DIM)
            .prop_flat_map(|s| (tensor_of_shape(s, -6.0..6.0), tensor_of_shape(s, 0.0..1.0)))
            .prop_map(|(logits, targets)| Case {
                op: OpCase::BceWithLogitsSumCols,
                inputs: vec![logits, targets],
            })
            .boxed(),
        Kind::Linear => linear(),
        Kind::SliceCols => shape(DIM, DIM)
            .prop_flat_map(|s| (tensor_of_shape(s, -3.0..3.0), sub_range(s.cols)))
            .prop_map(|(x, (start, end))| Case {
                op: OpCase::SliceCols(start, end),
                inputs: vec![x],
            })
            .boxed(),
        Kind::SliceRows => shape(DIM, DIM)
            .prop_flat_map(|s| (tensor_of_shape(s, -3.0..3.0), sub_range(s.rows)))
            .prop_map(|(x, (start, end))| Case {
                op: OpCase::SliceRows(start, end),
                inputs: vec![x],
            })
            .boxed(),
        Kind::ConcatCols => concat(OpCase::ConcatCols, false),
        Kind::ConcatRows => concat(OpCase::ConcatRows, true),
        Kind::OneHotArgmax => grouped(OpCase::OneHotArgmax, -4.0..4.0),
    }
}
