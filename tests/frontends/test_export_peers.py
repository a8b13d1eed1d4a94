"""torch.export programs (.pt2) of other libraries' spiking models: neurons inlined into ATen operations.

Each model is exported as its user would (`torch.export.export(model, (x,))`, `torch.export.save`), converted by
the API or the CLI, run by the IR interpreter in float64 and compared with the library's own float64 run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")
norse = pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="SpikingJelly is not installed")

from spikingjelly.activation_based import functional, layer  # noqa: E402

from n3ml.cli import main as cli_main  # noqa: E402
from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch.load import load_pt2  # noqa: E402
from n3ml.ir import text  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402

pytestmark = pytest.mark.peers


def _save(model, x, tmp_path):
    ep = torch.export.export(model.eval(), (x,))
    path = tmp_path / "model.pt2"
    torch.export.save(ep, path)
    return str(path)


def _cli(path, tmp_path):
    """`n3ml convert X.pt2 --target ir -o OUT`, then the written graph."""
    out = tmp_path / "out"
    assert cli_main(["convert", str(path), "--target", "ir", "-o", str(out)]) == 0
    (graph_file,) = out.glob("*.n3ml")
    return text.load(graph_file)


def _ir(graph, x):
    outs = run(graph, {graph.input_names[0]: x.double().numpy()}).outputs
    (value,) = outs.values()
    return value


def _linear(n_in, n_out, gain):
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.mul_(gain)
    return lin


class Spikes(nn.Module):
    """A user's wrapper returning only the spikes of a Norse SequentialState: torch.export.save cannot write
    Norse's state NamedTuples (they are not registered with torch's pytree serializer)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def test_snntorch_pt2_neurons_rebuilt_from_buffers_give_identical_spikes(tmp_path):
    """aten.zeros_like (state initialisation), the reset and the threshold test of Leaky and Synaptic regions
    become the fx path's LIF/CubaLIF constructions; the state is carried step to step as in snnTorch."""
    from snntorch import utils

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True), nn.Linear(8, 4),
                          snn.Synaptic(alpha=0.7, beta=0.9, threshold=0.4, init_hidden=True, reset_mechanism="zero"))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    graph = load_pt2(_save(model, torch.rand(2, 6), tmp_path))
    ops = [p.op for p in graph.nodes.values()]
    assert ops.count("LIF") == 1 and ops.count("CubaLIF") == 1
    x = torch.rand(12, 2, 6)
    utils.reset(model)
    with torch.no_grad():
        expected = torch.stack([model(x[t]) for t in range(12)]).double().numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x), expected)


# ------------------------------------------------------------------ Norse


def _norse_steps(net, x):
    """Norse's own float64 run, one call per step with the state handed back (its documented cell usage)."""
    net = net.double()
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, state = net(x[t].double(), state)
            out.append(z)
    return torch.stack(out).numpy()


def _norse_cells():
    torch.manual_seed(1)
    p = norse.LIFParameters(tau_mem_inv=torch.tensor(150.0), v_th=torch.tensor(0.3), v_leak=torch.tensor(0.1),
                            v_reset=torch.tensor(-0.05))
    return {
        "LIFCell": (norse.SequentialState(_linear(4, 6, 30.0), norse.LIFCell(p)), "CubaLIF"),
        "LIFCell+LICell": (norse.SequentialState(_linear(4, 6, 30.0), norse.LIFCell(), _linear(6, 3, 30.0),
                                                 norse.LICell(norse.LIParameters(tau_mem_inv=torch.tensor(70.0)))),
                           "LI"),
        "LILinearCell": (norse.SequentialState(_linear(4, 6, 30.0), norse.LIFCell(), norse.LILinearCell(6, 3)), "LI"),
        "LIFBoxCell": (norse.SequentialState(_linear(4, 6, 30.0), norse.LIFBoxCell(dt=0.002)), "LIF"),
    }


@pytest.mark.parametrize("name", list(_norse_cells()))
def test_norse_cells_pt2_give_identical_spikes(name, tmp_path):
    """Norse's step inlined into ATen arithmetic (lifted parameter tensors, dt products, heaviside, reset):
    the settings are read back, checked against the program, and converted as the fx path converts the cell."""
    net, last = _norse_cells()[name]
    graph = load_pt2(_save(Spikes(net), torch.rand(2, 4), tmp_path))
    assert [p.op for p in graph.nodes.values()][-2] == last
    assert graph.dt == pytest.approx(float(net[1].dt) * 1000.0)  # Norse's dt (s) as the graph's (ms)
    x = torch.rand(10, 2, 4)
    expected, got = _norse_steps(net, x), _ir(graph, x)
    if last == "LI":  # a voltage readout: equal up to the order of float64 roundings
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    else:
        assert 0.05 < expected.mean() < 0.9
        np.testing.assert_array_equal(got, expected)


