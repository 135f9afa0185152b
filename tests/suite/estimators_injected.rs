//! Score-function estimates at an injected sample, reproduced by hand.

use gumbelgrad::estimators::score::{Baseline, Reinforce};
use gumbelgrad::{Error, Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// `f(z) = <z, w>^2` per row, on the tape and by hand.
const W: [f64; 3] = [1.0, -2.0, 0.5];
fn f_by_hand(z: &[f64]) -> f64 {
    z.iter().zip(W).map(|(a, b)| a * b).sum::<f64>().powi(2)
}

#[test]
fn reinforce_at_a_given_sample_matches_the_formula() {
    let logits = Tensor::from_vec(2, 3, vec![0.3, -0.2, 0.1, 1.0, 0.0, -1.0]).unwrap();
    let sample = Tensor::from_vec(2, 3, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    // plain REINFORCE, then the moving-average baseline on its second call
    for (baseline, calls) in [
        (Baseline::None, 1),
        (Baseline::MovingAverage { decay: 0.8 }, 2),
    ] {
        let mut estimator = Reinforce::new(baseline).unwrap();
        let mut average = 0.0;
        for call in 0..calls {
            let tape = Tape::<f64>::new();
            let x = tape.variable(&logits);
            let w = tape.constant(&Tensor::from_vec(3, 1, W.to_vec()).unwrap());
            let estimate = estimator.estimate_with_sample(
                x,
                3,
                &sample,
                &mut |z| z.matmul(w).square(),
                &mut rng,
            );
            tape.backward(estimate.loss).unwrap();
            let grad = x.grad().unwrap();
            let costs: Vec<f64> = (0..2).map(|r| f_by_hand(sample.row(r))).collect();
            let b = if calls == 2 { average } else { 0.0 };
            for (r, &f) in costs.iter().enumerate() {
                let p = softmax(logits.row(r));
                for (j, &pj) in p.iter().enumerate() {
                    let expected = (f - b) * (sample.get(r, j) - pj) / 2.0;
                    let got = grad.get(r, j);
                    assert!(
                        (got - expected).abs() < 1e-12,
                        "{baseline:?} call {call} [{r},{j}]: {got} vs {expected}"
                    );
                }
            }
            assert_eq!(estimate.sample.value().unwrap(), sample);
            average += 0.2 * ((costs[0] + costs[1]) / 2.0 - average);
        }
    }
}

#[test]
fn reinforce_at_given_bits_matches_the_formula() {
    // Binary units: d/d phi = f (b - sigmoid(phi)) / B.
    let phi = Tensor::from_vec(1, 2, vec![0.4, -1.1]).unwrap();
    let bits = Tensor::from_vec(1, 2, vec![1.0, 0.0]).unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.variable(&phi);
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            1,
            &bits,
            &mut |z| (z.sum_cols() + 1.0).square(),
            &mut StdRng::seed_from_u64(0),
        );
    tape.backward(estimate.loss).unwrap();
    let f = (1.0f64 + 0.0 + 1.0).powi(2);
    for j in 0..2 {
        let s = 1.0 / (1.0 + (-phi.get(0, j)).exp());
        let expected = f * (bits.get(0, j) - s);
        let got = x.grad().unwrap().get(0, j);
        assert!((got - expected).abs() < 1e-12, "{j}: {got} vs {expected}");
    }
}

#[test]
fn a_sample_that_is_not_one_hot_is_a_typed_error() {
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(1, 3));
    let bad = Tensor::from_vec(1, 3, vec![0.5, 0.5, 0.0]).unwrap();
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            3,
            &bad,
            &mut |z| z.sum_cols(),
            &mut StdRng::seed_from_u64(0),
        );
    assert!(matches!(
        tape.backward(estimate.loss),
        Err(Error::InvalidArgument { .. })
    ));
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(1, 3));
    let estimate = Reinforce::new(Baseline::None)
        .unwrap()
        .estimate_with_sample(
            x,
            3,
            &Tensor::zeros(2, 3),
            &mut |z| z.sum_cols(),
            &mut StdRng::seed_from_u64(0),
        );
    assert!(matches!(
        tape.backward(estimate.loss),
        Err(Error::ShapeMismatch { .. })
    ));
}

// ---------------------------------------------------------------------------------
// Every score-function estimator at injected noise, through
// `GradientEstimator::estimate_with_noise`, against its formula computed by hand.
// The cost is `f(z) = (<z, w> + 1/2)^2`, `f'(z) = 2 (<z, w> + 1/2) w`. Binary units
// are checked in the two-class form they run in: logits `[0, phi_n]`, weights
// `[0, w_n]`, noise in the pair layout, and `d/d phi_n` the pair's second column.

