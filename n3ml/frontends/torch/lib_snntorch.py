"""snnTorch neurons -> IR. See docs/frontends.md for the derivations.

snnTorch (reset_delay=True, the default) tests ``mem_t > threshold`` (strict) and
applies the reset of a spike at step t-1 *inside* step t's update:

    Leaky:     mem_t = beta mem_{t-1} + I_t - thr s_{t-1}            (subtract)
               mem_t = beta (1 - s_{t-1}) mem_{t-1} + I_t            (zero)

The IR resets at the spike step (v_t = mem_t - thr) and then decays, which
subtracts ``beta thr`` instead of ``thr``; a self-loop Delay(1) -> Scale(-(1-beta) thr)
-> Add on the neuron's input adds the difference, so the IR's voltage equals
snnTorch's ``mem_t - thr s_t`` at every step and the spikes are identical. Leaky's
zero reset is the IR's to-value 0; Synaptic, RLeaky and Lapicque set the whole
``mem_t`` to 0 in the step after a spike (so they cannot spike there): to-value 0
with refractory = 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from snntorch._neurons.lapicque import Lapicque
from snntorch._neurons.leaky import Leaky
from snntorch._neurons.rleaky import RLeaky
from snntorch._neurons.rsynaptic import RSynaptic
from snntorch._neurons.synaptic import Synaptic
from torch import nn

from ...ir import prims as P
from .surrogates import Exact, Inexact, Rule, slope_of, train
from .trace import Context, Entry, State, Tensor

_MECH = {"_base_sub": "subtract", "_base_zero": "zero", "_base_int": "none"}


def _mechanism(ctx: Context, m: nn.Module) -> str:
    fn = getattr(m.state_function, "__name__", "")
    if fn not in _MECH:
        raise ctx.unsupported(f"state function {fn!r}", "reset_mechanism subtract, zero, none")
    return _MECH[fn]


def _check(ctx: Context, m: nn.Module, state_args: tuple) -> None:
    if getattr(m, "inhibition", False):
        raise ctx.unsupported("inhibition=True (winner-take-all across the batch)", "inhibition=False")
    if getattr(m, "state_quant", False):
        raise ctx.unsupported("state_quant (quantized state); quantize the IR with n3ml's passes instead",
                              "state_quant=False")
    if not getattr(m, "reset_delay", True):
        raise ctx.unsupported("reset_delay=False", "reset_delay=True (the default)")
    if any(a is not None for a in state_args):
        raise ctx.unsupported("passing state tensors to the neuron; let the module keep its own state "
                              "(init_hidden=True or no state arguments)", "module(input)")


# snnTorch's surrogate factories return a closure `inner(x)` over the factory's argument; the backward
# formulas (snntorch/surrogate.py) are n3ml's with k = that argument (n3ml/nn/surrogate.py)
_SURROGATES: dict[str, tuple[str, str | None]] = {
    "atan.<locals>.inner": ("arctan", "alpha"),  # the default spike_grad: atan(alpha=2)
    "fast_sigmoid.<locals>.inner": ("fast_sigmoid", "slope"),
    "sigmoid.<locals>.inner": ("sigmoid", "slope"),
    "straight_through_estimator.<locals>.inner": ("straight_through", None),
}


def _surrogate(m: nn.Module) -> Rule:
    """The IR surrogate of the module's `spike_grad` (which both fires and, detached, resets)."""
    if getattr(m, "surrogate_disable", False):
        return Inexact("none (surrogate_disable=True: no gradient through the spike)")
    fn = m.spike_grad
    qualname = getattr(fn, "__qualname__", type(fn).__qualname__)
    where = f"{getattr(fn, '__module__', '?')}.{qualname.removesuffix('.<locals>.inner')}"  # the factory's name
    row = _SURROGATES.get(qualname) if getattr(fn, "__module__", None) == "snntorch.surrogate" else None
    if row is None:
        return Inexact(where)
    name, arg = row
    if arg is None:
        return Exact(name)
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
    k = slope_of(cells.get(arg))
    return Exact(name, k) if k is not None else Inexact(f"{where} with {arg}={cells.get(arg)!r}")


def _t(v: Any) -> np.ndarray:
    return v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float64)