def test_norse_sequence_modules_pt2_by_the_cli(tmp_path):
    """norse.LIF/LI run a (T, B, ...) sequence with a Python loop that torch.export unrolls inside the module:
    one region per module, converted to one per-step neuron each; the program's input is the sequence."""
    torch.manual_seed(2)
    net = norse.SequentialState(_linear(4, 6, 30.0), norse.LIF(), _linear(6, 3, 30.0), norse.LIF())
    graph = _cli(_save(Spikes(net), torch.rand(5, 2, 4), tmp_path), tmp_path)
    assert [p.op for p in graph.nodes.values()].count("CubaLIF") == 2
    x = torch.rand(9, 2, 4)  # another length than the export's: the graph is per-step
    with torch.no_grad():
        expected = net.double()(x.double())[0].numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x), expected)


def test_norse_cell_without_a_rebuild_is_refused_with_its_source_line(tmp_path):
    torch.manual_seed(3)
    net = norse.SequentialState(_linear(4, 6, 30.0), norse.LIFAdExCell())
    with pytest.raises(UnsupportedError, match=r"module `net.1` \(norse.*LIFAdExCell\).*inlined by torch.export.*"
                                               r"first: `.*`.*line \d+.*--model package.module:Class"):
        load_pt2(_save(Spikes(net), torch.rand(2, 4), tmp_path))


def test_norse_state_used_by_the_model_is_refused(tmp_path):
    """A model that computes with a cell's membrane (not its spikes) cannot become an IR neuron's output."""

    class UsesVoltage(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.cell = _linear(4, 6, 30.0), norse.LIFCell()

        def forward(self, x):
            z, s = self.cell(self.fc(x))
            return z + s.v

    with pytest.raises(UnsupportedError, match=r"module `cell`.*internal state `.*` is used by operation"):
        load_pt2(_save(UsesVoltage(), torch.rand(2, 4), tmp_path))


# ------------------------------------------------------------------ SpikingJelly


def _sj_single():
    torch.manual_seed(4)
    return nn.Sequential(_linear(4, 6, 3.0), sj_neuron.IFNode(v_threshold=0.7), _linear(6, 5, 3.0),
                         sj_neuron.LIFNode(tau=3.0, v_reset=None), _linear(5, 3, 3.0),
                         sj_neuron.ParametricLIFNode(init_tau=1.5, decay_input=False, v_threshold=0.5))


def test_spikingjelly_single_step_pt2_gives_identical_spikes(tmp_path):
    """sj_if/sj_lif/sj_plif operators (x.unsqueeze(0) in, select(0, 0) out): one step, state carried."""
    model = _sj_single()
    graph = load_pt2(_save(model, torch.rand(2, 4), tmp_path))
    assert [p.op for p in graph.nodes.values() if p.op in ("IF", "LIF")] == ["IF", "LIF", "LIF"]
    x = torch.rand(12, 2, 4)
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = torch.stack([model(x[t].double()) for t in range(12)]).numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x), expected)


def test_spikingjelly_multi_step_pt2_by_the_cli(tmp_path):
    """step_mode='m': the operator runs the whole (T, B, ...) sequence; layer.* wrappers are plain layers."""
    torch.manual_seed(5)
    model = nn.Sequential(layer.Linear(4, 6), sj_neuron.LIFNode(tau=2.5), layer.Linear(6, 3),
                          sj_neuron.IFNode(v_reset=None))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    functional.set_step_mode(model, "m")
    graph = _cli(_save(model, torch.rand(4, 2, 4), tmp_path), tmp_path)
    x = torch.rand(10, 2, 4)
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x.double()).numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x), expected)


def test_spikingjelly_membrane_not_from_reset_is_refused(tmp_path):
    """A neuron whose membrane was left charged before the export starts from that value, not from v_reset."""
    model = nn.Sequential(nn.Linear(4, 3), sj_neuron.IFNode())
    model(torch.rand(2, 4))  # v is now a tensor the export bakes in as a constant
    try:
        path = _save(model, torch.rand(2, 4), tmp_path)
    except Exception:  # torch.export itself may refuse the stale state
        pytest.skip("torch.export refuses a neuron with a stale membrane")
    with pytest.raises(UnsupportedError, match=r"module `1`.*(membrane starts from|computes what the program)"):
        load_pt2(path)
