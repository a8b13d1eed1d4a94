"""Benchmark: Linear(784 -> N) + LIF, batch 16, T steps, float32 -- n3ml's torch executor beside
snnTorch, Norse and SpikingJelly, and the synaptic matmul alone as the floor.

Run:  .venv/bin/python benchmarks/bench_executor.py [--quick] [--device cuda] [--repeats 5] [--memory]

Regimes: N=4096, T=500 (matmul-bound) and N=256, T=1000 (loop-bound); --quick shrinks both.
Prints, per regime and implementation, the median forward time (inference, no autograd), the
median forward+backward time (loss = spike count, gradients to the weights), the peak memory
and each time's ratio to n3ml. Peak memory: on CUDA, torch.cuda.max_memory_allocated during
forward+backward (above what was allocated before); on CPU, the bytes of all tensors autograd
saves for the backward pass (unique storages, counted through saved_tensors_hooks) -- the
memory training holds per batch; CPU tensor allocations have no peak counter.

The peers (snnTorch, Norse, SpikingJelly) are installed by `make setup-peers` (mk/peers.mk);
a peer that does not import is reported as missing and skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

B, N_IN, BETA = 16, 784, 0.9
LAYERS = 1  # Linear + LIF pairs: Linear(784 -> N) + LIF, then LAYERS - 1 times Linear(N -> N) + LIF (--layers)


def _fan_ins(n):
    return [N_IN] + [n] * (LAYERS - 1)


# ------------------------------------------------------------------ networks
# Every factory returns (module holding the parameters, forward(x: (T, B, 784)) -> spikes (T, B, N)).


def make_floor(n, device):
    fc = nn.Sequential(*[nn.Linear(k, n) for k in _fan_ins(n)]).to(device)
    return fc, lambda x: fc(x)


def make_n3ml(n, device, memory="default"):
    from n3ml.backends.torch import compile
    from n3ml.ir import LIF, Dense, Graph, Input, Output
    from n3ml.ir.prims import gain

    g = Graph(name="bench", dt=1.0, scheme="exact")
    tau = -1.0 / math.log(BETA)  # a = exp(-dt/tau) = beta; r = 1/g adds the input unscaled, as snn.Leaky
    g.add("x", Input(shape=(N_IN,), kind="spike"))
    src = "x"
    for i, k in enumerate(_fan_ins(n)):
        fc = nn.Linear(k, n)
        g.add(f"fc{i}", Dense(weight=fc.weight.detach().double().numpy(), bias=fc.bias.detach().double().numpy()),
              src)
        g.add(f"lif{i}", LIF(tau=tau, r=float(1.0 / gain(tau, 1.0, "exact")), theta=1.0, reset="subtract"),
              f"fc{i}")
        src = f"lif{i}"
    g.add("out", Output(), src)
    exe = compile(g, device=device, dtype=torch.float32, memory=memory)
    return exe, lambda x: exe(x)["out"]


def make_n3ml_lean(n, device):
    return make_n3ml(n, device, memory="lean")


def make_snntorch(n, device):
    import snntorch as snn

    class Net(nn.Module):  # the snnTorch tutorials' way: a Python loop over steps, layer applied per step
        def __init__(self):
            super().__init__()
            self.fc = nn.ModuleList([nn.Linear(k, n) for k in _fan_ins(n)])
            self.lif = nn.ModuleList([snn.Leaky(beta=BETA) for _ in range(LAYERS)])

        def forward(self, x):
            mem = [lif.init_leaky() for lif in self.lif]
            spk_rec = []
            for step in range(x.shape[0]):
                spk = x[step]
                for i in range(LAYERS):
                    spk, mem[i] = self.lif[i](self.fc[i](spk), mem[i])
                spk_rec.append(spk)
            return torch.stack(spk_rec)

    net = Net().to(device)
    return net, net


def make_norse(n, device):
    import norse.torch as norse

    # LIF over time (Norse's own loop over the first axis); the Linear layer applied to all steps at once
    net = nn.Sequential(nn.Linear(N_IN, n), norse.LIF()).to(device)
    return net, lambda x: net(x)[0] if isinstance(net(x), tuple) else net(x)


def make_norse_fast(n, device):
    import norse.torch as norse

    fcs = [nn.Linear(k, n).to(device) for k in _fan_ins(n)]
    lifs = [norse.LIF().to(device) for _ in range(LAYERS)]
    holder = nn.ModuleList(fcs + lifs)

    def fwd(x):
        z = x
        for fc, lif in zip(fcs, lifs):
            z, _ = lif(fc(z))
        return z

    return holder, fwd


def make_spikingjelly(n, device):
    from spikingjelly.activation_based import functional, layer, neuron

    # multi-step mode: Linear over all T*B rows at once, LIFNode steps over T (torch backend)
    net = nn.Sequential(*[m for k in _fan_ins(n) for m in (
        layer.Linear(k, n, step_mode="m"),
        neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_reset=None, step_mode="m"))])
    net = net.to(device)

    def fwd(x):
        functional.reset_net(net)
        return net(x)

    return net, fwd


IMPLS: dict[str, Callable] = {
    "matmul floor": make_floor,
    "n3ml": make_n3ml,
    "n3ml lean": make_n3ml_lean,
    "snnTorch": make_snntorch,
    "Norse": make_norse_fast,
    "SpikingJelly": make_spikingjelly,
}


# ------------------------------------------------------------------- timing


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# wall: elapsed time; cpu: CPU seconds of this process (all its threads), the figure that other jobs
# on a shared machine do not inflate (with --threads 1 it is the single thread's work; CPU only)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = "wall"


def _time(fn, repeats, device) -> float:
    clock = CLOCKS[CLOCK]
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = clock()
        fn()
        _sync(device)
        times.append(clock() - t0)
    return statistics.median(times)


def _saved_bytes(fwd, x) -> int:
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fwd(x)
    del out
    return sum(seen.values())


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _rss_child(name, n, T) -> int:
    """Peak resident memory of one training step in a fresh process (bytes): VmHWM, reset before the
    step, above the resident size after a warm-up forward pass; fixed malloc thresholds make freed blocks
    leave the resident set."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    spec = json.dumps([name, n, T, torch.get_num_threads(), B, LAYERS])
    r = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    return int(r.stdout.strip().splitlines()[-1])


