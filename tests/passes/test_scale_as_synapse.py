"""spikes-as-synapse on analog graph Inputs: a Scale of an Input (Norse's ConstantCurrentLIFEncoder, `LIF(6 x)`)
or an Input driving a neuron directly becomes a diagonal synapse, which Lava carries as graded spikes and
quantize{input_scale} as graded integers. Exact: identical outputs on the interpreter and the torch executor."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from n3ml.backends.lava.lower import lower
from n3ml.backends.torch import run as exec_run
from n3ml.ir import interp, prims as P
from n3ml.ir.text import parse
from n3ml.passes import PassManager
from n3ml.passes.legalize import legalize
from n3ml.registry import TARGETS, lookup

ENCODER = """n3ml 1
graph enc(dt=1.0ms, scheme=euler) {
  x = Input(shape=(1, 2, 3), kind=analog, hold=6)
  flatten = Flatten(x)
  scale = Scale(flatten, factor=tensor<f64>(6)[6.0, 6.0, 5.0, 6.0, 4.5, 6.0])
  enc = LIF(scale, tau=10.0ms, reset=to-value)
  direct = IF(x, theta=0.7, reset=to-value)
  out = Output(enc)
  out2 = Output(direct)
}
"""


def _outputs(g, x):
    feed = {"x": x}
    a = interp.run(g, feed).outputs
    b = {k: np.asarray(v) for k, v in exec_run(g, feed).outputs.items()}
    return a, b


def test_scale_of_an_analog_input_becomes_a_diagonal_synapse_with_identical_outputs():
    g = parse(ENCODER)
    h = PassManager.from_string("spikes-as-synapse").run(g)
    scale = h.nodes["scale"]
    assert isinstance(scale, P.Dense) and h.inputs_of("scale") == ["flatten"]
    np.testing.assert_array_equal(scale.weight, np.diag([6.0, 6.0, 5.0, 6.0, 4.5, 6.0]))
    # the Input driving an IF directly gets an identity synapse (a depthwise 1x1 Conv2d of its map)
    (syn,) = h.inputs_of("direct")
    assert isinstance(h.nodes[syn], P.Conv2d) and h.inputs_of(syn) == ["x"]
    x = np.random.default_rng(0).random((6, 3, 1, 2, 3))
    ga, gb = _outputs(g, x)
    ha, hb = _outputs(h, x)
    for k in ("out", "out2"):
        assert 0.05 < ga[k].mean() < 0.9, k  # the neurons are exercised
        np.testing.assert_array_equal(ha[k], ga[k])
        np.testing.assert_array_equal(hb[k], gb[k])
        np.testing.assert_array_equal(gb[k], ga[k])


def test_lava_accepts_the_encoder_and_quantize_takes_it_as_graded_integers():
    g = parse(ENCODER)
    lava = lookup(TARGETS, "lava", "target")()
    legal = legalize(g, lava.legality)
    lower(legal)  # refused before: "a Scale left after fold-scales has no Dense/Conv beside it"
    ctx = {}
    q = PassManager.from_string("quantize{profile=loihi2,input_scale=16}").run(g, ctx)
    assert ctx["report"]["quantize"]["layers"]["enc"]["synapses"]["scale"]["weight_error"] < 0.01
    lower(q)
    x = np.random.default_rng(1).integers(0, 17, (6, 3, 1, 2, 3)) / 16.0
    a = interp.run(g, {"x": x}).outputs
    b = interp.run(q, {"x": np.round(x * 16)}).outputs
    for k in ("out", "out2"):
        assert float(np.mean(a[k] == b[k])) >= 0.95, k


def test_norse_constant_current_encoder_legalizes_for_lava_exactly():
    """The corpus's rebuild of Norse's LIFConvNet (norse/task/mnist.py): ConstantCurrentLIFEncoder of x * 6."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("norse")
    from n3ml.frontends.torch import trace
    from tests.frontends import corpus

    case = next(c for c in corpus.CASES if c.name == "norse-constant-current")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        g = trace(case.model(torch.float32), case.input_shape)
    assert any(isinstance(p, P.Scale) for p in g.nodes.values())
    legal = legalize(g, lookup(TARGETS, "lava", "target")().legality)
    assert not any(isinstance(p, P.Scale) for p in legal.nodes.values())
    lower(legal)
    x = np.repeat(case.make_input(torch.float32).double().numpy()[None], case.steps, 0)
    a = interp.run(g, x, record=["constant_current_encoder"])
    b = interp.run(legal, x, record=["constant_current_encoder"])
    assert a.states["constant_current_encoder"].any()
    np.testing.assert_array_equal(b.states["constant_current_encoder"], a.states["constant_current_encoder"])
    for k in a.outputs:
        np.testing.assert_array_equal(b.outputs[k], a.outputs[k])
