//! Softmax over consecutive groups of columns, on raw slices.
//!
//! A row of `N*K` values holds `N` groups of `K`; each group is normalised on its own.
//! Every routine subtracts the group's maximum before exponentiating, so no input,
//! however large, overflows.

use crate::float::Float;

/// `out_g = softmax(x_g)` for every group `g` of `group_size` consecutive values.
pub fn softmax_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    for (xs, ys) in x
        .chunks_exact(group_size)
        .zip(out.chunks_exact_mut(group_size))
    {
        let max = xs.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let mut total = T::ZERO;
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = (v - max).exp();
            total += *y;
        }
        let inverse = T::ONE / total;
        ys.iter_mut().for_each(|y| *y *= inverse);
    }
}

/// `out_g = log_softmax(x_g) = x_g - logsumexp(x_g)` for every group.
pub fn log_softmax_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    for (xs, ys) in x
        .chunks_exact(group_size)
        .zip(out.chunks_exact_mut(group_size))
    {
        let lse = logsumexp(xs);
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = v - lse;
        }
    }
}

/// `ln sum_i exp(x_i)`, computed as `m + ln sum_i exp(x_i - m)` with `m = max x`.
pub fn logsumexp<T: Float>(x: &[T]) -> T {
    let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    if !max.is_finite() {
        return max;
    }
    let total: T = x.iter().map(|&v| (v - max).exp()).sum();
    max + total.ln()
}

/// VJP of softmax, accumulated: `grad_x += y ⊙ (grad_y - <grad_y, y>)` per group,
/// times `scale` (use `1/tau` for a tempered softmax).
///
/// Derivation: `d y_i / d x_j = y_i (δ_ij - y_j)`, so
/// `sum_i grad_y_i y_i (δ_ij - y_j) = y_j (grad_y_j - sum_i grad_y_i y_i)`.
pub fn softmax_backward_groups<T: Float>(
    y: &[T],
    grad_y: &[T],
    grad_x: &mut [T],
    group_size: usize,
    scale: T,
) {
    for ((ys, gys), gxs) in y
        .chunks_exact(group_size)
        .zip(grad_y.chunks_exact(group_size))
        .zip(grad_x.chunks_exact_mut(group_size))
    {
        let inner: T = ys.iter().zip(gys).map(|(&a, &b)| a * b).sum();
        for ((gx, &yi), &gyi) in gxs.iter_mut().zip(ys).zip(gys) {
            *gx += scale * yi * (gyi - inner);
        }
    }
}

/// Index of the largest value in each group (the first one on ties).
pub fn argmax_groups<T: Float>(x: &[T], group_size: usize, out: &mut [usize]) {
    for (xs, index) in x.chunks_exact(group_size).zip(out.iter_mut()) {
        let mut best = 0;
        for (i, &v) in xs.iter().enumerate() {
            if v > xs[best] {
                best = i;
            }
        }
        *index = best;
    }
}

/// Writes the one-hot of each group's argmax into `out` (exactly 0 and 1).
pub fn one_hot_argmax_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    for (xs, ys) in x
        .chunks_exact(group_size)
        .zip(out.chunks_exact_mut(group_size))
    {
        let mut best = 0;
        for (i, &v) in xs.iter().enumerate() {
            if v > xs[best] {
                best = i;
            }
        }
        ys.iter_mut().for_each(|y| *y = T::ZERO);
        ys[best] = T::ONE;
    }
}

/// `out[g] = logsumexp(x_g)` for every group `g`: `x` holds `out.len()` groups of
/// `group_size` values.
pub fn logsumexp_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    for (xs, y) in x.chunks_exact(group_size).zip(out.iter_mut()) {
        *y = logsumexp(xs);
    }
}

/// VJP of log-softmax, accumulated: `grad_x += grad_y - softmax(x) * sum(grad_y)` per
/// group, reading `softmax(x) = exp(y)` from the saved output `y = log_softmax(x)`.
///
/// Derivation: `d y_i / d x_j = δ_ij - p_j` with `p = softmax(x)`, so
/// `sum_i grad_y_i (δ_ij - p_j) = grad_y_j - p_j sum_i grad_y_i`.
pub fn log_softmax_backward_groups<T: Float>(
    y: &[T],
    grad_y: &[T],
    grad_x: &mut [T],
    group_size: usize,
) {
    for ((ys, gys), gxs) in y
        .chunks_exact(group_size)
        .zip(grad_y.chunks_exact(group_size))
        .zip(grad_x.chunks_exact_mut(group_size))
    {
        let total: T = gys.iter().copied().sum();
        for ((gx, &yi), &gyi) in gxs.iter_mut().zip(ys).zip(gys) {
            *gx += gyi - yi.exp() * total;
        }
    }
}

