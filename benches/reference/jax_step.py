"""One training step of the categorical VAE in JAX (jit, optax Adam), timed like
examples/bench_step.rs.

    python jax_step.py --steps 300 --repeats 3                 # XLA uses every core
    taskset -c 0 python jax_step.py --steps 300 --repeats 3    # one core

XLA has no thread-count option: pin the process with `taskset` to compare with
bench_step's `--threads 1`. The model, loss, optimiser and data are described in
common.py. The last line is `ms_per_step: X`, the median over repeats of each
repeat's median step.
"""
import jax
import jax.numpy as jnp
import optax

import common


def init_params(key):
    """PyTorch's nn.Linear initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weights and biases.
    Weights are stored [in, out], as gumbelgrad stores them."""
    params = []
    for fan_in, fan_out in common.LAYERS:
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / jnp.sqrt(fan_in)
        params.append((
            jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
            jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound),
        ))
    return params


def mlp(layers, h):
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i + 1 < len(layers):
            h = jax.nn.relu(h)
    return h


def loss_fn(params, x, key, tau):
    logits = mlp(params[:3], x).reshape(-1, common.VARIABLES, common.CLASSES)
    gumbel = jax.lax.stop_gradient(jax.random.gumbel(key, logits.shape, jnp.float32))
    y = jax.nn.softmax((logits + gumbel) / tau, axis=-1)
    x_logits = mlp(params[3:], y.reshape(-1, common.VARIABLES * common.CLASSES))
    reconstruction = optax.sigmoid_binary_cross_entropy(x_logits, x).sum(axis=1)
    log_q = jax.nn.log_softmax(logits, axis=-1)
    kl = (jnp.exp(log_q) * (log_q + jnp.log(common.CLASSES))).sum(axis=(1, 2))
    return (reconstruction + kl).mean()


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    batches = jnp.asarray(common.random_batches(args.seed))
    optimiser = optax.adam(common.LEARNING_RATE)

    @jax.jit
    def step(params, state, x, key, tau):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, key, tau)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    per_repeat = []
    last_loss = float("nan")
    for _ in range(args.repeats):
        key = jax.random.PRNGKey(args.seed)
        key, init_key = jax.random.split(key)
        params = init_params(init_key)
        state = optimiser.init(params)
        carry = {"params": params, "state": state, "key": key}

        def one(i):
            carry["key"], k = jax.random.split(carry["key"])
            carry["params"], carry["state"], loss = step(
                carry["params"], carry["state"], batches[i % common.NUM_BATCHES], k,
                jnp.float32(common.temperature(i)))
            return float(loss.block_until_ready())  # the step is finished when timed

        times, last_loss = common.timed(one, args.steps, args.warmup)
        per_repeat.append(times)
    print(f"JAX {jax.__version__} (jit), devices {jax.devices()}")
    common.report("jax", per_repeat, last_loss)


if __name__ == "__main__":
    main()
