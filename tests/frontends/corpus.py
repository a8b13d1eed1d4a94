"""Real peer models, as their authors wrote them, for tests/frontends/test_real_models.py.

Each entry builds a model the way its source does (imported from the installed package where
the peer ships it, else rebuilt here in the same form as the named tutorial/example; the
source and the patterns each exercises are named on the entry), a random input, and a
reference run: the model called exactly as its source calls it. Weights are random, scaled
so every spiking layer fires (the test reports and checks the rates).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

import norse.torch as norse
import snntorch as snn
from norse.torch.models.conv import ConvNet, ConvNet4
from snntorch import utils as snn_utils
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.model import parametric_lif_net


def _import_sj_resnets():
    """sew_resnet/spiking_resnet import torchvision's `load_state_dict_from_url` (used only for pretrained
    weights); torchvision is not a test dependency, so that one function is stood in for while importing."""
    if "torchvision" in sys.modules:
        from spikingjelly.activation_based.model import sew_resnet, spiking_resnet
        return sew_resnet, spiking_resnet
    stub = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.models", "torchvision.models.utils")}

    def no_download(*a, **k):
        raise RuntimeError("pretrained weights are not available in the tests")

    stub["torchvision.models.utils"].load_state_dict_from_url = no_download
    stub["torchvision"].models = stub["torchvision.models"]
    stub["torchvision.models"].utils = stub["torchvision.models.utils"]
    sys.modules.update(stub)
    try:
        from spikingjelly.activation_based.model import sew_resnet, spiking_resnet
    finally:
        for n in stub:
            sys.modules.pop(n, None)
    return sew_resnet, spiking_resnet


@dataclass
class Case:
    name: str
    source: str
    patterns: str
    build: Callable[[torch.dtype], nn.Module]
    input_shape: tuple[int, ...]
    make_input: Callable[[torch.dtype], torch.Tensor]  # what the source feeds the model
    reference: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # the source's run -> (T, B, ...) or readout
    steps: int  # T of the run
    static: bool = False  # the input is one static sample held over the steps
    voltage: bool = False  # the output is a voltage (compared to 1e-9), not spikes
    float32: bool = True  # the library's own float32 run is compared too
    f32_only: bool = False  # the library runs this model in float32 only (snnTorch's spikes are float32)
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, dtype: torch.dtype) -> nn.Module:
        """The model with random weights, calibrated so that every spiking layer fires."""
        m = self.build(dtype)
        calibrate(self, m, self.make_input(dtype))
        return m


def spiking_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from norse.torch.module.snn import SNN, SNNCell
    from snntorch._neurons.neurons import SpikingNeuron
    from spikingjelly.activation_based.neuron import BaseNode

    out = []
    for path, m in model.named_modules():
        if isinstance(m, (SpikingNeuron, SNNCell, SNN, BaseNode)) and not isinstance(m, (norse.LICell, norse.LI)) \
                and getattr(m, "reset_mechanism", "subtract") != "none":
            out.append((path, m))
    return out


def layer_spikes(case: "Case", model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every spiking layer's output over the source's run, (T, B, ...) (calls of one step stacked)."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for path, m in spiking_modules(model):
        def hook(mod, inp, out, path=path):
            y = out[0] if isinstance(out, tuple) else out
            seen.setdefault(path, []).append(y.detach().double().clone())
        hooks.append(m.register_forward_hook(hook))
    try:
        case.reference(model, x)
    finally:
        for h in hooks:
            h.remove()
    return {p: v[0] if len(v) == 1 and v[0].dim() > 2 and getattr(dict(model.named_modules())[p], "step_mode", "s")
            == "m" else torch.stack(v) for p, v in seen.items()}


def layer_rates(case: "Case", model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Mean spike rate of every spiking neuron module during the source's run of the model."""
    seen: dict[str, list[float]] = {}
    hooks = []
    for path, m in spiking_modules(model):
        def hook(mod, inp, out, path=path):
            y = out[0] if isinstance(out, tuple) else out
            seen.setdefault(path, []).append(float(y.double().mean()))
        hooks.append(m.register_forward_hook(hook))
    try:
        case.reference(model, x)
    finally:
        for h in hooks:
            h.remove()
    return {p: sum(v) / len(v) for p, v in seen.items()}


