"""Pure neuron dynamics: ``step(x, state, params) -> (out, state)`` with NamedTuple states.

Each function performs one time step of docs/semantics.md §5, in the same stage
order and with the same floating-point operations as the reference interpreter
(`n3ml.ir.interp`), so float64 runs agree with it bit for bit:

1. synaptic state (CubaLIF current ``i``, ALIF adaptation ``b' = a_b b``);
2. candidate voltage ``v*``;
3. refractory neurons (counter ``c > 0``) keep ``v`` and cannot spike; ``c -= 1``;
4. strict threshold test ``s = [v > theta_eff]`` through the surrogate spike function;
5. reset (``subtract``, ``to-value``, ``none``), ``c = refractory`` where ``s``, ALIF ``b = b' + q s``.

Parameters are Python numbers, numpy arrays or tensors (scalars broadcast, or one
value per neuron in C order over the per-sample shape). Time constants are in ms;
the per-step factors come from `n3ml.ir.neurons.discretize` (``dt``, ``scheme``), and each step
is `n3ml.ir.neurons.step` run on torch tensors (namespace `TORCH`): the interpreter's own update.
A time constant given as a tensor that requires grad is turned into factors with
torch operations instead (so it can be learned); torch's ``exp`` may differ from
numpy's in the last bit, so exact agreement holds for fixed time constants.

Device and dtype follow the input ``x``. The first step may pass ``state=None``
(the initial state: ``v = v_init``, everything else zero).

Calling ``coefficients(params, x)`` once and passing its result instead of
``params`` skips recomputing the factors at every step (the modules do this).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from ..ir import neurons, prims
from .surrogate import spike_fn

Tensor = torch.Tensor
Param = Any  # float | np.ndarray | torch.Tensor

_DEFAULT_SPIKE = spike_fn("fast_sigmoid")

__all__ = [
    "IFParams", "LIFParams", "CubaLIFParams", "ALIFParams", "LIParams", "IntegratorParams",
    "IFState", "LIFState", "CubaLIFState", "ALIFState", "LIState", "IntegratorState", "SynapseFilterParams",
    "SynapseFilterState", "synapse_filter_step",
    "Coefficients", "coefficients", "initial_state", "numeric_fields", "TORCH",
    "if_step", "lif_step", "cuba_lif_step", "alif_step", "li_step", "integrator_step",
    "poisson_rate", "poisson_noise", "constant_current", "latency",
]


# ------------------------------------------------------------------ parameters


class IFParams(NamedTuple):
    theta: Param = 1.0
    v_reset: Param = 0.0
    reset: str = "subtract"
    refractory: int = 0
    v_init: Param = 0.0
    spike: Callable[[Tensor], Tensor] = _DEFAULT_SPIKE
    detach_reset: bool = True  # no gradient through the reset (as snnTorch's default)


class LIFParams(NamedTuple):
    tau: Param = 10.0  # ms
    v_leak: Param = 0.0
    r: Param = 1.0
    theta: Param = 1.0
    v_reset: Param = 0.0
    reset: str = "subtract"
    refractory: int = 0
    v_init: Param = 0.0
    dt: float = 1.0  # ms
    scheme: str = "exact"
    spike: Callable[[Tensor], Tensor] = _DEFAULT_SPIKE
    detach_reset: bool = True


class CubaLIFParams(NamedTuple):
    tau_syn: Param = 5.0  # ms
    tau_mem: Param = 10.0  # ms
    v_leak: Param = 0.0
    r: Param = 1.0
    theta: Param = 1.0
    v_reset: Param = 0.0
    reset: str = "subtract"
    refractory: int = 0
    v_init: Param = 0.0
    dt: float = 1.0
    scheme: str = "exact"
    spike: Callable[[Tensor], Tensor] = _DEFAULT_SPIKE
    detach_reset: bool = True


class ALIFParams(NamedTuple):
    tau: Param = 10.0  # ms
    tau_adapt: Param = 100.0  # ms
    q: Param = 0.1
    v_leak: Param = 0.0
    r: Param = 1.0
    theta: Param = 1.0
    v_reset: Param = 0.0
    reset: str = "subtract"
    refractory: int = 0
    v_init: Param = 0.0
    dt: float = 1.0
    scheme: str = "exact"
    spike: Callable[[Tensor], Tensor] = _DEFAULT_SPIKE
    detach_reset: bool = True


class LIParams(NamedTuple):
    tau: Param = 10.0  # ms
    v_leak: Param = 0.0
    r: Param = 1.0
    v_init: Param = 0.0
    dt: float = 1.0
    scheme: str = "exact"


class IntegratorParams(NamedTuple):
    r: Param = 1.0
    v_init: Param = 0.0


class SynapseFilterParams(NamedTuple):
    leak: Param = 0.5  # fraction of the current lost in a step without an input spike (SpikingJelly's 1/tau)
    v_init: Param = 0.0


_RULES = ("reset", "refractory", "dt", "scheme", "spike", "detach_reset")  # the fields that are not numbers


def numeric_fields(params_class: type) -> tuple[str, ...]:
    """The numeric parameters of a *Params tuple in order (the IR primitive's numbers; the operator schema)."""
    return tuple(f for f in params_class._fields if f not in _RULES)


# ---------------------------------------------------------------------- states


class IFState(NamedTuple):
    v: Tensor
    c: Tensor  # refractory counter (steps left), in v's dtype


class LIFState(NamedTuple):
    v: Tensor
    c: Tensor


class CubaLIFState(NamedTuple):
    i: Tensor
    v: Tensor
    c: Tensor


class ALIFState(NamedTuple):
    v: Tensor
    b: Tensor  # threshold adaptation
    c: Tensor


class LIState(NamedTuple):
    v: Tensor


class IntegratorState(NamedTuple):
    v: Tensor


class SynapseFilterState(NamedTuple):
    v: Tensor


# ----------------------------------------------------------- per-step factors

# The array namespace of n3ml.ir.neurons.step for torch tensors.
TORCH = neurons.Namespace(where=torch.where, sign=torch.sign, clip=torch.clamp, to_int=lambda x: x.to(torch.int64),
                          cast=lambda m, like: m.to(like.dtype), detach=lambda x: x.detach(),
                          heaviside=lambda h: (h > 0).to(h.dtype))

# Parameters resolved for one input's device, dtype and neuron shape: n3ml.ir.neurons.Discrete
# (decays a / a_s / a_b, input gain rg = r g, v_leak, theta, ...) plus the spike function.
Coefficients = neurons.Discrete

_KINDS = {IFParams: "IF", LIFParams: "LIF", CubaLIFParams: "CubaLIF", ALIFParams: "ALIF", LIParams: "LI",
          IntegratorParams: "Integrator", SynapseFilterParams: "SynapseFilter"}


def _neuron_shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[1:])


