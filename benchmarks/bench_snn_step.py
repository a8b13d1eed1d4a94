"""Benchmark: one time step of the converted ResNet-18 SNN on the torch executor, and the FLOP floor.

Run (heavy: use nice on a shared machine):

    nice -n 10 .venv/bin/python benchmarks/bench_snn_step.py --batch 64 --steps 10
    nice -n 10 .venv/bin/python benchmarks/bench_snn_step.py --batch 64 --steps 10 --profile
    nice -n 10 .venv/bin/python benchmarks/bench_snn_step.py --device cuda --batch 256 --steps 100

The network is `bench_resnet_convert.resnet18()` (CIFAR ResNet-18, random weights) exported to ONNX and
converted as `n3ml convert -p "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"` does (16 noise
calibration images), compiled by `n3ml.backends.torch.compile(dtype=float32)` and run under
`torch.no_grad()` on (T, B, 3, 32, 32) with the image held for T steps (a stride-0 time axis, as the
conversion report feeds it). Modes, each the median of `--repeats` runs:

* ``outputs``: the outputs only (the inference cost);
* ``report (means)``: the outputs plus the time mean of every spiking layer, accumulated on the fly
  (`Executor.forward(means=...)`, what the conversion report records now);
* ``report (full record)``: the outputs plus every spiking layer's whole (T, B, ...) sequence
  (`forward(record=...)`, what the report recorded before), reduced to the mean afterwards.

It also prints the FLOP floor: multiply-adds of the graph's Dense/Conv nodes per image and step, and
this machine's measured throughput on the network's own convolutions (each conv of the graph run alone
on B spike-like images in one call, no SNN around it), per wall second and per CPU second (the figure a
shared machine does not change), i.e. the time the synaptic work alone needs at the measured rate,
for the report's full size (`--floor-images`, `--floor-steps`).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resnet_convert import export_onnx, resnet18  # noqa: E402


def converted_graph(tmp: Path, calibration: int = 16):
    from n3ml.commands._engines import pass_context
    from n3ml.loader import load_model
    from n3ml.passes import PassManager

    path = export_onnx(resnet18(), tmp / "resnet18.onnx")
    g = load_model(str(path))
    x = np.random.default_rng(0).random((calibration, 3, 32, 32), dtype=np.float32)
    ctx = {"calibration": {"x": x}, "report": None, **pass_context()}
    return PassManager.from_string("fold-batchnorm,ann-to-snn,normalize{percentile=99.9,report=false}").run(g, ctx), x


def macs_per_step(graph) -> tuple[int, list[tuple[str, int]]]:
    """Multiply-adds per image and step of the Dense and Conv nodes (the synaptic work)."""
    from n3ml.ir import prims as P

    types = graph.verify()
    rows = []
    for n, p in graph.nodes.items():
        if isinstance(p, (P.Conv2d, P.Conv1d, P.Dense)):
            w = np.asarray(p.weight)
            out = int(np.prod(types[n].shape))
            per_out = int(np.prod(w.shape[1:]))  # cin/groups * kernel (conv) or fan-in (dense)
            rows.append((n, out * per_out))
    return sum(m for _, m in rows), rows


def conv_throughput(graph, batch: int, device: str, repeats: int) -> tuple[float, float]:
    """(GFLOP per wall second, GFLOP per CPU second of this process) of the graph's own convolutions and
    Dense layers, each on `batch` random 0/1 images (spike-like inputs) in one call: the rate the
    synaptic work runs at on this machine. On a shared machine the CPU-second rate is the one that
    does not depend on the other jobs (with one thread it is the rate of one core)."""
    from n3ml.ir import prims as P

    types = graph.verify()
    flops, secs, cpu = 0.0, 0.0, 0.0
    for n, p in graph.nodes.items():
        if not isinstance(p, (P.Conv2d, P.Dense)):
            continue
        (src,) = graph.inputs_of(n)
        x = (torch.rand((batch, *types[src].shape), device=device) < 0.2).float()
        w = torch.as_tensor(np.asarray(p.weight), dtype=torch.float32, device=device)
        if isinstance(p, P.Conv2d):
            def fn(x=x, w=w, p=p):
                return F.conv2d(x, w, None, p.stride, p.padding, p.dilation, p.groups)
        else:
            def fn(x=x, w=w):
                return F.linear(x, w)
        fn()
        ts, cs = [], []
        for _ in range(repeats):
            _sync(device)
            t0, c0 = time.perf_counter(), _cpu_s()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
            cs.append(_cpu_s() - c0)
        secs += statistics.median(ts)
        cpu += statistics.median(cs)
        flops += 2.0 * batch * int(np.prod(types[n].shape)) * int(np.prod(np.asarray(p.weight).shape[1:]))
    return flops / secs / 1e9, flops / max(cpu, 1e-9) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--modes", default="outputs,report (means),report (full record)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one run per mode")
    ap.add_argument("--floor-images", type=int, default=1000)
    ap.add_argument("--floor-steps", type=int, default=100)
    ap.add_argument("--no-floor", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import n3ml
    from n3ml.backends.torch import compile
    from n3ml.ir import prims as P

    with tempfile.TemporaryDirectory() as tmp:
        g, _ = converted_graph(Path(tmp))
    spiking = [n for n, p in g.nodes.items() if isinstance(p, P.Neuron) and p.spiking]
    exe = compile(g, device=args.device, dtype=torch.float32)
    x = torch.rand((args.batch, 3, 32, 32), device=args.device)
    data = x[None].expand(args.steps, *x.shape)  # held input, as the report feeds it
    total, _ = macs_per_step(g)
    print(f"converted ResNet-18: {len(spiking)} spiking layers, {total / 1e9:.3f} GMAC per image and step; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.2f}; n3ml from {Path(n3ml.__file__).parent}")

    def run(mode: str):
        with torch.no_grad():
            if mode == "outputs":
                return exe(data)
            if mode == "report (means)":
                outs, rec = exe(data, means=spiking)
                return outs, {n: rec[f"{n}.mean"] for n in spiking}
            outs, rec = exe(data, record=spiking)
            return outs, {n: rec[n].mean(dim=0, dtype=torch.float64) for n in spiking}

    print(f"\nbatch {args.batch}, T = {args.steps} (median of {args.repeats})")
    print(f"| {'mode':<22} | {'s per run':>9} | {'ms per step':>11} | {'ms per image-step':>17} | {'CPU s':>6} "
          f"| {'CPU ms per step':>15} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 13}|{'-' * 19}|{'-' * 8}|{'-' * 17}|")
    ref = None
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        got = run(mode)  # warm-up
        if mode != "outputs":
            means = got[1]
            if ref is None:
                ref = means
            else:
                same = all(torch.equal(ref[n], means[n]) for n in spiking)
                print(f"  (time means of `{mode}` equal to the first mode's: {same})")
        ts, cs = [], []
        for _ in range(args.repeats):
            _sync(args.device)
            t0, c0 = time.perf_counter(), _cpu_s()
            run(mode)
            _sync(args.device)
            ts.append(time.perf_counter() - t0)
            cs.append(_cpu_s() - c0)
        s = statistics.median(ts)
        print(f"| {mode:<22} | {s:>9.3f} | {1e3 * s / args.steps:>11.1f} | "
              f"{1e3 * s / args.steps / args.batch:>17.3f} | {statistics.median(cs):>6.2f} "
              f"| {1e3 * statistics.median(cs) / args.steps:>15.1f} |")
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run(mode)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    if not args.no_floor:
        rate, per_cpu = conv_throughput(g, args.batch, args.device, args.repeats)
        flops = 2.0 * total * args.floor_steps * args.floor_images
        threads = torch.get_num_threads()
        print(f"\nFLOP floor: {2 * total / 1e9:.3f} GFLOP per image-step x {args.floor_steps} steps x "
              f"{args.floor_images} images = {flops / 1e12:.1f} TFLOP. The network's convolutions alone (batch "
              f"{args.batch}, {threads} thread(s)) run at {rate:.1f} GFLOP per wall second, {per_cpu:.1f} per CPU "
              f"second: {flops / rate / 1e9:.0f} s at the wall rate, {flops / per_cpu / 1e9:.0f} CPU s "
              f"({flops / per_cpu / 1e9 / os.cpu_count():.0f} s on all {os.cpu_count()} cores at the CPU rate); "
              f"in 300 s on all cores: {300 * os.cpu_count() * per_cpu * 1e9 / (2 * total * args.floor_steps):.0f} "
              f"images at T={args.floor_steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
