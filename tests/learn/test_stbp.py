import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from n3ml.errors import N3mlError
from n3ml.ir.interp import run as ir_run
from n3ml.learn.data import load_split
from n3ml.learn.stbp import STBPNet, rate_mse
from n3ml.train import Trainer


def test_dynamics_are_the_papers_iterative_lif():
    # u_t = k u_{t-1} (1 - o_{t-1}) + I_t, o_t = [u_t > V_th], with k = 0.5, V_th = 0.5
    net = STBPNet([1, 1], steps=6, k_tau=0.5, v_th=0.5)
    with torch.no_grad():
        net.fcs[0].weight.fill_(1.0)
        net.fcs[0].bias.zero_()
    out = net(torch.tensor([[0.3]]))[:, 0, 0].tolist()
    u, want = 0.0, []
    for _ in range(6):
        u = 0.5 * u + 0.3
        o = 1.0 if u > 0.5 else 0.0
        want.append(o)
        u = 0.0 if o else u
    assert out == want and sum(want) > 0


def test_surrogate_is_rectangular_of_width_a():
    net = STBPNet([1, 1], steps=1, k_tau=0.5, v_th=0.5, a=0.4)
    with torch.no_grad():
        net.fcs[0].weight.fill_(1.0)
        net.fcs[0].bias.zero_()
    grads = []
    for u in (0.25, 0.35, 0.65, 0.75):  # |u - V_th| = 0.25, 0.15, 0.15, 0.25 against a / 2 = 0.2
        x = torch.tensor([[u]], requires_grad=True)
        net(x).sum().backward()
        grads.append(float(x.grad))
    assert grads == pytest.approx([0.0, 1 / 0.4, 1 / 0.4, 0.0])


def test_digits_learning_and_ir_reproduces_spikes():
    torch.manual_seed(0)
    d = load_split("digits", test_size=0.25, seed=0)
    net = STBPNet([64, 64, 10], steps=6)
    xte, yte = torch.tensor(d.x_test), torch.tensor(d.y_test)
    w0 = net.fcs[0].weight.detach().clone()
    acc0 = float((net.predict(xte) == yte).float().mean())
    train = TensorDataset(torch.tensor(d.x_train[:600]), torch.tensor(d.y_train[:600]))
    Trainer(net, torch.optim.Adam(net.parameters(), 2e-3), loss_fn=rate_mse, progress=False).fit(
        train, 3, batch_size=32)
    acc = float((net.predict(xte) == yte).float().mean())
    assert acc > 0.75 and acc > acc0 + 0.4  # chance is 0.1
    assert not torch.equal(w0, net.fcs[0].weight)
    x = d.x_test[:40].astype(np.float64)
    ir = ir_run(net.to_graph(), {"x": np.repeat(x[None], 6, axis=0)}).outputs["out"]
    with torch.no_grad():
        ours = net.double()(torch.tensor(x)).numpy()
    assert ours.sum() > 0 and np.array_equal(ours, ir)


def test_bad_arguments_are_refused():
    with pytest.raises(N3mlError, match="k_tau"):
        STBPNet([4, 2], k_tau=1.5)
    g = STBPNet([4, 3, 2]).to_graph()
    assert [type(p).__name__ for _, p in g] == ["Input", "Dense", "LIF", "Dense", "LIF", "Output"]
