"""BP-STDP (Tavanaei & Maida 2019) on XOR, Iris and scikit-learn digits.

    .venv/bin/python examples/learning/bpstdp_digits.py [--epochs 10]

IF neurons, Poisson inputs (probability = intensity per 1 ms step), error
window eps = 4 steps, class = output neuron with the most spikes.
XOR: inputs (x, 1 - x), 4-20-2. Iris: 10 Gaussian receptive fields per feature
as rates (fitted on the training half), 40-30-3, five 50/50 splits (Iris is small: one split's accuracy moves with the split). Digits: 64-100-10,
75/25 split, pixel scale fitted on the training part. The trained digits network
is finally run through the IR (reference interpreter) on 100 test samples to show
that the converted graph makes the same predictions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from n3ml.ir.interp import run as ir_run
from n3ml.learn.bpstdp import BPSTDPNet
from n3ml.learn.data import load_split, xor
from n3ml.learn.encoders import GaussianReceptiveFields, poisson


def train(net, xtr, ytr, *, epochs, steps, batch_size, g, desc):
    bar = tqdm(total=epochs * len(xtr), desc=desc, leave=False)
    for _ in range(epochs):
        net.fit_epoch(xtr, ytr, steps=steps, batch_size=batch_size, generator=g, progress=bar.update)
    bar.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10, help="digits epochs")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--iris-splits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    x, y = xor()
    xx, yy = torch.tensor(np.c_[x, 1 - x]), torch.tensor(y)
    net = BPSTDPNet([4, 20, 2], lr=0.005, seed=args.seed)
    train(net, xx, yy, epochs=100, steps=args.steps, batch_size=1, g=g, desc="XOR")
    pred = net.predict(xx, steps=args.steps, generator=g)
    print(f"XOR predictions {pred.tolist()} (want {y.tolist()}), accuracy "
          f"{float((pred == yy).float().mean()):.2f}  ({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    accs = []
    for split in range(args.iris_splits):
        d = load_split("iris", test_size=0.5, seed=split)
        enc = GaussianReceptiveFields(m=10).fit(d.x_train)  # ranges from the training half only
        xtr = torch.tensor(enc.response(d.x_train), dtype=torch.float32)
        xte = torch.tensor(enc.response(d.x_test), dtype=torch.float32)
        net = BPSTDPNet([xtr.shape[1], 30, 3], lr=0.002, seed=args.seed)
        train(net, xtr, torch.tensor(d.y_train), epochs=20, steps=args.steps, batch_size=1, g=g,
              desc=f"Iris split {split}")
        accs.append(float((net.predict(xte, steps=args.steps, generator=g) == torch.tensor(d.y_test)).float().mean()))
    print(f"Iris test accuracy per 50/50 split {np.round(accs, 3).tolist()}, mean {np.mean(accs):.3f}  "
          f"({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    d = load_split("digits", test_size=0.25, seed=args.seed)
    xtr, ytr = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xte, yte = torch.tensor(d.x_test), torch.tensor(d.y_test)
    net = BPSTDPNet([64, 100, 10], lr=0.003, seed=args.seed)
    train(net, xtr, ytr, epochs=args.epochs, steps=args.steps, batch_size=16, g=g, desc="digits")
    acc = float((net.predict(xte, steps=args.steps, generator=g) == yte).float().mean())
    print(f"digits test accuracy {acc:.3f}  ({time.perf_counter() - t0:.1f} s)")

    # the same network through the IR: identical input spikes, float64 on both sides
    spikes = poisson(xte[:100].double(), args.steps, generator=g)
    ours = net.run(spikes).sum(0).argmax(1).numpy()
    ir = ir_run(net.to_graph(), {"x": spikes.numpy()}).outputs["out"].sum(0).argmax(1)
    print(f"IR (reference interpreter) agrees with the trained model on {np.mean(ours == ir):.2%} of 100 "
          f"test samples; IR accuracy there {np.mean(ir == d.y_test[:100]):.3f}")
    print(f"total run time: {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
