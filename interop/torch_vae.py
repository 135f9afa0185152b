#!/usr/bin/env python3
"""Rebuild a gumbelgrad VAE checkpoint as a torch.nn.Module and evaluate it.

    python3 interop/torch_vae.py CHECKPOINT --binarized-mnist DIR [--eval-samples M]

The checkpoint alone says what to build: its safetensors metadata key `gumbelgrad`
holds JSON (model kind, layer sizes, activation, latent shape, estimator, temperature,
step), and the model's weights are the tensors named `model.*`. gumbelgrad stores a
linear layer's weight as `[in, out]` (y = x W + b), the transpose of `nn.Linear.weight`,
and its bias as `[1, out]`; both are converted here.

On the test split of statically binarised MNIST it prints the single-sample negative
ELBO with hard (discrete) samples and the importance-weighted bound with M samples per
image, each with its standard error over images, and as its last line JSON with
`test_neg_elbo` and `test_iw_bound` (nats per image).
"""

import argparse
import gzip
import json
import math
import os
import sys

import torch
from safetensors import safe_open

ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


def read_checkpoint(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "gumbelgrad" not in meta:
        sys.exit(f"{path}: no `gumbelgrad` metadata; not a gumbelgrad model checkpoint")
    return json.loads(meta["gumbelgrad"]), tensors


def mlp(tensors, name, spec):
    """nn.Sequential of Linear layers with the activation between them (not after the last)."""
    sizes = spec["sizes"]
    make_activation = ACTIVATIONS[spec["activation"]]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        linear = torch.nn.Linear(fan_in, fan_out)
        weight = tensors[f"model.{name}.{i}.weight"].double()
        bias = tensors[f"model.{name}.{i}.bias"].double()
        assert tuple(weight.shape) == (fan_in, fan_out), (name, i, weight.shape)
        with torch.no_grad():
            linear.weight.copy_(weight.T)  # [in, out] -> nn.Linear's [out, in]
            linear.bias.copy_(bias.reshape(fan_out))
        layers.append(linear)
        if i + 2 < len(sizes):
            layers.append(make_activation())
    return torch.nn.Sequential(*layers).double()


class DiscreteVae(torch.nn.Module):
    """The VAE of Jang, Gu and Poole (2017) with N categorical variables of K classes, or
    N binary units, a uniform prior and Bernoulli pixels."""

    def __init__(self, config, tensors):
        super().__init__()
        model = config["model"]
        if model["kind"] != "discrete_vae":
            sys.exit(f"this script rebuilds discrete_vae checkpoints, not {model['kind']}")
        self.latent = model["latent"]
        self.encoder = mlp(tensors, "encoder", model["encoder"])
        self.decoder = mlp(tensors, "decoder", model["decoder"])

    def categorical(self):
        return self.latent["kind"] == "categorical"

    def log_prior(self):
        if self.categorical():
            return -self.latent["variables"] * math.log(self.latent["classes"])
        return -self.latent["units"] * math.log(2.0)

    def kl_to_uniform(self, logits):
        if self.categorical():
            k = self.latent["classes"]
            log_q = torch.log_softmax(logits.reshape(logits.shape[0], -1, k), dim=-1)
            return (log_q.exp() * (log_q + math.log(k))).sum(dim=(1, 2))
        q = torch.sigmoid(logits)
        log_q, log_not_q = -torch.nn.functional.softplus(-logits), -torch.nn.functional.softplus(logits)
        return (q * log_q + (1 - q) * log_not_q + math.log(2.0)).sum(dim=1)

    def sample_hard(self, logits, generator):
        """A discrete sample from q(z|x) and its log q(z|x)."""
        if self.categorical():
            k = self.latent["classes"]
            grouped = logits.reshape(logits.shape[0], -1, k)
            log_q = torch.log_softmax(grouped, dim=-1)
            u = torch.rand(grouped.shape, generator=generator, dtype=logits.dtype)
            gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
            index = (log_q + gumbel).argmax(dim=-1, keepdim=True)
            z = torch.zeros_like(grouped).scatter_(-1, index, 1.0)
            return z.reshape(logits.shape), (z * log_q).sum(dim=(1, 2))
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
        z = (u < torch.sigmoid(logits)).to(logits.dtype)
        log_q = -torch.nn.functional.softplus(-(2 * z - 1) * logits)
        return z, log_q.sum(dim=1)

    def reconstruction_cost(self, z, x):
        """-log p(x|z): the pixels' binary cross-entropies, summed."""
        pixel_logits = self.decoder(z)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            pixel_logits, x, reduction="none"
        ).sum(dim=1)


