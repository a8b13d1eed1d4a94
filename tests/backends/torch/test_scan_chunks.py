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
