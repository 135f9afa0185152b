//! Softmax over consecutive groups of columns, on raw slices.
//!
//! A row of `N*K` values holds `N` groups of `K`; each group is normalised on its own.
//! Every routine subtracts the group's maximum before exponentiating, so no input,
//! however large, overflows.
//!
//! Long passes (a minibatch of 100 rows of 20 x 10 logits is 20,000 values, about 0.2 ms
//! of `exp` calls on one core) are cut into shares of whole groups and shared among the
//! threads (`in_group_shares`). Each group is computed by one thread with the same
//! operations whichever thread it is, so the results do not depend on the thread count.

use crate::float::Float;
use crate::kernels::threads::for_each_shared;

/// Values per share of a grouped pass (rounded down to whole groups): about 20 µs of
/// `exp` calls, several times the cost of handing a share to another thread.
const GROUP_SHARE: usize = 2048;

/// Runs `pass` over the whole groups of `inputs` and `out` (the groups of
/// `group_size` values that all of them hold; values past the last such group are left
/// alone), in shares of about [`GROUP_SHARE`] values shared among the threads when
/// there is more than one share. `pass` gets one share of every input and the same
/// share of `out`, and must treat each group on its own: then the result is the same
/// however the shares are handed out.
pub(crate) fn in_group_shares<T: Float, const N: usize>(
    group_size: usize,
    inputs: [&[T]; N],
    out: &mut [T],
    pass: impl Fn([&[T]; N], &mut [T]) + Sync,
) {
    if group_size == 0 {
        return;
    }
    let len = inputs
        .iter()
        .fold(out.len(), |len, input| len.min(input.len()));
    let len = len - len % group_size;
    let out = &mut out[..len];
    let share = (GROUP_SHARE / group_size).max(1) * group_size;
    if len <= share {
        pass(inputs.map(|input| &input[..len]), out);
        return;
    }
    let shares = out.chunks_mut(share).enumerate().map(|(index, out)| {
        let start = index * share;
        (inputs.map(|input| &input[start..start + out.len()]), out)
    });
    for_each_shared(shares, |(inputs, out)| pass(inputs, out));
}

/// `out_g = softmax(x_g)` for every group `g` of `group_size` consecutive values.
pub fn softmax_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    in_group_shares(group_size, [x], out, |[x], out| {
        softmax_groups_here(x, out, group_size)
    });
}

/// [`softmax_groups`] on the calling thread.
fn softmax_groups_here<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
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
///
/// Computed as `(x_i - m) - ln sum_j exp(x_j - m)` with `m = max x`, not as
/// `x_i - logsumexp(x)`: with large logits (say `1e4` in f32) `logsumexp` itself is
/// rounded to the coarse spacing of floats near `1e4`, while `x_i - m` is exact for
/// the logits near the maximum, so the log-probabilities that matter stay accurate.
pub fn log_softmax_groups<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    in_group_shares(group_size, [x], out, |[x], out| {
        log_softmax_groups_here(x, out, group_size)
    });
}

/// [`log_softmax_groups`] on the calling thread.
fn log_softmax_groups_here<T: Float>(x: &[T], out: &mut [T], group_size: usize) {
    for (xs, ys) in x
        .chunks_exact(group_size)
        .zip(out.chunks_exact_mut(group_size))
    {
        let max = xs.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let log_total = xs.iter().map(|&v| (v - max).exp()).sum::<T>().ln();
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = (v - max) - log_total;
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
    in_group_shares(group_size, [y, grad_y], grad_x, |[y, grad_y], grad_x| {
        softmax_backward_groups_here(y, grad_y, grad_x, group_size, scale)
    });
}

/// [`softmax_backward_groups`] on the calling thread.
fn softmax_backward_groups_here<T: Float>(
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
    in_group_shares(group_size, [y, grad_y], grad_x, |[y, grad_y], grad_x| {
        log_softmax_backward_groups_here(y, grad_y, grad_x, group_size)
    });
}

/// [`log_softmax_backward_groups`] on the calling thread.
fn log_softmax_backward_groups_here<T: Float>(
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

/// VJP of grouped logsumexp, accumulated: `grad_x_j += grad_y[g] * softmax(x_g)_j` for
/// every element `j` of group `g`.
///
/// Derivation: `d logsumexp(x) / d x_j = exp(x_j) / sum_i exp(x_i) = softmax(x)_j`.
/// The softmax is recomputed from `x` (subtracting the maximum) rather than read off
/// as `exp(x_j - logsumexp(x))`: with large logits the rounded `logsumexp` would make
/// that difference, and so the probabilities, inaccurate (in f32, by ~1e-3 at `1e4`).
pub fn logsumexp_backward_groups<T: Float>(
    x: &[T],
    grad_y: &[T],
    grad_x: &mut [T],
    group_size: usize,
) {
    for ((xs, &gy), gxs) in x
        .chunks_exact(group_size)
        .zip(grad_y)
        .zip(grad_x.chunks_exact_mut(group_size))
    {
        let max = xs.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let total: T = xs.iter().map(|&v| (v - max).exp()).sum();
        let scale = gy / total;
        for (gx, &xi) in gxs.iter_mut().zip(xs) {
            *gx += scale * (xi - max).exp();
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
    fn shared_passes_give_the_bits_of_one_thread() {
        // 2,003 groups of 10 and a partial group: several shares of 2,040 values, the
        // last one short, and values past the last whole group left alone.
        let (k, len) = (10, 20_035);
        let value = |i: usize, scale: f32| ((i * 7919 % 1000) as f32 / 100.0 - 5.0) * scale;
        let x: Vec<f32> = (0..len).map(|i| value(i, 1.0)).collect();
        let g: Vec<f32> = (0..len).map(|i| value(i + 13, 0.3)).collect();
        // Process-wide, but no other test of this binary depends on the thread count.
        crate::kernels::set_num_threads(2);
        let (mut shared, mut here) = (vec![-1.0f32; len], vec![-1.0f32; len]);
        softmax_groups(&x, &mut shared, k);
        softmax_groups_here(&x, &mut here, k);
        assert_eq!(shared, here);
        assert_eq!(shared[len - 1], -1.0);
        log_softmax_groups(&x, &mut shared, k);
        log_softmax_groups_here(&x, &mut here, k);
        assert_eq!(shared, here);
        softmax_backward_groups(&x, &g, &mut shared, k, 0.5);
        softmax_backward_groups_here(&x, &g, &mut here, k, 0.5);
        assert_eq!(shared, here);
        log_softmax_backward_groups(&x, &g, &mut shared, k);
        log_softmax_backward_groups_here(&x, &g, &mut here, k);
        assert_eq!(shared, here);
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

        grad = [0.0; 3];
        logsumexp_backward_groups(&x, &[0.6], &mut grad, 3);
        for j in 0..3 {
            assert!((grad[j] - 0.6 * p[j]).abs() < 1e-14);
        }
    }
}
