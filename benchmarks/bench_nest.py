"""Benchmark of the nest target: conversion and network-build time for 10^4, 10^5, 10^6 synapses, and
simulation time of the emitted PyNEST program against a hand-written PyNEST script of the same network.

    .venv/bin/python benchmarks/bench_nest.py [--steps 200] [--sizes 1e4,1e5,1e6] [--repeat 2]

The network: N_in spike inputs (Bernoulli, rate 0.05) -> Dense (N_out x N_in) -> LIF (reset to value)
-> Output. Times are the best of --repeat runs, each program in its own process, one NEST thread.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from n3ml.backends.nest import NestTarget, emit_nest, lower_ir_to_nest
from n3ml.ir import LIF, Dense, Graph, Input, Output

SHAPES = {10**4: (100, 100), 10**5: (100, 1000), 10**6: (1000, 1000)}  # synapses -> (N_in, N_out)
TIMING = re.compile(r"build ([0-9.]+) s, simulate ([0-9.]+) s")

# The same network written by hand the way a NEST user would: parrots relay the generators, one
# all_to_all Connect with the weight matrix, one spike recorder. Delays of one step.
HAND_WRITTEN = textwrap.dedent('''
    import sys, time
    import numpy as np
    import nest
    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.WARNING
    z = np.load(sys.argv[1])
    x, w, steps = z["x"][:, 0], z["w"], int(z["steps"])
    t0 = time.perf_counter()
    nest.set(resolution=1.0, local_num_threads=1)
    gens = nest.Create("spike_generator", x.shape[1])
    gens.set([{"spike_times": (np.flatnonzero(x[:, i]) + 1.0)} for i in range(x.shape[1])])
    parrots = nest.Create("parrot_neuron", x.shape[1])
    nest.Connect(gens, parrots, "one_to_one", syn_spec={"delay": 1.0})
    lif = nest.Create("iaf_psc_delta", w.shape[0], params={"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": 10.0,
                      "V_th": 1.0, "V_reset": 0.0, "t_ref": 0.0})
    nest.Connect(parrots, lif, "all_to_all", syn_spec={"weight": w, "delay": 1.0})
    rec = nest.Create("spike_recorder")
    nest.Connect(lif, rec)
    t1 = time.perf_counter()
    nest.Simulate(steps + 4.0)
    print(f"build {t1 - t0:.3f} s, simulate {time.perf_counter() - t1:.3f} s, {rec.n_events} spikes",
          file=sys.stderr)
''')


def network(n_in: int, n_out: int, rng) -> Graph:
    g = Graph(name="bench", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(n_in,)))
    # mean input per step ~ 0.05 * n_in * mean(w): keep the output firing at a moderate rate
    w = rng.normal(1.0, 1.0, (n_out, n_in)) * (4.0 / n_in)
    g.add("fc", Dense(weight=w), "x")
    g.add("lif", LIF(tau=10.0, theta=1.0, r=1 / (1 - np.exp(-0.1)), reset="to-value"), "fc")
    g.add("out", Output(), "lif")
    return g


def run_timed(cmd: list[str]) -> tuple[float, float, float]:
    """(build s, simulate s, wall s) of a program that prints NEST's build/simulate split."""
    env = {**os.environ, "PYNEST_QUIET": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    m = TIMING.search(proc.stderr)
    return float(m.group(1)), float(m.group(2)), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--sizes", default="1e4,1e5,1e6", help="synapse counts (of 1e4, 1e5, 1e6)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for size in (int(float(s)) for s in args.sizes.split(",")):
        n_in, n_out = SHAPES[size]
        g = network(n_in, n_out, rng)
        x = (rng.random((args.steps, 1, n_in)) < 0.05).astype(np.float64)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            convert = []
            for r in range(args.repeat):
                out = tmp / f"nest{r}"
                out.mkdir()
                t0 = time.perf_counter()
                emit_nest(lower_ir_to_nest(g), out, steps=args.steps)
                convert.append(time.perf_counter() - t0)
            np.savez(tmp / "x.npz", x=x)
            np.savez(tmp / "hand.npz", x=x, w=g.nodes["fc"].weight, steps=args.steps)
            (tmp / "hand.py").write_text(HAND_WRITTEN)
            emitted = [run_timed([*NestTarget().run_argv(tmp / "nest0"), "--input", str(tmp / "x.npz"),
                                  "--steps", str(args.steps), "-o", str(tmp / "o.npz")]) for _ in range(args.repeat)]
            hand = [run_timed([sys.executable, str(tmp / "hand.py"), str(tmp / "hand.npz")])
                    for _ in range(args.repeat)]
        rows.append((size, min(convert), min(e[0] for e in emitted), min(e[1] for e in emitted),
                     min(e[0] + e[1] for e in emitted), min(h[0] for h in hand), min(h[1] for h in hand),
                     min(h[0] + h[1] for h in hand)))
        print(f"{size:>8} synapses: convert {rows[-1][1]:.3f} s, build {rows[-1][2]:.3f} s, simulate "
              f"{rows[-1][3]:.3f} s | hand-written build {rows[-1][5]:.3f} s, simulate {rows[-1][6]:.3f} s",
              flush=True)
    print()
    print(f"T = {args.steps} steps, 1 thread, best of {args.repeat}")
    print("(NEST finalizes connections lazily, so where build ends and simulation begins differs between the")
    print("two programs: compare the totals.)")
    print("| synapses | convert (s) | build, emitted (s) | convert+build us/synapse | simulate, emitted (s) | "
          "total, emitted (s) | build, hand (s) | simulate, hand (s) | total, hand (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, conv, b, s, tot, hb, hs, htot in rows:
        print(f"| {size:,} | {conv:.3f} | {b:.3f} | {1e6 * (conv + b) / size:.2f} | {s:.3f} | {tot:.3f} | "
              f"{hb:.3f} | {hs:.3f} | {htot:.3f} |")


if __name__ == "__main__":
    main()
