"""Unequal path latencies on Lava: every input of a neuron is delayed to its latest one, exactly.

Lava's Dense/Conv take one step each; n3ml's synapses none. A neuron read over paths of different synapse
counts gets the latest arrival as its latency, and the earlier paths are delayed: a Dense through Lava's
DelayDense, a Conv from a neuron through relay populations, a Conv from an Input through a later copy of
the Input. Checked against the reference interpreter (floating_pt identical spikes, fixed_pt bit-identical
to the quantized graph). Per-neuron decays run on n3ml's own N3mlLIF process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget
from n3ml.backends.lava.lower import lower
from n3ml.errors import UnsupportedError
from n3ml.ir import Graph, interp, prims as P
from n3ml.passes.quantize import Quantize

from .test_lava import needs_lava, run_lava, spikes


def dense_graph(reset: str = "to-value") -> Graph:
    """x -> fa -> n0 -> fb -> n1 -> fc -+-> n2 ; n0 -> fd -+ ; x -> fe -+ (paths of 3, 2 and 1 synapses)."""
    rng = np.random.default_rng(0)
    g = Graph(name="unequal_dense")
    g.add("x", P.Input(shape=(6,)))
    g.add("fa", P.Dense(weight=rng.uniform(0, 0.8, (5, 6))), "x")
    g.add("n0", P.IF(reset=reset), "fa")
    g.add("fb", P.Dense(weight=rng.uniform(-0.3, 0.9, (4, 5))), "n0")
    g.add("n1", P.LIF(tau=4.0, reset=reset), "fb")
    g.add("fc", P.Dense(weight=rng.uniform(-0.2, 0.8, (3, 4))), "n1")
    g.add("fd", P.Dense(weight=rng.uniform(-0.2, 0.6, (3, 5))), "n0")
    g.add("fe", P.Dense(weight=rng.uniform(-0.2, 0.5, (3, 6))), "x")
    g.add("sum", P.Add(), "fc", "fd", "fe")
    g.add("n2", P.IF(reset=reset), "sum")
    g.add("out", P.Output(), "n2")
    g.add("out0", P.Output(), "n0")
    return g


def conv_graph(reset: str = "to-value") -> Graph:
    """The same three paths with convolutions: x -> c0 -> n0 -> c1 -> n1 -> c2 -+-> n2, n0 -> c3 -+, x -> c4 -+,
    then a Dense head after two more neurons (the paths to it are equal again)."""
    rng = np.random.default_rng(1)
    g = Graph(name="unequal_conv")
    g.add("x", P.Input(shape=(2, 6, 6)))

    def conv(name, src, cin, cout, lo, hi):
        g.add(name, P.Conv2d(weight=rng.uniform(lo, hi, (cout, cin, 3, 3)), padding=(1, 1)), src)

    conv("c0", "x", 2, 3, -0.1, 0.4)
    g.add("n0", P.IF(reset=reset), "c0")
    conv("c1", "n0", 3, 3, -0.1, 0.35)
    g.add("n1", P.IF(reset=reset), "c1")
    conv("c2", "n1", 3, 2, -0.1, 0.3)
    conv("c3", "n0", 3, 2, -0.1, 0.3)
    conv("c4", "x", 2, 2, -0.1, 0.3)
    g.add("sum", P.Add(), "c2", "c3", "c4")
    g.add("n2", P.IF(reset=reset), "sum")
    g.add("flat", P.Flatten(), "n2")
    g.add("fc", P.Dense(weight=rng.uniform(-0.05, 0.15, (4, 72))), "flat")
    g.add("n3", P.IF(reset=reset), "fc")
    g.add("out", P.Output(), "n3")
    g.add("out2", P.Output(), "n2")
    return g


def quantized(g: Graph) -> Graph:
    return Quantize(profile="loihi2").apply(g)


# ---------------------------------------------------------------- without Lava


def test_dense_paths_are_delayed_to_the_latest_input():
    net = lower(dense_graph())
    assert net.pops["n0"].latency == 1 and net.pops["n1"].latency == 2 and net.pops["n2"].latency == 3
    delay = {c.name: c.delay for c in net.conns}
    assert delay == {"fa": 0, "fb": 0, "fc": 0, "fd": 1, "fe": 2}
    assert not [p for p in net.pops.values() if p.kind == "relay"]


def test_conv_paths_get_relays_and_a_late_input(tmp_path):
    net = lower(conv_graph())
    relays = {n: (p.of, p.latency) for n, p in net.pops.items() if p.kind == "relay"}
    assert relays == {"n0_relay1": ("n0", 2)}  # c3 reads n0 one step later
    late = {n: (p.of, p.latency) for n, p in net.pops.items() if p.kind == "input" and p.of}
    assert late == {"x_late2": ("x", 2)}  # c4 reads x two steps later
    src = {c.name: c.src for c in net.conns}
    assert src["c3"] == "n0_relay1" and src["c4"] == "x_late2" and src["n0_relay1_in"] == "n0"
    LavaTarget().emit(quantized(conv_graph()), tmp_path)  # readable: the relays and copies say what they are
    desc = json.loads((tmp_path / "network.json").read_text())
    assert desc["populations"]["n0_relay1"]["kind"] == "relay" and "relay" in desc["populations"]["n0_relay1"]["note"]
    assert desc["populations"]["x_late2"]["of"] == "x"


def test_a_loop_that_outgrows_its_delays_is_refused_naming_a_node():
    g = Graph(name="g")
    g.add("x", P.Input(shape=(2,)))
    g.add("fx", P.Dense(weight=np.ones((2, 2))), "x")
    g.add("n1", P.IF(reset="to-value"), "sum")
    g.add("f1", P.Dense(weight=np.ones((2, 2))), "n1")
    g.add("n2", P.IF(reset="to-value"), "f1")
    g.add("d", P.Delay(steps=1), "n2")
    g.add("f2", P.Dense(weight=np.ones((2, 2))), "d")
    g.add("sum", P.Add(), "fx", "f2")
    g.add("out", P.Output(), "n1")
    with pytest.raises(UnsupportedError, match=r"node `n[12]`.*loop.*Delay steps"):
        LavaTarget().check(g)


def test_per_neuron_decays_use_n3mls_process_only_where_needed(tmp_path):
    g = dense_graph()
    g.replace("n1", tau=np.array([2.0, 3.0, 5.0, 9.0]))
    LavaTarget().emit(g, tmp_path)
    desc = json.loads((tmp_path / "network.json").read_text())
    assert desc["populations"]["n1"]["process"] == "N3mlLIF" and "per-neuron" in desc["populations"]["n1"]["note"]
    assert desc["populations"]["n0"]["process"] == "LIF"
    with np.load(tmp_path / "weights.npz") as w:
        assert w[desc["populations"]["n1"]["params"]["dv"][1:]].shape == (4,)


# ------------------------------------------------------------------- with Lava


def check_identical(g: Graph, tmp_path, T: int = 30, B: int = 2) -> int:
    x = spikes(g, T=T, B=B, p=0.35)
    ref = interp.run(g, x).outputs
    got = run_lava(g, x, tmp_path)
    total = 0
    for k in ref:
        assert ref[k].sum() > 0, f"{k}: a test without spikes proves nothing"
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
        total += int(ref[k].sum())
    return total


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("make", [dense_graph, conv_graph], ids=["dense", "conv"])
@pytest.mark.parametrize("fixed", [False, True], ids=["floating_pt", "fixed_pt"])
def test_unequal_paths_run_identically(make, fixed, tmp_path):
    g = make(reset="subtract")
    check_identical(quantized(g) if fixed else g, tmp_path)


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("fixed", [False, True], ids=["floating_pt", "fixed_pt"])
def test_per_neuron_tau_runs_identically(fixed, tmp_path):
    g = dense_graph(reset="subtract")
    g.replace("n1", tau=np.array([2.0, 3.0, 5.0, 9.0]))
    if fixed:
        g = quantized(g)
        assert np.unique(np.asarray(g.nodes["n1"].dv)).size > 1
    check_identical(g, tmp_path)


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("fixed", [False, True], ids=["floating_pt", "fixed_pt"])
def test_reset_none_runs_identically(fixed, tmp_path):
    """reset none (snnTorch's reset_mechanism="none": v is kept and the neuron fires while above threshold)
    on N3mlLIF, with per-neuron decays and unequal paths in the same graph."""
    g = dense_graph(reset="subtract")
    g.replace("n1", tau=np.array([2.0, 3.0, 5.0, 9.0]), reset="none")
    if fixed:
        g = quantized(g)
        assert g.nodes["n1"].reset == "none"
    assert lower(g).pops["n1"].process == "N3mlLIF"
    check_identical(g, tmp_path)


@needs_lava
@pytest.mark.lava
def test_a_long_delay_before_a_synapse_becomes_synaptic_delay(tmp_path):
    """Delay(3) -> Dense from the Input (refused before: the input would be needed before the network starts)
    and Delay(2) -> Conv from the Input (a later copy of the Input's data) into one neuron each."""
    rng = np.random.default_rng(3)
    g = Graph(name="delays")
    g.add("x", P.Input(shape=(1, 5, 5)))
    g.add("d3", P.Delay(steps=3), "x")
    g.add("flat", P.Flatten(), "d3")
    g.add("fa", P.Dense(weight=rng.uniform(0, 0.3, (4, 25))), "flat")
    g.add("n1", P.IF(reset="subtract"), "fa")
    g.add("d2", P.Delay(steps=2), "x")
    g.add("c", P.Conv2d(weight=rng.uniform(0, 0.4, (2, 1, 3, 3)), padding=(1, 1)), "d2")
    g.add("c0", P.Conv2d(weight=rng.uniform(0, 0.3, (2, 1, 3, 3)), padding=(1, 1)), "x")
    g.add("sum", P.Add(), "c", "c0")
    g.add("n2", P.IF(reset="subtract"), "sum")
    g.add("o1", P.Output(), "n1")
    g.add("o2", P.Output(), "n2")
    net = lower(g)
    assert {c.name: c.delay for c in net.conns}["fa"] == 3
    assert {c.name: c.src for c in net.conns}["c"] == "x_late2"
    check_identical(g, tmp_path)
