"""The spiking scan's backward pass works in chunks of steps (scratch buffers sized by
scan.CHUNK_ELEMENTS): any chunking gives the same gradient, bit for bit, for every reset, with
and without decay, detached or not (the bulk work per chunk is element-wise, the recurrence runs
step by step across chunk boundaries)."""

import pytest
import torch

from n3ml.backends.torch import scan
from n3ml.nn import spike_fn


def _grad(x0, gw, **kw):
    x = x0.clone().requires_grad_()
    s = scan.spiking_scan(x * 1.0, torch.zeros((), dtype=x0.dtype), inplace=True, **kw)
    (s * gw).sum().backward()
    return s.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("a", [None, 0.8, "per-neuron"])
@pytest.mark.parametrize("reset", ["subtract", "to-value", "none"])
def test_backward_chunking_does_not_change_the_gradient(monkeypatch, reset, a, detach, dtype):
    g = torch.Generator().manual_seed(3)
    T, B, n = 23, 3, 5
    x0 = (torch.randn(T, B, n, generator=g, dtype=dtype) * 0.6 + 0.3)
    gw = torch.randn(T, B, n, generator=g, dtype=dtype)
    if a == "per-neuron":
        a = torch.rand(n, generator=g, dtype=dtype) * 0.5 + 0.4
    kw = dict(a=a, theta=torch.full((n,), 0.9, dtype=dtype), reset=reset, v_reset=-0.1,
              spike=spike_fn("arctan", None), detach_reset=detach)
    s_one, g_one = _grad(x0, gw, **kw)  # one chunk holds all 23 steps
    assert 0 < float(s_one.sum()) < s_one.numel()
    for steps in (1, 4, 7):  # chunks of 1, 4 and 7 steps: the last one partial
        monkeypatch.setattr(scan, "CHUNK_ELEMENTS", steps * B * n)
        s, gx = _grad(x0, gw, **kw)
        assert torch.equal(s, s_one)
        assert torch.equal(gx, g_one)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["IF", "LIF", "CubaLIF"])
def test_reset_to_zero_equals_the_step_path(kind, dtype, grad):
    """A reset to the number 0 runs as v* - s v* in both loops of the scan (scan._zero_reset): the same
    spikes as the step path (n3ml.ir.neurons.step), bit for bit, and the same gradient."""
    from n3ml.backends.torch import compile
    from n3ml.ir import IF, LIF, CubaLIF, Dense, Graph, Input, Output

    from .test_scan_vs_step import _Run

    prim = {"IF": IF(theta=0.8, reset="to-value", v_reset=0.0),
            "LIF": LIF(tau=4.0, r=2.0, v_leak=0.1, theta=0.8, reset="to-value", v_reset=0.0),
            "CubaLIF": CubaLIF(tau_syn=3.0, tau_mem=6.0, r=4.0, theta=0.8, reset="to-value", v_reset=0.0)}[kind]
    g = Graph(name="g", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(5,), kind="analog"))
    rng = torch.Generator().manual_seed(5)
    g.add("fc", Dense(weight=(torch.randn(6, 5, generator=rng, dtype=torch.float64) * 0.6 + 0.2).numpy()), "x")
    g.add("n", prim, "fc")
    g.add("out", Output(), "n")
    exe = compile(g, dtype=dtype)
    T, B = 40, 3
    drive = torch.randn(T, B, 6, generator=rng, dtype=dtype) * 0.7 + 0.3
    w = torch.randn(T, B, 6, generator=rng, dtype=dtype)
    runs = []
    for states in (None, {}):  # the fused scan; the step path (a neuron that records steps)
        x = drive.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            s = exe.nodes["n"].bulk([x * 1 if grad else x.clone()], _Run(T, B), states)
            if grad:
                (s * w).sum().backward()
        runs.append((s.detach(), x.grad))
    (s_fused, g_fused), (s_step, g_step) = runs
    assert torch.equal(s_fused, s_step)
    assert 0 < float(s_step.sum()) < s_step.numel()
    if grad:
        torch.testing.assert_close(g_fused, g_step, rtol=1e-10 if dtype == torch.float64 else 1e-5, atol=1e-12)


def test_backward_twice_with_retain_graph_gives_the_same_gradient():
    """The gradient is written over the saved v* only when the backward pass frees the graph: with
    retain_graph=True the second pass reads the same v* and gives the same gradient."""
    g = torch.Generator().manual_seed(8)
    x0 = torch.randn(30, 4, 6, generator=g, dtype=torch.float64) * 0.6 + 0.3
    w = torch.randn(30, 4, 6, generator=g, dtype=torch.float64)
    x = x0.clone().requires_grad_()
    s = scan.spiking_scan(x * 1.0, torch.zeros((), dtype=x.dtype), a=0.9, theta=1.0, reset="subtract",
                          spike=spike_fn("fast_sigmoid", None), inplace=True)
    loss = (s * w).sum()
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    loss.backward()
    assert torch.equal(x.grad, first)
    assert first.abs().max() > 0
    _, once = _grad(x0, w, a=0.9, theta=1.0, reset="subtract", spike=spike_fn("fast_sigmoid", None))
    assert torch.equal(once, first)  # a backward that frees the graph (gradient over v*): the same values