def child(spec: str) -> None:
    global B, LAYERS
    name, n, T, threads, B, LAYERS = json.loads(spec)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    x = (torch.rand(T, B, N_IN, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    torch.manual_seed(0)
    module, fwd = IMPLS[name](n, device)
    with torch.no_grad():  # warm-up (lazy initialisation); a training step would leave its freed heap behind
        fwd(x)
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current size
        f.write("5")
    fwd(x).sum().backward()
    print(_status("VmHWM") - base)


def bench_all(names, n, T, repeats, device, rss=False) -> list[dict]:
    """Time every implementation; repeats are interleaved (A B C A B C ...) so that a change in the
    machine's load during the run affects all implementations alike."""
    x = (torch.rand(T, B, N_IN, generator=torch.Generator().manual_seed(1)) < 0.2).float().to(device)
    rows, runs = [], []
    for name in names:
        torch.manual_seed(0)
        try:
            module, fwd = IMPLS[name](n, device)
        except ImportError as e:
            rows.append({"name": name, "missing": str(e)})
            continue
        params = [p for p in module.parameters() if p.requires_grad]

        def forward(fwd=fwd):
            with torch.no_grad():
                fwd(x)

        def train_step(fwd=fwd, params=params):
            for p in params:
                p.grad = None
            fwd(x).sum().backward()

        forward()  # warm-up (and lazy initialisation)
        train_step()
        row = {"name": name, "fwd": [], "fb": []}
        if device.type == "cuda":
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            train_step()
            row["mem"] = torch.cuda.max_memory_allocated(device) - base
        elif rss:
            row["mem"] = _rss_child(name, n, T)
        else:
            row["mem"] = _saved_bytes(fwd, x)
        rows.append(row)
        runs.append((row, forward, train_step))
    for key in ("fwd", "fb"):
        for _ in range(repeats):
            for row, forward, train_step in runs:
                row[key].append(_time(forward if key == "fwd" else train_step, 1, device))
    for row, _, _ in runs:
        row["fwd"], row["fb"] = statistics.median(row["fwd"]), statistics.median(row["fb"])
    return rows


def table(rows, n, T, device, rss=False) -> str:
    ref = next((r for r in rows if r["name"] == "n3ml" and "fwd" in r), None)
    deep = f" + {LAYERS - 1} x [Linear({n}->{n}) + LIF]" if LAYERS > 1 else ""
    head = (f"\nLinear(784->{n}) + LIF{deep}, batch {B}, T={T}, float32, {device.type}"
            f"{'' if device.type == 'cuda' else f', {torch.get_num_threads()} thread(s)'}"
            f"{', CPU seconds' if CLOCK == 'cpu' else ''}\n")
    mem_col = "peak mem MiB" if device.type == "cuda" else ("peak RSS MiB" if rss else "saved MiB")
    lines = [f"{'implementation':<14} {'fwd ms':>9} {'x n3ml':>7} {'fwd+bwd ms':>11} {'x n3ml':>7} {mem_col:>12} "
             f"{'x n3ml':>7}"]
    for r in rows:
        if "missing" in r:
            lines.append(f"{r['name']:<14} not installed ({r['missing']})")
            continue
        rf = r["fwd"] / ref["fwd"] if ref else float("nan")
        rb = r["fb"] / ref["fb"] if ref else float("nan")
        rm = r["mem"] / ref["mem"] if ref and ref["mem"] else float("nan")
        lines.append(f"{r['name']:<14} {r['fwd'] * 1e3:9.1f} {rf:7.2f} {r['fb'] * 1e3:11.1f} {rb:7.2f} "
                     f"{r['mem'] / 2**20:12.1f} {rm:7.2f}")
    return head + "\n".join(lines)


def main(argv=None) -> int:
    global B, LAYERS, CLOCK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: N=1024,T=100 and N=256,T=200")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--only", default="", help="comma-separated implementations to run")
    ap.add_argument("--sizes", default="", help="regimes as N:T or N:T:batch, e.g. 4096:500,256:1000,1024:200:64")
    ap.add_argument("--memory", action="store_true",
                    help="add n3ml's lean mode; on CPU the memory column becomes the peak RSS of a training "
                         "step, measured in a fresh process per implementation")
    ap.add_argument("--layers", type=int, default=1, help="Linear + LIF pairs (deep networks: lean mode's case)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time, or the CPU seconds of this process (robust to other jobs; CPU only)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    LAYERS = args.layers
    CLOCK = args.clock
    if args.child:
        child(args.child)
        return 0
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 1
    if device.type == "cuda" and CLOCK == "cpu":
        print("--clock cpu measures the host, not the GPU: use --clock wall on CUDA", file=sys.stderr)
        return 1
    regimes = [(1024, 100), (256, 200)] if args.quick else [(4096, 500), (256, 1000)]
    if args.sizes:
        regimes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")]
    # the lean row needs --memory: saved-tensor hooks cannot see what lean mode packs under its own hooks
    names = [s for s in args.only.split(",") if s] or [k for k in IMPLS if args.memory or k != "n3ml lean"]
    rss = args.memory and device.type == "cpu"
    batch = B
    for n, T, *rest in regimes:
        B = rest[0] if rest else batch
        rows = bench_all(names, n, T, args.repeats, device, rss)
        print(table(rows, n, T, device, rss), flush=True)
        got = {r["name"]: r for r in rows if "fb" in r}
        if "n3ml" in got:
            me = got["n3ml"]["fb"]
            peers = [r["fb"] for k, r in got.items() if k not in ("n3ml", "n3ml lean", "matmul floor")]
            if "matmul floor" in got:
                print(f"n3ml fwd+bwd / matmul floor: {me / got['matmul floor']['fb']:.2f}x")
            if peers:
                print(f"fastest peer fwd+bwd / n3ml: {min(peers) / me:.2f}x")
            if "n3ml lean" in got:
                lean = got["n3ml lean"]
                mems = [r for k, r in got.items() if k not in ("n3ml", "n3ml lean", "matmul floor")]
                if mems:
                    low = min(mems, key=lambda r: r["mem"])
                    print(f"n3ml lean: memory {lean['mem'] / low['mem']:.2f}x the leanest peer's ({low['name']}), "
                          f"fwd+bwd {lean['fb'] / low['fb']:.2f}x its time, {lean['fb'] / me:.2f}x n3ml's")
    return 0


if __name__ == "__main__":
    np.random.seed(0)
    sys.exit(main())
