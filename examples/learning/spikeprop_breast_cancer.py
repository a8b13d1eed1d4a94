"""SpikeProp (Bohte, Kok & La Poutre 2002) on the Wisconsin breast-cancer data.

    .venv/bin/python examples/learning/spikeprop_breast_cancer.py [--splits 1] [--epochs 20]

Bohte et al.'s second benchmark besides Iris is the Wisconsin breast-cancer data (the
original 699-sample, 9-feature set; 64-15-2 network, 97.0 % test). scikit-learn bundles
the *diagnostic* Wisconsin set instead (569 samples, 30 features of cell nuclei), which is
used here: `load_split("breast_cancer")`, stratified 75/25 splits, every scale fitted on
the training part. Encoding as in the paper: 7 Gaussian receptive fields per feature
(fitted on the training part) + a reference neuron at 0 ms -> 211 inputs; 211-15-2 SRM
network with 16 delayed terminals per connection (1..16 ms), tau = 7 ms; targets: the
labelled output fires at 15 ms, the other at 19 ms; class = first output to fire.
Deviations: Adam, mixed-sign weights and the silent-neuron penalty (docs/learning.md).
Each split's trained network is converted to an IR graph (`to_graph`, dt = 0.1 ms: CubaLIF
neurons behind 16 delayed terminals, reset to-value under a window-long refractory period), run on
the reference interpreter on the test samples (spikes compared with the reset-'none' graph and with
the model's spike times on the grid, classes with the model's), and written with 5 test samples to
out/learning/ (the last split's) for `n3ml verify` on NEST and PyNN, and at dt = 0.5 ms for Lava.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import FIGURES, bar, interactive, plot_curve, save_for_verify, setup

from n3ml.ir.interp import run as ir_run
from n3ml.learn import spikeprop as sp
from n3ml.learn.data import load_split
from n3ml.learn.encoders import GaussianReceptiveFields

PAPER = 97.0  # Bohte et al. 2002, original Wisconsin breast-cancer set, test accuracy
GOAL = 95.0


IR_DT = 0.1  # ms: the IR graph's grid (input spike times are whole ms, delays 1..16 ms)
IR_STEPS = 300  # 30 ms, the network's window
# Lava: Loihi 2's synaptic delays hold 0..63 steps and the terminals' delays differ by 15 ms, so its graph
# samples the same SRM on a 0.5 ms grid (30 steps apart)
LAVA_DT = 0.5
LAVA_STEPS = 60


def _same(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of equal first-spike times (inf = silent on both sides counts as equal)."""
    return float(np.mean((a == b) | (np.isinf(a) & np.isinf(b))))


