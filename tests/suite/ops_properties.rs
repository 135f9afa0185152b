//! Algebraic properties of the ops, f32/f64 agreement, and extreme inputs.

use crate::common::{Kind, OpCase, case};
use gumbelgrad::testing::{config, grouped_tensor, sub_range, tensor_in, tensor_of_shape};
use gumbelgrad::{Float, Shape, Tape, Tensor};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// `|a - b| / max(1, |b|)`: relative above 1, absolute below (as in gradcheck).
fn rel_error(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

fn max_rel_error(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(&x, &y)| rel_error(x, y))
        .fold(0.0, f64::max)
}

fn forward(op: OpCase, x: &Tensor<f64>) -> Tensor<f64> {
    let tape = Tape::new();
    let v = tape.constant(x);
    op.apply(&tape, &[v]).value().unwrap()
}

proptest! {
    #![proptest_config(config(256))]

    /// Every group of a softmax is a probability vector: entries in [0, 1], sum 1.
    #[test]
    fn softmax_groups_sum_to_one((k, x) in grouped_tensor(1..=8, 8, -20.0..20.0)) {
        let y = forward(OpCase::Softmax(k), &x);
        for group in y.groups(k).unwrap() {
            prop_assert!(group.iter().all(|&p| (0.0..=1.0).contains(&p)), "{group:?}");
            let total: f64 = group.iter().sum();
            prop_assert!((total - 1.0).abs() <= 1e-14, "group sums to {total}");
        }
    }

    /// `log_softmax(x) = ln(softmax(x))`.
    #[test]
    fn log_softmax_is_log_of_softmax((k, x) in grouped_tensor(1..=8, 8, -10.0..10.0)) {
        let log_p = forward(OpCase::LogSoftmax(k), &x);
        let p = forward(OpCase::Softmax(k), &x);
        let error = max_rel_error(&p.map(f64::ln), &log_p);
        prop_assert!(error <= 1e-12, "error {error}");
    }

    /// `logsumexp` matches the naive `ln sum exp` (fine at moderate values), has the
    /// shape `[B, N]`, and is shift-equivariant: `lse(x + c) = lse(x) + c` even for a
    /// shift `c` so large that the naive formula overflows.
    #[test]
    fn logsumexp_matches_naive_reference(
        (k, x) in grouped_tensor(1..=8, 8, -10.0..10.0),
        shift in prop_oneof![Just(-5000.0), Just(800.0), Just(5000.0)],
    ) {
        let lse = forward(OpCase::LogSumExp(k), &x);
        prop_assert_eq!(lse.shape(), Shape::new(x.rows(), x.cols() / k));
        let naive: Vec<f64> = x
            .groups(k)
            .unwrap()
            .map(|g| g.iter().map(|v| v.exp()).sum::<f64>().ln())
            .collect();
        let naive = Tensor::from_vec(lse.rows(), lse.cols(), naive).unwrap();
        prop_assert!(max_rel_error(&lse, &naive) <= 1e-14);

        let shifted = forward(OpCase::LogSumExp(k), &x.map(|v| v + shift));
        prop_assert!(shifted.all_finite());
        // Naively this overflows (e^800 = inf in f64).
        prop_assert!(max_rel_error(&shifted, &lse.map(|v| v + shift)) <= 1e-13);
    }

    /// `bce_with_logits(x, t) = -[t ln sigmoid(x) + (1 - t) ln(1 - sigmoid(x))]`.
    #[test]
    fn bce_matches_the_textbook_formula(
        (x, t) in (1..=8usize, 1..=8usize).prop_flat_map(|(r, c)| {
            let s = Shape::new(r, c);
            (tensor_of_shape(s, -15.0..15.0), tensor_of_shape(s, 0.0..1.0))
        })
    ) {
        let tape = Tape::new();
        let y = tape.constant(&x).bce_with_logits(tape.constant(&t)).value().unwrap();
        for ((&value, &logit), &target) in y.as_slice().iter().zip(x.as_slice()).zip(t.as_slice()) {
            let p = 1.0 / (1.0 + (-logit).exp());
            let textbook = -(target * p.ln() + (1.0 - target) * (1.0 - p).ln());
            prop_assert!(rel_error(value, textbook) <= 1e-9, "{value} vs {textbook}");
        }
    }

    /// Each group of `one_hot_argmax` is one-hot, with its 1 on a largest entry; and no
    /// gradient flows back through it.
    #[test]
    fn one_hot_argmax_is_one_hot_per_group((k, x) in grouped_tensor(1..=8, 8, -4.0..4.0)) {
        let tape = Tape::new();
        let logits = tape.variable(&x);
        let hard = logits.one_hot_argmax(k);
        let y = hard.value().unwrap();
        for (group, values) in y.groups(k).unwrap().zip(x.groups(k).unwrap()) {
            prop_assert_eq!(group.iter().filter(|&&v| v == 1.0).count(), 1);
            prop_assert_eq!(group.iter().filter(|&&v| v == 0.0).count(), k - 1);
            let chosen = group.iter().position(|&v| v == 1.0).unwrap();
            prop_assert!(values.iter().all(|&v| v <= values[chosen]));
        }
        prop_assert!(!hard.requires_grad());
        // d/dx sum(x * onehot(x)) = onehot(x): the path through the argmax adds nothing.
        tape.backward((logits * hard).sum()).unwrap();
        prop_assert_eq!(logits.grad().unwrap(), y);
    }

    /// Slicing an image into two column ranges and concatenating them gives it back;
    /// likewise for rows.
    #[test]
    fn slices_concatenate_back_to_the_whole(
        (x, cut_col, cut_row) in tensor_in(1..=8, 1..=8, -3.0..3.0).prop_flat_map(|x| {
            let s = x.shape();
            (Just(x), 0..=s.cols, 0..=s.rows)
        })
    ) {
        let tape = Tape::new();
        let v = tape.constant(&x);
        let s = x.shape();
        let mut cols = Vec::new();
        if cut_col > 0 {
            cols.push(v.slice_cols(0, cut_col));
        }
        if cut_col < s.cols {
            cols.push(v.slice_cols(cut_col, s.cols));
        }
        prop_assert_eq!(tape.concat_cols(&cols).value().unwrap(), x.clone());
        let mut rows = Vec::new();
        if cut_row > 0 {
            rows.push(v.slice_rows(0, cut_row));
        }
        if cut_row < s.rows {
            rows.push(v.slice_rows(cut_row, s.rows));
        }
        prop_assert_eq!(tape.concat_rows(&rows).value().unwrap(), x);
    }

    /// A slice of a slice is the slice of the composed range.
    #[test]
    fn slices_compose(
        (x, (a, b), (c, d)) in tensor_in(1..=8, 1..=8, -3.0..3.0).prop_flat_map(|x| {
            let cols = x.cols();
            (Just(x), sub_range(cols)).prop_flat_map(|(x, (a, b))| (Just(x), Just((a, b)), sub_range(b - a)))
        })
    ) {
        let tape = Tape::new();
        let v = tape.constant(&x);
        let twice = v.slice_cols(a, b).slice_cols(c, d).value().unwrap();
        let once = v.slice_cols(a + c, a + d).value().unwrap();
        prop_assert_eq!(twice, once);
    }
}

