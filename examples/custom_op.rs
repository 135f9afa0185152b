//! Define your own op outside the crate, record it on a tape, and check its gradient.
//!
//! Run with `cargo run --release --example custom_op`.
//!
//! The op is *swish* (also called SiLU), `swish(x) = x * sigmoid(x)`, an activation
//! gumbelgrad does not ship. Adding it takes one struct implementing
//! [`gumbelgrad::Op`]: a forward pass and its vector-Jacobian product (VJP), side by
//! side. [`gumbelgrad::gradcheck`] then compares the VJP with finite differences. The
//! example exits with a non-zero status if the check fails, so it doubles as a test.

use std::process::ExitCode;

use clap::Parser;
use gumbelgrad::{Float, GradcheckOptions, Op, Result, Shape, Tape, Tensor, gradcheck};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "common/cli.rs"]
#[allow(dead_code)] // each example uses a part of the shared module
mod cli;

/// Largest relative error we accept between the tape's gradient and finite
/// differences; the crate's own property tests use the same bound.
const TOLERANCE: f64 = 1e-6;

/// `swish(x) = x * sigmoid(x)`, elementwise.
///
/// Derivative (product rule), with `s = sigmoid(x)` and `y = x s`:
/// `d/dx swish(x) = s + x s (1 - s) = s + y (1 - s)`.
#[derive(Debug, Clone, Copy)]
struct Swish;

/// The logistic sigmoid, written so that `exp` never overflows.
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

// Implementing `Op<T>` for every `T: Float` lets the same op run in f32 (training)
// and f64 (gradient checks).
impl<T: Float> Op<T> for Swish {
    fn name(&self) -> &'static str {
        "swish"
    }

    /// One input; the output has its shape. (An op with several inputs would check
    /// here that their shapes fit together, and return `Error::shape_mismatch`.)
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        gumbelgrad::op::expect_arity("swish", inputs, 1)?;
        Ok(inputs[0])
    }

    /// `y = x * sigmoid(x)`: overwrite every element of `output`.
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        for (y, &x) in output.as_mut_slice().iter_mut().zip(inputs[0].as_slice()) {
            *y = x * sigmoid(x);
        }
    }

    /// VJP: `grad_x += grad_y * (s + y (1 - s))`. Gradients are *added*, never
    /// assigned, so a value used twice collects both contributions.
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        // `None` means this input does not need a gradient (a constant).
        let Some(grad_x) = grad_inputs[0].as_deref_mut() else {
            return;
        };
        let (xs, ys, gs) = (
            inputs[0].as_slice(),
            output.as_slice(),
            grad_output.as_slice(),
        );
        for (((d, &x), &y), &g) in grad_x.as_mut_slice().iter_mut().zip(xs).zip(ys).zip(gs) {
            let s = sigmoid(x);
            *d += g * (s + y * (T::ONE - s));
        }
    }
}

/// The same op with a classic mistake: forgetting the product rule and using
/// `d/dx = sigmoid(x)`. Used below to show what a failed check looks like.
#[derive(Debug, Clone, Copy)]
struct SwishWithWrongDerivative;

impl Op<f64> for SwishWithWrongDerivative {
    fn name(&self) -> &'static str {
        "swish_wrong"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Op::<f64>::output_shape(&Swish, inputs)
    }
    fn forward(&self, inputs: &[&Tensor<f64>], output: &mut Tensor<f64>) {
        Swish.forward(inputs, output);
    }
    fn backward(
        &self,
        inputs: &[&Tensor<f64>],
        _output: &Tensor<f64>,
        grad_output: &Tensor<f64>,
        grad_inputs: &mut [Option<&mut Tensor<f64>>],
    ) {
        if let Some(grad_x) = grad_inputs[0].as_deref_mut() {
            let pairs = inputs[0].as_slice().iter().zip(grad_output.as_slice());
            for (d, (&x, &g)) in grad_x.as_mut_slice().iter_mut().zip(pairs) {
                *d += g * sigmoid(x); // wrong: misses the x s (1 - s) term
            }
        }
    }
}

