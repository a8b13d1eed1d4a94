"""quantize{profile=loihi2}: neuron biases in Loihi 2's format, a 13-bit signed mantissa << exponent 0..7.

A graded analog input (input_scale) divides the weights by the scale, so the threshold that best fits the
weights can make a Dense bias of 5e5..1.6e6 state units (snnTorch's and SpikingJelly's models with biased
first layers): more than 4095 << 7. The threshold is capped so every bias fits, and the bias is rounded to
the mantissa << exponent the hardware holds, its error reported.
"""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.backends.lava.lower import lower
from n3ml.errors import UnsupportedError
from n3ml.ir import Graph, interp, prims as P
from n3ml.passes.quantize import PROFILES, Quantize, _round_bias

LOIHI2 = PROFILES["loihi2"]


def test_bias_rounds_to_mantissa_shifted_by_the_smallest_exponent():
    b = np.array([100.4, 5001.0, -300000.7, 524100.0, 0.3])
    got, exp = _round_bias(b, LOIHI2)
    # 100: e=0; 5001 / 2 = 2500.5 -> 2500 (half to even) << 1; -300000.7 / 128 = -2343.76 -> -2344 << 7
    # (/64 = -4687.5 is beyond 4095); 524100 / 128 = 4094.53 -> 4095 << 7; 0.3 -> 0
    np.testing.assert_array_equal(got, [100, 5000, -300032, 524160, 0])
    np.testing.assert_array_equal(exp, [0, 1, 7, 7, 0])
    mant = got >> exp
    assert np.all(np.abs(mant) <= 4095) and np.all(mant << exp == got)
    with pytest.raises(UnsupportedError, match=r"node `n`: neuron bias 5.243e\+05 does not fit a 13-bit "
                       r"mantissa with exponent <= 7"):
        _round_bias(np.array([524300.0]), LOIHI2, "n")  # 4095.9 << 7


def _biased(bias: float) -> Graph:
    """x (analog) -> Dense(small weights, a large bias) -> LIF: at input_scale=16 the best threshold for
    the weights alone puts the bias far beyond 4095 << 7."""
    g = Graph(name="biased")
    g.add("x", P.Input(shape=(4,), kind="analog"))
    w = np.array([[0.02, -0.013, 0.017, 0.011], [0.015, 0.02, -0.01, 0.012]])
    g.add("fc", P.Dense(weight=w, bias=np.array([bias, -0.5 * bias])), "x")
    g.add("n", P.LIF(tau=5.0, r=5.0, theta=1.0, reset="to-value"), "fc")
    g.add("out", P.Output(), "n")
    return g


def test_large_bias_caps_the_threshold_and_fits_the_hardware_format():
    g = _biased(0.3)
    ctx = {}
    q = Quantize(profile="loihi2", input_scale=16).apply(g, ctx)
    n = q.nodes["n"]
    rep = ctx["report"]["quantize"]["layers"]["n"]
    bias = np.asarray(n.bias, np.int64)
    # the float bias per step (r g b = 5 * (1 - e^-1/5) * b of theta) times the integer threshold
    gain = 5.0 * (1 - np.exp(-1 / 5.0))
    want = gain * np.array([0.3, -0.15]) * n.theta
    assert np.abs(want).max() > 4095 * 64  # large enough to need exponent 7
    assert np.abs(bias).max() <= 4095 << 7 and rep["bias_exp"] == 7
    # held as mantissa << exponent, each neuron the smallest exponent its bias needs (half the bias: one less)
    np.testing.assert_array_equal(bias % [1 << 7, 1 << 6], 0)
    assert np.abs(bias[1]) > 4095 << 5
    # the reported error is the rounding error, in units of the threshold
    assert rep["bias_error"] == pytest.approx(np.abs(bias - want).max() / n.theta, rel=1e-6)
    assert rep["bias_error"] <= 64 / n.theta
    # the Lava lowering takes the bias as it is: mantissa and exponent within its registers
    prm = lower(q).pops["n"].params
    mant, exp = np.asarray(prm["bias_mant"]), np.asarray(prm["bias_exp"])
    assert np.all(np.abs(mant) <= 4095) and np.all(exp <= 7)
    np.testing.assert_array_equal(mant * 2**exp, bias)


def test_capped_graph_agrees_with_the_float_graph():
    g = _biased(0.3)
    q = Quantize(profile="loihi2", input_scale=16).apply(g)
    xs = np.random.default_rng(3).integers(0, 17, (40, 8, 4)) / 16.0
    a = interp.run(g, xs).outputs["out"]
    b = interp.run(q, np.round(xs * 16)).outputs["out"]
    assert a.sum() > 20 and float(np.mean(a == b)) >= 0.99


def test_bias_too_large_for_any_threshold_is_refused_naming_the_node():
    # bias / theta of 2e5 per step: even theta = 64 (vth 1) would need a bias of 1.3e7 > 4095 << 7
    with pytest.raises(UnsupportedError, match=r"node `n`: no threshold keeps its bias"):
        Quantize(profile="loihi2", input_scale=16).apply(_biased(1e5))


SYNAPSE_FILTER = """n3ml 1
graph sf(dt=1.0ms, scheme=euler) {
  x = Input(shape=(3,))
  fc = Dense(x, weight=tensor<f64>(2, 3)[0.5, 0.9, 0.3, 0.7, 0.2, 0.8])
  sn = IF(fc, theta=1.0, reset=to-value)
  syn_prev = Delay(syn)
  syn_leak = Scale(syn_prev, factor=0.25)
  syn_block = Scale(sn, factor=-1e19)
  syn_gate = Add(syn_leak, syn_block)
  syn_hold = ReLU(syn_gate)
  syn_neg = Scale(syn_hold, factor=-1.0)
  syn = Add(syn_prev, syn_neg, sn)
  out = Output(syn)
}
"""


def test_spike_gated_decay_of_the_old_traced_form_quantizes():
    """SpikingJelly's SynapseFilter (i = i - (1 - s) i / tau + s) as n3ml's frontend traced it before the
    SynapseFilter primitive: quantize's canonical form fuses it (`fuse-synapse-filter`) into a
    FixedSynapseFilter."""
    from n3ml.ir.text import parse
    from n3ml.passes import PassManager

    g = parse(SYNAPSE_FILTER)
    # the graph is what SynapseFilter computes: no decay on a spike step, decay by 3/4 otherwise
    x = np.zeros((4, 1, 3))
    x[0] = 1.0  # one spike of both IFs at step 0, then silence
    y = interp.run(g, x).outputs["out"][:, 0, 0]
    np.testing.assert_allclose(y, [1.0, 0.75, 0.5625, 0.421875])
    q = PassManager.from_string("quantize{profile=loihi2,readout=voltage}").run(g)
    assert q.nodes["syn"].op == "FixedSynapseFilter" and q.nodes["syn"].d == 1024


def test_lava_legalization_names_a_spike_gated_decay_it_cannot_fuse():
    from n3ml.ir.text import parse
    from n3ml.passes.legalize import illegal_nodes
    from n3ml.registry import TARGETS, lookup

    g = parse(SYNAPSE_FILTER.replace("factor=-1e19", "factor=-1000.0"))  # a gate a long run would reach
    lines = illegal_nodes(g, lookup(TARGETS, "lava", "target")().legality)
    leak = next(line for line in lines if line.startswith("node `syn_leak` (Scale)"))
    assert "decays only on steps without an input spike" in leak and "`syn_hold`" in leak
    assert "fuse-synapse-filter" in leak and "not of that form" in leak
    assert "-p fold-scales" not in leak  # no pass would legalize it
