//! Bad arguments to the new ops are typed errors raised when the op is recorded,
//! naming the op (and both shapes for a shape mismatch), never a panic in a kernel.

use gumbelgrad::{Error, Shape, Tape, Tensor};

fn invalid_argument_op(tape: &Tape<f64>) -> String {
    match tape.error() {
        Some(Error::InvalidArgument { op, .. }) => op,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn group_size_must_divide_the_columns() {
    for (name, group_size) in [
        ("softmax", 4),
        ("log_softmax", 4),
        ("logsumexp", 4),
        ("one_hot_argmax", 4),
        ("softmax", 0),
    ] {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::zeros(2, 6));
        let y = match name {
            "softmax" => x.softmax(group_size),
            "log_softmax" => x.log_softmax(group_size),
            "logsumexp" => x.logsumexp(group_size),
            _ => x.one_hot_argmax(group_size),
        };
        assert!(y.is_poisoned(), "{name}");
        assert_eq!(invalid_argument_op(&tape), name);
        let message = tape.error().unwrap().to_string();
        assert!(
            message.contains(&format!("group size {group_size}")) && message.contains("[2, 6]"),
            "{message}"
        );
        // The error sticks: backward reports it instead of running.
        assert_eq!(tape.backward(y.sum()).unwrap_err(), tape.error().unwrap());
    }
}

#[test]
fn bce_needs_matching_shapes() {
    let tape = Tape::<f64>::new();
    let logits = tape.variable(&Tensor::zeros(3, 4));
    // Even a broadcastable row is refused: targets are per element.
    let targets = tape.constant(&Tensor::zeros(1, 4));
    let loss = logits.bce_with_logits(targets);
    assert!(loss.is_poisoned());
    match tape.error() {
        Some(Error::ShapeMismatch {
            op, left, right, ..
        }) => {
            assert_eq!(op, "bce_with_logits");
            assert_eq!((left, right), (Shape::new(3, 4), Shape::new(1, 4)));
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn slice_ranges_are_checked() {
    for (start, end) in [(0, 0), (3, 2), (2, 7), (6, 6)] {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::zeros(2, 6));
        assert!(x.slice_cols(start, end).is_poisoned(), "{start}..{end}");
        assert_eq!(invalid_argument_op(&tape), "slice_cols");
        let message = tape.error().unwrap().to_string();
        assert!(message.contains(&format!("{start}..{end}")), "{message}");
    }
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 6));
    assert!(x.slice_rows(1, 3).is_poisoned());
    assert_eq!(invalid_argument_op(&tape), "slice_rows");
}

#[test]
fn concat_needs_agreeing_shapes_and_some_input() {
    let tape = Tape::<f64>::new();
    let a = tape.variable(&Tensor::zeros(2, 3));
    let b = tape.variable(&Tensor::zeros(4, 3));
    assert!(a.concat_cols(b).is_poisoned());
    assert_eq!(
        tape.error(),
        Some(Error::shape_mismatch(
            "concat_cols",
            Shape::new(2, 3),
            Shape::new(4, 3),
            "all inputs must have the same number of rows",
        ))
    );

    // Stacking them works: same number of columns.
    let tape = Tape::<f64>::new();
    let a = tape.variable(&Tensor::zeros(2, 3));
    let b = tape.variable(&Tensor::zeros(4, 3));
    assert_eq!(a.concat_rows(b).shape(), Shape::new(6, 3));
    let c = tape.variable(&Tensor::zeros(1, 2));
    assert!(tape.concat_rows(&[a, b, c]).is_poisoned());
    assert!(matches!(tape.error(), Some(Error::ShapeMismatch { op, .. }) if op == "concat_rows"));

    let tape = Tape::<f64>::new();
    assert!(tape.concat_cols(&[]).is_poisoned());
    assert_eq!(invalid_argument_op(&tape), "concat_cols");
}

#[test]
fn one_hot_argmax_is_marked_in_the_dump() {
    let tape = Tape::<f32>::new();
    let x = tape.variable_named("logits", &Tensor::zeros(1, 4));
    let _ = x.one_hot_argmax(2);
    let dump = tape.dump();
    let line = dump.lines().nth(1).unwrap();
    assert!(
        line.contains("one_hot_argmax(group=2)(%0)") && line.contains("not differentiable"),
        "{dump}"
    );
}
