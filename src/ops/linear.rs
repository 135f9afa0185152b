//! Fused ops for the two places a VAE step spends most of its non-GEMM time: a dense
//! layer (`matmul` + bias + nonlinearity in one node) and the per-example binary
//! cross-entropy (`bce_with_logits` + `sum_cols` in one node).
//!
//! Each computes *exactly* what its unfused chain computes, in the same order of
//! floating-point operations, so swapping one for the other changes no bit of a value
//! or gradient (`tests/suite/ops_fused.rs` checks this, besides the usual gradcheck). What
//! fusing saves is the intermediate tensors: no `[batch, out]` buffer for `x W` and
//! another for `x W + b`, no `[batch, pixels]` buffer of per-pixel losses, and one
//! pass over the output instead of two or three, while it is still in cache.

use std::any::Any;
use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::bce;
use crate::kernels::matmul::{Product, gemm_overwrite};
use crate::kernels::threads::for_each_shared;
use crate::op::{Op, expect_arity, expect_same_shapes};
use crate::ops::loss::bce_with_logits;
use crate::ops::matmul::input_gradients;
use crate::ops::unary::sigmoid;
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// The nonlinearity a [`Linear`] node applies to `x W + b`. Only those whose derivative
/// can be read off their *output* `y` are offered, so the backward pass needs no copy of
/// the pre-activation:
///
/// | activation | `y` | `dy/dz` from `y` |
/// |---|---|---|
/// | `Identity` | `z` | `1` |
/// | `Relu` | `max(z, 0)` | `1[y > 0]` (`y > 0` exactly when `z > 0`) |
/// | `LeakyRelu` | `z` or `slope z` | `1[y > 0]` or `slope` (needs `slope > 0`) |
/// | `Tanh` | `tanh z` | `1 - y^2` |
/// | `Sigmoid` | `sigmoid z` | `y (1 - y)` |
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedActivation {
    /// No nonlinearity.
    Identity,
    /// `max(z, 0)`.
    Relu,
    /// `z` for `z > 0`, `slope z` otherwise; the slope must be finite and `> 0` (a
    /// non-positive slope would make the sign of `y` say nothing about `z`).
    LeakyRelu {
        /// The slope on the negative side.
        slope: f64,
    },
    /// `tanh z`.
    Tanh,
    /// `1 / (1 + e^-z)`.
    Sigmoid,
}

impl FusedActivation {
    /// Applies the nonlinearity to a pre-activation `z` (the same expressions as the
    /// unfused ops in [`unary`](crate::ops::unary)).
    #[inline(always)]
    pub fn value<T: Float>(self, z: T) -> T {
        match self {
            FusedActivation::Identity => z,
            FusedActivation::Relu => {
                if z > T::ZERO {
                    z
                } else {
                    T::ZERO
                }
            }
            FusedActivation::LeakyRelu { slope } => {
                if z > T::ZERO {
                    z
                } else {
                    T::from_f64(slope) * z
                }
            }
            FusedActivation::Tanh => z.tanh(),
            FusedActivation::Sigmoid => sigmoid(z),
        }
    }

