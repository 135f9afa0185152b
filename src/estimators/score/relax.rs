//! RELAX (Grathwohl, Choi, Wu, Roeder and Duvenaud, ICLR 2018): REBAR with a learned
//! surrogate in its control variate (arXiv 1711.00123).
//!
//! With `b`, `z`, `z~` as in [REBAR](super::Rebar) and any differentiable surrogate
//! `c(z)`,
//!
//! ```text
//! g = [f(b) - c(z~)] d log p(b) + d c(z) - d c(z~)
//! ```
//!
//! is **unbiased** for the same reason as REBAR (`E[d c(z)] = E[c(z~) d log p(b)] +
//! E[d c(z~)]`), whatever `c` is. Here, as in the paper's discrete experiments, the
//! surrogate is REBAR's relaxation plus a small network on the relaxed sample:
//!
//! ```text
//! c(z) = eta f(sigma(z)) + r_phi(sigma(z)),     r_phi(s) = w2 . tanh(W s + b1) + b2,
//! sigma(z) = softmax(z / tau)
//! ```
//!
//! so `g = g_rebar + g_r` with `g_r = -r(s~)(b - p) + J_s^T grad r(s) - J_s~^T grad r(s~)`,
//! where `s = sigma(z)`, `s~ = sigma(z~)` and `J` are their Jacobians in the logits.
//! Variance: RELAX can only do better than REBAR at its optimum, because `r = 0` is
//! REBAR; the network learns the part of `f` the relaxation misses.
//!
//! # Tuning `eta`, `tau` and `phi` by the variance, without double-backward
//! All parameters descend `V = E[|g|^2]` (the mean is fixed, so this is the variance):
//! - `eta` exactly and `ln tau` by a central difference under common random numbers,
//!   as in REBAR;
//! - `phi` **exactly, by hand**: `r_phi` and the relaxation Jacobians are computed here
//!   in plain `f64` (the user's cost does not enter `g_r`), so with `G` the current
//!   estimate, `dV/dphi = E[2 G . dg_r/dphi]` is
//!   `2 E[ -(G . (b - p)) dr(s~)/dphi + d<u, grad r(s)>/dphi - d<u~, grad r(s~)>/dphi ]`
//!   with `u = J_s G`, `u~ = J_s~ G` (Jacobian-vector products; `G` held fixed). For the
//!   one-hidden-layer network these derivatives are a few lines
//!   ([`Surrogate::directional_parameter_gradient`]), checked against finite
//!   differences in the tests.
//!
//! # Why the surrogate is not an `nn::Mlp`
//! The estimate `g` contains the surrogate's *input* gradient `grad r(s)`, so
//! `dV/dphi` needs `d<u, grad r(s)>/dphi`, a mixed second derivative of the network.
//! The tape differentiates once: an [`Op`](crate::Op)'s backward writes plain tensors,
//! not tape variables, so a gradient computed on the tape cannot itself be
//! differentiated (no double backward). An `nn::Mlp` on the tape would give `r` and
//! `grad r` but not this term. So `r_phi` and its derivatives are written out here in
//! `f64`, and only its update goes through the crate's [`Adam`](crate::optim::Adam)
//! (with `eta` and `ln tau`, in one optimiser whose moments the checkpoint keeps).
//! With a double-backward tape, the surrogate would become an `nn::Mlp` and this
//! section would go.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::flat_adam::FlatAdam;
use super::injected_gradient::inject_gradient;
use super::rebar::{
    Draw, LOG_TEMPERATURE_RANGE, LOG_TEMPERATURE_STEP, Relaxed, TuningSchedule, mean_square,
    rebar_parts, rebar_pass,
};
use super::{constant_from, poisoned_estimate, read_logits};
use crate::error::{Result, check_temperature_for};
use crate::estimators::{
    Estimate, EstimatorState, GradientEstimator, InjectedNoise,
    bernoulli_as_categorical_with_noise, fail,
};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// RELAX's learned part of the surrogate: `r(s) = w2 . tanh(W s + b1) + b2`, with its
/// gradients written out by hand (no tape, so no need for double-backward).
///
/// Parameters are flattened as `W [hidden x inputs]` (row-major), `b1 [hidden]`,
/// `w2 [hidden]`, `b2`.
#[derive(Debug, Clone)]
pub struct Surrogate {
    inputs: usize,
    hidden: usize,
    params: Vec<f64>,
}

