"""The pynn target on the real PyNN 0.13 running on NEST 3.10, and its SpiNNaker checks."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from n3ml.backends.pynn import SPINNAKER, PynnTarget, lower_ir_to_pynn
from n3ml.io import random_inputs
from n3ml.errors import N3mlError, UnsupportedError
from n3ml.ir import LI, LIF, CubaLIF, Delay, Dense, Graph, Input, Output

from ..nest import graphs as G

needs_pynn = pytest.mark.skipif(importlib.util.find_spec("pyNN") is None or importlib.util.find_spec("nest") is None,
                                reason="PyNN/NEST not installed (make setup-sim)")
pytestmark = [pytest.mark.pynn]
T = 25
ON_NEST = {"simulator": "nest"}


@needs_pynn
@pytest.mark.parametrize("name,reset", [("cuba", None), ("spiking_mlp", None), ("spiking_cnn", None),
                                        ("recurrent", None), ("spiking_mlp", "to-value"),
                                        ("recurrent", "to-value")])
def test_examples_identical(name, reset, tmp_path):
    """The bundled examples (reset by subtraction through NEST's native eprop_iaf), and with standard cells
    only (reset to v_reset)."""
    g = G.example(name, reset)
    x = random_inputs(g, T, 2, 7, 0.25)
    got = G.run_emitted(PynnTarget(), g, x, tmp_path / "out", steps=T, options=ON_NEST)
    counts = G.assert_same_outputs(g, x, got)
    assert sum(counts.values()) > 10


@needs_pynn
@pytest.mark.parametrize("make", [lambda: G.lif_features("euler"), lambda: G.lif_features(reset="subtract"),
                                  G.conv_features, G.readouts, lambda: G.cuba_features("exact"), G.encoders,
                                  G.spike_maxpool, G.analog_heads],
                         ids=["lif-euler", "lif-subtract", "conv", "readouts", "cuba", "encoders", "maxpool", "heads"])
def test_features_identical(make, tmp_path):
    g = make()
    x = random_inputs(g, T, 1, 3, 0.3)
    G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "out", steps=T, options=ON_NEST))


def analog_mix() -> Graph:
    """Analog values of both signs, from two inputs, into a delta cell, an exponential-current cell and a
    readout: each projection of an analog input carries the value in its events (spike_weights)."""
    rng = np.random.default_rng(5)
    g = Graph(name="analog_mix", dt=1.0)
    g.add("x", Input(shape=(5,), kind="analog"))
    g.add("y", Input(shape=(3,), kind="analog"))
    g.add("fc", Dense(weight=rng.normal(0.0, 0.8, (6, 5)), bias=np.full(6, 0.05)), "x")
    g.add("lif", LIF(tau=4.0, theta=0.6, reset="to-value"), "fc")
    g.add("fc_c", Dense(weight=rng.normal(0.0, 1.5, (4, 3))), "y")
    g.add("cuba", CubaLIF(tau_mem=5.0, tau_syn=3.0, theta=0.4, reset="to-value"), "fc_c")
    g.add("fc_r", Dense(weight=rng.normal(0.0, 0.5, (2, 5))), "x")
    g.add("li", LI(tau=6.0), "fc_r")
    for name in ("lif", "cuba", "li"):
        g.add(f"out_{name}", Output(), name)
    return g


def analog_delayed() -> Graph:
    """An analog input through a 12-step Delay: a projection delay beyond PyNN's default max_delay (10 ms),
    which the program raises to the longest delay it has (the SpikingJelly ResNets need 19 steps)."""
    g = Graph(name="analog_delayed", dt=1.0)
    g.add("x", Input(shape=(3,), kind="analog"))
    g.add("d", Delay(steps=12), "x")
    g.add("fc", Dense(weight=np.array([[1.2, -0.4, 0.7], [0.3, 0.9, -0.2]])), "d")
    g.add("lif", LIF(tau=3.0, theta=0.1, reset="to-value"), "fc")
    g.add("out", Output(), "lif")
    return g


@needs_pynn
@pytest.mark.parametrize("make", [G.analog_input, analog_mix, analog_delayed], ids=["constant-current", "mix",
                                                                                   "delayed"])
def test_analog_inputs_identical_on_nest(make, tmp_path):
    """Analog inputs on PyNN-on-NEST: NEST's native spike_generator with the values as spike_weights, the
    construction of the nest target; values of both signs, zeros (no event) included."""
    g = make()
    x = {name: np.where(a > 0.3, a - 0.5, 0.0)  # negative, zero and positive values
         for name, a in random_inputs(g, T, 2, 11, 0.5).items()}
    x = {name: a * 2.0 for name, a in x.items()}
    got = G.run_emitted(PynnTarget(), g, x, tmp_path / "out", steps=T, options=ON_NEST)
    counts = G.assert_same_outputs(g, x, got)
    assert sum(counts.values()) > 5
    assert "spike_weights" in (tmp_path / "out" / "run.py").read_text()  # the program, standalone, says how


@needs_pynn
def test_simulator_flag_overrides_default(tmp_path):
    """The script imports pyNN.spiNNaker by default; --simulator nest runs it here."""
    g = G.example("cuba")
    out = tmp_path / "p"
    out.mkdir()
    PynnTarget().emit(g, out, steps=T)  # no options: for SpiNNaker, whose limits cuba meets
    assert json.loads((out / "network.json").read_text())["simulator"] == "spiNNaker"
    assert "--simulator" in (out / "run.py").read_text()
    x = random_inputs(g, T, 1, 1, 0.3)
    got = G.run_emitted(PynnTarget(), g, x, tmp_path / "q", steps=T, extra=("--simulator", "nest"))
    G.assert_same_outputs(g, x, got)


def _refused(g, tmp_path, needle, options=None):
    out = tmp_path / "never"
    out.mkdir(parents=True)
    with pytest.raises(UnsupportedError, match=needle):
        PynnTarget().check(g, options)
    with pytest.raises(UnsupportedError, match=needle):
        PynnTarget().emit(g, out, steps=5, options=options)
    assert not any(out.iterdir())


def test_refusals(tmp_path):
    # standard cells reset to v_reset: reset by subtraction only on NEST (native eprop_iaf)
    _refused(G.example("spiking_mlp"), tmp_path / "a", "`lif1` \\(LIF\\): reset 'subtract'.*simulator=nest")
    _refused(G.example("spiking_mlp"), tmp_path / "a2", "`lif1` \\(LIF\\): reset 'subtract'",
             {"simulator": "brian2"})
    # analog inputs: PyNN-on-NEST only (NEST's weighted spike_generator); SpiNNaker and brian2 refuse them
    _refused(G.analog_input(), tmp_path / "b", "`x` \\(Input, analog\\) feeds synapses.*spiNNaker has no "
             "spike source.*simulator=nest")
    _refused(G.analog_input(), tmp_path / "b2", "`x` \\(Input, analog\\).*brian2", {"simulator": "brian2"})
    _refused(G.example("quantized"), tmp_path / "c", "`n1` \\(FixedCubaLIF\\)", ON_NEST)
    with pytest.raises(N3mlError, match="simulator='loihi'"):
        PynnTarget().emit(G.example("cuba"), tmp_path, options={"simulator": "loihi"})


def test_spinnaker_limits(tmp_path, caplog):
    """Checked by default (simulator spiNNaker), naming the node; skipped for simulator=nest. The limits
    are sPyNNaker's own (test_spinnaker.py maps the same cases on its virtual board)."""
    _refused(G.example("spiking_cnn", "to-value"), tmp_path / "a", "`if1` \\(IF\\).*tau_m.*no leak")
    _refused(G.readouts(), tmp_path / "b", "`li` \\(LI\\): parameter v_thresh = inf.*never fires")

    def layer(n_in, n_out, w):
        g = Graph(name="big")
        g.add("x", Input(shape=(n_in,)))
        g.add("fc", Dense(weight=np.full((n_out, n_in), w)), "x")
        g.add("n", LIF(tau=10.0, reset="to-value"), "fc")
        g.add("out", Output(), "n")
        return g

    # the input takes one core, every 256 neurons one more; the board has 759 for applications
    fits = (SPINNAKER["cores"] - 1) * SPINNAKER["neurons_per_core"]
    PynnTarget().check(layer(1, fits, 1.0))
    _refused(layer(1, fits + 1, 1.0), tmp_path / "c", "needs 760 cores.*largest population is `n`")
    # weights sPyNNaker maps but cannot represent: warnings, not refusals (it does not refuse them)
    with caplog.at_level("WARNING", logger="n3ml.backends.pynn.lower"):
        PynnTarget().check(layer(2, 2, 1e6))
        PynnTarget().check(layer(2, 2, 1e-7))
    assert "saturates the s16.15 input" in caplog.text and "round to 0" in caplog.text
    PynnTarget().check(layer(2, 2, 1e6), ON_NEST)  # NEST has no such limits
    PynnTarget().check(G.example("cuba"))  # fits the board
    # delays: 32 slots on a core of 256 neurons, 9 x 32 with one delay extension (sPyNNaker's arithmetic)
    from .test_spinnaker import delay_graph

    PynnTarget().check(delay_graph(256, 0))
    _refused(delay_graph(256, 1), tmp_path / "d", "`lif`: a delay of 289 steps .* exceeds the 288 steps")
    PynnTarget().check(delay_graph(10, 0))  # 10 neurons: 512 slots, 4608 steps
    _refused(delay_graph(10, 1), tmp_path / "e", "delay of 4609 steps .* exceeds the 4608")


def test_projections_split_by_sign_and_use_lists():
    net = lower_ir_to_pynn(G.example("cuba"))
    for pr in net.projections:
        assert (pr.weights > 0).all() if pr.receptor == "excitatory" else (pr.weights < 0).all()
        assert pr.pre.shape == pr.post.shape == pr.weights.shape
    # every IR synapse appears once, scaled by the cell's weight factor
    cell = net.cells["cuba1"]
    total = sum(pr.weights.size for pr in net.projections if pr.target == "cuba1")
    assert total == np.count_nonzero(G.example("cuba").nodes["fc1"].weight)
    assert cell.celltype == "IF_curr_exp" and cell.extra_steps == 1
