"""STBP (Wu et al. 2018) on real MNIST images: the paper's convolutional network on mnist5k.

    .venv/bin/python examples/learning/stbp_mnist5k.py [--epochs 6] [--steps 8]

Network 28x28-32C3-AP2-32C3-AP2-128-10 of the paper's iterative LIF neurons (k_tau = 0.2,
V_th = 0.5, reset to 0 through the (1 - o) factor, rectangular surrogate of width 1), as in
the authors' released code and the original n3ml example; input pixels as Bernoulli
spike trains (p = intensity per step); loss = MSE between output rates and the one-hot
label; Adam, lr 1e-3 (cosine-decayed here). Data: `load_split("mnist5k")` (4,000 training,
1,000 test images, pixel scale fitted on training data). Scaled to the 10-minute budget
on one CPU thread: 6 epochs, batch 32 (T = 8 steps as in the authors' released code).
The test set is scored after every epoch for the learning curve only (nothing is chosen
with it). Finally the trained network is traced to an IR graph (n3ml.frontends.torch)
and run by the torch executor on test images with the same input spikes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import FIGURES, interactive, plot_curve, save_for_verify, setup
from torch.utils.data import TensorDataset

from n3ml.backends.torch import run as torch_run
from n3ml.learn.data import load_split
from n3ml.learn.stbp import STBPConvNet, bernoulli, rate_mse
from n3ml.train import Trainer

PAPER = 99.42  # Wu et al. 2018, spiking CNN on full MNIST (60,000 training images)
GOAL = 97.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layers", default="32C3-AP2-32C3-AP2-128-10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ir-samples", type=int, default=50)
    args = ap.parse_args()
    setup(args.seed)
    t0 = time.perf_counter()
    d = load_split("mnist5k", images=True)
    net = STBPConvNet(args.layers, (1, 28, 28)).to(args.device)
    train = TensorDataset(torch.tensor(d.x_train), torch.tensor(d.y_train))
    test = TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test))
    opt = torch.optim.Adam(net.parameters(), args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    curve: dict[str, list[float]] = {"train (running)": [], "test": []}

    def on_epoch(m) -> None:
        curve["train (running)"].append(100 * m.accuracy)
        curve["test"].append(100 * m.val_accuracy)
        print(f"epoch {m.epoch}/{args.epochs}: loss {m.loss:.4f}  train acc {m.accuracy:.4f}  "
              f"test acc {m.val_accuracy:.4f}  ({m.seconds:.0f} s)", flush=True)

    trainer = Trainer(net, opt, loss_fn=rate_mse, inputs=lambda x: bernoulli(x, args.steps), scheduler=sched,
                      seed=args.seed, progress=interactive(), on_epoch=on_epoch)
    trainer.fit(train, args.epochs, batch_size=args.batch_size, val_data=test)
    acc = curve["test"][-1]
    t_train = time.perf_counter() - t0
    print(f"STBP mnist5k test accuracy: {acc:.2f} %  (goal {GOAL} %, paper {PAPER} % on full MNIST; "
          f"{t_train:.0f} s)")
    plot_curve(FIGURES / "stbp_mnist5k.png", f"STBP {args.layers}, T={args.steps}, mnist5k", curve,
               paper=PAPER, goal=GOAL)

    # the traced IR graph on the torch executor, same input spikes (float64 on both sides)
    n = args.ir_samples
    g = torch.Generator().manual_seed(args.seed)
    spikes = bernoulli(torch.tensor(d.x_test[:n], dtype=torch.float64), args.steps, generator=g)
    ours = net.double().cpu()(spikes).detach().numpy()
    ir = torch_run(net.to_graph(), {"input": spikes.numpy()}).outputs["out"]
    print(f"IR graph (torch executor) on {n} test images: output spikes equal the model's on "
          f"{np.mean(ir == ours):.4%} of entries, same class on {np.mean(ir.mean(0).argmax(1) == ours.mean(0).argmax(1)):.2%}")
    save_for_verify(net.to_graph(), "stbp_mnist5k", {"input": spikes[:, :2].numpy()}, args.steps)
    print(f"total run time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