impl Surrogate {
    /// A network on `inputs` values with `hidden` tanh units: `W` uniform in
    /// `+-1/sqrt(inputs)`, `w2` uniform in `+-0.1`, biases 0.
    pub fn new(inputs: usize, hidden: usize, rng: &mut dyn RngCore) -> Self {
        let bound = 1.0 / (inputs.max(1) as f64).sqrt();
        let w = Tensor::<f64>::random_uniform(hidden, inputs, -bound, bound, rng);
        let w2 = Tensor::<f64>::random_uniform(1, hidden, -0.1, 0.1, rng);
        let mut params = w.as_slice().to_vec();
        params.extend(std::iter::repeat_n(0.0, hidden));
        params.extend_from_slice(w2.as_slice());
        params.push(0.0);
        Surrogate {
            inputs,
            hidden,
            params,
        }
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The flattened parameters.
    pub fn parameters(&self) -> &[f64] {
        &self.params
    }

    /// The flattened parameters, mutably.
    pub fn parameters_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// Hidden activations `h = tanh(W s + b1)`.
    fn hidden_units(&self, s: &[f64]) -> Vec<f64> {
        let (n, h) = (self.inputs, self.hidden);
        (0..h)
            .map(|k| {
                let row = &self.params[k * n..(k + 1) * n];
                let a: f64 =
                    row.iter().zip(s).map(|(w, x)| w * x).sum::<f64>() + self.params[h * n + k];
                a.tanh()
            })
            .collect()
    }

    fn w2(&self, k: usize) -> f64 {
        self.params[self.hidden * self.inputs + self.hidden + k]
    }

    /// `r(s)`.
    pub fn value(&self, s: &[f64]) -> f64 {
        let h = self.hidden_units(s);
        h.iter()
            .enumerate()
            .map(|(k, hk)| self.w2(k) * hk)
            .sum::<f64>()
            + self.params[self.params.len() - 1]
    }

    /// `grad_s r(s) = W^T (w2 ⊙ (1 - h^2))`.
    pub fn input_gradient(&self, s: &[f64]) -> Vec<f64> {
        let n = self.inputs;
        let units = self.hidden_units(s);
        let mut out = vec![0.0; n];
        for (k, hk) in units.iter().enumerate() {
            let delta = self.w2(k) * (1.0 - hk * hk);
            for (o, w) in out.iter_mut().zip(&self.params[k * n..(k + 1) * n]) {
                *o += delta * w;
            }
        }
        out
    }

    /// `d r(s) / d params`: `dW_kj = w2_k (1 - h_k^2) s_j`, `db1_k = w2_k (1 - h_k^2)`,
    /// `dw2_k = h_k`, `db2 = 1`.
    pub fn value_parameter_gradient(&self, s: &[f64]) -> Vec<f64> {
        let (n, h) = (self.inputs, self.hidden);
        let units = self.hidden_units(s);
        let mut out = vec![0.0; self.params.len()];
        for (k, hk) in units.iter().enumerate() {
            let delta = self.w2(k) * (1.0 - hk * hk);
            for j in 0..n {
                out[k * n + j] = delta * s[j];
            }
            out[h * n + k] = delta;
            out[h * n + h + k] = *hk;
        }
        out[h * n + 2 * h] = 1.0;
        out
    }

    /// `d/d params <u, grad_s r(s)>` for a fixed direction `u`. With `d_k = 1 - h_k^2`
    /// and `e_k = (W u)_k`, the directional derivative is `sum_k w2_k d_k e_k`, so
    /// `dW_kj = w2_k (d_k u_j - 2 h_k d_k e_k s_j)`, `db1_k = -2 w2_k h_k d_k e_k`,
    /// `dw2_k = d_k e_k`, `db2 = 0`.
    pub fn directional_parameter_gradient(&self, s: &[f64], u: &[f64]) -> Vec<f64> {
        let (n, h) = (self.inputs, self.hidden);
        let units = self.hidden_units(s);
        let mut out = vec![0.0; self.params.len()];
        for (k, hk) in units.iter().enumerate() {
            let row = &self.params[k * n..(k + 1) * n];
            let e: f64 = row.iter().zip(u).map(|(w, x)| w * x).sum();
            let d = 1.0 - hk * hk;
            let w2 = self.w2(k);
            for j in 0..n {
                out[k * n + j] = w2 * (d * u[j] - 2.0 * hk * d * e * s[j]);
            }
            out[h * n + k] = -2.0 * w2 * hk * d * e;
            out[h * n + h + k] = d * e;
        }
        out
    }
}

/// `(1/tau) s ⊙ (v - <v, s>)` per group: the VJP (and, the matrix being symmetric,
/// the JVP) of `s = softmax(x / tau)` with respect to `x`.
fn tempered_softmax_product(s: &[f64], v: &[f64], temperature: f64, group_size: usize) -> Vec<f64> {
    let mut out = vec![0.0; s.len()];
    for ((ss, vs), os) in s
        .chunks_exact(group_size)
        .zip(v.chunks_exact(group_size))
        .zip(out.chunks_exact_mut(group_size))
    {
        let inner: f64 = ss.iter().zip(vs).map(|(a, b)| a * b).sum();
        for ((o, &si), &vi) in os.iter_mut().zip(ss).zip(vs) {
            *o = si * (vi - inner) / temperature;
        }
    }
    out
}

/// One row's conditional relaxation `s~(logits) = softmax(z~(ln p(logits)) / tau)` and
/// its Jacobian products. `z~_i` depends only on `ln p_i`, with slope
/// `d z~_i / d ln p_i` from `conditional_slopes` (zero on the sampled class), and
/// `d ln p / d logits = I - 1 p^T` per group.
struct ConditionalRow<'a> {
    relaxed: &'a [f64],
    probabilities: &'a [f64],
    slope: &'a [f64],
    temperature: f64,
    group_size: usize,
}

