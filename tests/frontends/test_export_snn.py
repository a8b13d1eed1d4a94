"""Spiking networks of n3ml.nn through torch.export (.pt2): one torch.ops.n3ml node per neuron, exact IR."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import n3ml.nn as snn
from n3ml.cli import main as cli_main
from n3ml.errors import UnsupportedError
from n3ml.frontends.torch.load import load_pt2
from n3ml.ir import prims as P
from n3ml.ir import text
from n3ml.nn import ops
from n3ml.nn.zoo import DigitsSNN

from .helpers import assert_same_spikes, boost, run_graph

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"

torch.set_num_threads(1)
DYNAMIC = {0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO}  # time and batch axes


def _export(model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    prog = torch.export.export(model.eval(), (x,), dynamic_shapes=(DYNAMIC,))
    torch.export.save(prog, path)
    return path


def _convert(pt2: Path, tmp_path: Path) -> object:
    """`n3ml convert X.pt2 --target ir -o OUT`, then the written graph."""
    out = tmp_path / "out"
    assert cli_main(["convert", str(pt2), "--target", "ir", "-o", str(out)]) == 0
    (graph_file,) = out.glob("*.n3ml")
    return text.load(graph_file)


def _same_fields(got: P.Primitive, want: P.Primitive, where: str) -> None:
    assert type(got) is type(want), where
    for f in dataclasses.fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert type(a) is type(b) and np.array_equal(a, b), f"{where}.{f.name}: {a!r} != {b!r}"


def _check_nodes(graph, model: nn.Module) -> None:
    """Every n3ml.nn module is one IR node named by its path, with exactly the fields of its to_ir()."""
    modules = [(p, m) for p, m in model.named_modules() if isinstance(m, (snn.NeuronModule, snn.EncoderModule))]
    assert modules
    for path, m in modules:
        name = path.replace(".", "_") if not path[0].isdigit() else "n_" + path.replace(".", "_")
        _same_fields(graph.nodes[name], m.to_ir(), name)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    theta = torch.linspace(0.6, 1.4, 12, dtype=torch.float64)  # a per-neuron buffer
    return boost(nn.Sequential(
        snn.ConstantCurrent(scale=1.5, offset=0.1),
        nn.Linear(6, 12), snn.LIF(tau=4.0, theta=theta, reset="to-value", v_reset=-0.1, refractory=1),
        nn.Linear(12, 10), snn.CubaLIF(tau_syn=3.0, tau_mem=6.0, v_leak=0.05, r=2.0),
        nn.Linear(10, 8), snn.ALIF(tau=5.0, tau_adapt=20.0, q=0.2, theta=0.8, v_init=0.3),
        nn.Linear(8, 5), snn.IF(theta=0.7, refractory=2),
    ).double(), gain=2.0)


class ConvSNN(nn.Module):
    """PoissonRate -> Conv2d -> IF -> AvgPool2d -> Flatten -> Linear -> LIF (spikes) and -> Integrator."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.enc = snn.PoissonRate(gain=0.8, seed=7)
        self.conv = snn.TimeDistributed(nn.Conv2d(1, 4, 3, padding=1))
        self.if1 = snn.IF(theta=0.5)
        self.pool = snn.TimeDistributed(nn.AvgPool2d(2))
        self.flat = snn.TimeDistributed(nn.Flatten())
        self.fc = nn.Linear(64, 10)
        self.lif = snn.LIF(tau=3.0, scheme="euler", theta=0.4)
        self.fc2 = nn.Linear(10, 3)
        self.acc = snn.Integrator(r=0.5)
        boost(self, gain=2.0, bias=0.1)

    def forward(self, x):
        s = self.lif(self.fc(self.flat(self.pool(self.if1(self.conv(self.enc(x)))))))
        return s, self.acc(self.fc2(s))


def test_neurons_are_single_operators():
    """torch.export keeps each n3ml.nn module as ONE torch.ops.n3ml node (nothing unrolled)."""
    model = mlp()
    prog = torch.export.export(model, (torch.rand(5, 2, 6, dtype=torch.float64),), dynamic_shapes=(DYNAMIC,))
    targets = [str(n.target) for n in prog.graph.nodes if n.op == "call_function"
               and str(n.target).startswith("n3ml.")]
    assert targets == ["n3ml.constant_current.default", "n3ml.lif.default", "n3ml.cuba_lif.default",
                       "n3ml.alif.default", "n3ml.if_.default"]
    x = torch.rand(7, 3, 6, dtype=torch.float64)
    assert torch.equal(prog.module()(x), model(x))  # the operators' kernels are the modules' dynamics


