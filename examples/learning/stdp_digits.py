"""Unsupervised STDP (Diehl & Cook 2015) on scikit-learn digits.

    .venv/bin/python examples/learning/stdp_digits.py [--n-exc 400] [--epochs 1]

400 excitatory LIF neurons with adaptive thresholds and (nearly winner-take-all)
lateral inhibition learn the 64 Poisson inputs by trace STDP with weight
normalisation; no label is used while learning. Then, with weights and thresholds
frozen, every neuron is labelled by the class it answers most on the training set,
and each test digit gets the class whose neurons fire most. Pixel scale fitted on
the training part (75/25 split). Finally the trained network is converted to an IR
graph (PoissonRate -> Dense -> LIF with per-neuron thresholds, inhibition through a
one-step Delay) and run by the reference interpreter on 50 test digits with the same
Poisson stream, to show the converted graph reproduces the model's spikes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from n3ml.ir.interp import run as ir_run
from n3ml.learn.data import load_split
from n3ml.learn.stdp import DiehlCook, DiehlCookConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-exc", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    d = load_split("digits", test_size=0.25, seed=args.seed)
    xtr, ytr = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xte, yte = torch.tensor(d.x_test), torch.tensor(d.y_test)
    model = DiehlCook(64, DiehlCookConfig(n_exc=args.n_exc), seed=args.seed)
    for epoch in range(args.epochs):
        with tqdm(total=len(xtr), desc=f"STDP epoch {epoch + 1}") as bar:
            repeats = model.train_epoch(xtr, progress=lambda k: bar.update())
        print(f"epoch {epoch + 1}: {repeats} samples repeated with a stronger input")
    t_train = time.perf_counter() - t0
    model.assign_labels(model.counts(xtr), ytr, 10)
    pred = model.classify(model.counts(xte))
    acc = float((pred == yte).float().mean())
    per_class = np.bincount(model.labels.numpy(), minlength=10)
    print(f"neurons per assigned class: {per_class.tolist()}")
    print(f"STDP digits test accuracy ({args.n_exc} excitatory neurons): {acc:.4f}  "
          f"(training {t_train:.1f} s, labelling + test {time.perf_counter() - t0 - t_train:.1f} s)")

    # the IR graph with the same Poisson stream as the PoissonRate node draws (docs/semantics.md §7)
    x = d.x_test[:50].astype(np.float64)
    steps = model.cfg.steps
    graph = model.to_graph(seed=args.seed)
    u = np.random.default_rng(args.seed).random((steps, len(x), 64))
    spikes = torch.tensor((u < np.clip(model.cfg.rate * x, 0, 1)).astype(np.float64))
    ours = model.run(spikes).numpy()
    ir = ir_run(graph, {"x": np.repeat(x[None], steps, axis=0)}).outputs["spikes"]
    print(f"IR (reference interpreter) spikes equal the model's on {np.mean(ours == ir):.4%} of "
          f"(step, sample, neuron) entries ({int(ir.sum())} spikes)")
    print(f"total run time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
