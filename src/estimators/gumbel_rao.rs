//! Gumbel-Rao (GR-MC`K`): straight-through Gumbel-Softmax Rao-Blackwellised over the
//! Gumbel noise given the sample (Paulus, Maddison and Krause, "Rao-Blackwellizing the
//! Straight-Through Gumbel-Softmax Gradient Estimator", ICLR 2021, arXiv 2010.04838).
//!
//! ST Gumbel-Softmax draws `D = one_hot(argmax(x + G))` and back-propagates through
//! `softmax((x + G)/tau)`. Its estimate depends on `G` as well as on `D`; Gumbel-Rao
//! replaces it by a Monte Carlo estimate of its conditional expectation given `D`,
//! averaging the backward over `K` fresh noises `G^(k) ~ p(G | argmax(x + G) = D)`:
//!
//! ```text
//! forward:   z = D
//! backward:  grad_x = (1/K) sum_k (1/tau) J(y_k) grad_z,   y_k = softmax((x + G^(k))/tau),
//!            J(y) = diag(y) - y y^T
//! ```
//!
//! The conditional noise is the crate's truncated-Gumbel construction
//! ([`noise::conditional_gumbel`]): with `theta = softmax(x)` and fresh `E_j ~ Exp(1)`,
//! the perturbed log-probabilities are `-ln E_b` at the sampled class `b` and
//! `-logaddexp(ln E_j - ln theta_j, ln E_b)` elsewhere, so their argmax is `b`; here
//! `G^(k)` is that minus `ln theta`, held constant. The derivative is **not** taken
//! through `G^(k)` (as in both public reference implementations; the paper's text says
//! the total derivative through `G^(k)`, a conflict the reference sheet leaves open),
//! so by the tower property `E[GR-MC K | D] = E[ST-GS | D]`: GR has **the same bias
//! as ST-GS** and a variance that falls with `K` (`K = 1` is ST-GS in distribution).
//! One cost evaluation; `K * N * classes` uniforms per example; the `K` softmaxes are
//! the only extra work.
//!
//! Binary units (`group_size = 1`) run as two-class categoricals with logits `[0, phi]`
//! (the sample is the `b` column of each pair), as in the score-function family.

use rand::RngCore;

use super::gumbel_softmax::tempered_softmax_group;
use super::injected::check_uniforms;
use super::score::poisoned_estimate;
use super::{
    Estimate, GradientEstimator, InjectedNoise, LatentKinds, fail, noise, relaxed_estimate,
    sample_groups_or_units, sample_like_logits, straight_through_estimate_with_noise,
};
use crate::error::{Error, Result, check_temperature_for};
use crate::float::Float;
use crate::kernels::softmax::argmax_groups;
use crate::op::{Op, expect_arity};
use crate::tape::Var;
use crate::tensor::{Shape, Tensor};

/// The Gumbel-Rao node: inputs `logits [B, N*K]`, `sample [B, N*K]` (one-hot) and
/// `noise [B*m, N*K]` (`m` conditional noises per row, example-major: row `r*m + k`);
/// output the sample.
///
/// Backward: `grad_logits_r += (1/m) sum_k (1/tau) y_rk ⊙ (grad_r - <grad_r, y_rk>)` per
/// group, with `y_rk = softmax((logits_r + noise_{r*m+k})/tau)` recomputed. The sample
/// and the noise get no gradient.
#[derive(Debug, Clone, Copy)]
pub struct GumbelRaoOp<T: Float> {
    /// The temperature of the backward softmaxes, `tau > 0`.
    pub temperature: T,
    /// Classes per categorical variable.
    pub group_size: usize,
}

