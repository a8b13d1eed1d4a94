"""Thin `torch.nn.Module` wrappers around `n3ml.nn.functional`, one per IR neuron and encoder.

Layout: ``forward(x)`` takes a whole sequence ``(T, B, ...)`` and returns ``(T, B, ...)``,
starting from the initial state every call (one call = one presentation). ``step(x_t)``
advances the module's own state by one step (``(B, ...)`` in and out); ``reset_state()``
clears it. Constructor arguments carry the IR field names (``tau``, ``theta``, ...) plus
``dt`` (ms), ``scheme``, ``surrogate`` and ``slope``; ``to_ir()`` returns the equivalent
IR primitive. Names listed in ``learnable`` become `nn.Parameter`s; other array-valued
parameters are buffers (saved in the state_dict); scalars are plain floats.

Ordinary layers sit between them: `nn.Linear` already acts on the last axis of
``(T, B, F)``; wrap any other layer in `TimeDistributed`, which folds time into the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Iterable, NamedTuple

import numpy as np
import torch
from torch import nn

from ..ir import prims
from . import functional as F
from . import ops
from .surrogate import spike_fn

__all__ = ["IF", "LIF", "CubaLIF", "ALIF", "LI", "Integrator", "SynapseFilter", "PoissonRate", "ConstantCurrent",
           "Latency", "Recurrent", "TimeDistributed", "repeat_time", "NeuronModule", "EncoderModule"]


def _check_seq(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: expected a sequence of shape (T, B, ...), found {shape}")


def _to_ir_value(v: Any) -> Any:
    """A parameter as the IR stores it: float for scalars, float64 numpy array otherwise."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    if isinstance(v, np.ndarray):
        return float(v) if v.ndim == 0 else v.astype(np.float64)
    return float(v)


