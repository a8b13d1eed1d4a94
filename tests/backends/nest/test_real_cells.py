"""The real models' cells on NEST, exactly: snnTorch's Synaptic (gif_psc_exp with the reset as threshold
adaptation), decay 0 (snnTorch's beta = 0), SpikingJelly's SEW IAND gate; and the precise refusals."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from n3ml.backends.nest import NestTarget, lower_ir_to_nest
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import LI, LIF, Add, CubaLIF, Delay, Dense, Graph, Input, Output, ReLU, Scale
from n3ml.passes.legalize import legalize_for

from . import graphs as G

needs_nest = pytest.mark.skipif(importlib.util.find_spec("nest") is None, reason="NEST not installed (make setup-sim)")
pytestmark = [pytest.mark.nest]
T = 30


def decay_zero(scheme: str = "euler") -> Graph:
    """Membranes restarted every step (euler, tau = dt: snnTorch's beta = 0), with each reset mode, v_leak and
    v_init (which a decay-0 membrane forgets), and a CubaLIF whose membrane (not current) has decay 0."""
    rng = np.random.default_rng(21)
    g = Graph(name="decay_zero", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.5, 0.6, (8, 6)), bias=np.full(8, 0.05)), "x")
    g.add("sub", LIF(tau=1.0, theta=0.6, reset="subtract"), "fc")
    g.add("fc2", Dense(weight=rng.normal(0.4, 0.6, (5, 8))), "sub")
    g.add("val", LIF(tau=1.0, theta=0.3, reset="to-value", v_leak=0.1, v_init=0.7), "fc2")
    g.add("fc3", Dense(weight=rng.normal(0.3, 0.5, (4, 6))), "x")
    g.add("cuba", CubaLIF(tau_mem=1.0, tau_syn=3.0, theta=0.5, reset="to-value"), "fc3")
    for n in ("sub", "val", "cuba"):
        g.add(f"out_{n}", Output(), n)
    return g


def synaptic(reset: str = "subtract", jump: float = -0.15) -> Graph:
    """snnTorch's Synaptic as the torch frontend writes it: LI -> Add(LI, Scale(Delay(lif))) -> LIF."""
    rng = np.random.default_rng(22)
    g = Graph(name="synaptic", dt=1.0, scheme="euler")
    g.add("x", Input(shape=(7,), kind="analog"))
    g.add("fc", Dense(weight=rng.normal(0.1, 0.5, (9, 7)), bias=rng.normal(0.0, 0.1, 9)), "x")
    g.add("syn", LI(tau=10.0, r=10.0), "fc")
    g.add("in", Add(), "syn", "rst")
    g.add("lif", LIF(tau=20.0 / 3.0, r=20.0 / 3.0, theta=np.linspace(0.8, 1.2, 9), reset=reset), "in")
    g.add("prev", Delay(steps=1), "lif")
    g.add("rst", Scale(factor=np.full(9, jump)), "prev")
    g.add("fc2", Dense(weight=rng.normal(0.3, 0.6, (4, 9))), "lif")
    g.add("syn2", LI(tau=5.0, r=5.0), "fc2")
    g.add("lif2", LIF(tau=4.0, r=4.0, theta=0.5, reset="subtract"), "syn2")  # fuse-synaptic: no reset term
    g.add("out", Output(), "lif")
    g.add("out2", Output(), "lif2")
    return g



def run_legalized(g: Graph, x: dict, out, steps: int = T) -> dict:
    """The target's legalization (as convert and verify run it), then the emitted program."""
    target = NestTarget()
    return G.run_emitted(target, legalize_for(target, g, say=None), x, out, steps=steps)


@needs_nest
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_decay_zero_is_exact(scheme, tmp_path):
    g = decay_zero(scheme)
    if scheme == "exact":  # tau = dt / 1000: exp(-1000) is 0.0, the same membrane under the exact scheme
        for n in ("sub", "val"):
            g.replace(n, tau=1e-3)
        g.replace("cuba", tau_mem=1e-3)
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, run_legalized(g, x, tmp_path / "o"))
    assert min(counts.values()) > 5
    cells = lower_ir_to_nest(g).cells
    assert cells["sub"].params["tau_m"] == 1e-3 and cells["cuba"].params["tau_m"] == 1e-3


def test_current_with_decay_zero_is_refused():
    g = decay_zero()
    g.replace("cuba", tau_syn=1.0, tau_mem=4.0)
    with pytest.raises(UnsupportedError, match=r"`cuba` \(CubaLIF\): the synaptic current's per-step decay is 0"):
        lower_ir_to_nest(g)


