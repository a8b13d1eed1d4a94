"""Interpreter neuron traces against hand-computed values (docs/semantics.md §3, §5)."""

import math

import numpy as np
import pytest

from n3ml.ir import ALIF, IF, LI, LIF, CubaLIF, Dense, FixedCubaLIF, Graph, Input, Integrator, Output
from n3ml.ir.interp import run

HALF_TAU = {"exact": 1 / math.log(2), "euler": 2.0}  # both give a = g = 0.5 at dt = 1 ms


def trace(prim, inputs, scheme="exact", dt=1.0, kind="analog"):
    g = Graph(dt=dt, scheme=scheme)
    g.add("x", Input(shape=(1,), kind=kind))
    src = "x"
    if isinstance(prim, FixedCubaLIF):  # integer input through an integer identity synapse
        g.add("w", Dense(weight=np.ones((1, 1), np.int64)), "x")
        src = "w"
    g.add("n", prim, src)
    g.add("out", Output(), "n")
    x = np.asarray(inputs, float).reshape(-1, 1, 1)
    r = run(g, x, record=["n"])
    return r.outputs["out"][:, 0, 0], r.states["n.v"][:, 0, 0], r.states


def test_if_subtract_trace():
    s, v, _ = trace(IF(theta=1.0), [0.375] * 6)  # binary fractions: exact arithmetic
    assert s.tolist() == [0, 0, 1, 0, 0, 1]
    assert v.tolist() == [0.375, 0.75, 0.125, 0.5, 0.875, 0.25]
    s, v, _ = trace(IF(theta=1.0), [0.5, 0.5, 0.5])
    assert s.tolist() == [0, 0, 1]  # v == theta does not spike: the threshold test is strict


@pytest.mark.parametrize("scheme", ["exact", "euler"])
@pytest.mark.parametrize("reset,spikes,volts", [
    ("subtract", [0, 0, 1, 0, 0], [0.6, 0.9, 0.05, 0.625, 0.9125]),
    ("to-value", [0, 0, 1, 0, 0], [0.6, 0.9, 0.0, 0.6, 0.9]),
    ("none", [0, 0, 1, 1, 1], [0.6, 0.9, 1.05, 1.125, 1.1625]),
])
def test_lif_reset_modes(scheme, reset, spikes, volts):
    lif = LIF(tau=HALF_TAU[scheme], r=2.0, theta=1.0, reset=reset)
    s, v, _ = trace(lif, [0.6] * 5, scheme)
    assert s.tolist() == spikes
    assert v == pytest.approx(volts, abs=1e-12)


@pytest.mark.parametrize("scheme", ["exact", "euler"])
def test_lif_refractory_and_leak(scheme):
    lif = LIF(tau=HALF_TAU[scheme], r=2.0, theta=1.0, reset="to-value", v_reset=-0.1, refractory=1, v_leak=0.0)
    s, v, _ = trace(lif, [0.6, 0.6, 0.6, 0.6, 0.6, 0.0], scheme)
    assert s.tolist() == [0, 0, 1, 0, 0, 0]
    # spike at 2 -> v_reset; step 3 refractory (held); step 4 integrates from -0.1
    assert v == pytest.approx([0.6, 0.9, -0.1, -0.1, 0.55, 0.275], abs=1e-12)
    s, v, _ = trace(lif.__class__(**{**lif.params(), "refractory": 2}), [0.6] * 6, scheme)
    assert s.tolist() == [0, 0, 1, 0, 0, 0] and v[3] == v[4] == -0.1


def test_lif_leak_towards_v_leak():
    lif = LIF(tau=HALF_TAU["euler"], v_leak=0.4, theta=10.0, v_init=0.0)
    _, v, _ = trace(lif, [0.0] * 3, "euler")
    assert v == pytest.approx([0.2, 0.3, 0.35])


@pytest.mark.parametrize("scheme", ["exact", "euler"])
def test_cubalif_current_enters_same_step_and_strict_threshold(scheme):
    n = CubaLIF(tau_syn=HALF_TAU[scheme], tau_mem=HALF_TAU[scheme], r=2.0, theta=1.0)
    s, v, st = trace(n, [1.0, 0, 0, 0], scheme)
    assert st["n.i"][:, 0, 0] == pytest.approx([1.0, 0.5, 0.25, 0.125])
    assert v == pytest.approx([1.0, 1.0, 0.75, 0.5])  # v == theta never spikes
    assert s.tolist() == [0, 0, 0, 0]
    s, v, _ = trace(n, [1.1, 0, 0, 0], scheme)
    assert s.tolist() == [1, 0, 0, 0] and v[0] == pytest.approx(0.1)


