"""snnTorch models traced to the IR give the same spikes as snnTorch at every step (float64, exact)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402

from .helpers import assert_same_spikes, boost, run_steps  # noqa: E402

pytestmark = pytest.mark.peers
T, B = 25, 3


class MLP(nn.Module):
    """Per-step model; snnTorch emits float32 spikes, cast back to the model's dtype."""

    def __init__(self, neuron):
        super().__init__()
        self.fc1, self.n1 = nn.Linear(12, 16), neuron(16)
        self.fc2, self.n2 = nn.Linear(16, 4), neuron(4)

    def forward(self, x):
        s = self.n1(self.fc1(x))
        return self.n2(self.fc2(s.to(x.dtype)))


def _leaky(mech, per_neuron=False, learn=False):
    def make(n):
        beta = torch.linspace(0.5, 0.95, n) if per_neuron else 0.8
        return snn.Leaky(beta=beta, threshold=0.7, reset_mechanism=mech, init_hidden=True, learn_beta=learn,
                         learn_threshold=learn)
    return make


NEURONS = {
    **{f"leaky-{m}": _leaky(m) for m in ("subtract", "zero", "none")},
    "leaky-per-neuron": _leaky("subtract", per_neuron=True),
    "leaky-learned": _leaky("subtract", learn=True),
    **{f"synaptic-{m}": (lambda m: lambda n: snn.Synaptic(alpha=0.6, beta=0.85, reset_mechanism=m,
                                                           init_hidden=True))(m) for m in ("subtract", "zero", "none")},
    **{f"lapicque-{m}": (lambda m: lambda n: snn.Lapicque(R=4.0, C=2.5, time_step=1.0, reset_mechanism=m,
                                                           init_hidden=True))(m) for m in ("subtract", "zero")},
}


@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_mlp_same_spikes(kind):
    torch.manual_seed(1)
    model = boost(MLP(NEURONS[kind])).double().eval()
    if kind == "leaky-learned":  # trained values differ from the constructor's
        with torch.no_grad():
            model.n1.beta.fill_(0.66)
            model.n1.threshold.fill_(0.9)
    graph = trace(model, (12,))
    x = torch.rand(T, B, 12, dtype=torch.float64)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_beta_and_reset_map_to_lif_with_correction_loop():
    model = MLP(_leaky("subtract")).double()
    graph = trace(model, (12,))
    ops = [p.op for p in graph.nodes.values()]
    assert ops.count("LIF") == 2 and ops.count("Delay") == 2
    scale = graph.nodes["n1_reset"]
    assert scale.factor == pytest.approx(-(1 - 0.8) * 0.7)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.lif2 = snn.Leaky(beta=0.9, init_hidden=True, output=True)

    def forward(self, x):
        s = self.pool(self.lif1(self.conv(x)).to(x.dtype))
        spk, mem = self.lif2(self.fc(s.flatten(1)))
        return spk, mem


def test_conv_same_spikes():
    torch.manual_seed(2)
    model = boost(ConvNet(), 2.0).double().eval()
    graph = trace(model, (1, 8, 8))  # `mem` is left out of the outputs, with a warning
    assert graph.output_names == ["out"]
    x = torch.rand(T, B, 1, 8, 8, dtype=torch.float64)
    expected = run_steps(model, x)
    assert_same_spikes(graph, x, expected)


@pytest.mark.parametrize("mech", ["subtract", "zero"])
@pytest.mark.parametrize("all_to_all", [True, False])
def test_recurrent_same_spikes(mech, all_to_all):
    torch.manual_seed(3)

    def neuron(n):
        if all_to_all:
            return snn.RLeaky(beta=0.85, linear_features=n, reset_mechanism=mech, init_hidden=True)
        return snn.RLeaky(beta=0.85, all_to_all=False, V=torch.linspace(-0.5, 0.5, n), reset_mechanism=mech,
                          init_hidden=True)

    # RLeaky feeds its float32 spikes to its own recurrent Linear, so it only runs in float32: the IR runs in
    # float64 on the same inputs and the spikes must still be identical on these seeds
    model = boost(MLP(neuron)).eval()
    graph = trace(model, (12,))
    assert any(p.op == "Delay" for p in graph.nodes.values())
    x = torch.rand(T, B, 12)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_unsupported_options_are_named():
    model = MLP(lambda n: snn.Leaky(beta=0.9, init_hidden=True, inhibition=True))
    with pytest.raises(UnsupportedError, match=r"module `n1`.*inhibition"):
        trace(model, (12,))


def test_time_loop_in_forward_becomes_the_graph_time_axis():
    class Looped(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            return torch.stack([self.lif(self.fc(x[t])) for t in range(3)])

    torch.manual_seed(0)
    model = boost(Looped()).double()
    graph = trace(model, (4,))
    assert [p.op for p in graph.nodes.values()].count("LIF") == 1  # one step, not the loop unrolled
    x = torch.rand(3, B, 4, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x).double().numpy()
    assert_same_spikes(graph, x, expected)


def test_neuron_fed_another_steps_state_is_refused_with_the_line():
    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.a, self.b = nn.Linear(4, 4), snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)

        def forward(self, x):
            ma, mb = self.a.init_leaky(), self.b.init_leaky()
            out = []
            for _ in range(3):
                s, ma = self.a(self.fc(x), ma)
                s2, mb = self.b(self.fc(x), ma)  # b receives a's state
                out.append(s2)
            return torch.stack(out)

    with pytest.raises(UnsupportedError, match=r"module `b`.*state of module `a`.*test_snntorch.py:\d+"):
        trace(Wrong(), (4,))


def test_per_channel_parameters_on_conv1d():
    class C(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 4, 3, padding=1)
            self.lif = snn.Leaky(beta=torch.tensor([0.5, 0.7, 0.8, 0.95]).reshape(4, 1),
                                 threshold=torch.full((4, 1), 0.6), init_hidden=True)

        def forward(self, x):
            return self.lif(self.conv(x))

    torch.manual_seed(5)
    model = boost(C()).double()
    graph = trace(model, (2, 10))
    assert graph.nodes["lif"].tau.shape == (4, 10)  # per-channel values spread over the neurons
    x = torch.rand(T, B, 2, 10, dtype=torch.float64)
    assert_same_spikes(graph, x, run_steps(model, x))


@pytest.mark.parametrize("mech", ["subtract", "zero", "none"])
def test_rsynaptic_same_spikes(mech):
    torch.manual_seed(7)
    model = boost(MLP(lambda n: snn.RSynaptic(alpha=0.6, beta=0.8, linear_features=n, reset_mechanism=mech,
                                              init_hidden=True))).eval()
    graph = trace(model, (12,))  # float32 only, as RLeaky
    x = torch.rand(T, B, 12)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_subclass_of_a_neuron_is_refused():
    class MyLeaky(snn.Leaky):
        pass

    with pytest.raises(UnsupportedError, match=r"MyLeaky.*no converter"):
        trace(MLP(lambda n: MyLeaky(beta=0.9, init_hidden=True)), (12,))
