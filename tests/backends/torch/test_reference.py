"""The executor computes what the reference interpreter computes (docs/semantics.md)."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from n3ml.ir import infer_types
from n3ml.ir import (ALIF, IF, LI, LIF, Add, AvgPool2d, BatchNorm, Concat, ConstantCurrent, Conv1d, Conv2d, CubaLIF,
                     Delay, Dense, Flatten, Graph, Input, Integrator, Latency, MaxPool2d, Output, PoissonRate, ReLU,
                     Scale, Softmax, SumPool2d)
from n3ml.ir.text import load

from ...strategies import conv_graphs, fixed_graphs, mlp_graphs, random_inputs
from .helpers import assert_same_as_reference

EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "graphs").glob("*.n3ml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_graphs_match_reference(path):
    g = load(path)
    inputs = random_inputs(g, 60, 3, seed=7)
    ref, _ = assert_same_as_reference(g, inputs, record=list(g.nodes))
    assert sum(float(v.sum()) for v in ref.outputs.values()) > 0  # the comparison is not between silences


def test_quantized_example_is_bit_identical_in_fixed_point():
    g = load(EXAMPLES[[p.stem for p in EXAMPLES].index("quantized")])
    ref, got = assert_same_as_reference(g, random_inputs(g, 80, 4, seed=3), record=["n1", "n2"])
    assert got.outputs["out"].dtype == np.int64 and ref.outputs["out"].sum() > 0
    assert np.array_equal(got.states["n1.i"], ref.states["n1.i"])


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(mlp_graphs(), st.integers(1, 3), st.integers(0, 2**16))
def test_random_mlp_graphs_match_reference(g, batch, seed):
    assert_same_as_reference(g, random_inputs(g, 25, batch, seed))


@FAST
@given(mlp_graphs(max_layers=2), st.integers(0, 2**16))
def test_random_graphs_recorded_states_match_reference(g, seed):
    assert_same_as_reference(g, random_inputs(g, 15, 2, seed), record=list(g.nodes))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_graphs(), st.integers(0, 2**16))
def test_random_conv_graphs_match_reference(g, seed):
    assert_same_as_reference(g, random_inputs(g, 12, 2, seed))


@FAST
@given(fixed_graphs(), st.integers(0, 2**16))
def test_random_fixed_point_graphs_are_bit_identical(g, seed):
    assert_same_as_reference(g, random_inputs(g, 30, 2, seed), record=[n for n in g.nodes if n.startswith("n")])


def _kitchen_sink():
    rng = np.random.default_rng(5)
    g = Graph(name="sink", dt=0.5, scheme="euler")
    g.add("img", Input(shape=(2, 6, 6), kind="analog"))
    g.add("vec", Input(shape=(6,), kind="analog"))
    g.add("poi", PoissonRate(gain=0.8, seed=11), "img")
    g.add("lat", Latency(window=4, x_min=0.1), "img")
    g.add("both", Add(), "poi", "lat")
    g.add("conv", Conv2d(weight=rng.normal(0.2, 0.5, (4, 1, 3, 3)), bias=rng.normal(0, .1, 4), stride=(1, 2),
                         padding=(1, 1), dilation=(2, 1), groups=2), "both")
    g.add("bn", BatchNorm(mean=rng.normal(0, .1, 4), var=rng.uniform(.5, 2, 4), gamma=rng.uniform(.5, 1.5, 4),
                          beta=rng.normal(0, .1, 4)), "conv")
    g.add("relu", ReLU(), "bn")
    g.add("ifn", IF(theta=0.7, reset="to-value", v_reset=-0.1, refractory=2), "relu")
    g.add("mp", MaxPool2d(kernel=(2, 2), stride=(1, 1), padding=(1, 1)), "bn")  # analog, negative: -inf padding
    g.add("sp", SumPool2d(kernel=(2, 2), padding=(1, 1)), "ifn")
    g.add("ap", AvgPool2d(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), "ifn")
    g.add("alif", ALIF(tau=4.0, tau_adapt=20.0, q=0.2, theta=0.5, refractory=1), "sp")
    g.add("f1", Flatten(), "alif")
    g.add("f2", Flatten(), "ap")
    g.add("f3", Flatten(), "mp")
    g.add("cat", Concat(axis=0), "f1", "f2", "f3")
    n = infer_types(g)["cat"].shape[0]
    g.add("fc", Dense(weight=rng.normal(0.05, 0.1, (5, n))), "cat")
    g.add("cc", ConstantCurrent(scale=0.5, offset=0.1), "vec")
    g.add("seq", Input(shape=(2, 9), kind="spike"))
    g.add("c1", Conv1d(weight=rng.normal(0.5, 0.3, (4, 1, 2)), bias=rng.normal(0, .1, 4), padding=1, stride=2,
                       dilation=2, groups=2), "seq")
    g.add("if1d", IF(theta=0.4, reset="subtract"), "c1")
    g.add("sc", Scale(factor=rng.uniform(0.5, 1.5, 6)), "cc")
    g.add("fcv", Dense(weight=rng.normal(0.3, 0.3, (5, 6))), "sc")
    g.add("sum", Add(), "fc", "fcv", "rec")
    g.add("cuba", CubaLIF(tau_syn=3.0, tau_mem=rng.uniform(4, 8, 5), r=2.0, v_leak=0.05, refractory=1), "sum")
    g.add("d0", Delay(steps=0), "cuba")
    g.add("d2", Delay(steps=2), "d0")
    g.add("rec", Dense(weight=rng.normal(0, 0.4, (5, 5))), "d2")
    g.add("li", LI(tau=3.0, v_leak=0.1, v_init=0.2), "cuba")
    g.add("integ", Integrator(r=0.3, v_init=-0.1), "cuba")
    g.add("lif", LIF(tau=5.0, r=2.0, theta=rng.uniform(0.3, 0.6, 5), reset="none"), "fcv")
    g.add("late", Delay(steps=50), "lif")
    g.add("sm", Softmax(axis=0), "li")
    for o in ("sm", "integ", "late", "cuba", "mp", "if1d"):
        g.add(f"out_{o}", Output(), o)
    return g


def test_every_primitive_matches_reference():
    g = _kitchen_sink()
    T = 24
    rng = np.random.default_rng(0)
    inputs = {"img": rng.random((T, 2, 2, 6, 6)), "vec": rng.normal(0.5, 1, (T, 2, 6)),
              "seq": (rng.random((T, 2, 2, 9)) < 0.5).astype(float)}
    ref, _ = assert_same_as_reference(g, inputs, record=list(g.nodes))
    assert ref.outputs["out_cuba"].sum() > 0 and ref.states["ifn"].sum() > 0 and ref.states["alif"].sum() > 0
    assert ref.outputs["out_if1d"].sum() > 0 and ref.states["lat"].sum() > 0 and ref.states["poi"].sum() > 0
