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


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("learnable", [False, True])
def test_spikingjelly_synapse_filter_pt2_gives_identical_currents(mode, learnable, tmp_path):
    """layer.SynapseFilter, which torch.export inlines into ATen operations: rebuilt from its `w` or its 1/tau
    constant (rsnn_sequential_fmnist.py's StatefulSynapseNet places it between two IFNode layers)."""
    torch.manual_seed(6)
    model = nn.Sequential(_linear(4, 6, 3.0), sj_neuron.IFNode(), layer.SynapseFilter(tau=2.5, learnable=learnable),
                          _linear(6, 3, 1.0))
    functional.set_step_mode(model, mode)
    graph = load_pt2(_save(model, torch.rand(5, 2, 4) if mode == "m" else torch.rand(2, 4), tmp_path))
    (filt,) = [p for p in graph.nodes.values() if p.op == "SynapseFilter"]
    assert filt.leak == pytest.approx(0.4)
    x = torch.rand(12, 2, 4)
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = (model(x.double()) if mode == "m" else torch.stack([model(x[t].double()) for t in range(12)]))
    assert expected.std() > 0.1
    # the Dense sums' order; a learnable leak is sigmoid(w) of the program's float32 w, the model's in float64
    tol = 1e-6 if learnable else 1e-13
    np.testing.assert_allclose(_ir(graph, x), expected.numpy(), rtol=tol, atol=tol)


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


# ------------------------------------------------------------------ time loops unrolled by torch.export


class Tutorial5Loop(nn.Module):
    """snnTorch tutorial 5 (docs/tutorials/tutorial_5.rst), its network class as written there: `init_leaky()` in
    forward, a `for step in range(num_steps)` loop over one static input, spk/mem records stacked at the end."""

    def __init__(self, num_inputs=12, num_hidden=16, num_outputs=5, beta=0.95, num_steps=6):
        super().__init__()
        self.num_steps = num_steps
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        mem2_rec = []
        for step in range(self.num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


def test_snntorch_tutorial_time_loop_pt2_folds_to_one_step_with_held_input(tmp_path):
    """The unrolled loop becomes a per-step graph (one node per layer, not T), the static input is held for the
    loop's T steps, and the spikes equal snnTorch's run of the model itself (float64)."""
    torch.manual_seed(6)
    model = Tutorial5Loop()
    with torch.no_grad():
        model.fc1.weight.mul_(4.0)
        model.fc2.weight.mul_(4.0)
    x = torch.rand(3, 12)
    graph = _cli(_save(model, x, tmp_path), tmp_path)
    ops = [p.op for p in graph.nodes.values()]
    assert ops.count("LIF") == 2 and ops.count("Dense") == 2  # folded: not 6 copies
    (name,) = graph.input_names
    assert graph.nodes[name].hold == 6
    with torch.no_grad():  # snnTorch's init_leaky() state is float32: the model runs in float32 only
        expected = model(x)[0].double().numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x[None].repeat(6, 1, 1)), expected)


def test_norse_convnet_pt2_loop_and_buffer_fold_to_one_step(tmp_path):
    """norse.torch.models.conv.ConvNet, imported unchanged: `for ts in range(seq_length)` with the states
    starting as None, `voltages[ts, :, :] = v` into a torch.zeros buffer, F.max_pool2d, 10 * conv, view."""
    from norse.torch.models.conv import ConvNet

    torch.manual_seed(7)
    model = ConvNet(num_channels=1, feature_size=16)
    with torch.no_grad():
        model.conv1.weight.mul_(8.0)
        model.fc1.weight.mul_(4.0)
    x = torch.rand(4, 2, 1, 16, 16)
    graph = load_pt2(_save(model, x, tmp_path))
    ops = [p.op for p in graph.nodes.values()]
    assert ops.count("CubaLIF") == 3 and ops.count("Conv2d") == 2  # one step, not 4
    x = torch.rand(7, 2, 1, 16, 16)  # another length: the graph is per-step
    model = model.double()
    model.dtype = torch.float64
    with torch.no_grad():
        expected = model(x.double()).numpy()
    np.testing.assert_allclose(_ir(graph, x), expected, rtol=0, atol=1e-9)


def test_loop_whose_steps_differ_is_refused_with_the_source_line(tmp_path):
    """A body that changes with the step (here: a gain that grows with t) is not one step repeated."""

    class Growing(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(4, 3), snn.Leaky(beta=0.9)

        def forward(self, x):
            mem, rec = self.lif.init_leaky(), []
            for step in range(3):
                spk, mem = self.lif(self.fc(x) * (step + 1.0), mem)
                rec.append(spk)
            return torch.stack(rec)

    with pytest.raises(UnsupportedError, match=r"step 1 of the unrolled time loop computes other operations than "
                                               r"step 0 .*test_export_peers.py.*one-step forward"):
        load_pt2(_save(Growing(), torch.rand(2, 4), tmp_path))


class CSNN(nn.Module):
    """SpikingJelly activation_based/examples/conv_fashion_mnist.py `CSNN`, in the form written there (smaller):
    multi-step layer.* and IFNode(ATan), the static image repeated over T by x.unsqueeze(0).repeat(T, 1, 1, 1, 1),
    the firing rate `.mean(0)` as the readout."""

    def __init__(self, T=4, channels=4):
        super().__init__()
        from spikingjelly.activation_based import surrogate

        self.T = T
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(channels),
            sj_neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2, 2),
            layer.Flatten(), layer.Linear(channels * 4 * 4, 10, bias=False),
            sj_neuron.IFNode(surrogate_function=surrogate.ATan()))
        functional.set_step_mode(self, step_mode="m")

    def forward(self, x):
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return self.conv_fc(x_seq).mean(0)