def test_mlp_pt2_converts_exactly(tmp_path):
    model = mlp()
    pt2 = _export(model, torch.rand(4, 2, 6, dtype=torch.float64), tmp_path / "mlp.pt2")
    graph = _convert(pt2, tmp_path)
    _check_nodes(graph, model)
    assert (graph.dt, graph.scheme) == (1.0, "exact")
    x = torch.rand(20, 6, 6, dtype=torch.float64) * 1.5
    with torch.no_grad():
        expected = model(x).numpy()
    assert_same_spikes(graph, x, expected)  # reference interpreter and executor, every step


def test_conv_pt2_converts_exactly(tmp_path):
    model = ConvSNN().double()
    pt2 = _export(model, torch.rand(4, 2, 1, 8, 8, dtype=torch.float64), tmp_path / "conv.pt2")
    graph = _convert(pt2, tmp_path)
    _check_nodes(graph, model)
    ops_seen = [type(graph.nodes[n]).__name__ for n in graph.topo_order()]
    assert ops_seen == ["Input", "PoissonRate", "Conv2d", "IF", "AvgPool2d", "Flatten", "Dense", "LIF", "Dense",
                        "Integrator", "Output", "Output"]
    assert graph.scheme == "euler"
    x = torch.rand(12, 5, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        spikes, volts = (y.numpy() for y in model(x))
    assert_same_spikes(graph, x, spikes, out="out0")
    for engine, got in run_graph(graph, x.numpy(), "out1").items():
        np.testing.assert_allclose(got, volts, rtol=1e-12, atol=1e-12, err_msg=engine)


def test_latency_encoder(tmp_path):
    torch.manual_seed(2)
    model = boost(nn.Sequential(snn.Latency(window=4, x_min=0.1), nn.Linear(5, 4), snn.LIF(tau=2.0)).double())
    graph = load_pt2(str(_export(model, torch.rand(8, 2, 5, dtype=torch.float64), tmp_path / "lat.pt2")))
    _check_nodes(graph, model)
    x = torch.rand(16, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        assert_same_spikes(graph, x, model(x).numpy())


def test_digits_pt2_keeps_accuracy(tmp_path):
    """The committed examples/digits/digits_snn.pt2, converted in a fresh process (ops registered by the loader)."""
    out = tmp_path / "digits"
    r = subprocess.run([sys.executable, "-m", "n3ml", "convert", str(DIGITS / "digits_snn.pt2"), "--target", "ir",
                        "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    (graph_file,) = out.glob("*.n3ml")
    graph = text.load(graph_file)
    model = DigitsSNN()
    model.load_state_dict(torch.load(DIGITS / "digits_snn.pt", weights_only=True))
    assert [n for n in graph.topo_order()] == ["x", "fc1", "lif1", "fc2", "readout", "out"]
    _check_nodes(graph, model)
    data = np.load(DIGITS / "test.npz")
    res = run_graph(graph, data["x"])
    with torch.no_grad():
        want = model.double()(torch.from_numpy(data["x"]).double()).numpy()
    want_pred = want.mean(0).argmax(-1)
    want_acc = float(np.mean(want_pred == data["labels"]))
    assert want_acc >= 0.95
    for engine, volts in res.items():
        np.testing.assert_allclose(volts, want, rtol=1e-9, atol=1e-9, err_msg=engine)
        pred = volts.mean(0).argmax(-1)
        np.testing.assert_array_equal(pred, want_pred, err_msg=engine)
        assert float(np.mean(pred == data["labels"])) == want_acc, engine


def test_operator_gradient_is_the_surrogate():
    """Backward through torch.ops.n3ml.lif equals backward through the Python dynamics (x and a learnable tau)."""
    torch.manual_seed(3)
    m = snn.LIF(tau=4.0, theta=0.5, learnable=("tau",), surrogate="arctan").double()
    x = (torch.rand(6, 3, 4, dtype=torch.float64) * 1.2).requires_grad_()
    w = torch.rand(6, 3, 4, dtype=torch.float64)
    (m(x) * w).sum().backward()
    g_x, g_tau = x.grad.clone(), m.tau.grad.clone()
    x.grad, m.tau.grad = None, None
    (ops.neuron_op("lif", x, m.op_values()) * w).sum().backward()
    assert g_x.abs().sum() > 0 and g_tau.abs() > 0
    assert torch.allclose(x.grad, g_x, rtol=1e-12, atol=0) and torch.allclose(m.tau.grad, g_tau, rtol=1e-12, atol=0)


@torch.library.custom_op("n3mltest::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


_twice.register_fake(lambda x: torch.empty_like(x))


class _Custom(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fc, self.lif, self.fn = nn.Linear(3, 3), snn.LIF(), fn

    def forward(self, x):
        return self.lif(self.fn(self.fc(x)))


@pytest.mark.parametrize("fn, node, op", [
    (torch.ops.n3mltest.twice, "twice", "n3mltest::twice"),
    (torch.sigmoid, "sigmoid", "aten.sigmoid.default"),
])
def test_unknown_operation_named(tmp_path, fn, node, op):
    pt2 = _export(_Custom(fn), torch.rand(4, 2, 3), tmp_path / "bad.pt2")
    with pytest.raises(UnsupportedError) as e:
        load_pt2(str(pt2))
    msg = str(e.value)
    assert f"`{node}`" in msg and op in msg and "bad.pt2" in msg, msg


# ------------------------------------------------------------------ Recurrent (traced with --model / trace())


@pytest.mark.parametrize("delay, neuron", [(1, lambda: snn.LIF(tau=4.0, theta=0.8, refractory=1)),
                                           (3, lambda: snn.CubaLIF(tau_syn=2.0, tau_mem=5.0, reset="to-value"))])
def test_recurrent_traces_to_add_delay_dense(delay, neuron):
    from n3ml.frontends.torch import trace

    torch.manual_seed(4)
    rec = nn.Linear(8, 8)
    with torch.no_grad():
        rec.weight.mul_(3.0)  # strong feedback: the recurrence changes the spikes
    model = boost(nn.Sequential(nn.Linear(6, 8), snn.Recurrent(neuron(), rec, delay=delay)).double(), gain=2.0)
    graph = trace(model, (6,))
    kinds = {n: type(graph.nodes[n]).__name__ for n in graph.topo_order()}
    assert sorted(kinds.values()) == sorted(["Input", "Dense", "Add", type(model[1].neuron.to_ir()).__name__,
                                             "Delay", "Dense", "Output"])
    assert graph.nodes["n_1_delay"].steps == delay
    assert graph.inputs_of("n_1_sum") == ["n_0", "n_1_recurrent"]
    _same_fields(graph.nodes["n_1"], model[1].neuron.to_ir(), "n_1")
    x = torch.rand(24, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x).numpy()
        open_loop = nn.Sequential(model[0], model[1].neuron)(x).numpy()
    assert not np.array_equal(expected, open_loop)  # the feedback matters
    assert_same_spikes(graph, x, expected)


def test_recurrent_trains():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 6), snn.Recurrent(snn.LIF(tau=3.0, theta=0.3), nn.Linear(6, 6)))
    model(torch.rand(10, 2, 4)).sum().backward()
    assert model[1].recurrent.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="delay must be an integer >= 1"):
        snn.Recurrent(snn.LIF(), nn.Linear(3, 3), delay=0)


def test_recurrent_pt2_converts_exactly(tmp_path):
    """Recurrent exports as one torch.ops.n3ml.recurrent_<neuron> node and converts to the traced graph."""
    from n3ml.frontends.torch import trace

    torch.manual_seed(6)
    rec = nn.Linear(8, 8)
    with torch.no_grad():
        rec.weight.mul_(3.0)
    model = boost(nn.Sequential(nn.Linear(6, 8), snn.Recurrent(snn.ALIF(tau=4.0, q=0.3, theta=0.7), rec, delay=2),
                                nn.Linear(8, 4), snn.LI(tau=3.0)).double(), gain=2.0)
    pt2 = _export(model, torch.rand(5, 2, 6, dtype=torch.float64), tmp_path / "rec.pt2")
    prog = torch.export.load(pt2)
    assert "n3ml.recurrent_alif.default" in {str(n.target) for n in prog.graph.nodes}
    graph = load_pt2(str(pt2))
    traced = trace(model, (6,))
    assert {n: type(p) for n, p in graph.nodes.items()} == {n: type(p) for n, p in traced.nodes.items()}
    for n in graph.nodes:
        assert graph.inputs_of(n) == traced.inputs_of(n), n
    _same_fields(graph.nodes["n_1"], model[1].neuron.to_ir(), "n_1")
    x = torch.rand(20, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        want = model(x).numpy()
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=engine)
    xg = x.clone().requires_grad_()
    prog.module()(xg).sum().backward()  # the exported program trains through the operator (surrogate gradient)
    xr = x.clone().requires_grad_()
    model(xr).sum().backward()
    assert xr.grad.abs().sum() > 0 and torch.allclose(xg.grad, xr.grad, rtol=1e-12, atol=1e-15)