/// Forward values and gradients of `op` in `T`, as f64: the output, and the gradient
/// of `sum(output * weights)` with respect to every input.
fn run_in<T: Float>(
    op: OpCase,
    inputs: &[Tensor<f64>],
    differentiable: bool,
) -> (Tensor<f64>, Vec<Tensor<f64>>) {
    let tape = Tape::<T>::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.variable(&x.cast())).collect();
    let out = op.apply(&tape, &vars);
    let value = out.value().unwrap();
    if !differentiable {
        return (value.cast(), Vec::new());
    }
    // Fixed weights in [-1, 1] so every output element's gradient path is used.
    let n = value.len();
    let weights: Vec<T> = (0..n)
        .map(|i| T::from_f64(((i * 7919) % 13) as f64 / 6.0 - 1.0))
        .collect();
    let weights = tape.constant(&Tensor::from_vec(value.rows(), value.cols(), weights).unwrap());
    tape.backward((out * weights).sum()).unwrap();
    let grads = vars.iter().map(|v| v.grad().unwrap().cast()).collect();
    (value.cast(), grads)
}

/// Every op computes the same thing in f32 as in f64, up to 1e-5 relative error
/// (relative to `max(1, |value|)`), forward and backward. Inputs are first rounded to
/// f32 so that both runs see exactly the same numbers: what is compared is the
/// rounding inside the op, not the rounding of its inputs.
#[test]
fn f32_and_f64_agree_for_every_op() {
    for kind in Kind::ALL {
        let mut runner = TestRunner::new(config(96));
        let result = runner.run(&case(kind), |case| {
            let inputs: Vec<Tensor<f64>> = case
                .inputs
                .iter()
                .map(|x| x.cast::<f32>().cast::<f64>())
                .collect();
            let differentiable = kind.differentiable();
            let (value64, grads64) = run_in::<f64>(case.op, &inputs, differentiable);
            let (value32, grads32) = run_in::<f32>(case.op, &inputs, differentiable);
            let error = max_rel_error(&value32, &value64);
            prop_assert!(error <= 1e-5, "{:?} forward: error {error:.2e}", case.op);
            for (i, (g32, g64)) in grads32.iter().zip(&grads64).enumerate() {
                let error = max_rel_error(g32, g64);
                prop_assert!(
                    error <= 1e-5,
                    "{:?} gradient of input {i}: error {error:.2e}",
                    case.op
                );
            }
            Ok(())
        });
        if let Err(error) = result {
            panic!("f32 vs f64 for {kind:?}: {error}");
        }
    }
}

