"""Node counts and synaptic operations, checked against brute force and event counting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n3ml.errors import N3mlError
from n3ml.ir import LIF, AvgPool2d, Conv1d, Conv2d, Dense, Flatten, Graph, Input, Output, SumPool2d
from n3ml.ir import interp
from n3ml.ir.text import load
from n3ml.viz import format_summary, measure_activity, summarize
from n3ml.viz.summary import fanout

ROOT = Path(__file__).parents[2]


def brute_fanout(prim, in_shape) -> np.ndarray:
    """Column sums of the 0/1 connection matrix, built by pushing one-hot inputs through the
    interpreter's own convolution/pooling with |nonzero weights| set to 1."""
    n = int(np.prod(in_shape))
    eye = np.eye(n).reshape(n, *in_shape)
    if isinstance(prim, Conv2d):
        cols = interp.conv2d(eye, (prim.weight != 0).astype(float), None, prim.stride, prim.padding,
                             prim.dilation, prim.groups)
    elif isinstance(prim, Conv1d):
        cols = interp.conv1d(eye, (prim.weight != 0).astype(float), None, prim.stride, prim.padding,
                             prim.dilation, prim.groups)
    else:
        cols = interp.pool2d(eye, SumPool2d(kernel=prim.kernel, stride=prim.stride, padding=prim.padding))
    return cols.reshape(n, -1).astype(bool).sum(axis=1)  # per input element: outputs it reaches


def port(shape):
    from n3ml.ir import PortType
    return PortType(shape=shape)


@pytest.mark.parametrize("stride,padding,dilation,groups", [((1, 1), (0, 0), (1, 1), 1), ((2, 1), (1, 2), (1, 1), 2),
                                                            ((1, 2), (2, 1), (2, 1), 1)])
