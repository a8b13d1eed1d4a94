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

import numpy as np
import torch
from torch import nn

import norse.torch as norse
import snntorch as snn
from norse.torch.models.conv import ConvNet, ConvNet4
from snntorch import utils as snn_utils
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.model import parametric_lif_net


def _import_without_torchvision(*names: str) -> list[types.ModuleType]:
    """SpikingJelly's zoo modules (sew_resnet, spiking_resnet, spiking_vgg) import torchvision's
    `load_state_dict_from_url` (used only for pretrained weights); torchvision is not a test dependency,
    so that one function is stood in for while importing."""
    import importlib

    if "torchvision" in sys.modules:
        return [importlib.import_module(n) for n in names]
    stub = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.models", "torchvision.models.utils",
                                             "torchvision._internally_replaced_utils")}

    def no_download(*a, **k):
        raise RuntimeError("pretrained weights are not available in the tests")

    stub["torchvision.models.utils"].load_state_dict_from_url = no_download
    stub["torchvision._internally_replaced_utils"].load_state_dict_from_url = no_download
    stub["torchvision"].models = stub["torchvision.models"]
    stub["torchvision.models"].utils = stub["torchvision.models.utils"]
    sys.modules.update(stub)
    try:
        return [importlib.import_module(n) for n in names]
    finally:
        for n in stub:
            sys.modules.pop(n, None)


def _import_sj_resnets():
    return _import_without_torchvision("spikingjelly.activation_based.model.sew_resnet",
                                       "spikingjelly.activation_based.model.spiking_resnet")


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
    batch_first: bool = False  # the source feeds (B, T, ...) sequences
    f32_only: bool = False  # the library runs this model in float32 only (snnTorch's spikes are float32)
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, dtype: torch.dtype) -> nn.Module:
        """The model with random weights, calibrated so that every spiking layer fires (built once per dtype:
        tracing leaves a model as it found it, and every reference run starts from a reset)."""
        if dtype not in self.extra.setdefault("built", {}):
            m = self.build(dtype)
            calibrate(self, m, self.make_input(dtype))
            self.extra["built"][dtype] = m
        return self.extra["built"][dtype]

    def graph_input(self, graph, x: torch.Tensor) -> dict[str, np.ndarray]:
        """What the traced graph is fed, {Input name: (T, B, ...) float64}: the sequence the model saw (a held
        or static sample repeated over the steps; a batch-first sequence made time-major)."""
        from n3ml.ir import prims as P

        name, inp = next((n, p) for n, p in graph.nodes.items() if isinstance(p, P.Input))
        a = x.double().numpy()
        if inp.hold or self.static:
            a = np.repeat(a[None], self.steps, 0)
        elif self.batch_first:
            a = np.swapaxes(a, 0, 1)
        return {name: a}


def spiking_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from norse.torch.module.snn import SNN, SNNCell, SNNRecurrent, SNNRecurrentCell
    from snntorch._neurons.neurons import SpikingNeuron
    from spikingjelly.activation_based.neuron import BaseNode

    out = []
    for path, m in model.named_modules():
        if isinstance(m, (SpikingNeuron, SNNCell, SNN, SNNRecurrentCell, SNNRecurrent, BaseNode)) and not isinstance(m, (norse.LICell, norse.LI)) \
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
    from norse.torch.module.snn import SNN, SNNRecurrent

    mods = dict(model.named_modules())

    def whole(m):  # a module that runs a whole (T, B, ...) sequence per call
        return getattr(m, "step_mode", "s") == "m" or isinstance(m, (SNN, SNNRecurrent))

    return {p: v[0] if len(v) == 1 and v[0].dim() > 2 and whole(mods[p]) else torch.stack(v) for p, v in seen.items()}


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
        bad.sort(key=lambda b: order.index(b[0]))
        # deep networks (SEW-ResNet) fix every bad layer at once (one library run per round); others the first
        for path, v in bad if case.extra.get("calibrate_all") else bad[:1]:
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


# ------------------------------------------------------------------- more snnTorch


