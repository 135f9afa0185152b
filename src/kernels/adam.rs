//! The Adam update of one run of parameters, as a loop over slices:
//! [`AdamConstants::update`], the loop [`optim::Adam`](crate::optim::Adam) shares out
//! among the threads in fixed chunks.
//!
//! Per value, with the constants of step `t`:
//!
//! ```text
//! g <- g + weight_decay * p                  (if there is a weight decay)
//! m <- flush_subnormal(beta1 * m + (1 - beta1) * g)
//! v <- beta2 * v + (1 - beta2) * g^2
//! p <- p - step_size * m / (sqrt(v) / sqrt_correction2 + eps)
//! ```
//!
//! `flush_subnormal` ([`float::flush_subnormal`](crate::float::flush_subnormal)) stores
//! a first moment that would be subnormal as zero, so that a weight whose gradient is
//! zero on most steps does not send the loop into the processor's slow subnormal path
//! for about 150 steps (f32, `beta1 = 0.9`). The step that drops is below
//! `lr * MIN_POSITIVE / ((1 - beta1^t) * eps)` (about 1e-33 with the defaults), which
//! rounds away against any weight above about 1e-26. The second moment is left alone:
//! it sits next to `eps` in the denominator, and with a small `eps` zeroing it could
//! make a step large.
//!
//! It reads four arrays and writes three, so it is bound by memory once it is
//! vectorised; the f32 loop is built for AVX-512 and AVX2 ([`per_isa`](super::per_isa))
//! because the square root and the division kept the baseline SSE2 build bound by
//! arithmetic. Every build gives the same bits.

use crate::float::{Float, flush_subnormal};
use crate::kernels::per_isa::compiled_for_each_isa;

/// The constants of one step of Adam, as the loop uses them (the optimiser computes
/// them from its hyperparameters and the step count).
pub(crate) struct AdamConstants<T> {
    /// Decay of the first moment.
    pub beta1: T,
    /// Decay of the second moment.
    pub beta2: T,
    /// `1 - beta1`.
    pub one_minus_beta1: T,
    /// `1 - beta2`.
    pub one_minus_beta2: T,
    /// `lr / (1 - beta1^t)`: the learning rate with the first moment's bias correction.
    pub step_size: T,
    /// `sqrt(1 - beta2^t)`: the second moment's bias correction, under the root.
    pub sqrt_correction2: T,
    /// Added to the denominator.
    pub epsilon: T,
    /// The L2 weight decay added to the gradient, if any.
    pub weight_decay: Option<T>,
}

impl<T: Float> AdamConstants<T> {
    /// The update of one run of values: `m`, `v` and then `p`, element by element.
    /// Returns whether every updated `p` is finite (checked in the same pass, while
    /// the value is at hand, rather than by reading the parameters again later).
    /// f32 values take the build of this loop for the CPU's vector instructions
    /// ([`update_f32`]); the bits are the same.
    pub(crate) fn update(&self, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) -> bool {
        if let (Some(constants), Some(p), Some(g), Some(m), Some(v)) = (
            self.as_f32(),
            T::as_f32_mut(p),
            T::as_f32(g),
            T::as_f32_mut(m),
            T::as_f32_mut(v),
        ) {
            return update_f32(&constants, p, g, m, v);
        }
        self.update_here(p, g, m, v)
    }

    /// The same constants in f32 (`None` unless `T` is f32).
    fn as_f32(&self) -> Option<AdamConstants<f32>> {
        let one = |x: T| T::as_f32(std::slice::from_ref(&x)).map(|x| x[0]);
        Some(AdamConstants {
            beta1: one(self.beta1)?,
            beta2: one(self.beta2)?,
            one_minus_beta1: one(self.one_minus_beta1)?,
            one_minus_beta2: one(self.one_minus_beta2)?,
            step_size: one(self.step_size)?,
            sqrt_correction2: one(self.sqrt_correction2)?,
            epsilon: one(self.epsilon)?,
            weight_decay: match self.weight_decay {
                Some(decay) => Some(one(decay)?),
                None => None,
            },
        })
    }

    /// [`AdamConstants::update`] as plain Rust, for every instruction set.
    #[inline(always)]
    fn update_here(&self, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) -> bool {
        let mut finite = true;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
            let g = match self.weight_decay {
                Some(decay) => g + decay * *p,
                None => g,
            };
            *m = flush_subnormal(self.beta1 * *m + self.one_minus_beta1 * g);
            *v = self.beta2 * *v + self.one_minus_beta2 * g * g;
            let denominator = v.sqrt() / self.sqrt_correction2 + self.epsilon;
            *p -= self.step_size * *m / denominator;
            finite &= p.is_finite();
        }
        finite
    }
}

compiled_for_each_isa! {
    /// [`AdamConstants::update`] of f32 values, built for the CPU's widest vectors.
    fn update_f32 / update_f32_on(
        constants: &AdamConstants<f32>, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]
    ) -> bool = update_f32_body;
}

/// The loop [`update_f32`] compiles once per instruction set.
#[inline(always)]
fn update_f32_body(
    constants: &AdamConstants<f32>,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> bool {
    constants.update_here(p, g, m, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::Isa;

    #[test]
    fn every_instruction_set_gives_the_portable_bits() {
        // 1,000 values (a vectorised body and a remainder): gradients of all sizes,
        // zeros, a first moment about to go subnormal, and one NaN gradient.
        let n = 1000;
        let value = |i: usize, scale: f32| ((i * 7919 % 1013) as f32 / 506.0 - 1.0) * scale;
        let mut g: Vec<f32> = (0..n)
            .map(|i| value(i, 10f32.powi(i as i32 % 9 - 6)))
            .collect();
        g[7] = 0.0;
        let p: Vec<f32> = (0..n).map(|i| value(i + 3, 1.0)).collect();
        let mut m: Vec<f32> = (0..n).map(|i| value(i + 5, 1e-3)).collect();
        m[7] = 1.2e-38;
        let v: Vec<f32> = (0..n).map(|i| value(i + 9, 1e-4).abs()).collect();
        for weight_decay in [None, Some(1e-2)] {
            for nan in [false, true] {
                let mut g = g.clone();
                if nan {
                    g[500] = f32::NAN;
                }
                let constants = AdamConstants {
                    beta1: 0.9,
                    beta2: 0.999,
                    one_minus_beta1: 0.1,
                    one_minus_beta2: 1.0 - 0.999,
                    step_size: 1e-3 / (1.0 - 0.9f32.powi(3)),
                    sqrt_correction2: (1.0 - 0.999f32.powi(3)).sqrt(),
                    epsilon: 1e-8,
                    weight_decay,
                };
                let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let run = |isa: Isa| {
                    let (mut p, mut m, mut v) = (p.clone(), m.clone(), v.clone());
                    let finite = update_f32_on(isa, &constants, &mut p, &g, &mut m, &mut v);
                    (finite, bits(&p), bits(&m), bits(&v))
                };
                let portable = run(Isa::Portable);
                assert_eq!(portable.0, !nan);
                if weight_decay.is_none() {
                    assert_eq!(portable.2[7], 0, "the subnormal first moment is flushed");
                }
                let (mut p, mut m, mut v) = (p.clone(), m.clone(), v.clone());
                let finite = constants.update_here(&mut p, &g, &mut m, &mut v);
                assert!((finite, bits(&p), bits(&m), bits(&v)) == portable);
                for isa in [Isa::Avx2, Isa::Avx512] {
                    assert!(run(isa) == portable, "{isa:?}");
                }
            }
        }
    }
}
