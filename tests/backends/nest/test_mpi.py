"""The emitted NEST program under MPI: `mpirun -np 2`, and 2 ranks with 2 threads each, give the same
outputs as one process and as the executor.

Needs NEST built with MPI by `make setup-nest-mpi` (.venv-nest-mpi, or $N3ML_NEST_MPI_VENV) and
OpenMPI's `mpirun`; skipped without them. The network that NEST distributes over the ranks is the same
small one for every rank count; `spread` checks from the program's own report that every rank owns
neurons of every population (benchmarks/bench_nest_mpi.py runs 10^5 neurons and 10^7 synapses).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.nest import NestTarget
from n3ml.io import random_inputs
from n3ml.ir import LI, LIF, CubaLIF, Dense, Graph, Input, Output
from n3ml.registry import ENGINES, lookup

from . import graphs as G

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("N3ML_NEST_MPI_VENV", ROOT / ".venv-nest-mpi"))
PYTHON = VENV / "bin" / "python"
MPIRUN = shutil.which("mpirun")
BUILT = PYTHON.exists() and any(VENV.glob(".stamp-nest-*-mpi-*")) and MPIRUN is not None
pytestmark = [pytest.mark.nest, pytest.mark.skipif(
    not BUILT, reason=f"NEST with MPI is not built in {VENV} or mpirun is missing (make setup-nest-mpi)")]
T = 30
# as root, OpenMPI wants both flags; --oversubscribe lets 2 ranks x 2 threads share a small machine
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
RANKS = re.compile(r"MPI: (\d+) processes x (\d+) threads; neurons per rank: (.*)")


def spread() -> Graph:
    """Three populations of different models, each large enough that NEST gives every rank (and every
    thread) some of its neurons; a spiking output and an analog one."""
    rng = np.random.default_rng(11)
    g = Graph(name="spread", dt=1.0)
    g.add("x", Input(shape=(24,)))
    g.add("fc1", Dense(weight=rng.normal(0.5, 0.5, (40, 24)), bias=rng.normal(0.05, 0.05, 40)), "x")
    g.add("lif", LIF(tau=5.0, theta=1.0, reset="to-value", refractory=1), "fc1")
    g.add("fc2", Dense(weight=rng.normal(0.02, 0.15, (21, 40))), "lif")
    g.add("cuba", CubaLIF(tau_mem=6.0, tau_syn=3.0, theta=0.8, reset="to-value"), "fc2")
    g.add("fc3", Dense(weight=rng.normal(0.2, 0.4, (9, 21))), "cuba")
    g.add("li", LI(tau=4.0), "fc3")
    g.add("spikes", Output(), "cuba")
    g.add("v", Output(), "li")
    return g


CASES = {
    "cuba": lambda: G.example("cuba"),
    "spiking_mlp": lambda: G.example("spiking_mlp"),  # eprop_iaf with its self-connection
    "spiking_cnn": lambda: G.example("spiking_cnn"),
    "recurrent": lambda: G.example("recurrent"),  # a loop, an LI readout recorded by a multimeter
    "lif_features": G.lif_features,  # v_init set mid-run on every rank's neurons
    "spread": spread,
}


def run(out: Path, x: Path, ranks: int, threads: int) -> tuple[dict, str]:
    o = out / f"o_{ranks}x{threads}.npz"
    prog = [str(PYTHON), str(out / "run.py"), "--input", str(x), "-o", str(o), "--threads", str(threads)]
    cmd = [MPIRUN, *MPI_FLAGS, "-np", str(ranks), *prog] if ranks > 1 else prog
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYNEST_QUIET": "1", "OMP_NUM_THREADS": str(threads)})
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stderr[-4000:]}"
    with np.load(o, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}, proc.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_and_threads_give_the_single_process_outputs(name, tmp_path):
    g = CASES[name]()
    out = tmp_path / "prog"
    out.mkdir()
    NestTarget().emit(g, out, steps=T)
    inputs = random_inputs(g, T, 2, 5, 0.3)
    x = tmp_path / "x.npz"
    np.savez(x, **inputs)
    one, _ = run(out, x, 1, 1)
    counts = G.assert_same_outputs(g, inputs, one)  # the interpreter's outputs
    executor = lookup(ENGINES, "torch", "engine")(g, inputs, T, record=[]).outputs
    for k, want in executor.items():
        np.testing.assert_allclose(one[k], want, rtol=1e-9, atol=1e-9, err_msg=k)
    assert sum(counts.values()) > 5
    types = g.verify()
    for ranks, threads in ((2, 1), (2, 2)):
        got, log = run(out, x, ranks, threads)
        for k in one:  # spikes identical; voltages to rounding: spikes from other ranks arrive in
            where = f"{k} at {ranks} ranks x {threads} threads"  # another order, so sums differ by an ulp
            if types[k].kind == "spike":
                np.testing.assert_array_equal(got[k], one[k], err_msg=where)
            else:
                np.testing.assert_allclose(got[k], one[k], rtol=1e-12, atol=1e-12, err_msg=where)
        m = RANKS.search(log)
        assert m and (int(m.group(1)), int(m.group(2))) == (ranks, threads), log[-2000:]
        if name == "spread":  # every rank owns neurons of every population
            owned = json.loads(m.group(3))
            assert all(len(c) == ranks and min(c) > 0 for c in owned.values()), owned
            assert sum(owned["lif"]) == 40 and sum(owned["li"]) == 9
