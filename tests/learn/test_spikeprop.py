import importlib.util
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


# ---------------------------------------------------------------- the trained graph on the simulators


@pytest.fixture(scope="module")
def breast_cancer_net():
    """A small SpikeProp network trained briefly on the breast-cancer data (the example's encoding), with
    40 test samples as spike times."""
    from n3ml.learn.data import load_split

    g = torch.Generator().manual_seed(0)
    d = load_split("breast_cancer", seed=0)
    enc = GaussianReceptiveFields(m=7).fit(d.x_train)

    def times(x):
        t = torch.tensor(enc.encode(x))
        return torch.cat([t, torch.zeros(len(t), 1)], dim=1)

    xtr, ytr = times(d.x_train[:120]), torch.tensor(d.y_train[:120])
    xte, yte = times(d.x_test[:40]), torch.tensor(d.y_test[:40])
    net = sp.SpikePropNet([xtr.shape[1], 6, 2], generator=g, t_max=30.0, dt=0.5)
    sp.fit(net, xtr, sp.class_targets(ytr, 2, 15.0, 19.0), ytr, epochs=1, lr=0.01, batch_size=8, generator=g)
    return net, xte, yte


def _same_times(a, b):
    return np.all((a == b) | (np.isinf(a) & np.isinf(b)))


def test_graph_reset_to_value_is_reset_none_and_the_models_times(breast_cancer_net):
    net, xte, yte = breast_cancer_net
    assert float((net.predict(xte) == yte).float().mean()) > 0.85  # the most frequent class: 0.675
    dt = 0.1
    x = {"x": sp.spike_trains(xte, dt, 300)}
    to_value = ir_run(net.to_graph(dt=dt), x, record=["l1"])
    none = ir_run(net.to_graph(dt=dt, reset="none"), x, record=["l1"])
    assert net.to_graph(dt=dt).nodes["l1"].reset == "to-value"
    # the window-long refractory period hides the reset: identical spikes, one per neuron at most
    assert np.array_equal(to_value.states["l1"], none.states["l1"])
    assert np.array_equal(to_value.outputs["out"], none.outputs["out"])
    assert to_value.states["l1"].sum(axis=0).max() == 1 and to_value.outputs["out"].sum(axis=0).max() == 1
    # and they are the model's own spike times rounded up to the grid, layer by layer
    hidden, out = sp.grid_spike_times(net, xte, dt)
    assert np.isfinite(hidden).mean() > 0.3 and np.isfinite(out).mean() > 0.9
    assert _same_times(sp.first_spike_times(to_value.states["l1"], dt), hidden)
    assert _same_times(sp.first_spike_times(to_value.outputs["out"], dt), out)
    # the class differs from the model's only where its two outputs fire within a few steps of each other
    # (the graph's hidden spikes are up to one step late, and a tie on the grid goes to output 0)
    cls = sp.first_spike_times(to_value.outputs["out"], dt).argmin(axis=1)
    t_model = net(xte)[0].detach().numpy()
    differ = cls != t_model.argmin(axis=1)
    assert differ.mean() <= 0.1 and np.all(np.abs(t_model[differ, 0] - t_model[differ, 1]) < 3 * dt)
    with pytest.raises(N3mlError, match="reset must be one of"):
        net.to_graph(dt=dt, reset="subtract")


needs_sim = pytest.mark.skipif(importlib.util.find_spec("nest") is None or importlib.util.find_spec("pyNN") is None,
                               reason="NEST/PyNN not installed (make setup-sim)")


def _verify(tmp_path, capsys, graph, x, targets):
    from n3ml.cli import main
    from n3ml.io import write_npz
    from n3ml.ir import Output
    from n3ml.ir.text import save

    graph.add("hidden", Output(), "l1")
    save(graph, tmp_path / "spikeprop.n3ml")
    write_npz(tmp_path / "x.npz", {"x": x})
    rc = main(["verify", str(tmp_path / "spikeprop.n3ml"), "--targets", targets, "--steps", str(len(x)),
               "--input", str(tmp_path / "x.npz"), "--engine", "reference"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [line.split() for line in out.splitlines() if " spike " in line]
    assert len(rows) == 2 * len(targets.split(",")), out
    assert all(r[3] == "100.00%" and r[6] == "-" for r in rows), out
    return out


@needs_sim
@pytest.mark.nest
@pytest.mark.pynn
def test_trained_graph_is_spike_identical_on_nest_and_pynn(breast_cancer_net, tmp_path, capsys):
    net, xte, _ = breast_cancer_net
    # input spikes at whole ms on a 0.1 ms grid: PyNN-on-NEST once delivered some of them a step late
    _verify(tmp_path, capsys, net.to_graph(dt=0.1), sp.spike_trains(xte[:2], 0.1, 300), "nest,pynn")


@pytest.mark.lava
def test_trained_graph_is_spike_identical_on_lava(breast_cancer_net, tmp_path, capsys):
    from n3ml.backends.lava import lava_python

    try:
        found, why = lava_python(), ""
    except N3mlError as e:
        found, why = None, str(e)
    if found is None:
        pytest.skip(why or "the Lava venv is missing (make setup-lava)")
    net, xte, _ = breast_cancer_net
    # dt = 0.5 ms: the 1..16 ms terminals differ by 30 steps, within Loihi 2's 0..63 synaptic delays
    # (at 0.1 ms they differ by 150 and Lava refuses the graph)
    _verify(tmp_path, capsys, net.to_graph(dt=0.5), sp.spike_trains(xte[:1], 0.5, 60), "lava")
