"""torch.export programs (.pt2) of other libraries' spiking models: neurons inlined into ATen operations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch.load import load_pt2  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402

pytestmark = pytest.mark.peers


def _save(model, x, tmp_path):
    ep = torch.export.export(model.eval(), (x,))
    path = tmp_path / "model.pt2"
    torch.export.save(ep, path)
    return str(path)


def test_snntorch_pt2_neurons_rebuilt_from_buffers_give_identical_spikes(tmp_path):
    """aten.zeros_like (state initialisation), the reset and the threshold test of Leaky and Synaptic regions
    become the fx path's LIF/CubaLIF constructions; the state is carried step to step as in snnTorch."""
    from snntorch import utils

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True), nn.Linear(8, 4),
                          snn.Synaptic(alpha=0.7, beta=0.9, threshold=0.4, init_hidden=True, reset_mechanism="zero"))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    graph = load_pt2(_save(model, torch.rand(2, 6), tmp_path))
    ops = [p.op for p in graph.nodes.values()]
    assert ops.count("LIF") == 1 and ops.count("CubaLIF") == 1
    x = torch.rand(12, 2, 6)
    utils.reset(model)
    with torch.no_grad():
        expected = torch.stack([model(x[t]) for t in range(12)]).double().numpy()
    assert 0.05 < expected.mean() < 0.9
    got = run(graph, {graph.input_names[0]: x.double().numpy()}).outputs["out"]
    np.testing.assert_array_equal(got, expected)


def test_spikingjelly_pt2_neuron_is_refused_with_the_rewrite(tmp_path):
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    model = nn.Sequential(nn.Linear(4, 3), neuron.IFNode(v_threshold=0.7))
    path = _save(model, torch.rand(2, 4), tmp_path)
    with pytest.raises(UnsupportedError, match=r"module `1` \(spikingjelly.*IFNode\).*inlined by torch.export.*"
                                               r"--model package.module:Class"):
        load_pt2(path)