@pytest.mark.parametrize("scheme", ["exact", "euler"])
def test_alif_threshold_adapts(scheme):
    n = ALIF(tau=HALF_TAU[scheme], tau_adapt=HALF_TAU[scheme], r=2.0, theta=1.0, q=0.5)
    s, v, st = trace(n, [1.2] * 4, scheme)
    assert s.tolist() == [1, 1, 0, 1]
    assert v == pytest.approx([0.2, 0.05, 1.225, 1.8125 - 1.1875])
    assert st["n.b"][:, 0, 0] == pytest.approx([0.5, 0.75, 0.375, 0.6875])


@pytest.mark.parametrize("scheme", ["exact", "euler"])
def test_li_and_integrator(scheme):
    y, _, _ = trace(LI(tau=HALF_TAU[scheme], r=2.0), [1.0, 1.0, 0.0], scheme)
    assert y == pytest.approx([1.0, 1.5, 0.75])
    y, _, _ = trace(Integrator(r=0.5), [1.0, 1.0, -3.0], scheme)
    assert y == pytest.approx([0.5, 1.0, -0.5])


def test_decay_factors_per_scheme():
    from n3ml.ir import decay, gain

    assert decay(10.0, 1.0, "exact") == pytest.approx(math.exp(-0.1))
    assert gain(10.0, 1.0, "exact") == pytest.approx(1 - math.exp(-0.1))
    assert decay(10.0, 1.0, "euler") == pytest.approx(0.9)
    assert gain(10.0, 1.0, "euler") == pytest.approx(0.1)


def test_fixed_point_neuron_truncates_wraps_and_saturates():
    n = FixedCubaLIF(du=1024, dv=2048, theta=1000, reset="to-value", state_bits=24)
    s, v, st = trace(n, [3, 0, -3, 0], kind="analog")
    u = st["n.i"][:, 0, 0].tolist()
    # u0 = 3<<6 = 192; u1 = trunc(192*3072/4096) = 144; u2 = 108 - 192 = -84; u3 = trunc(-84*0.75) = -63
    assert u == [192, 144, -84, -63]
    # v0 = 192; v1 = 96 + 144 = 240; v2 = 120 - 84 = 36; v3 = 18 - 63 = -45
    assert v.tolist() == [192, 240, 36, -45]
    assert s.tolist() == [0, 0, 0, 0]
    # saturation of v and wrap of u in a 12-bit state (M = 2048)
    n = FixedCubaLIF(du=4096, dv=0, theta=2047, reset="none", state_bits=12, input_shift=0)
    s, v, st = trace(n, [2047, 2, 1], kind="analog")
    assert st["n.i"][:, 0, 0].tolist() == [2047, 2, 1]
    assert v.tolist() == [2047, 2047, 2047]  # saturates at M - 1
    n = FixedCubaLIF(du=0, dv=0, theta=2047, reset="none", state_bits=12, input_shift=0)
    _, _, st = trace(n, [2047, 2, 1], kind="analog")
    assert st["n.i"][:, 0, 0].tolist() == [2047, 2049 - 4096, 2050 - 4096]  # wraps into (-M, M]


def test_fixed_point_adaptive_threshold_by_hand():
    # b' = trunc(b (4096 - 1024) / 4096); spike if v* > 100 + b'; reset to 0; b = b' + 40 s
    n = FixedCubaLIF(du=4096, dv=2048, theta=100, reset="to-value", input_shift=0, db=1024, q=40)
    s, v, _ = trace(n, [150] * 5, kind="analog")
    # t0: v* 150 > 100 + 0, b = 40; t1: v* 150 > 100 + 30, b = 70; t2: v* 150 <= 100 + 52 (b = 52);
    # t3: v* 75 + 150 = 225 > 100 + 39, b = 79; t4: v* 150 <= 100 + 59
    assert s.tolist() == [1, 1, 0, 1, 0]
    assert v.tolist() == [0, 0, 150, 0, 150]
    plain = FixedCubaLIF(du=4096, dv=2048, theta=100, reset="to-value", input_shift=0, db=1024)  # q = 0
    assert trace(plain, [150] * 5, kind="analog")[0].tolist() == [1] * 5
    # subtract removes the adapted threshold; b rounds toward zero when negative (q < 0 lowers the threshold)
    n = FixedCubaLIF(du=4096, dv=0, theta=100, reset="subtract", input_shift=0, db=2048, q=-30)
    s, v, _ = trace(n, [120, 0, 60, 0], kind="analog")
    # t0: 120 > 100: v = 20, b = -30; t1: b' = -15, 20 <= 85; t2: b' = trunc(-7.5) = -7, 80 <= 93;
    # t3: b' = trunc(-3.5) = -3, 80 <= 97
    assert s.tolist() == [1, 0, 0, 0] and v.tolist() == [20, 20, 80, 80]


