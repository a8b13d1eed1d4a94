"""SpikingJelly (activation_based) neurons and layers -> IR. See docs/frontends.md.

SpikingJelly's neuron step (both step modes) is

    IFNode:  h = v + x
    LIFNode: h = v + (x - (v - v_r)) / tau      (decay_input=True)
             h = v - (v - v_r) / tau + x        (decay_input=False)
    ParametricLIFNode: as LIFNode with 1/tau = sigmoid(w), w learned
    spike = [h - v_th >= 0];  v = v_reset if spike (hard reset) or h - v_th (v_reset=None: soft reset)

with v_r = v_reset, or 0 under a soft reset, and v starting at v_reset (0 for a soft
reset). The IR's threshold test is strict (v > theta), so theta is the largest
number below v_th in the model's floating dtype (numpy.nextafter): there,
``h > theta`` is exactly ``h >= v_th``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spikingjelly.activation_based import base, layer, neuron, surrogate
import torch
from torch import nn

from ...ir import prims as P
from . import lib_torch
from .surrogates import Exact, Inexact, Rule, slope_of, train
from .trace import Context, Entry, Tensor


# LIFNode and the online-training LIF nodes (OTTT, SLTT: spikingjelly/activation_based/neuron/online_learning.py),
# whose eval forward is LIFNode's own lif_step; in training they only add a trace or detach v (the tracer runs eval)
_LIF_STEP = (neuron.LIFNode, neuron.OTTTLIFNode, neuron.SLTTLIFNode)


def _check(ctx: Context, m: nn.Module) -> None:
    if not getattr(m.surrogate_function, "spiking", True):
        raise ctx.unsupported("a surrogate function in non-spiking (graded) mode", "spiking=True surrogates")
    if type(m) not in (neuron.IFNode, neuron.ParametricLIFNode, *_LIF_STEP):  # subclasses change the dynamics
        raise ctx.unsupported(f"{type(m).__name__} (a subclass with its own dynamics)",
                              "IFNode, LIFNode, ParametricLIFNode, OTTTLIFNode, SLTTLIFNode")


# SpikingJelly's surrogate modules whose backward (spikingjelly/activation_based/surrogate.py) is n3ml's with
# k = the module's `alpha` (n3ml/nn/surrogate.py); the exact class only: a subclass may change the backward
_SURROGATES: dict[str, str] = {
    "Sigmoid": "sigmoid",  # the neurons' default, Sigmoid(alpha=4)
    "ATan": "arctan",
    "PiecewiseQuadratic": "triangle",
    "Rect": "rectangle",
    "Erf": "erf",
    "SoftSign": "soft_sign",
    "PiecewiseExp": "piecewise_exp",
    "DeterministicPass": "straight_through",  # no alpha
}


def _surrogate(m: nn.Module) -> Rule:
    """The IR surrogate of the neuron's `surrogate_function` (evaluated, as n3ml's, at v - v_threshold)."""
    sg = m.surrogate_function
    cls = type(sg)
    where = f"{cls.__module__}.{cls.__qualname__}({getattr(sg, 'extra_repr', lambda: '')()})"
    name = _SURROGATES.get(cls.__name__) if cls is getattr(surrogate, cls.__name__, None) else None
    alpha = getattr(sg, "alpha", None)
    if cls is getattr(surrogate, "SuperSpike", None) and slope_of(alpha) == 1.0:
        return Exact("fast_sigmoid", 1.0)  # alpha / (|x| + 1)^2: n3ml's fast_sigmoid with k = 1 when alpha = 1
    if name is None:
        return Inexact(where)
    if name == "straight_through":
        return Exact(name)
    k = slope_of(alpha)
    return Exact(name, k) if k is not None else Inexact(where)


def _reset(m: nn.Module) -> tuple[str, float]:
    if m.v_reset is None:
        return "subtract", 0.0
    return "to-value", float(m.v_reset)


def if_node(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    _check(ctx, m)
    x = ctx.tensor(x)
    reset, vr = _reset(m)
    out = ctx.neuron(ctx.path, x, a=1.0, k=1.0, theta=ctx.at_or_above(m.v_threshold), reset=reset, v_reset=vr,
                     v_init=vr, detach_reset=m.detach_reset)
    train(ctx, out, _surrogate(m))
    return out


def lif_node(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    _check(ctx, m)
    x = ctx.tensor(x)
    reset, vr = _reset(m)
    inv = 1.0 / float(m.tau)
    k = inv if m.decay_input else 1.0
    out = ctx.neuron(ctx.path, x, a=1.0 - inv, k=k, theta=ctx.at_or_above(m.v_threshold), reset=reset,
                     v_reset=vr, v_leak=vr, v_init=vr, detach_reset=m.detach_reset)
    train(ctx, out, _surrogate(m))
    return out


def plif_node(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    """As LIFNode with 1/tau = sigmoid(w), computed in w's dtype as SpikingJelly does."""
    _check(ctx, m)
    x = ctx.tensor(x)
    reset, vr = _reset(m)
    with torch.no_grad():
        q = m.w.sigmoid().detach().cpu().double().numpy()
    k = q if m.decay_input else 1.0
    out = ctx.neuron(ctx.path, x, a=1.0 - q, k=k, theta=ctx.at_or_above(m.v_threshold), reset=reset,
                     v_reset=vr, v_leak=vr, v_init=vr, detach_reset=m.detach_reset)
    train(ctx, out, _surrogate(m))
    return out