mod by_hand {
    pub fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
    pub fn f(z: &[f64], w: &[f64]) -> f64 {
        (dot(z, w) + 0.5).powi(2)
    }
    pub fn f_slope(z: &[f64], w: &[f64]) -> Vec<f64> {
        let c = 2.0 * (dot(z, w) + 0.5);
        w.iter().map(|w| c * w).collect()
    }
    pub fn softmax(l: &[f64], k: usize) -> Vec<f64> {
        l.chunks(k).flat_map(super::softmax).collect()
    }
    /// `J^T a` for `s = softmax(x / tau)` per group: `(1/tau) s (a - <s, a>)`.
    pub fn softmax_vjp(s: &[f64], a: &[f64], k: usize, tau: f64) -> Vec<f64> {
        let mut out = vec![0.0; s.len()];
        for g in 0..s.len() / k {
            let r = g * k..(g + 1) * k;
            let mean = dot(&s[r.clone()], &a[r.clone()]);
            for i in r {
                out[i] = s[i] * (a[i] - mean) / tau;
            }
        }
        out
    }
    /// One-hot argmax of `l + g` per group.
    pub fn gumbel_max(l: &[f64], g: &[f64], k: usize) -> Vec<f64> {
        let mut out = vec![0.0; l.len()];
        for start in (0..l.len()).step_by(k) {
            let best = (start..start + k)
                .max_by(|&a, &b| (l[a] + g[a]).partial_cmp(&(l[b] + g[b])).unwrap())
                .unwrap();
            out[best] = 1.0;
        }
        out
    }
    pub fn gumbel(u: &[f64]) -> Vec<f64> {
        u.iter().map(|u| -(-u.ln()).ln()).collect()
    }
    /// REBAR's conditional noise `z~` and its slopes `d z~_i / d ln p_i`.
    pub fn conditional(p: &[f64], b: &[f64], v: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut z, mut slope) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for start in (0..p.len()).step_by(k) {
            let top = (start..start + k).find(|&i| b[i] == 1.0).unwrap();
            let e_top = -v[top].ln();
            for i in start..start + k {
                if i == top {
                    z[i] = -e_top.ln();
                } else {
                    let e = -v[i].ln() / p[i];
                    z[i] = -(e + e_top).ln();
                    slope[i] = e / (e + e_top);
                }
            }
        }
        (z, slope)
    }
    /// `J^T a` for `z~(logits)`: `a_j slope_j - p_j sum_i a_i slope_i` per group.
    pub fn conditional_vjp(p: &[f64], slope: &[f64], a: &[f64], k: usize) -> Vec<f64> {
        let mut out = vec![0.0; p.len()];
        for start in (0..p.len()).step_by(k) {
            let r = start..start + k;
            let total: f64 = r.clone().map(|i| a[i] * slope[i]).sum();
            for i in r {
                out[i] = a[i] * slope[i] - p[i] * total;
            }
        }
        out
    }
}

use gumbelgrad::estimators::score::{Darn, ExpansionPoint, MuProp, Rebar, Relax, Vimco};
use gumbelgrad::estimators::{GradientEstimator, InjectedNoise};

/// One problem: categorical logits (for binary units, the pairs `[0, phi]`), the
/// weights in the same layout, and how the estimator is called.
struct Case {
    /// What the estimator sees: `[B, N*K]`, or `[B, N]` for binary units.
    logits: Tensor<f64>,
    group_size: usize,
    /// The weights of the cost as the estimator's sample sees them.
    w: Vec<f64>,
}

impl Case {
    fn categorical() -> Case {
        Case {
            logits: Tensor::from_vec(
                2,
                6,
                vec![
                    0.3, -0.2, 0.1, 1.0, 0.0, -1.0, -0.5, 0.4, 0.2, 0.0, 0.7, -0.3,
                ],
            )
            .unwrap(),
            group_size: 3,
            w: vec![1.0, -2.0, 0.5, 0.3, 0.8, -0.6],
        }
    }
    fn binary() -> Case {
        Case {
            logits: Tensor::from_vec(2, 2, vec![0.4, -1.1, 0.9, 0.2]).unwrap(),
            group_size: 1,
            w: vec![1.5, -0.7],
        }
    }
    fn k(&self) -> usize {
        if self.group_size == 1 {
            2
        } else {
            self.group_size
        }
    }
    /// The categorical logits of row `r` (pairs `[0, phi]` for binary units).
    fn row(&self, r: usize) -> Vec<f64> {
        let row = self.logits.row(r);
        if self.group_size == 1 {
            row.iter().flat_map(|&phi| [0.0, phi]).collect()
        } else {
            row.to_vec()
        }
    }
    /// The weights in the categorical layout.
    fn w_categorical(&self) -> Vec<f64> {
        if self.group_size == 1 {
            self.w.iter().flat_map(|&w| [0.0, w]).collect()
        } else {
            self.w.clone()
        }
    }
    /// A categorical-layout gradient of row `r` back to what the estimator sees.
    fn back(&self, g: Vec<f64>) -> Vec<f64> {
        if self.group_size == 1 {
            g.chunks(2).map(|pair| pair[1]).collect()
        } else {
            g
        }
    }
    fn categorical_cols(&self) -> usize {
        self.row(0).len()
    }

