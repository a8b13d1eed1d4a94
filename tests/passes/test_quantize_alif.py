"""quantize on adaptive neurons: an ALIF (Norse's LSNN: its LI current read through a Delay) becomes one
FixedCubaLIF with an integer adaptive threshold (db, q); `delay-before-current` moves the Delay first, exactly.

The LSNN is rebuilt as Norse's LSNNRecurrentCell traces (norse/torch/module/lsnn.py: input and recurrent
Linear, the current i integrated into v with the step before's value, adaptive threshold b, reset to 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.errors import UnsupportedError
from n3ml.ir import interp, prims as P
from n3ml.ir.graph import Edge
from n3ml.ir.text import parse
from n3ml.passes import PassManager, parse_pipeline
from n3ml.passes.current_delay import move_current_delays
from n3ml.passes.quantize import Quantize

rng = np.random.default_rng(3)
W_IN = np.round(rng.normal(0.6, 0.5, (5, 6)), 3)
W_REC = np.round(rng.normal(0.0, 0.4, (5, 5)), 3)


def _mat(w: np.ndarray) -> str:
    return f"tensor<f64>({w.shape[0]}, {w.shape[1]})[{', '.join(repr(float(v)) for v in w.reshape(-1))}]"


def lsnn(q: float = 1.8, bias: str = "") -> str:
    return f"""n3ml 1
graph lsnn(dt=1.0ms, scheme=exact) {{
  x = Input(shape=(6,), kind=spike)
  w_in = Dense(x, weight={_mat(W_IN)}{bias})
  w_rec = Dense(prev, weight={_mat(W_REC)})
  sum = Add(w_in, w_rec)
  syn = LI(sum, tau=5.0ms, r=5.0)
  syn_prev = Delay(syn, steps=1)
  lsnn = ALIF(syn_prev, theta=0.5, reset=to-value, tau=10.0ms, tau_adapt=20.0ms, q={q})
  prev = Delay(lsnn, steps=1)
  out = Output(lsnn)
}}
"""


def spikes(T: int, B: int, seed: int = 0, p: float = 0.4) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, 6)) < p).astype(float)


def test_delay_before_current_before_after_and_exact():
    g = parse(lsnn())
    after = PassManager(parse_pipeline("delay-before-current")).run(g, None)
    assert after.inputs_of("lsnn") == ["syn"] and "syn_prev" not in after.nodes
    (d_in,) = after.inputs_of("w_in")
    assert isinstance(after.nodes[d_in], P.Delay) and after.nodes[d_in].steps == 1 and after.inputs_of(d_in) == ["x"]
    assert after.inputs_of("w_rec") == ["prev"] and after.nodes["prev"].steps == 2  # Delay(1) then Delay(1)
    x = spikes(T=60, B=3)
    a, b = interp.run(g, x, record=["lsnn"]), interp.run(after, x, record=["lsnn"])
    assert a.outputs["out"].sum() > 0
    np.testing.assert_array_equal(a.outputs["out"], b.outputs["out"])  # bit for bit: the same operations
    np.testing.assert_array_equal(a.states["lsnn.v"], b.states["lsnn.v"])


def test_delay_before_current_leaves_a_biased_current_and_quantize_refuses_it_by_name():
    g = parse(lsnn(bias=", bias=tensor<f64>(5)[0.1, 0, 0, 0, 0]"))
    assert move_current_delays(g) is g  # not exact: left as it is
    with pytest.raises(UnsupportedError, match=r"node `lsnn` \(ALIF\) reads its current `syn` through the Delay "
                                               r"`syn_prev`.*`w_in` has one"):
        Quantize(profile="loihi2").apply(g)


def test_quantized_lsnn_is_one_adaptive_neuron_and_tracks_the_float_graph():
    g = parse(lsnn())
    ctx: dict = {}
    q = Quantize(profile="loihi2").apply(g, ctx)
    q.verify()
    n = q.nodes["lsnn"]
    assert isinstance(n, P.FixedCubaLIF) and "syn" not in q.nodes
    rep = ctx["report"]["quantize"]["layers"]["lsnn"]
    # db = round(4096 (1 - e^-1/20)) = 200; q in the units of v: q / theta * theta_int; du from the LI's tau
    assert (n.db, rep["db"]) == (200, 200) and n.du == round(4096 * (1 - np.exp(-1 / 5)))
    assert n.q == round(1.8 / 0.5 * n.theta) and rep["q"] == n.q and rep["adaptation_decay_error"] < 1e-3
    x = spikes(T=300, B=4, seed=1)
    a, b = interp.run(g, x).outputs["out"], interp.run(q, x).outputs["out"]
    agree, rate_err = float(np.mean(a == b)), abs(a.mean() - b.mean()) / a.mean()
    assert a.mean() > 0.02 and agree > 0.9 and rate_err < 0.1, (agree, rate_err)
    # the adaptation matters, and quantize keeps it: without it the float graph spikes far more
    plain = interp.run(parse(lsnn(q=0.0)), x).outputs["out"]
    assert plain.mean() > 1.5 * a.mean()
    assert Quantize(profile="loihi2").apply(parse(lsnn(q=0.0))).nodes["lsnn"].q == 0


def test_an_alif_without_a_current_quantizes_with_its_adaptation():
    g = parse(lsnn())
    g.remove("syn")
    g.remove("syn_prev")
    g.edges.append(Edge("sum", "lsnn", 0))
    q = Quantize(profile="int8").apply(g)
    assert q.nodes["lsnn"].q > 0 and q.nodes["lsnn"].du == 4096  # a delta synapse
    x = spikes(T=200, B=2, seed=2)
    a, b = interp.run(g, x).outputs["out"], interp.run(q, x).outputs["out"]
    assert a.sum() > 0 and float(np.mean(a == b)) > 0.9
