//! Binary latents: relaxed Bernoulli gradcheck, straight-through backward, sample
//! frequencies, bias/variance against the exact gradient, extremes and errors.

use gumbelgrad::estimators::{
    Estimator, GradientEstimator, exact, noise, relaxed_bernoulli, slope_annealed_st, st_bernoulli,
    st_relaxed_bernoulli,
};
use gumbelgrad::testing::{config, tensor_in};
use gumbelgrad::{Error, Float, GradcheckOptions, Tape, Tensor, gradcheck};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn case() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>, f64)> {
    (
        tensor_in(1..=4, 1..=6, -3.0..3.0),
        any::<u64>(),
        0.3f64..3.0,
    )
        .prop_map(|(x, seed, tau)| {
            let mut rng = StdRng::seed_from_u64(seed);
            let l = noise::logistic(x.rows(), x.cols(), &mut rng);
            (x, l, tau)
        })
}

/// Value of `f(x)` and the gradient of `sum(w * f(x))` for fixed random `w`.
fn grad_of<F>(x: &Tensor<f64>, f: F) -> (Tensor<f64>, Tensor<f64>)
where
    F: for<'t> Fn(gumbelgrad::Var<'t, f64>) -> gumbelgrad::Var<'t, f64>,
{
    let tape = Tape::new();
    let v = tape.variable(x);
    let y = f(v);
    let w = Tensor::random_uniform(x.rows(), x.cols(), -1.0, 1.0, &mut StdRng::seed_from_u64(1));
    let w = tape.constant(&w);
    tape.backward((y * w).sum()).unwrap();
    (y.value().unwrap(), v.grad().unwrap())
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn relaxed_bernoulli_gradcheck((x, l, tau) in case()) {
        let report = gradcheck(&[x, l], GradcheckOptions::default(), |_, v| {
            relaxed_bernoulli(v[0], v[1], tau)
        }).unwrap();
        prop_assert!(report.max_rel_error < 1e-7, "{}", report);
    }

    /// ST Bernoulli and slope-annealed ST: exact 0/1 forward at 1[slope x + l > 0],
    /// backward equal to the gradient of the (gradchecked) op sigmoid(slope x).
    #[test]
    fn straight_through_bernoulli_backward_is_sigmoid((x, l, tau) in case()) {
        let slope = 1.0 / tau;
        for (s, hard_and_grad) in [
            (1.0, grad_of(&x, |v| st_bernoulli(v, v.tape().constant(&l)))),
            (slope, grad_of(&x, |v| slope_annealed_st(v, v.tape().constant(&l), slope))),
        ] {
            let (hard, grad) = hard_and_grad;
            let (_, soft_grad) = grad_of(&x, |v| (v * s).sigmoid());
            for ((&b, &xi), &li) in hard.as_slice().iter().zip(x.as_slice()).zip(l.as_slice()) {
                prop_assert_eq!(b, if s * xi + li > 0.0 { 1.0 } else { 0.0 });
            }
            prop_assert!(grad.max_abs_diff(&soft_grad).unwrap() < 1e-14);
        }
    }

    /// The binary ST Gumbel-Softmax: forward the ST Bernoulli sample for the same
    /// noise, backward (to logits and to noise) exactly the gradient of the
    /// gradchecked relaxed Bernoulli at that noise.
    #[test]
    fn straight_through_relaxed_backward_is_the_relaxed_gradient((x, l, tau) in case()) {
        let gradients = |relaxed: bool| {
            let tape = Tape::new();
            let (xv, lv) = (tape.variable(&x), tape.variable(&l));
            let y = if relaxed {
                relaxed_bernoulli(xv, lv, tau)
            } else {
                st_relaxed_bernoulli(xv, lv, tau)
            };
            let w = Tensor::random_uniform(x.rows(), x.cols(), -1.0, 1.0, &mut StdRng::seed_from_u64(2));
            tape.backward((y * tape.constant(&w)).sum()).unwrap();
            (y.value().unwrap(), xv.grad().unwrap(), lv.grad().unwrap())
        };
        let (hard, grad_x, grad_l) = gradients(false);
        let (_, relaxed_grad_x, relaxed_grad_l) = gradients(true);
        let tape = Tape::new();
        let st = st_bernoulli(tape.constant(&x), tape.constant(&l)).value().unwrap();
        prop_assert_eq!(&hard, &st);
        prop_assert!(grad_x.max_abs_diff(&relaxed_grad_x).unwrap() < 1e-14);
        prop_assert!(grad_l.max_abs_diff(&relaxed_grad_l).unwrap() < 1e-14);
        // The backward uses the noise: not the noise-free ST Bernoulli gradient.
        let (_, st_grad) = grad_of(&x, |v| st_bernoulli(v, v.tape().constant(&l)));
        let (_, own_grad) = grad_of(&x, |v| st_relaxed_bernoulli(v, v.tape().constant(&l), tau));
        prop_assert!(own_grad.max_abs_diff(&st_grad).unwrap() > 0.0);
    }

    /// At any temperature, thresholding the relaxed sample at 1/2 gives the ST sample
    /// for the same noise.
    #[test]
    fn relaxed_sample_rounds_to_the_hard_sample((x, l, tau) in case()) {
        let tape = Tape::new();
        let (xv, lv) = (tape.constant(&x), tape.constant(&l));
        let y = relaxed_bernoulli(xv, lv, tau).value().unwrap();
        let b = st_bernoulli(xv, lv).value().unwrap();
        for (&yi, &bi) in y.as_slice().iter().zip(b.as_slice()) {
            if (yi - 0.5).abs() > 1e-12 {
                prop_assert_eq!(bi, if yi > 0.5 { 1.0 } else { 0.0 });
            }
        }
    }
}