def read_amat(folder, split):
    for name in (f"binarized_mnist_{split}.amat", f"binarized_mnist_{split}.amat.gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt") as f:
                rows = [[float(v) for v in line.split()] for line in f if line.strip()]
            return torch.tensor(rows, dtype=torch.float64)
    sys.exit(f"no binarized_mnist_{split}.amat[.gz] in {folder}")


def mean_and_se(values):
    n = values.numel()
    mean = values.mean().item()
    se = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return mean, se


@torch.no_grad()
def evaluate(model, images, samples, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    elbo, iw = [], []
    log_m = math.log(samples)
    for start in range(0, images.shape[0], batch):
        x = images[start : start + batch]
        logits = model.encoder(x)
        z, _ = model.sample_hard(logits, generator)
        elbo.append(model.reconstruction_cost(z, x) + model.kl_to_uniform(logits))
        # importance-weighted bound: -log (1/m) sum_i p(x|z_i) p(z_i) / q(z_i|x)
        rows = x.shape[0]
        logits_m = logits.repeat_interleave(samples, dim=0)
        x_m = x.repeat_interleave(samples, dim=0)
        z_m, log_q = model.sample_hard(logits_m, generator)
        log_w = -model.reconstruction_cost(z_m, x_m) + model.log_prior() - log_q
        iw.append(-(torch.logsumexp(log_w.reshape(rows, samples), dim=1) - log_m))
        done = min(start + batch, images.shape[0])
        print(f"\revaluated {done}/{images.shape[0]} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return mean_and_se(torch.cat(elbo)), mean_and_se(torch.cat(iw))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint.safetensors written by gumbelgrad")
    parser.add_argument("--binarized-mnist", required=True, metavar="DIR",
                        help="folder with binarized_mnist_test.amat[.gz]")
    parser.add_argument("--eval-samples", type=int, default=1000, metavar="M",
                        help="samples per image for the importance-weighted bound (default 1000)")
    parser.add_argument("--eval-images", type=int, default=None, metavar="N",
                        help="evaluate only the first N test images (default: all)")
    parser.add_argument("--batch", type=int, default=10, help="images per pass (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.eval_samples < 1:
        parser.error("--eval-samples must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    config, tensors = read_checkpoint(args.checkpoint)
    model = DiscreteVae(config, tensors).eval()
    images = read_amat(args.binarized_mnist, "test")
    if args.eval_images is not None:
        images = images[: args.eval_images]
    (elbo, elbo_se), (iw, iw_se) = evaluate(model, images, args.eval_samples, args.batch, args.seed)
    print(f"model: {config['model']['latent']}, estimator {config.get('estimator', {}).get('name')}, "
          f"step {config.get('step')}")
    print(f"test -ELBO (hard samples): {elbo:.4f} +- {elbo_se:.4f} (standard error over images)")
    print(f"test importance-weighted bound, m = {args.eval_samples}: {iw:.4f} +- {iw_se:.4f}")
    print(json.dumps({
        "test_neg_elbo": elbo, "test_neg_elbo_se": elbo_se,
        "test_iw_bound": iw, "test_iw_bound_se": iw_se,
        "eval_samples": args.eval_samples, "images": images.shape[0],
    }))


if __name__ == "__main__":
    main()
