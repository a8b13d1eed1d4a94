"""One definition of every neuron: its discretisation and its step (docs/semantics.md §3, §5, §6).

Every engine and target reads the neuron dynamics from here, so they cannot drift apart:

* `decay` / `gain` turn a time constant into per-step factors (the two formulas of §3);
* `discretize(prim, dt, scheme)` gives one neuron's per-step coefficients (`Discrete`): decays,
  the input gain ``r g``, the leak, the fixed-point factors and the training rules;
* `step(xp, k, state, x)` performs one time step of §5 / §6 on any array library described by a
  small `Namespace` (`NUMPY` here; n3ml.nn.functional defines the torch one).

Users: the reference interpreter (`n3ml.ir.interp`), the torch executor's step path
(`n3ml.backends.torch.ops`), `n3ml.nn.functional` (and through it the n3ml.nn modules), the
quantize pass, the Lava lowering and the NEST/PyNN cell arithmetic (`n3ml.backends.netlist`).
The fused torch scans (`n3ml.backends.torch.scan`) are the one other form of the update; tests
hold them to `step` bit for bit in float64.

This module imports numpy only (no other part of n3ml): `prims` re-exports `decay` and `gain`.
Neuron kinds are keyed by the primitive's class name (``"LIF"``), which also lets the
n3ml.nn parameter tuples (same field names) use the same table.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["decay", "gain", "tau_of_decay", "SURROGATE_SLOPES", "DEFAULT_SURROGATE", "Namespace", "NUMPY", "Discrete",
           "State", "discretize", "step", "STEPS", "trunc_shift", "overflow", "check_training", "fixed_adapts"]

# ----------------------------------------------------------- §3: per-step factors


def _time(tau: Any, xp: Any) -> Any:
    return np.asarray(tau, dtype=np.float64) if xp is np else tau


def decay(tau: Any, dt: float, scheme: str, xp: Any = np) -> Any:
    """Per-step decay `a` of a time constant tau (ms) over dt (ms): exp(-dt/tau) or 1 - dt/tau.

    Args:
        xp: the array module doing the arithmetic (numpy, or torch for a learnable tensor tau).
    """
    h = dt / _time(tau, xp)
    return xp.exp(-h) if scheme == "exact" else 1.0 - h


def gain(tau: Any, dt: float, scheme: str, xp: Any = np) -> Any:
    """Input gain `g` of v_t = v_leak + a (v_{t-1} - v_leak) + r g I_t: 1 - exp(-dt/tau) or dt/tau."""
    h = dt / _time(tau, xp)
    return 1.0 - xp.exp(-h) if scheme == "exact" else h


def tau_of_decay(a: Any, dt: float, scheme: str) -> Any:
    """The time constant (ms) whose per-step decay over dt is `a` (the inverse of `decay`):
    -dt / ln a (exact) or dt / (1 - a) (euler). a = 1 (no leak) has no finite inverse."""
    a = np.asarray(a, dtype=np.float64)
    return -dt / np.log(a) if scheme == "exact" else dt / (1.0 - a)


# ------------------------------------------------------ training semantics (§5a)

# surrogate name -> default slope k. The backward formulas live in n3ml.nn.surrogate (torch).
SURROGATE_SLOPES: dict[str, float] = {
    "fast_sigmoid": 25.0,
    "arctan": 2.0,
    "triangle": 1.0,
    "rectangle": 1.0,
    "straight_through": 1.0,
    "sigmoid": 4.0,  # SpikingJelly's default surrogate (snnTorch's sigmoid defaults to 25)
    "erf": 2.0,
    "soft_sign": 2.0,
    "piecewise_exp": 1.0,
}
DEFAULT_SURROGATE = "fast_sigmoid"


def check_training(surrogate: Any, slope: Any, detach_reset: Any) -> str | None:
    """What is wrong with a neuron's training rules, or None (used by the verifier and n3ml.nn)."""
    if surrogate not in SURROGATE_SLOPES:
        return f"`surrogate` must be one of {', '.join(SURROGATE_SLOPES)}; found {surrogate!r}"
    if slope is not None and (isinstance(slope, bool) or not isinstance(slope, (int, float, np.integer, np.floating))
                              or not math.isfinite(slope) or slope <= 0):
        return f"`slope` must be a positive finite number; found {slope!r}"
    if not isinstance(detach_reset, (bool, np.bool_)):
        return f"`detach_reset` must be true or false; found {detach_reset!r}"
    return None