def snntorch_quickstart():
    """snnTorch README "Quickstart": an nn.Sequential of Flatten, Linear and init_hidden Leaky neurons with
    atan surrogates, the last `output=True`; its `forward_pass(net, num_steps, data)` loops outside."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 40), snn.Leaky(beta=0.9, init_hidden=True,
                                                                     spike_grad=snn.surrogate.atan()),
                         nn.Linear(40, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True,
                                                      spike_grad=snn.surrogate.atan()))


def _forward_pass(net, data):
    """snnTorch's `forward_pass`: utils.reset(net), then `spk_out, mem_out = net(data)` for num_steps."""
    spk_rec = []
    snn_utils.reset(net)
    with torch.no_grad():
        for step in range(NUM_STEPS):
            spk_out, mem_out = net(data)
            spk_rec.append(spk_out)
    return torch.stack(spk_rec)


class PopulationNet(nn.Module):
    """snnTorch docs/tutorials/tutorial_pop.rst: a convolutional init_hidden network whose 50 output neurons
    code 10 classes by population (ce_count_loss(population_code=True)); the loop over data.size(0) in forward."""

    def __init__(self, beta=0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), snn.Leaky(beta=beta, init_hidden=True),
                                 nn.Flatten(), nn.Linear(6 * 6 * 6, 50),
                                 snn.Leaky(beta=beta, init_hidden=True, output=True))

    def forward(self, data):
        spk_rec = []
        snn_utils.reset(self.net)
        for step in range(data.size(0)):
            spk_out, mem_out = self.net(data[step])
            spk_rec.append(spk_out)
        return torch.stack(spk_rec)


class LapicqueNet(nn.Module):
    """snnTorch docs/tutorials/tutorial_3.rst form: a Lapicque neuron (R, C, time_step) behind a Linear layer,
    `mem = lif.init_lapicque()` and a loop over a time-major input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 12)
        self.lif = snn.Lapicque(R=5.1, C=5e-3, time_step=1e-3)

    def forward(self, x):
        mem = self.lif.init_lapicque()
        spk_rec = []
        for step in range(x.shape[0]):
            spk, mem = self.lif(self.fc(x[step]), mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)


class ZeroResetNet(nn.Module):
    """snnTorch API docs (snntorch.Leaky / snntorch.Synaptic): reset_mechanism="zero", learn_threshold,
    `reset_mem()`, explicit syn/mem, spikes and the readout membrane both stacked and returned."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 16)
        self.lif1 = snn.Leaky(beta=0.8, reset_mechanism="zero", learn_threshold=True)
        self.fc2 = nn.Linear(16, 6)
        self.lif2 = snn.Synaptic(alpha=0.8, beta=0.7, reset_mechanism="zero")

    def forward(self, x):
        mem1 = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        spk_rec = []
        for step in range(x.size(0)):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


