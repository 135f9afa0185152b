//! The importance-weighted bound of a [`DiscreteVae`] (Burda, Grosse and Salakhutdinov,
//! arXiv 1509.00519), computed without a tape, as fast as the products allow.
//!
//! ```text
//! -log p(x) <= -log (1/m) sum_i p(x|z_i) p(z_i) / q(z_i|x),    z_i ~ q(z|x)
//! log w_i = -sum_pixels BCE(decoder(z_i), x) + log p(z_i) - log q(z_i|x)
//! ```
//!
//! The paper's evaluation uses `m = 1000` samples on 10,000 test images: ten million
//! decoder passes, far more work than training. Nothing here needs a gradient, so this
//! path skips the tape and does only what the bound needs:
//!
//! - **Once per image**: the encoder's logits, and from them the table of `log q` of every
//!   class (or unit) and the cumulative probabilities each variable is sampled from.
//! - **Sampling by inverse CDF**: one uniform per categorical variable (pick the first
//!   class whose cumulative probability exceeds it) or per binary unit (`u < sigmoid`),
//!   instead of one Gumbel per class: the same distribution as Gumbel-max, with a tenth of
//!   the random numbers and no logarithms.
//! - **The first decoder layer is a gather**: a hard sample is one-hot (or 0/1), so
//!   `z W_1` is the sum of the rows of `W_1` at the active units: 20 rows of 256 values
//!   for the paper's 20 x 10 latent, against a 200 x 256 product.
//! - **The other layers are large products**: up to `batch_size` sample rows at a time
//!   through [`kernels::gemm`](crate::kernels::gemm) on one thread, the bias written first
//!   and the product added onto it.
//! - **Threads share out the images**: [`num_threads`](crate::kernels::num_threads)
//!   threads (the kept-alive helpers of [`kernels::threads`](crate::kernels::threads))
//!   take groups of images from a queue. Every image draws its samples from its
//!   own random stream (seeded by one number drawn from the caller's generator and the
//!   image's index) and the per-image bounds are added in image order, so **the result is
//!   bit-identical for every thread count** and every `batch_size`.

use std::sync::Mutex;

use rand::Rng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::bce::bce_with_logits_sum;
use crate::kernels::gemm::{GemmConfig, gemm};
use crate::kernels::softmax::{log_softmax_groups, logsumexp};
use crate::kernels::threads::for_each_shared_with;
use crate::models::discrete_vae::{DiscreteVae, Latent};
use crate::models::seeds::{Stream, rng_for};
use crate::nn::{Activation, Mlp, Parameters};
use crate::ops::unary::{sigmoid, softplus};
use crate::tensor::Tensor;

/// The mean over `images` of the importance-weighted bound with `samples` samples per
/// image (see the module docs), decoding at most `batch_size` sample rows per product.
pub(crate) fn importance_weighted_bound<T: Float, R: Rng + ?Sized>(
    model: &DiscreteVae<T>,
    images: &Tensor<T>,
    samples: usize,
    batch_size: usize,
    rng: &mut R,
) -> Result<f64> {
    if samples == 0 {
        return Err(Error::invalid_argument(
            "DiscreteVae::importance_weighted_bound",
            "need at least one sample",
        ));
    }
    let count = images.rows();
    if count == 0 {
        return Ok(0.0);
    }
    let logits = model.logits_of(images, batch_size)?;
    let sampler = Sampler::new(model.config().latent, &logits);
    let stream_seed = rng.next_u64();
    let job = Job {
        decoder: model.decoder(),
        params: model.parameters(),
        images,
        sampler: &sampler,
        log_prior: model.config().latent.log_prior(),
        samples,
        rows_per_pass: batch_size.max(1),
        stream_seed,
    };
    // Whole images per group, as many as fill one pass (at least one); each group's
    // bounds are written into its own slice, so the sum below is in image order.
    let images_per_group = (job.rows_per_pass / samples).max(1);
    let mut bounds = vec![0.0; count];
    let failure = Mutex::new(None);
    for_each_shared_with(
        bounds.chunks_mut(images_per_group).enumerate(),
        Scratch::default,
        |scratch, (group, out)| {
            let first = group * images_per_group;
            match job.run(first..first + out.len(), scratch) {
                Ok(values) => out.copy_from_slice(&values),
                Err(error) => {
                    let mut failure = failure.lock().unwrap_or_else(|p| p.into_inner());
                    failure.get_or_insert(error);
                }
            }
        },
    );
    if let Some(error) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    Ok(bounds.iter().sum::<f64>() / count as f64)
}

