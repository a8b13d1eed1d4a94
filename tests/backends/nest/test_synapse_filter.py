"""SpikingJelly's SynapseFilter on NEST: the cells reading a filter keep its state, one filter port of n3ml's own
NEST cell (n3ml_cell.cpp) per filtered synapse, fed by the filter's source spikes with that port as receptor.
Exact (spikes identical, the filter's currents read bit for bit) on a random graph with per-element leaks,
filters after and before Delays, a filter in a loop, LI and value readouts; the two corpus models through
`n3ml verify --targets nest,pynn` 100%; the cell's parameters validated by NEST itself; refusals named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from n3ml.backends.nest import NestTarget, lower_ir_to_nest
from n3ml.backends.netlist import filter_ports, filter_readers
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import IF, LI, LIF, Add, AvgPool2d, Conv2d, CubaLIF, Delay, Dense, Flatten, Graph, Input, Output
from n3ml.ir.interp import run
from n3ml.ir.prims import FixedSynapseFilter, SynapseFilter

from . import graphs as G
from .test_current_alif import needs_cxx
from .test_real_cells import needs_nest

pytestmark = [pytest.mark.nest]
T = 30


def filters(scheme: str = "exact") -> Graph:
    """Filters as SpikingJelly places them and beyond: after a LIF layer with one leak per element (its currents
    read directly, behind Delay(2), and through a Dense into an IF and an LI), after a spike Input behind
    Delay(2) (a Delay in front of a filter), mixed with plain spikes into a CubaLIF, and inside a loop (an IF
    reading the filter of its own spikes one step late, SpikingJelly's recurrent StatefulSynapseNet)."""
    rng = np.random.default_rng(7)
    g = Graph(name="filters", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(8,)))
    g.add("fc", Dense(weight=rng.normal(0.5, 0.7, (6, 8)), bias=np.full(6, 0.1)), "x")
    g.add("lif", LIF(tau=4.0, theta=0.6, reset="to-value"), "fc")
    g.add("f1", SynapseFilter(leak=np.linspace(0.05, 0.9, 6)), "lif")
    g.add("fc2", Dense(weight=rng.normal(0.2, 0.5, (5, 6)), bias=np.full(5, -0.05)), "f1")
    g.add("if2", IF(theta=1.0, reset="subtract"), "fc2")
    g.add("li", LI(tau=5.0, r=2.0, v_leak=0.1), "fc2")
    g.add("x_late", Delay(steps=2), "x")
    g.add("f2", SynapseFilter(leak=0.3), "x_late")
    g.add("f2_late", Delay(steps=1), "f2")
    g.add("fc3", Dense(weight=rng.normal(0.1, 0.4, (4, 8))), "f2_late")
    g.add("fc4", Dense(weight=rng.normal(0.3, 0.4, (4, 6))), "lif")
    g.add("mix", Add(), "fc3", "fc4")
    g.add("cuba", CubaLIF(tau_mem=6.0, tau_syn=3.0, theta=0.5, reset="to-value"), "mix")
    # the loop: rec reads the filter of its own spikes of the previous step, beside its input
    g.add("rec_prev", Delay(steps=1), "rec")
    g.add("f3", SynapseFilter(leak=0.5), "rec_prev")
    g.add("fb", Dense(weight=rng.normal(-0.2, 0.3, (3, 3))), "f3")
    g.add("fin", Dense(weight=rng.normal(0.4, 0.5, (3, 8))), "x")
    g.add("rin", Add(), "fin", "fb")
    g.add("rec", IF(theta=0.8, reset="to-value"), "rin")
    g.add("f1_late", Delay(steps=2), "f1")
    for name, src in (("out_f1", "f1"), ("out_f1_late", "f1_late"), ("out_if2", "if2"), ("out_li", "li"),
                      ("out_cuba", "cuba"), ("out_rec", "rec"), ("out_f3", "f3")):
        g.add(name, Output(), src)
    return g


