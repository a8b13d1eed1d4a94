"""The nest target on the real NEST 3.10: emitted programs reproduce the reference interpreter exactly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.nest import NestTarget, lower_ir_to_nest
from n3ml.io import random_inputs
from n3ml.errors import UnsupportedError
from n3ml.ir import ALIF, LI, LIF, Add, Delay, Dense, Graph, Input, MaxPool2d, Output, PoissonRate

from . import graphs as G

needs_nest = pytest.mark.skipif(importlib.util.find_spec("nest") is None, reason="NEST not installed (make setup-sim)")
pytestmark = [pytest.mark.nest]
T = 30


@needs_nest
@pytest.mark.parametrize("name", ["spiking_mlp", "spiking_cnn", "recurrent", "cuba"])
def test_examples_identical(name, tmp_path):
    g = G.example(name)
    x = random_inputs(g, T, 2, 7, 0.25)
    counts = G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "out", steps=T))
    assert sum(counts.values()) > 20  # the comparison is not between two silent networks


@needs_nest
@pytest.mark.parametrize("make", [
    lambda: G.lif_features("exact"), lambda: G.lif_features("euler"),
    lambda: G.lif_features(reset="subtract"), lambda: G.lif_features(reset="none"),
    G.conv_features, G.readouts, lambda: G.cuba_features("exact"), lambda: G.cuba_features("euler"),
    G.analog_input, G.encoders, G.spike_maxpool, G.analog_heads, lambda: G.analog_heads("euler"),
], ids=["lif", "lif-euler", "lif-subtract", "lif-none", "conv", "readouts", "cuba", "cuba-euler", "analog",
        "encoders", "maxpool", "heads", "heads-euler"])
def test_features_identical(make, tmp_path):
    g = make()
    x = random_inputs(g, T, 2, 3, 0.3)
    G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "out", steps=T))


@needs_nest
def test_threads_and_default_input(tmp_path):
    """--threads 2 changes nothing; without --input the script uses `n3ml simulate`'s default input."""
    g = G.example("spiking_mlp")
    x = random_inputs(g, T, 1, 0, 0.2)
    got = G.run_emitted(NestTarget(), g, x, tmp_path / "a", steps=T, extra=("--threads", "2"))
    G.assert_same_outputs(g, x, got)
    import subprocess

    subprocess.run([*NestTarget().run_argv(tmp_path / "a"), "--steps", str(T), "-o", str(tmp_path / "d.npz")],
                   check=True, capture_output=True)
    with np.load(tmp_path / "d.npz") as z:
        np.testing.assert_array_equal(z["out"], got["out"])


def test_program_is_bulk_and_pickle_free(tmp_path):
    """run.py and netlist_runtime.py are the package's modules byte for byte; the network is data: one
    connection-table row (one nest.Connect) per projection, whatever the number of synapses."""
    from n3ml.backends import netlist_runtime
    from n3ml.backends.nest import runtime

    g = G.conv_features()
    NestTarget().emit(g, tmp_path, steps=10)
    text = (tmp_path / "run.py").read_text()
    assert text == Path(runtime.__file__).read_text()
    assert (tmp_path / "netlist_runtime.py").read_text() == Path(netlist_runtime.__file__).read_text()
    assert text.count("nest.Connect(") == 5  # parrots, all_to_all, one_to_one, two recorders
    net = lower_ir_to_nest(g)
    assert sum(c.n_synapses for c in net.connections) > 100
    desc = json.loads((tmp_path / "network.json").read_text())
    assert desc["format"] == runtime.FORMAT and desc["default_steps"] == 10
    assert [(c["source"], c["target"], c["delay"], c["rule"]) for c in desc["connections"]] == \
        [(c.source, c.target, c.delay, c.rule) for c in net.connections]
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert sum(z[c["key"] + "/w"].size for c in desc["connections"]) >= sum(c.n_synapses for c in net.connections)
    for src in (text, (tmp_path / "netlist_runtime.py").read_text()):
        assert "allow_pickle=True" not in src and "import pickle" not in src


def _refused(g: Graph, tmp_path, needle: str) -> None:
    out = tmp_path / "never"
    out.mkdir(parents=True)
    with pytest.raises(UnsupportedError, match=needle):
        NestTarget().check(g)
    with pytest.raises(UnsupportedError, match=needle):
        NestTarget().emit(g, out, steps=5)
    assert not any(out.iterdir())