def calibrate(case: "Case", model: nn.Module, x: torch.Tensor, lo: float = 0.01, hi: float = 0.7) -> None:
    """Scale the weight layer feeding each silent (saturated) spiking layer up (down) until it fires in
    [lo, hi], layer by layer in order: random weights, but every layer exercised."""
    order = [p for p, _ in model.named_modules()]
    weights = [(p, m) for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
               or hasattr(m, "input_weights")]
    for _ in range(40):
        r = layer_rates(case, model, x)
        bad = [(p, v) for p, v in r.items() if not lo <= v <= hi]
        if not bad:
            return
        path, v = min(bad, key=lambda b: order.index(b[0]))
        before = [(q, m) for q, m in weights if order.index(q) < order.index(path)]
        if not before:
            return
        q, m = before[-1]
        with torch.no_grad():
            w = m.weight if hasattr(m, "weight") else m.input_weights
            w.mul_(2.0 if v < lo else 0.6)


def scale(model: nn.Module, gain: float, bias: float = 0.0) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                m.weight.mul_(gain)
                if m.bias is not None:
                    m.bias.add_(bias)
    return model


def _rand(*shape):
    def make(dtype):
        g = torch.Generator().manual_seed(7)
        return torch.rand(*shape, generator=g, dtype=dtype)
    return make


def _call(model, x):
    with torch.no_grad():
        out = model(x)
    return out[0] if isinstance(out, tuple) else out


def _per_step(reset: Callable[[nn.Module], None] | None = None, state: bool = False):
    """The source's own loop around a one-step forward: model(x[t]) (static x: model(x)) for t < T."""
    def run(model, x, steps=None):
        outs, s = [], None
        if reset is not None:
            reset(model)
        with torch.no_grad():
            for t in range(run.steps):
                xt = x if run.static else x[t]
                if state:
                    y, s = model(xt, s)
                else:
                    y = model(xt)
                outs.append(y[0] if isinstance(y, tuple) else y)
        return torch.stack(outs)
    run.steps, run.static = 0, False
    return run


# --------------------------------------------------------------------------------------- snnTorch

NUM_STEPS = 4  # snnTorch tutorials: a module-level `num_steps`
BATCH = 2


class Tutorial5Net(nn.Module):
    """snnTorch tutorial 5 (docs/tutorials/tutorial_5.rst): Leaky neurons with explicit membranes,
    `mem = lif.init_leaky()`, a loop over the global num_steps on a static input, `torch.stack` records."""

    def __init__(self, num_inputs=64, num_hidden=48, num_outputs=10, beta=0.95):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        mem2_rec = []
        for step in range(NUM_STEPS):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


batch_size = BATCH  # tutorial 6 flattens with the global batch size


class Tutorial6Net(nn.Module):
    """snnTorch tutorial 6 (docs/tutorials/tutorial_6.rst), class form: conv + F.max_pool2d + Leaky, the
    membranes initialised inside a one-step forward (so they restart every call), `view(batch_size, -1)`."""

    def __init__(self, beta=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 5)
        self.lif1 = snn.Leaky(beta=beta)
        self.conv2 = nn.Conv2d(12, 64, 5)
        self.lif2 = snn.Leaky(beta=beta)
        self.fc1 = nn.Linear(64 * 1 * 1, 10)
        self.lif3 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.lif3.init_leaky()
        cur1 = torch.nn.functional.max_pool2d(self.conv1(x), 2)
        spk1, mem1 = self.lif1(cur1, mem1)
        cur2 = torch.nn.functional.max_pool2d(self.conv2(spk1), 2)
        spk2, mem2 = self.lif2(cur2, mem2)
        cur3 = self.fc1(spk2.view(batch_size, -1))
        spk3, mem3 = self.lif3(cur3, mem3)
        return spk3, mem3


