"""Delay(detach=true): the same values, no gradient back through it (docs/semantics.md §5a)."""

import torch

from n3ml.backends.torch.executor import Executor
from n3ml.ir import text

SRC = """n3ml 1
graph g(dt=1.0ms) {{
  x = Input(shape=(3,), kind=analog)
  fc = Dense(x, weight=tensor<f64>(3, 3)[0.5, -0.2, 0.1, 0.3, 0.8, -0.4, 0.2, 0.1, 0.9])
  n = LIF(fc_in, tau=5.0ms, theta=0.3)
  d = Delay(n, steps=1{flag})
  back = Scale(d, factor=-0.25)
  fc_in = Add(fc, back)
  y = Output(n)
}}
"""


def _grad(flag: str, in_cycle: bool = True):
    g = text.parse(SRC.format(flag=flag))
    ex = Executor(g, dtype=torch.float64)
    torch.manual_seed(0)
    x = (torch.rand(20, 2, 3, dtype=torch.float64) * 2).requires_grad_()
    out = ex({"x": x})["y"]
    out.sum().backward()
    return out.detach(), x.grad.clone(), ex.nodes.fc.weight.grad.clone()


def test_detached_delay_keeps_values_and_cuts_the_gradient_in_a_cycle():
    out0, gx0, gw0 = _grad("")
    out1, gx1, gw1 = _grad(", detach=true")
    torch.testing.assert_close(out1, out0, rtol=0, atol=0)
    assert out0.sum() > 0 and not torch.allclose(gw1, gw0)
    assert gw1.abs().max() > 0


def test_detached_delay_outside_a_cycle():
    src = """n3ml 1
graph g(dt=1.0ms) {
  x = Input(shape=(2,), kind=analog)
  d = Delay(x, steps=2, detach=true)
  k = Delay(x, steps=2)
  s = Add(d, k)
  y = Output(s)
}
"""
    ex = Executor(text.parse(src), dtype=torch.float64)
    x = torch.rand(6, 1, 2, dtype=torch.float64, requires_grad=True)
    y = ex({"x": x})["y"]
    torch.testing.assert_close(y[2:], 2 * x[:-2])
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.cat([torch.ones(4, 1, 2), torch.zeros(2, 1, 2)]).double())
