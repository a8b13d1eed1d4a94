"""fold-batchnorm, fold-scales, dce, remove-identity: small before/after cases; outputs are preserved."""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.ir import prims as P
from n3ml.ir.interp import run
from n3ml.ir.text import parse
from n3ml.loader import load_model
from n3ml.passes import PassError, PassManager, parse_pipeline


def _out(g, x):
    return run(g, {g.input_names[0]: x[None]}).outputs


def _same_outputs(before, after, x):
    a, b = _out(before, x), _out(after, x)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-10, atol=1e-12)


BN_DENSE = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(3,), kind=analog)
  fc = Dense(x, weight=tensor<f64>(2, 3)[1, -2, 0.5, 0.25, 3, -1], bias=tensor<f64>(2)[0.5, -1])
  bn = BatchNorm(fc, mean=tensor<f64>(2)[0.1, -0.3], var=tensor<f64>(2)[2.0, 0.5],
                 gamma=tensor<f64>(2)[1.5, -0.7], beta=tensor<f64>(2)[0.2, 0.4], eps=0.001)
  r = ReLU(bn)
  fc2 = Dense(r, weight=tensor<f64>(1, 2)[1, 1])
  bn2 = BatchNorm(r, mean=tensor<f64>(2)[0, 0], var=tensor<f64>(2)[1, 1], gamma=tensor<f64>(2)[2, 2],
                  beta=tensor<f64>(2)[0, 0])
  y = Output(fc2)
  z = Output(bn2)
}
"""


def test_fold_batchnorm_text_case():
    g = parse(BN_DENSE)
    f = PassManager.from_string("fold-batchnorm").run(g)
    ops = {n: p.op for n, p in f.nodes.items()}
    assert "bn" not in ops and ops["bn2"] == "BatchNorm"  # bn2 follows a ReLU: kept
    k = np.array([1.5, -0.7]) / np.sqrt(np.array([2.0, 0.5]) + 1e-3)
    np.testing.assert_allclose(f.nodes["fc"].weight[1], k[1] * np.array([0.25, 3, -1]))
    np.testing.assert_allclose(f.nodes["fc"].bias, (np.array([0.5, -1]) - [0.1, -0.3]) * k + [0.2, 0.4])
    _same_outputs(g, f, np.random.default_rng(0).normal(size=(5, 3)))
    with pytest.raises(PassError, match="bn2"):
        PassManager.from_string("fold-batchnorm{strict=true}").run(g)


def test_fold_batchnorm_preserves_the_bundled_cnn():
    g = load_model("examples/ann_to_snn/cnn.onnx")
    f = PassManager.from_string("fold-batchnorm").run(g)
    assert not any(isinstance(p, P.BatchNorm) for p in f.nodes.values())
    assert len(f.nodes) == len(g.nodes) - 2
    x = np.load("examples/ann_to_snn/test.npz")["x"][:20].astype(np.float64)
    _same_outputs(g, f, x)


SCALES = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(2, 4, 4), kind=analog)
  s0 = Scale(x, factor=tensor<f64>(2, 1, 1)[2, -0.5])
  c = Conv2d(s0, weight=tensor<f64>(2, 2, 1, 1)[1, 2, 3, 4], bias=tensor<f64>(2)[0.1, 0.2], padding=(0, 0))
  s1 = Scale(c, factor=3.0)
  s2 = Scale(s1, factor=tensor<f64>(2, 1, 1)[0.5, 2])
  r = ReLU(s2)
  f = Flatten(r)
  s3 = Scale(f, factor=1.0)
  d = Delay(s3, steps=0)
  y = Output(d)
}
"""


def test_fold_scales_and_remove_identity():
    g = parse(SCALES)
    f = PassManager.from_string("fold-scales,remove-identity").run(g)
    assert [p.op for p in f.nodes.values()] == ["Input", "Conv2d", "ReLU", "Flatten", "Output"]
    _same_outputs(g, f, np.random.default_rng(1).normal(size=(3, 2, 4, 4)))


def test_fold_scales_keeps_a_spatially_varying_factor_before_a_conv():
    text = SCALES.replace("s0 = Scale(x, factor=tensor<f64>(2, 1, 1)[2, -0.5])",
                          "s0 = Scale(x, factor=tensor<f64>(1, 4, 1)[1, 2, 3, 4])")
    g = parse(text)
    f = PassManager.from_string("fold-scales").run(g)
    assert isinstance(f.nodes["s0"], P.Scale)  # cannot become per-input-channel weights
    _same_outputs(g, f, np.random.default_rng(2).normal(size=(2, 2, 4, 4)))


def test_dce_removes_dead_branches_but_keeps_inputs():
    text = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(2,), kind=analog)
  u = Input(shape=(2,), kind=analog)
  a = ReLU(x)
  dead = Dense(a, weight=tensor<f64>(1, 2)[1, 1])
  dead2 = ReLU(dead)
  y = Output(a)
}
"""
    g = parse(text)
    f = PassManager.from_string("dce").run(g)
    assert list(f.nodes) == ["x", "u", "a", "y"]


def test_pipeline_strings_with_options():
    ps = parse_pipeline("fold-batchnorm{strict=true}, ann-to-snn{readout=membrane,maxpool=spikes,v_init=0},"
                        "normalize{percentile=99.5,channelwise=true,samples=10},dce,remove-identity")
    assert [p.name for p in ps] == ["fold-batchnorm", "ann-to-snn", "normalize", "dce", "remove-identity"]
    assert ps[0].strict is True
    assert (ps[1].readout, ps[1].maxpool, ps[1].v_init) == ("membrane", "spikes", 0.0)
    assert (ps[2].percentile, ps[2].channelwise, ps[2].samples) == (99.5, True, 10)
    for bad, msg in (("normalize{percentile=abc}", "expects float"), ("normalize{percentile=0}", "percentile"),
                     ("ann-to-snn{maxpool=median}", "maxpool"), ("ann-to-snn{speed=3}", "unknown option"),
                     ("fold-everything", "unknown pass")):
        with pytest.raises(PassError, match=msg):
            parse_pipeline(bad)


def test_remove_identity_drops_a_relu_of_spikes_but_keeps_a_relu_of_currents():
    """Norse's ConvNet applies relu to LIF spikes (the identity); a relu of currents is an ANN layer."""
    g = parse("""n3ml 1
graph g(dt=1.0ms) {
  x = Input(shape=(1, 4, 4), kind=analog)
  c = Conv2d(x, weight=tensor<f64>(2, 1, 1, 1)[1.5, -0.5])
  r0 = ReLU(c)
  n = IF(c, theta=1.0)
  r = ReLU(n)
  p = MaxPool2d(r, kernel=(2, 2))
  y = Output(p)
  z = Output(r0)
}
""")
    h = PassManager.from_string("remove-identity").run(g)
    assert "r" not in h.nodes and "r0" in h.nodes and h.inputs_of("p") == ["n"]
    assert h.verify()["p"].kind == "spike"  # so maxpool-as-or can make the pool exact
    x = np.random.default_rng(0).random((12, 3, 1, 4, 4)) * 2
    a, b = run(g, {"x": x}).outputs, run(h, {"x": x}).outputs
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
