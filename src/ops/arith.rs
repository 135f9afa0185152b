//! Elementwise arithmetic: `+ - * /` with broadcasting, negation, and constants.
//!
//! # Broadcasting
//! The two operands of a binary op must agree in each dimension, or have size 1 there:
//! a `[1, C]` row is added to every row of a `[B, C]` matrix (a bias), a `[1, 1]`
//! scalar to every element. In the backward pass the gradient of a broadcast operand
//! is the upstream gradient *summed* over the dimensions it was repeated along.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// The shape of `a (op) b` under broadcasting, or a shape-mismatch error naming `op`.
pub fn broadcast_shape(op: &str, a: Shape, b: Shape) -> Result<Shape> {
    let dim = |x: usize, y: usize| match (x, y) {
        _ if x == y => Some(x),
        (1, y) => Some(y),
        (x, 1) => Some(x),
        _ => None,
    };
    match (dim(a.rows, b.rows), dim(a.cols, b.cols)) {
        (Some(rows), Some(cols)) => Ok(Shape::new(rows, cols)),
        _ => Err(Error::shape_mismatch(
            op,
            a,
            b,
            "each dimension must be equal or 1 (broadcasting)",
        )),
    }
}

/// Flat index into a (possibly broadcast) operand of shape `shape` for output
/// element `(row, col)`.
#[inline(always)]
fn source_index(shape: Shape, row: usize, col: usize) -> usize {
    let r = if shape.rows == 1 { 0 } else { row };
    let c = if shape.cols == 1 { 0 } else { col };
    r * shape.cols + c
}

/// Runs `f(out_index, a_index, b_index)` over every output element of a broadcast
/// binary op.
#[inline(always)]
fn for_each_broadcast(out: Shape, a: Shape, b: Shape, mut f: impl FnMut(usize, usize, usize)) {
    for row in 0..out.rows {
        for col in 0..out.cols {
            f(
                row * out.cols + col,
                source_index(a, row, col),
                source_index(b, row, col),
            );
        }
    }
}

/// Shared machinery of the four binary ops: the forward applies `value(a, b)`; the
/// backward adds `grad * d_a(a, b, out)` and `grad * d_b(a, b, out)`.
fn binary_forward<T: Float>(
    inputs: &[&Tensor<T>],
    output: &mut Tensor<T>,
    value: impl Fn(T, T) -> T,
) {
    let (a, b) = (inputs[0], inputs[1]);
    let (sa, sb, so) = (a.shape(), b.shape(), output.shape());
    let (a, b, out) = (a.as_slice(), b.as_slice(), output.as_mut_slice());
    if sa == so && sb == so {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = value(x, y);
        }
    } else {
        for_each_broadcast(so, sa, sb, |o, i, j| out[o] = value(a[i], b[j]));
    }
}

#[allow(clippy::type_complexity)]
fn binary_backward<T: Float>(
    inputs: &[&Tensor<T>],
    output: &Tensor<T>,
    grad_output: &Tensor<T>,
    grad_inputs: &mut [Option<&mut Tensor<T>>],
    d_a: impl Fn(T, T, T) -> T,
    d_b: impl Fn(T, T, T) -> T,
) {
    let (a, b) = (inputs[0], inputs[1]);
    let (sa, sb, so) = (a.shape(), b.shape(), output.shape());
    let (a, b, out, g) = (
        a.as_slice(),
        b.as_slice(),
        output.as_slice(),
        grad_output.as_slice(),
    );
    let [grad_a, grad_b] = grad_inputs else {
        unreachable!("binary op with {} gradient slots", grad_inputs.len())
    };
    if let Some(grad_a) = grad_a.as_deref_mut() {
        let grad_a = grad_a.as_mut_slice();
        for_each_broadcast(so, sa, sb, |o, i, j| {
            grad_a[i] += g[o] * d_a(a[i], b[j], out[o])
        });
    }
    if let Some(grad_b) = grad_b.as_deref_mut() {
        let grad_b = grad_b.as_mut_slice();
        for_each_broadcast(so, sa, sb, |o, i, j| {
            grad_b[j] += g[o] * d_b(a[i], b[j], out[o])
        });
    }
}

macro_rules! binary_op {
    ($(#[$doc:meta])* $name:ident, $label:literal, value: $value:expr, d_a: $d_a:expr, d_b: $d_b:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl<T: Float> Op<T> for $name {
            fn name(&self) -> &'static str {
                $label
            }
            fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
                expect_arity($label, inputs, 2)?;
                broadcast_shape($label, inputs[0], inputs[1])
            }
            fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
                binary_forward(inputs, output, $value);
            }
            fn backward(
                &self,
                inputs: &[&Tensor<T>],
                output: &Tensor<T>,
                grad_output: &Tensor<T>,
                grad_inputs: &mut [Option<&mut Tensor<T>>],
            ) {
                binary_backward(inputs, output, grad_output, grad_inputs, $d_a, $d_b);
            }
        }
    };
}

