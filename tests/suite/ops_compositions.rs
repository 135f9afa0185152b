//! Random compositions of ops, gradient-checked as a whole.
//!
//! A random expression DAG is built from 1 to 3 input tensors of one random shape
//! `[rows, groups * group_size]` by 3 to 12 steps. Each step applies one op (or a small
//! fixed combination of ops) to operands picked at random among *all* earlier nodes, so
//! nodes are reused (fan-out) and gradients must accumulate across paths. Every step
//! ends in a `tanh` or `sigmoid` squash, so every node stays in [-1, 1] and the whole
//! function stays smooth and well-conditioned however the steps are stacked. The output
//! is the sum of the nodes nobody consumed, so every step influences it.
//!
//! Left out on purpose: `relu` and `leaky_relu` (inside a composition nothing keeps
//! their inputs away from the kink at 0; they are gradchecked alone, away from it), and
//! `one_hot_argmax` and `detach`, whose tape gradient is zero by design while finite
//! differences see the value change.

use std::fmt::Write as _;

use gumbelgrad::testing::{config, grouped_shape, tensor_of_shape};
use gumbelgrad::{GradcheckOptions, Shape, Tape, Tensor, Var, gradcheck};
use proptest::prelude::*;
use proptest::sample::{Index, select};

/// What one step computes from its operands `a`, `b`, `c` (nodes of shape `[R, C]`,
/// values in [-1, 1]) before it is squashed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StepKind {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / (b^2 + 0.5)`: the denominator stays >= 0.5.
    Div,
    /// `exp(a)`
    Exp,
    /// `softplus(2a)`
    Softplus,
    /// `ln(a + 2)`
    Ln,
    /// `sqrt(a^2 + 0.25)`
    Sqrt,
    /// `(a + 2)^p`, `p` in [-2, 2]
    Pow,
    /// `s a + o`
    Affine,
    /// `(a b^T) c / (R C)`: `matmul_transposed` then `matmul`, back to `[R, C]`.
    MatMulChain,
    /// `c (a^T b) / (R C)`: `transposed_matmul` then `matmul`.
    TransposedMatMulChain,
    /// `softmax(2a)` over groups.
    Softmax,
    /// `log_softmax(2a)` over groups, scaled by 1/4.
    LogSoftmax,
    /// `a - logsumexp(b)` over whole rows: an `[R, 1]` column broadcast.
    SubRowLogSumExp,
    /// `a + mean_rows(b)`: a `[1, C]` row broadcast.
    AddRowMean,
    /// `a * mean(b)`: a `[1, 1]` scalar broadcast.
    MulMean,
    /// `a * sum_cols(b) / C`: an `[R, 1]` column broadcast.
    MulColSum,
    /// `b * sum_rows(a) / R`, with the broadcast operand on the left.
    RowSumTimes,
    /// `bce_with_logits(3a, b)`: differentiable in logits and targets.
    Bce,
    /// The first columns of `a` next to the last columns of `b` (slice + concat).
    SpliceCols,
    /// The first rows of `a` above the last rows of `b`.
    SpliceRows,
}

const STEP_KINDS: [StepKind; 22] = [
    StepKind::Add,
    StepKind::Sub,
    StepKind::Mul,
    StepKind::Div,
    StepKind::Exp,
    StepKind::Softplus,
    StepKind::Ln,
    StepKind::Sqrt,
    StepKind::Pow,
    StepKind::Affine,
    StepKind::MatMulChain,
    StepKind::TransposedMatMulChain,
    StepKind::Softmax,
    StepKind::LogSoftmax,
    StepKind::SubRowLogSumExp,
    StepKind::AddRowMean,
    StepKind::MulMean,
    StepKind::MulColSum,
    StepKind::RowSumTimes,
    StepKind::Bce,
    StepKind::SpliceCols,
    StepKind::SpliceRows,
];

#[derive(Debug, Clone, Copy)]
struct Step {
    kind: StepKind,
    /// Operands, as indices into all nodes recorded before this step.
    operands: [Index; 3],
    /// A constant in [-1, 1] (exponent, scale, split point...).
    param: f64,
    /// `tanh` if true, else `sigmoid`.
    tanh: bool,
}

#[derive(Debug, Clone)]
struct Dag {
    group_size: usize,
    inputs: Vec<Tensor<f64>>,
    steps: Vec<Step>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        select(STEP_KINDS.to_vec()),
        any::<[Index; 3]>(),
        -1.0..1.0,
        any::<bool>(),
    )
        .prop_map(|(kind, operands, param, tanh)| Step {
            kind,
            operands,
            param,
            tanh,
        })
}

fn dag() -> impl Strategy<Value = Dag> {
    (
        grouped_shape(1..=8, 8),
        1..=3usize,
        proptest::collection::vec(step(), 3..=12),
    )
        .prop_flat_map(|((rows, group_size, groups), count, steps)| {
            let shape = Shape::new(rows, group_size * groups);
            (
                Just(group_size),
                proptest::collection::vec(tensor_of_shape(shape, -1.0..1.0), count),
                Just(steps),
            )
        })
        .prop_map(|(group_size, inputs, steps)| Dag {
            group_size,
            inputs,
            steps,
        })
}

/// A split point in `1..len` from `param` in [-1, 1] (`len >= 2`).
fn split(param: f64, len: usize) -> usize {
    (1 + ((param + 1.0) / 2.0 * (len - 1) as f64) as usize).min(len - 1)
}

