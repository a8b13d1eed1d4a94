"""Gradients: the fused scans equal autograd through the step-by-step form; training lowers the loss."""

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile
from n3ml.backends.torch.scan import linear_scan, spiking_scan
from n3ml.ir import IF, LI, LIF, CubaLIF, Dense, Graph, Input, Integrator, Output
from n3ml.nn import spike_fn


def _graph(neuron, rng):
    g = Graph(name="g")
    g.add("x", Input(shape=(5,)))
    g.add("fc", Dense(weight=rng.normal(0.5, 0.5, (7, 5)), bias=rng.normal(0, 0.1, 7)), "x")
    g.add("n", neuron, "fc")
    g.add("out", Output(), "n")
    return g


NEURONS = {
    "IF": lambda r, rng: IF(reset=r, v_reset=0.1, theta=rng.uniform(0.5, 1.5, 7)),
    "LIF": lambda r, rng: LIF(tau=5.0, r=3.0, reset=r, v_leak=0.1, v_reset=-0.1),
    "CubaLIF": lambda r, rng: CubaLIF(tau_syn=3.0, tau_mem=rng.uniform(3, 8, 7), r=4.0, reset=r),
    "LI": lambda r, rng: LI(tau=4.0, v_leak=0.2),
    "Integrator": lambda r, rng: Integrator(r=0.5, v_init=0.3),
}


@pytest.mark.parametrize("kind", sorted(NEURONS))
@pytest.mark.parametrize("reset", ["subtract", "to-value", "none"])
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "triangle"])
def test_fused_scan_gradient_equals_step_by_step_autograd(kind, reset, surrogate):
    rng = np.random.default_rng(1)
    exe = compile(_graph(NEURONS[kind](reset, rng), rng), dtype=torch.float64, surrogate=surrogate, slope=2.0)
    x = torch.as_tensor((rng.random((30, 4, 5)) < 0.4).astype(float))
    w = torch.as_tensor(rng.normal(size=(30, 4, 7)))
    fused = exe(x)["out"]  # no recording: the fused scan
    (fused * w).sum().backward()
    g_fused = exe.nodes["fc"].weight.grad.clone()
    exe.zero_grad()
    stepped, _ = exe(x, record=["n"])  # recording runs the step-by-step form under autograd
    (stepped["out"] * w).sum().backward()
    g_step = exe.nodes["fc"].weight.grad
    assert torch.equal(fused, stepped["out"])
    assert g_step.abs().max() > 0
    torch.testing.assert_close(g_fused, g_step, rtol=1e-10, atol=1e-12)


def test_spiking_scan_backward_by_hand():
    # one IF neuron, subtract reset, theta 1: x = [0.6, 0.6] -> v* = [0.6, 1.2], s = [0, 1]
    sp = spike_fn("fast_sigmoid", 1.0)
    x = torch.tensor([[0.6], [0.6]], dtype=torch.float64, requires_grad=True)
    s = spiking_scan(x, torch.zeros((), dtype=torch.float64), theta=1.0, reset="subtract", spike=sp)
    assert s.flatten().tolist() == [0.0, 1.0]
    s[1].sum().backward()
    d1 = 1 / (1 + abs(1.2 - 1.0)) ** 2  # ds_1/dv*_1
    # ds_1/dx_1 = d1; ds_1/dx_0 = d1 * dv*_1/dv*_0 = d1 * (1 - theta * ds_0/dv*_0)
    d0 = 1 / (1 + abs(0.6 - 1.0)) ** 2
    assert x.grad.flatten().tolist() == pytest.approx([d1 * (1 - d0), d1])


def test_linear_scan_is_a_leaky_sum_with_transposed_gradient():
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64, requires_grad=True)
    y = linear_scan(x, torch.tensor(0.5, dtype=torch.float64), a=0.5)
    assert y.flatten().tolist() == [1.25, 2.625, 4.3125]
    y.sum().backward()
    assert x.grad.flatten().tolist() == [1.75, 1.5, 1.0]


def test_training_through_the_executor_lowers_the_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    g = Graph(name="clf")
    g.add("x", Input(shape=(10,)))
    g.add("fc1", Dense(weight=rng.normal(0, 0.3, (16, 10)), bias=np.zeros(16)), "x")
    g.add("lif", LIF(tau=5.0, r=5.0), "fc1")
    g.add("fc2", Dense(weight=rng.normal(0, 0.3, (2, 16))), "lif")
    g.add("li", LI(tau=5.0, r=5.0), "fc2")
    g.add("out", Output(), "li")
    exe = compile(g, dtype=torch.float32)
    # two classes: which half of the inputs fires more
    labels = torch.arange(32) % 2
    p = torch.full((32, 10), 0.1)
    p[labels == 0, :5] = 0.6
    p[labels == 1, 5:] = 0.6
    x = (torch.rand(20, 32, 10) < p).float()
    opt = torch.optim.Adam(exe.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(exe(x)["out"].mean(0), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # trained weights go back into the IR, and the reference interpreter agrees with the executor
    g2 = exe.to_graph()
    assert not np.array_equal(g2.nodes["fc1"].weight, g.nodes["fc1"].weight)
    np.testing.assert_allclose(g2.nodes["fc1"].weight, exe.nodes["fc1"].weight.detach().double().numpy())
    from n3ml.ir import interp
    ref = interp.run(g2, x.double().numpy()).outputs["out"]
    with torch.no_grad():
        got = compile(g2, dtype=torch.float64)(x.double())["out"].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_parameters_are_named_after_nodes_and_fixed_weights_are_frozen():
    rng = np.random.default_rng(0)
    exe = compile(_graph(IF(), rng))
    assert {n for n, _ in exe.named_parameters()} == {"nodes.fc.weight", "nodes.fc.bias"}
    from n3ml.ir import FixedCubaLIF
    g = Graph(name="q")
    g.add("x", Input(shape=(3,)))
    g.add("fc", Dense(weight=np.array([[1, -2, 3]], np.int64)), "x")
    g.add("n", FixedCubaLIF(du=4096, dv=0, theta=100), "fc")
    g.add("out", Output(), "n")
    q = compile(g)
    assert q.fixed and not q.nodes["fc"].weight.requires_grad
    assert q.to_graph().nodes["fc"].weight.dtype == np.int64