impl<T: Float> Op<T> for GumbelRaoOp<T> {
    fn name(&self) -> &'static str {
        "gumbel_rao"
    }
    fn describe(&self) -> String {
        format!(
            "gumbel_rao(tau={}, group={})",
            self.temperature, self.group_size
        )
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        expect_arity("gumbel_rao", inputs, 3)?;
        check_temperature_for::<T>("gumbel_rao", self.temperature.to_f64())?;
        let (logits, noise) = (inputs[0], inputs[2]);
        sample_like_logits("gumbel_rao", logits, inputs[1], self.group_size)?;
        // An empty batch has empty noise (`is_multiple_of(0)` holds only for 0).
        if noise.cols != logits.cols
            || (logits.rows > 0 && noise.rows == 0)
            || !noise.rows.is_multiple_of(logits.rows)
        {
            return Err(Error::shape_mismatch(
                "gumbel_rao",
                logits,
                noise,
                "the noise must have the logits' columns and a positive multiple of their rows (none for an empty batch)",
            ));
        }
        Ok(logits)
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        output.as_mut_slice().copy_from_slice(inputs[1].as_slice());
    }
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        grad_output: &Tensor<T>,
        grad_inputs: &mut [Option<&mut Tensor<T>>],
    ) {
        let Some(grad) = grad_inputs[0].as_deref_mut() else {
            return;
        };
        let (logits, noise) = (inputs[0], inputs[2]);
        if logits.rows() == 0 {
            return;
        }
        let m = noise.rows() / logits.rows();
        let k = self.group_size;
        let inverse_tau = T::ONE / self.temperature;
        let weight = inverse_tau / T::from_f64(m as f64);
        let mut y = vec![T::ZERO; k];
        for r in 0..logits.rows() {
            let (x, go) = (logits.row(r), grad_output.row(r));
            let gx = grad.row_mut(r);
            for j in 0..m {
                let g = noise.row(r * m + j);
                for start in (0..x.len()).step_by(k) {
                    let span = start..start + k;
                    tempered_softmax_group(&x[span.clone()], &g[span.clone()], inverse_tau, &mut y);
                    let inner: T = go[span.clone()].iter().zip(&y).map(|(&a, &b)| a * b).sum();
                    for i in 0..k {
                        gx[start + i] += weight * y[i] * (go[start + i] - inner);
                    }
                }
            }
        }
    }
}

/// Records a [`GumbelRaoOp`] (invalid temperatures and shapes become a tape error).
pub fn gumbel_rao<'t, T: Float>(
    logits: Var<'t, T>,
    sample: Var<'t, T>,
    noise: Var<'t, T>,
    temperature: f64,
    group_size: usize,
) -> Var<'t, T> {
    if let Err(error) = check_temperature_for::<T>("gumbel_rao", temperature) {
        return fail(logits.tape(), error);
    }
    logits.tape().record(
        GumbelRaoOp {
            temperature: T::from_f64(temperature),
            group_size,
        },
        &[logits, sample, noise],
    )
}

/// A categorical sample and `num_samples` conditional Gumbel noises per row for it:
/// returns `(one_hot [B, C], noise [B*num_samples, C])`, the noise example-major and
/// shifted so that `logits + noise` has its group maximum at the sampled class.
pub fn sample_with_conditional_noise<R: rand::Rng + ?Sized>(
    logits: &Tensor<f64>,
    group_size: usize,
    num_samples: usize,
    rng: &mut R,
) -> Result<(Tensor<f64>, Tensor<f64>)> {
    let sample = noise::sample_categorical(logits, group_size, rng)?;
    let uniforms: Vec<Tensor<f64>> = (0..num_samples)
        .map(|_| noise::uniform(logits.rows(), logits.cols(), rng))
        .collect();
    let shifted = conditional_noise(logits, &sample.classes, group_size, &uniforms)?;
    Ok((sample.one_hot, shifted))
}