def _per_step(ctx: Context, m: nn.Module, x: Any) -> Any:
    """Children of a container that applies them to every step (lead axes as for one step)."""
    lead = ctx.lead
    ctx.lead = 1
    try:
        return lib_torch.sequential(ctx, m, x)
    finally:
        ctx.lead = lead


def flatten(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    # SpikingJelly's layers take dims relative to one step in both step modes
    return lib_torch.flatten_dims(ctx, ctx.tensor(x), m.start_dim, m.end_dim, lead=1)


def linear_recurrent(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    """y_t = sub_module(rc(cat(x_t, y_{t-1}))) with rc a Linear over the concatenation."""
    x = ctx.tensor(x)
    n_in = ctx.shape(x)[0]
    w = m.rc.weight.detach().cpu().double().numpy()
    b = None if m.rc.bias is None else m.rc.bias.detach().cpu().double().numpy()
    rec = ctx.reserve(ctx.path + "_rec")
    fwd = ctx.add(ctx.path + "_in", P.Dense(weight=w[:, :n_in].copy(), bias=b), x)
    total = ctx.add(ctx.path + "_sum", P.Add(), fwd, rec)
    lead = ctx.lead
    ctx.lead = 1
    try:
        y = ctx.tensor(ctx.convert_module(m.sub_module, f"{ctx.path}.sub_module", total))
    finally:
        ctx.lead = lead
    prev = ctx.add(ctx.path + "_prev", P.Delay(steps=1), y)
    ctx.add(rec, P.Dense(weight=w[:, n_in:].copy()), prev, name=rec)
    return y


class _Linear:
    """An IR value inside a user's element-wise function: sums, differences and constant factors build IR
    nodes; anything else (a product of two values, a comparison, a torch function) is refused."""

    def __init__(self, ctx: Context, t: Tensor):
        self.ctx, self.t = ctx, t

    def _other(self, o: Any) -> Tensor:
        if isinstance(o, _Linear):
            return o.t
        raise TypeError("only sums of the two inputs and constant factors")

    def __add__(self, o):
        if isinstance(o, (int, float)) and o == 0:
            return self
        return _Linear(self.ctx, self.ctx.add(self.ctx.path + "_f", P.Add(), self.t, self._other(o)))

    __radd__ = __add__

    def __sub__(self, o):
        return self + (-o if isinstance(o, _Linear) else self._other(o))

    def __rsub__(self, o):
        return (-self) + o

    def __neg__(self):
        return self * -1.0

    def __mul__(self, c):
        if not isinstance(c, (int, float)):
            raise TypeError("a product of two values")
        return _Linear(self.ctx, self.ctx.scale(self.ctx.path + "_f", self.t, float(c)))

    __rmul__ = __mul__

    def __truediv__(self, c):
        if not isinstance(c, (int, float)):
            raise TypeError("a division by a value")
        return self * (1.0 / c)


def element_wise_recurrent(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    """ElementWiseRecurrentContainer: y_t = sub_module(f(y_{t-1}, x_t)), y_{-1} = 0, with f the user's
    element-wise function evaluated on IR values (sums and constant factors: `lambda x, y: x + y`)."""
    x = ctx.tensor(x)
    prev = ctx.reserve(ctx.path + "_prev")
    ctx.types[prev] = dataclasses.replace(ctx.type(x), kind="analog")  # the Delay is added below
    try:
        i = m.element_wise_function(_Linear(ctx, Tensor(prev)), _Linear(ctx, x))
    except TypeError as e:
        raise ctx.unsupported(f"its element_wise_function is not a sum of its inputs with constant factors ({e})",
                              "lambda x, y: x + y (and constant factors)") from None
    if not isinstance(i, _Linear):
        raise ctx.unsupported("its element_wise_function does not return a value computed from its inputs",
                              "lambda x, y: x + y")
    lead = ctx.lead
    ctx.lead = 1
    try:
        y = ctx.tensor(ctx.convert_module(m.sub_module, f"{ctx.path}.sub_module", i.t))
    finally:
        ctx.lead = lead
    ctx.add(prev, P.Delay(steps=1), y, name=prev)
    return y


def dropout(ctx: Context, m: nn.Module, x: Any) -> Any:
    """layer.Dropout/Dropout2d: a mask fixed over the steps while training, the identity at inference."""
    return x


def voting(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    """VotingLayer: the mean of each group of `voting_size` outputs (avg_pool1d over the features)."""
    return lib_torch.avg_pool1d_node(ctx, ctx.tensor(x), m.voting_size)


def synapse_filter(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    """SynapseFilter: I_t = I_{t-1} - (1 - S_t) I_{t-1} / tau + S_t (SpikingJelly's synapse_filter_step).

    For 0/1 spikes S the decay is switched off by the input: the IR's SynapseFilter (leak = 1/tau, or
    sigmoid(w) when learnable), which performs SpikingJelly's operations in its order (bit for bit).
    Graded input is refused: the IR's filter is defined on spikes, where every target can build it."""
    x = ctx.tensor(x)
    if ctx.type(x).kind != "spike":
        raise ctx.unsupported("SynapseFilter fed values that are not spikes: its update multiplies the state by "
                              "the input, which n3ml's SynapseFilter defines for 0/1 spikes only",
                              "SynapseFilter after a spiking neuron")
    with torch.no_grad():
        inv = m.w.sigmoid().detach().cpu().double().numpy() if m.learnable else 1.0 / m.tau
    name = ctx.reserve(ctx.path or "synapse_filter")
    return ctx.add(name, P.SynapseFilter(leak=ctx.param(inv, ctx.shape(x), "1/tau")), x, name=name)


def weight_standardized(convert: Any) -> Any:
    """layer.WSConv2d / WSLinear: the torch layer with the weight its forward computes (`get_weight()`)."""
    def run(ctx: Context, m: nn.Module, x: Any) -> Tensor:
        with torch.no_grad():
            return convert(ctx, m, x, weight=m.get_weight())
    return run


def _mode(m: nn.Module) -> str:
    return "multi" if m.step_mode == "m" else "single"


MODULES: dict[type, Entry] = {
    neuron.IFNode: Entry(if_node, _mode),
    neuron.LIFNode: Entry(lif_node, _mode),
    neuron.OTTTLIFNode: Entry(lif_node, _mode),
    neuron.SLTTLIFNode: Entry(lif_node, _mode),
    neuron.ParametricLIFNode: Entry(plif_node, _mode),
    layer.Flatten: Entry(flatten),
    layer.SeqToANNContainer: Entry(_per_step),
    layer.LinearRecurrentContainer: Entry(linear_recurrent, _mode),
    layer.ElementWiseRecurrentContainer: Entry(element_wise_recurrent, _mode),
    layer.Dropout: Entry(dropout),
    layer.VotingLayer: Entry(voting),
    layer.SynapseFilter: Entry(synapse_filter, _mode),
    layer.WSConv2d: Entry(weight_standardized(lib_torch.conv2d)),
    layer.WSLinear: Entry(weight_standardized(lib_torch.linear)),
}

# library modules the tracer never enters: neurons and other modules with state of their own (a neuron
# without a converter is refused by name instead of traced into its arithmetic)
OPAQUE = (neuron.BaseNode, base.MemoryModule)

# neurons whose output has their input's shape and whose library run (a Python loop over the steps)
# the recording tracer can skip: it needs only the shape of their spikes
SHAPE_ONLY = (neuron.BaseNode,)

# modules whose children run inside them (their own step mode decides); see trace._step_mode
CONTAINERS = (layer.LinearRecurrentContainer, layer.ElementWiseRecurrentContainer)
