"""Time means accumulated on the fly (`Executor.forward(means=...)`), as the conversion report records:
they equal the mean of the recorded sequence (exactly for spikes), streamed or not, keep the neurons on
their fused scans, and the report built on them is the report built on full records, number for number."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile
from n3ml.backends.torch import ops as torch_ops
from n3ml.commands._engines import pass_context
from n3ml.errors import N3mlError
from n3ml.ir import prims as P
from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.passes.base import Engine
from n3ml.passes.report import conversion_report

from .test_reference import _kitchen_sink
from .test_streaming import _sink_inputs


def _record_mean(exe, x, nodes):
    with torch.no_grad():
        outs, rec = exe(x, record=nodes)
    return outs, {n: rec[n].mean(dim=0, dtype=torch.float64) for n in nodes}


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_means_equal_the_recorded_sequences_mean(chunk):
    g = _kitchen_sink()  # every primitive: neurons on both paths, cycles, Delay, encoders
    types = g.verify()
    nodes = [n for n in g.nodes if not isinstance(g.nodes[n], P.Output)]
    exe = compile(g, dtype=torch.float64)
    x = _sink_inputs(24)
    want_outs, want = _record_mean(exe, x, nodes)
    with torch.no_grad():
        outs, got = exe(x, means=nodes, chunk=chunk)
    assert set(got) == {f"{n}.mean" for n in nodes}
    for k in want_outs:
        assert torch.equal(outs[k], want_outs[k]), k
    spiking = 0
    for n in nodes:
        have = got[f"{n}.mean"]
        assert have.dtype == torch.float64 and have.shape == want[n].shape, n
        if types[n].kind == "spike":  # counts / T: exact whatever the summation order
            assert torch.equal(have, want[n]), n
            spiking += int(want[n].sum() > 0)
        else:
            torch.testing.assert_close(have, want[n], rtol=1e-12, atol=1e-12, msg=n)
    assert spiking >= 3  # the comparison saw real spikes


def test_means_keep_the_fused_scan_and_free_the_sequences(monkeypatch):
    g = load_model("examples/ann_to_snn/cnn.onnx")
    cal = dict(np.load("examples/ann_to_snn/calib.npz"))
    snn = PassManager.from_string("fold-batchnorm,ann-to-snn,normalize{report=false}").run(
        g, {"calibration": {"x": cal["x"][:8]}, "report": None, "progress": False})
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.IF)]
    exe = compile(snn, dtype=torch.float32)
    x = torch.as_tensor(cal["x"][:4], dtype=torch.float32)[None].expand(20, 4, *cal["x"].shape[1:])
    _, want = _record_mean(exe, x, neurons)  # recording the states: the step path
    steps = []
    monkeypatch.setattr(torch_ops.NeuronImpl, "step", lambda *a: steps.append(1) or 1 / 0)
    with torch.no_grad():
        _, got = exe(x, means=neurons)
    assert not steps  # no neuron stepped
    for n in neurons:
        assert torch.equal(got[f"{n}.mean"], want[n]), n
    assert sum(float(want[n].sum()) for n in neurons) > 0


def test_means_of_unknown_node_is_refused():
    exe = compile(_kitchen_sink(), dtype=torch.float64)
    with pytest.raises(N3mlError, match="cannot record unknown node `nope`"):
        exe(_sink_inputs(3), means=["nope"])


def test_means_with_gradients_match_and_differentiate():
    g = _kitchen_sink()
    exe = compile(g, dtype=torch.float64)
    x = _sink_inputs(6)
    nodes = [n for n, p in g.nodes.items() if isinstance(p, P.Neuron)]
    _, want = _record_mean(exe, x, nodes)
    outs, got = exe(x, means=nodes)
    for n in nodes:
        torch.testing.assert_close(got[f"{n}.mean"].detach(), want[n], rtol=1e-12, atol=1e-12, msg=n)
    sum(v.sum() for v in got.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in exe.parameters())


# ---------------------------------------------------------------- the report on a peer's network


def _sj_cifar_resnet(tmp_path):
    """SpikingJelly's `ann2snn.sample_models.cifar10_resnet` layout (BasicBlock: conv-bn-relu-conv-bn,
    1x1 conv-bn shortcut when the shape changes, add, relu), rebuilt small (8/16 channels, 8x8 inputs)
    with random weights and batch-norm statistics, exported to ONNX."""
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.relu2 = nn.ReLU()

        def forward(self, x):
            out = self.relu1(self.bn1(self.conv1(x)))
            return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        BasicBlock(8, 8, 1), BasicBlock(8, 16, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 5))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    path = tmp_path / "resnet.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False, do_constant_folding=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    return path


def _held_by_full_record(graph, *, device="cpu", dtype="float64", **_):
    """The held session as it was before `means`: every recorded node's whole sequence, then its mean."""
    exe = compile(graph, device=device, dtype=getattr(torch, dtype))

    def run(inputs, steps, record):
        data = {k: torch.as_tensor(np.asarray(v)).to(exe.ctx.dtype)[None].expand(steps, *v.shape)
                for k, v in inputs.items()}
        with torch.no_grad():
            res = exe(data, record=list(record))
        outs, rec = res if isinstance(res, tuple) else (res, {})
        return ({k: v.to(torch.float64).numpy() for k, v in outs.items()},
                {n: rec[n].mean(dim=0, dtype=torch.float64).numpy() for n in record})

    return run


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_report_on_means_equals_report_on_full_records(tmp_path, dtype):
    pytest.importorskip("onnx")
    pc = pass_context()
    if pc["engine"] != "torch":
        pytest.skip("torch engine not available")
    rng = np.random.default_rng(5)
    x = rng.random((20, 3, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 5, 20)
    ctx = {"calibration": {"x": x, "labels": labels}, "report": None, "progress": False, **pc}
    snn = PassManager.from_string("fold-batchnorm,ann-to-snn,normalize{percentile=99.9,report=false}").run(
        load_model(str(_sj_cifar_resnet(tmp_path))), ctx)
    torch_engine = pc["engines"]["torch"]
    new = torch_engine._replace(options={**torch_engine.options, "dtype": dtype})
    old = Engine("torch", torch_engine.run, new.options, _held_by_full_record)
    args = dict(steps=30, labels=labels, ann=ctx["ann"], batch=6, context={"progress": False})
    inputs = {"x": x.astype(np.float64)}
    a, b = conversion_report(snn, inputs, engine=new, **args), conversion_report(snn, inputs, engine=old, **args)
    a.pop("seconds"), b.pop("seconds")
    assert a == b  # every correlation, mean, saturation and accuracy figure identical
    assert any(lay["snn_rate_mean"] > 0 for lay in a["layers"]) and len(a["layers"]) >= 5


# ---------------------------------------------------------------- inputs held constant over time


def _converted(path, n=8):
    cal = dict(np.load("examples/ann_to_snn/calib.npz"))
    snn = PassManager.from_string("fold-batchnorm,ann-to-snn,normalize{report=false}").run(
        load_model(path), {"calibration": {"x": cal["x"][:n]}, "report": None, "progress": False})
    return snn, cal["x"][:n]


@pytest.mark.parametrize("path", ["examples/ann_to_snn/cnn.onnx", "examples/ann_to_snn/residual.onnx"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_held_input_is_computed_once_with_the_same_result(path, dtype, monkeypatch):
    snn, img = _converted(path)
    exe = compile(snn, dtype=dtype)
    T, B = 16, img.shape[0]
    x = torch.as_tensor(img, dtype=dtype)
    held = x[None].expand(T, *x.shape)
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.IF)]
    with torch.no_grad():
        whole_outs, whole = exe(held.contiguous(), record=neurons)  # T copies: every step computed
        rows = []
        real = torch_ops.ConvImpl.apply
        monkeypatch.setattr(torch_ops.ConvImpl, "apply", lambda self, xs: rows.append(xs[0].shape[0]) or real(self, xs))
        outs, got = exe(held, means=neurons)
    assert rows[0] == B and all(r == T * B for r in rows[1:])  # the first convolution ran once, on B images
    for k in whole_outs:
        assert torch.equal(outs[k], whole_outs[k]), k
    for n in neurons:
        assert torch.equal(got[f"{n}.mean"], whole[n].mean(dim=0, dtype=torch.float64)), n
    assert outs[snn.output_names[0]].stride(0) != 0  # the caller gets a sequence of its own


def test_a_held_input_with_gradients():
    snn, img = _converted("examples/ann_to_snn/cnn.onnx", 4)
    exe = compile(snn, dtype=torch.float64)
    x = torch.as_tensor(img)
    outs = exe(x[None].expand(6, *x.shape))
    want = exe(x[None].expand(6, *x.shape).contiguous())
    (o,) = outs.values()
    assert torch.equal(o, next(iter(want.values())))
    o.sum().backward()  # held neurons must not write into the expanded (shared) memory
    grads = [p.grad.clone() for p in exe.parameters()]
    exe.zero_grad()
    next(iter(exe(x[None].expand(6, *x.shape).contiguous()).values())).sum().backward()
    for a, b in zip(grads, [p.grad for p in exe.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_report_batches_are_sized_for_means_not_sequences():
    from n3ml.passes.calibration import auto_batch

    snn, _ = _converted("examples/ann_to_snn/residual.onnx")
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.IF)]
    types = snn.verify()
    budget = 64 << 20
    held = auto_batch(snn, neurons, 100, itemsize=4, budget=budget, held=True)
    full = auto_batch(snn, neurons, 100, itemsize=4, budget=budget)
    assert held > full  # the time axis no longer multiplies what a batch holds
    one_step = 4 * sum(int(np.prod(t.shape)) for t in types.values())
    assert held * one_step <= budget  # one step of every node of the batch fits the budget


def test_residual_add_in_place_equals_the_reference_and_keeps_gradients():
    from .helpers import assert_same_as_reference

    snn, img = _converted("examples/ann_to_snn/residual.onnx", 4)
    adds = [n for n, p in snn.nodes.items() if isinstance(p, P.Add)]
    exe = compile(snn, dtype=torch.float64)
    assert adds and all(a in exe._may_own for a in adds)  # the residual Add writes into the conv's output
    T = 12
    x = np.ascontiguousarray(np.broadcast_to(img[None].astype(np.float64), (T, *img.shape)))
    assert_same_as_reference(snn, {"x": x}, record=adds)

    def grads(own):
        exe._may_own = own
        exe.zero_grad()
        next(iter(exe(torch.as_tensor(x)).values())).sum().backward()
        return [p.grad.clone() for p in exe.parameters()]

    own = dict(exe._may_own)
    with_add = grads(own)
    without = grads({n: s for n, s in own.items() if n not in adds})
    assert any(g.abs().sum() > 0 for g in with_add)
    for a, b in zip(with_add, without):
        assert torch.equal(a, b)
