"""Benchmark: convolutional SNNs -- n3ml's torch executor beside SpikingJelly, snnTorch and Norse.

Networks (batch 16, float32):
  csnn     SpikingJelly's conv_fashion_mnist CSNN (activation_based/examples/conv_fashion_mnist.py):
           [Conv3x3(1->C) BN IF MaxPool2] [Conv3x3(C->C) BN IF MaxPool2] Flatten
           Linear(49C->16C) IF Linear(16C->10) IF, C = 128, the 28x28 image repeated over T steps
  sew18    SEW-ResNet-18 (Fang et al. 2021; the layout of SpikingJelly's model/sew_resnet.py, ADD
           connections, IF neurons) on 32x32x3 inputs: 7x7/2 stem, max-pool, 4 stages of 2 basic
           blocks (64..512 channels), global average pool, Linear(512->10)

Implementations, each written as its documentation shows:
  n3ml          the SpikingJelly model traced into the IR (n3ml.frontends.torch.trace) and compiled
                by n3ml.backends.torch.compile (same weights as the SpikingJelly row)
  n3ml lean     the same graph compiled with memory="lean" (forward+backward only)
  SpikingJelly  multi-step mode (layers over all T*B images at once), IFNode(surrogate ATan) as in
                the example (SpikingJelly 2.0 has no per-node backend argument any more)
  snnTorch      nn layers + snn.Leaky(beta=1, reset_mechanism="zero", init_hidden=True), a Python
                loop over steps (the tutorials' form)
  Norse         nn layers + norse.torch.IAFCell with its state, a Python loop over steps (the form of
                norse.torch.models.conv / norse.task.mnist)

Batch-norm layers are in eval mode everywhere (n3ml's BatchNorm is the inference affine map; the
peers would otherwise also compute batch statistics). Forward: median time under torch.no_grad.
Forward+backward: loss = weighted sum of the outputs, gradients to all weights. Memory: on
CUDA torch.cuda.max_memory_allocated of a training step; on CPU the peak resident memory of one
training step measured in a fresh process (Linux VmHWM after resetting it, above the resident size before the
step; the process runs with fixed malloc thresholds so that freed blocks leave the resident set).

Run: .venv/bin/python benchmarks/bench_conv.py [--quick] [--no-rss] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable

import torch
from torch import nn

B = 16
CONFIGS = {"csnn-T4": ("csnn", 4), "csnn-T8": ("csnn", 8), "sew18-T4": ("sew18", 4)}


# --------------------------------------------------------------- one network definition, four libraries
# A "kit" makes the layers of one library: conv, bn, sn (spiking neuron), pool, fc, flatten, avgpool.
# Multi-step kits (SpikingJelly) take (T, B, ...); per-step kits take (B, ...) and are looped over T.


def sj_kit(device):
    from spikingjelly.activation_based import layer, neuron, surrogate

    return dict(
        conv=lambda i, o, k, s=1, p=0: layer.Conv2d(i, o, k, s, p, bias=False, step_mode="m"),
        bn=lambda c: layer.BatchNorm2d(c, step_mode="m"),
        sn=lambda: neuron.IFNode(surrogate_function=surrogate.ATan(), step_mode="m"),  # the example's neuron
        maxpool=lambda k, s, p=0: layer.MaxPool2d(k, s, p, step_mode="m"),
        avgpool=lambda: layer.AdaptiveAvgPool2d((1, 1), step_mode="m"),
        flatten=lambda: layer.Flatten(step_mode="m"),
        fc=lambda i, o, bias=True: layer.Linear(i, o, bias=bias, step_mode="m"))


def torch_kit(sn):
    return dict(conv=lambda i, o, k, s=1, p=0: nn.Conv2d(i, o, k, s, p, bias=False), bn=nn.BatchNorm2d, sn=sn,
                maxpool=lambda k, s, p=0: nn.MaxPool2d(k, s, p), avgpool=lambda: nn.AdaptiveAvgPool2d((1, 1)),
                flatten=lambda: nn.Flatten(), fc=lambda i, o, bias=True: nn.Linear(i, o, bias=bias))


def snntorch_kit(device):
    import snntorch as snn
    from snntorch import surrogate

    return torch_kit(lambda: snn.Leaky(beta=1.0, threshold=1.0, reset_mechanism="zero", init_hidden=True,
                                       spike_grad=surrogate.atan()))


class _NorseState(nn.Module):
    """A Norse cell holding its state between the steps of one run (what norse.SequentialState does
    for a chain; a residual network needs it per neuron)."""

    def __init__(self):
        super().__init__()
        import norse.torch as norse

        self.cell = norse.IAFCell()
        self.state = None

    def forward(self, x):
        z, self.state = self.cell(x, self.state)
        return z


def norse_kit(device):
    return torch_kit(_NorseState)


def csnn(kit, c=128) -> nn.Module:
    return nn.Sequential(
        kit["conv"](1, c, 3, 1, 1), kit["bn"](c), kit["sn"](), kit["maxpool"](2, 2),
        kit["conv"](c, c, 3, 1, 1), kit["bn"](c), kit["sn"](), kit["maxpool"](2, 2), kit["flatten"](),
        kit["fc"](c * 7 * 7, c * 4 * 4, False), kit["sn"](), kit["fc"](c * 4 * 4, 10, False), kit["sn"]())


class Block(nn.Module):
    """SEW basic block, ADD connection: sn(bn(conv(sn(bn(conv(x)))))) + identity(x)."""

    def __init__(self, kit, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1, self.sn1 = kit["conv"](cin, cout, 3, stride, 1), kit["bn"](cout), kit["sn"]()
        self.conv2, self.bn2, self.sn2 = kit["conv"](cout, cout, 3, 1, 1), kit["bn"](cout), kit["sn"]()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(kit["conv"](cin, cout, 1, stride), kit["bn"](cout), kit["sn"]())

    def forward(self, x):
        out = self.sn2(self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x))))))
        return out + (x if self.down is None else self.down(x))


def sew18(kit) -> nn.Module:
    layers = [kit["conv"](3, 64, 7, 2, 3), kit["bn"](64), kit["sn"](), kit["maxpool"](3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(kit, cin, cout, stride), Block(kit, cout, cout, 1)]
        cin = cout
    layers += [kit["avgpool"](), kit["flatten"](), kit["fc"](512, 10)]
    return nn.Sequential(*layers)


def _quick_csnn(kit):
    return csnn(kit, 32)


NETS = {"csnn": csnn, "sew18": sew18}
SHAPES = {"csnn": (1, 28, 28), "sew18": (3, 32, 32)}


def _init(net: nn.Module, seed: int) -> nn.Module:
    """Weights that keep every layer spiking (so the comparison is not between silences), BN in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.5 / fan_in**0.5))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