/// Draws hard samples of the latent for one image at a time, from tables computed once
/// per image (each `images x width`, in f64).
struct Sampler {
    latent: Latent,
    width: usize,
    /// `log q` of each class (categorical) or of each unit being 1 (Bernoulli).
    log_q: Vec<f64>,
    /// Bernoulli: `log q` of each unit being 0 (empty for categorical latents).
    log_q_zero: Vec<f64>,
    /// Categorical: the cumulative probability up to and including each class within
    /// its variable. Bernoulli: the probability of each unit being 1.
    threshold: Vec<f64>,
}

impl Sampler {
    fn new<T: Float>(latent: Latent, logits: &Tensor<T>) -> Sampler {
        let width = logits.cols();
        let values: Vec<f64> = logits.as_slice().iter().map(|v| v.to_f64()).collect();
        match latent {
            Latent::Categorical { classes, .. } => {
                let mut log_q = vec![0.0; values.len()];
                log_softmax_groups(&values, &mut log_q, classes);
                let mut threshold = vec![0.0; values.len()];
                for (cumulative, group) in threshold
                    .chunks_exact_mut(classes)
                    .zip(log_q.chunks_exact(classes))
                {
                    let mut total = 0.0;
                    for (c, &l) in cumulative.iter_mut().zip(group) {
                        total += l.exp();
                        *c = total;
                    }
                }
                Sampler {
                    latent,
                    width,
                    log_q,
                    log_q_zero: Vec::new(),
                    threshold,
                }
            }
            Latent::Bernoulli { .. } => Sampler {
                latent,
                width,
                // log sigmoid(x) = -softplus(-x), log sigmoid(-x) = -softplus(x)
                log_q: values.iter().map(|&x| -softplus(-x)).collect(),
                log_q_zero: values.iter().map(|&x| -softplus(x)).collect(),
                threshold: values.iter().map(|&x| sigmoid(x)).collect(),
            },
        }
    }

    /// Draws one sample for `image`: pushes its active columns (ascending) onto
    /// `active` and returns its `log q(z|x)`.
    fn draw(&self, image: usize, rng: &mut StdRng, active: &mut Vec<u32>) -> f64 {
        let span = image * self.width..(image + 1) * self.width;
        let (log_q, threshold) = (&self.log_q[span.clone()], &self.threshold[span.clone()]);
        let mut total = 0.0;
        match self.latent {
            Latent::Categorical { classes, .. } => {
                for (variable, cumulative) in threshold.chunks_exact(classes).enumerate() {
                    let u: f64 = rng.random();
                    // The first class whose cumulative probability exceeds u; rounding
                    // can leave the last cumulative value just below 1, so fall back to
                    // the last class with any probability.
                    let group = &log_q[variable * classes..(variable + 1) * classes];
                    let class = cumulative.iter().position(|&c| u < c).unwrap_or_else(|| {
                        group
                            .iter()
                            .rposition(|&l| l > f64::NEG_INFINITY)
                            .unwrap_or(0)
                    });
                    active.push((variable * classes + class) as u32);
                    total += group[class];
                }
            }
            Latent::Bernoulli { .. } => {
                let log_q_zero = &self.log_q_zero[span];
                for (unit, &p) in threshold.iter().enumerate() {
                    let u: f64 = rng.random();
                    if u < p {
                        active.push(unit as u32);
                        total += log_q[unit];
                    } else {
                        total += log_q_zero[unit];
                    }
                }
            }
        }
        total
    }
}

/// Everything the threads share: the model, the images, the sampling tables.
struct Job<'a, T: Float> {
    decoder: &'a Mlp,
    params: &'a Parameters<T>,
    images: &'a Tensor<T>,
    sampler: &'a Sampler,
    log_prior: f64,
    samples: usize,
    rows_per_pass: usize,
    stream_seed: u64,
}

/// One thread's buffers, reused from pass to pass.
struct Scratch<T> {
    /// Active latent columns of every row of the pass, back to back.
    active: Vec<u32>,
    /// Where each row's active columns end in `active`.
    active_ends: Vec<usize>,
    /// `log q(z|x)` of every row of the pass.
    log_q: Vec<f64>,
    /// The activations of each decoder layer for the pass, `rows x width`.
    layers: Vec<Vec<T>>,
    /// The log-weights of the image being completed.
    log_weights: Vec<f64>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            active: Vec::new(),
            active_ends: Vec::new(),
            log_q: Vec::new(),
            layers: Vec::new(),
            log_weights: Vec::new(),
        }
    }
}