class NeuronModule(nn.Module):
    """Common machinery of the neuron modules (see the module docstring)."""

    ir_class: ClassVar[type[prims.Neuron]]
    params_class: ClassVar[type[NamedTuple]]
    step_fn: ClassVar[Callable]
    numeric: ClassVar[tuple[str, ...]]  # numeric IR fields, in constructor order
    op_name: ClassVar[str]  # its operator torch.ops.n3ml.<op_name> (n3ml.nn.ops.NEURON_OPS)
    timed: ClassVar[bool] = True  # has dt/scheme (time constants)
    spiking: ClassVar[bool] = True

    def _setup(self, values: dict[str, Any], *, reset: str = "subtract", refractory: int = 0, dt: float = 1.0,
               scheme: str = "exact", surrogate: str = "fast_sigmoid", slope: float | None = None,
               learnable: Iterable[str] = (), detach_reset: bool = True) -> None:
        learnable = tuple(learnable)
        unknown = [n for n in learnable if n not in self.numeric]
        if unknown:
            raise ValueError(f"{type(self).__name__}: cannot learn {unknown}; learnable parameters are "
                             f"{', '.join(self.numeric)}")
        if scheme not in prims.SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(prims.SCHEMES)}, found {scheme!r}")
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"dt must be a positive number of ms, found {dt!r}")
        self.dt, self.scheme = float(dt), scheme
        if self.spiking:
            if reset not in prims.RESET_MODES:
                raise ValueError(f"reset must be one of {', '.join(prims.RESET_MODES)}, found {reset!r}")
            if not isinstance(refractory, int) or isinstance(refractory, bool) or refractory < 0:
                raise ValueError(f"refractory must be an integer >= 0 (steps), found {refractory!r}")
            self.reset, self.refractory = reset, refractory
            self.spike = spike_fn(surrogate, slope)
            self.detach_reset = detach_reset
        self._scalars: dict[str, float] = {}
        for name in self.numeric:
            v = values[name]
            if isinstance(v, (bool, str)) or v is None:
                raise TypeError(f"{type(self).__name__}: `{name}` must be a number or an array, found {v!r}")
            if name in learnable:
                t = torch.as_tensor(v, dtype=torch.get_default_dtype()).clone()
                self.register_parameter(name, nn.Parameter(t))
            elif isinstance(v, (torch.Tensor, np.ndarray)) and np.ndim(v) > 0:
                t = torch.as_tensor(v).clone()
                if not t.is_floating_point():
                    t = t.to(torch.float64)
                self.register_buffer(name, t)
            else:
                self._scalars[name] = float(v)
        self.state: NamedTuple | None = None

    def __getattr__(self, name: str) -> Any:
        scalars = self.__dict__.get("_scalars")
        if scalars is not None and name in scalars:
            return scalars[name]
        return super().__getattr__(name)

    def params(self) -> NamedTuple:
        """The functional parameter tuple (see `n3ml.nn.functional`)."""
        kw = {n: getattr(self, n) for n in self.numeric}
        if self.timed:
            kw.update(dt=self.dt, scheme=self.scheme)
        if self.spiking:
            kw.update(reset=self.reset, refractory=self.refractory, spike=self.spike,
                      detach_reset=self.detach_reset)
        return self.params_class(**kw)

    # ----------------------------------------------------------------- running
    def reset_state(self) -> None:
        """Forget the state kept by `step` (the next step starts from v = v_init)."""
        self.state = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Advance the module's own state by one step: x (B, ...) -> output (B, ...)."""
        out, self.state = type(self).step_fn(x, self.state, self.params())
        return out

    def forward(self, x: torch.Tensor, state: NamedTuple | None = None) -> torch.Tensor:
        """Run a whole sequence from `state` (default: the initial state): (T, B, ...) -> (T, B, ...).

        Under `torch.export` this is one ``torch.ops.n3ml.<op_name>`` node (see `n3ml.nn.ops`).
        """
        if state is None and torch.compiler.is_exporting():
            _check_seq(x, type(self).__name__)
            return ops.neuron_op(self.op_name, x, self.op_values())
        return self.run(x, state)[0]

    def op_values(self) -> dict[str, Any]:
        """The arguments of this module's operator ``torch.ops.n3ml.<op_name>`` after x, by name."""
        kw: dict[str, Any] = {n: getattr(self, n) for n in self.numeric}
        if self.spiking:
            kw.update(reset=self.reset, refractory=self.refractory, surrogate=self.spike.name,
                      slope=self.spike.slope, detach_reset=self.detach_reset)
        if self.timed:
            kw.update(dt=self.dt, scheme=self.scheme)
        return kw

    def run(self, x: torch.Tensor, state: NamedTuple | None = None, *,
            record: bool = False) -> tuple[torch.Tensor, NamedTuple, NamedTuple | None]:
        """Run a sequence; return (outputs, final state, recorded states (T, B, ...) or None)."""
        _check_seq(x, type(self).__name__)
        c = F.coefficients(self.params(), x[0])
        fn = type(self).step_fn
        outs, trace = [], []
        for t in range(x.shape[0]):
            o, state = fn(x[t], state, c)
            outs.append(o)
            if record:
                trace.append(state)
        rec = type(state)(*(torch.stack(z) for z in zip(*trace))) if record else None
        return torch.stack(outs), state, rec

    # ---------------------------------------------------------------------- IR
    def to_ir(self) -> prims.Neuron:
        """The equivalent IR primitive (float64 numpy parameters, the reset's gradient rule, surrogate and
        slope; dt and scheme belong to the graph)."""
        kw = {n: _to_ir_value(getattr(self, n)) for n in self.numeric}
        if self.spiking:  # the training rules travel with the model (the primitive drops a default slope)
            kw.update(reset=self.reset, refractory=self.refractory, detach_reset=bool(self.detach_reset),
                      surrogate=self.spike.name, slope=self.spike.slope)
        return self.ir_class(**kw)

    def extra_repr(self) -> str:
        parts = []
        for n in self.numeric:
            v = getattr(self, n)
            parts.append(f"{n}={v:g}" if isinstance(v, float) else f"{n}=<{tuple(v.shape)}>")
        if self.spiking:
            parts += [f"reset={self.reset!r}", f"refractory={self.refractory}", f"surrogate={self.spike}"]
        if self.timed:
            parts += [f"dt={self.dt:g}", f"scheme={self.scheme!r}"]
        return ", ".join(parts)


