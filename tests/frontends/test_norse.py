"""Norse models traced to the IR give the same spikes (and readout voltages) as Norse at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

norse = pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402

from .helpers import assert_same_spikes, boost, run_graph  # noqa: E402

pytestmark = pytest.mark.peers
T, B = 25, 3
P = norse.LIFParameters(tau_mem_inv=torch.tensor(150.0), tau_syn_inv=torch.tensor(300.0), v_th=torch.tensor(0.4))


def run_cells(model, x):
    """SequentialState over time, the state carried by Norse."""
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = model(x[t], state)
            outs.append(y)
    return torch.stack(outs).double().numpy()


def _x(*shape, seed=0):
    torch.manual_seed(seed)
    return torch.rand(T, B, *shape, dtype=torch.float64)


def test_lifcell_mlp_is_cubalif_with_same_spikes():
    torch.manual_seed(0)
    model = boost(norse.SequentialState(nn.Linear(10, 20), norse.LIFCell(P), nn.Linear(20, 5),
                                        norse.LIFCell(P))).double()
    graph = trace(model, (10,))
    assert [p.op for p in graph.nodes.values()].count("CubaLIF") == 2
    assert graph.dt == pytest.approx(1.0) and graph.scheme == "euler"  # Norse's dt=1e-3 s
    x = _x(10)
    assert_same_spikes(graph, x, run_cells(model, x))


def test_lifboxcell_conv_same_spikes():
    torch.manual_seed(1)
    box = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.3))
    model = boost(norse.SequentialState(nn.Conv2d(1, 4, 3), norse.LIFBoxCell(box), nn.AvgPool2d(2), nn.Flatten(),
                                        nn.Linear(36, 5), norse.LIFBoxCell(box)), 4.0, 0.5).double()
    graph = trace(model, (1, 8, 8))
    x = _x(1, 8, 8, seed=1)
    assert_same_spikes(graph, x, run_cells(model, x))


def test_recurrent_cell_and_li_readout_match():
    torch.manual_seed(2)
    model = boost(norse.SequentialState(nn.Linear(10, 16), norse.LIFRecurrentCell(16, 16, p=P), nn.Linear(16, 4),
                                        norse.LICell())).double()
    with torch.no_grad():
        model[1].input_weights.mul_(3.0)
    graph = trace(model, (10,))
    x = _x(10, seed=2)
    expected = run_cells(model, x)
    spikes = run_cells(norse.SequentialState(model[0], model[1]), x)
    assert 0.02 < spikes.mean() < 0.9
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=engine)


def test_lif_over_time_same_spikes():
    torch.manual_seed(3)
    model = boost(norse.SequentialState(nn.Linear(10, 20), norse.LIF(P), nn.Linear(20, 5), norse.LIF(P))).double()
    graph = trace(model, (10,))
    x = _x(10, seed=3)
    with torch.no_grad():
        expected = model(x)[0].numpy()
    assert_same_spikes(graph, x, expected)


def test_recurrent_over_time_same_spikes():
    torch.manual_seed(4)
    model = norse.SequentialState(nn.Linear(10, 16), norse.LIFRecurrent(16, 12, p=P)).double()
    with torch.no_grad():
        model[1].input_weights.mul_(3.0)
        model[1].recurrent_weights.mul_(2.0)
    graph = trace(model, (10,))
    x = _x(10, seed=4)
    with torch.no_grad():
        expected = model(x)[0].numpy()
    assert_same_spikes(graph, x, expected)


def test_unsupported_cell_is_named():
    model = norse.SequentialState(nn.Linear(4, 4), norse.LIFExCell())
    with pytest.raises(UnsupportedError, match=r"module `1` \(norse\..*LIFExCell\).*supported: .*LIFCell"):
        trace(model, (4,))


@pytest.mark.parametrize("dt, scheme", [(0.25, "euler"), (2.0, "exact")])
def test_graph_dt_and_scheme_do_not_change_the_spikes(dt, scheme):
    """The per-step factors are preserved whatever dt/scheme the graph is expressed in."""
    torch.manual_seed(0)
    model = boost(norse.SequentialState(nn.Linear(10, 20), norse.LIFCell(P), nn.Linear(20, 5),
                                        norse.LIFCell(P))).double()
    graph = trace(model, (10,), dt=dt, scheme=scheme)
    assert (graph.dt, graph.scheme) == (dt, scheme)
    x = _x(10)
    assert_same_spikes(graph, x, run_cells(model, x))


LSNN_P = norse.LSNNParameters(tau_mem_inv=torch.tensor(150.0), tau_syn_inv=torch.tensor(300.0),
                              tau_adapt_inv=torch.tensor(40.0), v_th=torch.tensor(0.4), beta=torch.tensor(0.3))


@pytest.mark.parametrize("recurrent", [False, True])
def test_lsnn_cells_are_alif_with_same_spikes(recurrent):
    """LSNNCell / LSNNRecurrentCell: an ALIF (threshold v_th + b, b jumping by beta) fed the previous step's
    current; the adaptation is exercised (later spikes need more drive) and the spikes are identical."""
    torch.manual_seed(6)
    cell = norse.LSNNRecurrentCell(16, 16, p=LSNN_P) if recurrent else norse.LSNNCell(LSNN_P)
    model = boost(norse.SequentialState(nn.Linear(10, 16), cell, nn.Linear(16, 5), norse.LSNNCell(LSNN_P)),
                  4.0, 0.5).double()
    graph = trace(model, (10,))
    assert [p.op for p in graph.nodes.values()].count("ALIF") == 2
    x = _x(10, seed=6)
    with torch.no_grad():
        state = None
        for t in range(T):
            _, state = model(x[t], state)
    assert float(state[1].b.max()) > float(LSNN_P.v_th) + 0.2  # thresholds adapted
    assert_same_spikes(graph, x, run_cells(model, x))


def test_constant_current_encoder_holds_the_input():
    """norse.ConstantCurrentLIFEncoder(seq_length) inside forward (norse/task/mnist.py form): the static input
    held for seq_length steps into a LIF; the graph records the hold and gives the same spikes."""
    class Encoded(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = norse.ConstantCurrentLIFEncoder(seq_length=6)
            self.fc, self.lif = nn.Linear(8, 5), norse.LIFCell(P)

        def forward(self, x):
            x = self.encoder(x * 20.0)
            s, out = None, []
            for ts in range(6):
                z, s = self.lif(self.fc(x[ts]), s)
                out.append(z)
            return torch.stack(out)

    torch.manual_seed(7)
    model = boost(Encoded(), 6.0, 0.3)
    graph = trace(model, (8,))
    assert graph.nodes["x"].hold == 6
    x = torch.rand(B, 8)
    with torch.no_grad():
        expected = model(x).double().numpy()
    assert_same_spikes(graph, x.double()[None].repeat(6, 1, 1), expected)


def test_lift_after_lif_in_a_sequential():
    """norse.torch.models.vgg's make_layers form: nn.Sequential(Lift(conv), LIF(), Lift(pool), ...), where each
    LIF hands its (spikes, state) to the next Lift, which uses the spikes; a whole (T, B, ...) sequence."""
    torch.manual_seed(8)
    model = boost(nn.Sequential(norse.Lift(nn.Conv2d(1, 4, 3, padding=1)), norse.LIF(P),
                                norse.Lift(nn.MaxPool2d(2)), norse.Lift(nn.Flatten()), norse.Lift(nn.Linear(64, 5)),
                                norse.LIF(P)), 5.0, 0.3).double()
    graph = trace(model, (1, 8, 8))
    assert [p.op for p in graph.nodes.values()].count("CubaLIF") == 2
    x = _x(1, 8, 8, seed=8)
    with torch.no_grad():
        expected = model(x)[0].numpy()
    assert_same_spikes(graph, x, expected)


def test_iaf_and_li_box_cells_match():
    """IAFCell (v = v + I, reset to v_reset) and an LIBoxCell readout (no current term): same spikes and
    voltages as Norse."""
    torch.manual_seed(10)
    iaf = norse.IAFParameters(v_th=torch.tensor(0.8), v_reset=torch.tensor(0.0))
    box = norse.LIBoxParameters(tau_mem_inv=torch.tensor(200.0))
    model = boost(norse.SequentialState(nn.Linear(10, 16), norse.IAFCell(iaf), nn.Linear(16, 5), norse.IAFCell(iaf)),
                  2.0, 0.1).double()
    graph = trace(model, (10,))
    assert [p.op for p in graph.nodes.values()].count("IF") == 2
    x = _x(10, seed=10)
    assert_same_spikes(graph, x, run_cells(model, x))
    readout = boost(norse.SequentialState(nn.Linear(10, 4), norse.LIBoxCell(box)), 2.0, 0.1).double()
    graph = trace(readout, (10,))
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_allclose(got, run_cells(readout, x), rtol=0, atol=1e-12, err_msg=engine)
