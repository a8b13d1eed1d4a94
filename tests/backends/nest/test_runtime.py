"""The emitted NEST program is an ordinary module of the package (`n3ml/backends/nest/runtime.py`, with the
shared `netlist_runtime.py`) copied verbatim next to the network as data: it imports without NEST, never
imports n3ml, and names from the graph reach it only as JSON strings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends import netlist_runtime
from n3ml.backends.nest import NestTarget
from n3ml.backends.nest import runtime as nest_runtime
from n3ml.io import random_inputs
from n3ml.ir.interp import run

from . import graphs as G
from .runtime_checks import (SIMULATORS, any_names, hostile, hostile_graph, import_without, lint,  # noqa: F401
                             run_without_n3ml)

needs_nest = pytest.mark.skipif(importlib.util.find_spec("nest") is None, reason="NEST not installed (make setup-sim)")


@pytest.mark.parametrize("module", [netlist_runtime, nest_runtime], ids=["netlist_runtime", "nest"])
def test_runtime_is_clean_standalone_code(module):
    assert lint(Path(module.__file__)) == []


def test_lint_catches_what_it_claims(tmp_path):
    """The checker itself: an n3ml import, a module-level simulator import, an unused import."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nimport nest\nfrom n3ml.ir import Graph\n\n\n"
                   "def f():\n    import lava\n    return Graph, lava\n")
    problems = lint(bad)
    assert any("imports n3ml" in p for p in problems)
    assert any("simulator module nest at module level" in p for p in problems)
    assert any("`os` imported but unused" in p for p in problems)
    assert not any("lava" in p for p in problems)  # inside a function: fine


def test_runtimes_import_without_simulators():
    """With nest/pyNN/lava/mpi4py unimportable, the runtime modules import and their pure parts work."""
    code = ("from n3ml.backends import netlist_runtime as rt\n"
            "import numpy as np\n"
            "x = np.linspace(0, 1, 12).reshape(3, 1, 4)\n"
            "spec = {'encoder': {'type': 'latency', 'window': 3, 'x_min': 0.0}}\n"
            "print(int(rt.encode(spec, x).sum()))\n")
    r = import_without(["n3ml.backends.nest.runtime", "n3ml.backends.pynn.runtime", "n3ml.backends.lava.runtime"],
                       code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"  # the Latency encoder: one spike per value in a window of 3 steps


def test_help_runs_without_nest_and_without_n3ml(tmp_path):
    g = G.example("spiking_mlp")
    NestTarget().emit(g, tmp_path, steps=7)
    r = run_without_n3ml(tmp_path / "run.py", ["--help"], block=SIMULATORS)
    assert r.returncode == 0, r.stderr
    assert "--threads" in r.stdout and "default 7" in r.stdout and g.name in r.stdout


def test_description_is_strict_json(tmp_path):
    """A readout's V_th = +inf is no JSON number: it lies in weights.npz as a 0-d array."""
    g = G.readouts()
    NestTarget().emit(g, tmp_path, steps=5)
    text = (tmp_path / "network.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    desc = json.loads(text)
    net = netlist_runtime.Network(tmp_path, nest_runtime.FORMAT)
    thresholds = [net.array(p["params"]["V_th"]) for p in desc["populations"].values()]
    assert float("inf") in thresholds and all(isinstance(v, float) for v in thresholds if np.ndim(v) == 0)


def test_wrong_description_format_is_refused(tmp_path):
    NestTarget().emit(G.example("spiking_mlp"), tmp_path, steps=5)
    desc = json.loads((tmp_path / "network.json").read_text())
    (tmp_path / "network.json").write_text(json.dumps({**desc, "format": "n3ml-nest/0"}))
    r = run_without_n3ml(tmp_path / "run.py", ["--steps", "3"])
    assert r.returncode == 1 and "format 'n3ml-nest/0'" in r.stderr and "Traceback" not in r.stderr


@needs_nest
def test_hostile_names_are_data_and_the_program_runs_without_n3ml(tmp_path, any_names):  # noqa: F811
    """Names with quotes, triple quotes, backslashes and newlines: run.py is still the runtime byte for
    byte, the names are JSON strings, the program runs (n3ml unimportable) with the reference's outputs,
    and the payload in the names never runs."""
    marker = tmp_path / "pwned"
    bad = hostile(marker)
    g = hostile_graph(bad)
    out = tmp_path / "prog"
    out.mkdir()
    NestTarget().emit(g, out, steps=20)
    assert (out / "run.py").read_bytes() == Path(nest_runtime.__file__).read_bytes()
    desc = json.loads((out / "network.json").read_text())
    assert desc["graph"] == bad + "g" and bad + "lif" in desc["populations"] and bad + "out" in desc["outputs"]
    x = random_inputs(g, 20, 2, 5, 0.4)
    np.savez(tmp_path / "x.npz", **x)
    r = run_without_n3ml(out / "run.py", ["--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o.npz")])
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    want = run(g, x).outputs
    assert want[bad + "out"].sum() > 5
    np.testing.assert_array_equal(got[bad + "out"], want[bad + "out"])
    assert not marker.exists()


def test_description_writer_is_strict_and_round_trips(tmp_path):
    """Every string is escaped JSON (brackets, quotes, newlines, non-ASCII), lists of numbers stay on one
    line, and a non-finite number is refused (the emitters put those in weights.npz)."""
    from n3ml.backends.emission import dumps

    bad = hostile(tmp_path / "pwned")
    x = {bad: [1, -2.5e-300, None, True], "nested": [{"s": "[1,2]\n\u00e9", "t": [[1, 2], []]}, bad], "e": {}}
    text = dumps(x)
    assert json.loads(text) == x
    assert '"nested": [' in text and "[1, -2.5e-300, null, true]" in text and text.isascii()
    for v in (float("inf"), float("nan")):
        with pytest.raises(ValueError):
            dumps({"a": [v]})