    /// Runs `estimator` at `noise`; returns the logits' gradient and the sample.
    fn run(
        &self,
        estimator: &mut dyn GradientEstimator<f64>,
        noise: &InjectedNoise,
    ) -> (Tensor<f64>, Tensor<f64>) {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&self.logits);
        let w = tape.constant(&Tensor::from_vec(self.w.len(), 1, self.w.clone()).unwrap());
        let mut rng = StdRng::seed_from_u64(11);
        let estimate = estimator.estimate_with_noise(
            x,
            self.group_size,
            noise,
            &mut |z| (z.matmul(w) + 0.5).square(),
            &mut rng,
        );
        tape.backward(estimate.loss).unwrap();
        (x.grad().unwrap(), estimate.sample.value().unwrap())
    }
}

fn assert_close(name: &str, got: &Tensor<f64>, expected: &[f64]) {
    assert_eq!(got.as_slice().len(), expected.len(), "{name}: sizes");
    for (i, (g, e)) in got.as_slice().iter().zip(expected).enumerate() {
        assert!((g - e).abs() < 1e-12, "{name}[{i}]: {g} vs {e} by hand");
    }
}

/// A one-hot sample (bits for binary units) for `rows` rows.
fn sample_for(case: &Case, rows: usize) -> Tensor<f64> {
    let cols = case.logits.cols();
    let data = (0..rows * cols)
        .map(|i| {
            if case.group_size == 1 {
                ((i * 7 + 3) % 5 < 2) as u8 as f64
            } else {
                let (row, col) = (i / cols, i % cols);
                ((col % 3) == (row + col / 3) % 3) as u8 as f64
            }
        })
        .collect();
    Tensor::from_vec(rows, cols, data).unwrap()
}

/// The sample in the categorical layout, row `r`.
fn categorical_sample(case: &Case, sample: &Tensor<f64>, r: usize) -> Vec<f64> {
    if case.group_size == 1 {
        sample.row(r).iter().flat_map(|&b| [1.0 - b, b]).collect()
    } else {
        sample.row(r).to_vec()
    }
}

/// Uniforms in (0, 1) in the categorical layout, `[rows, cols]`, from a seed.
fn uniforms(rows: usize, cols: usize, seed: u64) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::random_uniform(rows, cols, 0.02, 0.98, &mut rng)
}

/// The Taylor estimators (MuProp, DARN) by hand at `sample`, row by row.
fn taylor_by_hand(
    case: &Case,
    sample: &Tensor<f64>,
    point: impl Fn(&[f64]) -> Vec<f64>,
    correction: bool,
) -> Vec<f64> {
    let (rows, k, w) = (case.logits.rows(), case.k(), case.w_categorical());
    let mut out = Vec::new();
    for r in 0..rows {
        let l = case.row(r);
        let p = by_hand::softmax(&l, k);
        let z = categorical_sample(case, sample, r);
        let z_bar = point(&p);
        let slope = by_hand::f_slope(&z_bar, &w);
        let linear: f64 = (0..z.len()).map(|i| slope[i] * (z[i] - z_bar[i])).sum();
        let signal = by_hand::f(&z, &w) - by_hand::f(&z_bar, &w) - linear;
        let mut g: Vec<f64> = (0..z.len()).map(|i| signal * (z[i] - p[i])).collect();
        if correction {
            for (gi, c) in g.iter_mut().zip(by_hand::softmax_vjp(&p, &slope, k, 1.0)) {
                *gi += c;
            }
        }
        out.extend(case.back(g).into_iter().map(|g| g / rows as f64));
    }
    out
}

#[test]
fn muprop_and_darn_at_a_given_sample_match_the_formula() {
    for case in [Case::categorical(), Case::binary()] {
        let sample = sample_for(&case, 2);
        let noise = InjectedNoise::Sample(sample.clone());
        let k = case.k();
        let mean = |p: &[f64]| p.to_vec();
        let uniform = move |p: &[f64]| vec![1.0 / k as f64; p.len()];

        let (grad, got_sample) = case.run(&mut MuProp::new(), &noise);
        assert_eq!(got_sample, sample);
        assert_close("muprop", &grad, &taylor_by_hand(&case, &sample, mean, true));

        let (grad, _) = case.run(&mut Darn::default(), &noise);
        assert_close("darn", &grad, &taylor_by_hand(&case, &sample, mean, false));

        let (grad, _) = case.run(&mut Darn::new(ExpansionPoint::Uniform), &noise);
        let expected = taylor_by_hand(&case, &sample, uniform, false);
        assert_close("darn-uniform", &grad, &expected);

        // sample slope: each group's own signal <f'(z)_g, z_g - 1/K> times its score
        let (grad, _) = case.run(&mut Darn::sample_slope(), &noise);
        let (rows, w) = (case.logits.rows(), case.w_categorical());
        let mut expected = Vec::new();
        for r in 0..rows {
            let p = by_hand::softmax(&case.row(r), k);
            let z = categorical_sample(&case, &sample, r);
            let slope = by_hand::f_slope(&z, &w);
            let mut g = vec![0.0; z.len()];
            for start in (0..z.len()).step_by(k) {
                let range = start..start + k;
                let signal: f64 = range
                    .clone()
                    .map(|i| slope[i] * (z[i] - 1.0 / k as f64))
                    .sum();
                for i in range {
                    g[i] = signal * (z[i] - p[i]) / rows as f64;
                }
            }
            expected.extend(case.back(g));
        }
        assert_close("darn-sample-slope", &grad, &expected);
    }
}