def test_fixed_point_adaptation_saturates_in_the_state():
    n = FixedCubaLIF(du=4096, dv=4096, theta=10, reset="to-value", input_shift=0, state_bits=12, db=0, q=1500)
    # b never decays (db = 0) and jumps by 1500: 1500, then 3000 saturates at 2047 (M - 1); then v 2047 cannot
    # exceed 10 + 2047
    s, _, _ = trace(n, [2047] * 4, kind="analog")
    assert s.tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("field,value,message", [
    ("db", 4097, "`db` must lie in 0..4096"), ("db", -1, "`db` must lie in 0..4096"),
    ("q", 1 << 23, "`q` must lie in the 24-bit state range"), ("q", 2.5, "`q` must hold integers"),
])
def test_fixed_point_adaptation_fields_are_verified(field, value, message):
    from n3ml.ir.types import VerifyError

    with pytest.raises(VerifyError, match=message):
        FixedCubaLIF(du=1, dv=1, **{field: value}).verify("n")


def test_per_neuron_parameters_broadcast():
    g = Graph()
    g.add("x", Input(shape=(3,), kind="analog"))
    g.add("n", IF(theta=np.array([0.5, 1.0, 2.0])), "x")
    g.add("out", Output(), "n")
    r = run(g, np.full((4, 1, 3), 0.6))
    assert r.outputs["out"][:, 0].sum(0).tolist() == [4, 2, 1]


# Hand-computed traces for every spiking neuron under every reset mode, in both schemes (a = g = 0.5, r = 2).
HAND = {
    ("IF", "subtract"): ([0.75] * 5, [0, 1, 1, 0, 1], [0.75, 0.5, 0.25, 1.0, 0.75]),
    ("IF", "to-value"): ([0.75] * 5, [0, 1, 0, 1, 0], [0.75, 0.0, 0.75, 0.0, 0.75]),
    ("IF", "none"): ([0.75] * 5, [0, 1, 1, 1, 1], [0.75, 1.5, 2.25, 3.0, 3.75]),
    ("CubaLIF", "subtract"): ([1.5, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0.5, 1.0, 0.875, 0.625, 0.40625]),
    ("CubaLIF", "to-value"): ([1.5, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0.0, 0.75, 0.75, 0.5625, 0.375]),
    ("CubaLIF", "none"): ([1.5, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1.5, 1.5, 1.125, 0.75, 0.46875]),
    ("ALIF", "subtract"): ([1.2] * 4, [1, 1, 0, 1], [0.2, 0.05, 1.225, 0.625]),
    ("ALIF", "to-value"): ([1.2] * 4, [1, 0, 1, 0], [0.0, 1.2, 0.0, 1.2]),
    ("ALIF", "none"): ([1.2] * 4, [1, 1, 1, 1], [1.2, 1.8, 2.1, 2.25]),
}


def _hand_neuron(op, scheme, reset):
    tau = HALF_TAU[scheme]
    if op == "IF":
        return IF(theta=1.0, reset=reset)
    if op == "CubaLIF":
        return CubaLIF(tau_syn=tau, tau_mem=tau, r=2.0, theta=1.0, reset=reset)
    return ALIF(tau=tau, tau_adapt=tau, r=2.0, q=0.5, theta=1.0, reset=reset)


@pytest.mark.parametrize("scheme", ["exact", "euler"])
@pytest.mark.parametrize("op,reset", sorted(HAND))
def test_every_spiking_neuron_every_reset_mode(op, reset, scheme):
    x, spikes, volts = HAND[op, reset]
    s, v, _ = trace(_hand_neuron(op, scheme, reset), x, scheme)
    assert s.tolist() == spikes
    assert v == pytest.approx(volts, abs=1e-12)


# ------------------------------------------------ n3ml.ir.neurons: the one definition


