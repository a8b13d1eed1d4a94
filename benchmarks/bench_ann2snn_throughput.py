"""Benchmark: inference throughput of a converted ResNet-18 (32x32, T steps) -- n3ml's torch executor
beside SpikingJelly's own `ann2snn.Converter`, on the same ANN, in one run, with the same check.

Run (heavy: use nice on a shared machine):

    nice -n 10 .venv/bin/python benchmarks/bench_ann2snn_throughput.py                  # T=100, 16 images
    nice -n 10 .venv/bin/python benchmarks/bench_ann2snn_throughput.py --images 64 --batch 32 --device cuda

The ANN is `bench_resnet_convert.resnet18()` (random weights and batch-norm statistics: throughput
does not depend on training) with its classifier standardized on the calibration features (see
`standardize_classifier`: otherwise the random ANN gives every image the same class). Inputs are
uniform noise images. Both converters calibrate on the same images at the 99.9th percentile:

* n3ml: the ANN exported to ONNX, `fold-batchnorm,ann-to-snn{readout=membrane},normalize{percentile=99.9}`
  (IF neurons, reset by subtraction, v_init = 0.5; the last Linear feeds an Integrator, i.e. the logits
  summed over time, as SpikingJelly decodes), weights stored as float32 (the source's), then compiled
  by `n3ml.backends.torch.compile(dtype=float32)` and run on (T, B, 3, 32, 32) with the image held
  for T steps; prediction = arg-max of the Integrator at the last step.
* SpikingJelly: `ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader, mode="99.9%"))` on the
  torch module (its Conv-BN fusion, VoltageHook calibration, IFNode with soft reset), run as its
  `examples/resnet18_cifar10.py` does: `functional.reset_net`, then the net called T times on the image,
  outputs summed; prediction = arg-max of the sum.

Printed: images/second (median of `--repeats` timed passes over the test images, after one warm-up
batch), CPU seconds per image (user + system of the process: unchanged by other jobs on a shared
machine), each one's ratio to n3ml (> 1: faster than n3ml), and the agreement of each SNN's
predictions with the ANN's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resnet_convert import export_onnx, resnet18  # noqa: E402


def standardize_classifier(net, cal: np.ndarray) -> None:
    """Divide the random Linear classifier's inputs by their spread over the calibration images and
    centre its logits there. A random ResNet maps all images to nearly the same features (class 4 for
    every image, measured), so agreement with the ANN would mean nothing; after this the ANN's
    predictions spread over the classes and the SNNs must follow small feature differences."""
    feats = []
    hook = net.fc.register_forward_hook(lambda m, i, o: feats.append(i[0]))
    with torch.no_grad():
        net(torch.from_numpy(cal))
        f = feats[0]
        net.fc.weight.mul_(1.0 / (f.std(0) + 1e-6))
        net.fc.bias.copy_(-(f.mean(0) @ net.fc.weight.T))
    hook.remove()


def convert_n3ml(net, cal: np.ndarray, tmp: Path, device: str):
    from n3ml.backends.torch import compile
    from n3ml.commands._engines import pass_context
    from n3ml.commands.convert import source_weight_dtype, store_weights
    from n3ml.loader import load_model
    from n3ml.passes import PassManager

    g = load_model(str(export_onnx(net, tmp / "resnet18.onnx")))
    wdt = source_weight_dtype(g)
    ctx = {"calibration": {"x": cal}, "report": None, **pass_context()}
    if device != "cpu":
        eng = ctx["engines"]["torch"]
        ctx["engines"]["torch"] = eng._replace(options={**eng.options, "device": device})
    pipeline = "fold-batchnorm,ann-to-snn{readout=membrane},normalize{percentile=99.9,report=false}"
    snn = PassManager.from_string(pipeline).run(g, ctx)
    snn = store_weights(snn, wdt)
    exe = compile(snn, device=device, dtype=torch.float32)
    out = snn.output_names[0]

    def predict(x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            summed = exe(x[None].expand(steps, *x.shape))[out]
        return summed[-1].argmax(-1)

    return predict


def convert_spikingjelly(net, cal: np.ndarray, device: str):
    import copy

    from spikingjelly.activation_based import ann2snn, functional

    loader = [(torch.from_numpy(cal[i:i + 16]), torch.zeros(len(cal[i:i + 16]), dtype=torch.long))
              for i in range(0, len(cal), 16)]
    conv = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%"), device=device)
    snn = conv.convert(copy.deepcopy(net).to(device)).to(device).eval()

    def predict(x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            functional.reset_net(snn)
            acc = snn(x)
            for _ in range(1, steps):
                acc += snn(x)
        return acc.argmax(-1)

    return predict


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(predict, xs: torch.Tensor, steps: int, batch: int, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median images/second over `repeats` passes, median CPU seconds per image (user + system, all
    threads: the figure a loaded machine does not change), and the predictions of the last pass."""
    predict(xs[:batch], min(steps, 2))  # warm-up (allocator, kernels), short: the timed pass is long
    rates, cpus, preds = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu_s()
        preds = torch.cat([predict(xs[i:i + batch], steps) for i in range(0, len(xs), batch)])
        if xs.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(len(xs) / (time.perf_counter() - t0))
        cpus.append((_cpu_s() - c0) / len(xs))
    return statistics.median(rates), statistics.median(cpus), preds.cpu()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", "-T", type=int, default=100)
    ap.add_argument("--images", type=int, default=16, help="test images")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--calibration", type=int, default=64, help="calibration images (both converters)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cal = rng.random((args.calibration, 3, 32, 32), dtype=np.float32)
    test = rng.random((args.images, 3, 32, 32), dtype=np.float32)
    net = resnet18().eval()
    standardize_classifier(net, cal)
    xs = torch.from_numpy(test).to(args.device)
    with torch.no_grad():
        ann_pred = net.to(args.device)(xs).argmax(-1).cpu()
    net = net.cpu()
    print(f"ResNet-18 (32x32), T={args.steps}, {args.images} images, batch {args.batch}, {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n3 = convert_n3ml(net, cal, Path(tmp), args.device)
        t_n3 = time.perf_counter() - t0
    t0 = time.perf_counter()
    sj = convert_spikingjelly(net, cal, args.device)
    t_sj = time.perf_counter() - t0
    for name, predict, conv_s in (("n3ml executor", n3, t_n3), ("SpikingJelly ann2snn", sj, t_sj)):
        ips, cpu, pred = timed(predict, xs, args.steps, args.batch, args.repeats)
        rows.append((name, conv_s, ips, cpu, float((pred == ann_pred).float().mean()), pred))
    base, base_cpu = rows[0][2], rows[0][3]
    print(f"\n| {'implementation':<22} | {'convert s':>9} | {'images/s':>9} | {'vs n3ml':>8} | {'CPU s/image':>11} | "
          f"{'vs n3ml':>8} | {'agrees with ANN':>15} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 13}|{'-' * 10}|{'-' * 17}|")
    for name, conv_s, ips, cpu, agree, _ in rows:
        print(f"| {name:<22} | {conv_s:>9.1f} | {ips:>9.2f} | {ips / base:>7.2f}x | {cpu:>11.2f} | "
              f"{base_cpu / cpu:>7.2f}x | {agree:>15.1%} |")
    both = float((rows[0][5] == rows[1][5]).float().mean())
    print(f"\nn3ml and SpikingJelly predict the same class for {both:.1%} of the images; the ANN predicts "
          f"{len(set(ann_pred.tolist()))} distinct classes for {len(ann_pred)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
