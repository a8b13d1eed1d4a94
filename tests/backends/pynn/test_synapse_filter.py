"""SpikingJelly's SynapseFilter on PyNN-on-NEST: the nest target's construction (the reading cells are n3ml's own NEST
cell, a native cell type, with one filter port per filtered synapse, made by NEST's array Connect since PyNN names
one receptor per projection): identical spikes and the filters' currents bit for bit. Off NEST refused, naming
simulator=nest. (The corpus models through `n3ml verify --targets nest,pynn`:
tests/backends/nest/test_synapse_filter.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from n3ml.backends.pynn import PynnTarget, lower_ir_to_pynn
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import Dense, Graph, Input, Output
from n3ml.ir.interp import run
from n3ml.ir.prims import SynapseFilter

from ..nest import graphs as G
from ..nest.test_current_alif import needs_cxx
from ..nest.test_synapse_filter import filters
from .test_pynn import ON_NEST, T, needs_pynn

pytestmark = [pytest.mark.pynn]


def test_lowering_on_nest():
    net = lower_ir_to_pynn(filters(), simulator="nest")
    assert {net.cells[n].celltype for n in ("if2", "li", "cuba", "rec")} == {"native:n3ml_cell"}
    assert net.cells["li"].record == "V_m" and net.cells["lif"].celltype == "IF_curr_delta"
    ported = [p for p in net.projections if p.receptor == "port"]
    assert {p.target for p in ported} >= {"if2", "li", "cuba", "rec"}
    # NEST's own Connect: weights in IR units (not the 1/1000 of PyNN's native cells), one port per synapse
    for p in ported:
        assert p.port is not None and p.port.shape == p.weights.shape and p.port.min() >= 1
        cells = net.cells[p.target].params["filter_ports"]
        assert p.port.max() <= cells
    fc2 = filters().nodes["fc2"].weight
    into_if2 = next(p for p in ported if p.target == "if2")
    np.testing.assert_array_equal(into_if2.weights, fc2[into_if2.post, into_if2.pre])


@needs_pynn
@needs_cxx
def test_identical_on_nest(tmp_path):
    g = filters()
    x = random_inputs(g, T, 2, 5, 0.4)
    got = G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST)
    counts = G.assert_same_outputs(g, x, got)
    assert min(counts.values()) > 10, counts
    ref = run(g, x).outputs
    for name in ("out_f1", "out_f1_late", "out_f3"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    desc = json.loads((tmp_path / "o" / "network.json").read_text())
    assert desc["modules"] == ["n3ml_cell.cpp"] and any(p["receptor"] == "port" for p in desc["projections"])


def test_refused_off_nest():
    with pytest.raises(UnsupportedError, match=r"node `\w+` \(\w+\) reads a SynapseFilter through synapses: PyNN's "
                                               r"standard cells.*emit with simulator=nest"):
        lower_ir_to_pynn(filters(), simulator="spiNNaker")
    g = Graph(name="readout", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("f", SynapseFilter(leak=0.25), "x")
    g.add("out", Output(), "f")
    with pytest.raises(UnsupportedError, match=r"node `out` \(Output\) reads a SynapseFilter.*simulator=nest"):
        lower_ir_to_pynn(g, simulator="spiNNaker")
    g.add("fc", Dense(weight=np.ones((2, 3))), "f")
    g.add("out2", Output(), "fc")
    assert lower_ir_to_pynn(g, simulator="nest").cells  # both readouts keep ports on NEST
