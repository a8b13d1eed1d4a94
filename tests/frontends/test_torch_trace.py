"""Tracing n3ml.nn models and plain torch layers; errors for what the IR cannot express."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import n3ml.nn as snn
from n3ml.errors import UnsupportedError
from n3ml.frontends.torch import trace
from n3ml.ir import Output
from n3ml.ir.interp import run as interp_run

from .helpers import assert_same_spikes, boost, run_graph

T, B = 20, 3


def _x(*shape, seed=0):
    torch.manual_seed(seed)
    return torch.rand(T, B, *shape, dtype=torch.float64)


# ------------------------------------------------------------------- n3ml.nn


def test_n3ml_mlp_same_spikes_and_readout():
    torch.manual_seed(0)
    hidden = boost(nn.Sequential(nn.Linear(10, 20), snn.LIF(tau=5.0, theta=0.5),
                                 nn.Linear(20, 8), snn.CubaLIF(tau_syn=3.0, tau_mem=6.0, theta=0.2),
                                 nn.Linear(8, 6), snn.ALIF(tau=8.0, tau_adapt=30.0, q=0.2, theta=0.3))).double()
    model = nn.Sequential(hidden, nn.Linear(6, 3).double(), snn.LI(tau=4.0))
    graph = trace(model, (10,))
    assert [p.op for p in graph.nodes.values() if p.category == "neuron"] == ["LIF", "CubaLIF", "ALIF", "LI"]
    (alif,) = [n for n, p in graph.nodes.items() if p.op == "ALIF"]
    graph.add("spikes", Output(), alif)
    x = _x(10)
    with torch.no_grad():
        assert_same_spikes(graph, x, hidden(x).numpy(), out="spikes")
        readout = model(x).numpy()
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_allclose(got, readout, rtol=0, atol=1e-12, err_msg=engine)


def test_n3ml_conv_same_spikes():
    torch.manual_seed(1)
    model = boost(nn.Sequential(snn.TimeDistributed(nn.Conv2d(1, 4, 3, padding=1)), snn.IF(theta=0.8),
                                snn.TimeDistributed(nn.AvgPool2d(2)), snn.TimeDistributed(nn.Flatten()),
                                nn.Linear(64, 5), snn.LIF(tau=3.0, theta=0.4, reset="to-value", refractory=2)),
                  2.0, 0.3).double()
    graph = trace(model, (1, 8, 8))
    x = _x(1, 8, 8, seed=1)
    with torch.no_grad():
        assert_same_spikes(graph, x, model(x).numpy())


def test_n3ml_dt_and_scheme_come_from_the_modules():
    model = nn.Sequential(nn.Linear(4, 4), snn.LIF(tau=5.0, dt=0.5, scheme="euler"))
    graph = trace(model, (4,))
    assert (graph.dt, graph.scheme) == (0.5, "euler")
    with pytest.raises(UnsupportedError, match="share dt and scheme"):
        trace(nn.Sequential(model, snn.LIF(tau=5.0, dt=1.0)), (4,))


def test_n3ml_poisson_encoder():
    torch.manual_seed(2)
    model = nn.Sequential(snn.PoissonRate(gain=1.0, seed=3), boost(nn.Linear(6, 4)), snn.IF(theta=0.5)).double()
    graph = trace(model, (6,))
    x = _x(6, seed=2)
    with torch.no_grad():
        assert_same_spikes(graph, x, model(x).numpy())


# -------------------------------------------------------------- plain torch


class Block(nn.Module):
    """Residual add, concatenation, functional ops and view-flattening."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding="same")
        self.side = nn.Conv2d(2, 3, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(7 * 4 * 4, 5)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        h = self.conv2(h) + h
        h = torch.cat([h, self.side(x)], dim=1)
        h = self.drop(self.pool(h))
        y = self.fc(h.view(h.size(0), -1))
        return torch.softmax(y, dim=-1), y * 2.0 - y / 4


def test_ann_layers_compute_the_same():
    torch.manual_seed(4)
    model = Block().double()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    graph = trace(model, (2, 8, 8))
    ops = {p.op for p in graph.nodes.values()}
    assert {"Conv2d", "BatchNorm", "ReLU", "Add", "Concat", "MaxPool2d", "Flatten", "Dense", "Softmax",
            "Scale"} <= ops
    x = _x(2, 8, 8, seed=4)[:3]
    with torch.no_grad():
        expected = [torch.stack([model(x[t])[i] for t in range(3)]).numpy() for i in range(2)]
    res = interp_run(graph, {graph.input_names[0]: x.numpy()}).outputs
    for i, name in enumerate(["out0", "out1"]):
        np.testing.assert_allclose(res[name], expected[i], rtol=1e-10, atol=1e-12)


def test_unsupported_module_names_path_and_supported_list():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Tanh()))
    with pytest.raises(UnsupportedError, match=r"module `1\.0` \(torch\.nn\.modules\.activation\.Tanh\).*"
                                               r"supported: .*torch\.Linear"):
        trace(model, (4,))


def test_unsupported_function_is_named():
    class M(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    with pytest.raises(UnsupportedError, match=r"sigmoid.*is not supported; supported: "):
        trace(M(), (4,))


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(UnsupportedError, match=r"module `0`.*expected input shape \(10,\).*found \(9,\)"):
        trace(nn.Sequential(nn.Linear(10, 3)), (9,))


def test_data_dependent_control_flow_is_refused():
    class M(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(UnsupportedError,
                       match=r"data-dependent control flow.*test_torch_trace.py:\d+: return x if x.sum"):
        trace(M(), (4,))


def test_tracing_leaves_the_training_flags_alone():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(), nn.BatchNorm1d(4)).train()
    model[2].eval()
    trace(model, (4,))
    assert [m.training for m in model.modules()] == [True, True, True, False]