/// The noise input of [`GumbelRaoOp`] for the sampled `classes` (one per group), from
/// one tensor of uniforms shaped like `logits` per conditional draw: each draw's
/// perturbed log-probabilities ([`noise::conditional_gumbel_from_uniform`]) minus the
/// log-probabilities, interleaved example-major (row `r * draws + k`).
fn conditional_noise(
    logits: &Tensor<f64>,
    classes: &[usize],
    group_size: usize,
    uniforms: &[Tensor<f64>],
) -> Result<Tensor<f64>> {
    let (rows, cols) = (logits.rows(), logits.cols());
    let mut log_probs = vec![0.0; logits.len()];
    crate::kernels::softmax::log_softmax_groups(logits.as_slice(), &mut log_probs, group_size);
    let draws = uniforms
        .iter()
        .map(|v| noise::conditional_gumbel_from_uniform(logits, v, classes, group_size))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows * draws.len() * cols);
    for r in 0..rows {
        for draw in &draws {
            let lp = &log_probs[r * cols..(r + 1) * cols];
            out.extend(draw.row(r).iter().zip(lp).map(|(z, l)| z - l));
        }
    }
    Tensor::from_vec(rows * draws.len(), cols, out)
}

/// The one-hot sample and the conditional noise of [`GumbelRaoOp`] at injected noise:
/// the Gumbel-max sample of `u` (or `gumbel`), and the conditional noise of the
/// uniforms `v`, `[B*m, C]` example-major (row `r*m + k` is draw `k` of row `r`) for
/// `m = num_samples`. A [`Sample`](InjectedNoise::Sample) is an error: the conditional
/// draws need uniforms of their own.
fn injected_sample_and_noise<T: Float>(
    logits: &Tensor<f64>,
    group_size: usize,
    num_samples: usize,
    injected: &InjectedNoise,
    op: &str,
) -> Result<(Tensor<f64>, Tensor<f64>)> {
    let v = match injected {
        InjectedNoise::Sample(_) => {
            return Err(Error::invalid_argument(
                op,
                "this estimator draws conditional noise given the sample: inject `Uniforms` \
                 or `Gumbel` with `v` of num_samples rows per example, not a `Sample`",
            ));
        }
        InjectedNoise::Uniforms { v, .. } | InjectedNoise::Gumbel { v, .. } => v,
    };
    let (rows, cols) = (logits.rows(), logits.cols());
    if v.shape() != Shape::new(rows * num_samples, cols) {
        return Err(Error::shape_mismatch(
            op,
            logits.shape(),
            v.shape(),
            format!(
                "`v` must hold {num_samples} rows of uniforms per example (example-major), \
                 {} x {cols}",
                rows * num_samples
            ),
        ));
    }
    check_uniforms::<T>(op, "v", v)?;
    let sample = injected.hard_sample(logits, group_size, 1, op)?;
    // The class of each one-hot group is its argmax.
    let mut classes = vec![0; sample.len() / group_size];
    argmax_groups(sample.as_slice(), group_size, &mut classes);
    // Draw k of every row, as one tensor shaped like the logits.
    let uniforms: Vec<Tensor<f64>> = (0..num_samples)
        .map(|k| {
            let values = (0..rows)
                .flat_map(|r| v.row(r * num_samples + k).iter().copied())
                .collect();
            Tensor::from_vec(rows, cols, values)
        })
        .collect::<Result<_>>()?;
    let shifted = conditional_noise(logits, &classes, group_size, &uniforms)?;
    Ok((sample, shifted))
}

/// The Gumbel-Rao estimator GR-MC`K` (see the module documentation). **Biased** (as
/// ST-GS), with less variance than ST-GS.
///
/// ```
/// use gumbelgrad::estimators::{GradientEstimator, GumbelRao};
/// use gumbelgrad::{Tape, Tensor};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let mut estimator = GumbelRao::new(0.5, 10)?;
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(1, 3, vec![0.5, -0.2, 1.0])?);
/// let weights = tape.constant(&Tensor::from_vec(1, 3, vec![1.0, -2.0, 0.5])?);
/// let estimate = estimator.estimate(logits, 3, &mut |z| (z * weights).sum_cols().square(), &mut rng);
/// assert_eq!(estimate.sample.value()?.sum(), 1.0); // the forward is one-hot
/// tape.backward(estimate.loss)?;
/// assert!(GumbelRao::new(0.5, 0).is_err());
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GumbelRao {
    temperature: f64,
    num_samples: usize,
}