class RegressionNet(nn.Module):
    """snnTorch regression tutorial part I (docs/tutorials/tutorial_regression_1.rst), as published: per-neuron
    random beta and threshold, `x[step, :, :]` of a time-major input, a reset-free Leaky readout whose
    membrane is recorded and stacked (and, as in the tutorial, `li_out` also applied to the hidden layer)."""

    def __init__(self, timesteps, hidden):
        super().__init__()
        self.timesteps = timesteps
        self.hidden = hidden
        g = torch.Generator().manual_seed(3)
        beta_in, thr_in = torch.rand(hidden, generator=g), torch.rand(hidden, generator=g)
        self.fc_in = nn.Linear(in_features=1, out_features=hidden)
        self.lif_in = snn.Leaky(beta=beta_in, threshold=thr_in, learn_beta=True)
        beta_hidden, thr_hidden = torch.rand(hidden, generator=g), torch.rand(hidden, generator=g)
        self.fc_hidden = nn.Linear(in_features=hidden, out_features=hidden)
        self.lif_hidden = snn.Leaky(beta=beta_hidden, threshold=thr_hidden, learn_beta=True)
        beta_out = torch.rand(1, generator=g)
        self.fc_out = nn.Linear(in_features=hidden, out_features=1)
        self.li_out = snn.Leaky(beta=beta_out, threshold=1.0, learn_beta=True, reset_mechanism="none")

    def forward(self, x):
        mem_1 = self.lif_in.init_leaky()
        mem_2 = self.lif_hidden.init_leaky()
        mem_3 = self.li_out.init_leaky()
        mem_3_rec = []
        for step in range(self.timesteps):
            x_timestep = x[step, :, :]
            cur_in = self.fc_in(x_timestep)
            spk_in, mem_1 = self.lif_in(cur_in, mem_1)
            cur_hidden = self.fc_hidden(spk_in)
            spk_hidden, mem_2 = self.li_out(cur_hidden, mem_2)
            cur_out = self.fc_out(spk_hidden)
            _, mem_3 = self.li_out(cur_out, mem_3)
            mem_3_rec.append(mem_3)
        return torch.stack(mem_3_rec)


