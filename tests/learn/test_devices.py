"""Every algorithm runs where its data lives (CUDA cases are skipped on machines without a GPU)."""

import pytest
import torch

from n3ml.learn import spikeprop as sp
from n3ml.learn.bpstdp import BPSTDPNet
from n3ml.learn.encoders import poisson
from n3ml.learn.softlif import DigitsCNN
from n3ml.learn.stbp import STBPNet, rate_mse
from n3ml.learn.stdp import DiehlCook, DiehlCookConfig

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
def test_algorithms_follow_the_device_of_their_data(device):
    dev = torch.device(device)
    # SpikeProp: module moved to the device, spike times computed there, gradients too
    net = sp.SpikePropNet([3, 4, 2], generator=torch.Generator().manual_seed(0)).to(dev)
    t_in = torch.tensor([[0.0, 6.0, 0.0], [6.0, 0.0, 0.0]], device=dev)
    y = torch.tensor([1, 1], device=dev)
    res = sp.fit(net, t_in, sp.class_targets(y, 2, 10.0, 16.0), y, epochs=2, batch_size=2)
    assert len(res.losses) == 2 and net(t_in)[0].device.type == dev.type
    # STDP
    m = DiehlCook(8, DiehlCookConfig(n_exc=5, steps=10), device=dev)
    m.train_epoch(torch.rand(3, 8, device=dev))
    assert m.weight.device.type == dev.type and m.counts(torch.rand(2, 8, device=dev)).device.type == dev.type
    # BP-STDP
    b = BPSTDPNet([8, 6, 3], device=dev)
    g = torch.Generator(device=dev).manual_seed(0)
    b.run(poisson(torch.rand(2, 8, device=dev), 5, generator=g), torch.tensor([0, 2], device=dev))
    assert b.weights[0].device.type == dev.type
    # STBP and Soft LIF: ordinary modules
    s = STBPNet([8, 6, 3]).to(dev)
    rate_mse(s.rates(torch.rand(2, 8, device=dev)), torch.tensor([0, 1], device=dev)).backward()
    assert s.fcs[0].weight.grad.device.type == dev.type
    c = DigitsCNN(c1=2, c2=2).to(dev)
    assert c(torch.rand(2, 1, 8, 8, device=dev)).device.type == dev.type