/// Define an op (swish) outside the crate, record it on a tape, and check its gradient
/// against finite differences; exits 1 if the check fails.
#[derive(Debug, Parser)]
#[command(name = "custom_op", version)]
struct Args {}

fn main() -> ExitCode {
    let _: Args = cli::parse();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error),
    }
}

fn run() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(2017);
    println!(
        "gumbelgrad custom-op example: swish(x) = x * sigmoid(x), defined outside the crate.\n"
    );

    // 1. Use it in a small model: 4 examples with 3 features, a 3x2 weight matrix,
    //    then a softmax over the 2 outputs. `tape.record` is all it takes.
    let tape = Tape::<f32>::new();
    let x = tape.constant_named("x", &Tensor::random_normal(4, 3, 0.0, 1.0, &mut rng));
    let w = tape.variable_named("w", &Tensor::random_normal(3, 2, 0.0, 0.5, &mut rng));
    let hidden = tape.record(Swish, &[x.matmul(w)]);
    let loss = hidden.log_softmax(2).mean();
    tape.backward(loss)?;
    println!("1. Recorded on an f32 tape inside a small model; the tape now reads:\n");
    for line in tape.dump().lines() {
        println!("     {line}");
    }
    println!(
        "\n   loss = {:.6}; the gradient of w flowed back through swish:\n     {:?}\n",
        loss.scalar()?,
        w.grad().expect("w is a variable")
    );

    // 2. Check the VJP against finite differences, in f64: once on the op alone, over
    //    inputs spanning both signs and both saturated ends, and once inside the model,
    //    with respect to both the input and the weights.
    let inputs = Tensor::random_uniform(5, 4, -6.0, 6.0, &mut rng);
    let alone = gradcheck(&[inputs], GradcheckOptions::default(), |tape, v| {
        tape.record(Swish, &[v[0]])
    })?;
    let x64 = Tensor::random_normal(4, 3, 0.0, 1.0, &mut rng);
    let w64 = Tensor::random_normal(3, 2, 0.0, 0.5, &mut rng);
    let in_model = gradcheck(
        &[x64.clone(), w64.clone()],
        GradcheckOptions::default(),
        |tape, v| tape.record(Swish, &[v[0].matmul(v[1])]).log_softmax(2),
    )?;
    println!("2. Gradient check: the tape's gradient against central finite differences");
    println!("   (five-point stencil, f64), element by element; pass if the worst relative");
    println!("   error is <= {TOLERANCE:e}.\n");
    println!("   swish alone, on 5x4 inputs in [-6, 6]:\n     {alone}");
    println!("   log_softmax(swish(x w)), gradients of both x and w:\n     {in_model}\n");
    println!(
        "   (\"rel error\" is |tape - finite differences| / max(1, |tape|, |finite diff.|).)\n"
    );

    // 3. For contrast: the same check on a wrong derivative.
    let wrong = gradcheck(&[x64, w64], GradcheckOptions::default(), |tape, v| {
        tape.record(SwishWithWrongDerivative, &[v[0].matmul(v[1])])
            .log_softmax(2)
    })?;
    println!("3. For contrast, the same op with a wrong derivative (d/dx = sigmoid(x),");
    println!("   forgetting the product rule) is caught:\n");
    println!("     {wrong}\n");

    let passed = alone.max_rel_error <= TOLERANCE && in_model.max_rel_error <= TOLERANCE;
    let caught = wrong.max_rel_error > TOLERANCE;
    if passed && caught {
        println!("PASS: swish's VJP matches finite differences, and the broken one does not.");
        println!("Write your own op the same way, then property-test it over random shapes and");
        println!("values with gumbelgrad::testing (see tests/suite/ops_gradcheck.rs).");
        Ok(())
    } else {
        eprintln!("FAIL: correct VJP passed: {passed}; wrong VJP caught: {caught}");
        std::process::exit(1);
    }
}
