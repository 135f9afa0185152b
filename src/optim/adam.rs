//! Adam (Kingma & Ba 2015) with bias correction and optional L2 weight decay.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::float::Float;
use crate::kernels::per_isa::compiled_for_each_isa;
use crate::kernels::threads::for_each_shared;
use crate::nn::{Gradients, Parameters};
use crate::optim::{Optimizer, OptimizerState, check_hyper, export_slot, import_slot, zeros_like};
use crate::tensor::Tensor;

/// Values per chunk when the update is shared among threads (256 KB of f32 per array).
const CHUNK: usize = 1 << 16;

/// The per-step constants of the update.
struct AdamConstants<T> {
    beta1: T,
    beta2: T,
    one_minus_beta1: T,
    one_minus_beta2: T,
    step_size: T,
    sqrt_correction2: T,
    epsilon: T,
    weight_decay: Option<T>,
}

impl<T: Float> AdamConstants<T> {
    /// The update of one run of values: `m`, `v` and then `p`, element by element.
    /// Returns whether every updated `p` is finite (checked in the same pass, while
    /// the value is at hand, rather than by reading the parameters again later).
    /// f32 values take the build of this loop for the CPU's vector instructions
    /// ([`update_f32`]); the bits are the same.
    fn update(&self, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) -> bool {
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

/// `x`, or zero if `x` is subnormal (nonzero and smaller in magnitude than the smallest
/// normal number, `MIN_POSITIVE`). Applied to the first moment `m` as it is stored.
///
/// The first moment of a weight whose gradient is zero on most steps (a weight of a
/// pixel that is rarely on) decays by `beta1` a step, and on its way to zero spends
/// about 150 steps (f32, `beta1 = 0.9`) below `MIN_POSITIVE`, where x86 processors
/// compute a multiplication or a division with a subnormal operand in microcode, many
/// times slower. On binarised MNIST this made the update a third of a one-thread
/// training step. Set to zero instead, such an `m` loses a step
/// `lr / (1 - beta1^t) * m / (sqrt(v_hat) + eps)` smaller than
/// `lr * MIN_POSITIVE / ((1 - beta1^t) * eps)` (about 1e-33 with the defaults),
/// which rounds away against any weight above about 1e-26. The second moment is left
/// alone: it sits next to `eps` in the denominator, and with a small `eps` zeroing it
/// could make a step large. A comparison and a select, so the loop stays vectorised.
#[inline(always)]
fn flush_subnormal<T: Float>(x: T) -> T {
    if x.abs() < T::MIN_POSITIVE {
        T::ZERO
    } else {
        x
    }
}

/// Adam: per-parameter step sizes from running averages of the gradient and of its
/// square.
///
/// With more than one thread ([`num_threads`](crate::kernels::num_threads)) the update
/// is shared out in fixed chunks; it is elementwise, so the result is the same.
///
/// At step `t` (counting from 1), for every parameter `p` with gradient `g`:
///
/// ```text
/// g  <- g + weight_decay * p                   (optional L2 penalty, as torch.optim.Adam)
/// m  <- beta1 * m + (1 - beta1) * g            (first moment)
/// v  <- beta2 * v + (1 - beta2) * g^2          (second moment)
/// p  <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// The factors `1 - beta^t` undo the bias of `m` and `v` towards their zero start
/// (bias correction). The update is written exactly as PyTorch writes it, so both
/// agree to rounding, with one difference: an `m` that would be subnormal (below the
/// type's smallest normal number) is stored as zero, because x86 computes with
/// subnormals many times slower. The step it drops is below
/// `lr * MIN_POSITIVE / ((1 - beta1^t) * eps)`: about `1.2e-33` for f32 with `lr = 1e-3`
/// and the default `eps`.
///
/// [`Optimizer::step`] fails with [`Error::NonFiniteInput`](crate::Error::NonFiniteInput),
/// naming the parameter, when the update makes a parameter NaN or infinite (a
/// non-finite gradient, say); the update has been applied by then. Each value is checked
/// in the same pass that writes it.
///
/// ```
/// use gumbelgrad::nn::{Gradients, Parameters};
/// use gumbelgrad::optim::{Adam, Optimizer};
/// use gumbelgrad::Tensor;
/// let mut params = Parameters::<f64>::new();
/// let id = params.add("x", Tensor::scalar(1.0))?;
/// let mut adam = Adam::new(0.1);
/// adam.step(&mut params, &Gradients::from_tensors(vec![Tensor::scalar(0.5)]))?;
/// // the first step of Adam moves every coordinate by about lr, against the gradient
/// assert!((params.get(id).as_slice()[0] - 0.9).abs() < 1e-6);
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T: Float> {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    weight_decay: f64,
    steps: u64,
    first_moment: Vec<Tensor<T>>,
    second_moment: Vec<Tensor<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam with the usual defaults: `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`,
    /// no weight decay.
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
        }
    }

