//! Tape behaviour: fan-out, detach, sticky errors, reuse, dumps.

use gumbelgrad::ops::linear::FusedActivation;
use gumbelgrad::{Error, Shape, Tape, Tensor};

fn t(rows: usize, cols: usize, data: &[f64]) -> Tensor<f64> {
    Tensor::from_slice(rows, cols, data).unwrap()
}

#[test]
fn fan_out_accumulates() {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&t(1, 2, &[3.0, -2.0]));
    // y = x*x + x*3 + x, dy/dx = 2x + 4
    let y = (x * x + x * 3.0 + x).sum();
    tape.backward(y).unwrap();
    assert_eq!(x.grad().unwrap().as_slice(), &[10.0, 0.0]);
}

#[test]
fn detach_stops_gradient() {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&t(1, 1, &[2.0]));
    let y = (x * x.detach()).sum();
    tape.backward(y).unwrap();
    assert_eq!(x.grad().unwrap().as_slice(), &[2.0]);
}

#[test]
fn shape_mismatch_is_caught_at_record_time_and_sticks() {
    let tape = Tape::<f64>::new();
    let a = tape.variable(&Tensor::zeros(2, 3));
    let b = tape.variable(&Tensor::zeros(4, 5));
    let c = a.matmul(b);
    assert!(c.is_poisoned());
    let expected = Error::shape_mismatch(
        "matmul",
        Shape::new(2, 3),
        Shape::new(4, 5),
        "inner dimensions differ (3 vs 4)",
    );
    assert_eq!(tape.error(), Some(expected.clone()));
    let message = expected.to_string();
    assert!(message.contains("matmul") && message.contains("[2, 3]") && message.contains("[4, 5]"));
    // Everything after the failure is skipped and reports the first error.
    let d = (c + a).sum();
    assert_eq!(d.value().unwrap_err(), expected);
    assert_eq!(tape.backward(d).unwrap_err(), expected);
}

