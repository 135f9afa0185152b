"""What the PyTorch and JAX reference steps share with examples/bench_step.rs.

The model is the paper's categorical VAE (Jang, Gu and Poole 2017, arXiv 1611.01144,
section 4.2) at the sizes gumbelgrad's `VaeConfig::default()` uses:

    encoder  784 -> 512 -> 256 (ReLU) -> 200 logits = 20 variables x 10 classes
    sample   y = softmax((logits + g) / tau) per group of 10, g ~ Gumbel(0, 1)
    decoder  200 -> 256 -> 512 (ReLU) -> 784 Bernoulli logits
    loss     batch mean of [sum over pixels of BCE-with-logits + KL(q || uniform)]
    Adam     learning rate 1e-3, batch 100, float32
    tau      max(0.5, exp(-3e-5 * 1000 * floor(step / 1000)))

Data: 16 batches of 100 random binary images, cycled, as bench_step does.
"""
import argparse
import math
import statistics
import time

import numpy as np

BATCH = 100
PIXELS = 784
VARIABLES = 20
CLASSES = 10
NUM_BATCHES = 16
LEARNING_RATE = 1e-3
# (in, out) of the six linear layers, encoder then decoder.
LAYERS = [(784, 512), (512, 256), (256, 200), (200, 256), (256, 512), (512, 784)]


def temperature(step):
    """The annealed temperature at optimiser step `step` (0-based)."""
    return max(0.5, math.exp(-3e-5 * 1000 * (step // 1000)))


def matmul_flops_per_step(batch=BATCH):
    """Matrix-product FLOPs of one step: forward, weight gradients, and input
    gradients of every layer but the first (the data needs none): 620.13 M at 100."""
    forward = sum(2 * batch * i * o for i, o in LAYERS)
    return 2 * forward + forward - 2 * batch * LAYERS[0][0] * LAYERS[0][1]


def random_batches(seed):
    """NUM_BATCHES batches of BATCH random binary images, float32 [n, 784]."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, size=(NUM_BATCHES, BATCH, PIXELS))
    return data.astype(np.float32)


def parser(description):
    """The options both scripts take, named as bench_step's."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=200, help="timed steps per repeat (default 200)")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps first (default 50)")
    p.add_argument("--repeats", type=int, default=3,
                   help="independent timed runs; the last line reports the median of their medians")
    p.add_argument("--seed", type=int, default=0)
    return p


def report(name, per_repeat_ms, last_loss):
    """Print each repeat's median and, last, `ms_per_step: X` (median of medians),
    the same last line as bench_step."""
    medians = []
    for i, times in enumerate(per_repeat_ms):
        times = sorted(times)
        median = times[len(times) // 2]
        medians.append(median)
        print(f"{name} repeat {i}: median {median:.3f} ms, min {times[0]:.3f} ms, "
              f"max {times[-1]:.3f} ms")
    overall = statistics.median(medians)
    flops = matmul_flops_per_step()
    print(f"final loss {last_loss:.2f}; matrix products {flops / 1e6:.1f} MFLOP/step, "
          f"{flops / (overall * 1e-3) / 1e9:.1f} GFLOP/s at the median")
    print(f"ms_per_step: {overall:.3f}")


def timed(step_fn, steps, warmup):
    """Run `step_fn(i)` warmup + steps times; return the timed steps' milliseconds
    and the last value step_fn returned. step_fn must block until its result exists."""
    times = []
    last = None
    for i in range(warmup + steps):
        started = time.perf_counter()
        last = step_fn(i)
        if i >= warmup:
            times.append((time.perf_counter() - started) * 1e3)
    return times, last