    /// Sets the decay rates of the two moving averages.
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets `eps`, added to the denominator.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets the L2 weight decay (added to the gradient; 0 = none).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self) -> Result<()> {
        let op = "Adam";
        check_hyper(
            op,
            "learning rate",
            self.learning_rate,
            self.learning_rate >= 0.0,
        )?;
        check_hyper(op, "beta1", self.beta1, (0.0..1.0).contains(&self.beta1))?;
        check_hyper(op, "beta2", self.beta2, (0.0..1.0).contains(&self.beta2))?;
        check_hyper(op, "epsilon", self.epsilon, self.epsilon > 0.0)?;
        check_hyper(
            op,
            "weight decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
        )
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut Parameters<T>, grads: &Gradients<T>) -> Result<()> {
        self.validate()?;
        grads.check_matches(params, "Adam::step")?;
        if self.first_moment.len() != params.len() {
            self.first_moment = zeros_like(params);
            self.second_moment = zeros_like(params);
        }
        self.steps += 1;
        let t = self.steps as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        let step_size = T::from_f64(self.learning_rate / correction1);
        let sqrt_correction2 = T::from_f64(correction2.sqrt());
        let (beta1, beta2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let (one_minus_beta1, one_minus_beta2) =
            (T::from_f64(1.0 - self.beta1), T::from_f64(1.0 - self.beta2));
        let constants = AdamConstants {
            beta1,
            beta2,
            one_minus_beta1,
            one_minus_beta2,
            step_size,
            sqrt_correction2,
            epsilon: T::from_f64(self.epsilon),
            weight_decay: (self.weight_decay != 0.0).then(|| T::from_f64(self.weight_decay)),
        };
        let finite: Vec<AtomicBool> = (0..params.len()).map(|_| AtomicBool::new(true)).collect();
        let tensors = params
            .iter_mut()
            .zip(grads.as_slice())
            .zip(self.first_moment.iter_mut().zip(&mut self.second_moment))
            .zip(&finite)
            .map(|((((_, p), g), (m, v)), finite)| {
                (
                    p.as_mut_slice(),
                    g.as_slice(),
                    m.as_mut_slice(),
                    v.as_mut_slice(),
                    finite,
                )
            });
        // Fixed chunks shared out among the threads: each value is updated by the same
        // expression whoever takes its chunk, so the result is the same for every thread
        // count.
        let chunks = tensors.flat_map(|(p, g, m, v, finite)| {
            p.chunks_mut(CHUNK)
                .zip(g.chunks(CHUNK))
                .zip(m.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK)))
                .map(move |chunk| (chunk, finite))
        });
        for_each_shared(chunks, |(((p, g), (m, v)), finite)| {
            if !constants.update(p, g, m, v) {
                finite.store(false, Ordering::Relaxed);
            }
        });
        match finite
            .iter()
            .position(|finite| !finite.load(Ordering::Relaxed))
        {
            None => Ok(()),
            Some(index) => {
                let (name, value) = params.iter().nth(index).expect("one flag per parameter");
                value.check_finite(&format!("parameter {name} after the Adam update"))
            }
        }
    }

    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self, params: &Parameters<T>) -> OptimizerState<T> {
        let mut tensors = export_slot("adam.m", params, &self.first_moment);
        tensors.extend(export_slot("adam.v", params, &self.second_moment));
        OptimizerState {
            steps: self.steps,
            tensors,
        }
    }

    fn load_state(&mut self, params: &Parameters<T>, state: &OptimizerState<T>) -> Result<()> {
        let first = import_slot("adam.m", params, state)?;
        let second = import_slot("adam.v", params, state)?;
        self.first_moment = first;
        self.second_moment = second;
        self.steps = state.steps;
        Ok(())
    }
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