#[test]
fn broadcast_mismatch_names_op_and_shapes() {
    let tape = Tape::<f64>::new();
    let a = tape.variable(&Tensor::zeros(2, 3));
    let b = tape.variable(&Tensor::zeros(2, 2));
    let _ = a + b;
    match tape.error() {
        Some(Error::ShapeMismatch {
            op, left, right, ..
        }) => {
            assert_eq!(op, "add");
            assert_eq!((left, right), (Shape::new(2, 3), Shape::new(2, 2)));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}

#[test]
fn backward_needs_a_scalar() {
    let tape = Tape::<f64>::new();
    let a = tape.variable(&Tensor::zeros(2, 3));
    assert_eq!(
        tape.backward(a * a).unwrap_err(),
        Error::NotScalar {
            shape: Shape::new(2, 3)
        }
    );
}

#[test]
fn non_finite_inputs_are_rejected() {
    let tape = Tape::<f64>::new();
    let a = tape.constant(&t(1, 2, &[1.0, f64::NAN]));
    assert!(a.is_poisoned());
    assert!(matches!(tape.error(), Some(Error::NonFiniteInput { .. })));
}

#[test]
fn finite_check_names_the_op() {
    let tape = Tape::<f64>::new();
    tape.set_finite_check(true);
    let a = tape.variable(&t(1, 2, &[1.0, 0.0]));
    let one = tape.scalar(1.0);
    let _ = one / a;
    match tape.error() {
        Some(Error::NonFinite { op, node, pass }) => {
            assert_eq!((op.as_str(), node, pass), ("div", 2, "forward"));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn clear_reuses_the_tape() {
    let mut tape = Tape::new();
    for step in 0..3 {
        {
            let x = tape.variable(&t(1, 1, &[step as f64]));
            let y = (x * x).sum();
            tape.backward(y).unwrap();
            assert_eq!(x.grad().unwrap().as_slice(), &[2.0 * step as f64]);
            assert_eq!(tape.len(), 3);
        }
        tape.clear();
        assert!(tape.is_empty());
    }
}

#[test]
fn dump_and_dot_list_every_node() {
    let tape = Tape::<f32>::new();
    let w = tape.variable_named("w", &Tensor::zeros(3, 2));
    let x = tape.constant_named("x", &Tensor::zeros(4, 3));
    let _ = x.matmul(w).sum();
    let dump = tape.dump();
    assert_eq!(dump.lines().count(), 4, "{dump}");
    assert!(dump.contains("%2 = matmul(%1, %0)"), "{dump}");
    assert!(dump.lines().next().unwrap().contains("variable w"));
    let dot = tape.to_dot();
    assert!(dot.starts_with("digraph") && dot.contains("n1 -> n2") && dot.contains("n0 -> n2"));
}

#[test]
fn foreign_vars_are_rejected() {
    let one = Tape::<f64>::new();
    let two = Tape::<f64>::new();
    let a = one.variable(&Tensor::zeros(1, 1));
    let b = two.variable(&Tensor::zeros(1, 1));
    let _ = a + b;
    assert!(matches!(one.error(), Some(Error::ForeignVar { .. })));
}

/// A product writes a gradient buffer that is new (`Op::backward_with_fresh`) instead of
/// adding into zeros. Recycled buffers hold old gradients, so a later backward pass that
/// added into them would double its result; and a second use of the same input must
/// still add onto the first.
#[test]
fn fresh_gradient_buffers_are_written_not_added_into() {
    let xs = [1.0, -2.0, 0.5, 3.0, 0.25, -1.0];
    let ws = [0.5, -1.0, 2.0, 0.0, -0.5, 1.5];
    // x and w feed two products each: the backward pass meets the one recorded last
    // first, which writes their gradients; the other adds. Both orders are checked.
    for linear_first in [true, false] {
        check_written_gradients(linear_first, &xs, &ws);
    }
}

fn check_written_gradients(linear_first: bool, xs: &[f64; 6], ws: &[f64; 6]) {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&t(2, 3, xs));
    let w = tape.variable(&t(3, 2, ws));
    let b = tape.variable(&t(1, 2, &[0.1, -0.2]));
    let y = if linear_first {
        let h = x.linear(w, b, FusedActivation::Relu).sum();
        h + x.matmul(w).sum() * 2.0
    } else {
        let p = x.matmul(w).sum() * 2.0;
        x.linear(w, b, FusedActivation::Relu).sum() + p
    };
    // By hand: with m[i][j] = 1[(x w + b)[i][j] > 0],
    // dy/dx[i][p] = sum_j (m[i][j] + 2) w[p][j], dy/dw[p][j] = sum_i x[i][p] (m[i][j] + 2),
    // dy/db[j] = sum_i m[i][j].
    let pre = |i: usize, j: usize| (0..3).map(|p| xs[i * 3 + p] * ws[p * 2 + j]).sum::<f64>();
    let mask = |i: usize, j: usize| f64::from(u8::from(pre(i, j) + [0.1, -0.2][j] > 0.0));
    let want_x: Vec<f64> = (0..6)
        .map(|ip| {
            (0..2)
                .map(|j| (mask(ip / 3, j) + 2.0) * ws[(ip % 3) * 2 + j])
                .sum()
        })
        .collect();
    let want_w: Vec<f64> = (0..6)
        .map(|pj| {
            (0..2)
                .map(|i| xs[i * 3 + pj / 2] * (mask(i, pj % 2) + 2.0))
                .sum()
        })
        .collect();
    let want_b: Vec<f64> = (0..2).map(|j| mask(0, j) + mask(1, j)).collect();
    for pass in 0..3 {
        tape.backward(y).unwrap();
        for (var, want) in [(x, &want_x), (w, &want_w), (b, &want_b)] {
            let got = var.grad().unwrap();
            for (g, e) in got.as_slice().iter().zip(want.iter()) {
                assert!(
                    (g - e).abs() < 1e-12,
                    "linear first {linear_first}, pass {pass}: {:?} vs {want:?}",
                    got.as_slice()
                );
            }
        }
    }
}
