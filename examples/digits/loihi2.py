"""The committed digits network quantized for Loihi 2: test accuracy of the float and the fixed-point graph.

    .venv/bin/python examples/digits/loihi2.py [--lava 30] [--json FIG.json]

Loads the model train.py saved (digits_snn.pt + digits_snn.json: `n3ml.nn.zoo.DigitsSNN`, whose
hidden LIF resets to 0 as Lava's does) and the test split (test.npz); nothing is retrained. Then:

* float accuracy: the reference interpreter on the float graph (argmax of the time-mean readout voltage);
* `quantize{profile=loihi2,input_scale=16,readout=voltage}`: the pixels (0..16) enter as graded
  integer spikes, 8-bit weight mantissas with a shared exponent per layer, 12-bit decays, 24-bit
  state; the LI readout becomes a neuron that never fires and whose voltage is read;
* fixed-point accuracy: the reference interpreter on the quantized graph (recording the readout's v);
* with --lava N: the first N test samples also run in Lava (fixed_pt) through the emitted program,
  and its readout voltages must equal the interpreter's bit for bit (exit status 1 if not).

The same conversion from the command line (the .pt2 holds the same weights):

    n3ml convert examples/digits/digits_snn.pt2 --target lava -o out/ \\
        -p "quantize{profile=loihi2,input_scale=16,readout=voltage}"
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

from n3ml.ir import interp
from n3ml.nn.zoo import DigitsSNN
from n3ml.passes import PassManager

HERE = Path(__file__).resolve().parent
PIPELINE = "quantize{profile=loihi2,input_scale=16,readout=voltage}"


def accuracy(volt: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(volt.mean(0).argmax(-1) == labels))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=HERE, help="folder with digits_snn.{pt,json} and test.npz")
    ap.add_argument("--lava", type=int, default=0, metavar="N", help="also run N test samples in Lava")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    meta = json.loads((args.dir / "digits_snn.json").read_text())
    model = DigitsSNN(**meta["model_args"])
    model.load_state_dict(torch.load(args.dir / "digits_snn.pt", weights_only=True))
    with np.load(args.dir / "test.npz") as z:
        xs, y_te = z["x"].astype(np.float64), z["labels"]

    graph = model.eval().to_graph()
    acc_float = accuracy(interp.run(graph, {"x": xs}).outputs["out"], y_te)

    ctx: dict = {}
    t0 = time.perf_counter()
    q = PassManager.from_string(PIPELINE).run(graph, ctx)
    x_int = np.round(xs * 16).astype(np.int64)  # the pixels' own integers 0..16
    vq = interp.run(q, {"x": x_int}, record=["readout"]).states["readout.v"]
    t_fixed = time.perf_counter() - t0
    acc_fixed = accuracy(vq.astype(np.float64), y_te)
    rep = ctx["report"]["quantize"]
    for layer, r in rep["layers"].items():
        syn = ", ".join(f"{s}: exp {v['exp']}, {v['sign']}, weight error {v['weight_error']:.2%}"
                        for s, v in r["synapses"].items())
        print(f"  {layer}: theta {r['theta']}, du {r['du']}, dv {r['dv']}; {syn}")
    print(f"test accuracy ({len(y_te)} samples): float {acc_float:.4f}, Loihi 2 fixed point {acc_fixed:.4f} "
          f"(difference {100 * (acc_fixed - acc_float):+.2f} points; quantized and ran in {t_fixed:.1f} s)")
    figures = {"float_accuracy": acc_float, "loihi2_accuracy": acc_fixed, "test_samples": int(len(y_te)),
               "pipeline": PIPELINE, "layers": rep["layers"]}

    if args.lava:
        from n3ml.backends.lava import LavaTarget

        n = min(args.lava, len(y_te))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            target = LavaTarget()
            target.check(q)
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
                  f"{accuracy(v_lava.astype(np.float64), y_te[:n]):.4f} (interpreter "
                  f"{accuracy(vq[:, :n].astype(np.float64), y_te[:n]):.4f})")
            figures.update(lava_samples=n, lava_bit_identical=same)
            if not same:
                return 1
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