impl ConditionalRow<'_> {
    /// `J^T v` with respect to the logits.
    fn vjp(&self, v: &[f64]) -> Vec<f64> {
        let w = tempered_softmax_product(self.relaxed, v, self.temperature, self.group_size);
        let by_log_p: Vec<f64> = w.iter().zip(self.slope).map(|(w, d)| w * d).collect();
        let mut out = by_log_p.clone();
        for (os, (gs, ps)) in out.chunks_exact_mut(self.group_size).zip(
            by_log_p
                .chunks_exact(self.group_size)
                .zip(self.probabilities.chunks_exact(self.group_size)),
        ) {
            let total: f64 = gs.iter().sum();
            for (o, p) in os.iter_mut().zip(ps) {
                *o -= p * total;
            }
        }
        out
    }

    /// `J v` with respect to the logits.
    fn jvp(&self, v: &[f64]) -> Vec<f64> {
        let mut dz = vec![0.0; v.len()];
        for ((ds, vs), (ps, ss)) in dz
            .chunks_exact_mut(self.group_size)
            .zip(v.chunks_exact(self.group_size))
            .zip(
                self.probabilities
                    .chunks_exact(self.group_size)
                    .zip(self.slope.chunks_exact(self.group_size)),
            )
        {
            let mean: f64 = vs.iter().zip(ps).map(|(v, p)| v * p).sum();
            for ((d, v), s) in ds.iter_mut().zip(vs).zip(ss) {
                *d = s * (v - mean);
            }
        }
        tempered_softmax_product(self.relaxed, &dz, self.temperature, self.group_size)
    }
}