# ------------------------------------------------------------ array namespaces


class Namespace(NamedTuple):
    """The few array operations `step` needs beyond arithmetic operators."""

    where: Callable  # where(cond, a, b), scalars allowed
    sign: Callable
    clip: Callable  # clip(x, lo, hi)
    to_int: Callable  # cast to int64
    cast: Callable  # cast(mask, like): a boolean mask as numbers of like's dtype
    detach: Callable  # cut the gradient (identity without autograd)
    heaviside: Callable  # the strict step [h > 0] in h's dtype


NUMPY = Namespace(where=np.where, sign=np.sign, clip=np.clip, to_int=lambda x: np.asarray(x).astype(np.int64),
                  cast=lambda m, like: m.astype(like.dtype), detach=lambda x: x,
                  heaviside=lambda h: (h > 0).astype(h.dtype))


# ------------------------------------------------------------- discretisation


class Discrete(NamedTuple):
    """One neuron's per-step coefficients and rules (arrays as the engine holds them).

    Float neurons: v* = v_leak + a (v - v_leak) + rg I (IF: v + I; Integrator: v + rg I);
    CubaLIF first i = a_s i + I and uses i as I; ALIF b' = a_b b, threshold theta + b', b = b' + q s.
    FixedCubaLIF: u = ovf(trunc(u keep_u / 2^shift) + I << input_shift), v* = ovf(trunc(v keep_v /
    2^shift) + u + bias); with adaptation (q given) b' = trunc(b keep_b / 2^shift), threshold theta + b',
    b = sat(b' + q s). None marks a term the neuron does not have.
    """

    kind: str  # primitive class name: the key of STEPS
    spiking: bool = True
    theta: Any = None
    v_reset: Any = 0.0
    v_init: Any = 0.0
    a: Any = None  # membrane decay
    rg: Any = None  # input gain r g (Integrator: r)
    v_leak: Any = None
    a_s: Any = None  # CubaLIF current decay
    a_b: Any = None  # ALIF adaptation decay
    q: Any = None  # ALIF threshold jump (FixedCubaLIF: integer, None without adaptation)
    keep_u: Any = None  # FixedCubaLIF: 2^D - du
    keep_v: Any = None  # FixedCubaLIF: 2^D - dv
    bias: Any = None  # FixedCubaLIF: added to v each step
    keep_b: Any = None  # FixedCubaLIF with adaptation: 2^D - db
    leak: Any = None  # SynapseFilter: fraction of the current lost in a step without an input spike
    jump: Any = None  # FixedSynapseFilter: added on a spike (its decay is keep_v = 2^D - d)
    reset: str = "subtract"
    refractory: int = 0
    detach_reset: bool = True  # no gradient through the reset
    surrogate: str = DEFAULT_SURROGATE
    slope: float | None = None  # None: the surrogate's default
    spike: Any = None  # the engine's spike function h -> s (None: the strict step, no gradient rule)
    shift: int = 0  # FixedCubaLIF decay_bits
    input_shift: int = 0
    state_bits: int = 0
    current_overflow: str = "wrap"
    voltage_overflow: str = "saturate"

    def linear(self) -> tuple[Any, Any, Any, Any]:
        """(a_s, a, rg, leak) of the equivalent form i = a_s i + I; v = a v + rg i + leak that hardware
        and simulators integrate (a_s 0: the input enters in its own step; leak = (1 - a) v_leak)."""
        a = 1.0 if self.a is None else self.a
        a_s = 0.0 if self.a_s is None else self.a_s
        rg = 1.0 if self.rg is None else self.rg
        leak = 0.0 if self.v_leak is None else (1.0 - np.asarray(a)) * np.asarray(self.v_leak)
        return a_s, a, rg, leak


ARRAYS = ("theta", "v_reset", "v_init", "a", "rg", "v_leak", "a_s", "a_b", "q", "keep_u", "keep_v", "bias", "keep_b",
          "leak", "jump")