@needs_nest
@pytest.mark.parametrize("reset,jump", [("subtract", -0.15), ("none", -1.0), ("subtract", 0.3)])
def test_synaptic_with_reset_term_is_exact(reset, jump, tmp_path):
    g = synaptic(reset, jump)
    net = lower_ir_to_nest(legalize_for(NestTarget(), g, say=None))
    assert net.cells["lif"].model == "gif_psc_exp" and net.cells["lif2"].model == "gif_psc_exp"
    assert "lif_prev" not in net.netlist.populations and not any(c.source == c.target for c in net.connections)
    x = {"x": np.random.default_rng(3).uniform(-0.5, 1.5, (T, 2, 7))}
    counts = G.assert_same_outputs(g, x, run_legalized(g, x, tmp_path / "o"))
    assert counts["out"] > 30 and counts["out2"] > 5


@needs_nest
def test_snntorch_synaptic_module_identical(tmp_path):
    """snnTorch's own Synaptic (two layers, reset by subtraction, the library's reset term), traced."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from n3ml.frontends.torch import trace

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(10, 12), torch.nn.Linear(12, 5)
            self.lif1, self.lif2 = snn.Synaptic(alpha=0.8, beta=0.9), snn.Synaptic(alpha=0.7, beta=0.5, threshold=0.6)

        def forward(self, x):
            syn1, mem1 = self.lif1.init_synaptic()
            syn2, mem2 = self.lif2.init_synaptic()
            out = []
            for step in range(x.shape[0]):
                spk1, syn1, mem1 = self.lif1(self.fc1(x[step]), syn1, mem1)
                spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
                out.append(spk2)
            return torch.stack(out)

    torch.manual_seed(1)
    net = Net()
    with torch.no_grad():
        net.fc1.weight.mul_(2.0)
        net.fc2.weight.mul_(3.0)
    g = trace(net, (10,))
    x = {g.input_names[0]: np.random.default_rng(4).uniform(0.0, 1.0, (T, 2, 10))}
    ref = net(torch.tensor(x[g.input_names[0]], dtype=torch.float32)).detach().numpy()
    got = run_legalized(g, x, tmp_path / "o")
    counts = G.assert_same_outputs(g, x, got)
    assert sum(counts.values()) > 20
    (name,) = g.output_names
    assert np.mean(got[name] == ref) > 0.99  # snnTorch itself runs in float32; the IR in float64


def test_synaptic_refusals_are_precise():
    g = synaptic()
    g.replace("syn", v_leak=0.1)  # not a pure current: no exponential-current form
    with pytest.raises(UnsupportedError, match=r"`lif` \(LIF\) reads the voltage of `syn` \(LI\).*Synaptic"):
        lower_ir_to_nest(legalize_for(NestTarget(), g, say=None))


def iand_graph() -> Graph:
    """SEW's IAND `x * (1 - y)` of two spike layers as the frontend writes it, relu(x - y), twice in a row."""
    rng = np.random.default_rng(23)
    g = Graph(name="iand", dt=1.0)
    g.add("x", Input(shape=(6,)))
    g.add("fa", Dense(weight=rng.normal(0.6, 0.5, (5, 6))), "x")
    g.add("a", LIF(tau=3.0, theta=0.5, reset="to-value"), "fa")
    g.add("fb", Dense(weight=rng.normal(0.5, 0.5, (5, 6))), "x")
    g.add("b", LIF(tau=3.0, theta=0.6, reset="to-value"), "fb")
    g.add("neg", Scale(factor=-1.0), "b")
    g.add("sub", Add(), "a", "neg")
    g.add("andnot", ReLU(), "sub")
    g.add("late", Delay(steps=1), "b")
    g.add("neg2", Scale(factor=-1.0), "late")
    g.add("sub2", Add(), "andnot", "neg2")
    g.add("andnot2", ReLU(), "sub2")
    g.add("fc", Dense(weight=rng.normal(0.8, 0.4, (3, 5))), "andnot2")
    g.add("lif", LIF(tau=4.0, theta=0.7, reset="to-value"), "fc")
    g.add("out_gate", Output(), "andnot")
    g.add("out", Output(), "lif")
    return g


@needs_nest
def test_iand_gates_are_exact(tmp_path):
    g = iand_graph()
    legal = legalize_for(NestTarget(), g, say=None)
    assert isinstance(legal.nodes["andnot"], LIF) and isinstance(legal.nodes["andnot2"], LIF)
    x = random_inputs(g, T, 2, 6, 0.4)
    counts = G.assert_same_outputs(g, x, run_legalized(g, x, tmp_path / "o"))  # the gate's 0/1 values too
    assert counts["out"] > 5
    from n3ml.ir.interp import run

    assert run(g, x).outputs["out_gate"].sum() > 5  # the gate passes spikes (not a silent comparison)


def test_relu_that_is_not_a_gate_is_refused_without_ann_to_snn_remedy():
    g = iand_graph()
    g.replace("neg", factor=1.0)  # relu(a + b) reaches 2: not a gate
    with pytest.raises(UnsupportedError) as e:
        legalize_for(NestTarget(), g, say=None)
    msg = str(e.value)
    assert "node `andnot` (ReLU)" in msg and "would legalize" not in msg and "SynapseFilter" in msg