def conv_filters() -> Graph:
    """A filter over spike maps with one leak per channel, read by a Conv2d (padding, bias) into an IF, through an
    AvgPool2d, Flatten and Dense into an LI, and flattened as an Output (SpikingJelly's conv nets)."""
    rng = np.random.default_rng(12)
    g = Graph(name="conv_filters", dt=1.0)
    g.add("x", Input(shape=(2, 5, 5)))
    g.add("f", SynapseFilter(leak=np.broadcast_to(np.array([0.2, 0.7]).reshape(2, 1, 1), (2, 5, 5)).copy()), "x")
    g.add("conv", Conv2d(weight=rng.normal(0.1, 0.3, (3, 2, 3, 3)), bias=np.array([0.2, 0.0, -0.1]),
                         padding=(1, 1)), "f")
    g.add("ifc", IF(theta=1.0, reset="subtract"), "conv")
    g.add("avg", AvgPool2d(kernel=(2, 2)), "f")
    g.add("flat", Flatten(), "avg")
    g.add("fc", Dense(weight=rng.normal(0.2, 0.4, (4, 8))), "flat")
    g.add("li", LI(tau=3.0), "fc")
    g.add("f_flat", Flatten(), "f")
    for name, src in (("out_conv", "ifc"), ("out_li", "li"), ("out_f", "f_flat")):
        g.add(name, Output(), src)
    return g


def test_readers_get_own_cells_with_one_port_per_filtered_synapse():
    g = filters()
    assert filter_readers(g) == {"if2", "li", "cuba", "rec"}
    net = lower_ir_to_nest(g)
    models = {n: c.model for n, c in net.cells.items()}
    assert models["lif"] == "iaf_psc_delta" and all(models[n] == "n3ml_cell" for n in ("if2", "li", "cuba", "rec"))
    assert net.cells["li"].record == "V_m" and net.cells["if2"].record == "spikes"
    nl = net.netlist
    # if2: 6 filtered sources, one leak per element (per-neuron rows of the port table); rec: 3 with one leak
    ports = filter_ports(nl, "if2")
    assert ports.ports == 6 and ports.leak.shape == (5, 6)
    np.testing.assert_array_equal(ports.leak[0], np.linspace(0.05, 0.9, 6))
    assert net.cells["if2"].params["filter_ports"] == 6.0
    assert filter_ports(nl, "rec").ports == 3 and filter_ports(nl, "rec").leak == 0.5
    # cuba: 8 filtered input spikes (plus its plain spikes from lif on port 0), Delay 2 + 1 around the filter
    (pr, pre, post, w, port) = filter_ports(nl, "cuba").synapses[0]
    assert pr.source == "x" and pr.ir_delay == 3 and pr.filter.node == "f2"
    assert sorted(port[post == 0]) == list(range(1, 9)) and np.array_equal(np.sort(pre[post == 0]), np.arange(8))
    plain = [c for c in net.connections if c.target == "cuba" and c.receptor is None]
    assert {c.source for c in plain} == {"lif"}
    # the filter's currents are read by value readouts with one port of weight 1 per entry
    readouts = {p.value_of: p.name for p in nl.neurons if p.value_of}
    assert set(readouts) == {"out_f1", "out_f1_late", "out_f3"}
    (_, _, _, w, port) = filter_ports(nl, readouts["out_f1_late"]).synapses[0]
    assert np.all(w == 1.0) and np.all(port == 1)