def _as64(field: str, v: Any) -> Any:
    return np.asarray(v, dtype=np.float64)


def _factor64(field: str, tau: Any, formula: Callable) -> Any:
    return formula(np.asarray(tau, dtype=np.float64))


Param = Callable[[str, Any], Any]  # (field, value) -> the value in the engine's arrays
Factor = Callable[[str, Any, Callable], Any]  # (field, tau, formula(tau)) -> the factor in the engine's arrays


def _spiking(p: Any, param: Param) -> dict[str, Any]:
    return {"theta": param("theta", p.theta), "v_reset": param("v_reset", p.v_reset), "reset": p.reset,
            "refractory": int(p.refractory), "detach_reset": bool(getattr(p, "detach_reset", True)),
            "surrogate": getattr(p, "surrogate", DEFAULT_SURROGATE), "slope": getattr(p, "slope", None)}


def _membrane(p: Any, tau_field: str, param: Param, factor: Factor, dt: float, scheme: str) -> dict[str, Any]:
    tau = getattr(p, tau_field)
    g = factor(tau_field, tau, lambda t, xp=np: gain(t, dt, scheme, xp))
    return {"a": factor(tau_field, tau, lambda t, xp=np: decay(t, dt, scheme, xp)),
            "rg": param("r", p.r) * g, "v_leak": param("v_leak", p.v_leak)}


def _d_if(p, param, factor, dt, scheme):
    return _spiking(p, param)


def _d_lif(p, param, factor, dt, scheme):
    return {**_spiking(p, param), **_membrane(p, "tau", param, factor, dt, scheme)}


def _d_cuba(p, param, factor, dt, scheme):
    return {**_spiking(p, param), **_membrane(p, "tau_mem", param, factor, dt, scheme),
            "a_s": factor("tau_syn", p.tau_syn, lambda t, xp=np: decay(t, dt, scheme, xp))}


def _d_alif(p, param, factor, dt, scheme):
    return {**_d_lif(p, param, factor, dt, scheme), "q": param("q", p.q),
            "a_b": factor("tau_adapt", p.tau_adapt, lambda t, xp=np: decay(t, dt, scheme, xp))}


def _d_li(p, param, factor, dt, scheme):
    return {"spiking": False, **_membrane(p, "tau", param, factor, dt, scheme)}


def _d_integrator(p, param, factor, dt, scheme):
    return {"spiking": False, "rg": param("r", p.r)}


def _d_fixed(p, param, factor, dt, scheme):
    one = np.int64(1) << p.decay_bits
    out = {**_spiking(p, param), "keep_u": param("du", one - np.asarray(p.du, dtype=np.int64)),
           "keep_v": param("dv", one - np.asarray(p.dv, dtype=np.int64)), "bias": param("bias", p.bias),
           "shift": p.decay_bits, "input_shift": p.input_shift, "state_bits": p.state_bits,
           "current_overflow": p.current_overflow, "voltage_overflow": p.voltage_overflow}
    if fixed_adapts(p):  # (q = 0 everywhere: b stays 0, the step skips the adaptation's work)
        out |= {"q": param("q", p.q), "keep_b": param("db", one - np.asarray(p.db, dtype=np.int64))}
    return out


def _d_filter(p, param, factor, dt, scheme):
    return {"spiking": False, "leak": param("leak", p.leak)}  # per step, as SpikingJelly defines it: no dt


def _d_fixed_filter(p, param, factor, dt, scheme):
    one = np.int64(1) << p.decay_bits
    return {"spiking": False, "keep_v": param("d", one - np.asarray(p.d, dtype=np.int64)),
            "jump": param("jump", p.jump), "shift": p.decay_bits, "state_bits": p.state_bits}


def fixed_adapts(p: Any) -> bool:
    """Whether a FixedCubaLIF adapts its threshold (some q != 0; b stays 0 otherwise, whatever db is)."""
    return bool(np.any(np.asarray(getattr(p, "q", 0)) != 0))


DISCRETIZE: dict[str, Callable[..., dict[str, Any]]] = {
    "IF": _d_if, "LIF": _d_lif, "CubaLIF": _d_cuba, "ALIF": _d_alif, "LI": _d_li, "Integrator": _d_integrator,
    "FixedCubaLIF": _d_fixed, "SynapseFilter": _d_filter, "FixedSynapseFilter": _d_fixed_filter,
}


