"""A fixed-point adaptive threshold on Lava fixed_pt (n3ml's N3mlLIF): FixedCubaLIF's db and q, bit for bit.

The hand-built graph has adaptive neurons under both resets the Loihi 2 profile takes (to 0 and by subtraction
of the adapted threshold), per-neuron jumps and a refractory period; the same graph with q = 0 spikes
differently, so the adaptation is shown to matter. Lava's spikes must equal the reference interpreter's and
the torch executor's. The quantized LSNN (an ALIF reading its LI current through a Delay, as Norse traces
its LSNNCell) and the corpus's Norse LSNN model (through `n3ml verify`) run the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.backends.lava.lower import lower
from n3ml.backends.torch import run as torch_run
from n3ml.ir import Graph, interp, prims as P
from n3ml.passes.quantize import Quantize

from .test_lava import needs_lava, run_lava, spikes

ONE = 1 << 12  # Loihi 2's decay unit (FixedCubaLIF decay_bits 12)


def adaptive_graph(q: tuple = (64 * 25, np.array([64 * 10, 64 * 40, 0, 64 * 25])), refractory: int = 1) -> Graph:
    """x -> fc1 -> n1 (reset to 0, adaptive) -> fc2 -> n2 (reset by subtraction, per-neuron q, refractory);
    integer weights and Loihi 2's fields."""
    rng = np.random.default_rng(11)
    g = Graph(name="fixed_alif")
    g.add("x", P.Input(shape=(8,)))
    g.add("fc1", P.Dense(weight=rng.integers(-20, 40, (6, 8)).astype(np.int64)), "x")
    g.add("n1", P.FixedCubaLIF(du=1500, dv=300, theta=64 * 40, reset="to-value", db=300, q=q[0]), "fc1")
    g.add("fc2", P.Dense(weight=rng.integers(-30, 60, (4, 6)).astype(np.int64)), "n1")
    g.add("n2", P.FixedCubaLIF(du=ONE, dv=500, bias=200, theta=64 * 50, reset="subtract", db=800, q=q[1],
                               refractory=refractory), "fc2")
    g.add("out1", P.Output(), "n1")
    g.add("out2", P.Output(), "n2")
    return g


def lsnn_graph(q: float = 1.8) -> Graph:
    """Norse's LSNNRecurrentCell as it traces (rebuilt from norse/torch/module/lsnn.py): input and recurrent
    Dense -> Add -> LI current (tau_syn) -> Delay(1) -> ALIF (reset to 0), its spikes back through Delay(1)."""
    rng = np.random.default_rng(3)
    g = Graph(name="lsnn")
    g.add("x", P.Input(shape=(6,)))
    g.add("w_in", P.Dense(weight=rng.normal(0.6, 0.5, (5, 6))), "x")
    g.add("w_rec", P.Dense(weight=rng.normal(0.0, 0.4, (5, 5))), "prev")
    g.add("sum", P.Add(), "w_in", "w_rec")
    g.add("syn", P.LI(tau=5.0, r=5.0), "sum")
    g.add("syn_prev", P.Delay(steps=1), "syn")
    g.add("lsnn", P.ALIF(tau=10.0, tau_adapt=20.0, q=q, theta=0.5, reset="to-value"), "syn_prev")
    g.add("prev", P.Delay(steps=1), "lsnn")
    g.add("out", P.Output(), "lsnn")
    return g


def test_torch_executor_runs_the_adaptation_as_the_interpreter():
    """(no Lava needed) the executor's per-step path is n3ml.ir.neurons' step: the same integers."""
    g = adaptive_graph()
    x = spikes(g, T=40, B=2, seed=4, p=0.6)
    ref = interp.run(g, x, record=["n2"])
    exe = torch_run(g, x, record=["n2"])
    for k in ("out1", "out2"):
        np.testing.assert_array_equal(exe.outputs[k], ref.outputs[k], err_msg=k)
    np.testing.assert_array_equal(exe.states["n2.v"], ref.states["n2.v"])


def test_adaptive_fixed_neurons_lower_to_n3mllif_with_integer_adaptation():
    net = lower(adaptive_graph())
    n1, n2 = net.pops["n1"], net.pops["n2"]
    assert n1.process == n2.process == "N3mlLIF"
    assert n1.adapt == {"keep_b": ONE - 300, "q": 64 * 25}
    assert n2.adapt["keep_b"] == ONE - 800 and n2.adapt["q"].tolist() == [640, 2560, 0, 1600]
    assert lower(adaptive_graph(q=(0, 0), refractory=0)).pops["n1"].process == "LIF"  # q = 0: Lava's own LIF


def test_netx_refuses_an_adaptive_threshold():
    from n3ml.backends.lava import netx
    from n3ml.errors import UnsupportedError

    g = adaptive_graph()
    with pytest.raises(UnsupportedError, match=r"`n1`: netx's CUBA neurons have a fixed threshold; found threshold "
                                               r"adaptation q=1600"):
        netx._neuron("n1", g.nodes["n1"])


@needs_lava
@pytest.mark.lava
def test_fixed_pt_adaptation_is_bit_identical_and_matters(tmp_path):
    g = adaptive_graph()
    x = spikes(g, T=40, B=2, seed=4, p=0.6)
    ref = interp.run(g, x).outputs
    exe = torch_run(g, x).outputs
    free = interp.run(adaptive_graph(q=(0, 0)), x).outputs
    for k in ("out1", "out2"):
        assert ref[k].sum() > 0, "a test without spikes proves nothing"
        assert not np.array_equal(free[k], ref[k]), f"{k}: the adaptation changes no spike"
        np.testing.assert_array_equal(exe[k], ref[k], err_msg=f"{k}: torch executor")
    got = run_lava(g, x, tmp_path)
    for k in ("out1", "out2"):
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


@needs_lava
@pytest.mark.lava
def test_quantized_lsnn_is_bit_identical_to_the_executor(tmp_path):
    g = Quantize(profile="loihi2").apply(lsnn_graph())
    assert g.nodes["lsnn"].q > 0 and "syn" not in g.nodes  # one adaptive neuron, the LI its current
    x = spikes(g, T=40, B=2, seed=6, p=0.5)
    exe = torch_run(g, x).outputs["out"]
    assert exe.sum() > 0
    assert not np.array_equal(torch_run(Quantize(profile="loihi2").apply(lsnn_graph(q=0.0)), x).outputs["out"], exe)
    np.testing.assert_array_equal(run_lava(g, x, tmp_path)["out"], exe)
