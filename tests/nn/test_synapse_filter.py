"""n3ml.nn.SynapseFilter: SpikingJelly's spike-gated current as an n3ml building block (docs/semantics.md §5b)."""

import numpy as np
import pytest
import torch
from torch import nn

import n3ml.nn as snn
from n3ml.backends.torch.executor import Executor
from n3ml.frontends.torch import trace
from n3ml.ir import interp
from n3ml.loader import load_model

layer = pytest.importorskip("spikingjelly.activation_based.layer")


def _spikes(T=14, B=3, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < 0.4).double()


def test_module_computes_spikingjellys_current_bit_for_bit():
    s = _spikes()
    ref = layer.SynapseFilter(tau=3.0, step_mode="m").double()(s)
    got = snn.SynapseFilter(leak=1 / 3.0)(s)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # a spike step adds 1 without decay, a silent step decays: both happen
    d = got[1:] - got[:-1]
    assert (s[1:] > 0).any() and torch.allclose(d[s[1:] > 0], torch.ones(()).double(), atol=1e-12) and (d[s[1:] == 0] < 0).any()


def test_per_element_leak_and_learnable_leak_gradient():
    s = _spikes(n=4)
    leak = torch.tensor([0.1, 0.5, 0.9, 0.75], dtype=torch.float64)  # SpikingJelly needs tau > 1
    m = snn.SynapseFilter(leak=leak, learnable=("leak",)).double()
    out = m(s)
    for k in range(4):  # each element follows its own leak (held in the default dtype, float32)
        ref = layer.SynapseFilter(tau=1 / m.leak[k].item(), step_mode="m").double()(s[..., k:k + 1])
        torch.testing.assert_close(out[..., k:k + 1], ref, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert m.leak.grad.shape == (4,) and torch.all(m.leak.grad < 0)  # a larger leak lowers the current


def test_traced_and_exported_graphs_run_as_the_module(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), snn.IF(theta=0.5), snn.SynapseFilter(leak=0.25), nn.Linear(6, 3)).double()
    x = torch.rand(12, 2, 5, dtype=torch.float64) * 2
    with torch.no_grad():
        ref = model(x).numpy()
    graph = trace(model, (5,))
    assert [p.op for p in graph.nodes.values()].count("SynapseFilter") == 1
    (name,) = [n for n, p in graph.nodes.items() if p.op == "Input"]
    out = interp.run(graph, {name: x.numpy()}).outputs
    np.testing.assert_array_equal(next(iter(out.values())), ref)
    path = tmp_path / "filter.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    loaded = load_model(str(path), input_shape=(5,))
    (filt,) = [p for p in loaded.nodes.values() if p.op == "SynapseFilter"]
    assert filt.leak == 0.25
    (name,) = [n for n, p in loaded.nodes.items() if p.op == "Input"]
    got = Executor(loaded, dtype=torch.float64)({name: x})
    np.testing.assert_array_equal(next(iter(got.values())).detach().numpy(), ref)


def test_a_filter_of_analog_values_is_refused_by_name():
    model = nn.Sequential(nn.Linear(4, 4), snn.SynapseFilter(leak=0.5))
    with pytest.raises(Exception, match=r"synapse filter reads 0/1 spikes"):
        trace(model, (4,))


def test_leak_outside_zero_one_is_refused_by_the_verifier():
    from n3ml.ir import text
    src = ("n3ml 1\ngraph g(dt=1.0ms) {\n  x = Input(shape=(2,), kind=spike)\n"
           "  f = SynapseFilter(x, leak=1.5)\n  y = Output(f)\n}\n")
    with pytest.raises(text.ParseError, match=r"f.n3ml:4:3: node `f`: `leak` must lie in 0..1"):
        text.parse(src, "f.n3ml").verify()