def test_conv2d_fanout_matches_brute_force(stride, padding, dilation, groups):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 4 // groups, 3, 2)) * (rng.random((4, 4 // groups, 3, 2)) < 0.6)
    prim = Conv2d(weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    t_in = port((4, 7, 6))
    t_out = prim.infer("c", [t_in])
    # with a 0/1 mask, outputs reached == connections, as no tap maps twice onto one output
    np.testing.assert_array_equal(fanout(prim, t_in, t_out), brute_fanout(prim, (4, 7, 6)))


def test_conv1d_and_pool_fanout_match_brute_force():
    rng = np.random.default_rng(4)
    c1 = Conv1d(weight=rng.normal(size=(3, 2, 3)) * (rng.random((3, 2, 3)) < 0.7), stride=2, padding=1)
    t_in = port((2, 9))
    np.testing.assert_array_equal(fanout(c1, t_in, c1.infer("c", [t_in])), brute_fanout(c1, (2, 9)))
    for pool in (SumPool2d(kernel=(2, 2)), AvgPool2d(kernel=(3, 3), stride=(2, 2), padding=(1, 1))):
        t_in = port((2, 6, 6))
        np.testing.assert_array_equal(fanout(pool, t_in, pool.infer("p", [t_in])), brute_fanout(pool, (2, 6, 6)))


def sparse_net() -> Graph:
    rng = np.random.default_rng(5)
    w1 = rng.normal(size=(6, 10)) * (rng.random((6, 10)) < 0.5) * 2
    g = Graph("sparse")
    g.add("x", Input(shape=(10,)))
    g.add("fc1", Dense(weight=w1, bias=np.zeros(6)), "x")
    g.add("lif1", LIF(tau=5.0, theta=np.full(6, 0.5)), "fc1")
    g.add("fc2", Dense(weight=rng.normal(size=(3, 6))), "lif1")
    g.add("lif2", LIF(tau=5.0), "fc2")
    g.add("out", Output(), "lif2")
    return g


def test_counts_per_node():
    g = sparse_net()
    s = summarize(g, rate=0.25)
    rows = {r.name: r for r in s.nodes}
    w1 = g.nodes["fc1"].weight
    assert rows["fc1"].synapses == np.count_nonzero(w1) < w1.size
    assert rows["fc1"].params == w1.size + 6
    assert rows["lif1"].params == 6 and rows["lif1"].neurons == 6 and rows["lif2"].params == 0
    assert rows["fc2"].synapses == 18 and rows["x"].neurons == 0
    assert s.totals["neurons"] == 9 and s.totals["synapses"] == np.count_nonzero(w1) + 18
    assert rows["fc1"].sops == pytest.approx(0.25 * np.count_nonzero(w1)) and rows["fc1"].rate_from == "assumed"
    assert s.totals["sops_per_step"] == pytest.approx(0.25 * s.totals["synapses"])


def test_measured_sops_equal_counted_events(tmp_path):
    g = sparse_net()
    rng = np.random.default_rng(6)
    x = (rng.random((40, 3, 10)) < 0.3).astype(float)
    res = interp.run(g, x, record=["x", "lif1"])
    s = summarize(g, res)
    rows = {r.name: r for r in s.nodes}
    # every input spike along every nonzero weight is one operation; average over steps and samples
    nz1 = np.count_nonzero(g.nodes["fc1"].weight, axis=0)
    events1 = (res.states["x"] * nz1).sum() / (40 * 3)
    events2 = (res.states["lif1"] * 3).sum() / (40 * 3)
    assert rows["fc1"].sops == pytest.approx(events1) and rows["fc2"].sops == pytest.approx(events2)
    assert rows["fc1"].rate_from == rows["fc2"].rate_from == "measured"
    assert rows["lif1"].activity == pytest.approx(res.states["lif1"].mean())
    assert rows["lif2"].activity == pytest.approx(res.outputs["out"].mean())  # through the Output node
    # the same from the .npz layout
    np.savez(tmp_path / "r.npz", **res.to_npz_dict())
    s2 = summarize(g, str(tmp_path / "r.npz"))
    assert s2.totals["sops_per_step"] == pytest.approx(events1 + events2)


def test_partial_measurement_uses_the_assumed_rate_or_says_what_is_missing():
    g = sparse_net()
    res = interp.run(g, np.ones((5, 1, 10)), record=["x"])
    s = summarize(g, res)
    assert "sops_per_step" not in s.totals and "fc2" in s.rate_note
    s = summarize(g, res, rate=0.5)
    rows = {r.name: r for r in s.nodes}
    assert rows["fc1"].rate_from == "measured" and rows["fc2"].rate_from == "assumed"
    assert rows["fc2"].sops == pytest.approx(0.5 * 18)
    with pytest.raises(N3mlError, match=r"\[0, 1\]"):
        summarize(g, rate=2.0)


def test_rates_are_traced_through_flatten():
    g = load(str(ROOT / "examples/graphs/spiking_cnn.n3ml"))
    rec = measure_activity(g, 12, seed=2)
    s = summarize(g, rec)
    rows = {r.name: r for r in s.nodes}
    assert all(rows[n].rate_from == "measured" for n in ("conv1", "pool1", "fc"))
    spikes = rec.signals["if2"].reshape(12, 1, -1)
    nz = np.count_nonzero(g.nodes["fc"].weight, axis=0)
    assert rows["fc"].sops == pytest.approx((spikes * nz).sum() / 12)


def test_format_has_a_row_per_node_and_totals():
    g = load(str(ROOT / "examples/graphs/spiking_mlp.n3ml"))
    text = format_summary(summarize(g))
    lines = text.splitlines()
    for name, prim in g.nodes.items():
        assert any(ln.split()[:2] == [name, prim.op] for ln in lines)
    total = [ln for ln in lines if ln.startswith("total")][0].split()
    n_syn = sum(np.count_nonzero(p.weight) for p in g.nodes.values() if isinstance(p, Dense))
    assert str(n_syn) in total and "assumed rate of 0.1" in text


def test_flatten_has_no_connections():
    g = Graph("f")
    g.add("x", Input(shape=(2, 3)))
    g.add("flat", Flatten(), "x")
    g.add("out", Output(), "flat")
    s = summarize(g)
    assert s.totals["synapses"] == 0 and s.totals["sops_per_step"] == 0