// ---------------------------------------------------------------------------------
// Extreme logits: +-1e4 must give finite values and gradients, in f32 and f64.
// ---------------------------------------------------------------------------------

/// Runs the four numerically delicate ops on logits `x` (and targets `t` for BCE) with
/// the tape's finite check on, so any NaN or infinity, forward or backward, is an error
/// naming the op. Returns the outputs and the gradients with respect to `x` and `t`.
fn delicate_ops<T: Float>(
    x: &Tensor<f64>,
    t: &Tensor<f64>,
    group_size: usize,
) -> gumbelgrad::Result<Vec<Tensor<f64>>> {
    let tape = Tape::<T>::new();
    tape.set_finite_check(true);
    let logits = tape.variable(&x.cast());
    let targets = tape.variable(&t.cast());
    let outputs = [
        logits.softmax(group_size),
        logits.log_softmax(group_size),
        logits.logsumexp(group_size),
        logits.bce_with_logits(targets),
    ];
    let mut loss = tape.scalar(T::ZERO);
    for (i, out) in outputs.iter().enumerate() {
        // Different weights per op so no gradient cancels by symmetry.
        loss = loss + out.sum() * T::from_f64(1.0 + i as f64);
    }
    tape.backward(loss)?;
    let mut results = Vec::new();
    for out in outputs {
        results.push(out.value()?.cast());
    }
    results.push(logits.grad().unwrap().cast());
    results.push(targets.grad().unwrap().cast());
    for r in &results {
        assert!(r.all_finite(), "{r:?}");
    }
    Ok(results)
}

