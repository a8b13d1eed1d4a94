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
the per-step factors come from `n3ml.ir.prims.decay` / `gain` (``dt``, ``scheme``).
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

from ..ir import prims
from .surrogate import spike_fn

Tensor = torch.Tensor
Param = Any  # float | np.ndarray | torch.Tensor

_DEFAULT_SPIKE = spike_fn("fast_sigmoid")

__all__ = [
    "IFParams", "LIFParams", "CubaLIFParams", "ALIFParams", "LIParams", "IntegratorParams",
    "IFState", "LIFState", "CubaLIFState", "ALIFState", "LIState", "IntegratorState",
    "Coefficients", "coefficients", "initial_state",
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


# ----------------------------------------------------------- per-step factors


class Coefficients(NamedTuple):
    """Parameters resolved for one input's device, dtype and neuron shape."""

    params: NamedTuple
    a: Param = None  # membrane decay
    rg: Param = None  # r * g (LI/LIF/ALIF/CubaLIF) or r (Integrator)
    a_s: Param = None  # CubaLIF current decay
    a_b: Param = None  # ALIF adaptation decay
    v_leak: Param = 0.0
    theta: Param = 1.0
    v_reset: Param = 0.0
    q: Param = 0.0
    v_init: Param = 0.0


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


def _factor(kind: str, tau: Param, dt: float, scheme: str, x: Tensor, field: str) -> Param:
    """decay (kind='a') or gain (kind='g') of a time constant, following ir.prims.decay/gain."""
    if scheme not in prims.SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(prims.SCHEMES)}, found {scheme!r}")
    if isinstance(tau, torch.Tensor) and tau.requires_grad:
        t = _param(tau, x, field)
        if scheme == "exact":
            e = torch.exp(-dt / t)
            return e if kind == "a" else 1.0 - e
        return 1.0 - dt / t if kind == "a" else dt / t
    arr = tau.detach().cpu().double().numpy() if isinstance(tau, torch.Tensor) else np.asarray(tau, np.float64)
    if np.any(arr <= 0):
        raise ValueError(f"time constant `{field}` must be > 0 ms, found {arr.min()!r}")
    fn = prims.decay if kind == "a" else prims.gain
    return _param(fn(arr, dt, scheme), x, field)


def _mul(a: Param, b: Param) -> Param:
    return a * b


def coefficients(p: NamedTuple, x: Tensor) -> Coefficients:
    """Resolve `p` (one of the *Params tuples) for input `x` of shape (B, *neurons)."""
    if isinstance(p, Coefficients):
        return p
    get = lambda f: _param(getattr(p, f), x, f)  # noqa: E731
    c: dict[str, Param] = {"v_init": get("v_init")}
    if hasattr(p, "theta"):
        if p.reset not in prims.RESET_MODES:
            raise ValueError(f"reset must be one of {', '.join(prims.RESET_MODES)}, found {p.reset!r}")
        if not isinstance(p.refractory, (int, np.integer)) or isinstance(p.refractory, bool) or p.refractory < 0:
            raise ValueError(f"refractory must be an integer >= 0 (steps), found {p.refractory!r}")
        c.update(theta=get("theta"), v_reset=get("v_reset"))
    if isinstance(p, IntegratorParams):
        c["rg"] = get("r")
    if isinstance(p, (LIFParams, LIParams, ALIFParams)):
        c.update(a=_factor("a", p.tau, p.dt, p.scheme, x, "tau"), v_leak=get("v_leak"))
        c["rg"] = _mul(get("r"), _factor("g", p.tau, p.dt, p.scheme, x, "tau"))
    if isinstance(p, CubaLIFParams):
        c.update(a=_factor("a", p.tau_mem, p.dt, p.scheme, x, "tau_mem"), v_leak=get("v_leak"),
                 a_s=_factor("a", p.tau_syn, p.dt, p.scheme, x, "tau_syn"))
        c["rg"] = _mul(get("r"), _factor("g", p.tau_mem, p.dt, p.scheme, x, "tau_mem"))
    if isinstance(p, ALIFParams):
        c.update(a_b=_factor("a", p.tau_adapt, p.dt, p.scheme, x, "tau_adapt"), q=get("q"))
    return Coefficients(params=p, **c)


# -------------------------------------------------------------- initial state


def _full(value: Param, x: Tensor) -> Tensor:
    z = torch.zeros_like(x)
    return z + value if not (isinstance(value, float) and value == 0.0) else z