def _param(value: Param, x: Tensor, field: str) -> Param:
    """A parameter as a Python float or a tensor on x's device/dtype shaped like one sample."""
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(f"parameter `{field}` must be a number or an array, found {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float64))
    if t.ndim == 0 and not t.requires_grad:
        return float(t)
    t = t.to(device=x.device, dtype=x.dtype)
    shape = _neuron_shape(x)
    if t.ndim and t.shape != shape:
        n = int(np.prod(shape)) if shape else 1
        if t.numel() == n:
            t = t.reshape(shape)
        elif t.numel() != 1:
            raise ValueError(f"parameter `{field}` has {t.numel()} values but the layer has {n} neurons "
                             f"(input shape {tuple(x.shape)}, expected (B, *neurons))")
    return t


def _factor(field: str, tau: Param, formula: Callable, x: Tensor) -> Param:
    """decay or gain of a time constant (n3ml.ir.neurons): in float64 numpy for a fixed tau, exactly as
    every engine; with torch operations for a tau that requires grad (so it can be learned)."""
    if isinstance(tau, torch.Tensor) and tau.requires_grad:
        return formula(_param(tau, x, field), torch)
    arr = tau.detach().cpu().double().numpy() if isinstance(tau, torch.Tensor) else np.asarray(tau, np.float64)
    if np.any(arr <= 0):
        raise ValueError(f"time constant `{field}` must be > 0 ms, found {arr.min()!r}")
    return _param(formula(arr), x, field)


def coefficients(p: NamedTuple, x: Tensor) -> Coefficients:
    """Resolve `p` (one of the *Params tuples) for input `x` of shape (B, *neurons)."""
    if isinstance(p, Coefficients):
        return p
    kind = _KINDS[type(p)]
    dt, scheme = getattr(p, "dt", 1.0), getattr(p, "scheme", "exact")
    if scheme not in prims.SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(prims.SCHEMES)}, found {scheme!r}")
    if hasattr(p, "theta"):
        if p.reset not in prims.RESET_MODES:
            raise ValueError(f"reset must be one of {', '.join(prims.RESET_MODES)}, found {p.reset!r}")
        if not isinstance(p.refractory, (int, np.integer)) or isinstance(p.refractory, bool) or p.refractory < 0:
            raise ValueError(f"refractory must be an integer >= 0 (steps), found {p.refractory!r}")
    k = neurons.discretize(p, dt, scheme, kind=kind, param=lambda f, v: _param(v, x, f),
                           factor=lambda f, tau, formula: _factor(f, tau, formula, x))
    return k._replace(spike=p.spike) if hasattr(p, "spike") else k


# -------------------------------------------------------------- initial state


def _full(value: Param, x: Tensor) -> Tensor:
    z = torch.zeros_like(x)
    return z + value if not (isinstance(value, float) and value == 0.0) else z