impl GumbelRao {
    /// GR-MC`num_samples` at `temperature`: an error unless the temperature is finite
    /// and positive and `num_samples >= 1`.
    pub fn new(temperature: f64, num_samples: usize) -> Result<Self> {
        check_temperature_for::<f64>("GumbelRao::new", temperature)?;
        if num_samples == 0 {
            return Err(Error::invalid_argument(
                "GumbelRao::new",
                "num_samples (K conditional noises per sample) must be at least 1",
            ));
        }
        Ok(GumbelRao {
            temperature,
            num_samples,
        })
    }
    /// The estimator's name, `"gumbel-rao"`.
    pub fn name(&self) -> &'static str {
        "gumbel-rao"
    }
    /// The temperature of the backward softmaxes.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }
    /// Changes the temperature (for schedules); rejects invalid values.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<f64>("GumbelRao::set_temperature", temperature)?;
        self.temperature = temperature;
        Ok(())
    }
    /// Conditional noises `K` per sample.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// The node on the sample and conditional noise `draw` makes from the logits'
    /// values (drawn from the caller's generator, or injected).
    fn node<'t, T: Float>(
        &self,
        logits: Var<'t, T>,
        group_size: usize,
        draw: impl FnOnce(&Tensor<f64>) -> Result<(Tensor<f64>, Tensor<f64>)>,
    ) -> Var<'t, T> {
        let values = match logits.value() {
            Ok(values) => values.cast::<f64>(),
            Err(_) => return logits,
        };
        match draw(&values) {
            Ok((sample, noise)) => {
                let tape = logits.tape();
                let sample = tape.constant(&sample.cast::<T>());
                let noise = tape.constant(&noise.cast::<T>());
                gumbel_rao(logits, sample, noise, self.temperature, group_size)
            }
            Err(error) => fail(logits.tape(), error),
        }
    }
}

impl<T: Float> GradientEstimator<T> for GumbelRao {
    /// A clone: this estimator keeps no state between calls.
    fn shard_copy(&self) -> Option<Box<dyn GradientEstimator<T> + Send>> {
        Some(Box::new(self.clone()))
    }

    fn name(&self) -> &'static str {
        GumbelRao::name(self)
    }
    fn is_unbiased(&self) -> bool {
        false
    }
    fn gradient_through_sample(&self) -> bool {
        true
    }
    /// Categorical groups, and binary units as two-class groups.
    fn latent_kinds(&self) -> LatentKinds {
        LatentKinds::BOTH
    }
    fn temperature(&self) -> Option<f64> {
        Some(GumbelRao::temperature(self))
    }
    /// Checks the temperature for `T` (the tape's float type), then sets it.
    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<T>("GumbelRao::set_temperature", temperature)?;
        GumbelRao::set_temperature(self, temperature)
    }
    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let sample = GradientEstimator::sample(self, logits, group_size, rng);
        if sample.is_poisoned() {
            return poisoned_estimate(sample);
        }
        relaxed_estimate(sample, cost)
    }
    fn sample<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        rng: &mut dyn RngCore,
    ) -> Var<'t, T> {
        sample_groups_or_units(logits, group_size, |logits, k| {
            self.node(logits, k, |values| {
                sample_with_conditional_noise(values, k, self.num_samples, rng)
            })
        })
    }
    /// At the Gumbel-max sample of `u` (or `gumbel`), with the conditional draws from
    /// `v`, which holds `num_samples` rows of uniforms per example (example-major: row
    /// `r * num_samples + k`), shaped like the logits otherwise. Binary units take both
    /// in the two-class layout of [`InjectedNoise`]. A `Sample` is an error.
    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        _rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        let name = GumbelRao::name(self);
        straight_through_estimate_with_noise(
            logits,
            group_size,
            noise,
            name,
            cost,
            |logits, k, noise| {
                self.node(logits, k, |values| {
                    injected_sample_and_noise::<T>(values, k, self.num_samples, noise, name)
                })
            },
        )
    }
}
