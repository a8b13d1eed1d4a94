"""Text format: round trips, canonical printing, sidecars and located errors."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from n3ml.ir import REGISTRY, Graph, Input, Output
from n3ml.ir import prims as P
from n3ml.ir.interp import run
from n3ml.ir.printer import dumps
from n3ml.ir.text import ParseError, load, parse, save
from tests.strategies import conv_graphs, mlp_graphs, random_inputs

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "graphs").glob("*.n3ml"))


def roundtrip(g: Graph, tmp_path=None) -> Graph:
    text, arrays = dumps(g)
    g2 = parse(text)
    assert dumps(g2)[0] == text
    return g2


def same_outputs(g1, g2, T=12, B=2):
    x = random_inputs(g1, T, B, seed=1)
    r1, r2 = run(g1, x), run(g2, x)
    for k in r1.outputs:
        np.testing.assert_array_equal(r1.outputs[k], r2.outputs[k])  # bit-identical


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mlp_graphs())
def test_print_parse_print_is_identity_and_outputs_bit_identical(g):
    same_outputs(g, roundtrip(g))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_graphs())
def test_conv_graphs_round_trip(g):
    same_outputs(g, roundtrip(g), T=5)


SAMPLES = {
    "Input": lambda: P.Input(shape=(4,), kind="analog"),
    "Output": lambda: P.Output(),
    "Dense": lambda: P.Dense(weight=np.arange(8.0).reshape(2, 4) / 7, bias=np.array([0.5, -0.25])),
    "Conv1d": lambda: P.Conv1d(weight=np.ones((2, 1, 3)), stride=2, padding=1),
    "Dense_fixed": lambda: P.Dense(weight=np.array([[4, -8], [12, 0], [4, 4], [0, -512]]),
                                   weight_format=P.FixedPoint(bits=8, frac=-2)),
    "Conv2d": lambda: P.Conv2d(weight=np.ones((2, 1, 3, 3)), stride=(1, 2), padding=(1, 0), dilation=(1, 1)),
    "SumPool2d": lambda: P.SumPool2d(kernel=(2, 2)),
    "AvgPool2d": lambda: P.AvgPool2d(kernel=(2, 2), stride=(1, 1), padding=(1, 1)),
    "MaxPool2d": lambda: P.MaxPool2d(kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
    "Flatten": lambda: P.Flatten(),
    "Scale": lambda: P.Scale(factor=np.array([1.5, 2.0, 3.0, 0.5])),
    "Add": lambda: P.Add(),
    "Concat": lambda: P.Concat(axis=0),
    "Delay": lambda: P.Delay(steps=3),
    "Delay_detached": lambda: P.Delay(steps=1, detach=True),
    "IF": lambda: P.IF(theta=0.75, reset="to-value", v_reset=-0.5, refractory=2, v_init=0.25),
    "LIF": lambda: P.LIF(tau=np.array([5.0, 6.0, 7.0, 8.0]), v_leak=0.1, r=3.0, reset="none"),
    "CubaLIF": lambda: P.CubaLIF(tau_syn=2.5, tau_mem=10.0, theta=np.array([1.0, 2.0, 3.0, 4.0])),
    "ALIF": lambda: P.ALIF(tau=10.0, tau_adapt=100.0, q=0.2),
    "LI": lambda: P.LI(tau=3.0, v_leak=-0.5),
    "Integrator": lambda: P.Integrator(r=0.5),
    "FixedCubaLIF": lambda: P.FixedCubaLIF(du=4096, dv=100, theta=6400, bias=3, state_bits=24),
    "FixedCubaLIF_adaptive": lambda: P.FixedCubaLIF(du=800, dv=400, theta=6400, db=205, q=np.array([640, 0, 64, 9])),
    "SynapseFilter": lambda: P.SynapseFilter(leak=np.array([0.25, 0.5, 0.125, 1.0])),
    "FixedSynapseFilter": lambda: P.FixedSynapseFilter(d=1024, jump=64, v_init=np.array([0, 64, -3, 7])),
    "PoissonRate": lambda: P.PoissonRate(gain=0.5, seed=7),
    "ConstantCurrent": lambda: P.ConstantCurrent(scale=2.0, offset=0.1),
    "Latency": lambda: P.Latency(window=5, x_min=0.1),
    "ReLU": lambda: P.ReLU(),
    "BatchNorm": lambda: P.BatchNorm(mean=np.zeros(4), var=np.ones(4), gamma=np.full(4, 2.0), beta=np.ones(4)),
    "Softmax": lambda: P.Softmax(axis=0),
}


def test_every_primitive_has_a_round_trip_sample():
    assert {k.split("_")[0] for k in SAMPLES} == set(REGISTRY)


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_primitive_round_trip(op):
    prim = SAMPLES[op]()
    text, _ = dumps(_host(prim))
    g2 = parse(text)
    node = "n" if op not in ("Input", "Output") else ("x" if op == "Input" else "out")
    assert g2.nodes[node].same_as(prim), text
    assert dumps(g2)[0] == text


def _host(prim) -> Graph:
    """A small valid graph around `prim`."""
    g = Graph(name="host")
    op = prim.op
    if op == "Input":
        g.add("x", prim)
        g.add("out", Output(), "x")
        return g
    shapes = {"Conv1d": (1, 9), "Conv2d": (1, 6, 6), "SumPool2d": (2, 6, 6), "AvgPool2d": (2, 6, 6),
              "MaxPool2d": (2, 6, 6), "Flatten": (2, 3), "BatchNorm": (4, 2)}
    shape = shapes.get(op, (2,) if getattr(prim, "weight_format", None) else (4,))
    g.add("x", Input(shape=shape, kind="spike" if op.endswith("SynapseFilter") else "analog"))
    src = "x"
    if op == "FixedCubaLIF":
        g.add("w", P.Dense(weight=np.eye(4, dtype=np.int64)), "x")
        src = "w"
    if op == "Output":
        g.add("out", prim, "x")
        return g
    args = (src, src) if prim.arity is None else (src,)
    g.add("n", prim, *args)
    g.add("out", Output(), "n")
    return g


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_fmt_is_idempotent_on_examples(path):
    g, src = load(path, with_source=True)
    once, _ = dumps(g, sidecar=src.sidecar)
    g2 = parse(once, str(path))
    twice, _ = dumps(g2, sidecar=src.sidecar)
    assert once == twice


def test_save_load_with_sidecar(tmp_path):
    g = Graph(name="big")
    g.add("x", Input(shape=(40,)))
    g.add("fc", P.Dense(weight=np.random.default_rng(0).normal(size=(30, 40)).astype(np.float32)), "x")
    g.add("n", P.LIF(tau=np.linspace(5, 10, 30)), "fc")
    g.add("out", Output(), "n")
    save(g, tmp_path / "big.n3ml")
    text = (tmp_path / "big.n3ml").read_text()
    assert "@fc.weight" in text and 'weights="big.npz"' in text
    g2 = load(tmp_path / "big.n3ml")
    assert g2.nodes["fc"].weight.dtype == np.float32
    assert g2.nodes["fc"].same_as(g.nodes["fc"]) and g2.nodes["n"].same_as(g.nodes["n"])


def test_units_are_converted_to_ms():
    g = parse('n3ml 1\ngraph g(dt=500us) {\n  x = Input(shape=(1,))\n  n = LIF(x, tau=0.02s)\n'
              '  out = Output(n)\n}\n')
    assert g.dt == 0.5 and g.nodes["n"].tau == 20.0
    assert "tau=20.0ms" in dumps(g)[0]


BAD = {
    "syntax": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,)\n}\n', 4, "unexpected"),
    "unknown_op": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  y = Frobnicate(x)\n}\n', 4, "unknown primitive"),
    "unknown_attr": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  y = LIF(x, tau=1.0ms, colour=3)\n  o = Output(y)\n}\n',
                     4, "no attribute `colour`"),
    "wrong_shape": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  fc = Dense(x, weight=tensor<f64>(1, 3)[1.0, 2.0, 3.0])\n'
                    '  o = Output(fc)\n}\n', 4, "expected input shape (3,)"),
    "unknown_node": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  n = IF(y)\n  o = Output(n)\n}\n', 4, "unknown node `y`"),
    "cycle": ('n3ml 1\ngraph g() {\n  x = Input(shape=(2,))\n  s = Add(x, n)\n  n = IF(s)\n  o = Output(n)\n}\n', 4,
              "cycle without a Delay"),
    "negative_tau": ('n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  n = LIF(x, tau=-5.0ms)\n  o = Output(n)\n}\n', 4,
                     "`tau` must be > 0"),
    "schema": ('n3ml 7\ngraph g() {\n}\n', 1, "unknown schema version 7"),
    "scheme": ('n3ml 1\ngraph g(dt=1ms, scheme=fixedish) {\n}\n', 2, "`scheme` must be one of exact, euler"),
    "weight_format": ('n3ml 1\ngraph g() {\n  x = Input(shape=(2,))\n'
                      '  fc = Dense(x, weight=tensor<i64>(1, 2)[3, 4], weight_format=fixed<8, -2>)\n'
                      '  o = Output(fc)\n}\n', 4, "multiples of 2**2"),
    "tensor_size": ('n3ml 1\ngraph g() {\n  x = Input(shape=(2,))\n  s = Scale(x, factor=tensor<f64>(2)[1.0])\n}\n', 4,
                    "needs 2 values"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_located_error(case):
    text, line, msg = BAD[case]
    with pytest.raises(ParseError) as e:
        parse(text, "bad.n3ml")
    assert e.value.line == line, str(e.value)
    assert msg in str(e.value)
    first = str(e.value).splitlines()[0]
    assert first.startswith(f"bad.n3ml:{line}:")
    assert "^" in str(e.value).splitlines()[-1]


def test_missing_sidecar_is_reported(tmp_path):
    p = tmp_path / "g.n3ml"
    p.write_text('n3ml 1\ngraph g(weights="nope.npz") {\n  x = Input(shape=(2,))\n}\n')
    with pytest.raises(ParseError, match="does not exist"):
        load(p)


def test_corrupt_sidecar_is_reported(tmp_path):
    p = tmp_path / "g.n3ml"
    (tmp_path / "w.npz").write_bytes(b"PK\x03\x04garbage")
    p.write_text('n3ml 1\ngraph g(weights="w.npz") {\n  x = Input(shape=(2,))\n}\n')
    with pytest.raises(ParseError, match="cannot read weights file"):
        load(p)