/// RELAX with `eta`, temperature and a [`Surrogate`] network, all tuned by the variance.
///
/// The cost closure is used exactly as by [`Rebar`](super::Rebar) (hard sample plus
/// relaxed points); the network only ever sees relaxed samples `softmax(z / tau)`.
///
/// ```
/// use gumbelgrad::{Tape, Tensor};
/// use gumbelgrad::estimators::GradientEstimator;
/// use gumbelgrad::estimators::score::Relax;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let mut relax = Relax::new(1.0, 0.5, 10)?; // eta, tau, hidden units of r_phi
/// let tape = Tape::<f64>::new();
/// let logits = tape.variable(&Tensor::from_vec(8, 3, [0.1, -0.2, 0.4].repeat(8))?);
/// let weights = tape.constant(&Tensor::from_vec(3, 1, vec![1.0, -1.0, 0.5])?);
/// let estimate = relax.estimate(logits, 3, &mut |z| z.matmul(weights).exp(), &mut rng);
/// tape.backward(estimate.loss)?;
/// assert_eq!(logits.grad().unwrap().shape(), gumbelgrad::Shape::new(8, 3));
/// # Ok::<(), gumbelgrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Relax {
    hidden: usize,
    learning_rate: f64,
    /// `[eta, ln tau]`.
    scalars: [f64; 2],
    surrogate: Option<Surrogate>,
    adam: Option<FlatAdam>,
    tune: bool,
    schedule: TuningSchedule,
}

impl Relax {
    /// RELAX starting from REBAR's `eta` and `temperature`, with a surrogate network of
    /// `hidden` tanh units (created at the first call, when the width is known); Adam
    /// at learning rate 0.01 tunes everything. Errors on an invalid temperature.
    pub fn new(eta: f64, temperature: f64, hidden: usize) -> Result<Self> {
        check_temperature_for::<f64>("Relax::new", temperature)?;
        Ok(Relax {
            hidden: hidden.max(1),
            learning_rate: 0.01,
            scalars: [eta, temperature.ln()],
            surrogate: None,
            adam: None,
            tune: true,
            schedule: TuningSchedule::default(),
        })
    }

    /// Turns variance tuning on or off.
    pub fn with_tuning(mut self, tune: bool) -> Self {
        self.tune = tune;
        self
    }

    /// Tunes on every `interval`-th call only, as
    /// [`Rebar::with_tuning_interval`](super::Rebar::with_tuning_interval) (default 1,
    /// every call); an error if `interval` is 0.
    pub fn with_tuning_interval(mut self, interval: u64) -> Result<Self> {
        self.schedule = TuningSchedule::every(interval, "Relax::with_tuning_interval")?;
        Ok(self)
    }

    /// The current `eta`.
    pub fn eta(&self) -> f64 {
        self.scalars[0]
    }

    /// Restarts the temperature at `temperature` (tuning continues from there).
    /// Rejects `<= 0`, NaN and infinity.
    pub fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        check_temperature_for::<f64>("set_temperature", temperature)?;
        self.scalars[1] = temperature.ln();
        Ok(())
    }

    /// The current temperature.
    pub fn temperature(&self) -> f64 {
        self.scalars[1].exp()
    }

    /// The surrogate network (after the first call).
    pub fn surrogate(&self) -> Option<&Surrogate> {
        self.surrogate.as_ref()
    }
}

/// Per-row pieces of RELAX's learned term at one temperature.
struct LearnedTerm {
    /// `g_r`, `[rows * cols]`.
    gradient: Vec<f64>,
}

fn learned_term(
    surrogate: &Surrogate,
    draw: &Draw,
    relaxed: &Relaxed,
    slopes: &[f64],
    score: &[f64],
    group_size: usize,
) -> LearnedTerm {
    let cols = draw.cols;
    let mut gradient = vec![0.0; draw.rows * cols];
    for r in 0..draw.rows {
        let range = r * cols..(r + 1) * cols;
        let s = &relaxed.relaxed[range.clone()];
        let s_tilde = &relaxed.relaxed_tilde[range.clone()];
        let conditional = ConditionalRow {
            relaxed: s_tilde,
            probabilities: &draw.probabilities[range.clone()],
            slope: &slopes[range.clone()],
            temperature: relaxed.temperature,
            group_size,
        };
        let through_z = tempered_softmax_product(
            s,
            &surrogate.input_gradient(s),
            relaxed.temperature,
            group_size,
        );
        let through_tilde = conditional.vjp(&surrogate.input_gradient(s_tilde));
        let r_tilde = surrogate.value(s_tilde);
        for (i, out) in gradient[range.clone()].iter_mut().enumerate() {
            *out = -r_tilde * score[r * cols + i] + through_z[i] - through_tilde[i];
        }
    }
    LearnedTerm { gradient }
}

