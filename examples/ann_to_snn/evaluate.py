"""Convert the bundled digits ANNs to SNNs and measure them on the held-out test split.

    .venv/bin/python examples/ann_to_snn/evaluate.py [--steps 100] [--samples 450] [--methods] [--loihi]

For each model: fold-batchnorm,ann-to-snn,normalize{percentile=99.9} with the bundled calibration set
(training split), then the per-layer ANN/SNN correlation and accuracy vs. steps on the test split
(executor). --methods also compares the max-pooling methods and options on the CNN; --loihi measures the
CNN quantized for Loihi 2 instead (docs/quantization.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.backends.torch import run as torch_run
from n3ml.passes.base import Engine
from n3ml.passes.report import conversion_report, format_report

HERE = Path(__file__).resolve().parent
PIPELINE = "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"
VARIANTS = [
    "fold-batchnorm,ann-to-snn{maxpool=auto},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{maxpool=current},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{maxpool=spikes},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{maxpool=avg},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{readout=membrane},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{v_init=0},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn{reset=to-value},normalize{percentile=99.9}",
    "fold-batchnorm,ann-to-snn,normalize{percentile=100}",
    "fold-batchnorm,ann-to-snn,normalize{percentile=99.9,channelwise=true}",
    "fold-batchnorm,ann-to-snn{encoding=poisson},normalize{percentile=99.9}",
]


def measure(model: str, pipeline: str, steps: int, n: int, *, verbose: bool) -> dict:
    cal = dict(np.load(HERE / "calib.npz"))
    test = dict(np.load(HERE / "test.npz"))
    ctx = {"calibration": cal, "steps": steps, "report": None}
    t0 = time.perf_counter()
    snn = PassManager.from_string(pipeline).run(load_model(str(HERE / f"{model}.onnx")), ctx)
    t1 = time.perf_counter()
    rep = conversion_report(snn, {"x": test["x"][:n].astype(np.float64)}, steps=steps,
                            labels=test["labels"][:n], ann=ctx["ann"],
                            engine=Engine("torch", torch_run, {"dtype": "float64"}))
    if verbose:
        print(f"\n== {model}: {pipeline}  (conversion {t1 - t0:.2f} s, simulation+report {rep['seconds']:.1f} s)")
        print(format_report(rep))
    return rep


def loihi(steps: int, n: int, scale: int = 64) -> None:
    """The default conversion of the CNN, quantized for Loihi 2 (inputs as round(scale x)), against the
    ANN and the float SNN (reference interpreter, spike counts)."""
    from n3ml.ir import interp

    cal, test = dict(np.load(HERE / "calib.npz")), dict(np.load(HERE / "test.npz"))
    ann = load_model(str(HERE / "cnn.onnx"))
    snn = PassManager.from_string(PIPELINE).run(ann, {"calibration": cal, "steps": steps, "report": None})
    q = PassManager.from_string(f"quantize{{profile=loihi2,input_scale={scale}}}").run(snn, {"report": {}})
    x, y = test["x"][:n].astype(np.float64), test["labels"][:n]

    def acc(graph, data, t):
        out = next(iter(interp.run(graph, {"x": np.repeat(data[None], t, 0)}).outputs.values()))
        return 100 * float(np.mean(np.asarray(out).sum(0).argmax(-1) == y))

    print(f"cnn, {PIPELINE} + quantize{{profile=loihi2,input_scale={scale}}}, {n} test samples, T = {steps}: "
          f"ANN {acc(ann, x, 1):.2f}%, SNN float {acc(snn, x, steps):.2f}%, "
          f"SNN Loihi 2 fixed point {acc(q, np.rint(x * scale), steps):.2f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--samples", type=int, default=450)
    ap.add_argument("--methods", action="store_true")
    ap.add_argument("--loihi", action="store_true", help="only the CNN quantized for Loihi 2, in fixed point")
    args = ap.parse_args()
    if args.loihi:
        return loihi(args.steps, args.samples)
    import torch

    torch.set_num_threads(1)
    for model in ("cnn", "residual", "concat"):
        measure(model, PIPELINE, args.steps, args.samples, verbose=True)
    if args.methods:
        print("\n== cnn, variants: SNN accuracy at 10 / 30 / 100 steps (ANN in brackets), min layer correlation")
        for pipe in VARIANTS:
            rep = measure("cnn", pipe, args.steps, args.samples, verbose=False)
            acc = rep["accuracy"]["snn"]["probs"]
            pts = " / ".join(f"{acc.get(str(t), float('nan')):.4f}" for t in (10, 30, args.steps))
            corr = min(lay["correlation"] or 0 for lay in rep["layers"])
            print(f"{pipe:<75} {pts}  [{rep['accuracy']['ann']['probs']:.4f}]  corr {corr:.4f}")


if __name__ == "__main__":
    main()
