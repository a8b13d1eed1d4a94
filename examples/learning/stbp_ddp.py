"""STBP trained data-parallel: the digits and mnist5k STBP networks under torchrun (DDP, gloo on CPU).

    .venv/bin/python examples/learning/stbp_ddp.py --data digits                    # one process
    .venv/bin/torchrun --standalone --nproc_per_node 2 examples/learning/stbp_ddp.py --data digits
    .venv/bin/torchrun --standalone --nproc_per_node 2 examples/learning/stbp_ddp.py --data mnist5k --epochs 1

The networks of stbp_digits.py (64-128-10, constant-current input, T = 8) and stbp_mnist5k.py
(28x28-32C3-AP2-32C3-AP2-128-10, Bernoulli input, T = 8), trained by `n3ml.train.Trainer`.
--batch-size is the global batch: each process computes its share of every batch, so the
optimizer steps are those of one process with that batch (tests/train/test_ddp.py checks
the weights on the digits network), and `--checkpoint F` written with one process count
resumes (`--resume`) with another. The Bernoulli input of mnist5k is drawn by each process
for its own share (seeded by rank), so those draws, and only those, differ between
process counts. Prints each epoch's time and the training throughput (samples/s over all
processes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import interactive
from torch.utils.data import TensorDataset

from n3ml.learn.data import load_split
from n3ml.learn.stbp import STBPConvNet, STBPNet, bernoulli, rate_mse
from n3ml.train import Trainer, close_distributed, init_distributed


def build(data: str, steps: int, rank: int, seed: int, n_train: int | None):
    """(network, input map, train set, test set) of the digits or mnist5k example."""
    d = load_split("digits", test_size=0.25, seed=seed) if data == "digits" else load_split("mnist5k", images=True)
    if n_train is not None and n_train < len(d.y_train):
        d = d.subset(n_train, len(d.y_test), seed=seed)
    if data == "digits":
        net = STBPNet([64, 128, 10], steps=steps)
        inputs = None  # STBPNet repeats the analog input itself
    else:
        net = STBPConvNet("32C3-AP2-32C3-AP2-128-10", (1, 28, 28))
        gen = torch.Generator().manual_seed(1000 * seed + rank)

        def inputs(x: torch.Tensor) -> torch.Tensor:
            return bernoulli(x, steps, generator=gen)
    train = TensorDataset(torch.tensor(d.x_train), torch.tensor(d.y_train))
    test = TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test))
    return net, inputs, train, test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["digits", "mnist5k"], default="digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: 20 (digits), 6 (mnist5k)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch (all processes together)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--train", type=int, default=None, help="training samples (stratified subset; default all)")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    epochs = args.epochs or (20 if args.data == "digits" else 6)
    rank, world, device = init_distributed()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    net, inputs, train, test = build(args.data, args.steps, rank, args.seed, args.train)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)

    def show(m) -> None:
        print(f"epoch {m.epoch}/{epochs}: loss {m.loss:.4f}  train acc {m.accuracy:.4f}  ({m.seconds:.1f} s, "
              f"{len(train) / m.seconds:.1f} training samples/s)", flush=True)

    trainer = Trainer(net.to(device), opt, loss_fn=rate_mse, inputs=inputs, scheduler=sched, device=device,
                      checkpoint=args.checkpoint, seed=args.seed, progress=interactive(), on_epoch=show,
                      metadata={"data": args.data, "steps": args.steps})
    t0 = time.perf_counter()
    done = trainer.epoch
    if args.resume and args.checkpoint is not None and args.checkpoint.is_file():
        done = trainer.load(args.checkpoint)["epoch"]
    train_s, acc = 0.0, float("nan")
    while trainer.epoch < epochs:  # one epoch at a time, to time training apart from the test pass
        t1 = time.perf_counter()
        trainer.fit(train, trainer.epoch + 1, batch_size=args.batch_size)
        train_s += time.perf_counter() - t1
        _, acc = trainer.evaluate(test)
        if rank == 0:
            print(f"  test acc {acc:.4f}", flush=True)
    if rank == 0 and epochs > done:
        n = (epochs - done) * len(train)
        print(f"{args.data}: {world} process(es) x {args.threads} thread(s), global batch {args.batch_size}: "
              f"{n / train_s:.1f} training samples/s ({train_s:.1f} s for {epochs - done} epoch(s); "
              f"{time.perf_counter() - t0:.1f} s with the test passes); final test accuracy {acc:.4f}")
    close_distributed()


if __name__ == "__main__":
    main()