def discretize(prim: Any, dt: float, scheme: str, *, kind: str | None = None, param: Param = _as64,
               factor: Factor = _factor64) -> Discrete:
    """The per-step coefficients of neuron `prim` at step dt (ms) under `scheme` (docs/semantics.md §3).

    Args:
        prim: an IR neuron primitive (or any object with the same fields, e.g. n3ml.nn's parameter tuples).
        kind: the neuron kind (default: the class name of `prim`).
        param: converts a parameter into the engine's arrays (default: float64 numpy); the
            products (r g) are formed from the converted values, in the engine's dtype.
        factor: computes decay/gain of a time constant (default: in float64 numpy).
    Returns:
        `Discrete`, with numpy values by default.
    """
    kind = kind or type(prim).__name__
    if kind not in DISCRETIZE:
        raise KeyError(f"no discretisation for neuron kind {kind!r}; known: {', '.join(DISCRETIZE)}")
    fields = DISCRETIZE[kind](prim, param, factor, float(dt), scheme)
    return Discrete(kind=kind, v_init=param("v_init", prim.v_init), **fields)


# ------------------------------------------------------------- fixed point (§6)


def trunc_shift(xp: Namespace, x: Any, bits: int) -> Any:
    """x / 2**bits rounded toward zero, in integers: sign(x) (|x| >> bits)."""
    return xp.sign(x) * (abs(x) >> bits)


