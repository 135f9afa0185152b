"""Trains the categorical VAE of torch_step.py on binarised MNIST and reports test figures
comparable with `examples/categorical_vae.rs` (docs/results.md, "The categorical VAE
against PyTorch").

    python torch_train.py --binarized-mnist DIR --epochs 10 --threads 2

DIR holds binarized_mnist_{train,valid,test}.amat[.gz]. Same protocol as the crate's run:
Adam 1e-3, batch 100 (a last partial batch dropped), the annealed temperature of
common.py, 50,000 training images, the 10,000 test images for evaluation. The last line is
JSON with the test negative ELBO with hard samples (one-hot samples drawn from q, the
discrete model's bound) and with relaxed samples at the final temperature (the training
objective, not a bound).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import common
from torch_step import CategoricalVae


def load_split(folder, split):
    for name in (f"binarized_mnist_{split}.amat.gz", f"binarized_mnist_{split}.amat"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                return np.loadtxt(f, dtype=np.float32).reshape(-1, common.PIXELS)
    raise SystemExit(f"no binarized_mnist_{split}.amat[.gz] in {folder}")


def negative_elbo(model, x, tau, hard):
    """Per-example negative ELBO with one latent sample: one-hot (hard) or relaxed."""
    logits = model.encoder(x).view(-1, common.VARIABLES, common.CLASSES)
    u = torch.rand_like(logits).clamp_(1e-10, 1.0)
    perturbed = logits - torch.log(-torch.log(u))
    if hard:  # argmax of Gumbel-perturbed logits: an exact sample of q
        y = F.one_hot(perturbed.argmax(-1), common.CLASSES).to(x.dtype)
    else:
        y = F.softmax(perturbed / tau, dim=-1)
    x_logits = model.decoder(y.view(-1, common.VARIABLES * common.CLASSES))
    reconstruction = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(1)
    log_q = F.log_softmax(logits, dim=-1)
    kl = (log_q.exp() * (log_q + np.log(common.CLASSES))).sum(dim=(1, 2))
    return reconstruction + kl


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binarized-mnist", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = torch.from_numpy(load_split(args.binarized_mnist, "train"))
    test = torch.from_numpy(load_split(args.binarized_mnist, "test"))

    model = CategoricalVae()
    optimiser = torch.optim.Adam(model.parameters(), lr=common.LEARNING_RATE)
    step = 0
    started = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(train)))
        total, batches = 0.0, 0
        for b in range(len(train) // common.BATCH):
            x = train[order[b * common.BATCH:(b + 1) * common.BATCH]]
            optimiser.zero_grad(set_to_none=True)
            loss = model(x, common.temperature(step))
            loss.backward()
            optimiser.step()
            total += loss.item()
            batches += 1
            step += 1
        print(f"epoch {epoch + 1}: training -ELBO (relaxed) {total / batches:.2f}, "
              f"tau {common.temperature(step - 1):.3f}", flush=True)
    train_seconds = time.perf_counter() - started

    tau = common.temperature(step - 1)
    with torch.no_grad():
        hard = torch.cat([negative_elbo(model, x, tau, True) for x in test.split(1000)])
        relaxed = torch.cat([negative_elbo(model, x, tau, False) for x in test.split(1000)])
    print(json.dumps({
        "test_neg_elbo_hard": round(hard.mean().item(), 3),
        "test_neg_elbo_relaxed": round(relaxed.mean().item(), 3),
        "final_temperature": round(tau, 3),
        "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1),
    }))


if __name__ == "__main__":
    main()
