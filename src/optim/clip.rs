//! Clipping gradients by their global norm.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::nn::Gradients;

/// If the norm of all gradients together, `sqrt(sum of every g^2)`, exceeds
/// `max_norm`, scales them all by `max_norm / norm` (keeping their direction).
/// Returns the norm *before* clipping, worth logging.
///
/// Errors if `max_norm` is not finite and positive, or a gradient is NaN or infinite.
///
/// ```
/// use gumbelgrad::nn::Gradients;
/// use gumbelgrad::optim::clip_global_norm;
/// use gumbelgrad::Tensor;
/// let mut g = Gradients::from_tensors(vec![Tensor::<f64>::from_vec(1, 2, vec![3.0, 4.0])?]);
/// let norm = clip_global_norm(&mut g, 1.0)?;
/// assert_eq!(norm, 5.0);
/// assert!((g.global_norm() - 1.0).abs() < 1e-12); // same direction, norm 1
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
pub fn clip_global_norm<T: Float>(grads: &mut Gradients<T>, max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::invalid_argument(
            "clip_global_norm",
            format!("max_norm must be finite and > 0, got {max_norm}"),
        ));
    }
    let norm = grads.global_norm();
    if !norm.is_finite() {
        return Err(Error::NonFiniteInput {
            what: "gradients passed to clip_global_norm".to_string(),
        });
    }
    if norm > max_norm {
        let scale = T::from_f64(max_norm / norm);
        for g in grads.as_mut_slice() {
            g.as_mut_slice().iter_mut().for_each(|x| *x *= scale);
        }
    }
    Ok(norm)
}
