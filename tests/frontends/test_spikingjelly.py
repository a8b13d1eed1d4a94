"""SpikingJelly models traced to the IR give the same spikes as SpikingJelly at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly.activation_based.neuron", reason="SpikingJelly is not installed (make setup-peers)")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402
from n3ml.ir.interp import run as interp_run  # noqa: E402

from .helpers import assert_same_spikes, boost, run_steps  # noqa: E402

pytestmark = pytest.mark.peers
T, B = 25, 3


def _x(*shape, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.rand(T, B, *shape, dtype=dtype)


@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_single_step_mlp_same_spikes(v_reset, decay_input):
    torch.manual_seed(0)
    model = boost(nn.Sequential(nn.Linear(10, 20), neuron.LIFNode(tau=2.5, decay_input=decay_input, v_reset=v_reset),
                                nn.Linear(20, 5), neuron.IFNode(v_reset=v_reset)), 2.0).double()
    graph = trace(model, (10,))
    x = _x(10)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_multi_step_conv_same_spikes():
    torch.manual_seed(1)
    model = boost(nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode="m"), neuron.LIFNode(tau=2.0, step_mode="m"),
        layer.MaxPool2d(2, step_mode="m"), layer.Flatten(step_mode="m"), layer.Linear(64, 5, step_mode="m"),
        neuron.IFNode(step_mode="m", v_reset=None)), 3.0, 0.3).double()
    graph = trace(model, (1, 8, 8))
    assert [p.op for p in graph.nodes.values()][:3] == ["Input", "Conv2d", "LIF"]
    x = _x(1, 8, 8, seed=1)
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x).numpy()
    assert_same_spikes(graph, x, expected)


def test_seq_to_ann_container_same_spikes():
    torch.manual_seed(2)
    model = boost(nn.Sequential(layer.SeqToANNContainer(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                                                        nn.Flatten()),
                                neuron.IFNode(step_mode="m"), nn.Linear(36, 5), neuron.IFNode(step_mode="m")),
                  3.0, 0.3).double().eval()
    graph = trace(model, (1, 8, 8))
    x = _x(1, 8, 8, seed=2)
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x).numpy()
    assert_same_spikes(graph, x, expected)


def test_linear_recurrent_container_same_spikes():
    torch.manual_seed(3)
    model = boost(nn.Sequential(nn.Linear(10, 16), layer.LinearRecurrentContainer(neuron.IFNode(), 16, 16),
                                nn.Linear(16, 5), neuron.IFNode()), 2.0).double()
    graph = trace(model, (10,))
    assert any(p.op == "Delay" for p in graph.nodes.values())
    x = _x(10, seed=3)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_threshold_ties_spike_as_in_spikingjelly():
    """v == v_threshold fires in SpikingJelly (>=); the IR's strict test gets theta = nextafter(v_th, -inf)."""
    lin = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.25)  # four 0.25 inputs sum to exactly 1.0 = v_threshold
    for dtype in (torch.float64, torch.float32):
        model = nn.Sequential(lin, neuron.IFNode()).to(dtype)
        graph = trace(model, (4,))
        x = torch.ones(T, B, 4, dtype=dtype)
        functional.reset_net(model)
        expected = run_steps(model, x)
        assert expected.all()  # every step reaches exactly 1.0
        got = interp_run(graph, {graph.input_names[0]: x.double().numpy()}).outputs["out"]
        np.testing.assert_array_equal(got, expected)
        (theta,) = [p.theta for p in graph.nodes.values() if p.op == "IF"]
        assert theta == np.nextafter(np.array(1.0, dtype=np.float64 if dtype == torch.float64 else np.float32), -2)


@pytest.mark.parametrize("decay_input", [True, False])
def test_parametric_lif_uses_the_learned_w(decay_input):
    torch.manual_seed(6)
    model = boost(nn.Sequential(nn.Linear(10, 20), neuron.ParametricLIFNode(init_tau=3.0, decay_input=decay_input),
                                nn.Linear(20, 5), neuron.IFNode()), 2.0).double()
    with torch.no_grad():
        model[1].w.fill_(0.3)  # "trained": 1/tau = sigmoid(0.3)
    graph = trace(model, (10,))
    x = _x(10, seed=6)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_unsupported_neuron_is_named():
    model = nn.Sequential(nn.Linear(4, 4), neuron.QIFNode())
    with pytest.raises(UnsupportedError, match=r"module `1`.*QIFNode.*supported: .*spikingjelly\.IFNode"):
        trace(model, (4,))