#[test]
fn score_estimators_take_their_sample_from_injected_uniforms() {
    for case in [Case::categorical(), Case::binary()] {
        let (rows, cols) = (case.logits.rows(), case.categorical_cols());
        let (u, v) = (uniforms(rows, cols, 1), uniforms(rows, cols, 2));
        let g = by_hand::gumbel(u.as_slice());
        let mut drawn = Vec::new();
        for r in 0..rows {
            let z = by_hand::gumbel_max(&case.row(r), &g[r * cols..(r + 1) * cols], case.k());
            drawn.extend(case.back(z));
        }
        let drawn = Tensor::from_vec(rows, case.logits.cols(), drawn).unwrap();
        let at_sample = case.run(&mut MuProp::new(), &InjectedNoise::Sample(drawn.clone()));
        let at_uniforms = case.run(&mut MuProp::new(), &InjectedNoise::Uniforms { u, v });
        assert_eq!(at_uniforms.1, drawn);
        assert_eq!(at_uniforms.0, at_sample.0);
        let gumbel = Tensor::from_vec(rows, cols, g).unwrap();
        let at_gumbel = case.run(
            &mut Reinforce::new(Baseline::None).unwrap(),
            &InjectedNoise::Gumbel {
                gumbel,
                v: Tensor::zeros(rows, cols),
            },
        );
        let reinforce = case.run(
            &mut Reinforce::new(Baseline::None).unwrap(),
            &InjectedNoise::Sample(drawn.clone()),
        );
        assert_eq!(at_gumbel, reinforce);
    }
}

#[test]
fn vimco_at_given_samples_matches_the_formula() {
    let m = 3;
    for case in [Case::categorical(), Case::binary()] {
        let rows = case.logits.rows();
        let samples = sample_for(&case, rows * m);
        let noise = InjectedNoise::Sample(samples.clone());
        let (k, w) = (case.k(), case.w_categorical());
        for (mut estimator, bound) in [
            (Vimco::new(m).unwrap(), false),
            (Vimco::log_mean_exp(m).unwrap(), true),
        ] {
            let (grad, got) = case.run(&mut estimator, &noise);
            assert_eq!(got, samples);
            let mut expected = Vec::new();
            for b in 0..rows {
                let p = by_hand::softmax(&case.row(b), k);
                let zs: Vec<Vec<f64>> = (0..m)
                    .map(|j| categorical_sample(&case, &samples, b * m + j))
                    .collect();
                let f: Vec<f64> = zs.iter().map(|z| by_hand::f(z, &w)).collect();
                let total: f64 = f.iter().sum();
                let mut g = vec![0.0; p.len()];
                for j in 0..m {
                    let others = (total - f[j]) / (m - 1) as f64;
                    let (signal, weight) = if bound {
                        // -log mean exp(-f), and the same with f_j replaced by the others' mean
                        let nlme = |f: &[f64]| {
                            -(f.iter().map(|f| (-f).exp()).sum::<f64>() / m as f64).ln()
                        };
                        let mut replaced = f.clone();
                        replaced[j] = others;
                        (nlme(&f) - nlme(&replaced), 1.0 / rows as f64)
                    } else {
                        (f[j] - others, 1.0 / (rows * m) as f64)
                    };
                    for i in 0..p.len() {
                        g[i] += weight * signal * (zs[j][i] - p[i]);
                    }
                }
                expected.extend(case.back(g));
            }
            let name = if bound { "vimco-bound" } else { "vimco" };
            assert_close(name, &grad, &expected);
        }
    }
}

