//! A tiny Adam optimiser for the estimators' own parameters (NVIL's baseline network,
//! REBAR's `eta` and temperature, RELAX's surrogate).
//!
//! The crate's optimisers live in the `nn/optim` layer, which sits *above* the
//! estimators and so cannot be used here; these parameters are few and private to
//! each estimator, so a dozen lines of Adam on a flat `f64` vector is all they need.

/// Adam (Kingma and Ba, 2015) over a flat parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    learning_rate: f64,
    first: Vec<f64>,
    second: Vec<f64>,
    steps: i32,
}

impl Adam {
    /// Adam with the usual `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`.
    pub(crate) fn new(learning_rate: f64, len: usize) -> Self {
        Adam {
            learning_rate,
            first: vec![0.0; len],
            second: vec![0.0; len],
            steps: 0,
        }
    }

    /// One descent step: `params -= lr * m_hat / (sqrt(v_hat) + eps)`.
    pub(crate) fn step(&mut self, params: &mut [f64], grads: &[f64]) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        self.steps += 1;
        let c1 = 1.0 - BETA1.powi(self.steps);
        let c2 = 1.0 - BETA2.powi(self.steps);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            if !g.is_finite() {
                continue;
            }
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= self.learning_rate * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}