def test_graded_surrogate_is_refused():
    model = nn.Sequential(nn.Linear(4, 4), neuron.IFNode(surrogate_function=surrogate.Sigmoid(spiking=False)))
    with pytest.raises(UnsupportedError, match="non-spiking"):
        trace(model, (4,))


def test_float32_model_on_float32_executor():
    """A float32 SpikingJelly model (its native CPU kernels) against the executor in float32: identical spikes."""
    from n3ml.backends.torch import run as exec_run

    torch.manual_seed(5)
    model = boost(nn.Sequential(nn.Linear(10, 32), neuron.LIFNode(tau=2.0, step_mode="m"), nn.Linear(32, 6),
                                neuron.IFNode(step_mode="m", v_reset=None)), 2.0)
    graph = trace(model, (10,))
    x = _x(10, seed=5, dtype=torch.float32)
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x).numpy()
    assert 0.02 < expected.mean() < 0.9
    got = exec_run(graph, {graph.input_names[0]: x}, dtype="float32").outputs["out"]
    np.testing.assert_array_equal(np.asarray(got.detach() if hasattr(got, "detach") else got), expected)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_detach_reset_is_carried_into_the_graph(detach_reset):
    """SpikingJelly lets gradients flow through the reset unless detach_reset=True; the IR neuron says which."""
    model = nn.Sequential(nn.Linear(4, 3), neuron.LIFNode(tau=2.0, detach_reset=detach_reset),
                          nn.Linear(3, 2), neuron.IFNode(detach_reset=detach_reset),
                          nn.Linear(2, 2), neuron.ParametricLIFNode(detach_reset=detach_reset)).double()
    graph = trace(model, (4,))
    spiking = [p for p in graph.nodes.values() if p.op in ("LIF", "IF")]
    assert len(spiking) == 3
    assert all(p.detach_reset is detach_reset for p in spiking)


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("learnable", [False, True])
def test_synapse_filter_is_bit_exact(mode, learnable):
    """SynapseFilter (I = I - (1 - S) I / tau + S, a decay switched off by the input spike) as the IR's
    SynapseFilter: the same float64 currents as SpikingJelly, bit for bit, in both step modes."""
    torch.manual_seed(3)
    net = boost(nn.Sequential(layer.Linear(8, 6), neuron.IFNode(), layer.SynapseFilter(tau=3.0, learnable=learnable)),
                3.0, 0.2).double()
    functional.set_step_mode(net, mode)
    graph = trace(net, (8,))
    (filt,) = [p for p in graph.nodes.values() if p.op == "SynapseFilter"]
    assert filt.leak == (torch.sigmoid(net[2].w).item() if learnable else 1 / 3.0)
    x = _x(8, seed=3)
    functional.reset_net(net)
    with torch.no_grad():
        expected = (net(x) if mode == "m" else torch.stack([net(x[t]) for t in range(T)])).numpy()
    assert expected.max() > 1.5 and (np.diff(expected, axis=0) < 0).any()  # spikes add up and the current decays
    from .helpers import run_graph
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_array_equal(np.asarray(got), expected, err_msg=engine)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_synapse_filter_gradient_is_spikingjellys(dtype):
    """The executor's filter is differentiable as SpikingJelly's: the same currents and the same gradient with
    respect to the input spikes (dI/dS = 1 + I leak, through every later step) and to the synapses after it."""
    from n3ml.backends.torch.executor import Executor
    torch.manual_seed(5)
    net = nn.Sequential(layer.SynapseFilter(tau=2.5), layer.Linear(6, 3)).to(dtype)
    functional.set_step_mode(net, "m")
    graph = trace(net, (6,), input_kind="spike")
    s = (torch.rand(12, 4, 6) < 0.4).to(dtype)
    s_sj, s_ex = s.clone().requires_grad_(), s.clone().requires_grad_()
    w = torch.randn(12, 4, 3, dtype=dtype)
    ref = net(s_sj)
    (ref * w).sum().backward()
    ex = Executor(graph, dtype=dtype)
    (name,) = [n for n, p in graph.nodes.items() if p.op == "Input"]
    got = ex({name: s_ex})["out"] if "out" in graph.nodes else next(iter(ex({name: s_ex}).values()))
    (got * w).sum().backward()
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch.testing.assert_close(s_ex.grad, s_sj.grad, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=1e-6)
    assert s_sj.grad.abs().max() > 0
    (dense,) = [n for n, p in graph.nodes.items() if p.op == "Dense"]
    torch.testing.assert_close(getattr(ex.nodes, dense).weight.grad, net[1].weight.grad)