class SynapticNet(nn.Module):
    """snnTorch docs example_snn_synaptic.rst (in snnTorch 1.0's API: `init_synaptic()` takes no sizes):
    Synaptic neurons with explicit syn/mem, a loop over num_steps, stacked spikes and membranes."""

    def __init__(self, num_inputs=40, num_hidden=32, num_outputs=8, alpha=0.9, beta=0.85):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Synaptic(alpha=alpha, beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Synaptic(alpha=alpha, beta=beta)

    def forward(self, x):
        syn1, mem1 = self.lif1.init_synaptic()
        syn2, mem2 = self.lif2.init_synaptic()
        spk2_rec, mem2_rec = [], []
        for step in range(NUM_STEPS):
            cur1 = self.fc1(x)
            spk1, syn1, mem1 = self.lif1(cur1, syn1, mem1)
            cur2 = self.fc2(spk1)
            spk2, syn2, mem2 = self.lif2(cur2, syn2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class RLeakyNet(nn.Module):
    """snnTorch regression tutorial part II (docs/tutorials/tutorial_regression_2.rst) form: an all-to-all
    RLeaky with explicit `spk, mem = rlif.init_rleaky()` carried through a loop over time-major input."""

    def __init__(self, timesteps=NUM_STEPS, hidden=24):
        super().__init__()
        self.timesteps = timesteps
        self.fc_in = nn.Linear(6, hidden)
        self.rlif = snn.RLeaky(beta=0.8, linear_features=hidden)
        self.fc_out = nn.Linear(hidden, 5)
        self.lif_out = snn.Leaky(beta=0.9)

    def forward(self, x):
        spk1, mem1 = self.rlif.init_rleaky()
        mem2 = self.lif_out.init_leaky()
        spk_rec = []
        for step in range(self.timesteps):
            spk1, mem1 = self.rlif(self.fc_in(x[step]), spk1, mem1)
            spk2, mem2 = self.lif_out(self.fc_out(spk1), mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


class Tutorial7Net(nn.Module):
    """snnTorch tutorial 7 (docs/tutorials/tutorial_7.rst): an nn.Sequential of init_hidden Leaky neurons, the
    last with `output=True` (returns spk, mem); `utils.reset(net)` and the loop over data steps in forward."""

    def __init__(self, beta=0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 6, 5), nn.MaxPool2d(2), snn.Leaky(beta=beta, init_hidden=True),
                                 nn.Conv2d(6, 12, 5), nn.MaxPool2d(2), snn.Leaky(beta=beta, init_hidden=True),
                                 nn.Flatten(), nn.Linear(12 * 1 * 1, 10),
                                 snn.Leaky(beta=beta, init_hidden=True, output=True))

    def forward(self, data):
        spk_rec = []
        snn_utils.reset(self.net)
        for step in range(data.size(0)):
            spk_out, mem_out = self.net(data[step])
            spk_rec.append(spk_out)
        return torch.stack(spk_rec)


# ------------------------------------------------------------------------------------------ Norse


def norse_readme_classifier():
    """Norse README §2.3 spiking convolutional classifier: SequentialState of Conv2d, LIFCell, MaxPool2d,
    Flatten, Linear, LICell (sizes for a 16x16 input); the user carries the state between steps."""
    return norse.SequentialState(
        nn.Conv2d(1, 20, 5, 1), norse.LIFCell(), nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5, 1), norse.LIFCell(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(50, 10), norse.LICell())


class NorseStateLoop(nn.Module):
    """Norse notebooks (norse/notebooks, mnist_classifiers: a `Model` wrapping the README's SequentialState):
    `for ts in range(seq_length): z, s = self.snn(x[ts], s)` carrying the whole network's state, stacked."""

    def __init__(self):
        super().__init__()
        self.snn = norse.SequentialState(nn.Linear(10, 24), norse.LIFCell(), nn.Linear(24, 6), norse.LIFCell())

    def forward(self, x):
        s = None
        outs = []
        for ts in range(x.shape[0]):
            z, s = self.snn(x[ts], s)
            outs.append(z)
        return torch.stack(outs)


class NorseLoopMLP(nn.Module):
    """Norse notebooks' hand-written loop form (as norse.torch.models.conv.ConvNet): `s = None`, then
    `for ts in range(seq_length): z, s = self.lif(z, s)`, a preallocated `torch.zeros(seq_length, batch, n)`
    filled per step by an LILinearCell readout; the (B, T, F) input permuted to time-major first."""

    def __init__(self, n_in=12, hidden=32, n_out=6):
        super().__init__()
        self.fc = nn.Linear(n_in, hidden)
        self.lif0 = norse.LIFCell(p=norse.LIFParameters(v_th=torch.as_tensor(0.3)))
        self.out = norse.LILinearCell(hidden, n_out)

    def forward(self, x):
        x = x.permute(1, 0, 2)
        seq_length, batch_size = x.shape[0], x.shape[1]
        s0, so = None, None
        voltages = torch.zeros(seq_length, batch_size, 6, dtype=x.dtype)
        for ts in range(seq_length):
            z = self.fc(x[ts, :])
            z, s0 = self.lif0(z, s0)
            v, so = self.out(z, so)
            voltages[ts, :, :] = v
        return voltages


# ------------------------------------------------------------------------------------ SpikingJelly


class LifFcMnist(nn.Module):
    """SpikingJelly examples/lif_fc_mnist.py `SNN` (rebuilt: the module imports torchvision): Flatten,
    Linear, LIFNode in single-step mode; the example loops over T and calls functional.reset_net."""

    def __init__(self, tau=2.0):
        super().__init__()
        self.layer = nn.Sequential(
            layer.Flatten(),
            layer.Linear(16 * 16, 10, bias=False),
            neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan()),
        )

    def forward(self, x: torch.Tensor):
        return self.layer(x)


class LifFcMnistCounter(nn.Module):
    """SpikingJelly examples/lif_fc_mnist.py: its evaluation loop (`out_fr += net(x)` for t < T, then
    `out_fr / T`, `functional.reset_net(net)`) written inside forward around the same SNN, on a static image."""

    def __init__(self, T=NUM_STEPS, tau=2.0):
        super().__init__()
        self.T = T
        self.net = LifFcMnist(tau)

    def forward(self, x):
        out_fr = 0.
        for t in range(self.T):
            out_fr += self.net(x)
        out_fr = out_fr / self.T
        functional.reset_net(self.net)
        return out_fr


class CSNN(nn.Module):
    """SpikingJelly examples/conv_fashion_mnist.py `CSNN` (rebuilt: the module imports torchvision):
    multi-step IFNodes, `x.unsqueeze(0).expand(T, ...)` of the static image, `.mean(0)` firing-rate readout."""

    def __init__(self, T: int, channels: int):
        super().__init__()
        self.T = T
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2, 2),
            layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2, 2),
            layer.Flatten(),
            layer.Linear(channels * 7 * 7, channels * 4 * 4, bias=False),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.Linear(channels * 4 * 4, 10, bias=False),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
        )
        functional.set_step_mode(self, step_mode="m")

    def forward(self, x: torch.Tensor):
        x_seq = x.unsqueeze(0).expand(self.T, -1, -1, -1, -1)
        x_seq = self.conv_fc(x_seq)
        fr = x_seq.mean(0)
        return fr