def check_ir(net: sp.SpikePropNet, xte: torch.Tensor) -> None:
    """The trained network as an IR graph on the reference interpreter, then written for `n3ml verify`.

    Checks, on every test sample: the graph (reset to-value, what the simulators accept) has the same
    spikes as its reset-'none' form (the SRM taken literally), its spikes are the model's own spike times
    rounded up to the grid (layer by layer, `grid_spike_times`), and its class is the model's.
    """
    graph = net.to_graph(dt=IR_DT)
    spikes = sp.spike_trains(xte, IR_DT, IR_STEPS)
    res = ir_run(graph, {"x": spikes}, record=["l1"])
    none = ir_run(net.to_graph(dt=IR_DT, reset="none"), {"x": spikes}, record=["l1"])
    same_reset = (np.array_equal(res.states["l1"], none.states["l1"])
                  and np.array_equal(res.outputs["out"], none.outputs["out"]))
    hidden, out = sp.grid_spike_times(net, xte, IR_DT)
    t_hidden = sp.first_spike_times(res.states["l1"], IR_DT)
    t_out = sp.first_spike_times(res.outputs["out"], IR_DT)
    same = float(np.mean(t_out.argmin(axis=1) == net.predict(xte).numpy()))
    print(f"IR graph (reference interpreter, dt {IR_DT} ms, reset to-value) on {len(xte)} test samples: "
          f"{'identical' if same_reset else 'DIFFERENT'} spikes to reset 'none' "
          f"({int(res.states['l1'].sum())} hidden, {int(res.outputs['out'].sum())} output spikes); the model's "
          f"spike times on the grid: hidden {_same(t_hidden, hidden):.2%}, output {_same(t_out, out):.2%}; "
          f"same class as the model on {same:.2%}")
    save_for_verify(graph, "spikeprop_breast_cancer", {"x": spikes[:, :5]}, IR_STEPS, targets="nest,pynn")
    lava_graph = net.to_graph(dt=LAVA_DT)
    lava = sp.spike_trains(xte, LAVA_DT, LAVA_STEPS)
    res = ir_run(lava_graph, {"x": lava}, record=["l1"])
    hidden, out = sp.grid_spike_times(net, xte, LAVA_DT)
    t_out = sp.first_spike_times(res.outputs["out"], LAVA_DT)
    print(f"IR graph for Lava (dt {LAVA_DT} ms): the model's spike times on the grid: hidden "
          f"{_same(sp.first_spike_times(res.states['l1'], LAVA_DT), hidden):.2%}, output {_same(t_out, out):.2%}; "
          f"same class as the model on {np.mean(t_out.argmin(axis=1) == net.predict(xte).numpy()):.2%}")
    save_for_verify(lava_graph, "spikeprop_breast_cancer_lava", {"x": lava[:, :5]}, LAVA_STEPS, targets="lava")


def run_split(split: int, epochs: int, hidden: int, seed: int) -> tuple[float, float, list[float]]:
    g = torch.Generator().manual_seed(seed)
    d = load_split("breast_cancer", seed=split)
    enc = GaussianReceptiveFields(m=7).fit(d.x_train)  # ranges from the training part only

    def times(x):
        t = torch.tensor(enc.encode(x))
        return torch.cat([t, torch.zeros(len(t), 1)], dim=1)  # reference neuron at 0 ms

    xtr, xte = times(d.x_train), times(d.x_test)
    ytr, yte = torch.tensor(d.y_train), torch.tensor(d.y_test)
    net = sp.SpikePropNet([xtr.shape[1], hidden, 2], generator=g, t_max=30.0, dt=0.2)
    curve: list[float] = []
    b = bar(epochs, f"split {split}")

    def progress(epoch, loss, acc):
        curve.append(100 * float((net.predict(xte) == yte).float().mean()))
        b.update()
        b.set_postfix(loss=f"{loss:.3f}", train=f"{acc:.3f}", test=f"{curve[-1] / 100:.3f}")
        if not interactive():
            print(f"split {split} epoch {epoch + 1}/{epochs}: loss {loss:.4f}  train acc {acc:.4f}  "
                  f"test acc {curve[-1] / 100:.4f}", flush=True)

    res = sp.fit(net, xtr, sp.class_targets(ytr, 2, 15.0, 19.0), ytr, epochs=epochs, lr=0.01, batch_size=8,
                 generator=g, progress=progress)
    b.close()
    check_ir(net, xte)
    return 100 * res.train_accuracy[-1], curve[-1], curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    setup(args.seed)
    t0 = time.perf_counter()
    tests, curves = [], {}
    for split in range(args.splits):
        t1 = time.perf_counter()
        tr, te, curve = run_split(split, args.epochs, args.hidden, args.seed)
        tests.append(te)
        curves[f"test, split {split}"] = curve
        print(f"split {split}: train {tr:.2f} %  test {te:.2f} %  ({time.perf_counter() - t1:.0f} s)", flush=True)
    print(f"SpikeProp breast-cancer (diagnostic) mean test accuracy over {args.splits} splits: {np.mean(tests):.2f} % "
          f"(per split {np.round(tests, 2).tolist()}; goal {GOAL} %, paper {PAPER} % on the original set)")
    plot_curve(FIGURES / "spikeprop_breast_cancer.png", f"SpikeProp 211-{args.hidden}-2, breast cancer (diagnostic)",
               curves, paper=PAPER, goal=GOAL)
    print(f"total run time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