def test_synapse_filter_of_graded_values_is_refused():
    net = nn.Sequential(layer.Linear(4, 4), layer.SynapseFilter(tau=2.0))
    with pytest.raises(UnsupportedError, match=r"module `1`.*SynapseFilter fed values that are not spikes"):
        trace(net, (4,))


class _Connect(nn.Module):
    """SEW's connect functions on two spike trains (sew_resnet.sew_function), written inline."""

    def __init__(self, cnf):
        super().__init__()
        self.cnf = cnf
        self.fa, self.fb = nn.Linear(6, 5), nn.Linear(6, 5)
        self.sa, self.sb, self.out = neuron.IFNode(), neuron.IFNode(), neuron.IFNode()
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        a, b = self.sa(self.fa(x)), self.sb(self.fb(x))
        y = {"AND": lambda: a * b, "IAND": lambda: a * (1.0 - b), "IAND2": lambda: (1 - b) * a,
             "NOTAND": lambda: (1.0 - a) * (1.0 - b) * 0 + a * a}[self.cnf]()
        return self.out(self.fc(y))


@pytest.mark.parametrize("cnf", ["AND", "IAND", "IAND2", "NOTAND"])
def test_products_of_spikes_are_exact(cnf):
    """a * b and a * (1 - b) of 0/1 spikes are logical AND / AND-NOT: built exactly as a - relu(a - b) and
    relu(a - b); the spikes after them are identical."""
    torch.manual_seed(4)
    model = boost(_Connect(cnf), 3.0, 0.3).double()
    if cnf == "NOTAND":  # (1 - a)(1 - b) has the constant term 1: refused by name
        with pytest.raises(UnsupportedError, match="constant term"):
            trace(model, (6,))
        return
    graph = trace(model, (6,))
    assert "ReLU" in {p.op for p in graph.nodes.values()}
    x = _x(6, seed=4)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x), lo=0.01)


def test_product_of_analog_values_is_refused_with_the_line():
    class Gain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.sn = nn.Linear(4, 4), neuron.IFNode()

        def forward(self, x):
            h = self.fc(x)
            return self.sn(h * h)

    with pytest.raises(UnsupportedError, match=r"not both 0/1 spikes.*test_spikingjelly.py:\d+: return self.sn\(h \* h\)"):
        trace(Gain(), (4,))


def test_adaptive_pool_of_a_1x1_map_to_a_grid_is_exact():
    """SpikingJelly's VGG pools its features with AdaptiveAvgPool2d((7, 7)); on a small image they are 1x1,
    and every output window is that one pixel (a depthwise Conv2d of ones with zero padding)."""
    torch.manual_seed(5)
    model = boost(nn.Sequential(nn.Conv2d(2, 3, 4), neuron.IFNode(), layer.AdaptiveAvgPool2d((3, 2)), nn.Flatten(),
                                nn.Linear(18, 5), neuron.IFNode()), 3.0, 0.3).double()
    graph = trace(model, (2, 4, 4))
    assert graph.nodes["n_2"].op == "Conv2d"
    x = _x(2, 4, 4, seed=5)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x))


@pytest.mark.parametrize("f", [lambda x, y: x + y, lambda x, y: 0.5 * x - y])
def test_element_wise_recurrent_container_same_spikes(f):
    """SpikingJelly's recurrent-connection tutorial: ElementWiseRecurrentContainer(IFNode(v_reset=None),
    element_wise_function=lambda x, y: x + y), i_t = f(y_{t-1}, x_t): a Delay(1) loop around the neuron."""
    torch.manual_seed(9)
    model = boost(nn.Sequential(layer.Linear(6, 8), layer.ElementWiseRecurrentContainer(
        neuron.IFNode(v_reset=None), element_wise_function=f), layer.Linear(8, 4), neuron.IFNode()), 2.0, 0.1).double()
    graph = trace(model, (6,))
    assert "Delay" in {p.op for p in graph.nodes.values()}
    x = _x(6, seed=9)
    functional.reset_net(model)
    assert_same_spikes(graph, x, run_steps(model, x))


def test_element_wise_recurrent_container_with_a_product_is_refused():
    model = nn.Sequential(layer.Linear(6, 8), layer.ElementWiseRecurrentContainer(
        neuron.IFNode(), element_wise_function=lambda x, y: x * y))
    with pytest.raises(UnsupportedError, match=r"element_wise_function is not a sum.*a product of two values"):
        trace(model, (6,))
