//! The differentiable operations, one file per family.
//!
//! Each op is a small struct implementing [`Op`](crate::Op), with its forward pass and
//! its vector-Jacobian product side by side and the derivative in its doc comment. Each
//! file also adds the matching methods to [`Var`](crate::Var) (`x.relu()`,
//! `a.matmul(b)`, ...), so model code never names the structs.
//!
//! | file | ops |
//! |---|---|
//! | [`arith`] | `+ - * /` with broadcasting, negation, `scale`, `affine` |
//! | [`matmul`] | `matmul`, `matmul_transposed`, `transposed_matmul` |
//! | [`reduce`] | `sum`, `mean`, over everything, rows or columns |
//! | [`unary`] | `relu`, `leaky_relu`, `sigmoid`, `tanh`, `exp`, `ln`, `softplus`, `square`, `sqrt`, `pow` |
//! | [`softmax`] | grouped `softmax`, `log_softmax`, `logsumexp` |
//! | [`loss`] | `bce_with_logits` |
//! | [`linear`] | fused `linear` (`act(x W + b)`) and `bce_with_logits_sum_cols` |
//! | [`structure`] | `slice_cols`, `concat_cols`, `slice_rows`, `concat_rows` |
//! | [`argmax`] | `one_hot_argmax` (not differentiable) |

pub mod argmax;
pub mod arith;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod structure;
pub mod unary;
