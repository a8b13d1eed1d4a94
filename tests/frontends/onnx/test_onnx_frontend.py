"""ONNX frontend: each supported op against onnx's own reference evaluator, opset variants, and errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from n3ml.errors import N3mlError, UnsupportedError
from n3ml.frontends.onnx import load, load_model_proto
from n3ml.ir import prims as P
from n3ml.ir.interp import run

RNG = np.random.default_rng(0)


def _init(name, shape=None, value=None):
    arr = RNG.normal(size=shape).astype(np.float32) if value is None else np.asarray(value)
    return numpy_helper.from_array(arr, name)


def _model(nodes, inits, in_shape, out_names, opset=13, out_rank=2):
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N"] + [f"d{i}" for i in range(1, out_rank)])
            for o in out_names]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          outs,
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _check_same(model, in_shape, batch=3):
    """The IR graph's output (reference interpreter, T=1) equals onnx's ReferenceEvaluator output."""
    x = RNG.normal(size=(batch, *in_shape)).astype(np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    g = load_model_proto(model)
    res = run(g, {"x": x[None].astype(np.float64)})
    outs = g.output_names
    assert len(outs) == len(want)
    for o, w in zip(outs, want):
        np.testing.assert_allclose(res.outputs[o][0], w.reshape(batch, -1).reshape(w.shape), rtol=1e-4, atol=1e-5)
    return g


def test_gemm_relu_softmax_and_matmul_add():
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("MatMul", ["r", "w2"], ["m"], name="fc2"),
             helper.make_node("Add", ["m", "b2"], ["a"], name="fc2_bias"),
             helper.make_node("Softmax", ["a"], ["y"], name="sm")]
    m = _model(nodes, [_init("w1", (6, 5)), _init("b1", (6,)), _init("w2", (6, 4)), _init("b2", (4,))], (5,), ["y"])
    g = _check_same(m, (5,))
    ops = [p.op for p in g.nodes.values()]
    assert ops == ["Input", "Dense", "ReLU", "Dense", "Softmax", "Output"]  # the Add became fc2's bias
    assert g.nodes["x"].kind == "analog"


def test_conv_pools_bn_flatten_concat_add_identity_dropout():
    nodes = [
        helper.make_node("Div", ["x", "k255"], ["xs"], name="input_scale"),
        helper.make_node("Mul", ["chan", "xs"], ["xc"], name="channel_scale"),
        helper.make_node("Conv", ["xc", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"], name="res"),
        helper.make_node("Identity", ["s"], ["s2"], name="ident"),
        helper.make_node("Dropout", ["s2", "ratio"], ["d"], name="drop"),
        helper.make_node("MaxPool", ["d"], ["p1"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["d"], ["p2"], name="ap", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Concat", ["p1", "p2"], ["cat"], name="cat", axis=-3),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w3"], ["y"], name="fc", transB=1),
    ]
    inits = [_init("k255", value=np.float32(255.0)), _init("chan", value=np.array([[[2.0]], [[-0.5]]], np.float32)),
             _init("w1", (4, 2, 3, 3)), _init("b1", (4,)), _init("g", (4,)), _init("be", (4,)),
             _init("mu", (4,)), _init("var", value=RNG.uniform(0.5, 2, 4).astype(np.float32)),
             _init("w2", (4, 4, 1, 1)), _init("ratio", value=np.float32(0.3)), _init("w3", (3, 8))]
    # opset 15: onnx's reference BatchNormalization of opsets 9-13 uses batch statistics
    g = _check_same(_model(nodes, inits, (2, 6, 6), ["y"], opset=15), (2, 6, 6))
    ops = {p.op for p in g.nodes.values()}
    assert {"Scale", "Conv2d", "BatchNorm", "Add", "MaxPool2d", "AvgPool2d", "Concat", "Flatten", "Dense"} <= ops


@pytest.mark.parametrize("opset", [4, 13])
def test_reshape_shape_as_attribute_or_input(opset):
    if opset < 5:
        reshape = helper.make_node("Reshape", ["c"], ["f"], name="rs", shape=[0, -1])
        inits = [_init("w", (2, 1, 3, 3))]
    else:
        reshape = helper.make_node("Reshape", ["c", "shape"], ["f"], name="rs")
        inits = [_init("w", (2, 1, 3, 3)), _init("shape", value=np.array([-1, 32], np.int64))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), reshape,
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc")]
    m = _model(nodes, inits + [_init("w2", (32, 3)), _init("b2", (3,))], (1, 6, 6), ["y"], opset=opset)
    g = load_model_proto(m)
    assert [p.op for p in g.nodes.values()] == ["Input", "Conv2d", "Flatten", "Dense", "Output"]
    if opset >= 13:
        _check_same(m, (1, 6, 6))


@pytest.mark.parametrize("opset", [9, 15])
def test_batchnorm_and_dropout_across_opsets(opset):
    drop_in = ["bn"] if opset < 12 else ["bn", "ratio"]
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "be", "mu", "var"], ["bn"], name="bn"),
             helper.make_node("Dropout", drop_in, ["y"], name="drop")]
    inits = [_init("g", (3,)), _init("be", (3,)), _init("mu", (3,)),
             _init("var", value=np.ones(3, np.float32)), _init("ratio", value=np.float32(0.5))]
    m = _model(nodes, inits, (3,), ["y"], opset=opset)
    g = load_model_proto(m)
    assert [p.op for p in g.nodes.values()] == ["Input", "BatchNorm", "Output"]
    x = RNG.normal(size=(4, 3))
    gamma, beta, mu, var = (numpy_helper.to_array(i).astype(np.float64) for i in inits[:4])
    want = gamma * (x - mu) / np.sqrt(var + 1e-5) + beta  # inference mode (running statistics)
    np.testing.assert_allclose(run(g, {"x": x[None]}).outputs["y"][0], want, rtol=1e-6)


def test_unsupported_ops_are_listed_all_at_once():
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"], name="act_sigmoid"),
             helper.make_node("Tanh", ["a"], ["b"], name="act_tanh"),
             helper.make_node("Relu", ["x"], ["r"], name="ok_relu"),
             helper.make_node("Softmax", ["r"], ["s"], name="inner_softmax"),
             helper.make_node("Add", ["s", "b"], ["c"], name="sum"),
             helper.make_node("LeakyRelu", ["c"], ["y"], name="act_leaky")]
    with pytest.raises(UnsupportedError) as e:
        load_model_proto(_model(nodes, [], (4,), ["y"]), source="bad.onnx")
    msg = str(e.value)
    for name, op in (("act_sigmoid", "Sigmoid"), ("act_tanh", "Tanh"), ("act_leaky", "LeakyRelu"),
                     ("inner_softmax", "Softmax")):
        assert f"`{name}` ({op})" in msg
    assert "cannot convert 4 node(s)" in msg and "bad.onnx" in msg
    assert "only at the output" in msg


def test_unsupported_attributes_name_the_node():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="lopsided", pads=[0, 0, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["y"], name="dilated", kernel_shape=[2, 2], dilations=[2, 2])]
    with pytest.raises(UnsupportedError) as e:
        load_model_proto(_model(nodes, [_init("w", (2, 1, 3, 3))], (1, 8, 8), ["y"]))
    assert "`lopsided` (Conv): asymmetric padding" in str(e.value)


def test_corrupt_and_truncated_files(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff\xff garbage \x00\x01" * 10)
    with pytest.raises(N3mlError, match="corrupt.onnx"):
        load(str(bad))
    good = onnx.load("examples/ann_to_snn/cnn.onnx").SerializeToString()
    cut = tmp_path / "truncated.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(N3mlError, match="truncated.onnx"):
        load(str(cut))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(N3mlError, match="no graph or no nodes"):
        load(str(empty))


def test_cli_reports_corrupt_file_without_traceback(tmp_path, capsys):
    from n3ml.cli import main

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model at all")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "model.onnx" in err and "Traceback" not in err


def test_bundled_model_loads_through_registry():
    from n3ml.loader import load_model

    g = load_model("examples/ann_to_snn/cnn.onnx")
    ops = [p.op for p in g.nodes.values()]
    assert ops.count("BatchNorm") == 2 and ops.count("MaxPool2d") == 2 and ops[-2:] == ["Softmax", "Output"]
    with pytest.raises(N3mlError, match="input shape given"):
        load("examples/ann_to_snn/cnn.onnx", input_shape=(1, 9, 9))
    assert isinstance(g.nodes["x"], P.Input) and g.nodes["x"].shape == (1, 8, 8)


def test_torch_export_with_view_flatten_matches_torch(tmp_path):
    """torch.onnx.export (TorchScript exporter, torch 2.13) of x.view(x.size(0), -1): the Shape/Gather/
    Unsqueeze/Concat arithmetic it emits is folded to a Flatten; outputs match torch."""
    import warnings

    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(3)
            self.fc = torch.nn.Linear(3 * 4 * 4, 5)
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, x):
            h = torch.nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return self.fc(self.drop(h.view(h.size(0), -1)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, do_constant_folding=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    g = load(str(path))
    assert "Flatten" in [p.op for p in g.nodes.values()]
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        want = net(x).numpy()
    got = run(g, {"x": x.numpy()[None].astype(np.float64)}).outputs["y"][0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
