//! The differentiable operations, one file per family.
//!
//! Each op is a small struct implementing [`Op`](crate::Op), with its forward pass and
//! its vector-Jacobian product side by side and the derivative in its doc comment. Each
//! file also adds the matching methods to [`Var`](crate::Var) (`x.relu()`,
//! `a.matmul(b)`, ...), so model code never names the structs.

pub mod arith;
pub mod matmul;
pub mod reduce;
pub mod unary;