# ------------------------------------------------------------------- implementations
# Each returns (module holding the parameters, forward(x: (T, B, *shape)) -> (T, B, ...)).


def make_spikingjelly(net_name, device, memory="default"):
    from spikingjelly.activation_based import functional

    net = _init(NETS[net_name](sj_kit(device)), 0).to(device)

    def fwd(x):
        functional.reset_net(net)
        return net(x)

    return net, fwd


def make_n3ml(net_name, device, memory="default"):
    from n3ml.backends.torch import compile
    from n3ml.frontends.torch import trace

    src = _init(NETS[net_name](sj_kit(torch.device("cpu"))), 0)  # the SpikingJelly model, same weights
    graph = trace(src, SHAPES[net_name])
    exe = compile(graph, device=device, dtype=torch.float32, memory=memory)
    out = graph.output_names[0]
    return exe, lambda x: exe(x)[out]


def make_n3ml_lean(net_name, device):
    return make_n3ml(net_name, device, memory="lean")


def _per_step(net, reset):
    def fwd(x):
        reset()
        return torch.stack([net(xt) for xt in x.unbind(0)])

    return fwd


def make_snntorch(net_name, device):
    from snntorch import utils

    net = _init(NETS[net_name](snntorch_kit(device)), 0).to(device)
    return net, _per_step(net, lambda: utils.reset(net))


def make_norse(net_name, device):
    net = _init(NETS[net_name](norse_kit(device)), 0).to(device)

    def reset():
        for m in net.modules():
            if isinstance(m, _NorseState):
                m.state = None

    return net, _per_step(net, reset)


IMPLS: dict[str, Callable] = {"n3ml": make_n3ml, "n3ml lean": make_n3ml_lean, "SpikingJelly": make_spikingjelly,
                              "snnTorch": make_snntorch, "Norse": make_norse}


# ------------------------------------------------------------------- measuring


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _input(net_name, T, device):
    g = torch.Generator().manual_seed(1)
    if net_name == "csnn":  # the example's static image, repeated over the steps
        x = torch.rand(B, *SHAPES[net_name], generator=g).unsqueeze(0).repeat(T, 1, 1, 1, 1)
    else:
        x = torch.rand(T, B, *SHAPES[net_name], generator=g)
    return x.to(device)