_STATES = {"IF": IFState, "LIF": LIFState, "CubaLIF": CubaLIFState, "ALIF": ALIFState, "LI": LIState,
           "Integrator": IntegratorState, "SynapseFilter": SynapseFilterState}


def initial_state(p: NamedTuple, x: Tensor) -> NamedTuple:
    """The state before step 0 for input `x` (B, *neurons): v = v_init, the rest zero."""
    c = coefficients(p, x)
    kind = _STATES[c.kind]
    v = _full(c.v_init, x)
    z = torch.zeros_like(x)
    return kind(v=v, **{f: z for f in kind._fields if f != "v"})


# ------------------------------------------------------------ the step functions
# Each is n3ml.ir.neurons.step on torch tensors: the one definition the interpreter also runs.


def _step(p, x: Tensor, state):
    c = coefficients(p, x)
    return neurons.step(TORCH, c, initial_state(c, x) if state is None else state, x)


def if_step(x: Tensor, state: IFState | None, p: IFParams | Coefficients) -> tuple[Tensor, IFState]:
    """Integrate-and-fire: v* = v + I."""
    return _step(p, x, state)


def lif_step(x: Tensor, state: LIFState | None, p: LIFParams | Coefficients) -> tuple[Tensor, LIFState]:
    """Leaky integrate-and-fire: v* = v_leak + a (v - v_leak) + r g I."""
    return _step(p, x, state)


def cuba_lif_step(x: Tensor, state: CubaLIFState | None,
                  p: CubaLIFParams | Coefficients) -> tuple[Tensor, CubaLIFState]:
    """Current-based LIF: i = a_s i + I; v* = v_leak + a_m (v - v_leak) + r g_m i."""
    return _step(p, x, state)


def alif_step(x: Tensor, state: ALIFState | None, p: ALIFParams | Coefficients) -> tuple[Tensor, ALIFState]:
    """Adaptive LIF: b' = a_b b; threshold theta + b'; b = b' + q s."""
    return _step(p, x, state)


def li_step(x: Tensor, state: LIState | None, p: LIParams | Coefficients) -> tuple[Tensor, LIState]:
    """Leaky integrator (no spikes): v = v_leak + a (v - v_leak) + r g I; output v."""
    return _step(p, x, state)


def integrator_step(x: Tensor, state: IntegratorState | None,
                    p: IntegratorParams | Coefficients) -> tuple[Tensor, IntegratorState]:
    """Perfect integrator (no spikes): v = v + r I; output v."""
    return _step(p, x, state)


def synapse_filter_step(x: Tensor, state: SynapseFilterState | None,
                        p: SynapseFilterParams | Coefficients) -> tuple[Tensor, SynapseFilterState]:
    """Spike-gated current (SpikingJelly's SynapseFilter; x: 0/1 spikes): v = v - (1 - x) v leak + x; output v."""
    return _step(p, x, state)


# -------------------------------------------------------------------- encoders


def poisson_noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The uniform draws of a PoissonRate encoder: default_rng(seed).random(shape), float64."""
    return np.random.default_rng(seed).random(shape)


def poisson_rate(x: Tensor, gain: float, seed: int, noise: np.ndarray | Tensor | None = None) -> Tensor:
    """Rate code of a whole sequence x (T, B, ...): s_t = [u_t < clip(gain x_t, 0, 1)].

    `u` is drawn once as numpy ``default_rng(seed).random((T, B, ...))`` (part of the
    semantics, so every engine produces the same spikes); pass `noise` to reuse draws.
    No gradient flows through the comparison.
    """
    u = poisson_noise(seed, tuple(x.shape)) if noise is None else noise
    u = torch.as_tensor(u, device=x.device)
    prob = torch.clamp(gain * x.detach().to(torch.float64), 0.0, 1.0)
    return (u < prob).to(x.dtype)


def constant_current(x: Tensor, scale: Param, offset: Param) -> Tensor:
    """Analog current y_t = scale x_t + offset."""
    return scale * x + offset


def latency(x: Tensor, window: int, x_min: float) -> Tensor:
    """Time-to-first-spike code of a sequence x (T, B, ...) starting at a window boundary.

    In each window of `window` steps the encoder takes x = clip(x, 0, 1) at the window's
    first step and emits one spike at floor((1 - x)(window - 1) + 1/2) into the window,
    if x > x_min. No gradient flows through the code.
    """
    T = x.shape[0]
    out = torch.zeros_like(x)
    xd = x.detach().to(torch.float64)
    for start in range(0, T, window):
        xc = torch.clamp(xd[start], 0.0, 1.0)
        ts = torch.floor((1.0 - xc) * (window - 1) + 0.5)
        for k in range(min(window, T - start)):
            out[start + k] = ((ts == k) & (xc > x_min)).to(x.dtype)
    return out
