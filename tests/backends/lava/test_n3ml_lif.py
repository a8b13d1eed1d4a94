"""n3ml's own Lava process N3mlLIF: its refractory period (fixed_pt bit for bit, floating_pt), ALIF's adaptive
threshold (floating_pt), and the lowerings that use them: an LI current before a neuron through a Delay (one
population whose u is the LI) and a Concat read by a Dense and by an Output (split per source population).

Each Lava run is checked against the reference interpreter, and each feature is shown to matter: the same graph
without it (refractory 0, q 0) spikes differently.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget
from n3ml.backends.lava.lower import current_chains, lower
from n3ml.ir import Graph, interp, prims as P
from n3ml.ir.text import load
from n3ml.passes.quantize import Quantize

from .test_lava import GRAPHS, needs_lava, run_lava, spikes

ONE = 1 << 12  # Loihi 2's decay unit (FixedCubaLIF decay_bits 12)


def fixed_refractory_graph(refractory: tuple[int, int] = (2, 1)) -> Graph:
    """x -> fc1 -> n1 (reset to 0) -> fc2 -> n2 (reset by subtraction, a bias); integer weights, Loihi 2 fields."""
    rng = np.random.default_rng(7)
    g = Graph(name="fixed_refractory")
    g.add("x", P.Input(shape=(8,)))
    g.add("fc1", P.Dense(weight=rng.integers(-20, 90, (6, 8)).astype(np.int64)), "x")
    g.add("n1", P.FixedCubaLIF(du=1500, dv=200, theta=64 * 60, reset="to-value", refractory=refractory[0]), "fc1")
    g.add("fc2", P.Dense(weight=rng.integers(-40, 100, (4, 6)).astype(np.int64)), "n1")
    g.add("n2", P.FixedCubaLIF(du=ONE, dv=400, bias=300, theta=64 * 70, reset="subtract",
                               refractory=refractory[1]), "fc2")
    g.add("out1", P.Output(), "n1")
    g.add("out2", P.Output(), "n2")
    return g


def float_graph(q: float = 0.6, refractory: int = 2) -> Graph:
    """x -> fa -> ALIF a (reset to 0); x -> fb (bias) -> LI (the current) -> Delay(2) -> ALIF b (subtract);
    [a, b] -> Concat -> fc -> LIF c (subtract, refractory); outputs: c and the Concat of a and b."""
    rng = np.random.default_rng(3)
    g = Graph(name="alif_float")
    g.add("x", P.Input(shape=(10,)))
    g.add("fa", P.Dense(weight=rng.uniform(-0.2, 0.9, (5, 10))), "x")
    g.add("a", P.ALIF(tau=8.0, tau_adapt=15.0, q=q, theta=0.8, reset="to-value"), "fa")
    g.add("fb", P.Dense(weight=rng.uniform(-0.3, 0.8, (4, 10)), bias=rng.uniform(0.0, 0.1, 4)), "x")
    g.add("cur", P.LI(tau=4.0, r=2.0), "fb")
    g.add("late", P.Delay(steps=2), "cur")
    g.add("b", P.ALIF(tau=10.0, tau_adapt=20.0, q=q * np.linspace(0.5, 1.5, 4), theta=0.7, reset="subtract"),
          "late")
    g.add("cat", P.Concat(), "a", "b")
    g.add("fc", P.Dense(weight=rng.uniform(-1.0, 6.0, (3, 9))), "cat")
    g.add("c", P.LIF(tau=6.0, theta=0.9, reset="subtract", refractory=refractory), "fc")
    g.add("out", P.Output(), "c")
    g.add("both", P.Output(), "cat")
    return g


# ---------------------------------------------------------------- without Lava


def test_fixed_refractory_lowers_to_n3mllif_with_its_period():
    net = lower(fixed_refractory_graph())
    assert [(net.pops[n].process, net.pops[n].reset, net.pops[n].refractory) for n in ("n1", "n2")] == [
        ("N3mlLIF", "zero", 2), ("N3mlLIF", "subtract", 1)]


def test_float_refractory_keeps_lavas_lifrefractory_only_for_a_reset_to_zero():
    g = float_graph()
    g.replace("c", reset="to-value", v_reset=0.0)
    assert lower(g).pops["c"].process == "LIFRefractory"  # Lava's own: the same semantics for a reset to 0
    g.replace("c", reset="subtract")
    assert lower(g).pops["c"].process == "N3mlLIF"


def test_li_current_through_a_delay_and_a_concat_lower_to_one_population_and_split_synapses(tmp_path):
    g = float_graph()
    assert current_chains(g) == {"b": ("cur", 2)}
    net = lower(g)
    assert "cur" not in net.pops  # the LI is b's u
    b = net.pops["b"]
    assert b.process == "N3mlLIF" and b.adapt and b.params["du"] == pytest.approx(1 - np.exp(-1 / 4.0))
    theta_b = 0.7
    np.testing.assert_allclose(b.adapt["q"], 0.6 * np.linspace(0.5, 1.5, 4) / theta_b)  # threshold units
    (fb,) = [c for c in net.conns if c.name == "fb"]
    assert fb.skip == 2  # the Delay after the current, moved before its synapse
    bias = [c for c in net.conns if c.dst == "b" and c.src != "x"]
    assert len(bias) == 1 and net.pops[bias[0].src].kind == "bias"
    assert net.pops[bias[0].src].latency == b.latency - 1 + 2  # the bias enters the current 2 steps late too
    split = {c.src: c.weight.shape for c in net.conns if c.dst == "c"}
    assert split == {"a": (3, 5), "b": (3, 4)}  # fc's columns, by source population
    (probe,) = [p for p in net.probes if p.output == "both"]
    assert [pop for pop, _ in probe.parts] == ["a", "b"]
    LavaTarget().emit(g, tmp_path)
    desc = json.loads((tmp_path / "network.json").read_text())
    assert [p["population"] for p in desc["outputs"]["both"]["parts"]] == ["a", "b"]
    assert set(desc["populations"]["b"]["adapt"]) == {"a_b", "q"}


def test_an_li_read_by_two_neurons_is_not_a_current():
    g = float_graph()
    g.add("d", P.LIF(tau=5.0, reset="to-value"), "late")
    g.add("out_d", P.Output(), "d")
    assert current_chains(g) == {}


# ---------------------------------------------------------------- on Lava


@needs_lava
@pytest.mark.lava
def test_fixed_pt_refractory_is_bit_identical_and_matters(tmp_path):
    g = fixed_refractory_graph()
    x = spikes(g, T=30, B=2, seed=4, p=0.5)
    ref = interp.run(g, x, record=["n1", "n2"])
    free = interp.run(fixed_refractory_graph((0, 0)), x).outputs
    for k in ("out1", "out2"):
        assert ref.outputs[k].sum() > 0, "a test without spikes proves nothing"
        assert not np.array_equal(free[k], ref.outputs[k]), f"{k}: the refractory period changes no spike"
    got = run_lava(g, x, tmp_path)
    for k in ("out1", "out2"):
        np.testing.assert_array_equal(got[k], ref.outputs[k], err_msg=k)


def quantized_mlp(refractory: tuple[int, int] = (2, 1)) -> Graph:
    """examples/graphs/spiking_mlp (lif1 reset by subtraction, lif2 to 0) through quantize{profile=loihi2},
    which keeps the refractory periods."""
    g = load(GRAPHS / "spiking_mlp.n3ml")
    g.replace("lif1", reset="subtract", refractory=refractory[0])
    g.replace("lif2", reset="to-value", v_reset=0.0, refractory=refractory[1])
    return Quantize(profile="loihi2").apply(g)


@needs_lava
@pytest.mark.lava
def test_quantized_refractory_graph_is_bit_identical_to_the_executor(tmp_path):
    from n3ml.backends.torch import run as torch_run

    g = quantized_mlp()
    assert [g.nodes[n].refractory for n in ("lif1", "lif2")] == [2, 1]
    x = spikes(g, T=25, B=2, seed=5, p=0.5)
    exe = torch_run(g, x).outputs["out"]
    assert exe.sum() > 0 and not np.array_equal(interp.run(quantized_mlp((0, 0)), x).outputs["out"], exe)
    np.testing.assert_array_equal(run_lava(g, x, tmp_path)["out"], exe)


@needs_lava
@pytest.mark.lava
def test_floating_pt_alif_refractory_current_and_concat_identical(tmp_path):
    g = float_graph()
    x = spikes(g, T=30, B=2, seed=2, p=0.4)
    ref = interp.run(g, x).outputs
    for k, other in (("both", float_graph(q=0.0)), ("out", float_graph(refractory=0))):
        assert ref[k].sum() > 0, "a test without spikes proves nothing"
        assert not np.array_equal(interp.run(other, x).outputs[k], ref[k]), f"{k}: adaptation/refractoriness unused"
    got = run_lava(g, x, tmp_path)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