/// VJP of grouped logsumexp, accumulated: `grad_x_j += grad_y[g] * exp(x_j - y[g])`
/// for every element `j` of group `g`, where `y[g] = logsumexp(x_g)`.
///
/// Derivation: `d logsumexp(x) / d x_j = exp(x_j) / sum_i exp(x_i) = softmax(x)_j`, and
/// `exp(x_j - y)` is that softmax computed without overflow (`x_j <= y` always).
pub fn logsumexp_backward_groups<T: Float>(
    x: &[T],
    y: &[T],
    grad_y: &[T],
    grad_x: &mut [T],
    group_size: usize,
) {
    for (((xs, &lse), &gy), gxs) in x
        .chunks_exact(group_size)
        .zip(y)
        .zip(grad_y)
        .zip(grad_x.chunks_exact_mut(group_size))
    {
        for (gx, &xi) in gxs.iter_mut().zip(xs) {
            *gx += gy * (xi - lse).exp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain references, written the obvious way (fine for small, moderate inputs).
    fn naive_softmax(x: &[f64]) -> Vec<f64> {
        let total: f64 = x.iter().map(|v| v.exp()).sum();
        x.iter().map(|v| v.exp() / total).collect()
    }

    #[test]
    fn kernels_match_naive_references() {
        let x = [0.3, -1.2, 2.0, 0.0, 0.5, -0.7];
        let group_size = 3;
        let mut soft = [0.0; 6];
        softmax_groups(&x, &mut soft, group_size);
        let mut log_soft = [0.0; 6];
        log_softmax_groups(&x, &mut log_soft, group_size);
        let mut lse = [0.0; 2];
        logsumexp_groups(&x, &mut lse, group_size);
        for g in 0..2 {
            let group = &x[3 * g..3 * g + 3];
            let expected = naive_softmax(group);
            let expected_lse = group.iter().map(|v| v.exp()).sum::<f64>().ln();
            assert!((lse[g] - expected_lse).abs() < 1e-14);
            for i in 0..3 {
                assert!((soft[3 * g + i] - expected[i]).abs() < 1e-14);
                assert!((log_soft[3 * g + i] - expected[i].ln()).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn backward_kernels_match_the_jacobian() {
        // Explicit Jacobians of one group: softmax J_ij = p_i (δ_ij - p_j),
        // log-softmax J_ij = δ_ij - p_j, logsumexp J_j = p_j.
        let x = [0.4, -0.9, 1.3];
        let grad_y = [0.7, -0.2, 0.5];
        let p = naive_softmax(&x);
        let mut y = [0.0; 3];
        let mut grad = [0.0; 3];

        softmax_groups(&x, &mut y, 3);
        softmax_backward_groups(&y, &grad_y, &mut grad, 3, 1.0);
        for j in 0..3 {
            let expected: f64 = (0..3)
                .map(|i| grad_y[i] * p[i] * (f64::from(u8::from(i == j)) - p[j]))
                .sum();
            assert!((grad[j] - expected).abs() < 1e-14);
        }

        log_softmax_groups(&x, &mut y, 3);
        grad = [0.0; 3];
        log_softmax_backward_groups(&y, &grad_y, &mut grad, 3);
        for j in 0..3 {
            let expected: f64 = (0..3)
                .map(|i| grad_y[i] * (f64::from(u8::from(i == j)) - p[j]))
                .sum();
            assert!((grad[j] - expected).abs() < 1e-14);
        }

        let mut lse = [0.0];
        logsumexp_groups(&x, &mut lse, 3);
        grad = [0.0; 3];
        logsumexp_backward_groups(&x, &lse, &[0.6], &mut grad, 3);
        for j in 0..3 {
            assert!((grad[j] - 0.6 * p[j]).abs() < 1e-14);
        }
    }
}