    /// `dy/dz`, from the output `y` alone (see the table on [`FusedActivation`]).
    #[inline(always)]
    fn derivative_from_output<T: Float>(self, y: T) -> T {
        match self {
            FusedActivation::Identity => T::ONE,
            FusedActivation::Relu => {
                if y > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            FusedActivation::LeakyRelu { slope } => {
                if y > T::ZERO {
                    T::ONE
                } else {
                    T::from_f64(slope)
                }
            }
            FusedActivation::Tanh => T::ONE - y * y,
            FusedActivation::Sigmoid => y * (T::ONE - y),
        }
    }

    /// `y = act(y + b)` on every row of `output`, `b` being the row `bias`.
    ///
    /// The match on the activation is taken once, outside the loop: matched per value,
    /// it compiled to a jump per value and a scalar loop; each arm's loop here is
    /// vectorised. The arithmetic is [`FusedActivation::value`]'s, so the bits are too.
    fn add_bias_and_apply<T: Float>(self, output: &mut [T], bias: &[T]) {
        fn rows<T: Float>(output: &mut [T], bias: &[T], act: impl Fn(T) -> T) {
            for row in output.chunks_exact_mut(bias.len().max(1)) {
                for (y, &b) in row.iter_mut().zip(bias) {
                    *y = act(*y + b);
                }
            }
        }
        use FusedActivation::{Identity, LeakyRelu, Relu, Sigmoid, Tanh};
        match self {
            Identity => rows(output, bias, |z| Identity.value(z)),
            Relu => rows(output, bias, |z| Relu.value(z)),
            LeakyRelu { slope } => rows(output, bias, move |z| LeakyRelu { slope }.value(z)),
            Tanh => rows(output, bias, |z| Tanh.value(z)),
            Sigmoid => rows(output, bias, |z| Sigmoid.value(z)),
        }
    }

    /// `scaled = grad_output * act'(output)`, value by value (`G' = G * act'(y)`).
    ///
    /// One loop per activation, as in [`FusedActivation::add_bias_and_apply`], with the
    /// arithmetic of [`FusedActivation::derivative_from_output`].
    fn scale_by_derivative<T: Float>(self, scaled: &mut [T], output: &[T], grad_output: &[T]) {
        fn each<T: Float>(scaled: &mut [T], output: &[T], grad: &[T], d: impl Fn(T) -> T) {
            for ((s, &y), &g) in scaled.iter_mut().zip(output).zip(grad) {
                *s = g * d(y);
            }
        }
        use FusedActivation::{Identity, LeakyRelu, Relu, Sigmoid, Tanh};
        let (s, y, g) = (scaled, output, grad_output);
        match self {
            Identity => each(s, y, g, |y| Identity.derivative_from_output(y)),
            Relu => each(s, y, g, |y| Relu.derivative_from_output(y)),
            LeakyRelu { slope } => each(s, y, g, move |y| {
                LeakyRelu { slope }.derivative_from_output(y)
            }),
            Tanh => each(s, y, g, |y| Tanh.derivative_from_output(y)),
            Sigmoid => each(s, y, g, |y| Sigmoid.derivative_from_output(y)),
        }
    }
}

/// A dense layer in one node: inputs `(x [batch, in], W [in, out], b [1, out])`, output
/// `y = act(x W + b)`, `[batch, out]`.
///
/// VJP with upstream gradient `G`: first `G' = G * act'(y)` (elementwise, from the
/// output; see [`FusedActivation`]), then
/// `dx = G' W^T`, `dW = x^T G'`, `db = sum over the batch of G'`.
///
/// Same values, bit for bit, as `act(x.matmul(w) + b)` recorded as three nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    /// The nonlinearity applied to `x W + b`.
    pub activation: FusedActivation,
}

impl<T: Float> Op<T> for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn describe(&self) -> String {
        format!("linear({:?})", self.activation)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("linear", inputs, 3)?;
        let (x, weight, bias) = (inputs[0], inputs[1], inputs[2]);
        if x.cols != weight.rows {
            return Err(Error::shape_mismatch(
                "linear",
                x,
                weight,
                format!(
                    "the input has {} features but the weight expects {}",
                    x.cols, weight.rows
                ),
            ));
        }
        if bias != Shape::new(1, weight.cols) {
            return Err(Error::shape_mismatch(
                "linear",
                weight,
                bias,
                format!("the bias must be one row of {} values", weight.cols),
            ));
        }
        if let FusedActivation::LeakyRelu { slope } = self.activation
            && !(slope.is_finite() && slope > 0.0)
        {
            return Err(Error::invalid_argument(
                "linear",
                format!("a fused leaky ReLU needs a finite slope > 0, got {slope}"),
            ));
        }
        Ok(Shape::new(x.rows, weight.cols))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (x, weight, bias) = (inputs[0], inputs[1], inputs[2]);
        let (batch, features, units) = (x.rows(), x.cols(), weight.cols());
        gemm_overwrite(
            false,
            false,
            batch,
            units,
            features,
            x.as_slice(),
            weight.as_slice(),
            output.as_mut_slice(),
        );
        // `z = (x W) + b`, then `y = act(z)`, while the output is still in cache.
        self.activation
            .add_bias_and_apply(output.as_mut_slice(), bias.as_slice());
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        self.backward_with_fresh(inputs, output, grad_output, grad_inputs, &[false; 3]);
    }
    /// The products write fresh gradient buffers directly (`gemm_overwrite`); a fresh
    /// bias gradient (one row) is zeroed before the rows are added.
    fn backward_with_fresh(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
        fresh: &[bool],
    ) {
        let (x, weight) = (inputs[0], inputs[1]);
        if self.activation == FusedActivation::Identity {
            // G' is G: no copy.
            linear_backward(x, weight, grad_output.as_slice(), grad_inputs, fresh);
            return;
        }
        // G' = G * act'(y), in a buffer this thread keeps for the next call.
        with_scratch(output.len(), |scaled: &mut [T]| {
            self.activation
                .scale_by_derivative(scaled, output.as_slice(), grad_output.as_slice());
            linear_backward(x, weight, scaled, grad_inputs, fresh);
        });
    }
}