/// `dV/dphi` for `V = mean_r |G_r|^2`, `G = g_fixed + g_r(phi)`, at the current `G`:
/// `2 mean_r [ -(G . (b - p)) dr(s~)/dphi + d<J_s G, grad r(s)>/dphi - d<J_s~ G, grad r(s~)>/dphi ]`.
#[allow(clippy::too_many_arguments)]
fn surrogate_variance_gradient(
    surrogate: &Surrogate,
    draw: &Draw,
    relaxed: &Relaxed,
    slopes: &[f64],
    score: &[f64],
    g: &[f64],
    group_size: usize,
) -> Vec<f64> {
    let (rows, cols) = (draw.rows, draw.cols);
    let mut grads = vec![0.0; surrogate.parameters().len()];
    for r in 0..rows {
        let range = r * cols..(r + 1) * cols;
        let big_g = &g[range.clone()];
        let s = &relaxed.relaxed[range.clone()];
        let s_tilde = &relaxed.relaxed_tilde[range.clone()];
        let conditional = ConditionalRow {
            relaxed: s_tilde,
            probabilities: &draw.probabilities[range.clone()],
            slope: &slopes[range.clone()],
            temperature: relaxed.temperature,
            group_size,
        };
        let u = tempered_softmax_product(s, big_g, relaxed.temperature, group_size);
        let u_tilde = conditional.jvp(big_g);
        let along_score: f64 = big_g.iter().zip(&score[range]).map(|(x, q)| x * q).sum();
        let d_value = surrogate.value_parameter_gradient(s_tilde);
        let d_z = surrogate.directional_parameter_gradient(s, &u);
        let d_tilde = surrogate.directional_parameter_gradient(s_tilde, &u_tilde);
        for (k, out) in grads.iter_mut().enumerate() {
            *out += 2.0 * (-along_score * d_value[k] + d_z[k] - d_tilde[k]) / rows as f64;
        }
    }
    grads
}

impl<T: Float> GradientEstimator<T> for Relax {
    fn name(&self) -> &'static str {
        "relax"
    }

    fn is_unbiased(&self) -> bool {
        true
    }

    fn temperature(&self) -> Option<f64> {
        Some(Relax::temperature(self))
    }

    fn set_temperature(&mut self, temperature: f64) -> Result<()> {
        Relax::set_temperature(self, temperature)
    }

    /// `eta`, `log_temperature`, the surrogate's inputs and weights (once built) and
    /// the tuning Adam's moments.
    fn save_state(&self, state: &mut EstimatorState) {
        state.set_scalar("eta", self.scalars[0]);
        state.set_scalar("log_temperature", self.scalars[1]);
        self.schedule.save_state(state);
        if let (Some(surrogate), Some(adam)) = (&self.surrogate, &self.adam) {
            state.set_scalar("surrogate.inputs", surrogate.inputs() as f64);
            let weights = surrogate.parameters();
            state.set_tensor(
                "surrogate.weights",
                Tensor::from_slice(1, weights.len(), weights).expect("length"),
            );
            adam.save_state(state);
        }
    }

    fn load_state(&mut self, state: &EstimatorState) -> Result<()> {
        let scalars = [state.scalar("eta")?, state.scalar("log_temperature")?];
        let calls = TuningSchedule::load_calls(state)?;
        if state.contains("surrogate.inputs") {
            let inputs = state.count("surrogate.inputs")? as usize;
            let mut surrogate = Surrogate::new(inputs, self.hidden, &mut StdRng::seed_from_u64(0));
            let len = surrogate.parameters().len();
            let weights = state.tensor_shaped("surrogate.weights", 1, len)?;
            surrogate
                .parameters_mut()
                .copy_from_slice(weights.as_slice());
            let mut adam = FlatAdam::new(self.learning_rate, 2 + len);
            adam.load_state(state)?;
            self.surrogate = Some(surrogate);
            self.adam = Some(adam);
        } else {
            self.surrogate = None;
            self.adam = None;
        }
        self.scalars = scalars;
        self.schedule.calls = calls;
        Ok(())
    }

    fn estimate<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_at(logits, group_size, None, cost, rng)
    }

    fn estimate_with_noise<'t>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: &InjectedNoise,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        self.estimate_at(logits, group_size, Some(noise), cost, rng)
    }
}

