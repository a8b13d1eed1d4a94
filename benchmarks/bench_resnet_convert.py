"""Benchmark: ANN-to-SNN conversion of a ResNet-18 for 32x32 inputs (11.2M parameters, 20 convolutions,
batch-norm, residual adds) with `fold-batchnorm,ann-to-snn,normalize{percentile=99.9}`.

Run (heavy: use nice on a shared machine):

    nice -n 10 .venv/bin/python benchmarks/bench_resnet_convert.py                 # 16 and 1000 images
    nice -n 10 .venv/bin/python benchmarks/bench_resnet_convert.py --images 16,1000 --report-images 1000 --steps 100

The network is the CIFAR form of ResNet-18 (He et al. 2016; 3x3 stem, no max-pool, BasicBlocks
[2, 2, 2, 2] at 64/128/256/512 channels, global average pool, Linear(512 -> 10); the layout of
SpikingJelly's `ann2snn.sample_models.cifar10_resnet.ResNet18`, rebuilt here), built in torch
with random weights and batch-norm statistics (no download), exported to ONNX in a temporary directory
(`dynamo=False, do_constant_folding=False`: the BatchNormalization nodes stay for fold-batchnorm).
Calibration images are uniform noise in [0, 1) (the figures are about cost, not accuracy).

Each stage runs as `n3ml convert` runs it (the registry's engines lent to the passes, torch where it
imports) and the table shows the seconds of each stage and the peak RSS of the process so far (the
process is fresh for each configuration: `ru_maxrss` of a child process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ the network


def resnet18(num_classes: int = 10, seed: int = 0):
    """The CIFAR ResNet-18 in plain torch, eval mode, random weights and non-trivial BN statistics."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = nn.Sequential()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()  # one module per ReLU: converters give each its neurons

        def forward(self, x):
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu2(out + self.short(x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            layers, cin = [], 64
            for cout, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
                layers.append(Block(cin, cout, stride))
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            return self.fc(self.flat(self.pool(self.layers(x))))

    torch.manual_seed(seed)
    net = ResNet18()
    with torch.no_grad():  # trained-like BN statistics, so that folding and normalizing are not trivial
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def export_onnx(net, path: Path) -> Path:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, do_constant_folding=False,
                          input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "batch"}})
    return path


# ------------------------------------------------------------------ one configuration (child process)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_config(onnx_path: str, images: int, report_images: int, steps: int, report: bool, batch: int,
               dtype: str, out: str, device: str = "") -> list[dict]:
    """Load, fold, convert, normalize (and report) as `n3ml convert` does; one row per stage."""
    from n3ml.commands._engines import pass_context
    from n3ml.commands.convert import source_weight_dtype, store_weights
    from n3ml.ir.text import save
    from n3ml.loader import load_model
    from n3ml.passes import PassManager

    rows = []

    def stage(name, fn):
        t0, c0 = time.perf_counter(), _cpu_s()
        v = fn()
        rows.append({"stage": name, "seconds": round(time.perf_counter() - t0, 2), "cpu_s": round(_cpu_s() - c0, 2),
                     "peak_rss_mb": round(_rss_mb())})
        return v

    rng = np.random.default_rng(0)
    x = rng.random((max(images, report_images), 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, x.shape[0])
    g = stage("load ONNX", lambda: load_model(onnx_path))
    wdt = source_weight_dtype(g)  # as `n3ml convert --weights-dtype source`: float32 for this model
    ctx = {"calibration": {"x": x[:images], "labels": labels[:images]}, "steps": steps, "report": None,
           **pass_context()}
    if batch:
        ctx["calibration_batch"] = batch
    if dtype or device:
        ctx["engines"]["torch"] = ctx["engines"]["torch"]._replace(
            options={**ctx["engines"]["torch"].options, **({"dtype": dtype} if dtype else {}),
                     **({"device": device} if device else {})})
    g = stage("fold-batchnorm,ann-to-snn", lambda: PassManager.from_string("fold-batchnorm,ann-to-snn").run(g, ctx))
    g = stage(f"normalize (calibration, {images} images)",
              lambda: PassManager.from_string("normalize{percentile=99.9,report=false}").run(g, ctx))
    g = store_weights(g, wdt)
    stage("save model.n3ml + model.npz", lambda: save(g, Path(out) / "model.n3ml"))
    rows[-1]["sidecar_mb"] = round(os.path.getsize(Path(out) / "model.npz") / 2**20, 1)
    if report:
        ctx["calibration"] = {"x": x[:report_images], "labels": labels[:report_images]}
        ctx["report"] = {}
        dev = f",device={device}" if device else ""
        stage(f"conversion-report (T={steps}, {report_images} images)",
              lambda: PassManager.from_string(f"conversion-report{{steps={steps}{dev}}}").run(g, ctx))
        rows[-1]["snn_accuracy_vs_random_labels"] = ctx["report"]["accuracy"]["snn"]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="16,1000", help="calibration set sizes, comma-separated")
    ap.add_argument("--report-images", type=int, default=0, help="also time the report on this many images (0: no)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=0, help="calibration batch (0: automatic)")
    ap.add_argument("--dtype", default="", help="executor dtype for the passes (default: the CLI's)")
    ap.add_argument("--device", default="", help="torch device of the passes' executor (default: the CLI's, cpu)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: torch's default)")
    ap.add_argument("--child", nargs=2, metavar=("ONNX", "IMAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory() as out:
            rows = run_config(args.child[0], int(args.child[1]), args.report_images, args.steps,
                              args.report_images > 0, args.batch, args.dtype, out, args.device)
        print("ROWS " + json.dumps(rows))
        return 0
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        net = resnet18()
        n_params = sum(p.numel() for p in net.parameters())
        path = export_onnx(net, Path(tmp) / "resnet18.onnx")
        print(f"ResNet-18 (32x32): {n_params / 1e6:.1f}M parameters; ONNX {path.stat().st_size / 2**20:.1f} MB; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        sizes = [int(s) for s in args.images.split(",") if s.strip()]
        for i, n in enumerate(sizes):
            cmd = [sys.executable, __file__, "--child", str(path), str(n), "--steps", str(args.steps),
                   "--batch", str(args.batch)]
            if args.dtype:
                cmd += ["--dtype", args.dtype]
            if args.device:
                cmd += ["--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.report_images and i == len(sizes) - 1:
                cmd += ["--report-images", str(args.report_images)]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = next((s for s in res.stdout.splitlines() if s.startswith("ROWS ")), None)
            if res.returncode or line is None:
                print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
                return 1
            rows = json.loads(line[5:])
            print(f"\n{n} calibration images (total {time.perf_counter() - t0:.1f} s, child process)")
            print(f"| {'stage':<42} | {'seconds':>8} | {'CPU s':>8} | {'peak RSS MB':>11} |")
            print(f"|{'-' * 44}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
            for r in rows:
                extra = f"  (model.npz {r['sidecar_mb']} MB)" if "sidecar_mb" in r else ""
                print(f"| {r['stage']:<42} | {r['seconds']:>8.2f} | {r['cpu_s']:>8.2f} | {r['peak_rss_mb']:>11.0f} |{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