def _loss(y):
    w = torch.linspace(0.5, 1.5, y.shape[-1], device=y.device)
    return (y.reshape(-1, y.shape[-1]) * w).sum()


def _rss_child(name, net_name, T, device) -> int:
    """Peak resident memory of one training step, in a fresh process (bytes)."""
    spec = [name, net_name, T, str(device), torch.get_num_threads(), NETS["csnn"] is not csnn]
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    # fixed malloc thresholds: big blocks are mmapped and go back to the system when freed, so the
    # resident size after the warm-up forward pass is the process's true baseline
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    return int(r.stdout.strip().splitlines()[-1])


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(spec: str) -> None:
    name, net_name, T, device, threads, quick = json.loads(spec)
    if quick:
        NETS["csnn"] = _quick_csnn
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    device = torch.device(device)
    module, fwd = IMPLS[name](net_name, device)
    x = _input(net_name, T, device)
    with torch.no_grad():  # warm-up (lazy initialisation); a training step would leave its freed heap behind
        fwd(x)
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current size
        f.write("5")
    _loss(fwd(x)).backward()
    print(_status("VmHWM") - base)


def infer_child(spec: str) -> None:
    """Inference of the n3ml CSNN in a fresh process: peak RSS above the level before the run, and time."""
    T, batch, chunk, threads = json.loads(spec)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    exe, _ = make_n3ml("csnn", torch.device("cpu"))
    x = torch.rand(batch, *SHAPES["csnn"], generator=torch.Generator().manual_seed(1)).expand(T, -1, -1, -1, -1)
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    with torch.no_grad():
        out = exe(x, chunk=chunk)
    print(json.dumps([_status("VmHWM") - base, time.perf_counter() - t0, float(out["out"].mean())]))