impl Relax {
    /// The estimate at the injected `noise` if given, else at fresh noise from `rng`.
    fn estimate_at<'t, T: Float>(
        &mut self,
        logits: Var<'t, T>,
        group_size: usize,
        noise: Option<&InjectedNoise>,
        cost: &mut dyn FnMut(Var<'t, T>) -> Var<'t, T>,
        rng: &mut dyn RngCore,
    ) -> Estimate<'t, T> {
        if group_size == 1 {
            return bernoulli_as_categorical_with_noise(
                logits,
                noise,
                cost,
                rng,
                "relax",
                |pairs, noise, cost, rng| self.estimate_at(pairs, 2, noise, cost, rng),
            );
        }
        let values = match read_logits(logits, group_size, "relax") {
            Ok(values) => values,
            Err(poisoned) => return poisoned,
        };
        let cols = values.cols();
        if self.surrogate.as_ref().is_none_or(|s| s.inputs() != cols) {
            let surrogate = Surrogate::new(cols, self.hidden, rng);
            self.adam = Some(FlatAdam::new(
                self.learning_rate,
                2 + surrogate.parameters().len(),
            ));
            self.surrogate = Some(surrogate);
        }
        let draw = match noise {
            None => Draw::new::<T>(&values, group_size, rng),
            Some(noise) => match Draw::injected::<T>(&values, group_size, noise, "relax") {
                Ok(draw) => draw,
                Err(error) => return poisoned_estimate(fail(logits.tape(), error)),
            },
        };
        let tune = self.tune && self.schedule.next_call_tunes();
        let (eta, log_tau) = (self.scalars[0], self.scalars[1]);
        let mut temperatures = vec![log_tau.exp()];
        if tune {
            temperatures.push((log_tau + LOG_TEMPERATURE_STEP).exp());
            temperatures.push((log_tau - LOG_TEMPERATURE_STEP).exp());
        }
        let pass = match rebar_pass(
            logits,
            &values,
            &draw,
            group_size,
            &temperatures,
            cost,
            "relax",
        ) {
            Ok(pass) => pass,
            Err(poisoned) => return poisoned,
        };
        let surrogate = self.surrogate.as_ref().expect("created above");
        let score = draw.score();
        let slopes = &pass.slopes;
        let total = |relaxed: &Relaxed| -> (Vec<f64>, Vec<f64>) {
            let (g_a, g_c) = rebar_parts(&pass.cost_values, &score, relaxed, cols);
            let learned = learned_term(surrogate, &draw, relaxed, slopes, &score, group_size);
            let g = g_a
                .iter()
                .zip(&g_c)
                .zip(&learned.gradient)
                .map(|((a, c), r)| a + eta * c + r)
                .collect();
            (g, g_c)
        };
        let (g, g_c) = total(&pass.relaxed[0]);

        if tune {
            let rows = draw.rows;
            let relaxed = &pass.relaxed[0];
            let mut grads = vec![0.0; 2 + surrogate.parameters().len()];
            grads[0] = 2.0 * g.iter().zip(&g_c).map(|(x, c)| x * c).sum::<f64>() / rows as f64;
            grads[1] = (mean_square(&total(&pass.relaxed[1]).0, rows)
                - mean_square(&total(&pass.relaxed[2]).0, rows))
                / (2.0 * LOG_TEMPERATURE_STEP);
            let d_phi = surrogate_variance_gradient(
                surrogate, &draw, relaxed, slopes, &score, &g, group_size,
            );
            grads[2..].copy_from_slice(&d_phi);
            let mut params: Vec<f64> = self.scalars.to_vec();
            params.extend_from_slice(surrogate.parameters());
            if let Some(adam) = &mut self.adam {
                adam.step(&mut params, &grads);
            }
            self.scalars = [
                params[0],
                params[1].clamp(LOG_TEMPERATURE_RANGE.0, LOG_TEMPERATURE_RANGE.1),
            ];
            if let Some(surrogate) = &mut self.surrogate {
                surrogate.parameters_mut().copy_from_slice(&params[2..]);
            }
        }