@needs_nest
@needs_cxx
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_identical_on_nest(scheme, tmp_path):
    g = filters(scheme)
    x = random_inputs(g, T, 2, 5, 0.4)
    got = G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T)
    counts = G.assert_same_outputs(g, x, got)
    assert min(counts.values()) > 10, counts
    ref = run(g, x).outputs
    # the currents are the IR's own floats: the filter state and a weight-1 port leave them unrounded
    for name in ("out_f1", "out_f1_late", "out_f3"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert np.all(ref["out_f1_late"][:2] == 0.0) and np.array_equal(ref["out_f1_late"][2:], ref["out_f1"][:-2])
    # the gate matters: a LIF-like filter that decays in every step gives other currents
    assert len(np.unique(ref["out_f1"])) > 50
    desc = json.loads((tmp_path / "o" / "network.json").read_text())
    assert desc["modules"] == ["n3ml_cell.cpp"]
    rows = [c for c in desc["connections"] if "receptor" in c]
    assert rows and all(c["rule"] == "one_to_one" for c in rows)


@needs_nest
@needs_cxx
def test_filtered_convolutions_identical_on_nest(tmp_path):
    g = conv_filters()
    net = lower_ir_to_nest(g)
    # a Conv's cells take the window of 2 x 3 x 3 filtered spikes (fewer at the border): ports per cell = fan-in
    assert filter_ports(net.netlist, "ifc").ports == 18
    x = random_inputs(g, T, 2, 5, 0.4)
    got = G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T)
    counts = G.assert_same_outputs(g, x, got)
    assert counts["out_conv"] > 50, counts
    np.testing.assert_array_equal(got["out_f"], run(g, x).outputs["out_f"])


@needs_nest
@needs_cxx
def test_the_program_runs_without_n3ml(tmp_path):
    """The emitted program (run.py, netlist_runtime.py, n3ml_cell.cpp and the network as data) runs with n3ml
    unimportable, the ports as data: "receptor" arrays in weights.npz, the leak table a parameter."""
    from .runtime_checks import run_without_n3ml

    g = filters()
    out = tmp_path / "prog"
    out.mkdir()
    NestTarget().emit(g, out, steps=20)
    x = random_inputs(g, 20, 1, 3, 0.4)
    np.savez(tmp_path / "x.npz", **x)
    r = run_without_n3ml(out / "run.py", ["--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o.npz")],
                         cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        G.assert_same_outputs(g, x, {k: z[k] for k in z.files})
    desc = json.loads((out / "network.json").read_text())
    assert desc["populations"]["if2"]["params"]["filter_leak"].startswith("@")  # one leak per element: a table
    assert desc["populations"]["rec"]["params"]["filter_leak"] == 0.5


def corpus_graph(name: str):
    import contextlib
    import io

    import torch

    from n3ml.frontends.torch import trace
    from tests.frontends import corpus

    pytest.importorskip("spikingjelly")
    case = next(c for c in corpus.CASES if c.name == name)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        g = trace(case.model(torch.float64), case.input_shape)
    return case, g


@needs_nest
@needs_cxx
@pytest.mark.parametrize("name,output,kind", [("sj-synapse-filter", "out", "analog"),
                                              ("sj-rsnn-stateful-synapse", "out", "spike")])
def test_corpus_models_through_verify_on_both_targets(name, output, kind, tmp_path, capsys):
    """The corpus models (SpikingJelly's SynapseFilter docstring readout; rsnn_sequential_fmnist.py's
    StatefulSynapseNet) through `n3ml verify --targets nest,pynn` on their corpus input: 100% on both, the
    readout's currents with error 0."""
    case, g = corpus_graph(name)
    assert any(type(p) is SynapseFilter for p in g.nodes.values())
    text = G.verify_corpus_on_nest_and_pynn(case, g, tmp_path, capsys)
    for target in ("nest", "pynn"):
        row = re.search(rf"^{target}\s+{output}\s+{kind}\s+100\.00%.*$", text, re.M)
        assert row, text[-3000:]
        if kind == "analog":
            assert row.group(0).split()[-1] == "0", row.group(0)