/// REBAR's estimate of row `r`, and (for RELAX) the surrogate's term: `r_phi` given as
/// value and input gradient.
#[allow(clippy::type_complexity)]
fn rebar_by_hand(
    case: &Case,
    u: &Tensor<f64>,
    v: &Tensor<f64>,
    eta: f64,
    tau: f64,
    surrogate: Option<&dyn Fn(&[f64]) -> (f64, Vec<f64>)>,
) -> (Vec<f64>, Vec<f64>) {
    let (rows, cols, k, w) = (
        case.logits.rows(),
        case.categorical_cols(),
        case.k(),
        case.w_categorical(),
    );
    let (mut expected, mut samples) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let l = case.row(r);
        let p = by_hand::softmax(&l, k);
        let g = by_hand::gumbel(u.row(r));
        let b = by_hand::gumbel_max(&l, &g, k);
        let shifted: Vec<f64> = l.iter().zip(&g).map(|(l, g)| (l + g) / tau).collect();
        let s = by_hand::softmax(&shifted, k);
        let (z_tilde, slope) = by_hand::conditional(&p, &b, v.row(r), k);
        let scaled: Vec<f64> = z_tilde.iter().map(|z| z / tau).collect();
        let s_tilde = by_hand::softmax(&scaled, k);
        let through_s = |a: &[f64]| by_hand::softmax_vjp(&s, a, k, tau);
        let through_tilde = |a: &[f64]| {
            let at_z = by_hand::softmax_vjp(&s_tilde, a, k, tau);
            by_hand::conditional_vjp(&p, &slope, &at_z, k)
        };
        let d_f = through_s(&by_hand::f_slope(&s, &w));
        let d_f_tilde = through_tilde(&by_hand::f_slope(&s_tilde, &w));
        let f_b = by_hand::f(&b, &w);
        let f_tilde = by_hand::f(&s_tilde, &w);
        let mut gr: Vec<f64> = (0..cols)
            .map(|i| (f_b - eta * f_tilde) * (b[i] - p[i]) + eta * (d_f[i] - d_f_tilde[i]))
            .collect();
        if let Some(net) = surrogate {
            let (_, grad_s) = net(&s);
            let (r_tilde, grad_tilde) = net(&s_tilde);
            let (d_r, d_r_tilde) = (through_s(&grad_s), through_tilde(&grad_tilde));
            for i in 0..cols {
                gr[i] += -r_tilde * (b[i] - p[i]) + d_r[i] - d_r_tilde[i];
            }
        }
        expected.extend(case.back(gr).into_iter().map(|g| g / rows as f64));
        samples.extend(case.back(b));
    }
    (expected, samples)
}

#[test]
fn rebar_at_injected_uniforms_matches_the_formula() {
    for case in [Case::categorical(), Case::binary()] {
        let (rows, cols) = (case.logits.rows(), case.categorical_cols());
        let (u, v) = (uniforms(rows, cols, 3), uniforms(rows, cols, 4));
        let (eta, tau) = (0.7, 0.6);
        let mut rebar = Rebar::new(eta, tau).unwrap(); // tuned after the estimate is formed
        let (grad, sample) = case.run(
            &mut rebar,
            &InjectedNoise::Uniforms {
                u: u.clone(),
                v: v.clone(),
            },
        );
        let (expected, drawn) = rebar_by_hand(&case, &u, &v, eta, tau, None);
        assert_eq!(sample.as_slice(), &drawn[..]);
        assert_close("rebar", &grad, &expected);
        // the same noise as Gumbel noise
        let gumbel = u.map(|u| -(-u.ln()).ln());
        let mut rebar = Rebar::new(eta, tau).unwrap();
        let (again, _) = case.run(&mut rebar, &InjectedNoise::Gumbel { gumbel, v });
        assert_eq!(again, grad);
    }
}

#[test]
fn relax_at_injected_uniforms_matches_the_formula() {
    for case in [Case::categorical(), Case::binary()] {
        let (rows, cols) = (case.logits.rows(), case.categorical_cols());
        let (u, v) = (uniforms(rows, cols, 5), uniforms(rows, cols, 6));
        let (eta, tau, hidden) = (0.8, 0.5, 4);
        // without tuning, the surrogate read back after the call is the one it used
        let mut relax = Relax::new(eta, tau, hidden).unwrap().with_tuning(false);
        let noise = InjectedNoise::Uniforms {
            u: u.clone(),
            v: v.clone(),
        };
        let (grad, sample) = case.run(&mut relax, &noise);
        // r(s) = w2 . tanh(W s + b1) + b2, parameters W [hidden x cols], b1, w2, b2
        let theta = relax.surrogate().unwrap().parameters().to_vec();
        assert_eq!(theta.len(), hidden * cols + 2 * hidden + 1);
        let net = |s: &[f64]| -> (f64, Vec<f64>) {
            let (w1, rest) = theta.split_at(hidden * cols);
            let (b1, rest) = rest.split_at(hidden);
            let (w2, b2) = rest.split_at(hidden);
            let mut value = b2[0];
            let mut grad = vec![0.0; cols];
            for h in 0..hidden {
                let a = (by_hand::dot(&w1[h * cols..(h + 1) * cols], s) + b1[h]).tanh();
                value += w2[h] * a;
                for i in 0..cols {
                    grad[i] += w2[h] * (1.0 - a * a) * w1[h * cols + i];
                }
            }
            (value, grad)
        };
        let (expected, drawn) = rebar_by_hand(&case, &u, &v, eta, tau, Some(&net));
        assert_eq!(sample.as_slice(), &drawn[..]);
        assert_close("relax", &grad, &expected);
    }
}

