//! Matrix product, with transposed operands handled without copying.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::matmul::{Product, gemm_overwrite};
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// `C = op(A) op(B)`, where `op` transposes its argument when the flag is set.
///
/// VJP of `C = A B` with upstream gradient `G`:
/// `dA = G B^T`, `dB = A^T G`. With transposed operands the same identities hold
/// after transposing: e.g. for `C = A B^T`, `dA = G B` and `dB = G^T A`. None of these
/// transposes is materialised: the kernel reads the operands in the layout they have.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatMul {
    /// Use `A^T` instead of `A`.
    pub transpose_a: bool,
    /// Use `B^T` instead of `B`.
    pub transpose_b: bool,
}

impl MatMul {
    /// `(rows, cols)` of `op(X)` for a stored shape.
    fn logical(shape: Shape, transpose: bool) -> (usize, usize) {
        if transpose {
            (shape.cols, shape.rows)
        } else {
            (shape.rows, shape.cols)
        }
    }
}

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn describe(&self) -> String {
        match (self.transpose_a, self.transpose_b) {
            (false, false) => "matmul".into(),
            (true, false) => "matmul(A^T B)".into(),
            (false, true) => "matmul(A B^T)".into(),
            (true, true) => "matmul(A^T B^T)".into(),
        }
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("matmul", inputs, 2)?;
        let (m, k) = Self::logical(inputs[0], self.transpose_a);
        let (k2, n) = Self::logical(inputs[1], self.transpose_b);
        if k != k2 {
            return Err(Error::shape_mismatch(
                "matmul",
                inputs[0],
                inputs[1],
                format!("inner dimensions differ ({k} vs {k2})"),
            ));
        }
        Ok(Shape::new(m, n))
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        let (a, b) = (inputs[0], inputs[1]);
        let (m, k) = Self::logical(a.shape(), self.transpose_a);
        let n = output.cols();
        gemm_overwrite(
            self.transpose_a,
            self.transpose_b,
            m,
            n,
            k,
            a.as_slice(),
            b.as_slice(),
            output.as_mut_slice(),
        );
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        self.backward_with_fresh(inputs, output, grad_output, grad_inputs, &[false; 2]);
    }
    /// Each product writes a fresh gradient buffer directly (`gemm_overwrite`).
    fn backward_with_fresh(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
        fresh: &[bool],
    ) {
        let (a, b, g) = (inputs[0], inputs[1], grad_output);
        let (m, k) = Self::logical(a.shape(), self.transpose_a);
        let n = g.cols();
        let (a, b, g) = (a.as_slice(), b.as_slice(), g.as_slice());
        let grad_a_product = if self.transpose_a {
            // A stored k x m: dA_stored = (G op(B)^T)^T = op(B) G^T, a k x m product.
            Product {
                overwrite: fresh[0],
                transpose_a: self.transpose_b,
                transpose_b: true,
                m: k,
                n: m,
                k: n,
                a: b,
                b: g,
            }
        } else {
            // dA = G op(B)^T, an m x k product.
            Product {
                overwrite: fresh[0],
                transpose_a: false,
                transpose_b: !self.transpose_b,
                m,
                n: k,
                k: n,
                a: g,
                b,
            }
        };
        let grad_b_product = if self.transpose_b {
            // B stored n x k: dB_stored = (op(A)^T G)^T = G^T op(A), an n x k product.
            Product {
                overwrite: fresh[1],
                transpose_a: true,
                transpose_b: self.transpose_a,
                m: n,
                n: k,
                k: m,
                a: g,
                b: a,
            }
        } else {
            // dB = op(A)^T G, a k x n product.
            Product {
                overwrite: fresh[1],
                transpose_a: !self.transpose_a,
                transpose_b: false,
                m: k,
                n,
                k: m,
                a,
                b: g,
            }
        };
        let [grad_a, grad_b] = grad_inputs else {
            unreachable!("matmul has two inputs")
        };
        input_gradients(
            grad_a.as_deref_mut(),
            grad_a_product,
            grad_b.as_deref_mut(),
            grad_b_product,
        );
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Matrix product `self * other`.
    ///
    /// ```
    /// use gumbelgrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(&Tensor::from_vec(1, 2, vec![1.0, 2.0])?);
    /// let b = tape.constant(&Tensor::from_vec(2, 1, vec![3.0, 4.0])?);
    /// assert_eq!(a.matmul(b).scalar()?, 11.0);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    pub fn matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(MatMul::default(), &[self, other])
    }

    /// `self * other^T` without copying `other`.
    pub fn matmul_transposed(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(
            MatMul {
                transpose_a: false,
                transpose_b: true,
            },
            &[self, other],
        )
    }

    /// `self^T * other` without copying `self`.
    pub fn transposed_matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape().record(
            MatMul {
                transpose_a: true,
                transpose_b: false,
            },
            &[self, other],
        )
    }
}

/// Writes the wanted gradients of a product's two inputs: `first_product` into `first`
/// and `second_product` into `second`, for those that are `Some`. When both are wanted
/// they run side by side (`Product::run_beside`): `first_product` on the calling thread,
/// `second_product` on a helper, which then takes `first_product`'s last bands. The two
/// backward products of `C = A B` (`G B^T` and `A^T G`) have the same number of
/// multiply-adds, but the one reading `B` transposed (`dX = G W^T` of a layer) also
/// packs all of `B`, so it goes first and gets the help. Shared by [`MatMul`] and
/// [`Linear`](crate::ops::linear::Linear).
pub(crate) fn input_gradients<T: Float>(
    first: Option<&mut Tensor<T>>,
    first_product: Product<'_, T>,
    second: Option<&mut Tensor<T>>,
    second_product: Product<'_, T>,
) {
    match (first, second) {
        (Some(first), Some(second)) => {
            let second = second.as_mut_slice();
            first_product.run_beside(first.as_mut_slice(), || second_product.run(second));
        }
        (first, second) => {
            if let Some(first) = first {
                first_product.run(first.as_mut_slice());
            }
            if let Some(second) = second {
                second_product.run(second.as_mut_slice());
            }
        }
    }
}