#[test]
fn bernoulli_sample_frequencies_match_sigmoid() {
    let mut rng = StdRng::seed_from_u64(61);
    let logits = Tensor::<f64>::from_vec(1, 4, vec![-2.0, -0.3, 0.0, 1.5]).unwrap();
    let draws = 50_000;
    let mut ones = [0usize; 4];
    for _ in 0..draws {
        let (b, _) = noise::sample_bernoulli(&logits, &mut rng);
        for (count, &v) in ones.iter_mut().zip(b.as_slice()) {
            *count += v as usize;
        }
    }
    for (i, &x) in logits.as_slice().iter().enumerate() {
        let p = 1.0 / (1.0 + (-x).exp());
        let se = (p * (1.0 - p) / draws as f64).sqrt();
        let freq = ones[i] as f64 / draws as f64;
        assert!((freq - p).abs() < 4.0 * se, "{x}: {freq} vs {p}");
    }
}

/// `f(z) = (<z, a> - 1)^2 + tanh(<z, c>)` on `[batch, units]`.
fn cost<'t>(
    z: gumbelgrad::Var<'t, f64>,
    a: gumbelgrad::Var<'t, f64>,
    c: gumbelgrad::Var<'t, f64>,
) -> gumbelgrad::Var<'t, f64> {
    ((z * a).sum_cols() - 1.0).square() + (z * c).sum_cols().tanh()
}

fn cost_plain(z: &[f64], a: &[f64], c: &[f64]) -> f64 {
    let za: f64 = z.iter().zip(a).map(|(x, y)| x * y).sum();
    let zc: f64 = z.iter().zip(c).map(|(x, y)| x * y).sum();
    (za - 1.0).powi(2) + zc.tanh()
}

/// Mean single-sample gradient minus the exact one (norm), and the standard error of
/// that norm (the root of the summed variances of the mean's components). The units
/// fire with probability `sigmoid(slope * logit)` (slope 1 except for slope-annealed
/// ST), so the exact gradient is `slope` times that at logits `slope * x`.
fn bias_of(
    slope: f64,
    estimator: &mut Estimator<f64>,
    logits: &[f64],
    a: &Tensor<f64>,
    c: &Tensor<f64>,
) -> (f64, f64) {
    let samples = 100_000;
    let mut rng = StdRng::seed_from_u64(62);
    let units = logits.len();
    let batch = Tensor::from_vec(
        samples,
        units,
        (0..samples).flat_map(|_| logits.iter().copied()).collect(),
    )
    .unwrap();
    let tape = Tape::new();
    let x = tape.variable(&batch);
    let (av, cv) = (tape.constant(a), tape.constant(c));
    let estimate = estimator.estimate(x, 1, &mut |z| cost(z, av, cv), &mut rng);
    tape.backward(estimate.loss).unwrap();
    let grads = x.grad().unwrap().map(|g| g * samples as f64);
    let scaled: Vec<f64> = logits.iter().map(|x| slope * x).collect();
    let truth = exact::bernoulli(&scaled, |z| cost_plain(z, a.as_slice(), c.as_slice())).unwrap();
    let (mut bias2, mut var_of_mean) = (0.0, 0.0);
    for j in 0..units {
        let column: Vec<f64> = (0..samples).map(|r| grads.get(r, j)).collect();
        let mean = column.iter().sum::<f64>() / samples as f64;
        let var = column.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (samples - 1) as f64;
        bias2 += (mean - slope * truth.gradient[j]).powi(2);
        var_of_mean += var / samples as f64;
    }
    (bias2.sqrt(), var_of_mean.sqrt())
}

