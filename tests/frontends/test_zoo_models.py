"""SpikingJelly zoo models beyond the first corpus (tests/frontends/corpus.py ZOO_CASES): what they needed.

* OTTT's and SLTT's LIF nodes are LIFNode's step in eval (the tracer's mode): converted as LIFNode.
* WSConv2d / WSLinear compute with a standardized weight (`get_weight()`): converted with that weight.
* A subclass of a torch layer that adds methods of its own is refused by name, never converted as the layer
  (before, WSConv2d was silently converted with its raw weight: 525 spikes of its first layer differed).
* The OTTT VGG's Scale -> AvgPool2d -> padded Conv2d composes into one Conv2d for Lava (`merge-convs` reads a
  full kernel that is zero off the channel diagonal as per-channel).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (make setup-peers)")

from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402
from n3ml.frontends.torch.vocab import own_methods  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402
from n3ml.ir.text import parse  # noqa: E402
from n3ml.passes.legalize import illegal_nodes, legalize  # noqa: E402
from n3ml.registry import TARGETS, lookup  # noqa: E402

pytestmark = pytest.mark.peers


def _sj_run(model, x):
    functional.reset_net(model)
    with torch.no_grad():
        out = torch.stack([model(x[t]) for t in range(x.shape[0])])
    functional.reset_net(model)
    return out.numpy()


def _graph_run(model, x):
    g = trace(model, tuple(x.shape[2:]))
    res = run(g, {g.input_names[0]: x.numpy()})
    return g, np.asarray(res.outputs[g.output_names[0]])


@pytest.mark.parametrize("node", [neuron.OTTTLIFNode, neuron.SLTTLIFNode])
def test_online_training_lif_nodes_convert_as_lif_with_identical_spikes(node):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), node(tau=2.0), nn.Linear(8, 4), node(tau=3.0, v_reset=0.0)).double().eval()
    with torch.no_grad():
        for fc in (model[0], model[2]):
            fc.weight.uniform_(-0.2, 0.8)
    x = torch.rand(6, 2, 6, dtype=torch.float64) * 1.5
    want = _sj_run(model, x)
    g, got = _graph_run(model, x)
    assert [p.op for p in g.nodes.values()].count("LIF") == 2
    assert 0 < want.mean() < 1
    np.testing.assert_array_equal(got, want)


def test_weight_standardized_layers_convert_with_the_standardized_weight():
    torch.manual_seed(1)
    conv = layer.WSConv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        conv.gain.uniform_(0.5, 2.0)
    model = nn.Sequential(conv, neuron.IFNode(), layer.Flatten(), layer.WSLinear(3 * 4 * 4, 5), neuron.IFNode())
    model = model.double().eval()
    x = torch.rand(4, 2, 2, 4, 4, dtype=torch.float64) * 4
    want = _sj_run(model, x)
    g, got = _graph_run(model, x)
    w = next(p for p in g.nodes.values() if p.op == "Conv2d").weight
    np.testing.assert_allclose(w, conv.get_weight().detach().numpy(), rtol=0, atol=1e-12)
    assert not np.allclose(w, conv.weight.detach().numpy())  # the raw weight would be wrong
    assert 0 < want.mean() < 1
    np.testing.assert_array_equal(got, want)


def test_a_layer_subclass_that_computes_with_its_own_methods_is_refused_by_name():
    class HalfConv(nn.Conv2d):  # a user's layer: same parameters, another computation
        def forward(self, x):
            return super().forward(x) * 0.5

    class Plain(nn.Conv2d):  # only a constructor: still the layer
        def __init__(self):
            super().__init__(1, 2, 3)

    with pytest.raises(UnsupportedError, match=r"module `0` \(.*HalfConv\)"):  # (traced into: its forward's line)
        trace(nn.Sequential(HalfConv(1, 2, 3), neuron.IFNode()).eval(), (1, 6, 6))

    class StandardizedConv(layer.Conv2d):  # a weight of its own (as WSConv2d)
        def get_weight(self):
            return self.weight / self.weight.norm()

    StandardizedConv.__module__ = "spikingjelly.activation_based.layer.extra"  # as a library's own layer: kept whole

    with pytest.raises(UnsupportedError, match=r"module `0` \(.*StandardizedConv\)"):
        trace(nn.Sequential(StandardizedConv(1, 2, 3), neuron.IFNode()).eval(), (1, 6, 6))
    assert own_methods(StandardizedConv(1, 2, 3), nn.Conv2d) == [
        "test_a_layer_subclass_that_computes_with_its_own_methods_is_refused_by_name.<locals>.StandardizedConv"
        ".get_weight"]  # a library's step-dispatching forward (layer.Conv2d's) is not one of them
    assert own_methods(layer.Conv2d(1, 2, 3), nn.Conv2d) == [] and own_methods(Plain(), nn.Conv2d) == []
    g = trace(nn.Sequential(Plain(), neuron.IFNode()).eval(), (1, 6, 6))
    assert [p.op for p in g.nodes.values()].count("Conv2d") == 1


SCALED_POOL = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(2, 4, 4))
  c0 = Conv2d(x, weight=tensor<f64>(2, 2, 1, 1)[0.9, 0.2, -0.3, 1.1])
  n0 = IF(c0, theta=0.5)
  s = Scale(n0, factor=2.74)
  p = AvgPool2d(s, kernel=(2, 2))
  c1 = Conv2d(p, weight=tensor<f64>(1, 2, 3, 3)[0.5, -0.25, 1, 0.75, 1.5, -1, 0.25, 0.5, 1, -0.5, 1, 0.25, 0.5, 1, 0.75, -0.25, 0.5, 1], padding=(1, 1))
  n1 = IF(c1, theta=1.0)
  y = Output(n1)
}
"""


