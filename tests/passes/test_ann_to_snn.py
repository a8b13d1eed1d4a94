"""ann-to-snn and normalize: structure of the converted graph, and exactness of the rescaling.

The converted graph's ANN view (IF -> ReLU, Integrator -> identity) must compute the original ANN's
logits exactly; after `normalize` it still must (the membrane readout demands ANN units), which checks
the scaling rules for Add (residual) and Concat networks without simulating.
"""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.errors import N3mlError
from n3ml.ir import prims as P
from n3ml.ir.interp import run
from n3ml.ir.text import parse
from n3ml.loader import load_model
from n3ml.passes import PassError, PassManager
from n3ml.passes.cleanup import bypass
from n3ml.passes.normalize import activations, ann_view

CAL = dict(np.load("examples/ann_to_snn/calib.npz"))
X = np.load("examples/ann_to_snn/test.npz")["x"][:40].astype(np.float64)


def _logits(onnx_name):
    g = PassManager.from_string("fold-batchnorm").run(load_model(f"examples/ann_to_snn/{onnx_name}.onnx"))
    ann = g.copy()
    for n, p in list(ann.nodes.items()):
        if isinstance(p, P.Softmax):
            bypass(ann, n)
    return g, run(ann, {"x": X[None]}).outputs["probs"][0]


def test_structure_of_the_converted_cnn():
    g = PassManager.from_string("fold-batchnorm").run(load_model("examples/ann_to_snn/cnn.onnx"))
    ctx = {}
    s = PassManager.from_string("ann-to-snn{maxpool=auto}").run(g, ctx)
    assert ctx["ann"] is g
    ops = [p.op for p in s.nodes.values()]
    assert "ReLU" not in ops and "Softmax" not in ops and ops.count("MaxPool2d") == 1
    ifs = [p for p in s.nodes.values() if isinstance(p, P.IF)]
    assert all(p.reset == "subtract" and p.theta == 1.0 for p in ifs)
    readout = s.nodes[s.inputs_of("probs")[0]]
    assert isinstance(readout, P.IF) and readout.v_init == 0.0
    # first pool (fed by the constant input current) pools the current before the neurons
    assert s.inputs_of("features_2_Relu") == ["features_3_MaxPool"]
    assert s.inputs_of("features_3_MaxPool") == ["features_0_Conv"]
    # second pool: running max of 4 window elements with 3 IF neurons
    assert isinstance(s.nodes["features_7_MaxPool"], P.Add) and len(s.inputs_of("features_7_MaxPool")) == 4
    d = PassManager.from_string("ann-to-snn").run(g)  # default: both pools decomposed, no MaxPool left
    assert not any(isinstance(p, P.MaxPool2d) for p in d.nodes.values())
    m = PassManager.from_string("ann-to-snn{readout=membrane,maxpool=spikes,encoding=poisson,gain=0.5}").run(g)
    assert isinstance(m.nodes[m.inputs_of("probs")[0]], P.Integrator)
    assert sum(isinstance(p, P.MaxPool2d) for p in m.nodes.values()) == 2
    enc = m.inputs_of("features_0_Conv")[0]
    assert isinstance(m.nodes[enc], P.PoissonRate) and m.nodes[enc].gain == 0.5
    np.testing.assert_allclose(m.nodes["features_0_Conv"].weight, g.nodes["features_0_Conv"].weight / 0.5)