class IF(NeuronModule):
    """Integrate-and-fire: v* = v + I; spike when v > theta (strict)."""

    ir_class, params_class, step_fn = prims.IF, F.IFParams, staticmethod(F.if_step)
    op_name = "if_"
    numeric = F.numeric_fields(F.IFParams)  # theta, v_reset, v_init
    timed = False

    def __init__(self, *, theta=1.0, v_reset=0.0, reset="subtract", refractory=0, v_init=0.0,
                 surrogate="fast_sigmoid", slope=None, learnable=(), detach_reset=True):
        super().__init__()
        self._setup(dict(theta=theta, v_reset=v_reset, v_init=v_init), reset=reset, refractory=refractory,
                    surrogate=surrogate, slope=slope, learnable=learnable, detach_reset=detach_reset)


class LIF(NeuronModule):
    """Leaky integrate-and-fire: v* = v_leak + a (v - v_leak) + r g I with a, g from tau (ms)."""

    ir_class, params_class, step_fn = prims.LIF, F.LIFParams, staticmethod(F.lif_step)
    op_name = "lif"
    numeric = F.numeric_fields(F.LIFParams)  # tau, v_leak, r, theta, v_reset, v_init

    def __init__(self, *, tau=10.0, v_leak=0.0, r=1.0, theta=1.0, v_reset=0.0, reset="subtract", refractory=0,
                 v_init=0.0, dt=1.0, scheme="exact", surrogate="fast_sigmoid", slope=None, learnable=(),
                 detach_reset=True):
        super().__init__()
        self._setup(dict(tau=tau, v_leak=v_leak, r=r, theta=theta, v_reset=v_reset, v_init=v_init), reset=reset,
                    refractory=refractory, dt=dt, scheme=scheme, surrogate=surrogate, slope=slope,
                    learnable=learnable, detach_reset=detach_reset)


class CubaLIF(NeuronModule):
    """Current-based LIF: i = a_s i + I; v* = v_leak + a_m (v - v_leak) + r g_m i."""

    ir_class, params_class, step_fn = prims.CubaLIF, F.CubaLIFParams, staticmethod(F.cuba_lif_step)
    op_name = "cuba_lif"
    numeric = F.numeric_fields(F.CubaLIFParams)  # tau_syn, tau_mem, v_leak, r, theta, v_reset, v_init

    def __init__(self, *, tau_syn=5.0, tau_mem=10.0, v_leak=0.0, r=1.0, theta=1.0, v_reset=0.0, reset="subtract",
                 refractory=0, v_init=0.0, dt=1.0, scheme="exact", surrogate="fast_sigmoid", slope=None,
                 learnable=(), detach_reset=True):
        super().__init__()
        self._setup(dict(tau_syn=tau_syn, tau_mem=tau_mem, v_leak=v_leak, r=r, theta=theta, v_reset=v_reset,
                         v_init=v_init), reset=reset, refractory=refractory, dt=dt, scheme=scheme,
                    surrogate=surrogate, slope=slope, learnable=learnable, detach_reset=detach_reset)


class ALIF(NeuronModule):
    """Adaptive LIF: threshold theta + b, b decays with tau_adapt and jumps by q at each spike."""

    ir_class, params_class, step_fn = prims.ALIF, F.ALIFParams, staticmethod(F.alif_step)
    op_name = "alif"
    numeric = F.numeric_fields(F.ALIFParams)  # tau, tau_adapt, q, v_leak, r, theta, v_reset, v_init

    def __init__(self, *, tau=10.0, tau_adapt=100.0, q=0.1, v_leak=0.0, r=1.0, theta=1.0, v_reset=0.0,
                 reset="subtract", refractory=0, v_init=0.0, dt=1.0, scheme="exact", surrogate="fast_sigmoid",
                 slope=None, learnable=(), detach_reset=True):
        super().__init__()
        self._setup(dict(tau=tau, tau_adapt=tau_adapt, q=q, v_leak=v_leak, r=r, theta=theta, v_reset=v_reset,
                         v_init=v_init), reset=reset, refractory=refractory, dt=dt, scheme=scheme,
                    surrogate=surrogate, slope=slope, learnable=learnable, detach_reset=detach_reset)