def test_a_scaled_average_pool_before_a_padded_conv_composes_for_lava_exactly():
    """SpikingJelly's OTTT VGG: neuron -> Scale(2.74) -> AvgPool2d -> Conv2d(padding=1). Scale and pool compose
    into a full 2x2 kernel that is zero off the channel diagonal; merge-convs now reads it as per-channel and
    puts it under the padded convolution (before: `c1` refused, its input a Conv2d)."""
    lava = lookup(TARGETS, "lava", "target").legality
    g = parse(SCALED_POOL)
    assert illegal_nodes(g, lava)
    leg = legalize(g, lava)
    assert illegal_nodes(leg, lava) == []
    conv = [p for p in leg.nodes.values() if p.op == "Conv2d"][-1]
    assert conv.weight.shape == (1, 2, 6, 6) and tuple(conv.stride) == (2, 2) and tuple(conv.padding) == (2, 2)
    x = {"x": np.random.default_rng(0).random((20, 2, 2, 4, 4)) * 0.6}
    want, got = run(g, x).outputs["y"], run(leg, x).outputs["y"]
    assert 0 < np.mean(want) < 1
    np.testing.assert_array_equal(got, want)


class ClusterReadout(nn.Module):
    """SpikingJelly's SNASNet readout (model/snas_net.py), small: a static input, a loop over the steps inside
    forward, `acc = acc + self.boost(x.unsqueeze(1)).squeeze(1)` (nn.AvgPool1d: the mean of each cluster of
    output neurons), `acc / T`."""

    def __init__(self, T=4):
        super().__init__()
        self.T = T
        self.fc1 = nn.Linear(6, 12)
        self.sn = neuron.LIFNode(tau=4.0 / 3, v_reset=0.0)
        self.fc2 = nn.Linear(12, 8)
        self.boost = nn.AvgPool1d(4, 4)

    def forward(self, x):
        acc = 0
        for t in range(self.T):
            y = self.fc2(self.sn(self.fc1(x)))
            acc = acc + self.boost(y.unsqueeze(1)).squeeze(1)
        return acc / self.T


def test_avgpool1d_of_an_unsqueezed_flat_sample_is_the_cluster_mean():
    torch.manual_seed(2)
    model = ClusterReadout().double().eval()
    with torch.no_grad():
        model.fc1.weight.uniform_(-0.2, 1.0)
    x = torch.rand(3, 6, dtype=torch.float64)
    functional.reset_net(model)
    with torch.no_grad():
        want = model(x).numpy()
    functional.reset_net(model)
    g = trace(model, (6,))
    assert g.nodes[g.input_names[0]].hold == 4
    out = g.output_names[0]
    reduce = g.nodes[out].reduce  # the loop's accumulation (`/ T` a Scale inside or the mean)
    assert reduce in ("sum", "mean")
    got = getattr(np.asarray(run(g, {g.input_names[0]: np.repeat(x.numpy()[None], 4, 0)}).outputs[out]), reduce)(0)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(UnsupportedError, match=r"module `boost` .*AvgPool1d with padding"):
        model.boost = nn.AvgPool1d(4, 4, padding=1)
        trace(model, (6,))
