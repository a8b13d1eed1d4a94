"""Soft LIF (Hunsberger & Eliasmith 2015): a CNN trained with the soft LIF rate on
scikit-learn digits, then run with spiking LIF neurons through the IR.

    .venv/bin/python examples/learning/softlif_digits.py [--epochs 30] [--ms 150] [--dt 0.5]

ANN: Conv(1->16) SoftLIF AvgPool Conv(16->32) SoftLIF AvgPool Linear(128->10);
tau_rc = 20 ms, tau_ref = 2 ms, gamma = 0.1, amplitude = 20 ms. The converted graph
(n3ml.learn.softlif.to_graph: Conv2d / LIF / AvgPool2d / Dense, input held as a
constant current) is simulated for --ms milliseconds by the torch executor
(n3ml.backends.torch.run); the logits are the time-averaged output layer.
Pixel scale fitted on the training part (75/25 split).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from n3ml.backends.torch import run as torch_run
from n3ml.learn.data import load_split
from n3ml.learn.softlif import DigitsCNN, to_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--ms", type=float, default=150.0, help="spiking simulation length, ms")
    ap.add_argument("--dt", type=float, default=0.5, help="simulation step, ms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    d = load_split("digits", test_size=0.25, seed=args.seed, images=True)
    xtr, ytr = torch.tensor(d.x_train), torch.tensor(d.y_train)
    xte, yte = torch.tensor(d.x_test), torch.tensor(d.y_test)
    net = DigitsCNN(amplitude=20.0, gamma=0.1)
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    for epoch in tqdm(range(args.epochs), desc="soft LIF ANN"):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 32):
            idx = perm[i:i + 32]
            loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        ann_pred = net(xte).argmax(1).numpy()
    ann = float(np.mean(ann_pred == d.y_test))
    print(f"soft-LIF ANN test accuracy: {ann:.4f}  ({time.perf_counter() - t0:.1f} s)")

    t1 = time.perf_counter()
    graph = to_graph(net, (1, 8, 8), dt=args.dt)
    steps = int(round(args.ms / args.dt))
    x = np.repeat(d.x_test[None].astype(np.float64), steps, axis=0)
    out = torch_run(graph, {"x": x}, dtype="float32").outputs["out"]  # (T, B, 10)
    snn_pred = out.mean(axis=0).argmax(axis=1)
    snn = float(np.mean(snn_pred == d.y_test))
    print(f"spiking LIF network (IR, {args.ms:g} ms at dt {args.dt:g} ms): test accuracy {snn:.4f} "
          f"({snn - ann:+.4f} vs the ANN), same prediction as the ANN on {np.mean(snn_pred == ann_pred):.2%} "
          f"({time.perf_counter() - t1:.1f} s)")
    for ms in (25, 50, 100):
        n = int(round(ms / args.dt))
        if n < steps:
            print(f"  after {ms} ms: {np.mean(out[:n].mean(axis=0).argmax(axis=1) == d.y_test):.4f}")
    print(f"total run time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