@pytest.mark.parametrize("maxpool", ["auto", "decompose", "current"])
def test_ann_view_of_converted_graph_is_the_ann(maxpool):
    g, logits = _logits("cnn")
    s = PassManager.from_string(f"ann-to-snn{{readout=membrane,maxpool={maxpool}}}").run(g)
    got = run(ann_view(s), {"x": X[None]}).outputs["probs"][0]
    np.testing.assert_allclose(got, logits, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("model", ["cnn", "residual", "concat"])
@pytest.mark.parametrize("channelwise", [False, True])
def test_normalize_keeps_the_function_and_bounds_rates(model, channelwise):
    g, logits = _logits(model)
    ctx = {"calibration": CAL, "report": None}
    pipe = f"ann-to-snn{{readout=membrane}},normalize{{percentile=99,channelwise={str(channelwise).lower()}}}"
    s = PassManager.from_string(pipe).run(g, ctx)
    view = ann_view(s)
    np.testing.assert_allclose(run(view, {"x": X[None]}).outputs["probs"][0], logits, rtol=1e-8, atol=1e-8)
    # on the calibration data, the 99th percentile of every layer's positive activation is now 1
    neurons = [n for n, p in s.nodes.items() if isinstance(p, P.IF)]
    acts = activations(view, {"x": CAL["x"].astype(np.float64)}, neurons)
    for n in neurons:
        a = acts[n]
        if channelwise and a.ndim == 4:  # one scale per conv channel; flat layers stay per layer
            for c in range(a.shape[1]):
                pos = a[:, c][a[:, c] > 1e-9 * a[:, c].max()]
                if pos.size:
                    assert np.percentile(pos, 99) == pytest.approx(1.0, rel=1e-6), (n, c)
        else:
            assert np.percentile(a[a > 1e-9 * a.max()], 99) == pytest.approx(1.0, rel=1e-6), n
    if model == "residual":  # the skip input of the Add is rescaled by an inserted Scale
        add = next(n for n, p in s.nodes.items() if isinstance(p, P.Add) and "Add" in n)
        assert any(isinstance(s.nodes[i], P.Scale) for i in s.inputs_of(add))


def test_decomposed_maxpool_counts_the_maximum_rate():
    text = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(1, 2, 2), kind=analog)
  c = Conv2d(x, weight=tensor<f64>(1, 1, 1, 1)[1])
  r = ReLU(c)
  m = MaxPool2d(r, kernel=(2, 2))
  y = Output(m)
}
"""
    s = PassManager.from_string("ann-to-snn{maxpool=decompose,readout=membrane}").run(parse(text))
    rates = np.array([[0.23, 0.71], [0.52, 0.11]])
    T = 200
    out = run(s, {"x": np.broadcast_to(rates, (T, 1, 1, 2, 2))}).outputs["y"]
    assert abs(out[-1].item() - 0.71 * T) <= 2  # Integrator readout: total count of the pooled train
    sp = PassManager.from_string("ann-to-snn{maxpool=spikes,readout=membrane}").run(parse(text))
    out_or = run(sp, {"x": np.broadcast_to(rates, (T, 1, 1, 2, 2))}).outputs["y"]
    assert out_or[-1].item() > 0.71 * T + 10  # OR of the spikes over-counts (why it is not the default)


def test_conversion_errors_are_clear():
    g = load_model("examples/ann_to_snn/cnn.onnx")
    with pytest.raises(PassError, match="fold-batchnorm first"):
        PassManager.from_string("ann-to-snn").run(g)
    s = PassManager.from_string("fold-batchnorm,ann-to-snn").run(g)
    with pytest.raises(N3mlError, match="calibration"):
        PassManager.from_string("normalize").run(s, {"calibration": None})
    with pytest.raises(N3mlError, match="expected"):
        PassManager.from_string("normalize").run(s, {"calibration": {"x": np.zeros((4, 3, 8, 8))}})
    with pytest.raises(PassError, match="already spiking"):
        PassManager.from_string("ann-to-snn").run(s)


def test_passes_work_on_graphs_from_the_pytorch_frontend(tmp_path):
    """The same pipeline on a plain-torch CNN read through torch.export (.pt2): function preserved."""
    import warnings

    import torch

    from n3ml.registry import LOADERS

    if ".pt2" not in LOADERS:
        pytest.skip("the PyTorch frontend is not registered in this checkout")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 8, 8),)), str(tmp_path / "net.pt2"))
    g = load_model(str(tmp_path / "net.pt2"))
    s = PassManager.from_string("fold-batchnorm,ann-to-snn{readout=membrane},normalize{report=false}").run(
        g, {"calibration": CAL})
    assert not any(isinstance(p, (P.BatchNorm, P.ReLU, P.MaxPool2d)) for p in s.nodes.values())
    with torch.no_grad():
        want = net(torch.from_numpy(X.astype(np.float32))).numpy()
    got = run(ann_view(s), {s.input_names[0]: X[None]}).outputs[s.output_names[0]][0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