def test_refuses_unsupported_before_writing(tmp_path):
    _refused(G.example("quantized"), tmp_path, "`n1` \\(FixedCubaLIF\\)")

    g = Graph(name="alif")
    g.add("x", Input(shape=(3,)))
    g.add("fc", Dense(weight=np.ones((2, 3))), "x")
    g.add("a", ALIF(tau=5.0, tau_adapt=20.0), "fc")
    g.add("out", Output(), "a")  # reset by subtraction of theta + b': n3ml's own cell (NEST's models cannot)
    assert lower_ir_to_nest(g).cells["a"].model == "n3ml_cell"

    g = G.encoders()
    g.add("enc2", PoissonRate(), "lif")
    g.add("out2", Output(), "enc2")
    _refused(g, tmp_path / "7", "`enc2` \\(PoissonRate\\).*right after an Input")

    g = Graph(name="pool")  # over analog values (over spikes it is an OR neuron)
    g.add("x", Input(shape=(1, 4, 4), kind="analog"))
    g.add("mp", MaxPool2d(kernel=(2, 2)), "x")
    g.add("n", LIF(tau=5.0, reset="to-value"), "mp")
    g.add("out", Output(), "n")
    _refused(g, tmp_path / "2", "`mp` \\(MaxPool2d\\)")

    g = G.lif_features(reset="subtract")
    g.replace("lif", refractory=2)  # eprop_iaf integrates while refractory: n3ml's own cell (test_current_alif.py)
    assert lower_ir_to_nest(g).cells["lif"].model == "n3ml_cell"

    g = Graph(name="loop")  # two neurons around one Delay step: NEST needs a step per synapse
    g.add("x", Input(shape=(3,)))
    g.add("fc", Dense(weight=np.ones((2, 3))), "x")
    g.add("sum", Add(), "fc", "rec")
    g.add("l1", LIF(tau=5.0, reset="to-value"), "sum")
    g.add("fc2", Dense(weight=np.ones((2, 2))), "l1")
    g.add("l2", LIF(tau=5.0, reset="to-value"), "fc2")
    g.add("late", Delay(steps=1), "l2")
    g.add("rec", Dense(weight=np.ones((2, 2))), "late")
    g.add("out", Output(), "l2")
    _refused(g, tmp_path / "4", "nodes `l1` -> `l2` -> `l1` form a loop with 1 Delay step; nest needs 2 to pass a "
             "spike once around it \\(one per synapse\\)")

    g = G.analog_input()
    g.dt = 0.0005
    _refused(g, tmp_path / "6", "not a multiple of NEST's tic")

    g = G.analog_heads()  # an LI reading an LI through a Dense is two filters mixed: no single cell
    g.add("mix", Dense(weight=np.ones((4, 4))), "mem")
    g.add("li3", LI(tau=3.0), "mix")
    g.add("out3", Output(), "li3")
    _refused(g, tmp_path / "5", "`li3` reads the voltage of `mem` \\(LI\\).*LI -> LI chain")


def test_latencies_and_delays():
    """Connection delays are latency differences (>= 1 step); a Delay in the IR lengthens them."""
    net = lower_ir_to_nest(G.lif_features())
    pops = net.netlist.populations
    assert pops["x"].latency == 2 and pops["lif"].arrival == 3 and pops["if2"].arrival == 4
    delays = {(c.source, c.target): sorted({d.delay for d in net.connections if (d.source, d.target) ==
                                            (c.source, c.target)}) for c in net.connections}
    assert delays[("x", "lif")] == [1, 3]  # direct, and through IR Delay(2) on top of the one-step minimum
    assert delays[("clock", "lif")] == [2]  # the clock emits at step 1
    assert delays[("lif", "if2")] == [1]
    assert all(c.delay >= 1 for c in net.connections)
    # a cycle through a one-step Delay needs no extra latency: delay 1 on the recurrent connection
    rec = lower_ir_to_nest(G.example("recurrent"))
    assert {(c.source, c.target): c.delay for c in rec.connections}[("lif", "lif")] == 1


def test_threshold_and_reset_compensation():
    """Strict IR threshold -> next float for NEST's >=; subtract reset with v_leak gets a self-connection."""
    g = Graph(name="thr")
    g.add("x", Input(shape=(2,)))
    g.add("fc", Dense(weight=np.ones((2, 2))), "x")
    g.add("n", LIF(tau=4.0, theta=1.0, v_leak=0.25, reset="subtract"), "fc")
    g.add("out", Output(), "n")
    net = lower_ir_to_nest(g)
    cell = net.cells["n"]
    assert cell.model == "eprop_iaf"
    assert cell.params["V_th"] == np.nextafter(0.75, 1.0)
    (self_conn,) = [c for c in net.connections if c.source == c.target == "n"]
    a = np.exp(-1.0 / 4.0)
    np.testing.assert_allclose(self_conn.weights, a * (np.nextafter(0.75, 1.0) - 1.0))
    assert self_conn.delay == 1


def test_sparse_algebra_matches_dense():
    from n3ml.backends.netlist import Sparse

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 7)) * (rng.random((5, 7)) < 0.4)
    b = rng.normal(size=(7, 4)) * (rng.random((7, 4)) < 0.5)
    sa, sb = Sparse.from_dense(a), Sparse.from_dense(b)
    np.testing.assert_allclose((sa @ sb).dense(), a @ b)
    np.testing.assert_allclose(sa.plus(sa).dense(), 2 * a)
    np.testing.assert_allclose(sa.scale_rows(np.arange(5.0)).dense(), np.arange(5.0)[:, None] * a)
    assert (Sparse.eye(7) @ sb) is sb


def test_conv_and_pool_matrices_match_interpreter():
    from n3ml.backends.netlist import _conv2d_matrix, _pool_matrix
    from n3ml.ir.interp import conv2d, pool2d
    from n3ml.ir import Conv2d, SumPool2d, AvgPool2d

    rng = np.random.default_rng(1)
    x = rng.random((1, 4, 7, 6))
    conv = Conv2d(weight=rng.normal(size=(6, 2, 3, 2)), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    y = conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    m = _conv2d_matrix(conv, x.shape[1:], y.shape[1:])
    np.testing.assert_allclose(m.dense() @ x.ravel(), y.ravel())
    for pool in (SumPool2d(kernel=(2, 3), padding=(1, 1)), AvgPool2d(kernel=(3, 3), stride=(2, 2))):
        y = pool2d(x, pool)
        np.testing.assert_allclose(_pool_matrix(pool, x.shape[1:], y.shape[1:]).dense() @ x.ravel(), y.ravel())