def test_discretize_gives_hand_computed_coefficients():
    from n3ml.ir import neurons as N

    k = N.discretize(LIF(tau=HALF_TAU["exact"], r=2.0, v_leak=0.25, theta=1.5), 1.0, "exact")
    assert (k.kind, k.a, k.rg, k.v_leak, k.theta) == ("LIF", pytest.approx(0.5), pytest.approx(1.0), 0.25, 1.5)
    assert k.a_s is None and k.a_b is None and k.detach_reset is True and k.surrogate == "fast_sigmoid"
    k = N.discretize(CubaLIF(tau_syn=4.0, tau_mem=2.0, r=3.0), 1.0, "euler")
    assert (k.a_s, k.a, k.rg) == (0.75, 0.5, 1.5)
    k = N.discretize(ALIF(tau=2.0, tau_adapt=10.0, q=0.2), 1.0, "euler")
    assert (k.a_b, k.q) == (0.9, 0.2)
    k = N.discretize(FixedCubaLIF(du=1024, dv=4096, bias=3), 1.0, "exact")
    assert (k.keep_u, k.keep_v, k.bias, k.shift, k.input_shift, k.state_bits) == (3072, 0, 3, 12, 6, 24)
    assert N.discretize(IF(), 1.0, "exact").a is None  # no decay term at all
    assert N.discretize(Integrator(r=0.5), 1.0, "exact").rg == 0.5
    # the form hardware integrates: i = a_s i + I; v = a v + rg i + (1 - a) v_leak
    a_s, a, rg, leak = N.discretize(LIF(tau=2.0, v_leak=1.0), 1.0, "euler").linear()
    assert (a_s, a, rg, leak) == (0.0, 0.5, 0.5, 0.5)
    assert N.discretize(IF(), 1.0, "exact").linear() == (0.0, 1.0, 1.0, 0.0)


def test_step_on_numpy_is_the_interpreter():
    """The interpreter is n3ml.ir.neurons.step on numpy: one step by hand equals one step of a run."""
    from n3ml.ir import neurons as N

    prim = ALIF(tau=2.0, tau_adapt=4.0, q=0.5, r=2.0, reset="to-value", v_reset=0.1, refractory=1)
    k = N.discretize(prim, 1.0, "euler")
    st = N.State(v=np.zeros((1, 1)), b=np.zeros((1, 1)), c=np.zeros((1, 1), np.int64))
    outs = []
    for x in [0.8, 0.8, 0.8, 0.8]:
        s, st = N.step(N.NUMPY, k, st, np.full((1, 1), x))
        outs.append(float(s[0, 0]))
    s_run, v_run, _ = trace(prim, [0.8] * 4, scheme="euler")
    assert outs == s_run.tolist() and st.v[0, 0] == v_run[-1]


def test_every_primitive_neuron_has_one_discretisation_and_one_step():
    from n3ml.ir import neurons as N
    from n3ml.ir.prims import NEURONS

    names = {c.__name__ for c in NEURONS}
    assert names == set(N.DISCRETIZE) == set(N.STEPS) == set(N.STATE_NAMES)


def test_time_constant_formulas_live_only_in_neurons_py():
    """exp(-dt / tau) and its kin are written once (docs/semantics.md §3): in n3ml/ir/neurons.py."""
    import re
    import tokenize
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "n3ml"
    pattern = re.compile(r"(np|torch|math) \. exp \( - \(? ?dt\b|\b1(\.0)? - dt / |\bdecay \( tau\b|\bgain \( tau\b")
    engines = ["ir/interp.py", "backends/torch/ops.py", "nn/functional.py", "passes/quantize.py",
               "backends/netlist.py", "backends/lava/lower.py", "nn/modules.py"]
    for rel in engines:
        with open(root / rel, "rb") as f:  # code only: comments and strings may name the formulas
            text = " ".join(t.string for t in tokenize.tokenize(f.readline)
                            if t.type not in (tokenize.COMMENT, tokenize.STRING))
        assert not pattern.search(text), f"{rel} computes a per-step factor itself"
        assert "P . decay (" not in text and "P . gain (" not in text, rel


def test_graph_owns_fresh_names():
    g = Graph()
    g.add("x", Input(shape=(1,)))
    g.add("x_2", Output(), "x")
    assert g.fresh_name("y") == "y"
    assert g.fresh_name("x") == "x_3"  # x and x_2 are nodes
    assert g.fresh_name("y", taken={"y", "y_2"}) == "y_3"