def _spiking(ctx: Context, x: Tensor, *, a: Any, thr: Any, mech: str, zero_refractory: int,
             recurrent: Any = None) -> Tensor:
    """mem_t = a mem_{t-1} + x_t [+ recurrent(s_{t-1})] - reset, as IR nodes (x already carries the input gain)."""
    base = ctx.path
    shape = ctx.shape(x)
    if ctx.fresh:  # the forward passes a zero state every step: mem_t = I_t, nothing carried over
        if recurrent is not None:
            raise ctx.unsupported("a recurrent neuron whose state the forward re-initialises at every call",
                                  "carry spk and mem between calls")
        a = 0.0
    a = ctx.param(a, shape, "beta")
    thr = ctx.param(thr, shape, "threshold")
    name = ctx.reserve(base)
    needs_corr = mech == "subtract" and not np.all(np.asarray(a) == 1.0) and not ctx.fresh
    delay = ctx.reserve(base + "_prev") if recurrent else None
    # snnTorch's reset term is detached (`mem_reset`): the correction reads the spikes through its own
    # detached Delay, while a recurrent connection's spikes keep their gradient
    reset_delay = ctx.reserve(base + "_reset_prev") if needs_corr else None
    terms: list[Any] = [x]
    late: list[tuple[str, Any, str]] = []  # nodes that read the neuron (added after it)
    if needs_corr:
        corr = ctx.reserve(base + "_reset")
        factor = -(1.0 - np.asarray(a)) * np.asarray(thr)
        late.append((corr, P.Scale(factor=float(factor) if factor.ndim == 0 else factor), reset_delay))
        terms.append(corr)
    if recurrent is not None:
        rec_name = ctx.reserve(base + "_rec")
        late.append((rec_name, recurrent, delay))
        terms.append(rec_name)
    inp = ctx.add(base + "_in", P.Add(), *terms) if len(terms) > 1 else x
    reset = {"subtract": "subtract", "zero": "to-value", "none": "none"}[mech]
    out = ctx.neuron(base, inp, a=a, k=1.0, theta=thr, reset=reset, v_reset=0.0,
                     refractory=zero_refractory if mech == "zero" and not ctx.fresh else 0, name=name)
    if delay:
        ctx.add(delay, P.Delay(steps=1), out, name=delay)
    if reset_delay:
        ctx.add(reset_delay, P.Delay(steps=1, detach=True), out, name=reset_delay)
    for n, prim, src in late:
        ctx.add(n, prim, src, name=n)
    return out


def _graded(ctx: Context, m: nn.Module, out: Tensor) -> Tensor:
    gsf = getattr(m, "graded_spikes_factor", 1.0)
    return ctx.scale(ctx.path + "_graded", out, gsf)


def _result(m: nn.Module, ctx: Context, spk: Tensor, *states: str, mem: Any = None) -> Any:
    """spk, or (spk, *states) as the module returns them; `mem` builds the membrane as a value where the
    IR can give it (a neuron without reset: its membrane is a leaky integrator of the same input)."""
    if m.init_hidden and not m.output:
        return spk
    return (spk, *(State(ctx.path, s, mem if s == "mem" else None) for s in states))


def _membrane(ctx: Context, x: Tensor, mech: str, *decays: Any) -> Any:
    """mem_t of a neuron that never resets: a chain of LIs (current filters, then the membrane)."""
    if mech != "none" or ctx.fresh:
        return None
    base = ctx.path

    def make() -> Tensor:
        v = x
        for i, a in enumerate(decays):
            v = ctx.neuron(base + ("_mem" if i == len(decays) - 1 else "_cur"), v, a=a, k=1.0, spiking=False)
        return v
    return make


def leaky(ctx: Context, m: Leaky, x: Any, *state: Any) -> Any:
    _check(ctx, m, state)
    x = ctx.tensor(x)
    mech = _mechanism(ctx, m)
    out = _spiking(ctx, x, a=m.beta.clamp(0, 1), thr=m.threshold, mech=mech, zero_refractory=0)
    train(ctx, out, _surrogate(m))
    return _result(m, ctx, _graded(ctx, m, out), "mem", mem=_membrane(ctx, x, mech, m.beta.clamp(0, 1)))