#[test]
fn extreme_logits_give_exact_finite_results() {
    // One group of 4 per row: a dominant logit, a hopeless one, and two in between.
    let x = Tensor::from_vec(1, 4, vec![1e4, -1e4, 0.0, 1e4 - 1.0]).unwrap();
    let t = Tensor::from_vec(1, 4, vec![1.0, 1.0, 0.0, 0.0]).unwrap();
    // Tolerance relative to max(1, |value|). In f32 the floats near 1e4 are ~1e-3
    // apart, so this also checks that the kernels never compute a small result (the
    // log-probability -0.31 of the top class, its gradient) by subtracting two rounded
    // numbers near 1e4: they work with differences from the group's maximum instead.
    for (results, tol) in [
        (delicate_ops::<f64>(&x, &t, 4).unwrap(), 1e-11),
        (delicate_ops::<f32>(&x, &t, 4).unwrap(), 1e-6),
    ] {
        let [softmax, log_softmax, lse, bce, grad_x, grad_t] = &results[..] else {
            unreachable!()
        };
        let e = (-1.0f64).exp();
        let p_top = 1.0 / (1.0 + e);
        let close = |a: &Tensor<f64>, b: &[f64], tol: f64| {
            a.as_slice()
                .iter()
                .zip(b)
                .all(|(&u, &v)| rel_error(u, v) <= tol)
        };
        assert!(
            close(softmax, &[p_top, 0.0, 0.0, e * p_top], 1e-6),
            "{softmax:?}"
        );
        let lse_value = 1e4 + (1.0 + e).ln();
        assert!(close(lse, &[lse_value], tol), "{lse:?}");
        assert!(
            close(
                log_softmax,
                &[
                    1e4 - lse_value,
                    -1e4 - lse_value,
                    -lse_value,
                    1e4 - 1.0 - lse_value
                ],
                tol
            ),
            "{log_softmax:?}"
        );
        // softplus(x) - t x: 0 for a confident right logit, |x| for a confident wrong one.
        assert!(
            close(bce, &[0.0, 1e4, (2.0f64).ln(), 1e4 - 1.0], tol),
            "{bce:?}"
        );
        // The loss is 1 sum(softmax) + 2 sum(log_softmax) + 3 sum(lse) + 4 sum(bce), so
        // with p = softmax(x) (one group of K = 4):
        //   d/dx = 1 * 0 + 2 (1 - K p) + 3 p + 4 (sigmoid(x) - t),   d/dt = -4 x.
        let p = [p_top, 0.0, 0.0, e * p_top];
        let sigmoid_minus_target = [0.0, -1.0, 0.5, 1.0];
        let expected: Vec<f64> = (0..4)
            .map(|j| 2.0 * (1.0 - 4.0 * p[j]) + 3.0 * p[j] + 4.0 * sigmoid_minus_target[j])
            .collect();
        assert!(close(grad_x, &expected, 1e-6), "{grad_x:?} vs {expected:?}");
        let expected: Vec<f64> = x.as_slice().iter().map(|&v| -4.0 * v).collect();
        assert!(close(grad_t, &expected, 1e-7), "{grad_t:?} vs {expected:?}");
    }
}

#[test]
fn extreme_logits_give_finite_gradients() {
    let mut runner = TestRunner::new(config(128));
    let strategy = grouped_tensor(1..=8, 8, -1e4..1e4).prop_flat_map(|(k, x)| {
        let s = x.shape();
        // Push some logits exactly to +-1e4.
        let corners =
            proptest::collection::vec(prop_oneof![Just(-1e4), Just(1e4), Just(0.0)], s.len());
        (Just(k), Just(x), corners, tensor_of_shape(s, 0.0..1.0))
    });
    runner
        .run(&strategy, |(k, x, corners, t)| {
            let x = Tensor::from_vec(
                x.rows(),
                x.cols(),
                x.as_slice()
                    .iter()
                    .zip(&corners)
                    .map(|(&v, &c)| if c == 0.0 { v } else { c })
                    .collect(),
            )
            .unwrap();
            delicate_ops::<f64>(&x, &t, k).map_err(|e| TestCaseError::fail(e.to_string()))?;
            delicate_ops::<f32>(&x, &t, k).map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok(())
        })
        .unwrap();
}