/// The three products of [`Linear`]'s backward pass, given `G' = G * act'(y)`: each
/// written into its gradient buffer if `fresh` says it is new, else added.
fn linear_backward<T: Float>(
    x: &Tensor<T>,
    weight: &Tensor<T>,
    g: &[T],
    grad_inputs: &mut [Option<&mut Tensor<T>>],
    fresh: &[bool],
) {
    let (batch, features, units) = (x.rows(), x.cols(), weight.cols());
    let [grad_x, grad_weight, grad_bias] = grad_inputs else {
        unreachable!("linear has three inputs")
    };
    // dx = G' W^T, a [batch, in] product.
    let dx = Product {
        overwrite: fresh[0],
        transpose_a: false,
        transpose_b: true,
        m: batch,
        n: features,
        k: units,
        a: g,
        b: weight.as_slice(),
    };
    // dW = x^T G', an [in, out] product.
    let dw = Product {
        overwrite: fresh[1],
        transpose_a: true,
        transpose_b: false,
        m: features,
        n: units,
        k: batch,
        a: x.as_slice(),
        b: g,
    };
    // Side by side: dW on a helper, which then takes the last bands of dX.
    input_gradients(grad_x.as_deref_mut(), dx, grad_weight.as_deref_mut(), dw);
    if let Some(grad_bias) = grad_bias.as_deref_mut() {
        // db = sum over rows of G', row by row (the unfused broadcast add's order).
        let grad_bias = grad_bias.as_mut_slice();
        if fresh[2] {
            grad_bias.fill(T::ZERO);
        }
        for row in g.chunks_exact(units.max(1)) {
            for (d, &value) in grad_bias.iter_mut().zip(row) {
                *d += value;
            }
        }
    }
}

thread_local! {
    /// One scratch buffer per element type, reused by every [`Linear`] backward pass on
    /// this thread, so a training step's steady state allocates nothing for `G'`.
    static SCRATCH: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch slice of `len` elements of `T` (contents
/// unspecified; `f` overwrites them).
fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let index = match buffers.iter().position(|b| b.is::<Vec<T>>()) {
            Some(index) => index,
            None => {
                buffers.push(Box::new(Vec::<T>::new()));
                buffers.len() - 1
            }
        };
        let buffer = buffers[index]
            .downcast_mut::<Vec<T>>()
            .expect("the position was found by type");
        if buffer.len() < len {
            buffer.resize(len, T::ZERO);
        }
        f(&mut buffer[..len])
    })
}

/// Binary cross-entropy with logits summed over each row: inputs `(logits x, targets t)`
/// of the same shape `[batch, pixels]`, output `[batch, 1]` with
/// `y_i = sum_j bce(x_ij, t_ij)` (see [`BceWithLogits`](crate::ops::loss::BceWithLogits)
/// for `bce`). The per-example negative log-likelihood of a Bernoulli decoder.
///
/// VJP with upstream gradient `g_i`: `d y_i / d x_ij = sigmoid(x_ij) - t_ij`,
/// `d y_i / d t_ij = -x_ij`.
///
/// Same values, bit for bit, as `x.bce_with_logits(t).sum_cols()` (in f32 both take
/// their terms from [`kernels::bce`](crate::kernels::bce)).
///
/// Rows are independent, so with more than one thread
/// ([`num_threads`](crate::kernels::num_threads)) forward and backward share out
/// fixed chunks of rows; the values are the same for every thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BceWithLogitsSumCols;

/// Rows per chunk when [`BceWithLogitsSumCols`] shares its rows among threads.
const BCE_ROWS_PER_CHUNK: usize = 10;

