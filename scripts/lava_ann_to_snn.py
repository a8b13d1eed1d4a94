#!/usr/bin/env python3
"""ANN -> SNN CNNs on Lava fixed_pt (Loihi 2's bit-accurate models): accuracy against the ANN, and bit
identity with the executor, on test images.

    .venv/bin/python scripts/lava_ann_to_snn.py --model cnn [--samples 450] [--steps 40]
    .venv/bin/python scripts/lava_ann_to_snn.py --model mnist5k [--samples 1000] [--steps 100] [--epochs 12]

cnn: examples/ann_to_snn/cnn.onnx (digits 8x8), the default pipeline of docs/conversion.md
`fold-batchnorm,ann-to-snn,normalize{percentile=99.9}` with the bundled calibration set, then
`quantize{profile=loihi2,input_scale=64}` (inputs round(64 x)), as `examples/ann_to_snn/evaluate.py --loihi`.
mnist5k: the CNN of examples/learning/ann_to_snn_mnist5k.py (issue 18), trained here as that example trains
it (--epochs, seed 0), the same default pipeline (256 training images for calibration), then
`quantize{profile=loihi2,input_scale=255}` (pixels 0..255).

The quantized graph goes through `n3ml convert --target lava` (Lava's legalization, the max-pool's
decomposition with its unequal paths delayed by relay populations and DelayDense) and the emitted run.py
runs in .venv-lava, in blocks of --block images; each block's output spikes are compared with the torch
executor's (integer arithmetic) step by step. Prints the ANN, float SNN, executor and Lava accuracies.
Long: run it under `nice -n 10`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"


def digits_cnn():
    from n3ml.loader import load_model

    here = ROOT / "examples" / "ann_to_snn"
    test = dict(np.load(here / "test.npz"))
    return load_model(str(here / "cnn.onnx")), dict(np.load(here / "calib.npz")), test["x"], test["labels"], 64


def mnist5k_cnn(epochs: int):
    import torch

    sys.path.insert(0, str(ROOT / "examples" / "learning"))
    from ann_to_snn_mnist5k import CNN, train  # the example's network and training, unchanged
    from common import setup

    from n3ml.learn.data import load_split
    from n3ml.loader import load_model

    setup(0)
    d = load_split("mnist5k", images=True)
    model = CNN()
    train(model, torch.tensor(d.x_train), torch.tensor(d.y_train), torch.tensor(d.x_test), torch.tensor(d.y_test),
          epochs, 0)
    cal_idx = np.random.default_rng(1).permutation(len(d.x_train))[:256]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cnn.onnx"
        torch.onnx.export(model.eval(), (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["logits"], do_constant_folding=False,
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        ann = load_model(str(path))
    return ann, {"x": d.x_train[cal_idx]}, d.x_test, d.y_test, 255


def predictions(graph, x: np.ndarray, steps: int, batch: int = 50) -> tuple[np.ndarray, list[np.ndarray]]:
    """Arg-max of the output spike counts on the torch executor, and the output spike trains per block."""
    from n3ml.backends.torch import run as torch_run

    preds, trains = [], []
    for b in range(0, len(x), batch):
        out = next(iter(torch_run(graph, {"x": np.repeat(x[None, b:b + batch], steps, axis=0)}, steps)
                        .outputs.values()))
        out = np.asarray(out)
        preds.append(out.sum(0).argmax(-1))
        trains.append(out)
    return np.concatenate(preds), trains


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("cnn", "mnist5k"), default="cnn")
    ap.add_argument("--samples", type=int, default=None, help="test images (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="T (default 40 for cnn, 100 for mnist5k)")
    ap.add_argument("--epochs", type=int, default=12, help="mnist5k: training epochs of the ANN")
    ap.add_argument("--block", type=int, default=42, help="images per run of the Lava program")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from n3ml.ir import interp
    from n3ml.ir.text import save
    from n3ml.passes import PassManager

    t0 = time.perf_counter()
    ann, cal, x, y, scale = digits_cnn() if args.model == "cnn" else mnist5k_cnn(args.epochs)
    steps = args.steps or (40 if args.model == "cnn" else 100)
    n = args.samples or len(x)
    x, y = x[:n].astype(np.float64), y[:n]
    snn = PassManager.from_string(PIPELINE).run(ann, {"calibration": cal, "steps": steps, "report": None})
    quant = f"quantize{{profile=loihi2,input_scale={scale}}}"
    q = PassManager.from_string(quant).run(snn, {"report": {}})
    xq = np.rint(x * scale)
    ann_pred = np.asarray(next(iter(interp.run(ann, {"x": x[None]}).outputs.values())))[0].argmax(-1)
    snn_pred, _ = predictions(snn, x, steps)
    exe_pred, exe_trains = predictions(q, xq, steps, batch=args.block)
    print(f"{args.model}: {PIPELINE},{quant}; {n} test images, T = {steps}: ANN {100 * np.mean(ann_pred == y):.2f} %, "
          f"SNN float {100 * np.mean(snn_pred == y):.2f} %, fixed point (executor) {100 * np.mean(exe_pred == y):.2f} %"
          f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save(q, tmp / "q.n3ml")
        subprocess.run([sys.executable, "-m", "n3ml", "convert", str(tmp / "q.n3ml"), "--target", "lava",
                        "-o", str(tmp / "lava")], check=True, capture_output=True, text=True)
        from n3ml.backends.lava import LavaTarget

        argv = LavaTarget().run_argv(tmp / "lava")
        lava_pred, same, total, t1 = [], 0, 0, time.perf_counter()
        for i, b in enumerate(range(0, n, args.block)):
            np.savez(tmp / "in.npz", x=np.repeat(xq[None, b:b + args.block], steps, axis=0))
            r = subprocess.run(argv + ["--input", str(tmp / "in.npz"), "-o", str(tmp / "out.npz")],
                               capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-3000:])
                return 1
            with np.load(tmp / "out.npz") as f:
                out = f[f.files[0]]
            lava_pred.append(out.sum(0).argmax(-1))
            same += int(np.sum(np.all(out == exe_trains[i], axis=tuple(range(2, out.ndim)) + (0,))))
            total += out.shape[1]
            done = np.concatenate(lava_pred)
            print(f"  Lava fixed_pt {total}/{n}: {100 * np.mean(done == y[:total]):.2f} %, {same}/{total} images "
                  f"with output spikes identical to the executor's at every step ({time.perf_counter() - t1:.0f} s)",
                  flush=True)
    lava = 100 * np.mean(np.concatenate(lava_pred) == y)
    print(f"Lava fixed_pt: {lava:.2f} % ({lava - 100 * np.mean(ann_pred == y):+.2f} points vs the ANN), bit-identical "
          f"output spikes on {same}/{n} images; {r.stdout.strip()}; total {time.perf_counter() - t0:.0f} s")
    return 0 if same == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
