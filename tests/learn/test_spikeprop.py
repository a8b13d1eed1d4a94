import math

import numpy as np
import pytest
import torch

from n3ml.errors import N3mlError
from n3ml.ir.interp import run as ir_run
from n3ml.learn import spikeprop as sp
from n3ml.learn.data import xor
from n3ml.learn.encoders import GaussianReceptiveFields


def test_srm_kernel_hand_values():
    s = torch.tensor([-1.0, 0.0, 3.5, 7.0, 14.0])
    e = sp.srm_kernel(s, 7.0)
    want = [0.0, 0.0, 0.5 * math.exp(0.5), 1.0, 2.0 * math.exp(-1.0)]
    assert torch.allclose(e, torch.tensor(want), atol=1e-6)


def _layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = sp.SpikePropLayer(3, 2, delays=(1.0, 3.0, 5.0), tau=5.0, t_max=40.0, dt=0.05, min_slope=1e-6,
                              generator=g).double()
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=g, dtype=torch.float64) * 0.5 + 0.2)
    return layer


def test_spike_time_is_the_threshold_crossing_and_gradients_match_the_paper():
    layer = _layer()
    t_in = torch.tensor([[0.0, 2.0, 4.0]], dtype=torch.float64, requires_grad=True)
    t_out, _ = layer(t_in)
    assert torch.isfinite(t_out).all()
    # the potential crosses theta exactly at t_out and is below it just before
    u = layer.potential(t_out.detach(), t_in.detach())  # (1, J, J): u_j at every t_j
    assert torch.allclose(torch.diagonal(u[0]), torch.full((2,), layer.theta, dtype=torch.float64), atol=1e-9)
    u_before = layer.potential(t_out.detach() - 0.05, t_in.detach())
    assert (torch.diagonal(u_before[0]) < layer.theta).all()
    # SpikeProp (eq. 10): dt_j/dw_ijk = -eps(t_j - t_i - d_k) / u_j'(t_j)
    t_out[0, 0].backward()
    s = t_out[0, 0].detach() - t_in.detach()[0][:, None] - layer.delays
    slope = (sp._srm_slope(s, layer.tau) * layer.weight[0].detach()).sum()
    want = -sp.srm_kernel(s, layer.tau) / slope
    assert torch.allclose(layer.weight.grad[0], want, rtol=1e-3, atol=1e-9)  # slope taken before the Newton step
    assert torch.allclose(layer.weight.grad[1], torch.zeros_like(want))
    # and the gradient is the true sensitivity of the crossing time (finite differences)
    h = 1e-6
    with torch.no_grad():
        layer.weight[0, 1, 2] += h
        t_plus, _ = layer(t_in.detach())
    fd = (t_plus[0, 0] - t_out[0, 0].detach()) / h
    assert float(fd) == pytest.approx(float(want[1, 2]), rel=1e-3)
    # later input spikes delay the output: dt_j/dt_i > 0 for excitatory weights
    assert (t_in.grad[0] >= 0).all() and t_in.grad[0].sum() > 0


def test_silent_inputs_and_outputs_are_inf():
    layer = _layer()
    t_in = torch.tensor([[math.inf, math.inf, math.inf]], dtype=torch.float64)
    t_out, peak = layer(t_in)
    assert torch.isinf(t_out).all() and (peak == 0).all()


def test_xor_is_learned():
    g = torch.Generator().manual_seed(0)
    x, y = xor()
    t_in = torch.tensor(np.c_[x * 6.0, np.zeros(4)], dtype=torch.float32)
    y = torch.tensor(y)
    net = sp.SpikePropNet([3, 5, 2], generator=g, t_max=30.0)
    w0 = [p.detach().clone() for p in net.parameters()]
    res = sp.fit(net, t_in, sp.class_targets(y, 2, 10.0, 16.0), y, epochs=120, lr=0.01, batch_size=4, generator=g)
    assert res.losses[-1] < 0.05 * res.losses[0]
    assert (net.predict(t_in) == y).all()
    t_out, _ = net(t_in)
    want = sp.class_targets(y, 2, 10.0, 16.0)
    assert torch.allclose(t_out, want, atol=0.5)
    assert any(not torch.equal(a, b) for a, b in zip(w0, net.parameters()))

    # the IR graph samples the same SRM on a 0.1 ms grid: every spike lands on the first
    # grid step at or after the model's spike time (hidden layer exactly; the output
    # layer sees hidden spikes delayed by < dt, so allow a few steps)
    dt = 0.1
    res = ir_run(net.to_graph(dt=dt), sp.spike_trains(t_in, dt, 300), record=["l1"])
    hidden_ir = sp.first_spike_times(res.states["l1"], dt)
    hidden = net.layers[0](t_in)[0].detach().double().numpy()
    assert np.all(np.isfinite(hidden))
    assert np.all((hidden_ir >= hidden - 1e-6) & (hidden_ir < hidden + dt + 1e-6))
    out_ir = sp.first_spike_times(res.outputs["out"], dt)
    assert np.allclose(out_ir, t_out.detach().double().numpy(), atol=3 * dt)
    assert np.array_equal(out_ir.argmin(axis=1), y.numpy())


def test_receptive_fields_fire_earliest_near_their_centre():
    enc = GaussianReceptiveFields(m=5, t_max=10.0, t_cut=9.0).fit(np.array([[0.0], [1.0]]))
    t = enc.encode(np.array([[0.5]]))[0]
    assert t.shape == (5,) and t[2] == 0.0  # centre field (mu = 0.5) fires at once
    assert np.isinf(t[0]) and np.isinf(t[4])  # far fields stay silent
    assert t[1] == t[3] and 0 < t[1] < 9
    with pytest.raises(N3mlError, match="before fit"):
        GaussianReceptiveFields().encode(np.zeros((1, 1)))


def test_iris_is_learned_from_receptive_fields():
    from n3ml.learn.data import load_split

    g = torch.Generator().manual_seed(0)
    d = load_split("iris", test_size=0.5, seed=1)
    enc = GaussianReceptiveFields(m=8).fit(d.x_train)

    def times(x):
        t = torch.tensor(enc.encode(x))
        return torch.cat([t, torch.zeros(len(t), 1)], dim=1)

    xtr, xte = times(d.x_train), times(d.x_test)
    ytr, yte = torch.tensor(d.y_train), torch.tensor(d.y_test)
    net = sp.SpikePropNet([xtr.shape[1], 6, 3], generator=g, t_max=30.0, dt=0.25)
    sp.fit(net, xtr, sp.class_targets(ytr, 3, 15.0, 19.0), ytr, epochs=8, lr=0.01, batch_size=8, generator=g)
    assert float((net.predict(xte) == yte).float().mean()) > 0.85  # chance is 1/3
