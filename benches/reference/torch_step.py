"""One training step of the categorical VAE in PyTorch, timed like examples/bench_step.rs.

    python torch_step.py --threads 1 --steps 300 --repeats 3
    python torch_step.py --threads 2 --steps 300 --repeats 3 --fused-adam --compile

The model, loss, optimiser and data are described in common.py. The last line is
`ms_per_step: X`, the median over repeats of each repeat's median step.
"""
import torch
import torch.nn.functional as F

import common


class CategoricalVae(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, common.VARIABLES * common.CLASSES),
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(common.VARIABLES * common.CLASSES, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 784),
        )

    def forward(self, x, tau):
        logits = self.encoder(x).view(-1, common.VARIABLES, common.CLASSES)
        # Relaxed sample, Gumbel noise drawn outside the graph (no gradient through it).
        u = torch.rand_like(logits).clamp_(1e-10, 1.0)
        gumbel = -torch.log(-torch.log(u))
        y = F.softmax((logits + gumbel) / tau, dim=-1)
        x_logits = self.decoder(y.view(-1, common.VARIABLES * common.CLASSES))
        reconstruction = F.binary_cross_entropy_with_logits(
            x_logits, x, reduction="none").sum(dim=1)
        # KL(q || uniform) = sum_i q_i (log q_i + log K), summed over the variables.
        log_q = F.log_softmax(logits, dim=-1)
        kl = (log_q.exp() * (log_q + torch.log(torch.tensor(float(common.CLASSES))))).sum(dim=(1, 2))
        return (reconstruction + kl).mean()


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--fused-adam", action="store_true", help="Adam(fused=True)")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batches = torch.from_numpy(common.random_batches(args.seed))

    per_repeat = []
    last_loss = float("nan")
    for _ in range(args.repeats):
        model = CategoricalVae()
        optimiser = torch.optim.Adam(model.parameters(), lr=common.LEARNING_RATE,
                                     fused=True if args.fused_adam else None)
        loss_fn = torch.compile(model) if args.compile else model

        def step(i):
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(batches[i % common.NUM_BATCHES], common.temperature(i))
            loss.backward()
            optimiser.step()
            return loss.item()  # synchronises: the step is finished when timed

        times, last_loss = common.timed(step, args.steps, args.warmup)
        per_repeat.append(times)
    print(f"PyTorch {torch.__version__}, {args.threads} thread(s), "
          f"fused Adam {args.fused_adam}, compile {args.compile}")
    common.report("torch", per_repeat, last_loss)


if __name__ == "__main__":
    main()
