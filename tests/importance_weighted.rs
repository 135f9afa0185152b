//! The importance-weighted bound's evaluation path: it samples from q (the one-sample
//! bound's mean is the exact negative ELBO, by enumeration), and its value depends on the
//! generator alone, not on the thread count or the rows per product.

use gumbelgrad::models::{DiscreteVae, Latent, VaeConfig};
use gumbelgrad::{Tape, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config(latent: Latent) -> VaeConfig {
    VaeConfig {
        input_dim: 12,
        latent,
        encoder_hidden: vec![6],
        decoder_hidden: vec![5, 7],
    }
}

const LATENTS: [Latent; 2] = [
    Latent::Categorical {
        variables: 2,
        classes: 3,
    },
    Latent::Bernoulli { units: 3 },
];

fn binary_images(rows: usize, cols: usize, seed: u64) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::<f64>::random_uniform(rows, cols, 0.0, 1.0, &mut rng)
        .map(|p| if p > 0.5 { 1.0 } else { 0.0 })
}

/// Every latent configuration, as 0/1 codes.
fn codes(latent: Latent) -> Vec<Vec<f64>> {
    match latent {
        Latent::Categorical { variables, classes } => (0..classes.pow(variables as u32))
            .map(|mut index| {
                let mut code = vec![0.0; variables * classes];
                for variable in 0..variables {
                    code[variable * classes + index % classes] = 1.0;
                    index /= classes;
                }
                code
            })
            .collect(),
        Latent::Bernoulli { units } => (0..1usize << units)
            .map(|bits| (0..units).map(|u| ((bits >> u) & 1) as f64).collect())
            .collect(),
    }
}

/// `log q(code | logits)`.
fn log_q(latent: Latent, logits: &[f64], code: &[f64]) -> f64 {
    match latent {
        Latent::Categorical { classes, .. } => logits
            .chunks(classes)
            .zip(code.chunks(classes))
            .map(|(group, chosen)| {
                let lse = gumbelgrad::kernels::softmax::logsumexp(group);
                group
                    .iter()
                    .zip(chosen)
                    .map(|(l, z)| z * (l - lse))
                    .sum::<f64>()
            })
            .sum(),
        Latent::Bernoulli { .. } => logits
            .iter()
            .zip(code)
            .map(|(&x, &z)| {
                let signed = if z == 1.0 { x } else { -x };
                -(1.0 + (-signed).exp()).ln()
            })
            .sum(),
    }
}

/// The exact negative ELBO of one image, `E_q[cost(z) - log p(z) + log q(z)]`, by
/// enumerating the latent configurations.
fn exact_negative_elbo(model: &DiscreteVae<f64>, image: &[f64]) -> f64 {
    let latent = model.config().latent;
    let x = Tensor::from_slice(1, image.len(), image).unwrap();
    let logits = model.logits_of(&x, 1).unwrap();
    codes(latent)
        .iter()
        .map(|code| {
            let tape = Tape::new();
            let params = model.parameters().bind(&tape);
            let z = tape.constant(&Tensor::from_slice(1, code.len(), code).unwrap());
            let cost = model
                .reconstruction_cost(&params, z, tape.constant(&x))
                .scalar()
                .unwrap();
            let log_q = log_q(latent, logits.as_slice(), code);
            log_q.exp() * (cost - latent.log_prior() + log_q)
        })
        .sum()
}

#[test]
fn the_one_sample_bound_averages_to_the_exact_negative_elbo() {
    for latent in LATENTS {
        let model = DiscreteVae::<f64>::new(config(latent), &mut StdRng::seed_from_u64(1)).unwrap();
        let images = binary_images(4, 12, 2);
        for image in 0..images.rows() {
            let exact = exact_negative_elbo(&model, images.row(image));
            // 10 independent estimates, each the mean over 300 copies of the image.
            let copies = Tensor::from_vec(300, 12, images.row(image).repeat(300)).unwrap();
            let estimates: Vec<f64> = (0..10)
                .map(|seed| {
                    model
                        .importance_weighted_bound(&copies, 1, 64, &mut StdRng::seed_from_u64(seed))
                        .unwrap()
                })
                .collect();
            let mean = estimates.iter().sum::<f64>() / 10.0;
            let variance = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 9.0 / 10.0;
            let standard_error = variance.sqrt();
            assert!(
                standard_error > 0.0 && (mean - exact).abs() < 4.0 * standard_error,
                "{latent:?}, image {image}: mean {mean} against exact {exact} (SE {standard_error})"
            );
        }
    }
}

#[test]
fn the_bound_depends_on_neither_threads_nor_rows_per_product() {
    for latent in LATENTS {
        let model = DiscreteVae::<f32>::new(config(latent), &mut StdRng::seed_from_u64(4)).unwrap();
        let images = binary_images(23, 12, 5).cast::<f32>();
        let mut values = Vec::new();
        for threads in [1, 2, 3] {
            gumbelgrad::kernels::set_num_threads(threads);
            for (samples, rows) in [(50, 1), (50, 7), (50, 64), (50, 1000), (5, 3), (5, 1000)] {
                let bound = model
                    .importance_weighted_bound(
                        &images,
                        samples,
                        rows,
                        &mut StdRng::seed_from_u64(6),
                    )
                    .unwrap();
                assert!(bound.is_finite());
                values.push(((samples, rows, threads), bound));
            }
        }
        for ((samples, rows, threads), bound) in &values {
            let first = values
                .iter()
                .find(|((s, _, _), _)| s == samples)
                .map(|(_, b)| *b)
                .unwrap();
            assert_eq!(
                bound.to_bits(),
                first.to_bits(),
                "{latent:?}: m = {samples}, {rows} rows, {threads} threads: {bound} against {first}"
            );
        }
    }
}