        let gradient = constant_from(logits, draw.rows, cols, g);
        let injected = inject_gradient(logits, gradient);
        Estimate {
            sample: pass.sample,
            cost: pass.cost,
            loss: (pass.cost + injected).mean(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    //! The hand-written derivatives against central finite differences.
    use super::super::rebar::conditional_slopes;
    use super::*;
    use crate::estimators::noise;
    use crate::estimators::score::softmax_f64;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const K: usize = 3;
    const COLS: usize = 6; // two variables of three classes

    fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        Tensor::<f64>::random_uniform(1, n, lo, hi, rng)
            .as_slice()
            .to_vec()
    }

    fn central(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let h = 1e-5;
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    /// A draw, its relaxation at `temperature`, and plain functions `s(l)`, `s~(l)`.
    struct Fixture {
        logits: Vec<f64>,
        draw: Draw,
        slopes: Vec<f64>,
        classes: Vec<usize>,
        temperature: f64,
    }

    impl Fixture {
        fn new(seed: u64) -> Self {
            let mut rng = StdRng::seed_from_u64(seed);
            let logits = uniform(&mut rng, COLS, -1.5, 1.5);
            let values = Tensor::from_vec(1, COLS, logits.clone()).unwrap();
            let draw = Draw::new::<f64>(&values, K, &mut rng);
            let slopes = conditional_slopes(&logits, &draw.sample, &draw.uniforms, K);
            let classes = draw
                .sample
                .chunks(K)
                .map(|g| g.iter().position(|&x| x > 0.5).unwrap())
                .collect();
            Fixture {
                logits,
                draw,
                slopes,
                classes,
                temperature: 0.7,
            }
        }
        fn relaxed(&self, logits: &[f64]) -> Vec<f64> {
            let x: Vec<f64> = logits
                .iter()
                .zip(&self.draw.gumbel)
                .map(|(l, g)| (l + g) / self.temperature)
                .collect();
            softmax_f64(&x, K)
        }
        fn relaxed_tilde(&self, logits: &[f64]) -> Vec<f64> {
            // The shared noise module's conditional Gumbel map, at perturbed logits.
            let l = Tensor::from_slice(1, COLS, logits).unwrap();
            let v = Tensor::from_slice(1, COLS, &self.draw.uniforms).unwrap();
            let z = noise::conditional_gumbel_from_uniform(&l, &v, &self.classes, K).unwrap();
            let z: Vec<f64> = z.as_slice().iter().map(|z| z / self.temperature).collect();
            softmax_f64(&z, K)
        }
        fn relaxed_struct(&self) -> Relaxed {
            Relaxed {
                temperature: self.temperature,
                gradient: vec![0.0; COLS],
                cost_tilde: vec![0.0],
                relaxed: self.relaxed(&self.logits),
                relaxed_tilde: self.relaxed_tilde(&self.logits),
            }
        }
    }

    #[test]
    fn conditional_jacobian_products_match_finite_differences() {
        for seed in 0..5 {
            let fx = Fixture::new(seed);
            let s_tilde = fx.relaxed_tilde(&fx.logits);
            let row = ConditionalRow {
                relaxed: &s_tilde,
                probabilities: &fx.draw.probabilities,
                slope: &fx.slopes,
                temperature: fx.temperature,
                group_size: K,
            };
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let v = uniform(&mut rng, COLS, -1.0, 1.0);
            let vjp = row.vjp(&v);
            let jvp = row.jvp(&v);
            for i in 0..COLS {
                // (J^T v)_i = d <v, s~(l)> / d l_i
                let numeric = central(
                    |x| {
                        let mut l = fx.logits.clone();
                        l[i] = x;
                        fx.relaxed_tilde(&l)
                            .iter()
                            .zip(&v)
                            .map(|(a, b)| a * b)
                            .sum()
                    },
                    fx.logits[i],
                );
                assert!(
                    (numeric - vjp[i]).abs() < 1e-7,
                    "vjp {i}: {numeric} vs {}",
                    vjp[i]
                );
                // (J v)_i = d s~_i(l + x v) / dx
                let numeric = central(
                    |x| {
                        let l: Vec<f64> =
                            fx.logits.iter().zip(&v).map(|(l, d)| l + x * d).collect();
                        fx.relaxed_tilde(&l)[i]
                    },
                    0.0,
                );
                assert!(
                    (numeric - jvp[i]).abs() < 1e-7,
                    "jvp {i}: {numeric} vs {}",
                    jvp[i]
                );
            }
        }
    }

    #[test]
    fn surrogate_parameter_gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(7);
        let net = Surrogate::new(COLS, 5, &mut rng);
        let s = uniform(&mut rng, COLS, 0.0, 1.0);
        let u = uniform(&mut rng, COLS, -1.0, 1.0);
        let value = net.value_parameter_gradient(&s);
        let directional = net.directional_parameter_gradient(&s, &u);
        let grad_s = net.input_gradient(&s);
        for k in 0..net.parameters().len() {
            let with = |x: f64| {
                let mut n = net.clone();
                n.parameters_mut()[k] = x;
                n
            };
            let numeric = central(|x| with(x).value(&s), net.parameters()[k]);
            assert!((numeric - value[k]).abs() < 1e-8, "value {k}");
            let numeric = central(
                |x| {
                    with(x)
                        .input_gradient(&s)
                        .iter()
                        .zip(&u)
                        .map(|(a, b)| a * b)
                        .sum()
                },
                net.parameters()[k],
            );
            assert!((numeric - directional[k]).abs() < 1e-8, "directional {k}");
        }
        for j in 0..COLS {
            let numeric = central(
                |x| {
                    let mut t = s.clone();
                    t[j] = x;
                    net.value(&t)
                },
                s[j],
            );
            assert!((numeric - grad_s[j]).abs() < 1e-8, "input {j}");
        }
    }

    /// The learned term is the gradient of `-r(s~) log p(b) + r(s(l)) - r(s~(l))` with
    /// the first factor held fixed, and the hand-written `dV/dphi` is the derivative of
    /// `V(phi) = |g_fixed + g_r(phi)|^2`.
    #[test]
    fn learned_term_and_its_variance_gradient_match_finite_differences() {
        for seed in 0..3 {
            let fx = Fixture::new(seed);
            let relaxed = fx.relaxed_struct();
            let score = fx.draw.score();
            let mut rng = StdRng::seed_from_u64(50 + seed);
            let net = Surrogate::new(COLS, 4, &mut rng);
            let term = learned_term(&net, &fx.draw, &relaxed, &fx.slopes, &score, K).gradient;
            let r_tilde = net.value(&relaxed.relaxed_tilde);
            for i in 0..COLS {
                let numeric = central(
                    |x| {
                        let mut l = fx.logits.clone();
                        l[i] = x;
                        net.value(&fx.relaxed(&l)) - net.value(&fx.relaxed_tilde(&l))
                    },
                    fx.logits[i],
                );
                let expected = numeric - r_tilde * score[i];
                assert!(
                    (expected - term[i]).abs() < 1e-7,
                    "term {i}: {expected} vs {}",
                    term[i]
                );
            }
            let fixed = uniform(&mut rng, COLS, -0.5, 0.5);
            let variance = |n: &Surrogate| -> f64 {
                let t = learned_term(n, &fx.draw, &relaxed, &fx.slopes, &score, K).gradient;
                t.iter().zip(&fixed).map(|(a, b)| (a + b) * (a + b)).sum()
            };
            let g: Vec<f64> = term.iter().zip(&fixed).map(|(a, b)| a + b).collect();
            let analytic =
                surrogate_variance_gradient(&net, &fx.draw, &relaxed, &fx.slopes, &score, &g, K);
            for k in 0..net.parameters().len() {
                let numeric = central(
                    |x| {
                        let mut n = net.clone();
                        n.parameters_mut()[k] = x;
                        variance(&n)
                    },
                    net.parameters()[k],
                );
                assert!(
                    (numeric - analytic[k]).abs() < 1e-7,
                    "dV/dphi {k}: {numeric} vs {}",
                    analytic[k]
                );
            }
        }
    }
}