class LI(NeuronModule):
    """Leaky integrator readout (outputs its voltage): v = v_leak + a (v - v_leak) + r g I."""

    ir_class, params_class, step_fn = prims.LI, F.LIParams, staticmethod(F.li_step)
    op_name = "li"
    numeric = F.numeric_fields(F.LIParams)  # tau, v_leak, r, v_init
    spiking = False

    def __init__(self, *, tau=10.0, v_leak=0.0, r=1.0, v_init=0.0, dt=1.0, scheme="exact", learnable=()):
        super().__init__()
        self._setup(dict(tau=tau, v_leak=v_leak, r=r, v_init=v_init), dt=dt, scheme=scheme, learnable=learnable)


class Integrator(NeuronModule):
    """Perfect integrator readout (outputs its voltage): v = v + r I."""

    ir_class, params_class, step_fn = prims.Integrator, F.IntegratorParams, staticmethod(F.integrator_step)
    op_name = "integrator"
    numeric = F.numeric_fields(F.IntegratorParams)  # r, v_init
    spiking = False
    timed = False

    def __init__(self, *, r=1.0, v_init=0.0, learnable=()):
        super().__init__()
        self._setup(dict(r=r, v_init=v_init), learnable=learnable)


class SynapseFilter(NeuronModule):
    """Spike-gated current (SpikingJelly's `layer.SynapseFilter`; outputs its current): on 0/1 spikes x,
    v = v - (1 - x) v leak + x, i.e. +1 in a step with a spike and a decay by `leak` in a step without.

    `leak` is a fraction per step (SpikingJelly's 1/tau), learnable like any parameter (`learnable=("leak",)`).
    The input must be spikes for the IR (docs/semantics.md §5b); the forward pass itself computes the formula
    for any input, as SpikingJelly does.
    """

    ir_class, params_class, step_fn = prims.SynapseFilter, F.SynapseFilterParams, staticmethod(F.synapse_filter_step)
    op_name = "synapse_filter"
    numeric = F.numeric_fields(F.SynapseFilterParams)  # leak, v_init
    spiking = False
    timed = False

    def __init__(self, *, leak=0.5, v_init=0.0, learnable=()):
        super().__init__()
        self._setup(dict(leak=leak, v_init=v_init), learnable=learnable)


# -------------------------------------------------------------------- encoders