_STATES = {IFParams: IFState, LIFParams: LIFState, CubaLIFParams: CubaLIFState, ALIFParams: ALIFState,
           LIParams: LIState, IntegratorParams: IntegratorState}


def initial_state(p: NamedTuple, x: Tensor) -> NamedTuple:
    """The state before step 0 for input `x` (B, *neurons): v = v_init, the rest zero."""
    c = coefficients(p, x)
    kind = _STATES[type(c.params)]
    v = _full(c.v_init, x)
    z = torch.zeros_like(x)
    if kind is CubaLIFState:
        return CubaLIFState(i=z, v=v, c=z)
    if kind is ALIFState:
        return ALIFState(v=v, b=z, c=z)
    if kind in (LIState, IntegratorState):
        return kind(v=v)
    return kind(v=v, c=z)


# ------------------------------------------------------------ spiking stages


def _fire(cand: Tensor, v_prev: Tensor, cnt: Tensor, thr: Param, c: Coefficients) -> tuple[Tensor, Tensor, Tensor]:
    """Stages 3-5 of docs/semantics.md §5: refractoriness, strict threshold, reset, counter."""
    p = c.params
    if p.refractory > 0:
        refr = cnt > 0
        v = torch.where(refr, v_prev, cand)
        s = p.spike(v - thr) * (~refr).to(v.dtype)
    else:  # the counter stays 0: nothing is ever refractory
        v = cand
        s = p.spike(v - thr)
    sr = s.detach() if p.detach_reset else s
    # Arithmetic forms equal to the interpreter's np.where bit for bit (s is exactly 0 or 1).
    if p.reset == "subtract":
        v = v - sr * thr
    elif p.reset == "to-value":
        v = v * (1.0 - sr) + sr * c.v_reset
    if p.refractory > 0:
        fired = s.detach() > 0
        cnt = torch.where(fired, torch.full_like(cnt, float(p.refractory)),
                          torch.where(refr, cnt - 1, torch.zeros_like(cnt)))
    return s, v, cnt


def _leaky(v: Tensor, x: Tensor, c: Coefficients) -> Tensor:
    return c.v_leak + c.a * (v - c.v_leak) + c.rg * x


def if_step(x: Tensor, state: IFState | None, p: IFParams | Coefficients) -> tuple[Tensor, IFState]:
    """Integrate-and-fire: v* = v + I."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    s, v, cnt = _fire(st.v + x, st.v, st.c, c.theta, c)
    return s, IFState(v, cnt)


def lif_step(x: Tensor, state: LIFState | None, p: LIFParams | Coefficients) -> tuple[Tensor, LIFState]:
    """Leaky integrate-and-fire: v* = v_leak + a (v - v_leak) + r g I."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    s, v, cnt = _fire(_leaky(st.v, x, c), st.v, st.c, c.theta, c)
    return s, LIFState(v, cnt)


def cuba_lif_step(x: Tensor, state: CubaLIFState | None,
                  p: CubaLIFParams | Coefficients) -> tuple[Tensor, CubaLIFState]:
    """Current-based LIF: i = a_s i + I; v* = v_leak + a_m (v - v_leak) + r g_m i."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    i = c.a_s * st.i + x
    s, v, cnt = _fire(_leaky(st.v, i, c), st.v, st.c, c.theta, c)
    return s, CubaLIFState(i, v, cnt)


def alif_step(x: Tensor, state: ALIFState | None, p: ALIFParams | Coefficients) -> tuple[Tensor, ALIFState]:
    """Adaptive LIF: b' = a_b b; threshold theta + b'; b = b' + q s."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    b = c.a_b * st.b
    s, v, cnt = _fire(_leaky(st.v, x, c), st.v, st.c, c.theta + b, c)
    return s, ALIFState(v, b + c.q * s, cnt)


def li_step(x: Tensor, state: LIState | None, p: LIParams | Coefficients) -> tuple[Tensor, LIState]:
    """Leaky integrator (no spikes): v = v_leak + a (v - v_leak) + r g I; output v."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    v = _leaky(st.v, x, c)
    return v, LIState(v)


def integrator_step(x: Tensor, state: IntegratorState | None,
                    p: IntegratorParams | Coefficients) -> tuple[Tensor, IntegratorState]:
    """Perfect integrator (no spikes): v = v + r I; output v."""
    c = coefficients(p, x)
    st = initial_state(c, x) if state is None else state
    v = st.v + c.rg * x
    return v, IntegratorState(v)


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
