//! The public gradient checker: the tape's gradients against finite differences.
//!
//! [`gradcheck`] takes any function of one or more tensors, built from tape ops
//! (built-in or your own), and compares the gradient the tape computes with a numerical
//! estimate from central finite differences, element by element, in `f64`.
//!
//! A function with a non-scalar output is first reduced to a scalar by a fixed random
//! projection `L = sum_ij w_ij f(x)_ij`, so every output element's derivative is
//! checked at once (`w` is drawn from a seed, so checks are reproducible).
//!
//! ```
//! use gumbelgrad::{gradcheck, GradcheckOptions, Tensor};
//! let x = Tensor::from_vec(2, 2, vec![0.5, -1.0, 2.0, 0.25])?;
//! let report = gradcheck(&[x], GradcheckOptions::default(), |_tape, v| v[0] * v[0] * v[0])?;
//! assert!(report.max_rel_error < 1e-8, "{report}");
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::fmt;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};
use crate::op::{Op, expect_arity};
use crate::tape::{Tape, Var};
use crate::tensor::{Shape, Tensor};

/// Settings for [`gradcheck`].
#[derive(Debug, Clone, Copy)]
pub struct GradcheckOptions {
    /// Finite-difference step, relative to `max(1, |x|)`.
    pub step: f64,
    /// Seed of the random projection of a non-scalar output.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: 1e-4,
            seed: 0x6772_6164,
        }
    }
}

/// Where the worst disagreement was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mismatch {
    /// Which input (index into the `inputs` slice).
    pub input: usize,
    /// Row of the element.
    pub row: usize,
    /// Column of the element.
    pub col: usize,
    /// The tape's gradient there.
    pub analytic: f64,
    /// The finite-difference estimate there.
    pub numeric: f64,
}

/// The outcome of a [`gradcheck`].
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Largest `|analytic - numeric|` over all checked elements.
    pub max_abs_error: f64,
    /// Largest `|analytic - numeric| / max(1, |analytic|, |numeric|)`: relative for
    /// large gradients, absolute for gradients below 1 (where relative error is
    /// meaningless near zero).
    pub max_rel_error: f64,
    /// The element with the largest relative error.
    pub worst: Option<Mismatch>,
    /// How many elements were checked.
    pub elements: usize,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck over {} elements: max abs error {:.3e}, max rel error {:.3e}",
            self.elements, self.max_abs_error, self.max_rel_error
        )?;
        if let Some(w) = &self.worst {
            write!(
                f,
                " (worst at input {} [{}, {}]: tape {:.12e} vs finite differences {:.12e})",
                w.input, w.row, w.col, w.analytic, w.numeric
            )?;
        }
        Ok(())
    }
}

/// `L = sum_ij w_ij x_ij` for fixed weights `w`.  `dL/dx = w`.
#[derive(Debug, Clone)]
struct Projection {
    weights: Tensor<f64>,
}

impl Op<f64> for Projection {
    fn name(&self) -> &'static str {
        "gradcheck_projection"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("gradcheck_projection", inputs, 1)?;
        if inputs[0] != self.weights.shape() {
            return Err(Error::shape_mismatch(
                "gradcheck_projection",
                inputs[0],
                self.weights.shape(),
                "the function's output shape changed between calls",
            ));
        }
        Ok(Shape::SCALAR)
    }
    fn forward(&self, inputs: &[&Tensor<f64>], output: &mut Tensor<f64>) {
        output.as_mut_slice()[0] = project(inputs[0], &self.weights);
    }
    fn backward(
        &self,
        _inputs: &[&Tensor<f64>],
        _output: &Tensor<f64>,
        grad_output: &Tensor<f64>,
        grad_inputs: &mut [Option<&mut Tensor<f64>>],
    ) {
        let g = grad_output.as_slice()[0];
        if let Some(grad) = grad_inputs[0].as_deref_mut() {
            for (d, &w) in grad.as_mut_slice().iter_mut().zip(self.weights.as_slice()) {
                *d += g * w;
            }
        }
    }
}

fn project(values: &Tensor<f64>, weights: &Tensor<f64>) -> f64 {
    values
        .as_slice()
        .iter()
        .zip(weights.as_slice())
        .map(|(v, w)| v * w)
        .sum()
}

/// Compares the tape's gradient of `function` at `inputs` with central finite
/// differences (a fourth-order five-point stencil), and reports the worst error.
///
/// `function` receives the tape and one variable per input, and returns any variable
/// built from them. It must be deterministic: random noise has to be drawn outside and
/// passed in as a constant, so every evaluation sees the same noise.
///
/// Returns the tape's error if the function fails to record (a shape mismatch, say).
pub fn gradcheck<F>(
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
    function: F,
) -> Result<GradcheckReport>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    // Analytic gradient through the tape.
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.variable(x)).collect();
    let output = function(&tape, &vars);
    let shape = output.value()?.shape();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let weights = Tensor::random_uniform(shape.rows, shape.cols, -1.0, 1.0, &mut rng);
    let loss = tape.record(
        Projection {
            weights: weights.clone(),
        },
        &[output],
    );
    tape.backward(loss)?;
    let analytic: Vec<Tensor<f64>> = vars
        .iter()
        .zip(inputs)
        .map(|(v, x)| {
            v.grad()
                .unwrap_or_else(|| Tensor::zeros(x.rows(), x.cols()))
        })
        .collect();

    // Numerical gradient, one element at a time.
    let evaluate = |perturbed: &[Tensor<f64>]| -> Result<f64> {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = perturbed.iter().map(|x| tape.constant(x)).collect();
        let output = function(&tape, &vars).value()?;
        if output.shape() != shape {
            return Err(Error::shape_mismatch(
                "gradcheck",
                shape,
                output.shape(),
                "the function's output shape changed between calls",
            ));
        }
        Ok(project(&output, &weights))
    };
    let mut perturbed = inputs.to_vec();
    let mut report = GradcheckReport {
        max_abs_error: 0.0,
        max_rel_error: 0.0,
        worst: None,
        elements: 0,
    };
    for (input, grad) in analytic.iter().enumerate() {
        for index in 0..inputs[input].len() {
            let original = inputs[input].as_slice()[index];
            let h = options.step * original.abs().max(1.0);
            let mut at = |offset: f64| -> Result<f64> {
                perturbed[input].as_mut_slice()[index] = original + offset;
                evaluate(&perturbed)
            };
            let numeric =
                (-at(2.0 * h)? + 8.0 * at(h)? - 8.0 * at(-h)? + at(-2.0 * h)?) / (12.0 * h);
            perturbed[input].as_mut_slice()[index] = original;

            let analytic_value = grad.as_slice()[index];
            let abs_error = (analytic_value - numeric).abs();
            let rel_error = abs_error / analytic_value.abs().max(numeric.abs()).max(1.0);
            report.elements += 1;
            report.max_abs_error = report.max_abs_error.max(abs_error);
            if rel_error >= report.max_rel_error || !rel_error.is_finite() {
                report.max_rel_error = rel_error;
                let cols = inputs[input].cols().max(1);
                report.worst = Some(Mismatch {
                    input,
                    row: index / cols,
                    col: index % cols,
                    analytic: analytic_value,
                    numeric,
                });
            }
        }
    }
    Ok(report)
}