def overflow(xp: Namespace, x: Any, bits: int, mode: str) -> Any:
    """Bring x into a `bits`-bit state register: wrap into (-m, m] or saturate to +-(m-1), m = 2^(bits-1)."""
    m = 1 << (bits - 1)
    if mode == "saturate":
        return xp.clip(x, -m + 1, m - 1)
    return x - 2 * m * ((x + (m - 1)) // (2 * m))


# ------------------------------------------------------------------ the step (§5)


class State(NamedTuple):
    """A neuron's state between steps (any NamedTuple with the fields a neuron uses will do)."""

    v: Any
    i: Any = None  # synaptic current (CubaLIF, FixedCubaLIF)
    b: Any = None  # threshold adaptation (ALIF)
    c: Any = None  # refractory counter, steps left (only read when refractory > 0)


def _fire(xp: Namespace, k: Discrete, cand: Any, st: Any, thr: Any) -> tuple[Any, Any, Any]:
    """Stages 3-5: refractoriness, strict threshold test, reset, counter.

    The reset is written arithmetically (v - s theta; v (1 - s) + s v_reset) so that it is
    differentiable through s; since s is exactly 0 or 1 it equals the selection of §5 bit for bit.
    """
    spike = k.spike or xp.heaviside
    if k.refractory:
        refr = st.c > 0
        v = xp.where(refr, st.v, cand)
        s = spike(v - thr) * xp.cast(~refr, v)
    else:
        v, s = cand, spike(cand - thr)
    sr = xp.detach(s) if k.detach_reset else s
    if k.reset == "subtract":
        v = v - sr * thr
    elif k.reset == "to-value":
        v = v * (1 - sr) + sr * k.v_reset
    c = st.c
    if k.refractory:
        c = xp.where(xp.detach(s) > 0, k.refractory, xp.where(refr, c - 1, 0))
    return s, v, c


def _leaky(k: Discrete, v: Any, x: Any) -> Any:
    return k.v_leak + k.a * (v - k.v_leak) + k.rg * x


def step_if(xp, k, st, x):
    """IF: v* = v + I."""
    s, v, c = _fire(xp, k, st.v + x, st, k.theta)
    return s, st._replace(v=v, c=c)


def step_lif(xp, k, st, x):
    """LIF: v* = v_leak + a (v - v_leak) + r g I."""
    s, v, c = _fire(xp, k, _leaky(k, st.v, x), st, k.theta)
    return s, st._replace(v=v, c=c)


def step_cuba_lif(xp, k, st, x):
    """CubaLIF: i = a_s i + I (also while refractory); v* = v_leak + a_m (v - v_leak) + r g_m i."""
    i = k.a_s * st.i + x
    s, v, c = _fire(xp, k, _leaky(k, st.v, i), st, k.theta)
    return s, st._replace(i=i, v=v, c=c)


def step_alif(xp, k, st, x):
    """ALIF: b' = a_b b; v* as LIF; threshold theta + b'; b = b' + q s."""
    b = k.a_b * st.b
    s, v, c = _fire(xp, k, _leaky(k, st.v, x), st, k.theta + b)
    return s, st._replace(v=v, b=b + k.q * s, c=c)


def step_li(xp, k, st, x):
    """LI (no spikes): v = v_leak + a (v - v_leak) + r g I; output v."""
    v = _leaky(k, st.v, x)
    return v, st._replace(v=v)


def step_integrator(xp, k, st, x):
    """Integrator (no spikes): v = v + r I; output v."""
    v = st.v + k.rg * x
    return v, st._replace(v=v)


def step_fixed_cuba_lif(xp, k, st, x):
    """FixedCubaLIF (§6): u = ovf_u(trunc(u (2^D - du) / 2^D) + I 2^k);
    v* = ovf_v(trunc(v (2^D - dv) / 2^D) + u + bias); with adaptation (§6a) b' = trunc(b (2^D - db) / 2^D),
    threshold theta + b', b = sat(b' + q s)."""
    u = overflow(xp, trunc_shift(xp, st.i * k.keep_u, k.shift) + (xp.to_int(x) << k.input_shift), k.state_bits,
                 k.current_overflow)
    cand = overflow(xp, trunc_shift(xp, st.v * k.keep_v, k.shift) + u + k.bias, k.state_bits, k.voltage_overflow)
    if k.q is None:
        s, v, c = _fire(xp, k, cand, st, k.theta)
        return s, st._replace(i=u, v=v, c=c)
    b = trunc_shift(xp, st.b * k.keep_b, k.shift)
    s, v, c = _fire(xp, k, cand, st, k.theta + b)
    # b saturates like a voltage register: a jump never wraps a high threshold round to a low one
    return s, st._replace(i=u, v=v, c=c, b=overflow(xp, b + k.q * s, k.state_bits, "saturate"))


def step_synapse_filter(xp, k, st, x):
    """SynapseFilter (§5b), SpikingJelly's operations in its order: v = v - (1 - s) v leak + s; output v.
    For 0/1 spikes: v + 1 on a spike (no decay), v - v leak otherwise."""
    v = st.v - (1 - x) * st.v * k.leak + x
    return v, st._replace(v=v)


def step_fixed_synapse_filter(xp, k, st, x):
    """FixedSynapseFilter (§6b): v = sat(v + jump) on a spike, trunc(v (2^D - d) / 2^D) otherwise; output v."""
    v = xp.where(x > 0, overflow(xp, st.v + k.jump, k.state_bits, "saturate"), trunc_shift(xp, st.v * k.keep_v, k.shift))
    return v, st._replace(v=v)


STEPS: dict[str, Callable] = {
    "IF": step_if, "LIF": step_lif, "CubaLIF": step_cuba_lif, "ALIF": step_alif, "LI": step_li,
    "Integrator": step_integrator, "FixedCubaLIF": step_fixed_cuba_lif, "SynapseFilter": step_synapse_filter,
    "FixedSynapseFilter": step_fixed_synapse_filter,
}

# which state fields each kind carries besides v (for recording)
STATE_NAMES: dict[str, tuple[str, ...]] = {
    "IF": ("v",), "LIF": ("v",), "CubaLIF": ("v", "i"), "ALIF": ("v", "b"), "LI": ("v",), "Integrator": ("v",),
    "FixedCubaLIF": ("v", "i"), "SynapseFilter": ("v",), "FixedSynapseFilter": ("v",),
}


def step(xp: Namespace, k: Discrete, st: Any, x: Any) -> tuple[Any, Any]:
    """One time step of the neuron described by `k` on input x: (output, new state).

    Args:
        xp: the array namespace (`NUMPY`, or n3ml.nn.functional.TORCH).
        k: its coefficients (`discretize`), converted to the engine's arrays.
        st: its state (`State` or a NamedTuple with the fields it uses).
    """
    return STEPS[k.kind](xp, k, st, x)