impl<T: Float> Op<T> for BceWithLogitsSumCols {
    fn name(&self) -> &'static str {
        "bce_with_logits_sum_cols"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let shape = expect_same_shapes(
            "bce_with_logits_sum_cols",
            inputs,
            "logits and targets must have the same shape",
        )?;
        Ok(Shape::new(shape.rows, 1))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let cols = inputs[0].cols().max(1);
        let span = BCE_ROWS_PER_CHUNK * cols;
        let chunks = output
            .as_mut_slice()
            .chunks_mut(BCE_ROWS_PER_CHUNK)
            .zip(inputs[0].as_slice().chunks(span))
            .zip(inputs[1].as_slice().chunks(span));
        for_each_shared(chunks, |((out, logits), targets)| {
            let rows = logits.chunks_exact(cols).zip(targets.chunks_exact(cols));
            for (y, (logits, targets)) in out.iter_mut().zip(rows) {
                if let (Some(l), Some(t)) = (T::as_f32(logits), T::as_f32(targets)) {
                    *y = T::from_f64(f64::from(bce::bce_with_logits_row_sum_f32(l, t)));
                    continue;
                }
                // Left to right from zero, as `sum_cols` adds.
                let mut total = T::ZERO;
                for (&x, &t) in logits.iter().zip(targets) {
                    total += bce_with_logits(x, t);
                }
                *y = total;
            }
        });
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let cols = inputs[0].cols().max(1);
        let (logits, targets) = (inputs[0].as_slice(), inputs[1].as_slice());
        let g = grad_output.as_slice();
        let [grad_logits, grad_targets] = grad_inputs else {
            unreachable!("bce_with_logits_sum_cols has two inputs")
        };
        if let Some(grad) = grad_logits.as_deref_mut() {
            let span = BCE_ROWS_PER_CHUNK * cols;
            let chunks = grad
                .as_mut_slice()
                .chunks_mut(span)
                .zip(logits.chunks(span))
                .zip(targets.chunks(span))
                .zip(g.chunks(BCE_ROWS_PER_CHUNK));
            for_each_shared(chunks, |(((d, x), t), g)| {
                let rows = d
                    .chunks_exact_mut(cols)
                    .zip(x.chunks_exact(cols))
                    .zip(t.chunks_exact(cols));
                for (((d_row, x_row), t_row), &go) in rows.zip(g) {
                    if let (Some(l), Some(t), Some(d)) =
                        (T::as_f32(x_row), T::as_f32(t_row), T::as_f32_mut(d_row))
                    {
                        // `T` is f32 here, so the conversion is exact.
                        let go = go.to_f64() as f32;
                        bce::add_bce_row_logit_gradient_f32(l, t, go, d);
                        continue;
                    }
                    for ((d, &x), &t) in d_row.iter_mut().zip(x_row).zip(t_row) {
                        *d += go * (sigmoid(x) - t);
                    }
                }
            });
        }
        if let Some(grad) = grad_targets.as_deref_mut() {
            let rows = grad
                .as_mut_slice()
                .chunks_exact_mut(cols)
                .zip(logits.chunks_exact(cols));
            for ((d_row, x_row), &go) in rows.zip(g) {
                for (d, &x) in d_row.iter_mut().zip(x_row) {
                    *d -= go * x;
                }
            }
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// A dense layer in one node: `activation(self W + b)` for `self: [batch, in]`,
    /// `weight: [in, out]`, `bias: [1, out]` (see [`Linear`]). Shape mismatches are
    /// recorded as [`Error::ShapeMismatch`] naming `linear` and both shapes.
    ///
    /// ```
    /// use gumbelgrad::ops::linear::FusedActivation;
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(&Tensor::from_vec(1, 2, vec![1.0, 2.0])?);
    /// let w = tape.variable(&Tensor::from_vec(2, 2, vec![1.0, -1.0, 1.0, -1.0])?);
    /// let b = tape.variable(&Tensor::from_vec(1, 2, vec![0.5, 0.5])?);
    /// let y = x.linear(w, b, FusedActivation::Relu); // relu([3.5, -2.5])
    /// assert_eq!(y.value()?.as_slice(), &[3.5, 0.0]);
    /// tape.backward(y.sum())?;
    /// assert_eq!(b.grad().unwrap().as_slice(), &[1.0, 0.0]);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn linear(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        activation: FusedActivation,
    ) -> Var<'t, T> {
        self.tape()
            .record(Linear { activation }, &[self, weight, bias])
    }

    /// Binary cross-entropy between these logits and `targets`, summed over each row:
    /// `[batch, pixels] -> [batch, 1]` (see [`BceWithLogitsSumCols`]); the same as
    /// `self.bce_with_logits(targets).sum_cols()` in one node.
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.variable(&Tensor::from_vec(2, 2, vec![0.0, 1e4, 0.0, -1e4])?);
    /// let pixels = tape.constant(&Tensor::from_vec(2, 2, vec![1.0, 1.0, 0.0, 0.0])?);
    /// let nll = logits.bce_with_logits_sum_cols(pixels); // [2, 1]: ln 2 each
    /// assert_eq!(nll.value()?.as_slice(), &[2f64.ln(), 2f64.ln()]);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn bce_with_logits_sum_cols(self, targets: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(BceWithLogitsSumCols, &[self, targets])
    }
}
