//! The embedded default data set: handwriting-like digits 0-9 drawn procedurally from
//! a seed, so the examples train out of the box with nothing to download.
//!
//! Each digit is a few pen strokes (line segments, elliptic arcs, cubic Bézier
//! curves) in a unit square, with a little per-digit choice of style (a 1 with or
//! without a flag, an open or closed 4, a 7 with or without a bar). Every sample then
//! gets its own
//!
//! 1. smooth random wobble: each point moves by a low-frequency sinusoidal field, so
//!    strokes bend like a hand's rather than break;
//! 2. random affine map: rotation (±11°), scale (0.85-1.1), aspect, slant (shear)
//!    and shift;
//! 3. random pen thickness (radius 0.9-1.9 pixels);
//!
//! and is rendered on a 28 x 28 grid (digit about 20 pixels tall, as in MNIST) by
//! distance to the strokes, then binarised (ink where the pen covered the pixel
//! centre). Image `i` of a split depends only on `(seed, split, i)`, so a smaller set
//! is a prefix of a larger one, and labels cycle `0, 1, ..., 9, 0, ...`.
//!
//! ```
//! use gumbelgrad::data::SyntheticDigits;
//! let (train, test) = SyntheticDigits::new(7).with_sizes(100, 20).generate();
//! assert_eq!((train.len(), test.len(), train.dimension()), (100, 20, 784));
//! assert_eq!(train.labels.as_ref().unwrap()[13], 3);
//! assert!(train.images.as_bytes().iter().all(|&b| b == 0 || b == 255)); // 0 or 1
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::batches::epoch_seed;
use crate::data::dataset::Dataset;
use crate::tensor::Tensor;

/// Side of the square images, in pixels.
pub const SIDE: usize = 28;

/// Settings of the generated data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticDigits {
    /// Seed of everything random.
    pub seed: u64,
    /// Number of training images (default 20,000).
    pub train_size: usize,
    /// Number of test images (default 2,000).
    pub test_size: usize,
    /// Binary images (default) or the gray anti-aliased rendering.
    pub binarized: bool,
}

impl SyntheticDigits {
    /// 20,000 training and 2,000 test images, binarised, from `seed`.
    pub fn new(seed: u64) -> Self {
        SyntheticDigits {
            seed,
            train_size: 20_000,
            test_size: 2_000,
            binarized: true,
        }
    }

    /// Sets the sizes of the two splits.
    pub fn with_sizes(mut self, train_size: usize, test_size: usize) -> Self {
        self.train_size = train_size;
        self.test_size = test_size;
        self
    }

    /// Keeps the gray (anti-aliased) rendering instead of binarising.
    pub fn gray(mut self) -> Self {
        self.binarized = false;
        self
    }

    /// Generates `(train, test)`.
    pub fn generate(&self) -> (Dataset, Dataset) {
        (
            self.split(0x0074_7261_696e, self.train_size),
            self.split(0x7465_7374, self.test_size),
        )
    }

    fn split(&self, tag: u64, size: usize) -> Dataset {
        let mut pixels = Vec::with_capacity(size * SIDE * SIDE);
        let mut labels = Vec::with_capacity(size);
        for index in 0..size {
            let digit = (index % 10) as u8;
            let mut rng = StdRng::seed_from_u64(epoch_seed(self.seed ^ tag, index as u64));
            let image = draw_digit(digit, &mut rng);
            if self.binarized {
                pixels.extend(image.iter().map(|&x| if x >= 0.5 { 1.0 } else { 0.0 }));
            } else {
                pixels.extend_from_slice(&image);
            }
            labels.push(digit);
        }
        let images = Tensor::from_vec(size, SIDE * SIDE, pixels).expect("sizes agree");
        Dataset::new(images, Some(labels), SIDE, SIDE).expect("sizes agree")
    }
}

type Point = (f64, f64);

/// One pen stroke in the unit square (x right, y down).
#[derive(Debug, Clone, Copy)]
enum Stroke {
    Line(Point, Point),
    /// Centre, radii, start and end angle in degrees (0 = right, 90 = down).
    Arc(Point, (f64, f64), f64, f64),
    Bezier(Point, Point, Point, Point),
}