def inference_memory(T: int, batch: int) -> str:
    """Peak RSS of CSNN inference over all T steps at once against the automatic streaming."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    lines = [f"\nn3ml CSNN (C=128) inference, T={T}, batch {batch}, {torch.get_num_threads()} thread(s)",
             f"{'run':<28} {'peak RSS MiB':>12} {'time s':>8}"]
    res = {}
    for label, chunk in (("all steps at once", T), ("streamed (automatic chunks)", None)):
        spec = json.dumps([T, batch, chunk, torch.get_num_threads()])
        r = subprocess.run([sys.executable, __file__, "--infer-child", spec], capture_output=True, text=True, env=env)
        if r.returncode:
            raise RuntimeError(r.stderr.strip().splitlines()[-1])
        res[label] = json.loads(r.stdout.strip().splitlines()[-1])
        lines.append(f"{label:<28} {res[label][0] / 2**20:12.1f} {res[label][1]:8.2f}")
    a, b = res.values()
    lines.append(f"streaming: {a[0] / max(b[0], 1):.1f}x less memory, {b[1] / a[1]:.2f}x the time; "
                 f"outputs equal: {a[2] == b[2]}")
    return "\n".join(lines)


def bench(names, net_name, T, repeats, device, rss) -> list[dict]:
    x = _input(net_name, T, device)
    rows, runs = [], []
    for name in names:
        torch.manual_seed(0)
        try:
            module, fwd = IMPLS[name](net_name, device)
        except ImportError as e:
            rows.append({"name": name, "missing": str(e)})
            continue
        params = [p for p in module.parameters() if p.requires_grad]

        def forward(fwd=fwd):
            with torch.no_grad():
                return fwd(x)

        def train_step(fwd=fwd, params=params):
            for p in params:
                p.grad = None
            _loss(fwd(x)).backward()

        y = forward()
        train_step()
        row = {"name": name, "fwd": [], "fb": [], "rate": float(y.float().mean()) if name != "n3ml lean" else None}
        if name == "n3ml":
            rows_ref = y
        if device.type == "cuda":
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            train_step()
            row["mem"] = torch.cuda.max_memory_allocated(device) - base
        elif rss:
            row["mem"] = _rss_child(name, net_name, T, device)
        if name == "SpikingJelly" and "n3ml" in names:  # the traced graph computes the SpikingJelly model
            row["agree"] = float((y == rows_ref).float().mean()) if y.shape == rows_ref.shape else float("nan")
        rows.append(row)
        runs.append((row, forward, train_step))
    for _ in range(repeats):  # interleaved: a change of the machine's load hits every implementation alike
        for row, forward, train_step in runs:
            if row["name"] != "n3ml lean":  # its forward is n3ml's (lean mode changes training only)
                row["fwd"].append(_time(forward, device))
            row["fb"].append(_time(train_step, device))
    for row, _, _ in runs:
        row["fwd"] = statistics.median(row["fwd"]) if row["fwd"] else float("nan")
        row["fb"] = statistics.median(row["fb"])
    return rows


# wall: elapsed time; cpu: CPU seconds of this process (all its threads), the figure that other jobs
# on a shared machine do not inflate (with --threads 1, the one thread's work; CPU only)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = "wall"


def _time(fn, device) -> float:
    clock = CLOCKS[CLOCK]
    _sync(device)
    t0 = clock()
    fn()
    _sync(device)
    return clock() - t0


def table(rows, title, device, rss) -> str:
    ref = next((r for r in rows if r["name"] == "n3ml" and "fb" in r), None)
    mem = "peak MiB" if device.type == "cuda" else "RSS MiB"
    show_mem = device.type == "cuda" or rss
    head = f"{'implementation':<13} {'fwd ms':>9} {'x n3ml':>7} {'fwd+bwd ms':>11} {'x n3ml':>7}"
    if show_mem:
        head += f" {mem:>10} {'x n3ml':>7}"
    lines = [title, head]
    for r in rows:
        if "missing" in r:
            lines.append(f"{r['name']:<13} not installed ({r['missing']})")
            continue
        line = (f"{r['name']:<13} {r['fwd'] * 1e3:9.1f} {r['fwd'] / ref['fwd']:7.2f} {r['fb'] * 1e3:11.1f} "
                f"{r['fb'] / ref['fb']:7.2f}")
        if show_mem:
            line += f" {r['mem'] / 2**20:10.1f} {r['mem'] / ref['mem']:7.2f}"
        lines.append(line)
    got = {r["name"]: r for r in rows if "fb" in r}
    peers = {k: r for k, r in got.items() if not k.startswith("n3ml")}
    if ref and peers:
        fwd_peer = min(r["fwd"] for r in peers.values())
        fb_peer = min(r["fb"] for r in peers.values())
        lines.append(f"fastest peer / n3ml: forward {fwd_peer / ref['fwd']:.2f}x, forward+backward "
                     f"{fb_peer / ref['fb']:.2f}x")
        lean = got.get("n3ml lean")
        if lean and lean.get("mem") and all(r.get("mem") for r in peers.values()):
            low = min(peers.values(), key=lambda r: r["mem"])
            lines.append(f"n3ml lean: memory {lean['mem'] / low['mem']:.2f}x the leanest peer's ({low['name']}), "
                         f"forward+backward time {lean['fb'] / low['fb']:.2f}x that peer's, "
                         f"{lean['fb'] / ref['fb']:.2f}x n3ml's")
        if "agree" in got.get("SpikingJelly", {}):
            lines.append(f"n3ml outputs equal to SpikingJelly's: {100 * got['SpikingJelly']['agree']:.2f}% "
                         f"(output mean {ref['rate']:.3f})")
    return "\n".join(lines)


def main(argv=None) -> int:
    global CLOCK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="channels 32 for the CSNN, T=2: a smoke test")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--only", default="", help="comma-separated implementations")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--no-rss", dest="rss", action="store_false",
                    help="CPU: skip the peak RSS of a training step (measured in a fresh process each)")
    ap.add_argument("--inference-memory", default="", metavar="T:B",
                    help="instead: peak RSS of CSNN inference over T steps, batch B, whole vs streamed (CPU)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time, or the CPU seconds of this process (robust to other jobs; CPU only)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--infer-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    CLOCK = args.clock
    warnings.filterwarnings("ignore")
    if args.child:
        child(args.child)
        return 0
    if args.infer_child:
        infer_child(args.infer_child)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 1
    if device.type == "cuda" and CLOCK == "cpu":
        print("--clock cpu measures the host, not the GPU: use --clock wall on CUDA", file=sys.stderr)
        return 1
    if args.inference_memory:
        T, batch = (int(v) for v in args.inference_memory.split(":"))
        print(inference_memory(T, batch))
        return 0
    if args.quick:
        NETS["csnn"] = _quick_csnn
    names = [s for s in args.only.split(",") if s] or list(IMPLS)
    for cfg in args.configs.split(","):
        net_name, T = CONFIGS[cfg]
        T = 2 if args.quick else T
        title = (f"\n{cfg.split('-')[0]}, T={T}, batch {B}, float32, {device.type}"
                 f"{'' if device.type == 'cuda' else f', {torch.get_num_threads()} thread(s)'}"
                 f"{', CPU seconds' if CLOCK == 'cpu' else ''}")
        print(table(bench(names, net_name, T, args.repeats, device, args.rss), title, device, args.rss), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