#[test]
fn relaxed_bernoulli_bias_shrinks_as_temperature_falls() {
    let logits = [0.4, -1.0, 1.2, 0.0];
    let a = Tensor::from_vec(1, 4, vec![1.0, -0.5, 0.8, 0.3]).unwrap();
    let c = Tensor::from_vec(1, 4, vec![-0.7, 1.1, 0.2, 0.9]).unwrap();
    let mut previous: Option<(f64, f64)> = None;
    for tau in [0.1, 0.5, 1.0] {
        let (bias, se) = bias_of(
            1.0,
            &mut Estimator::relaxed_bernoulli(tau).unwrap(),
            &logits,
            &a,
            &c,
        );
        eprintln!("relaxed bernoulli tau={tau}: bias {bias:.4} (se {se:.4})");
        if let Some((cold_bias, cold_se)) = previous {
            let margin = 4.0 * (se * se + cold_se * cold_se).sqrt();
            assert!(
                bias - cold_bias > margin,
                "tau {tau}: {cold_bias} then {bias}, margin {margin}"
            );
        }
        previous = Some((bias, se));
    }
    // The straight-through estimators are biased on this cost: their bias stays
    // well outside the error bars.
    for (slope, mut estimator) in [
        (1.0, Estimator::st_bernoulli().unwrap()),
        (1.0, Estimator::st_relaxed_bernoulli(0.5).unwrap()),
        (2.0, Estimator::slope_annealed_st(2.0).unwrap()),
    ] {
        let (bias, se) = bias_of(slope, &mut estimator, &logits, &a, &c);
        eprintln!("{}: bias {bias:.4} (se {se:.4})", estimator.name());
        assert!(
            bias > 4.0 * se,
            "{} bias {bias} within 4 se {se}",
            estimator.name()
        );
    }
}

fn extremes<T: Float>() {
    let mut rng = StdRng::seed_from_u64(63);
    let logits =
        Tensor::<T>::from_vec(1, 4, [1e4, -1e4, 0.0, 5e3].map(T::from_f64).to_vec()).unwrap();
    for tau in [1e-3, 1.0, 1e3] {
        let tape = Tape::<T>::new();
        tape.set_finite_check(true);
        let x = tape.variable(&logits);
        let l = tape.constant(&noise::logistic(1, 4, &mut rng));
        let mut loss = tape.scalar(T::ZERO);
        for y in [
            relaxed_bernoulli(x, l, tau),
            st_relaxed_bernoulli(x, l, tau),
            st_bernoulli(x, l),
            slope_annealed_st(x, l, 1.0 / tau),
        ] {
            assert!(y.value().unwrap().all_finite());
            loss = loss + (y * y).sum();
        }
        tape.backward(loss).unwrap();
        assert!(x.grad().unwrap().all_finite());
    }
}

#[test]
fn extremes_stay_finite() {
    extremes::<f32>();
    extremes::<f64>();
}

#[test]
fn bernoulli_errors_are_typed() {
    for bad in [0.0, -2.0, f64::NAN] {
        assert!(matches!(
            Estimator::<f64>::relaxed_bernoulli(bad),
            Err(Error::InvalidTemperature { .. })
        ));
        assert!(matches!(
            Estimator::<f64>::slope_annealed_st(bad),
            Err(Error::InvalidTemperature { .. })
        ));
        assert!(matches!(
            Estimator::<f64>::st_relaxed_bernoulli(bad),
            Err(Error::InvalidTemperature { .. })
        ));
        let tape = Tape::<f64>::new();
        let x = tape.variable(&Tensor::zeros(1, 2));
        assert!(matches!(
            relaxed_bernoulli(x, x, bad).value(),
            Err(Error::InvalidTemperature { .. })
        ));
    }
    let mut estimator = Estimator::<f64>::from_name("relaxed-bernoulli", 0.5).unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 4));
    let mut rng = StdRng::seed_from_u64(0);
    let z = estimator.sample(x, 2, &mut rng); // group_size must be 1
    assert!(matches!(z.value(), Err(Error::InvalidArgument { .. })));
    let tape = Tape::<f64>::new();
    let x = tape.variable(&Tensor::zeros(2, 4));
    let y = tape.constant(&Tensor::zeros(2, 3));
    assert!(matches!(
        st_bernoulli(x, y).value(),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn bernoulli_estimators_by_name() {
    let mut rng = StdRng::seed_from_u64(64);
    for (name, expected, hard) in [
        ("relaxed-bernoulli", "relaxed-bernoulli", false),
        ("st-bernoulli", "st-bernoulli", true),
        ("st-relaxed-bernoulli", "st-relaxed-bernoulli", true),
        ("slope-annealed-st", "slope-annealed-st", true),
    ] {
        let mut estimator = Estimator::<f32>::from_name(name, 0.5).unwrap();
        assert_eq!(estimator.name(), expected);
        estimator.set_temperature(0.25).unwrap();
        if name == "slope-annealed-st" {
            assert_eq!(estimator.temperature(), Some(0.25)); // slope 4
        }
        let tape = Tape::new();
        let x = tape.variable(&Tensor::random_normal(3, 5, 0.0, 1.0, &mut rng));
        let z = estimator.sample(x, 1, &mut rng).value().unwrap();
        assert_eq!(hard, z.as_slice().iter().all(|&v| v == 0.0 || v == 1.0));
    }
}
