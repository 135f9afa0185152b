//! Elementwise functions of one tensor: activations, exp/log, powers.
//!
//! Each op stores nothing but constants; its backward reads the saved input `x` and
//! output `y = f(x)` and multiplies the upstream gradient by `f'(x)`, written as
//! whichever of `x` and `y` gives the cheapest and most accurate form.

use crate::error::Result;
use crate::float::Float;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// An elementwise function with its derivative, `f'(x)` expressed through `x` and
/// `y = f(x)`.
pub trait Elementwise<T: Float>: std::fmt::Debug + Clone + 'static {
    /// Name in errors and dumps.
    const NAME: &'static str;
    /// `y = f(x)`.
    fn value(&self, x: T) -> T;
    /// `f'(x)`, given `x` and `y = f(x)`.
    fn derivative(&self, x: T, y: T) -> T;
    /// Parameters for dumps, e.g. `"slope=0.01"`.
    fn params(&self) -> String {
        String::new()
    }
}

/// The op wrapping an [`Elementwise`] function: same shape out as in.
#[derive(Debug, Clone)]
pub struct Map<F>(pub F);

impl<T: Float, F: Elementwise<T>> Op<T> for Map<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn describe(&self) -> String {
        let params = self.0.params();
        if params.is_empty() {
            F::NAME.to_string()
        } else {
            format!("{}({params})", F::NAME)
        }
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity(F::NAME, inputs, 1)?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        for (y, &x) in output.as_mut_slice().iter_mut().zip(inputs[0].as_slice()) {
            *y = self.0.value(x);
        }
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            let xs = inputs[0].as_slice().iter();
            let ys = output.as_slice().iter();
            for (((g, &x), &y), &go) in grad
                .as_mut_slice()
                .iter_mut()
                .zip(xs)
                .zip(ys)
                .zip(grad_output.as_slice())
            {
                *g += go * self.0.derivative(x, y);
            }
        }
    }
}

macro_rules! elementwise {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$x:ident, $y:ident| value: $value:expr, derivative: $derivative:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl<T: Float> Elementwise<T> for $name {
            const NAME: &'static str = $label;
            #[inline(always)]
            fn value(&self, $x: T) -> T {
                $value
            }
            #[inline(always)]
            #[allow(unused_variables)]
            fn derivative(&self, $x: T, $y: T) -> T {
                $derivative
            }
        }
    };
}

elementwise!(
    /// `relu(x) = max(x, 0)`.  `d/dx = 1[x > 0]` (0 at the kink).
    Relu, "relu", |x, y| value: if x > T::ZERO { x } else { T::ZERO },
    derivative: if x > T::ZERO { T::ONE } else { T::ZERO }
);

elementwise!(
    /// `sigmoid(x) = 1 / (1 + e^-x)`, evaluated without overflow for either sign.
    /// `d/dx = y (1 - y)`.
    Sigmoid, "sigmoid", |x, y| value: sigmoid(x),
    derivative: y * (T::ONE - y)
);

elementwise!(
    /// `tanh(x)`.  `d/dx = 1 - y^2`.
    Tanh, "tanh", |x, y| value: x.tanh(),
    derivative: T::ONE - y * y
);

elementwise!(
    /// `exp(x)`.  `d/dx = y`.
    Exp, "exp", |x, y| value: x.exp(),
    derivative: y
);

elementwise!(
    /// `ln(x)` (NaN for x < 0, -inf at 0, as for floats).  `d/dx = 1/x`.
    Log, "log", |x, y| value: x.ln(),
    derivative: T::ONE / x
);

elementwise!(
    /// `softplus(x) = ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` so it
    /// never overflows.  `d/dx = sigmoid(x)`.
    Softplus, "softplus", |x, y| value: softplus(x),
    derivative: sigmoid(x)
);

elementwise!(
    /// `x^2`.  `d/dx = 2x`.
    Square, "square", |x, y| value: x * x,
    derivative: (T::ONE + T::ONE) * x
);

elementwise!(
    /// `sqrt(x)`.  `d/dx = 1 / (2 y)`.
    Sqrt, "sqrt", |x, y| value: x.sqrt(),
    derivative: T::ONE / ((T::ONE + T::ONE) * y)
);

/// `leaky_relu(x) = x` for `x > 0`, `slope * x` otherwise.  `d/dx = 1` or `slope`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu<T: Float> {
    /// Slope for negative inputs (0.01 is usual).
    pub slope: T,
}

impl<T: Float> Elementwise<T> for LeakyRelu<T> {
    const NAME: &'static str = "leaky_relu";
    fn value(&self, x: T) -> T {
        if x > T::ZERO { x } else { self.slope * x }
    }
    fn derivative(&self, x: T, _y: T) -> T {
        if x > T::ZERO { T::ONE } else { self.slope }
    }
    fn params(&self) -> String {
        format!("slope={}", self.slope)
    }
}

/// `x^p` for a constant exponent `p`.  `d/dx = p x^(p-1)`.
#[derive(Debug, Clone, Copy)]
pub struct Pow<T: Float> {
    /// The exponent.
    pub exponent: T,
}

impl<T: Float> Elementwise<T> for Pow<T> {
    const NAME: &'static str = "pow";
    fn value(&self, x: T) -> T {
        x.powf(self.exponent)
    }
    fn derivative(&self, x: T, _y: T) -> T {
        self.exponent * x.powf(self.exponent - T::ONE)
    }
    fn params(&self) -> String {
        format!("exponent={}", self.exponent)
    }
}

/// Numerically stable logistic sigmoid.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// Numerically stable `ln(1 + e^x)`.
#[inline(always)]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::ZERO) + (-x.abs()).exp().ln_1p()
}

impl<'t, T: Float> Var<'t, T> {
    /// Applies any [`Elementwise`] function.
    pub fn map<F: Elementwise<T>>(self, function: F) -> Var<'t, T> {
        self.tape().record(Map(function), &[self])
    }
    /// `max(x, 0)`.
    pub fn relu(self) -> Var<'t, T> {
        self.map(Relu)
    }
    /// `x` if `x > 0`, else `slope * x`.
    pub fn leaky_relu(self, slope: T) -> Var<'t, T> {
        self.map(LeakyRelu { slope })
    }
    /// `1 / (1 + e^-x)`.
    pub fn sigmoid(self) -> Var<'t, T> {
        self.map(Sigmoid)
    }
    /// `tanh(x)`.
    pub fn tanh(self) -> Var<'t, T> {
        self.map(Tanh)
    }
    /// `e^x`.
    pub fn exp(self) -> Var<'t, T> {
        self.map(Exp)
    }
    /// `ln x`.
    pub fn ln(self) -> Var<'t, T> {
        self.map(Log)
    }
    /// `ln(1 + e^x)`.
    pub fn softplus(self) -> Var<'t, T> {
        self.map(Softplus)
    }
    /// `x^2`.
    pub fn square(self) -> Var<'t, T> {
        self.map(Square)
    }
    /// `sqrt(x)`.
    pub fn sqrt(self) -> Var<'t, T> {
        self.map(Sqrt)
    }
    /// `x^exponent` for a constant exponent.
    pub fn pow(self, exponent: T) -> Var<'t, T> {
        self.map(Pow { exponent })
    }
}