def synaptic(ctx: Context, m: Synaptic, x: Any, *state: Any) -> Any:
    """syn_t = alpha syn + I_t [+ V(s_{t-1}) for RSynaptic]; mem_t = beta mem + syn_t - reset."""
    _check(ctx, m, state)
    x = ctx.tensor(x)
    mech = _mechanism(ctx, m)
    alpha, beta = m.alpha.clamp(0, 1), m.beta.clamp(0, 1)
    if ctx.fresh:  # a zero state every step: syn_t = I_t, mem_t = syn_t
        if isinstance(m, RSynaptic):
            raise ctx.unsupported("a recurrent neuron whose state the forward re-initialises at every call",
                                  "carry spk, syn and mem between calls")
        alpha = beta = torch.zeros(())
    x_in = x
    rec = _recurrent(ctx, m, ctx.shape(x)) if isinstance(m, RSynaptic) else None
    rec_name = ctx.reserve(ctx.path + "_rec") if rec is not None else None
    if rec_name:
        x = ctx.add(ctx.path + "_in", P.Add(), x, rec_name)
    if mech == "subtract":  # the reset correction must bypass the synaptic filter: LI (current) + LIF
        syn = ctx.neuron(ctx.path + "_syn", x, a=alpha, k=1.0, spiking=False)
        out = _spiking(ctx, syn, a=beta, thr=m.threshold, mech=mech, zero_refractory=1)
    else:
        reset = "to-value" if mech == "zero" else "none"
        out = ctx.cuba(ctx.path, x, a_syn=alpha, a_mem=beta, k=1.0, theta=m.threshold, reset=reset,
                       refractory=1 if mech == "zero" and not ctx.fresh else 0)
    train(ctx, out, _surrogate(m))
    spk = _graded(ctx, m, out)
    if rec_name:  # RSynaptic feeds back its (graded) output spikes
        prev = ctx.add(ctx.path + "_prev", P.Delay(steps=1), spk)
        ctx.add(rec_name, rec, prev, name=rec_name)
    return _result(m, ctx, spk, "syn", "mem", mem=None if rec_name else _membrane(ctx, x_in, mech, alpha, beta))


def _recurrent(ctx: Context, m: nn.Module, shape: tuple[int, ...]) -> P.Primitive:
    """The recurrent connection of RLeaky/RSynaptic (applied to the previous step's spikes)."""
    rec = m.recurrent
    if isinstance(rec, nn.Linear):
        return P.Dense(weight=_t(rec.weight), bias=None if rec.bias is None else _t(rec.bias))
    if isinstance(rec, nn.Conv2d):
        return P.Conv2d(weight=_t(rec.weight), bias=None if rec.bias is None else _t(rec.bias),
                        stride=tuple(rec.stride), padding=tuple(int(p) for p in rec.padding),
                        dilation=tuple(rec.dilation), groups=rec.groups)
    if hasattr(rec, "V"):
        return P.Scale(factor=ctx.param(rec.V, shape, "V"))
    raise ctx.unsupported(f"recurrent connection {type(rec).__name__}", "Linear, Conv2d, one-to-one V")


def rleaky(ctx: Context, m: RLeaky, x: Any, *state: Any) -> Any:
    _check(ctx, m, state)
    x = ctx.tensor(x)
    prim = _recurrent(ctx, m, ctx.shape(x))
    gsf = float(np.asarray(_t(getattr(m, "graded_spikes_factor", 1.0))).reshape(-1)[0])
    if gsf != 1.0:
        raise ctx.unsupported("graded_spikes_factor != 1 on RLeaky", "graded_spikes_factor=1")
    out = _spiking(ctx, x, a=m.beta.clamp(0, 1), thr=m.threshold, mech=_mechanism(ctx, m), zero_refractory=1,
                   recurrent=prim)
    train(ctx, out, _surrogate(m))
    return _result(m, ctx, out, "mem")


def lapicque(ctx: Context, m: Lapicque, x: Any, *state: Any) -> Any:
    _check(ctx, m, state)
    x = ctx.tensor(x)
    with torch.no_grad():  # the factors exactly as snnTorch computes them
        k = m.R * (1 / (m.R * m.C)) * m.time_step
        a = 1 - (m.time_step / (m.R * m.C))
        if ctx.fresh:
            a = torch.zeros(())
    x = ctx.scale(ctx.path + "_gain", x, k)
    out = _spiking(ctx, x, a=a, thr=m.threshold, mech=_mechanism(ctx, m), zero_refractory=1)
    train(ctx, out, _surrogate(m))
    return _result(m, ctx, _graded(ctx, m, out), "mem")


def _single(m: nn.Module) -> str:
    return "single"


from snntorch._neurons.neurons import SpikingNeuron  # noqa: E402

# snnTorch's neuron base: a neuron without a converter is refused by name, never traced into
OPAQUE = (SpikingNeuron,)

MODULES: dict[type, Entry] = {
    Leaky: Entry(leaky, _single),
    Synaptic: Entry(synaptic, _single),
    RLeaky: Entry(rleaky, _single),
    Lapicque: Entry(lapicque, _single),
    RSynaptic: Entry(synaptic, _single),
}