impl Dag {
    /// Records the DAG on `tape` from the input variables and returns its output.
    fn build<'t>(&self, tape: &'t Tape<f64>, inputs: &[Var<'t, f64>]) -> Var<'t, f64> {
        let shape = self.inputs[0].shape();
        let (rows, cols) = (shape.rows as f64, shape.cols as f64);
        let mut nodes: Vec<Var<'t, f64>> = inputs.to_vec();
        let mut used = vec![false; nodes.len() + self.steps.len()];
        for step in &self.steps {
            let pick = |i: usize| step.operands[i].index(nodes.len());
            let (ia, ib, ic) = (pick(0), pick(1), pick(2));
            let (a, b, c) = (nodes[ia], nodes[ib], nodes[ic]);
            let p = step.param;
            let k = self.group_size;
            let (value, consumed): (Var<'t, f64>, &[usize]) = match step.kind {
                StepKind::Add => (a + b, &[ia, ib]),
                StepKind::Sub => (a - b, &[ia, ib]),
                StepKind::Mul => (a * b, &[ia, ib]),
                StepKind::Div => (a / (b.square() + 0.5), &[ia, ib]),
                StepKind::Exp => (a.exp(), &[ia]),
                StepKind::Softplus => ((a * 2.0).softplus(), &[ia]),
                StepKind::Ln => ((a + 2.0).ln(), &[ia]),
                StepKind::Sqrt => ((a.square() + 0.25).sqrt(), &[ia]),
                StepKind::Pow => ((a + 2.0).pow(2.0 * p), &[ia]),
                StepKind::Affine => (a.affine(2.0 * p, 0.5 - p), &[ia]),
                StepKind::MatMulChain => (
                    a.matmul_transposed(b).matmul(c) / (rows * cols),
                    &[ia, ib, ic],
                ),
                StepKind::TransposedMatMulChain => (
                    c.matmul(a.transposed_matmul(b)) / (rows * cols),
                    &[ia, ib, ic],
                ),
                StepKind::Softmax => ((a * 2.0).softmax(k), &[ia]),
                StepKind::LogSoftmax => ((a * 2.0).log_softmax(k) * 0.25, &[ia]),
                StepKind::SubRowLogSumExp => (a - b.logsumexp(shape.cols), &[ia, ib]),
                StepKind::AddRowMean => (a + b.mean_rows(), &[ia, ib]),
                StepKind::MulMean => (a * b.mean(), &[ia, ib]),
                StepKind::MulColSum => (a * b.sum_cols() / cols, &[ia, ib]),
                StepKind::RowSumTimes => (a.sum_rows() / rows * b, &[ia, ib]),
                StepKind::Bce => ((a * 3.0).bce_with_logits(b), &[ia, ib]),
                StepKind::SpliceCols if shape.cols >= 2 => {
                    let s = split(p, shape.cols);
                    (
                        a.slice_cols(0, s).concat_cols(b.slice_cols(s, shape.cols)),
                        &[ia, ib],
                    )
                }
                StepKind::SpliceRows if shape.rows >= 2 => {
                    let s = split(p, shape.rows);
                    (
                        tape.concat_rows(&[a.slice_rows(0, s), b.slice_rows(s, shape.rows)]),
                        &[ia, ib],
                    )
                }
                // Too narrow to splice: fall back to a plain sum.
                StepKind::SpliceCols | StepKind::SpliceRows => (a + b, &[ia, ib]),
            };
            for &i in consumed {
                used[i] = true;
            }
            nodes.push(if step.tanh {
                value.tanh()
            } else {
                value.sigmoid()
            });
        }
        // The output: the sum of every node no step consumed (the DAG's sinks).
        let mut sinks = nodes
            .iter()
            .zip(&used)
            .filter(|&(_, &u)| !u)
            .map(|(&n, _)| n);
        let first = sinks.next().expect("the last node is always a sink");
        sinks.fold(first, |total, n| total + n)
    }

    /// A readable listing of the DAG for failure messages.
    fn describe(&self) -> String {
        let mut text = format!(
            "inputs: {} x {}, group size {}\n",
            self.inputs.len(),
            self.inputs[0].shape(),
            self.group_size
        );
        for (i, step) in self.steps.iter().enumerate() {
            let n = self.inputs.len() + i;
            let ops: Vec<usize> = step.operands.iter().map(|o| o.index(n)).collect();
            let squash = if step.tanh { "tanh" } else { "sigmoid" };
            let _ = writeln!(
                text,
                "%{n} = {squash}({:?}(%{}, %{}, %{}; p={:.3}))",
                step.kind, ops[0], ops[1], ops[2], step.param
            );
        }
        text
    }

    /// Number of times a node is an operand, for the fan-out statistics.
    fn max_fan_out(&self) -> usize {
        let mut counts = vec![0; self.inputs.len() + self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            for operand in &step.operands {
                counts[operand.index(self.inputs.len() + i)] += 1;
            }
        }
        counts.into_iter().max().unwrap_or(0)
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// The tape's gradient of a random composition matches finite differences.
    #[test]
    fn random_dags_match_finite_differences(dag in dag()) {
        let report = gradcheck(&dag.inputs, GradcheckOptions::default(), |tape, vars| {
            dag.build(tape, vars)
        });
        let report = match report {
            Ok(report) => report,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", dag.describe()))),
        };
        prop_assert!(report.max_rel_error <= 1e-6, "{report}\n{}", dag.describe());
    }
}

/// The generator really produces reuse: most DAGs have a node used more than once
/// (fan-out), which is what makes gradient accumulation matter.
#[test]
fn generated_dags_reuse_nodes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config(1));
    let strategy = dag();
    let samples = 200;
    let with_fan_out = (0..samples)
        .filter(|_| {
            strategy
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .max_fan_out()
                >= 2
        })
        .count();
    assert!(
        with_fan_out * 2 > samples,
        "only {with_fan_out} of {samples} DAGs reuse a node"
    );
}
