//! Tape behaviour: fan-out, detach, sticky errors, reuse, dumps.

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