impl Stroke {
    /// The stroke as a polyline.
    fn points(self) -> Vec<Point> {
        match self {
            Stroke::Line(a, b) => (0..=6)
                .map(|i| {
                    let t = i as f64 / 6.0;
                    (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
                })
                .collect(),
            Stroke::Arc(c, (rx, ry), from, to) => {
                let steps = (((to - from).abs() / 360.0 * 32.0).ceil() as usize).max(4);
                (0..=steps)
                    .map(|i| {
                        let angle = (from + (to - from) * i as f64 / steps as f64).to_radians();
                        (c.0 + rx * angle.cos(), c.1 + ry * angle.sin())
                    })
                    .collect()
            }
            Stroke::Bezier(p0, p1, p2, p3) => (0..=14)
                .map(|i| {
                    let t = i as f64 / 14.0;
                    let u = 1.0 - t;
                    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
                    (
                        a * p0.0 + b * p1.0 + c * p2.0 + d * p3.0,
                        a * p0.1 + b * p1.1 + c * p2.1 + d * p3.1,
                    )
                })
                .collect(),
        }
    }
}

/// The strokes of `digit`, in one of its styles.
fn strokes<R: Rng + ?Sized>(digit: u8, rng: &mut R) -> Vec<Stroke> {
    use Stroke::{Arc, Bezier, Line};
    let coin = |rng: &mut R, p: f64| rng.random::<f64>() < p;
    match digit {
        0 => vec![Arc((0.5, 0.5), (0.19, 0.33), 0.0, 360.0)],
        1 => {
            let mut s = vec![Line((0.53, 0.16), (0.5, 0.84))];
            if coin(rng, 0.6) {
                s.push(Line((0.4, 0.27), (0.53, 0.16)));
            }
            if coin(rng, 0.25) {
                s.push(Line((0.39, 0.84), (0.62, 0.84)));
            }
            s
        }
        2 => vec![
            Arc((0.5, 0.34), (0.18, 0.18), 190.0, 380.0),
            Bezier((0.669, 0.40), (0.62, 0.55), (0.42, 0.70), (0.30, 0.84)),
            Line((0.30, 0.84), (0.72, 0.84)),
        ],
        3 => vec![
            Arc((0.5, 0.33), (0.17, 0.16), 200.0, 450.0),
            Arc((0.5, 0.665), (0.19, 0.175), 270.0, 510.0),
        ],
        4 => {
            let top = if coin(rng, 0.5) { 0.16 } else { 0.36 };
            vec![
                Line((0.58, 0.16), (0.29, 0.6)),
                Line((0.29, 0.6), (0.74, 0.6)),
                Line((0.63, top), (0.63, 0.85)),
            ]
        }
        5 => vec![
            Line((0.7, 0.16), (0.37, 0.16)),
            Line((0.37, 0.16), (0.35, 0.51)),
            Arc((0.5, 0.64), (0.2, 0.19), 220.0, 505.0),
        ],
        6 => vec![
            Arc((0.5, 0.65), (0.18, 0.19), 0.0, 360.0),
            Bezier((0.32, 0.65), (0.30, 0.38), (0.42, 0.18), (0.64, 0.15)),
        ],
        7 => {
            let mut s = vec![
                Line((0.29, 0.17), (0.71, 0.17)),
                Line((0.71, 0.17), (0.44, 0.85)),
            ];
            if coin(rng, 0.3) {
                s.push(Line((0.47, 0.5), (0.69, 0.5)));
            }
            s
        }
        8 => vec![
            Arc((0.5, 0.32), (0.15, 0.16), 0.0, 360.0),
            Arc((0.5, 0.655), (0.185, 0.18), 0.0, 360.0),
        ],
        _ => {
            let stem = if coin(rng, 0.5) {
                Line((0.67, 0.35), (0.62, 0.85))
            } else {
                Bezier((0.67, 0.35), (0.68, 0.6), (0.62, 0.78), (0.52, 0.86))
            };
            vec![Arc((0.5, 0.35), (0.17, 0.18), 0.0, 360.0), stem]
        }
    }
}

/// Draws one digit (`0..=9`) as 784 gray values in `[0, 1]`, with random style,
/// wobble, affine jitter and thickness from `rng`.
pub fn draw_digit<R: Rng + ?Sized>(digit: u8, rng: &mut R) -> Vec<f32> {
    let strokes = strokes(digit % 10, rng);

    // Smooth wobble: a low-frequency displacement field, one sinusoid per axis.
    let mut wave = || {
        let amplitude = rng.random_range(0.0..0.03);
        let (fx, fy) = (rng.random_range(-1.5..1.5), rng.random_range(-1.5..1.5));
        let phase = rng.random_range(0.0..std::f64::consts::TAU);
        move |(x, y): Point| amplitude * (std::f64::consts::TAU * (fx * x + fy * y) + phase).sin()
    };
    let (wave_x, wave_y) = (wave(), wave());

    // Affine jitter about the centre.
    let angle: f64 = rng.random_range(-0.2..0.2);
    let scale: f64 = rng.random_range(0.85..1.1);
    let aspect: f64 = rng.random_range(0.85..1.15);
    let slant: f64 = rng.random_range(-0.3..0.3);
    let shift = (rng.random_range(-0.05..0.05), rng.random_range(-0.05..0.05));
    let radius: f64 = rng.random_range(0.9..1.9);
    let (sin, cos) = angle.sin_cos();
    let to_pixels = |p: Point| -> Point {
        let (x, y) = (p.0 + wave_x(p) - 0.5, p.1 + wave_y(p) - 0.5);
        let x = x * aspect + slant * y;
        let (x, y) = (scale * (cos * x - sin * y), scale * (sin * x + cos * y));
        (
            SIDE as f64 * (0.5 + x + shift.0),
            SIDE as f64 * (0.5 + y + shift.1),
        )
    };

    let mut polylines: Vec<Vec<Point>> = strokes
        .into_iter()
        .map(|s| s.points().into_iter().map(to_pixels).collect())
        .collect();
    keep_inside(&mut polylines, radius);

    let mut image = vec![0.0f32; SIDE * SIDE];
    for points in &polylines {
        for pair in points.windows(2) {
            paint_segment(&mut image, pair[0], pair[1], radius);
        }
    }
    image
}

/// Blank pixels kept around the ink on every side, like MNIST's margin.
const MARGIN: f64 = 2.0;

/// Shrinks (about the centre) and shifts the strokes as needed so that the ink stays
/// at least [`MARGIN`] pixels from every edge.
fn keep_inside(polylines: &mut [Vec<Point>], radius: f64) {
    let all = || polylines.iter().flatten();
    let low = MARGIN + radius + 0.5;
    let high = SIDE as f64 - low;
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all() {
        (x_min, x_max, y_min, y_max) = (x_min.min(x), x_max.max(x), y_min.min(y), y_max.max(y));
    }
    let centre = SIDE as f64 / 2.0;
    let shrink = ((high - low) / (x_max - x_min).max(y_max - y_min)).min(1.0);
    let squeeze = |v: f64| centre + (v - centre) * shrink;
    let (x_min, x_max, y_min, y_max) = (
        squeeze(x_min),
        squeeze(x_max),
        squeeze(y_min),
        squeeze(y_max),
    );
    let shift = |min: f64, max: f64| {
        if min < low {
            low - min
        } else if max > high {
            high - max
        } else {
            0.0
        }
    };
    let (dx, dy) = (shift(x_min, x_max), shift(y_min, y_max));
    for point in polylines.iter_mut().flatten() {
        *point = (squeeze(point.0) + dx, squeeze(point.1) + dy);
    }
}

/// Inks every pixel whose centre is within `radius` of the segment `a b`, with a
/// one-pixel anti-aliased edge; keeps the darker of old and new ink.
fn paint_segment(image: &mut [f32], a: Point, b: Point, radius: f64) {
    let reach = radius + 1.0;
    let clamp = |v: f64| v.clamp(0.0, SIDE as f64 - 1.0) as usize;
    let (x0, x1) = (
        clamp((a.0.min(b.0) - reach).floor()),
        clamp((a.0.max(b.0) + reach).ceil()),
    );
    let (y0, y1) = (
        clamp((a.1.min(b.1) - reach).floor()),
        clamp((a.1.max(b.1) + reach).ceil()),
    );
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length_squared = (dx * dx + dy * dy).max(1e-12);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = (((px - a.0) * dx + (py - a.1) * dy) / length_squared).clamp(0.0, 1.0);
            let (ex, ey) = (px - a.0 - t * dx, py - a.1 - t * dy);
            let distance = (ex * ex + ey * ey).sqrt();
            let ink = (radius + 0.5 - distance).clamp(0.0, 1.0) as f32;
            let pixel = &mut image[y * SIDE + x];
            *pixel = pixel.max(ink);
        }
    }
}