class RsnnPlainNet(nn.Module):
    """SpikingJelly examples/rsnn_sequential_fmnist.py `PlainNet` (rebuilt: imports torchvision), multi-step
    (`functional.set_step_mode(net, 'm')` as in its main), `.mean(0)` readout of the row sequence."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(
            layer.Linear(28, 32),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.Linear(32, 10),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
        )

    def forward(self, x: torch.Tensor):
        return self.fc(x).mean(0)


class RsnnFeedBackNet(nn.Module):
    """SpikingJelly examples/rsnn_sequential_fmnist.py `FeedBackNet` (rebuilt): LinearRecurrentContainer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(
            layer.Linear(28, 32),
            layer.LinearRecurrentContainer(
                neuron.IFNode(surrogate_function=surrogate.ATan(), detach_reset=True),
                in_features=32, out_features=32, bias=True),
            layer.Linear(32, 10),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
        )

    def forward(self, x: torch.Tensor):
        return self.fc(x).mean(0)


class SeqContainerNet(nn.Module):
    """SpikingJelly's container idiom (activation_based tutorials "Container"): SeqToANNContainer around
    conv+BN, MultiStepContainer around single-step pooling, layer.AdaptiveAvgPool2d, layer.Dropout,
    VotingLayer over the class neurons, functional.reset_net at the end of forward."""

    def __init__(self, T=3):
        super().__init__()
        self.T = T
        self.features = nn.Sequential(
            layer.SeqToANNContainer(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
            neuron.LIFNode(tau=2.0, step_mode="m"),
            layer.MultiStepContainer(nn.MaxPool2d(2)),
            layer.AdaptiveAvgPool2d((2, 2), step_mode="m"),
            layer.Flatten(step_mode="m"),
            layer.Dropout(0.5, step_mode="m"),
            layer.Linear(8 * 2 * 2, 40, step_mode="m"),
            neuron.LIFNode(tau=2.0, step_mode="m"),
            layer.VotingLayer(4, step_mode="m"),
        )

    def forward(self, x):
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        out = self.features(x)
        functional.reset_net(self)
        return out.mean(0)


def plif_mnist(dtype):
    """spikingjelly.activation_based.model.parametric_lif_net.MNISTNet (imported), ParametricLIFNode,
    multi-step via functional.set_step_mode: layer.Dropout, VotingLayer."""
    net = parametric_lif_net.MNISTNet(channels=4, spiking_neuron=neuron.ParametricLIFNode,
                                      surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(net, "m")
    return net


def sew18(dtype, cnf="ADD"):
    sew_resnet, _ = _import_sj_resnets()
    net = sew_resnet.sew_resnet18(spiking_neuron=neuron.IFNode, cnf=cnf, num_classes=10,
                                  surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(net, "m")
    return net


def spiking18(dtype):
    _, spiking_resnet = _import_sj_resnets()
    net = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.IFNode, num_classes=10,
                                          surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(net, "m")
    return net


def ms18(dtype, kind="ms_resnet18"):
    from spikingjelly.activation_based.model import ms_resnet

    return getattr(ms_resnet, kind)(T=2, num_classes=10)


def _init_bn(model: nn.Module, gain: float = 1.0) -> nn.Module:
    """Trained-looking BatchNorm statistics (random ones give silent or saturated layers)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * gain + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.3)
    return model


def _sj_reset(model):
    functional.reset_net(model)


# ------------------------------------------------------------------------------------------ cases

T = NUM_STEPS


def _steps_ref(reset=None, state=False, static=False):
    r = _per_step(reset, state)
    r.steps, r.static = T, static
    return r


def _build(factory, gain=1.0, bias=0.0, bn=None):
    def build(dtype):
        torch.manual_seed(0)
        m = factory(dtype) if _takes_dtype(factory) else factory()
        scale(m, gain, bias)
        if bn is not None:
            _init_bn(m, bn)
        return m.to(dtype).eval()
    return build


def _takes_dtype(f) -> bool:
    import inspect
    try:
        return "dtype" in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False


CASES: list[Case] = [
    Case("snntorch-tutorial5", "snnTorch docs/tutorials/tutorial_5.rst (rebuilt)",
         "time loop in forward, init_leaky, static input held, torch.stack records, mem returned",
         _build(Tutorial5Net, 3.0, 0.2), (64,), _rand(BATCH, 64), _call, T, static=True, f32_only=True),
    Case("snntorch-tutorial6", "snnTorch docs/tutorials/tutorial_6.rst (rebuilt)",
         "init_leaky inside a one-step forward (state restarts every call), F.max_pool2d, view(batch_size, -1)",
         _build(Tutorial6Net, 2.0, 0.3), (1, 16, 16), _rand(T, BATCH, 1, 16, 16), _steps_ref(), T, f32_only=True),
    Case("snntorch-regression1", "snnTorch docs/tutorials/tutorial_regression_1.rst (rebuilt, as published)",
         "per-neuron beta/threshold, x[step] of a time-major input, one module as two neurons, stacked membrane",
         _build(lambda: RegressionNet(T, 16), 2.0, 0.5), (1,), _rand(T, BATCH, 1), _call, T, voltage=True,
         f32_only=True),
    Case("snntorch-synaptic", "snnTorch docs/examples/example_snn/example_snn_synaptic.rst (rebuilt, 1.0 API)",
         "init_synaptic, explicit syn/mem in a time loop, static input, stacked records",
         _build(SynapticNet, 2.0, 0.0), (40,), _rand(BATCH, 40), _call, T, static=True, f32_only=True),
    Case("snntorch-rleaky", "snnTorch docs/tutorials/tutorial_regression_2.rst form (rebuilt)",
         "init_rleaky, spk and mem carried explicitly, all-to-all recurrence, x[step]",
         _build(RLeakyNet, 2.5, 0.1), (6,), _rand(T, BATCH, 6), _call, T, float32=False, f32_only=True),
    Case("snntorch-tutorial7", "snnTorch docs/tutorials/tutorial_7.rst (rebuilt)",
         "nn.Sequential of init_hidden Leaky, output=True, utils.reset and data.size(0) loop in forward",
         _build(Tutorial7Net, 2.0, 0.2), (2, 16, 16), _rand(T, BATCH, 2, 16, 16), _call, T, f32_only=True),
    Case("norse-readme", "Norse README.md §2.3 (rebuilt)",
         "SequentialState of LIFCell/LICell; the caller carries the state per step",
         _build(norse_readme_classifier, 4.0, 0.3), (1, 16, 16), _rand(T, BATCH, 1, 16, 16),
         _steps_ref(state=True), T, voltage=True),
    Case("norse-state-loop", "Norse notebooks' Model around a SequentialState (rebuilt)",
         "SequentialState called in a time loop with its state carried (z, s = self.snn(x[ts], s)), torch.stack",
         _build(NorseStateLoop, 6.0, 0.2), (10,), _rand(T, BATCH, 10), _call, T),
    Case("norse-convnet", "norse.torch.models.conv.ConvNet (imported)",
         "for ts in range(seq_length), s=None state carried, torch.zeros buffer filled per step, "
         "F.max_pool2d, 10 * conv, view(-1, n), LILinearCell",
         _build(lambda dtype: ConvNet(feature_size=16, dtype=dtype), 6.0, 0.0), (1, 16, 16),
         _rand(T, BATCH, 1, 16, 16), _call, T, voltage=True),
    Case("norse-convnet4", "norse.torch.models.conv.ConvNet4 (imported)",
         "as ConvNet, v_th=0.7, 1024 hidden",
         _build(lambda dtype: ConvNet4(feature_size=16, dtype=dtype), 6.0, 0.0), (1, 16, 16),
         _rand(T, BATCH, 1, 16, 16), _call, T, voltage=True),
    Case("norse-loop-mlp", "Norse notebooks' loop form (rebuilt)",
         "(B, T, F) permuted to time-major, LIFCell state loop, zeros buffer, LILinearCell readout",
         _build(NorseLoopMLP, 8.0, 0.0), (12,), _rand(BATCH, T, 12), _call, T, voltage=True),
    Case("sj-lif-fc-mnist", "SpikingJelly activation_based/examples/lif_fc_mnist.py SNN (rebuilt)",
         "single-step LIFNode, layer.Flatten/Linear, the example's loop + functional.reset_net",
         _build(lambda: LifFcMnist(2.0), 6.0), (1, 16, 16), _rand(T, BATCH, 1, 16, 16),
         _steps_ref(reset=_sj_reset), T),
    Case("sj-lif-fc-counter", "SpikingJelly activation_based/examples/lif_fc_mnist.py evaluation loop (rebuilt "
         "inside forward)", "`out_fr += net(x)` spike counter over a loop, `/ T`, static input held, reset_net",
         _build(lambda: LifFcMnistCounter(T), 6.0), (1, 16, 16), _rand(BATCH, 1, 16, 16), _call, T, static=True),
    Case("sj-conv-fashion-mnist", "SpikingJelly activation_based/examples/conv_fashion_mnist.py CSNN (rebuilt)",
         "multi-step IFNode, x.unsqueeze(0).expand(T, ...), .mean(0) firing-rate readout, layer.BatchNorm2d",
         _build(lambda: CSNN(T, 4), 2.0, bn=1.0), (1, 28, 28), _rand(BATCH, 1, 28, 28),
         lambda m, x: _reset_after(m, x), T, static=True),
    Case("sj-rsnn-plain", "SpikingJelly activation_based/examples/rsnn_sequential_fmnist.py PlainNet (rebuilt)",
         "multi-step IFNode over a row sequence, .mean(0) readout",
         _build(lambda: _multi(RsnnPlainNet()), 2.0, 0.2), (28,), _rand(T, BATCH, 28),
         lambda m, x: _reset_after(m, x), T),
    Case("sj-rsnn-feedback", "SpikingJelly activation_based/examples/rsnn_sequential_fmnist.py FeedBackNet "
         "(rebuilt)", "LinearRecurrentContainer, multi-step, .mean(0)",
         _build(lambda: _multi(RsnnFeedBackNet()), 2.0, 0.2), (28,), _rand(T, BATCH, 28),
         lambda m, x: _reset_after(m, x), T),
    Case("sj-containers", "SpikingJelly container idiom (activation_based docs, rebuilt)",
         "SeqToANNContainer, MultiStepContainer, AdaptiveAvgPool2d, layer.Dropout, VotingLayer, "
         "unsqueeze(0).repeat(T, ...), reset_net in forward, .mean(0)",
         _build(lambda: SeqContainerNet(T), 3.0, 0.2, bn=1.0), (1, 8, 8), _rand(BATCH, 1, 8, 8),
         lambda m, x: _reset_after(m, x), T, static=True, voltage=True),
    Case("sj-plif-mnist", "spikingjelly.activation_based.model.parametric_lif_net.MNISTNet (imported)",
         "ParametricLIFNode, layer.Dropout, VotingLayer, multi-step Sequential",
         _build(plif_mnist, 3.0, 0.1, bn=1.0), (1, 28, 28), _rand(T, BATCH, 1, 28, 28),
         lambda m, x: _reset_after(m, x), T, voltage=True),
    Case("sj-sew-resnet18", "spikingjelly.activation_based.model.sew_resnet.sew_resnet18 (imported)",
         "library BasicBlock traced into, cnf='ADD' residual, downsample neurons, AdaptiveAvgPool2d, "
         "torch.flatten(x, 2)",
         _build(lambda dtype: sew18(dtype), 1.5, 0.0, bn=1.0), (3, 16, 16), _rand(2, BATCH, 3, 16, 16),
         lambda m, x: _reset_after(m, x), 2, voltage=True),
    Case("sj-ms-resnet18", "spikingjelly.activation_based.model.ms_resnet.ms_resnet18 (imported)",
         "static image repeated over the model's own T inside forward, membrane shortcut (out + identity of "
         "potentials), head LIF, .mean(0)",
         _build(lambda dtype: ms18(dtype), 1.5, 0.0, bn=1.0), (3, 8, 8), _rand(BATCH, 3, 8, 8),
         lambda m, x: _reset_after(m, x), 2, static=True, voltage=True),
    Case("sj-spiking-resnet18", "spikingjelly.activation_based.model.spiking_resnet.spiking_resnet18 (imported)",
         "library BasicBlock traced into, out += identity before the neuron, AdaptiveAvgPool2d",
         _build(lambda dtype: spiking18(dtype), 1.5, 0.0, bn=1.0), (3, 16, 16), _rand(2, BATCH, 3, 16, 16),
         lambda m, x: _reset_after(m, x), 2, voltage=True),
]


def _multi(m):
    functional.set_step_mode(m, "m")
    return m


def _reset_after(model, x):
    functional.reset_net(model)
    with torch.no_grad():
        out = model(x)
    functional.reset_net(model)
    return out