@needs_nest
def test_sew_iand_block_from_spikingjelly_identical(tmp_path):
    """SpikingJelly's own sew_resnet.BasicBlock(cnf="IAND") behind a spiking conv layer, traced and run on
    NEST: identical spikes to the executor and to SpikingJelly's run."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    from n3ml.frontends.torch import trace
    from tests.frontends.corpus import _import_sj_resnets

    sew_resnet, _ = _import_sj_resnets()
    torch.manual_seed(0)
    make = dict(surrogate_function=surrogate.ATan(), detach_reset=True)
    net = torch.nn.Sequential(layer.Conv2d(2, 4, 3, padding=1, bias=False), neuron.IFNode(**make),
                              sew_resnet.BasicBlock(4, 4, cnf="IAND", spiking_neuron=neuron.IFNode, **make),
                              layer.Flatten(), layer.Linear(4 * 5 * 5, 6), neuron.IFNode(**make))
    functional.set_step_mode(net, "m")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(2.5)
    net = net.double().eval()
    g = trace(net, (2, 5, 5))
    assert any(isinstance(p, ReLU) for p in g.nodes.values())
    steps = 12
    xs = np.random.default_rng(5).uniform(0.0, 1.0, (steps, 2, 2, 5, 5))
    functional.reset_net(net)
    with torch.no_grad():
        ref = net(torch.tensor(xs)).numpy()
    x = {g.input_names[0]: xs}
    got = run_legalized(g, x, tmp_path / "o", steps)
    counts = G.assert_same_outputs(g, x, got)
    assert sum(counts.values()) > 5
    np.testing.assert_array_equal(got[g.output_names[0]], ref)


def alif_features(scheme: str = "euler") -> Graph:
    """ALIF (threshold adaptation) with reset to a value and reset none, v_leak, v_init, per-neuron thetas and q,
    a bias, and an ALIF feeding an ALIF."""
    from n3ml.ir import ALIF

    rng = np.random.default_rng(24)
    g = Graph(name="alif", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.6, 0.5, (8, 6)), bias=np.full(8, 0.1)), "x")
    g.add("a1", ALIF(tau=8.0, tau_adapt=20.0, q=np.linspace(0.2, 1.8, 8), theta=np.linspace(0.5, 0.9, 8),
                     reset="to-value", v_reset=-0.1, v_leak=0.05, v_init=0.3), "fc")
    g.add("fc2", Dense(weight=rng.normal(1.2, 0.6, (5, 8)), bias=np.full(5, 0.2)), "a1")
    g.add("a2", ALIF(tau=5.0, tau_adapt=12.0, q=0.7, theta=0.6, reset="none"), "fc2")
    g.add("out1", Output(), "a1")
    g.add("out2", Output(), "a2")
    return g


@needs_nest
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_alif_is_exact(scheme, tmp_path):
    g = alif_features(scheme)
    cells = lower_ir_to_nest(g).cells
    assert cells["a1"].model == "eprop_iaf_psc_delta_adapt" and cells["a2"].model == "eprop_iaf_adapt"
    x = random_inputs(g, T, 2, 8, 0.4)
    counts = G.assert_same_outputs(g, x, run_legalized(g, x, tmp_path / "o"))
    assert counts["out1"] > 20 and counts["out2"] > 5


def test_alif_beyond_eprop_takes_own_cell():
    """What NEST's adaptive e-prop neurons cannot do (reset by subtraction, refractoriness, q < 0) takes n3ml's own
    cell (tests/backends/nest/test_current_alif.py runs it)."""
    g = alif_features()
    g.replace("a1", reset="subtract")
    g.replace("a2", refractory=1)
    cells = lower_ir_to_nest(g).cells
    assert cells["a1"].model == cells["a2"].model == "n3ml_cell"
    assert cells["a1"].params["reset"] == 2.0 and cells["a2"].params["refractory"] == 1.0


def test_norse_lsnn_cells():
    """Norse's LSNNCell (the corpus model): the ALIF driven by its synaptic current, reset to v_reset, and the
    LIFRecurrentCell's CubaLIF in a one-step loop are n3ml's own NEST cell (no NEST model forms either;
    tests/backends/nest/test_current_alif.py runs the model)."""
    pytest.importorskip("norse")
    import contextlib
    import io

    import torch

    from n3ml.frontends.torch import trace
    from tests.frontends import corpus

    case = next(c for c in corpus.CASES if c.name == "norse-memory-lsnn")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        g = trace(case.model(torch.float64), case.input_shape)
    net = lower_ir_to_nest(legalize_for(NestTarget(), g, say=None))
    assert net.cells["layer_lsnn_cell"].model == net.cells["layer_lif_cell"].model == "n3ml_cell"
    assert "layer_lsnn_cell_syn" not in net.cells  # the LI is the ALIF's current
    assert net.cells["readout"].model == "iaf_psc_exp"  # the LI -> LI readout stays NEST's own