binary_op!(
    /// `a + b`.  `d/da = 1`, `d/db = 1`.
    Add, "add",
    value: |a: T, b: T| a + b,
    d_a: |_, _, _| T::ONE,
    d_b: |_, _, _| T::ONE
);

binary_op!(
    /// `a - b`.  `d/da = 1`, `d/db = -1`.
    Sub, "sub",
    value: |a: T, b: T| a - b,
    d_a: |_, _, _| T::ONE,
    d_b: |_, _, _| -T::ONE
);

binary_op!(
    /// `a * b` (elementwise).  `d/da = b`, `d/db = a`.
    Mul, "mul",
    value: |a: T, b: T| a * b,
    d_a: |_, b, _| b,
    d_b: |a, _, _| a
);

binary_op!(
    /// `a / b` (elementwise).  `d/da = 1/b`, `d/db = -a/b^2 = -out/b`.
    Div, "div",
    value: |a: T, b: T| a / b,
    d_a: |_, b: T, _| T::ONE / b,
    d_b: |_, b: T, out: T| -out / b
);

/// `scale * x + offset` with constant `scale` and `offset` (covers negation,
/// multiplying by a constant and adding one).  `d/dx = scale`.
#[derive(Debug, Clone, Copy)]
pub struct Affine<T: Float> {
    /// The constant factor.
    pub scale: T,
    /// The constant term.
    pub offset: T,
}

impl<T: Float> Op<T> for Affine<T> {
    fn name(&self) -> &'static str {
        if self.scale == -T::ONE && self.offset == T::ZERO {
            "neg"
        } else if self.offset == T::ZERO {
            "scale"
        } else {
            "affine"
        }
    }
    fn describe(&self) -> String {
        format!(
            "{}(scale={}, offset={})",
            Op::<T>::name(self),
            self.scale,
            self.offset
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("affine", inputs, 1)?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        for (o, &x) in output.as_mut_slice().iter_mut().zip(inputs[0].as_slice()) {
            *o = self.scale * x + self.offset;
        }
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for (g, &go) in grad.as_mut_slice().iter_mut().zip(grad_output.as_slice()) {
                *g += self.scale * go;
            }
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `self * factor` for a constant `factor`.
    pub fn scale(self, factor: T) -> Var<'t, T> {
        self.tape().record(
            Affine {
                scale: factor,
                offset: T::ZERO,
            },
            &[self],
        )
    }

    /// `self + constant`.
    pub fn add_scalar(self, constant: T) -> Var<'t, T> {
        self.tape().record(
            Affine {
                scale: T::ONE,
                offset: constant,
            },
            &[self],
        )
    }

    /// `scale * self + offset` in one op.
    pub fn affine(self, scale: T, offset: T) -> Var<'t, T> {
        self.tape().record(Affine { scale, offset }, &[self])
    }
}

macro_rules! var_operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl<'t, T: Float> std::ops::$trait for Var<'t, T> {
            type Output = Var<'t, T>;
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                self.tape().record($op, &[self, rhs])
            }
        }
    };
}

var_operator!(Add, add, Add);
var_operator!(Sub, sub, Sub);
var_operator!(Mul, mul, Mul);
var_operator!(Div, div, Div);

impl<'t, T: Float> std::ops::Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    fn neg(self) -> Var<'t, T> {
        self.scale(-T::ONE)
    }
}

impl<'t, T: Float> std::ops::Mul<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn mul(self, rhs: T) -> Var<'t, T> {
        self.scale(rhs)
    }
}

impl<'t, T: Float> std::ops::Div<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn div(self, rhs: T) -> Var<'t, T> {
        self.scale(T::ONE / rhs)
    }
}

impl<'t, T: Float> std::ops::Add<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn add(self, rhs: T) -> Var<'t, T> {
        self.add_scalar(rhs)
    }
}

impl<'t, T: Float> std::ops::Sub<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn sub(self, rhs: T) -> Var<'t, T> {
        self.add_scalar(-rhs)
    }
}

macro_rules! scalar_on_left {
    ($t:ty) => {
        impl<'t> std::ops::Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn mul(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.scale(self)
            }
        }
        impl<'t> std::ops::Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn add(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.add_scalar(self)
            }
        }
        impl<'t> std::ops::Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn sub(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.affine(-1.0, self)
            }
        }
    };
}

scalar_on_left!(f32);
scalar_on_left!(f64);