class EncoderModule(nn.Module):
    """Common machinery of the encoders: forward over (T, B, ...), step, reset_state, to_ir."""

    ir_class: ClassVar[type[prims.Primitive]]

    def __init__(self) -> None:
        super().__init__()
        self.state: Any = None

    def reset_state(self) -> None:
        """Restart `step` at global step 0."""
        self.state = None

    def to_ir(self) -> prims.Primitive:
        """The equivalent IR primitive."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self.ir_class)}
        return self.ir_class(**kw)

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self.ir_class))


class PoissonRate(EncoderModule):
    """Rate code s_t = [u_t < clip(gain x_t, 0, 1)] with the IR's random stream.

    `forward` draws ``u = numpy.random.default_rng(seed).random((T, B, ...))`` once per call,
    so it gives the same spikes as the reference interpreter for the same input; `step`
    draws the same stream one step at a time.
    """

    ir_class = prims.PoissonRate

    def __init__(self, *, gain: float = 1.0, seed: int = 0):
        super().__init__()
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, found {seed!r}")
        if not (isinstance(gain, (int, float)) and gain >= 0):
            raise ValueError(f"gain must be a number >= 0, found {gain!r}")
        self.gain, self.seed = float(gain), seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_seq(x, "PoissonRate")
        if torch.compiler.is_exporting():
            return torch.ops.n3ml.poisson_rate(x, self.gain, self.seed)
        return F.poisson_rate(x, self.gain, self.seed)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.state is None:
            self.state = np.random.default_rng(self.seed)
        # consecutive draws of one generator continue the stream of one (T, B, ...) draw
        return F.poisson_rate(x[None], self.gain, self.seed, noise=self.state.random((1, *x.shape)))[0]


class ConstantCurrent(EncoderModule):
    """Analog current y_t = scale x_t + offset (a current source on targets)."""

    ir_class = prims.ConstantCurrent

    def __init__(self, *, scale: float = 1.0, offset: float = 0.0):
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_seq(x, "ConstantCurrent")
        if torch.compiler.is_exporting():
            return torch.ops.n3ml.constant_current(x, self.scale, self.offset)
        return F.constant_current(x, self.scale, self.offset)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return F.constant_current(x, self.scale, self.offset)


class Latency(EncoderModule):
    """Time-to-first-spike: one spike per window at floor((1 - x)(window - 1) + 1/2), if x > x_min."""

    ir_class = prims.Latency

    def __init__(self, *, window: int = 10, x_min: float = 0.0):
        super().__init__()
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be an integer >= 1 (steps), found {window!r}")
        self.window, self.x_min = window, float(x_min)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_seq(x, "Latency")
        if torch.compiler.is_exporting():
            return torch.ops.n3ml.latency(x, self.window, self.x_min)
        return F.latency(x, self.window, self.x_min)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        t, held = self.state if self.state is not None else (0, None)
        if t % self.window == 0:
            held = x.detach()
        xc = torch.clamp(held.to(torch.float64), 0.0, 1.0)
        ts = torch.floor((1.0 - xc) * (self.window - 1) + 0.5)
        out = ((ts == t % self.window) & (xc > self.x_min)).to(x.dtype)
        self.state = (t + 1, held)
        return out


# ------------------------------------------------------------------- recurrence


class Recurrent(nn.Module):
    """A neuron layer fed back through a synaptic layer with a delay.

    ``u_t = x_t + recurrent(s_{t-delay})``, ``s_t = neuron(u_t)``, where ``s_{t-delay} = 0``
    for ``t < delay`` (so the recurrent layer's bias enters from step 0). In the IR this is
    ``Add(x, Dense(Delay(s, delay)))`` feeding the neuron: the cycle closes through the Delay.

    Args:
        neuron: an n3ml.nn neuron module (its outputs are fed back: spikes, or an LI/Integrator voltage).
        recurrent: the feedback layer, ``nn.Linear(n, n)`` over the neuron's n outputs.
        delay: steps >= 1 between an output and its feedback.
    """

    def __init__(self, neuron: NeuronModule, recurrent: nn.Linear, *, delay: int = 1):
        super().__init__()
        if not isinstance(neuron, NeuronModule):
            raise TypeError(f"Recurrent: `neuron` must be an n3ml.nn neuron module, found {type(neuron).__name__}")
        if not isinstance(recurrent, nn.Linear) or recurrent.in_features != recurrent.out_features:
            raise TypeError(f"Recurrent: `recurrent` must be a square nn.Linear(n, n), found {recurrent!r}")
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 1:
            raise ValueError(f"Recurrent: delay must be an integer >= 1 (steps), found {delay!r}")
        self.neuron, self.recurrent, self.delay = neuron, recurrent, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, n) -> (T, B, n), from the initial state."""
        _check_seq(x, "Recurrent")
        if x.shape[-1] != self.recurrent.out_features or x.ndim != 3:
            raise ValueError(f"Recurrent: expected input (T, B, {self.recurrent.out_features}), found "
                             f"{tuple(x.shape)}")
        w, b = self.recurrent.weight, self.recurrent.bias
        if torch.compiler.is_exporting():
            return ops.recurrent_op(self.neuron.op_name, x, w, b, self.delay, self.neuron.op_values())
        values = self.neuron.op_values()
        op = ops.NEURON_OPS[self.neuron.op_name]
        return ops.run_recurrent(op, x, w, b, self.delay, tuple(values[n] for n in op.args))

    def extra_repr(self) -> str:
        return f"delay={self.delay}"


# --------------------------------------------------------------------- helpers


class TimeDistributed(nn.Module):
    """Apply a per-sample layer to every step: (T, B, ...) -> fold to (T*B, ...) -> (T, B, ...).

    Use it for layers that need a fixed number of leading axes (Conv2d, pooling, BatchNorm);
    `nn.Linear` and element-wise layers work on (T, B, ...) directly.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_seq(x, f"TimeDistributed({type(self.module).__name__})")
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


def repeat_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """A static input (B, ...) presented for `steps` steps: (T, B, ...), a view without copying."""
    return x.unsqueeze(0).expand(steps, *x.shape)
