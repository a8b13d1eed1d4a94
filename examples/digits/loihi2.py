"""The digits network quantized for Loihi 2: test accuracy of the float and the fixed-point graph.

    .venv/bin/python examples/digits/loihi2.py [--epochs 30] [--lava 60]

Trains `n3ml.nn.zoo.DigitsSNN` (as train.py does, ~20 s) with the one change Loihi 2 needs: the
hidden LIF resets to 0 (Lava's LIF has no reset by subtraction). Then:

* float accuracy: the reference interpreter on the float graph (argmax of the time-mean readout voltage);
* `quantize{profile=loihi2,input_scale=16,readout=voltage}`: the pixels (0..16) enter as graded
  integer spikes, 8-bit weight mantissas with a shared exponent per layer, 12-bit decays, 24-bit
  state; the LI readout becomes a neuron that never fires and whose voltage is read;
* fixed-point accuracy: the reference interpreter on the quantized graph (recording the readout's v);
* with --lava N: the first N test samples also run in Lava (fixed_pt) through the emitted program,
  and its readout voltages must equal the interpreter's bit for bit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from n3ml.ir import interp
from n3ml.ir import prims as P
from n3ml.nn import LIF, repeat_time
from n3ml.nn.zoo import DigitsSNN
from n3ml.passes import PassManager
from n3ml.train import Trainer

HERE = Path(__file__).resolve().parent
PIPELINE = "quantize{profile=loihi2,input_scale=16,readout=voltage}"


def accuracy(volt: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(volt.mean(0).argmax(-1) == labels))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lava", type=int, default=0, metavar="N", help="also run N test samples in Lava")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target.astype(np.int64), test_size=0.2,
                                              stratify=digits.target, random_state=args.seed)
    model = DigitsSNN(n_in=64, hidden=128, n_out=10)
    # DigitsSNN's hidden layer (tau 5 ms, r = 1 / g, theta 1) with Lava's reset: v <- 0 after a spike
    model.lif1 = LIF(tau=5.0, r=float(1.0 / P.gain(5.0, 1.0, "exact")), theta=1.0, reset="to-value", v_reset=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    T = args.steps
    t0 = time.perf_counter()
    trainer = Trainer(model, opt, scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs),
                      inputs=lambda v: repeat_time(v, T), seed=args.seed, progress=False)
    trainer.fit(TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr)), args.epochs, batch_size=32)
    t_train = time.perf_counter() - t0

    graph = model.cpu().eval().to_graph()
    xs = np.broadcast_to(x_te, (T, *x_te.shape)).astype(np.float64)
    acc_float = accuracy(interp.run(graph, {"x": xs}).outputs["out"], y_te)

    ctx: dict = {}
    q = PassManager.from_string(PIPELINE).run(graph, ctx)
    x_int = np.round(xs * 16).astype(np.int64)  # the pixels' own integers 0..16
    vq = interp.run(q, {"x": x_int}, record=["readout"]).states["readout.v"]
    acc_fixed = accuracy(vq.astype(np.float64), y_te)
    rep = ctx["report"]["quantize"]
    print(f"trained {args.epochs} epochs in {t_train:.1f} s")
    for layer, r in rep["layers"].items():
        syn = ", ".join(f"{s}: exp {v['exp']}, {v['sign']}, weight error {v['weight_error']:.2%}"
                        for s, v in r["synapses"].items())
        print(f"  {layer}: theta {r['theta']}, du {r['du']}, dv {r['dv']}; {syn}")
    print(f"test accuracy ({len(y_te)} samples): float {acc_float:.4f}, Loihi 2 fixed point {acc_fixed:.4f} "
          f"(difference {100 * (acc_fixed - acc_float):+.2f} points)")
    figures = {"float_accuracy": acc_float, "loihi2_accuracy": acc_fixed, "test_samples": int(len(y_te)),
               "pipeline": PIPELINE, "layers": rep["layers"]}

    if args.lava:
        from n3ml.backends.lava import LavaTarget

        n = min(args.lava, len(y_te))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            target = LavaTarget()
            (tmp / "prog").mkdir()
            target.emit(q, tmp / "prog")
            np.savez(tmp / "in.npz", x=x_int[:, :n])
            t0 = time.perf_counter()
            subprocess.run(target.run_argv(tmp / "prog") + ["--input", str(tmp / "in.npz"), "--record", "readout",
                                                             "-o", str(tmp / "out.npz")], check=True)
            with np.load(tmp / "out.npz") as f:
                v_lava = f["state/readout.v"]
            same = bool(np.array_equal(v_lava, vq[:, :n]))
            print(f"Lava fixed_pt on {n} samples ({time.perf_counter() - t0:.1f} s): readout voltages "
                  f"{'bit-identical to' if same else 'DIFFER from'} the interpreter; accuracy "
                  f"{accuracy(v_lava.astype(np.float64), y_te[:n]):.4f}")
            figures.update(lava_samples=n, lava_bit_identical=same)
            if not same:
                return 1
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