impl<T: Float> Job<'_, T> {
    /// The bound of each image in `range`, in order.
    fn run(&self, range: std::ops::Range<usize>, scratch: &mut Scratch<T>) -> Result<Vec<f64>> {
        let mut bounds = Vec::with_capacity(range.len());
        let log_m = (self.samples as f64).ln();
        // Images of the range, each with its own stream, cut into passes of at most
        // `rows_per_pass` rows (a pass never mixes a partial image with another image).
        let rows_per_image = self.samples.min(self.rows_per_pass);
        let mut streams: Vec<(usize, StdRng)> = range
            .clone()
            .map(|image| {
                let stream = rng_for(self.stream_seed, Stream::Eval, image as u64);
                (image, stream)
            })
            .collect();
        if self.samples <= self.rows_per_pass {
            // Whole images in one pass.
            self.draw_pass(&mut streams, self.samples, scratch);
            self.decode_pass(range.len() * self.samples, scratch)?;
            for (slot, image) in range.enumerate() {
                let rows = slot * self.samples..(slot + 1) * self.samples;
                scratch.log_weights.clear();
                for row in rows {
                    let cost = self.cost(image, row, scratch);
                    scratch
                        .log_weights
                        .push(-cost + self.log_prior - scratch.log_q[row]);
                }
                bounds.push(log_m - logsumexp(&scratch.log_weights));
            }
        } else {
            // One image at a time, its samples in several passes.
            for (image, stream) in streams {
                let mut one = vec![(image, stream)];
                let mut log_weights = Vec::with_capacity(self.samples);
                let mut drawn = 0;
                while drawn < self.samples {
                    let rows = rows_per_image.min(self.samples - drawn);
                    self.draw_pass(&mut one, rows, scratch);
                    self.decode_pass(rows, scratch)?;
                    for row in 0..rows {
                        let cost = self.cost(image, row, scratch);
                        log_weights.push(-cost + self.log_prior - scratch.log_q[row]);
                    }
                    drawn += rows;
                }
                bounds.push(log_m - logsumexp(&log_weights));
            }
        }
        Ok(bounds)
    }

    /// Draws `per_image` samples for each image of `streams` (image-major rows).
    fn draw_pass(
        &self,
        streams: &mut [(usize, StdRng)],
        per_image: usize,
        scratch: &mut Scratch<T>,
    ) {
        scratch.active.clear();
        scratch.active_ends.clear();
        scratch.log_q.clear();
        for (image, stream) in streams {
            for _ in 0..per_image {
                let log_q = self.sampler.draw(*image, stream, &mut scratch.active);
                scratch.log_q.push(log_q);
                scratch.active_ends.push(scratch.active.len());
            }
        }
    }

    /// Runs the decoder on the `rows` samples drawn by [`Job::draw_pass`]; the output
    /// logits end up in the last of `scratch.layers`.
    fn decode_pass(&self, rows: usize, scratch: &mut Scratch<T>) -> Result<()> {
        let layers = self.decoder.layers();
        let activation = self.decoder.activation();
        let last = layers.len() - 1;
        scratch.layers.resize_with(layers.len(), Vec::new);
        let config = GemmConfig::current().with_threads(1);
        for (index, layer) in layers.iter().enumerate() {
            let (weight, bias) = (
                self.params.get(layer.weight()),
                self.params.get(layer.bias()),
            );
            let width = layer.out_features();
            let (before, rest) = scratch.layers.split_at_mut(index);
            let out = &mut rest[0];
            out.clear();
            // Bias first; the product (or gather) adds onto it.
            for _ in 0..rows {
                out.extend_from_slice(bias.as_slice());
            }
            if index == 0 {
                // z is 0/1: z W is the sum of the rows of W at the active columns.
                let mut start = 0;
                for (row, &end) in out.chunks_exact_mut(width).zip(&scratch.active_ends) {
                    for &column in &scratch.active[start..end] {
                        for (o, &w) in row.iter_mut().zip(weight.row(column as usize)) {
                            *o += w;
                        }
                    }
                    start = end;
                }
            } else {
                let input = &before[index - 1];
                gemm(
                    &config,
                    false,
                    false,
                    rows,
                    width,
                    layer.in_features(),
                    input,
                    weight.as_slice(),
                    out,
                )?;
            }
            if index < last {
                apply(activation, out);
            }
        }
        Ok(())
    }

    /// `-log p(x | z)` of pass row `row` against image `image`: the summed BCE of the
    /// decoder's logits ([`bce_with_logits_sum`], vectorised, summed in f64).
    fn cost(&self, image: usize, row: usize, scratch: &Scratch<T>) -> f64 {
        let logits = scratch.layers.last().expect("the decoder has a layer");
        let width = self.images.cols();
        bce_with_logits_sum(
            &logits[row * width..(row + 1) * width],
            self.images.row(image),
        )
    }
}

/// The hidden layers' nonlinearity, in place.
fn apply<T: Float>(activation: Activation, values: &mut [T]) {
    for v in values {
        *v = activation.value(*v);
    }
}
