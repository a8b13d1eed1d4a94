"""Weights keep the ONNX model's precision: a float32 model gives float32 weights (exact, half the
memory), products the source's dtype cannot hold exactly (Gemm alpha/beta) are computed in float64,
and the engines compute on exactly the stored values."""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from n3ml.backends.torch import run as torch_run
from n3ml.frontends.onnx import load_model_proto
from n3ml.ir import prims as P
from n3ml.ir.interp import run
from n3ml.ir.text import load, save
from n3ml.loader import load_model

RNG = np.random.default_rng(1)


def _gemm_model(dtype, alpha=1.0, beta=1.0):
    tp = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.float16: TensorProto.FLOAT16}[dtype]
    w = numpy_helper.from_array(RNG.normal(size=(3, 4)).astype(dtype), "w")
    b = numpy_helper.from_array(RNG.normal(size=(3,)).astype(dtype), "b")
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1, alpha=alpha, beta=beta)
    g = helper.make_graph([node], "m", [helper.make_tensor_value_info("x", tp, ["N", 4])],
                          [helper.make_tensor_value_info("y", tp, ["N", 3])], initializer=[w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_float32_weights_stay_float32_and_others_are_exact():
    for dtype, want in ((np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32)):
        fc = load_model_proto(_gemm_model(dtype)).nodes["fc"]
        assert fc.weight.dtype == want and fc.bias.dtype == want, dtype
    scaled = load_model_proto(_gemm_model(np.float32, alpha=0.3, beta=1.7)).nodes["fc"]
    assert scaled.weight.dtype == np.float64 and scaled.bias.dtype == np.float64  # 0.3 * w needs more bits


def test_bundled_float32_model_keeps_its_dtype_through_save_and_engines(tmp_path):
    g = load_model("examples/ann_to_snn/cnn.onnx")
    weighted = [p for p in g.nodes.values() if isinstance(p, (P.Dense, P.Conv2d))]
    assert weighted and all(p.weight.dtype == np.float32 for p in weighted)
    # through the text format and its sidecar: float32 written and read back unchanged
    path = save(g, tmp_path / "cnn.n3ml")
    back = load(path)
    with np.load(tmp_path / "cnn.npz") as z:  # the sidecar itself holds float32
        assert all(z[k].dtype == np.float32 for k in z.files if k.endswith("weight"))
    for n, p in g.nodes.items():
        if isinstance(p, (P.Dense, P.Conv2d)):
            assert back.nodes[n].weight.dtype == np.float32
            np.testing.assert_array_equal(back.nodes[n].weight, p.weight)
    # the interpreter and the float64 executor compute on the stored float32 values (exact in float64):
    # they agree to float64 rounding (their convolutions sum in different orders)
    x = np.load("examples/ann_to_snn/test.npz")["x"][:8].astype(np.float64)[None]
    ref = run(back, {"x": x}).outputs
    tor = torch_run(back, {"x": torch.from_numpy(x)}, dtype="float64").outputs
    for k in ref:
        np.testing.assert_allclose(ref[k], tor[k], rtol=1e-12, atol=1e-15)
