"""The emitted PyNN program is the package's `n3ml/backends/pynn/runtime.py` copied verbatim (with the
shared `netlist_runtime.py`) next to the network as data: it imports without PyNN, never imports n3ml,
and the graph's names reach it only as JSON strings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.pynn import PynnTarget
from n3ml.backends.pynn import runtime as pynn_runtime
from n3ml.io import random_inputs
from n3ml.ir.interp import run

from ..nest import graphs as G
from ..nest.runtime_checks import SIMULATORS, any_names, hostile, hostile_graph, lint, run_without_n3ml  # noqa: F401

needs_pynn = pytest.mark.skipif(importlib.util.find_spec("pyNN") is None or importlib.util.find_spec("nest") is None,
                                reason="PyNN/NEST not installed (make setup-sim)")


def test_runtime_is_clean_standalone_code():
    assert lint(Path(pynn_runtime.__file__)) == []


def test_help_runs_without_pynn_and_without_n3ml(tmp_path):
    g = G.example("cuba")
    PynnTarget().emit(g, tmp_path, steps=9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netlist_runtime.py", "network.json", "run.py",
                                                         "weights.npz"]
    r = run_without_n3ml(tmp_path / "run.py", ["--help"], block=SIMULATORS)
    assert r.returncode == 0, r.stderr
    assert "default spiNNaker" in r.stdout and "default 9" in r.stdout


@needs_pynn
def test_hostile_names_are_data_and_the_program_runs_without_n3ml(tmp_path, any_names):  # noqa: F811
    marker = tmp_path / "pwned"
    bad = hostile(marker)
    g = hostile_graph(bad)
    out = tmp_path / "prog"
    out.mkdir()
    PynnTarget().emit(g, out, steps=15, options={"simulator": "nest"})
    assert (out / "run.py").read_bytes() == Path(pynn_runtime.__file__).read_bytes()
    desc = json.loads((out / "network.json").read_text())
    assert desc["graph"] == bad + "g" and bad + "lif" in desc["populations"]
    x = random_inputs(g, 15, 1, 5, 0.4)
    np.savez(tmp_path / "x.npz", **x)
    r = run_without_n3ml(out / "run.py", ["--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o.npz")])
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        got = z[bad + "out"]
    want = run(g, x).outputs[bad + "out"]
    assert want.sum() > 3
    np.testing.assert_array_equal(got, want)
    assert not marker.exists()