def test_refusals_name_the_node():
    g = filters()
    g.replace("f1", v_init=0.5)
    with pytest.raises(UnsupportedError, match=r"node `f1` \(SynapseFilter\): v_init must be 0"):
        lower_ir_to_nest(g)
    g = Graph(name="q", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("f", FixedSynapseFilter(d=1024, jump=64), "x")
    g.add("fc", Dense(weight=np.ones((2, 3))), "f")
    g.add("out", Output(), "fc")
    with pytest.raises(UnsupportedError, match=r"node `f` \(FixedSynapseFilter\) has no NEST model: the integer "
                                               r"filter is quantize's form for Lava"):
        lower_ir_to_nest(g)
    # a filter feeding the current of a fused cell (LI -> LI: the first LI is the second's current)
    g = Graph(name="fused", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("f", SynapseFilter(leak=0.2), "x")
    g.add("fc", Dense(weight=np.ones((2, 3))), "f")
    g.add("li1", LI(tau=3.0), "fc")
    g.add("li2", LI(tau=5.0), "li1")
    g.add("out", Output(), "li2")
    with pytest.raises(UnsupportedError, match=r"node `li2` reads a SynapseFilter through synapses and is fused "
                                               r"into one nest cell as LI -> LI"):
        lower_ir_to_nest(g)


def test_the_legality_table_takes_the_filter():
    from n3ml.passes.legalize import illegal_nodes

    problems = illegal_nodes(filters(), NestTarget.legality)
    assert problems == []
    g = Graph(name="q", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("f", FixedSynapseFilter(d=1024, jump=64), "x")
    g.add("out", Output(), "f")
    (line,) = illegal_nodes(g, NestTarget.legality)
    assert "`f` (FixedSynapseFilter)" in line and "quantize is for the lava target" in line


PROBE = r"""
import os, sys, json
os.environ["PYNEST_QUIET"] = "1"
sys.path.insert(0, sys.argv[1])
import nest, numpy as np
import netlist_runtime as rt
nest.ResetKernel()
nest.set(resolution=1.0)
nest.Install(rt.nest_module(sys.argv[1], "n3ml_cell.cpp"))
errors = {}
for key, value in (("filter_leak", [0.2, 1.5]), ("filter_ports", 2.5), ("filter_ports", -1.0), ("reset", 3.0),
                   ("refractory", 1.5)):
    n = nest.Create("n3ml_cell")
    try:
        n.set({key: value})
        errors[key + repr(value)] = None
    except nest.NESTError as e:
        errors[key + repr(value)] = type(e).__name__ + ": " + str(e)
n = nest.Create("n3ml_cell", params={"filter_ports": 2.0, "filter_leak": [0.1, 0.2, 0.3]})
try:
    nest.Simulate(2.0)
    errors["mismatch"] = None
except nest.NESTError as e:
    errors["mismatch"] = type(e).__name__ + ": " + str(e)
print(json.dumps(errors))
"""


@needs_nest
@needs_cxx
def test_cell_parameters_are_validated_by_nest(tmp_path):
    """A bad value of the cell is refused by NEST itself (BadProperty naming it), before anything runs."""
    from n3ml.backends.emission import runtime_source

    (tmp_path / "n3ml_cell.cpp").write_bytes(runtime_source("n3ml.backends.nest", "n3ml_cell.cpp"))
    (tmp_path / "netlist_runtime.py").write_bytes(runtime_source("n3ml.backends", "netlist_runtime.py"))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "PYNEST_QUIET": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    leak = got["filter_leak[0.2, 1.5]"]
    assert leak.startswith("BadProperty") and "filter_leak must lie in 0..1" in leak
    for key, says in (("filter_ports2.5", "filter_ports must be a whole number >= 0"),
                      ("filter_ports-1.0", "filter_ports must be a whole number >= 0"),
                      ("reset3.0", "reset must be 0 (none), 1 (to v_reset) or 2 (subtract)"),
                      ("refractory1.5", "refractory must be a whole number of steps"),
                      ("mismatch", "filter_leak must hold one value or one per filter port (filter_ports = 2), "
                                   "found 3")):
        assert got[key] and got[key].startswith("BadProperty") and says in got[key], (key, got[key])
