"""BP-STDP (Tavanaei & Maida 2019) on real MNIST images: 784-500-10, T = 20, on mnist5k.

    .venv/bin/python examples/learning/bpstdp_mnist5k.py [--epochs 3]

The paper's and the original n3ml example's configuration: 784-500-10 integrate-and-fire
network, Poisson input (spike probability = pixel intensity per 1 ms step), T = 20 steps
per image, error window eps = 4 steps, learning rate mu = 0.0005, one image at a time
(batch 1), class = output neuron with the most spikes. Data: `load_split("mnist5k")`.
Scaled to the 10-minute budget on one CPU thread: 3 epochs of the 4,000 training images
(the paper trains on 60,000). The trained network is finally run through the IR
(reference interpreter) on 100 test images with the same input spikes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import FIGURES, bar, plot_curve, save_for_verify, setup

from n3ml.ir.interp import run as ir_run
from n3ml.learn.bpstdp import BPSTDPNet
from n3ml.learn.data import load_split
from n3ml.learn.encoders import poisson

PAPER = 97.2  # Tavanaei & Maida 2019, 784-500-10 on full MNIST
GOAL = 93.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--lr", type=float, default=0.0005)
    ap.add_argument("--eps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    setup(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    d = load_split("mnist5k")
    xtr, ytr = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xte, yte = torch.tensor(d.x_test), torch.tensor(d.y_test)
    net = BPSTDPNet([784, args.hidden, 10], lr=args.lr, eps=args.eps, seed=args.seed)
    curve: dict[str, list[float]] = {"test": []}
    for epoch in range(1, args.epochs + 1):
        t1 = time.perf_counter()
        b = bar(len(xtr), f"BP-STDP epoch {epoch}")
        net.fit_epoch(xtr, ytr, steps=args.steps, batch_size=args.batch_size, generator=g, progress=b.update)
        b.close()
        acc = 100 * float((net.predict(xte, steps=args.steps, generator=g) == yte).float().mean())
        curve["test"].append(acc)
        print(f"epoch {epoch}/{args.epochs}: test acc {acc:.2f} %  ({time.perf_counter() - t1:.0f} s)", flush=True)
    print(f"BP-STDP mnist5k test accuracy: {curve['test'][-1]:.2f} %  (goal {GOAL} %, paper {PAPER} % on full "
          f"MNIST; {time.perf_counter() - t0:.0f} s)")
    plot_curve(FIGURES / "bpstdp_mnist5k.png", f"BP-STDP 784-{args.hidden}-10, T={args.steps}, mnist5k", curve,
               paper=PAPER, goal=GOAL)

    # the same network through the IR: identical input spikes, float64 on both sides
    spikes = poisson(xte[:100].double(), args.steps, generator=g)
    ours = net.run(spikes).numpy()
    ir = ir_run(net.to_graph(), {"x": spikes.numpy()}).outputs["out"]
    print(f"IR (reference interpreter) on 100 test images: output spikes equal the model's on "
          f"{np.mean(ours == ir):.4%} of entries; same class on {np.mean(ours.sum(0).argmax(1) == ir.sum(0).argmax(1)):.2%}")
    save_for_verify(net.to_graph(), "bpstdp_mnist5k", {"x": spikes[:, :5].numpy()}, args.steps)
    print(f"total run time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
