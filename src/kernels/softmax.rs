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