#[test]
fn injected_noise_that_does_not_fit_is_a_typed_error() {
    let case = Case::categorical();
    let (rows, cols) = (case.logits.rows(), case.categorical_cols());
    let run = |estimator: &mut dyn GradientEstimator<f64>, noise: &InjectedNoise| {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&case.logits);
        let estimate = estimator.estimate_with_noise(
            x,
            case.group_size,
            noise,
            &mut |z| z.sum_cols(),
            &mut StdRng::seed_from_u64(0),
        );
        tape.backward(estimate.loss).map(|_| ())
    };
    let sample = InjectedNoise::Sample(sample_for(&case, rows));
    // REBAR and RELAX need the noise, not only the sample
    for estimator in [
        &mut Rebar::new(1.0, 0.5).unwrap() as &mut dyn GradientEstimator<f64>,
        &mut Relax::new(1.0, 0.5, 3).unwrap(),
    ] {
        assert!(matches!(
            run(estimator, &sample),
            Err(Error::InvalidArgument { .. })
        ));
    }
    // VIMCO wants m samples per example
    assert!(matches!(
        run(&mut Vimco::new(3).unwrap(), &sample),
        Err(Error::ShapeMismatch { .. })
    ));
    // a uniform of 1 (or 0) has no Gumbel noise
    let mut u = uniforms(rows, cols, 7);
    u.as_mut_slice()[4] = 1.0;
    let noise = InjectedNoise::Uniforms {
        u,
        v: uniforms(rows, cols, 8),
    };
    assert!(matches!(
        run(&mut MuProp::new(), &noise),
        Err(Error::InvalidArgument { .. })
    ));
    // a non-one-hot sample
    let mut bad = sample_for(&case, rows);
    bad.as_mut_slice()[0] = 0.5;
    assert!(matches!(
        run(&mut Darn::default(), &InjectedNoise::Sample(bad)),
        Err(Error::InvalidArgument { .. })
    ));
    // a relaxation needs the noise, not a bare sample
    let mut gs = gumbelgrad::estimators::Estimator::<f64>::gumbel_softmax(0.5).unwrap();
    assert!(matches!(
        run(&mut gs, &sample),
        Err(Error::InvalidArgument { .. })
    ));
    // binary bits must be 0 or 1, and noises in the pair layout
    let binary = Case::binary();
    let tape = Tape::<f64>::new();
    let x = tape.variable(&binary.logits);
    let estimate = MuProp::new().estimate_with_noise(
        x,
        1,
        &InjectedNoise::Uniforms {
            u: uniforms(2, 2, 9),
            v: uniforms(2, 2, 10),
        },
        &mut |z| z.sum_cols(),
        &mut StdRng::seed_from_u64(0),
    );
    assert!(matches!(
        tape.backward(estimate.loss),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn relaxed_estimators_at_injected_gumbel_noise_match_the_formula() {
    use gumbelgrad::estimators::Estimator;
    let case = Case::categorical();
    let (rows, cols, k, w) = (2, 6, 3, case.w.clone());
    let u = uniforms(rows, cols, 12);
    let g = by_hand::gumbel(u.as_slice());
    let tau = 0.7;
    let noise = InjectedNoise::Uniforms {
        u,
        v: Tensor::zeros(rows, cols),
    };
    for name in ["gumbel-softmax", "st-gumbel-softmax", "st", "st-argmax"] {
        let mut estimator = Estimator::<f64>::from_name(name, tau).unwrap();
        let (grad, sample) = case.run(&mut estimator, &noise);
        let mut expected = Vec::new();
        let mut forward = Vec::new();
        for r in 0..rows {
            let l = case.row(r);
            let gr = &g[r * cols..(r + 1) * cols];
            let zero = vec![0.0; cols];
            let noisy: Vec<f64> = l.iter().zip(gr).map(|(l, g)| (l + g) / tau).collect();
            let tempered: Vec<f64> = l.iter().map(|l| l / tau).collect();
            let relaxed = by_hand::softmax(&noisy, k);
            // forward sample, and the softmax whose Jacobian the backward uses
            let (z, through) = match name {
                "gumbel-softmax" => (relaxed.clone(), relaxed),
                "st-gumbel-softmax" => (by_hand::gumbel_max(&l, gr, k), relaxed),
                "st" => (
                    by_hand::gumbel_max(&l, gr, k),
                    by_hand::softmax(&tempered, k),
                ),
                _ => (
                    by_hand::gumbel_max(&l, &zero, k),
                    by_hand::softmax(&tempered, k),
                ),
            };
            let d = by_hand::softmax_vjp(&through, &by_hand::f_slope(&z, &w), k, tau);
            expected.extend(d.iter().map(|d| d / rows as f64));
            forward.extend(z);
        }
        for (a, b) in sample.as_slice().iter().zip(&forward) {
            assert!((a - b).abs() < 1e-12, "{name} sample: {a} vs {b}");
        }
        assert_close(name, &grad, &expected);
    }

    // binary units: logistic noise l_n = g_{2n+1} - g_{2n}
    let case = Case::binary();
    let u = uniforms(2, 4, 13);
    let g = by_hand::gumbel(u.as_slice());
    let noise = InjectedNoise::Gumbel {
        gumbel: Tensor::from_vec(2, 4, g.clone()).unwrap(),
        v: Tensor::zeros(2, 4),
    };
    for name in ["relaxed-bernoulli", "st-relaxed-bernoulli"] {
        let mut estimator = Estimator::<f64>::from_name(name, tau).unwrap();
        let (grad, sample) = case.run(&mut estimator, &noise);
        let phi = case.logits.as_slice();
        let y: Vec<f64> = (0..4)
            .map(|i| 1.0 / (1.0 + (-(phi[i] + g[2 * i + 1] - g[2 * i]) / tau).exp()))
            .collect();
        let z: Vec<f64> = if name == "relaxed-bernoulli" {
            y.clone()
        } else {
            y.iter().map(|&y| (y > 0.5) as u8 as f64).collect()
        };
        for (a, b) in sample.as_slice().iter().zip(&z) {
            assert!((a - b).abs() < 1e-12, "{name} sample: {a} vs {b}");
        }
        let mut expected = Vec::new();
        for r in 0..2 {
            let slope = by_hand::f_slope(&z[2 * r..2 * r + 2], &case.w);
            for n in 0..2 {
                let y = y[2 * r + n];
                expected.push(slope[n] * y * (1.0 - y) / tau / 2.0);
            }
        }
        assert_close(name, &grad, &expected);
    }
}

#[test]
fn reinmax_at_a_given_sample_matches_the_formula() {
    use gumbelgrad::estimators::Estimator;
    // grad_x = 2 J(pi_1) g - 1/2 J(pi_0) g, pi_0 = softmax(x), pi_1 = (softmax(x/tau) + D)/2,
    // J(p) g = p (g - <g, p>), g the cost's slope at the sample D.
    let tau = 1.3;
    for case in [Case::categorical(), Case::binary()] {
        let rows = case.logits.rows();
        let sample = sample_for(&case, rows);
        let mut estimator = Estimator::<f64>::from_name("reinmax", tau).unwrap();
        let (grad, forward) = case.run(&mut estimator, &InjectedNoise::Sample(sample.clone()));
        assert_eq!(forward, sample, "the forward value is the given sample");
        let (k, w) = (case.k(), case.w_categorical());
        let mut expected = Vec::new();
        for r in 0..rows {
            let l = case.row(r);
            let d = categorical_sample(&case, &sample, r);
            let g = by_hand::f_slope(&d, &w);
            let pi0 = by_hand::softmax(&l, k);
            let tempered: Vec<f64> = l.iter().map(|l| l / tau).collect();
            let pi1: Vec<f64> = by_hand::softmax(&tempered, k)
                .iter()
                .zip(&d)
                .map(|(s, d)| (s + d) / 2.0)
                .collect();
            let first = by_hand::softmax_vjp(&pi1, &g, k, 1.0);
            let second = by_hand::softmax_vjp(&pi0, &g, k, 1.0);
            let row: Vec<f64> = first
                .iter()
                .zip(&second)
                .map(|(a, b)| (2.0 * a - 0.5 * b) / rows as f64)
                .collect();
            expected.extend(case.back(row));
        }
        assert_close("reinmax", &grad, &expected);
    }
}

#[test]
fn reinmax_on_binary_units_at_temperature_one_is_darn_sample_slope() {
    // With p = sigmoid(phi) and pi_1 = (p + b)/2, ReinMax's 2 pi_1 (1 - pi_1) - p (1 - p)/2
    // is (1 - p)/2 at b = 1 and p/2 at b = 0, that is (b - 1/2)(b - p): the slope f'(b)
    // times DARN's sample-slope signal weight. At other temperatures, or with more than two
    // classes, the two differ.
    use gumbelgrad::estimators::Estimator;
    let case = Case::binary();
    let sample = InjectedNoise::Sample(sample_for(&case, case.logits.rows()));
    let run = |name: &str, tau: f64| {
        let mut estimator = Estimator::<f64>::from_name(name, tau).unwrap();
        case.run(&mut estimator, &sample).0
    };
    let darn = run("darn-sample-slope", 1.0);
    assert_close("reinmax at tau 1", &run("reinmax", 1.0), darn.as_slice());
    let apart = run("reinmax", 2.0)
        .as_slice()
        .iter()
        .zip(darn.as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        apart > 1e-3,
        "reinmax at tau 2 should differ from DARN: {apart}"
    );
    let case = Case::categorical();
    let sample = InjectedNoise::Sample(sample_for(&case, case.logits.rows()));
    let mut reinmax = Estimator::<f64>::from_name("reinmax", 1.0).unwrap();
    let mut darn = Estimator::<f64>::from_name("darn-sample-slope", 1.0).unwrap();
    let (a, b) = (
        case.run(&mut reinmax, &sample).0,
        case.run(&mut darn, &sample).0,
    );
    let apart = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(apart > 1e-3, "three classes: they differ ({apart})");
}

#[test]
fn gumbel_rao_at_injected_uniforms_matches_the_formula() {
    use gumbelgrad::estimators::GumbelRao;
    // D = gumbel_max(x + g(u)); for draw j, z~_j = the conditional perturbed
    // log-probabilities of row r*m + j of v, y_j = softmax(z~_j / tau) (the same as
    // softmax((x + z~_j - ln p) / tau)), and grad_x = (1/m) sum_j (1/tau) J(y_j) f'(D),
    // the noise held constant.
    let (tau, m) = (0.7, 3);
    for case in [Case::categorical(), Case::binary()] {
        let (rows, cols, k) = (case.logits.rows(), case.categorical_cols(), case.k());
        let u = uniforms(rows, cols, 21);
        let v = uniforms(rows * m, cols, 22);
        let mut estimator = GumbelRao::new(tau, m).unwrap();
        let noise = InjectedNoise::Uniforms {
            u: u.clone(),
            v: v.clone(),
        };
        let (grad, forward) = case.run(&mut estimator, &noise);
        let g = by_hand::gumbel(u.as_slice());
        let w = case.w_categorical();
        let (mut expected, mut samples) = (Vec::new(), Vec::new());
        for r in 0..rows {
            let l = case.row(r);
            let p = by_hand::softmax(&l, k);
            let d = by_hand::gumbel_max(&l, &g[r * cols..(r + 1) * cols], k);
            let slope = by_hand::f_slope(&d, &w);
            let mut row = vec![0.0; cols];
            for j in 0..m {
                let (z, _) = by_hand::conditional(&p, &d, v.row(r * m + j), k);
                let tempered: Vec<f64> = z.iter().map(|z| z / tau).collect();
                let y = by_hand::softmax(&tempered, k);
                for (acc, g) in row.iter_mut().zip(by_hand::softmax_vjp(&y, &slope, k, tau)) {
                    *acc += g / (m * rows) as f64;
                }
            }
            expected.extend(case.back(row));
            samples.extend(case.back(d));
        }
        assert_close("gumbel-rao", &grad, &expected);
        assert_eq!(forward.as_slice(), samples.as_slice(), "the forward is D");
        // The same at the Gumbel noise itself.
        let gumbel = Tensor::from_vec(rows, cols, g).unwrap();
        let (again, _) = case.run(&mut estimator, &InjectedNoise::Gumbel { gumbel, v });
        assert_eq!(again, grad);
    }
}

#[test]
fn gumbel_rao_rejects_a_bare_sample_and_too_few_conditional_uniforms() {
    use gumbelgrad::estimators::GumbelRao;
    let case = Case::categorical();
    let (rows, cols) = (case.logits.rows(), case.categorical_cols());
    let mut estimator = GumbelRao::new(0.5, 4).unwrap();
    let run = |estimator: &mut GumbelRao, noise: &InjectedNoise| {
        let tape = Tape::<f64>::new();
        let x = tape.variable(&case.logits);
        let mut rng = StdRng::seed_from_u64(3);
        let estimate = estimator.estimate_with_noise(
            x,
            case.group_size,
            noise,
            &mut |z| z.sum_cols(),
            &mut rng,
        );
        tape.backward(estimate.loss).unwrap_err().to_string()
    };
    let sample = InjectedNoise::Sample(sample_for(&case, rows));
    assert!(run(&mut estimator, &sample).contains("not a `Sample`"));
    // One row of `v` per example instead of four.
    let short = InjectedNoise::Uniforms {
        u: uniforms(rows, cols, 1),
        v: uniforms(rows, cols, 2),
    };
    assert!(run(&mut estimator, &short).contains("4 rows of uniforms per example"));
    let mut outside = uniforms(rows * 4, cols, 2);
    outside.as_mut_slice()[5] = 1.0;
    let outside = InjectedNoise::Uniforms {
        u: uniforms(rows, cols, 1),
        v: outside,
    };
    assert!(run(&mut estimator, &outside).contains("strictly inside (0, 1)"));
}