class ConvRLeakyNet(nn.Module):
    """snnTorch API docs (snntorch.RLeaky, `conv2d_channels`/`kernel_size`): a convolutional recurrence, its
    spikes carried explicitly, flattened into a Leaky readout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.rlif = snn.RLeaky(beta=0.8, conv2d_channels=4, kernel_size=3)
        self.fc = nn.Linear(4 * 8 * 8, 5)
        self.lif = snn.Leaky(beta=0.9)

    def forward(self, x):
        spk1, mem1 = self.rlif.init_rleaky()
        mem2 = self.lif.init_leaky()
        spk_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.rlif(self.conv(x[step]), spk1, mem1)
            spk2, mem2 = self.lif(self.fc(spk1.flatten(1)), mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


# ---------------------------------------------------------------------- more Norse


def norse_lifted():
    """Norse docs ("Working with Norse", norse.torch.Lift): a SequentialState over a whole (T, B, ...)
    sequence, Lift(Linear) applying the layer to every step, LIF and LI modules that loop over time."""
    return norse.SequentialState(norse.Lift(nn.Linear(10, 24)), norse.LIF(), norse.Lift(nn.Linear(24, 6)),
                                 norse.LI())


def _whole_sequence(model, x):
    with torch.no_grad():
        return model(x)[0]


class LSNNLIFNet(nn.Module):
    """norse/task/memory.py `LSNNLIFNet` (rebuilt): an LIFRecurrentCell and an LSNNRecurrentCell side by side on
    the same input, spikes concatenated; one step per call, the state tuple carried by the caller."""

    def __init__(self, input_features, p_lsnn, p_lif, dt=0.001):
        super().__init__()
        self.neurons_per_layer = input_features // 2
        self.lsnn_cell = norse.LSNNRecurrentCell(input_features, self.neurons_per_layer, p_lsnn, dt=dt)
        self.lif_cell = norse.LIFRecurrentCell(input_features, self.neurons_per_layer, p_lif, dt=dt)

    def forward(self, input_spikes, state):
        if state is None:
            lif_state = None
            lsnn_state = None
        else:
            lif_state, lsnn_state = state
        lif_out, lif_state = self.lif_cell(input_spikes, lif_state)
        lsnn_out, lsnn_state = self.lsnn_cell(input_spikes, lsnn_state)
        out_spikes = torch.cat((lif_out, lsnn_out), -1)
        return out_spikes, (lif_state, lsnn_state)


class MemoryNet(nn.Module):
    """norse/task/memory.py `MemoryNet.forward` (rebuilt without Lightning, one command period): the
    (B, T, F) input unbound along time (`x.unbind(1)`), LSNNLIFNet carrying its state, an LILinearCell
    readout, readouts stacked (and `torch.cat` of the period's records)."""

    def __init__(self, input_features=12, output_features=2):
        super().__init__()
        p_lsnn = norse.LSNNParameters(v_th=torch.as_tensor(0.5), tau_adapt_inv=torch.as_tensor(50.0),
                                      beta=torch.as_tensor(1.8))
        p_lif = norse.LIFParameters(v_th=torch.as_tensor(0.5))
        self.layer = LSNNLIFNet(input_features, p_lsnn=p_lsnn, p_lif=p_lif)
        self.readout = norse.LILinearCell(input_features, output_features)

    def forward(self, x):
        sl = None
        sr = None
        seq_spikes = []
        seq_readouts = []
        for index, x_step in enumerate(x.unbind(1)):
            spikes, sl = self.layer(x_step, sl)
            seq_spikes.append(spikes)
            v, sr = self.readout(spikes, sr)
            seq_readouts.append(v)
        spikes = torch.cat([torch.stack(seq_spikes)])
        return spikes, torch.stack(seq_readouts)


class ConstantCurrentNet(nn.Module):
    """norse/task/mnist.py `LIFConvNet` form (rebuilt): `ConstantCurrentLIFEncoder(seq_length)` inside forward
    turns the static image (times `input_scale`) into spikes, then `for ts in range(seq_length)` over LIFCell
    and an LILinearCell readout with a zeros buffer."""

    def __init__(self, input_features=64, seq_length=NUM_STEPS, input_scale=6.0):
        super().__init__()
        self.input_features = input_features
        self.seq_length = seq_length
        self.input_scale = input_scale
        self.constant_current_encoder = norse.ConstantCurrentLIFEncoder(seq_length=seq_length)
        self.fc = nn.Linear(input_features, 24)
        self.lif = norse.LIFCell()
        self.out = norse.LILinearCell(24, 5)

    def forward(self, x):
        batch_size = x.shape[0]
        x = self.constant_current_encoder(x.view(-1, self.input_features) * self.input_scale)
        s1 = so = None
        voltages = torch.zeros(self.seq_length, batch_size, 5, dtype=x.dtype)
        for ts in range(self.seq_length):
            z, s1 = self.lif(self.fc(x[ts]), s1)
            vo, so = self.out(z, so)
            voltages[ts, :, :] = vo
        return voltages


# --------------------------------------------------------------- more SpikingJelly


class SynapseFilterReadout(nn.Module):
    """SpikingJelly layer.SynapseFilter docstring (its use as the last layer, whose current replaces a spike
    count, after "Enabling spike-based backpropagation"): single-step LIF hidden layer, output spikes filtered
    by a learnable SynapseFilter whose current is the output; the caller loops and resets."""

    def __init__(self, tau=4.0):
        super().__init__()
        self.fc1 = layer.Linear(16, 24)
        self.sn1 = neuron.LIFNode(tau=2.0)
        self.fc2 = layer.Linear(24, 5)
        self.sn2 = neuron.IFNode()
        self.syn = layer.SynapseFilter(tau=tau, learnable=True)

    def forward(self, x):
        return self.syn(self.sn2(self.fc2(self.sn1(self.fc1(x)))))


class RsnnStatefulSynapseNet(nn.Module):
    """SpikingJelly examples/rsnn_sequential_fmnist.py `StatefulSynapseNet` (rebuilt: imports torchvision):
    a learnable SynapseFilter between two IFNode layers, multi-step, `.mean(0)` readout."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(
            layer.Linear(28, 32),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.SynapseFilter(tau=2.0, learnable=True),
            layer.Linear(32, 10),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
        )

    def forward(self, x: torch.Tensor):
        return self.fc(x).mean(0)


class SingleStepLoopNet(nn.Module):
    """SpikingJelly activation_based tutorial "basic concepts" (single-step mode): the network called once per
    step in a Python loop inside forward, outputs stacked and averaged (`torch.stack(out).mean(0)`);
    soft-reset LIF without input decay, layer.AvgPool2d, layer.BatchNorm2d."""

    def __init__(self, T=NUM_STEPS):
        super().__init__()
        self.T = T
        self.net = nn.Sequential(
            layer.Conv2d(1, 4, 3), layer.BatchNorm2d(4),
            neuron.LIFNode(tau=2.0, v_reset=None, decay_input=False), layer.AvgPool2d(2), layer.Flatten(),
            layer.Linear(36, 5), neuron.IFNode())

    def forward(self, x):
        out = []
        for t in range(self.T):
            out.append(self.net(x))
        functional.reset_net(self.net)
        return torch.stack(out).mean(0)


def sj_zoo(kind, **kw):
    """A network of spikingjelly.activation_based.model.parametric_lif_net (imported), multi-step."""
    def build(dtype):
        net = getattr(parametric_lif_net, kind)(surrogate_function=surrogate.ATan(), detach_reset=True, **kw)
        functional.set_step_mode(net, "m")
        return net
    return build


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
         _build(NorseLoopMLP, 8.0, 0.0), (12,), _rand(BATCH, T, 12), _call, T, voltage=True, batch_first=True),
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
         _build(lambda dtype: sew18(dtype), 2.5, 0.0, bn=1.0), (3, 8, 8), _rand(2, BATCH, 3, 8, 8),
         lambda m, x: _reset_after(m, x), 2, voltage=True, extra={"calibrate_all": True}),
    Case("sj-ms-resnet18", "spikingjelly.activation_based.model.ms_resnet.ms_resnet18 (imported)",
         "static image repeated over the model's own T inside forward, membrane shortcut (out + identity of "
         "potentials), head LIF, .mean(0)",
         _build(lambda dtype: ms18(dtype), 1.5, 0.0, bn=1.0), (3, 8, 8), _rand(BATCH, 3, 8, 8),
         lambda m, x: _reset_after(m, x), 2, static=True, voltage=True),
    Case("sj-spiking-resnet18", "spikingjelly.activation_based.model.spiking_resnet.spiking_resnet18 (imported)",
         "library BasicBlock traced into, out += identity before the neuron, AdaptiveAvgPool2d",
         _build(lambda dtype: spiking18(dtype), 2.5, 0.0, bn=1.0), (3, 8, 8), _rand(2, BATCH, 3, 8, 8),
         lambda m, x: _reset_after(m, x), 2, voltage=True, extra={"calibrate_all": True}),
]

MORE_CASES: list[Case] = [
    Case("snntorch-quickstart", "snnTorch README.md Quickstart (rebuilt)",
         "nn.Sequential with init_hidden Leaky and output=True called per step by forward_pass, utils.reset, "
         "static input, atan surrogate",
         _build(snntorch_quickstart, 3.0, 0.2), (1, 8, 8), _rand(BATCH, 1, 8, 8), _forward_pass, T, static=True,
         f32_only=True),
    Case("snntorch-population", "snnTorch docs/tutorials/tutorial_pop.rst (rebuilt)",
         "conv + MaxPool2d + init_hidden Leaky, 50 population-coded outputs with output=True, loop in forward",
         _build(PopulationNet, 3.0, 0.2), (1, 16, 16), _rand(T, BATCH, 1, 16, 16), _call, T, f32_only=True),
    Case("snntorch-lapicque", "snnTorch docs/tutorials/tutorial_3.rst form (rebuilt)",
         "Lapicque(R, C, time_step), init_lapicque, x[step] loop",
         _build(LapicqueNet, 3.0, 0.2), (10,), _rand(T, BATCH, 10), _call, T, f32_only=True),
    Case("snntorch-zero-reset", "snnTorch API docs, Leaky/Synaptic reset_mechanism='zero' (rebuilt)",
         "reset_mechanism='zero' (Leaky and Synaptic), learn_threshold, reset_mem(), x.size(0) loop",
         _build(ZeroResetNet, 3.0, 0.2), (10,), _rand(T, BATCH, 10), _call, T, f32_only=True),
    Case("snntorch-conv-rleaky", "snnTorch API docs, RLeaky(conv2d_channels, kernel_size) (rebuilt)",
         "convolutional RLeaky recurrence with explicit spk/mem, spk.flatten(1), Leaky readout",
         _build(ConvRLeakyNet, 3.0, 0.2), (1, 8, 8), _rand(T, BATCH, 1, 8, 8), _call, T, f32_only=True),
    Case("norse-lift", "Norse docs, norse.torch.Lift with SequentialState (rebuilt)",
         "Lift(Linear) over a whole sequence, LIF and LI modules looping over time inside",
         _build(norse_lifted, 5.0, 0.2), (10,), _rand(T, BATCH, 10), _whole_sequence, T, voltage=True),
    Case("norse-memory-lsnn", "norse/task/memory.py LSNNLIFNet + MemoryNet.forward (rebuilt)",
         "LSNNRecurrentCell (adaptive threshold) beside LIFRecurrentCell, torch.cat of their spikes, state tuple "
         "carried, x.unbind(1) of a (B, T, F) input, LILinearCell readout",
         _build(MemoryNet, 4.0, 0.2), (12,), _rand(BATCH, T, 12), _call, T, batch_first=True),
    Case("norse-constant-current", "norse/task/mnist.py LIFConvNet form (rebuilt)",
         "ConstantCurrentLIFEncoder inside forward (static image held seq_length steps), x.view(-1, n) * scale, "
         "LIFCell loop, zeros buffer, LILinearCell",
         _build(ConstantCurrentNet, 4.0, 0.2), (1, 8, 8), _rand(BATCH, 1, 8, 8), _call, T, static=True,
         voltage=True, f32_only=True),
    Case("sj-synapse-filter", "SpikingJelly layer.SynapseFilter docstring, readout use (rebuilt)",
         "single-step LIFNode and IFNode, learnable SynapseFilter current as the output, caller loop + reset_net",
         _build(SynapseFilterReadout, 4.0, 0.2), (16,), _rand(T, BATCH, 16), _steps_ref(reset=_sj_reset), T,
         voltage=True),
    Case("sj-rsnn-stateful-synapse", "SpikingJelly activation_based/examples/rsnn_sequential_fmnist.py "
         "StatefulSynapseNet (rebuilt)", "SynapseFilter(learnable) between spiking layers, multi-step, .mean(0)",
         _build(lambda: _multi(RsnnStatefulSynapseNet()), 2.0, 0.2), (28,), _rand(T, BATCH, 28),
         lambda m, x: _reset_after(m, x), T),
    Case("sj-single-step-loop", "SpikingJelly activation_based basic-concepts tutorial, single-step (rebuilt)",
         "net(x) called T times in forward on a static image, torch.stack(out).mean(0), soft reset, "
         "decay_input=False, layer.AvgPool2d",
         _build(lambda: SingleStepLoopNet(T), 3.0, 0.2, bn=1.0), (1, 8, 8), _rand(BATCH, 1, 8, 8),
         lambda m, x: _reset_after(m, x), T, static=True, voltage=True),
    Case("sj-fmnist-net", "spikingjelly.activation_based.model.parametric_lif_net.FashionMNISTNet (imported)",
         "zoo network with LIFNode passed as spiking_neuron, layer.Dropout, VotingLayer, multi-step",
         _build(sj_zoo("FashionMNISTNet", channels=4, spiking_neuron=neuron.LIFNode), 3.0, 0.1, bn=1.0),
         (1, 28, 28), _rand(T, BATCH, 1, 28, 28), lambda m, x: _reset_after(m, x), T, voltage=True),
    Case("sj-nmnist-net", "spikingjelly.activation_based.model.parametric_lif_net.NMNISTNet (imported)",
         "2-channel event frames (34x34), IFNode, multi-step zoo network",
         _build(sj_zoo("NMNISTNet", channels=4, spiking_neuron=neuron.IFNode), 3.0, 0.1, bn=1.0),
         (2, 34, 34), _rand(T, BATCH, 2, 34, 34), lambda m, x: _reset_after(m, x), T, voltage=True),
    Case("sj-sew-resnet18-iand", "spikingjelly.activation_based.model.sew_resnet.sew_resnet18 (imported), "
         "cnf='IAND'", "SEW connect function x * (1.0 - y) of spikes (an exact AND-NOT), library BasicBlock "
         "traced into", _build(lambda dtype: sew18(dtype, "IAND"), 2.5, 0.0, bn=1.0), (3, 8, 8),
         _rand(2, BATCH, 3, 8, 8), lambda m, x: _reset_after(m, x), 2, voltage=True, float32=False,
         extra={"calibrate_all": True}),
]
CASES += MORE_CASES


def _multi(m):
    functional.set_step_mode(m, "m")
    return m


def _reset_after(model, x):
    functional.reset_net(model)
    with torch.no_grad():
        out = model(x)
    functional.reset_net(model)
    return out


# ------------------------------------------------------ more of SpikingJelly's zoo (imported, smallest sizes)

def ottt_vggws(dtype, gain=2.0):
    """spikingjelly.activation_based.model.spiking_vggws_ottt.ottt_spiking_vggws (imported): OTTTLIFNode,
    WSConv2d (weight standardization computed in forward), Scale(2.74), AvgPool2d, OTTTSequential, a
    light classifier. Standardization undoes any weight scaling, so the layers are made to fire through
    the WSConv2d gains (a learned parameter of the model) instead."""
    from spikingjelly.activation_based.model import spiking_vggws_ottt

    net = spiking_vggws_ottt.ottt_spiking_vggws(num_classes=10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, layer.WSConv2d):
                m.gain.fill_(gain)
    return net


def _ottt_steps(steps):
    """OTTT's per-step evaluation (its nodes are single-step only): reset_net, then the static image every step."""
    r = _per_step(_sj_reset)
    r.steps, r.static = steps, True
    return r


ZOO_CASES: list[Case] = [
    Case("sj-cifar10-net", "spikingjelly.activation_based.model.parametric_lif_net.CIFAR10Net (imported)",
         "PLIF zoo network, six conv-BN-neuron layers at 32x32, two MaxPool2d of spikes, Dropout, VotingLayer",
         _build(sj_zoo("CIFAR10Net", channels=4, spiking_neuron=neuron.ParametricLIFNode), 3.0, 0.1, bn=1.0),
         (3, 32, 32), _rand(T, BATCH, 3, 32, 32), lambda m, x: _reset_after(m, x), T, voltage=True),
    Case("sj-dvsgesture-net", "spikingjelly.activation_based.model.parametric_lif_net.DVSGestureNet (imported)",
         "128x128 2-channel event frames, five conv-BN-LIF-MaxPool stages, VotingLayer",
         _build(sj_zoo("DVSGestureNet", channels=2, spiking_neuron=neuron.LIFNode), 3.0, 0.1, bn=1.0),
         (2, 128, 128), _rand(2, 1, 2, 128, 128), lambda m, x: _reset_after(m, x), 2, voltage=True),
    Case("sj-cifar10dvs-net", "spikingjelly.activation_based.model.parametric_lif_net.CIFAR10DVSNet (imported)",
         "128x128 2-channel event frames, four conv-BN-IF-MaxPool stages, VotingLayer",
         _build(sj_zoo("CIFAR10DVSNet", channels=2, spiking_neuron=neuron.IFNode), 3.0, 0.1, bn=1.0),
         (2, 128, 128), _rand(2, 1, 2, 128, 128), lambda m, x: _reset_after(m, x), 2, voltage=True),
    Case("sj-ottt-vggws", "spikingjelly.activation_based.model.spiking_vggws_ottt.ottt_spiking_vggws (imported)",
         "OTTTLIFNode (eval), WSConv2d's standardized weight, Scale(2.74) after each neuron, AvgPool2d, "
         "AdaptiveAvgPool2d(1), OTTT's per-step loop on a static image + reset_net",
         _build(ottt_vggws), (3, 8, 8), _rand(1, 3, 8, 8), _ottt_steps(2), 2, static=True, voltage=True,
         float32=False),
]
CASES += ZOO_CASES
