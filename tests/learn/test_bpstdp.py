import numpy as np
import pytest
import torch

from n3ml.errors import N3mlError
from n3ml.ir.interp import run as ir_run
from n3ml.learn.bpstdp import BPSTDPNet
from n3ml.learn.data import load_split, xor
from n3ml.learn.encoders import poisson


def _one_layer(w):
    net = BPSTDPNet([3, 2], theta=1.0, eps=2, lr=0.1)
    net.weights = [torch.tensor(w, dtype=torch.float64)]
    return net


def test_missing_target_spike_potentiates_recent_inputs_only():
    # label neuron 0 never reaches threshold: every step xi_0 = +1 and the inputs that
    # spiked within the last eps = 2 steps are potentiated by lr * count
    net = _one_layer([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    spikes = torch.zeros((3, 1, 3), dtype=torch.float64)
    spikes[0, 0, 0] = 1  # input 0 at t=0: in the window at t=0, 1
    spikes[2, 0, 1] = 1  # input 1 at t=2: in the window at t=2
    net.run(spikes, torch.tensor([0]))
    w = net.weights[0]
    assert w[0, 0] > 0 and w[0, 1] > 0 and w[0, 2] == 0  # input 2 never spiked: untouched
    assert torch.all(w[1] == 0)  # neuron 1 is silent and not the label: no error, no change
    assert float(w[0, 0]) == pytest.approx(0.2)  # counted at t=0 and t=1
    assert float(w[0, 1]) == pytest.approx(0.1)


def test_unwanted_spike_depresses_the_inputs_that_caused_it():
    net = _one_layer([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    spikes = torch.zeros((2, 1, 3), dtype=torch.float64)
    spikes[1, 0, 0] = 1
    out = net.run(spikes, torch.tensor([0]))
    assert out[1, 0, 1] == 1  # neuron 1 (not the label) fired at t=1
    w = net.weights[0]
    assert w[1, 0] < 2.0 and w[1, 1] == 2.0  # only the input that spiked is depressed


def test_hidden_error_flows_back_through_the_output_weights():
    net = BPSTDPNet([2, 2, 2], theta=0.5, eps=3, lr=0.1)
    net.weights = [torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
                   torch.tensor([[0.2, -0.3], [0.0, 0.0]], dtype=torch.float64)]
    spikes = torch.ones((1, 1, 2), dtype=torch.float64)  # both hidden neurons fire, output 0 does not
    w_hidden = net.weights[0].clone()
    net.run(spikes, torch.tensor([0]))
    dw = net.weights[0] - w_hidden
    # delta_h = xi_0 * W_0h = (+1) * (0.2, -0.3): hidden 0's inputs potentiated, hidden 1's depressed
    assert torch.allclose(dw, 0.1 * torch.tensor([[0.2, 0.2], [-0.3, -0.3]], dtype=torch.float64))


def test_xor_is_learned():
    g = torch.Generator().manual_seed(0)
    x, y = xor()
    xx, yy = torch.tensor(np.c_[x, 1 - x]), torch.tensor(y)
    net = BPSTDPNet([4, 20, 2], lr=0.005, seed=0)
    for _ in range(60):
        net.fit_epoch(xx, yy, steps=30, generator=g)
    assert torch.equal(net.predict(xx, steps=30, generator=g), yy)


def test_digits_learning_and_ir_reproduces_spikes():
    g = torch.Generator().manual_seed(0)
    d = load_split("digits", test_size=0.25, seed=0)
    xtr, ytr = torch.tensor(d.x_train[:500]), torch.tensor(d.y_train[:500])
    xte, yte = torch.tensor(d.x_test[:200]), torch.tensor(d.y_test[:200])
    net = BPSTDPNet([64, 40, 10], lr=0.003, seed=0)
    before = float((net.predict(xte, steps=20, generator=g) == yte).float().mean())
    net.fit_epoch(xtr, ytr, steps=20, batch_size=16, generator=g)
    net.fit_epoch(xtr, ytr, steps=20, batch_size=16, generator=g)
    after = float((net.predict(xte, steps=20, generator=g) == yte).float().mean())
    assert after > 0.6 and after > before + 0.3  # chance is 0.1
    spikes = poisson(xte[:20].double(), 20, generator=g)
    ours = net.run(spikes).numpy()
    ir = ir_run(net.to_graph(), {"x": spikes.numpy()}).outputs["out"]
    assert ours.sum() > 0 and np.array_equal(ours, ir)


def test_bad_arguments_are_refused():
    with pytest.raises(N3mlError, match="sizes"):
        BPSTDPNet([4])
    with pytest.raises(N3mlError, match="expects 4 inputs"):
        BPSTDPNet([4, 2]).run(torch.zeros(3, 1, 5))