def test_spikingjelly_repeated_input_and_rate_readout_pt2(tmp_path):
    """The time-axis glue at the graph's boundary: the repeat is an input held for T steps, `.mean(0)` the
    Output's readout (reduce="mean"); flatten(0, 1) of SpikingJelly's multi-step layers folds time into batch."""
    torch.manual_seed(8)
    model = CSNN()
    with torch.no_grad():
        model.conv_fc[0].weight.mul_(3.0)
        model.conv_fc[5].weight.mul_(2.0)
    x = torch.rand(2, 1, 8, 8)
    graph = _cli(_save(model, x, tmp_path), tmp_path)
    (name,), (out,) = graph.input_names, graph.output_names
    assert graph.nodes[name].hold == 4 and graph.nodes[out].reduce == "mean"
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x.double()).numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x[None].repeat(4, 1, 1, 1, 1)).mean(0), expected)


def test_snntorch_recurrent_neurons_pt2_give_identical_spikes(tmp_path):
    """RLeaky (all-to-all Linear recurrence) and RSynaptic (one-to-one V): rebuilt from their buffers and the
    recurrent connection's parameters, one step exported, the state (spikes and membrane) carried."""
    from snntorch import utils

    torch.manual_seed(9)
    model = nn.Sequential(_linear(5, 6, 3.0), snn.RLeaky(beta=0.85, linear_features=6, init_hidden=True),
                          _linear(6, 4, 3.0),
                          snn.RSynaptic(alpha=0.8, beta=0.9, all_to_all=False, V=0.3, init_hidden=True,
                                        threshold=0.6))
    graph = load_pt2(_save(model, torch.rand(2, 5), tmp_path))
    assert [p.op for p in graph.nodes.values()].count("Delay") >= 2  # the recurrences
    x = torch.rand(10, 2, 5)
    utils.reset(model)
    with torch.no_grad():
        expected = torch.stack([model(x[t]) for t in range(10)]).double().numpy()
    assert 0.05 < expected.mean() < 0.9
    np.testing.assert_array_equal(_ir(graph, x), expected)


def test_spikingjelly_parametric_lif_net_from_the_package_pt2(tmp_path):
    """spikingjelly.activation_based.model.parametric_lif_net.MNISTNet, imported unchanged (multi-step):
    ParametricLIFNode, layer.Dropout (identity at inference) and VotingLayer (avg_pool1d of x.unsqueeze(1))."""
    from spikingjelly.activation_based import surrogate
    from spikingjelly.activation_based.model import parametric_lif_net

    torch.manual_seed(10)
    model = parametric_lif_net.MNISTNet(channels=4, spiking_neuron=sj_neuron.ParametricLIFNode,
                                        surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(model, "m")
    model.eval()
    x = torch.rand(4, 2, 1, 28, 28)
    for _ in range(8):  # random weights scaled until the voting readout sees spikes
        functional.reset_net(model)
        with torch.no_grad():
            if model(x).max() > 0:
                break
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.weight.mul_(2.0)
    functional.reset_net(model)  # as SpikingJelly's own scripts do after each batch
    graph = load_pt2(_save(model, torch.rand(3, 2, 1, 28, 28), tmp_path))
    assert [p.op for p in graph.nodes.values()].count("LIF") == 4
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x.double()).numpy()  # the voting layer's mean of spikes
    assert expected.max() > 0
    np.testing.assert_allclose(_ir(graph, x), expected, rtol=0, atol=1e-12)


def _sj_zoo():
    """spikingjelly.activation_based.model.sew_resnet/spiking_resnet import torchvision's
    `load_state_dict_from_url` (pretrained weights only); torchvision is not a test dependency, so that one
    function is stood in for during the import (the models themselves are the package's, unchanged)."""
    import sys
    import types

    if "torchvision" not in sys.modules:
        stub = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.models", "torchvision.models.utils")}
        stub["torchvision.models.utils"].load_state_dict_from_url = None
        stub["torchvision"].models = stub["torchvision.models"]
        stub["torchvision.models"].utils = stub["torchvision.models.utils"]
        sys.modules.update(stub)
        try:
            from spikingjelly.activation_based.model import sew_resnet, spiking_resnet
        finally:
            for n in stub:
                sys.modules.pop(n, None)
    from spikingjelly.activation_based.model import sew_resnet, spiking_resnet
    return sew_resnet, spiking_resnet


@pytest.mark.slow
def test_spikingjelly_sew_resnet18_from_the_package_pt2(tmp_path):
    """SEW-ResNet-18 (cnf='ADD') of SpikingJelly's model zoo, multi-step: library BasicBlocks, flatten(0, 1) of
    the multi-step layers, AdaptiveAvgPool2d, torch.flatten(x, 2); its 20 IFNode operators rebuilt."""
    from spikingjelly.activation_based import surrogate

    sew_resnet, _ = _sj_zoo()
    torch.manual_seed(11)
    model = sew_resnet.sew_resnet18(spiking_neuron=sj_neuron.IFNode, cnf="ADD", num_classes=10,
                                    surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(model, "m")
    model.eval()
    x = torch.rand(2, 1, 3, 16, 16)
    graph = load_pt2(_save(model, x, tmp_path))
    neurons = sum(isinstance(m, sj_neuron.IFNode) for m in model.modules())
    assert [p.op for p in graph.nodes.values()].count("IF") == neurons == 20  # with the downsample neurons
    model = model.double()
    functional.reset_net(model)
    with torch.no_grad():
        expected = model(x.double()).numpy()
    np.testing.assert_allclose(_ir(graph, x), expected, rtol=0, atol=1e-9)
