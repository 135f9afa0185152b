//! A set of single-sample gradient estimates (one per row) summarised for the statistical
//! tests of the estimators: the mean and its standard errors, the total variance and its
//! standard error, and the distance of the mean from an exact gradient.

use gumbelgrad::Tensor;

/// Per-component mean and standard error of the rows, the total variance (sum of the
/// per-component variances) and its standard error.
pub struct Summary {
    pub mean: Vec<f64>,
    pub se: Vec<f64>,
    pub variance: f64,
    pub variance_se: f64,
}

impl Summary {
    pub fn of(samples: &Tensor<f64>) -> Summary {
        let (m, d) = (samples.rows(), samples.cols());
        let mut mean = vec![0.0; d];
        for r in 0..m {
            for (a, &x) in mean.iter_mut().zip(samples.row(r)) {
                *a += x / m as f64;
            }
        }
        let mut var = vec![0.0; d];
        let mut norms = Vec::with_capacity(m);
        for r in 0..m {
            let mut norm = 0.0;
            for ((v, &x), &mu) in var.iter_mut().zip(samples.row(r)).zip(&mean) {
                *v += (x - mu).powi(2) / (m - 1) as f64;
                norm += (x - mu).powi(2);
            }
            norms.push(norm);
        }
        let variance: f64 = var.iter().sum();
        let spread = norms.iter().map(|s| (s - variance).powi(2)).sum::<f64>() / (m - 1) as f64;
        Summary {
            se: var.iter().map(|v| (v / m as f64).sqrt()).collect(),
            mean,
            variance,
            variance_se: (spread / m as f64).sqrt(),
        }
    }

    /// Euclidean distance of the mean from `target`, and the standard error of that
    /// distance (at most the norm of the mean's error).
    pub fn bias(&self, target: &[f64]) -> (f64, f64) {
        let bias = self
            .mean
            .iter()
            .zip(target)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let se = self.se.iter().map(|s| s * s).sum::<f64>().sqrt();
        (bias, se)
    }

    /// Asserts every component of the mean is within 4 standard errors of `target`,
    /// and that the test has power: 4 standard errors are below a tenth of the
    /// largest component of `target`.
    pub fn assert_unbiased(&self, target: &[f64], what: &str) {
        let largest = target.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (i, ((&mean, &se), &t)) in self.mean.iter().zip(&self.se).zip(target).enumerate() {
            assert!(
                (mean - t).abs() < 4.0 * se,
                "{what}: component {i}: mean {mean:.5} vs exact {t:.5} (se {se:.5})"
            );
            assert!(
                4.0 * se < 0.1 * largest,
                "{what}: component {i}: se {se:.5} too large to test against {largest:.5}"
            );
        }
    }
}
