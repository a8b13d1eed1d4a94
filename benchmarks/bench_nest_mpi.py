"""Strong scaling of the emitted NEST program under MPI (issue 19): the same network on 1 and 2 ranks.

    .venv/bin/python benchmarks/bench_nest_mpi.py [--steps 100] [--ranks 1,2] [--threads 1] [--side 56]

The network (about 10^5 neurons and 10^7 synapses at --side 56): spike inputs (16, S, S), Bernoulli
rate 0.05 -> Conv2d 16->16, 3x3, padding 1 -> LIF (16, S, S) -> the same again -> Output. NEST deals
the neurons of every population round-robin over the ranks, so each rank owns half of each. The program
runs with NEST built with MPI (`make setup-nest-mpi`, .venv-nest-mpi); every rank count must give
outputs identical to one process and to the torch executor. Times are those the program prints (rank 0:
network build, simulation) and the wall time of the whole mpirun (Python start, reading weights.npz).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from n3ml.backends.nest import NestTarget
from n3ml.ir import LIF, Conv2d, Graph, Input, Output
from n3ml.registry import ENGINES, lookup

ROOT = Path(__file__).resolve().parents[1]
TIMING = re.compile(r"build ([0-9.]+) s, simulate ([0-9.]+) s \((\d+) connections\)")
RANKS = re.compile(r"neurons per rank: (.*)")


def network(side: int, rng) -> Graph:
    g = Graph(name="bench_mpi", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(16, side, side)))
    # 144 synapses per neuron; these weights make the first layer fire at about 0.12 per step and the
    # second at about 0.05 (measured with the executor)
    for i, (mean, sd) in ((1, (0.03, 0.08)), (2, (0.005, 0.06))):
        w = rng.normal(mean, sd, (16, 16, 3, 3))
        g.add(f"conv{i}", Conv2d(weight=w, padding=(1, 1)), "x" if i == 1 else "lif1")
        g.add(f"lif{i}", LIF(tau=10.0, theta=1.0, r=1 / (1 - np.exp(-0.1)), reset="to-value"), f"conv{i}")
    g.add("out", Output(), "lif2")
    return g


def run(python: Path, out: Path, x: Path, ranks: int, threads: int) -> dict:
    o = out / f"o_{ranks}x{threads}.npz"
    prog = [str(python), str(out / "run.py"), "--input", str(x), "-o", str(o), "--threads", str(threads)]
    cmd = ([shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np",
            str(ranks)] if ranks > 1 else []) + prog
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "PYNEST_QUIET": "1", "OMP_NUM_THREADS": str(threads)})
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    m = TIMING.search(proc.stderr)
    with np.load(o, allow_pickle=False) as z:
        y = z["out"]
    owned = RANKS.search(proc.stderr)
    return {"build": float(m.group(1)), "simulate": float(m.group(2)), "connections": int(m.group(3)),
            "wall": wall, "out": y, "owned": owned.group(1) if owned else "(one process)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--side", type=int, default=56)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--venv", default=str(ROOT / ".venv-nest-mpi"))
    args = ap.parse_args()
    python = Path(args.venv) / "bin" / "python"
    if not python.exists() or shutil.which("mpirun") is None:
        raise SystemExit(f"NEST with MPI is not built in {args.venv} (make setup-nest-mpi)")
    rng = np.random.default_rng(0)
    g = network(args.side, rng)
    types = g.verify()
    neurons = sum(types[n].size for n in ("lif1", "lif2"))
    x = {"x": (rng.random((args.steps, 1, 16, args.side, args.side)) < 0.05).astype(np.float64)}
    with tempfile.TemporaryDirectory(prefix="n3ml-bench-mpi-") as tmp:
        out = Path(tmp) / "prog"
        out.mkdir()
        t0 = time.perf_counter()
        NestTarget().emit(g, out, steps=args.steps)
        convert = time.perf_counter() - t0
        x_path = Path(tmp) / "x.npz"
        np.savez(x_path, **x)
        t0 = time.perf_counter()
        want = lookup(ENGINES, "torch", "engine")(g, x, args.steps, record=[]).outputs["out"]
        executor = time.perf_counter() - t0
        print(f"network: {neurons} neurons (+{types['x'].size} inputs), steps {args.steps}; "
              f"convert {convert:.1f} s; torch executor {executor:.1f} s, {int(want.sum())} output spikes",
              flush=True)
        rows = []
        for ranks in map(int, args.ranks.split(",")):
            r = run(python, out, x_path, ranks, args.threads)
            same = np.array_equal(r["out"], want)
            rows.append((ranks, r, same))
            print(f"{ranks} rank(s) x {args.threads} thread(s): build {r['build']:.2f} s, simulate "
                  f"{r['simulate']:.2f} s, wall {r['wall']:.2f} s, {r['connections']} connections, "
                  f"identical to the executor: {same}; {r['owned']}", flush=True)
    base = rows[0][1]
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| ranks x threads | build (s) | simulate (s) | build + simulate (s) | speed-up | wall (s) | identical |")
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    for ranks, r, same in rows:
        total = r["build"] + r["simulate"]
        print(f"| {ranks} x {args.threads} | {r['build']:.2f} | {r['simulate']:.2f} | {total:.2f} | "
              f"{(base['build'] + base['simulate']) / total:.2f} | {r['wall']:.1f} | {'yes' if same else 'NO'} |")
    return 0 if all(same for _, _, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
