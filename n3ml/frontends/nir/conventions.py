"""How each NIR reader discretises NIR's continuous-time neurons: one `Convention` per library.

NIR stores ODEs (time constants in seconds) without a time step, spike amplitude, reset rule or update
order; every library that reads NIR fills these in its own way. Each convention below is the reading of
one library's NIR importer, derived from its source (docs/nir.md gives the equations and the file each
was read from), written as n3ml IR, whose meaning is exact (docs/semantics.md):

* ``exact``: NIR's equations taken literally: input held constant over each step (zero-order hold),
  every first-order stage solved exactly (scheme ``exact``), reset by the file's NIR version.
* ``euler``: the same equations by one forward-Euler step (scheme ``euler``): the meaning snnTorch's
  and Norse's *exporters* give the parameters they write.
* ``snntorch``: snnTorch 1.0 ``import_nir``: forward Euler with dt = 1e-4 s fixed, input gain folded
  into the threshold, reset to zero (``v_reset`` ignored), IF read as a leaky neuron with beta 0.9.
* ``norse``: Norse 1.1 ``from_nir``: forward Euler with dt = 1 ms (Norse's default), ``r`` ignored for
  LIF and IF, reset to 0 (``v_reset`` ignored), membrane starting at ``v_leak``.
* ``sinabs``: Sinabs 3.1 ``from_nir``: time constants in steps (exp(-1/tau)), unit input gain,
  threshold test ``v >= theta``, subtract reset; its multi-spike output is not expressible, so it is
  read as single spikes, with a warning (approximate).
* ``rockpool``: Rockpool 3.1 ``from_nir``: CubaLIF only (its LIF and LI readers fail), dt = min(tau_mem /
  (1 + r)) per node, the input decayed with the current, v_leak as a bias, subtract reset, multi-spikes
  read as single spikes (approximate, warned); recurrent layers as nested CubaLIF + Affine graphs.
* ``spyx``: Spyx 1.0 ``from_nir``: forward Euler with dt = 1 s, the spike of step t taken from the
  membrane of step t-1 and an undecayed subtract reset (a feedback loop and a one-step output delay).

A reader returns the chain of IR primitives one NIR neuron becomes (a leading Scale where the library
scales the input), or raises UnsupportedError naming the node when that library does not read it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedError
from ...ir import prims as P

log = logging.getLogger(__name__)

MS_PER_S = 1000.0  # NIR's time unit is the second (the exporters' dt = 1e-4 / 1e-3 s); the IR's is the ms


@dataclass(frozen=True)
class Ctx:
    """What a neuron reader needs besides the node: the step, the reset reading and where it is."""

    name: str  # IR node name (for messages)
    dt_ms: float
    reset: tuple[str, Any]  # (IR reset mode, v_reset) chosen for this node
    explicit_reset: bool  # the file stores v_reset for this node
    scheme: str = "exact"  # the graph's integration scheme

    @property
    def dt_s(self) -> float:
        return self.dt_ms / MS_PER_S


Chain = list[tuple[str, P.Primitive]]  # (name suffix, primitive); the last one is the neuron itself
Reader = Callable[[Any, Ctx], Chain]


def param(x: Any) -> Any:
    """A NIR parameter as the IR stores it: a float when all values agree, else a flat float64 array."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        return 0.0
    if np.all(a == a[0]):
        return float(a[0])
    return a.copy()


def uniform(x: Any, what: str, ctx: Ctx, lib: str) -> float:
    a = np.unique(np.asarray(x, dtype=np.float64))
    if a.size != 1:
        raise UnsupportedError(f"node `{ctx.name}`: {lib}'s NIR reader needs one `{what}` for all neurons, "
                               f"found {a.size} different values")
    return float(a[0])


def _scale(factor: Any) -> Chain:
    f = param(factor)
    return [] if (isinstance(f, float) and f == 1.0) else [("in", P.Scale(factor=f))]


def _tau_ms(tau: Any) -> Any:
    t = param(tau)
    return t * MS_PER_S


# ------------------------------------------------------------------------------- exact and euler
# NIR's equations as written, with the input held over each step; `exact` solves each first-order stage
# exactly, `euler` takes one forward-Euler step (what snnTorch's and Norse's exporters assume when they
# write tau = dt / (1 - beta)). The two share these readers: only the graph's scheme differs.

def _exact_lif(n, ctx: Ctx) -> Chain:
    mode, v_reset = ctx.reset
    return [("", P.LIF(tau=_tau_ms(n.tau), v_leak=param(n.v_leak), r=param(n.r), theta=param(n.v_threshold),
                       reset=mode, v_reset=v_reset))]


def _exact_if(n, ctx: Ctx) -> Chain:
    # dv/dt = R I over a step with I held: v += R dt I (dt in the file's unit, seconds)
    mode, v_reset = ctx.reset
    return _scale(np.asarray(n.r, np.float64) * ctx.dt_s) + [
        ("", P.IF(theta=param(n.v_threshold), reset=mode, v_reset=v_reset))]


def _exact_li(n, ctx: Ctx) -> Chain:
    return [("", P.LI(tau=_tau_ms(n.tau), v_leak=param(n.v_leak), r=param(n.r)))]


def _exact_i(n, ctx: Ctx) -> Chain:
    return [("", P.Integrator(r=param(np.asarray(n.r, np.float64) * ctx.dt_s)))]


def _exact_cuba_lif(n, ctx: Ctx) -> Chain:
    # tau_syn dI/dt = -I + w_in S: I_t = a_s I + (1 - a_s) w_in S_t; the IR's current adds its input
    # unscaled, so the gain (1 - a_s) w_in goes into a Scale in front
    mode, v_reset = ctx.reset
    tau_syn = _tau_ms(n.tau_syn)
    g_s = P.gain(tau_syn, ctx.dt_ms, ctx.scheme)
    return _scale(np.asarray(n.w_in, np.float64).ravel() * np.asarray(g_s).ravel()) + [
        ("", P.CubaLIF(tau_syn=tau_syn, tau_mem=_tau_ms(n.tau_mem), v_leak=param(n.v_leak), r=param(n.r),
                       theta=param(n.v_threshold), reset=mode, v_reset=v_reset))]


def _exact_cuba_li(n, ctx: Ctx) -> Chain:
    return [("syn", P.LI(tau=_tau_ms(n.tau_syn), r=param(n.w_in))),
            ("", P.LI(tau=_tau_ms(n.tau_mem), v_leak=param(n.v_leak), r=param(n.r)))]


# -------------------------------------------------------------------------------------- snnTorch
# snntorch/import_nir.py (1.0.0): dt = 1e-4 (the file's unit); beta = 1 - dt/tau; the input enters
# unscaled and the threshold is divided by the gain instead (w_scale = r dt / tau); Leaky/Synaptic with
# reset_mechanism="zero", reset_delay=False: the membrane is set to 0 in the step of the spike.

SNNTORCH_DT_MS = 0.1


def _snn_zero_reset(n, ctx: Ctx) -> tuple[str, float]:
    vr = np.asarray(getattr(n, "v_reset", 0.0), np.float64)
    if ctx.explicit_reset and np.any(vr != 0):
        log.warning("node `%s`: snnTorch's NIR reader ignores v_reset (%s) and resets to 0; reading it as "
                    "snnTorch does", ctx.name, param(vr))
    return "to-value", 0.0


def _snn_lif(n, ctx: Ctx) -> Chain:
    if not np.allclose(n.v_leak, 0.0):
        raise UnsupportedError(f"node `{ctx.name}`: snnTorch's NIR reader refuses v_leak != 0")
    tau = _tau_ms(n.tau)
    w_scale = np.asarray(n.r, np.float64) * (SNNTORCH_DT_MS / MS_PER_S) / np.asarray(n.tau, np.float64)
    ws = uniform(w_scale, "r dt / tau", ctx, "snnTorch")
    theta = uniform(np.asarray(n.v_threshold, np.float64) / ws, "v_threshold / (r dt / tau)", ctx, "snnTorch")
    mode, vr = _snn_zero_reset(n, ctx)
    # unit input gain: r g = 1 with g = dt / tau (euler)
    return [("", P.LIF(tau=tau, r=_unit_r(tau, ctx), theta=theta, reset=mode, v_reset=vr))]


def _unit_r(tau_ms: Any, ctx: Ctx) -> Any:
    r = np.asarray(tau_ms, np.float64) / ctx.dt_ms
    return float(r) if r.ndim == 0 else r


def _snn_if(n, ctx: Ctx) -> Chain:
    # import_nir builds snn.Leaky(beta=0.9, threshold=v_threshold * r) with the default subtract reset
    # and reset_delay=False: mem_t = 0.9 mem_{t-1} + I_t, then mem -= thr at a spike (same step)
    r = uniform(n.r, "r", ctx, "snnTorch")
    if r != 1:
        raise UnsupportedError(f"node `{ctx.name}`: snnTorch's NIR reader refuses IF with r != 1 (found {r:g})")
    theta = uniform(n.v_threshold, "v_threshold", ctx, "snnTorch") * r
    tau = ctx.dt_ms / (1 - 0.9)  # euler: a = 1 - dt / tau = 0.9
    log.warning("node `%s`: snnTorch's NIR reader reads IF as a leaky neuron (beta = 0.9, subtract reset); "
                "reading it as snnTorch does", ctx.name)
    return [("", P.LIF(tau=tau, r=_unit_r(tau, ctx), theta=theta, reset="subtract"))]


def _snn_cuba_lif(n, ctx: Ctx) -> Chain:
    dt_s = SNNTORCH_DT_MS / MS_PER_S
    if not np.allclose(n.v_leak, 0.0):
        raise UnsupportedError(f"node `{ctx.name}`: snnTorch's NIR reader refuses v_leak != 0")
    if not np.allclose(n.r, np.asarray(n.tau_mem, np.float64) / dt_s):
        raise UnsupportedError(f"node `{ctx.name}`: snnTorch's NIR reader needs r = tau_mem / dt (dt = 1e-4)")
    w_scale = np.asarray(n.w_in, np.float64) * (dt_s / np.asarray(n.tau_syn, np.float64))
    theta = uniform(np.asarray(n.v_threshold, np.float64) / w_scale, "v_threshold / w_scale", ctx, "snnTorch")
    tau_mem = _tau_ms(n.tau_mem)
    mode, vr = _snn_zero_reset(n, ctx)
    return [("", P.CubaLIF(tau_syn=_tau_ms(n.tau_syn), tau_mem=tau_mem, r=_unit_r(tau_mem, ctx), theta=theta,
                           reset=mode, v_reset=vr))]


# ----------------------------------------------------------------------------------------- Norse
# norse/torch/utils/import_nir.py (1.1.0): LIF -> LIFBoxCell(tau_mem_inv = 1/tau, v_th, v_leak) with
# v += dt/tau (v_leak - v + I) (r ignored), reset_value to LIFBoxParameters' v_reset = 0, v starting at
# v_leak; IF -> IAFCell(v_th): v += I, reset to 0; CubaLIF -> w_in * x -> LIBoxCell(1/tau_syn, v_leak)
# -> r * i -> LIFBoxCell(1/tau_mem, v_th, v_leak). dt is from_nir's argument (default 1e-3).

NORSE_DT_MS = 1.0


def _norse_zero_reset(n, ctx: Ctx, lib: str = "Norse") -> tuple[str, float]:
    vr = np.asarray(getattr(n, "v_reset", 0.0), np.float64)
    if ctx.explicit_reset and np.any(vr != 0):
        log.warning("node `%s`: %s's NIR reader ignores v_reset (%s) and resets to 0", ctx.name, lib, param(vr))
    return "to-value", 0.0


def _norse_r_ignored(n, ctx: Ctx) -> None:
    if not np.allclose(n.r, 1.0):
        log.warning("node `%s`: Norse's NIR reader ignores r (%s) for this neuron; reading it as Norse does "
                    "(r = 1)", ctx.name, param(n.r))


def _norse_lif(n, ctx: Ctx) -> Chain:
    _norse_r_ignored(n, ctx)
    mode, vr = _norse_zero_reset(n, ctx)
    v_leak = param(n.v_leak)
    return [("", P.LIF(tau=_tau_ms(n.tau), v_leak=v_leak, r=1.0, theta=param(n.v_threshold), reset=mode,
                       v_reset=vr, v_init=v_leak))]


def _norse_if(n, ctx: Ctx) -> Chain:
    _norse_r_ignored(n, ctx)
    mode, vr = _norse_zero_reset(n, ctx)
    return [("", P.IF(theta=param(n.v_threshold), reset=mode, v_reset=vr))]


def _norse_cuba_lif(n, ctx: Ctx) -> Chain:
    mode, vr = _norse_zero_reset(n, ctx)
    v_leak = param(n.v_leak)
    # the synapse is a LIBoxCell that shares the neuron's v_leak (and starts at it), as Norse builds it
    return _scale(n.w_in) + [
        ("syn", P.LI(tau=_tau_ms(n.tau_syn), v_leak=v_leak, r=1.0, v_init=v_leak)),
        *[(s if s != "in" else "r", p) for s, p in _scale(n.r)],
        ("", P.LIF(tau=_tau_ms(n.tau_mem), v_leak=v_leak, r=1.0, theta=param(n.v_threshold), reset=mode,
                   v_reset=vr, v_init=v_leak))]


# ---------------------------------------------------------------------------------------- Sinabs
# sinabs/nir.py (3.1.3): LIF -> LIFSqueeze(tau_mem=tau, norm_input=False), IF -> IAFSqueeze(min_v_mem =
# -v_threshold), LI -> ExpLeakSqueeze; time constants in steps (alpha = exp(-1/tau)), input unscaled, r
# and v_reset ignored, spikes by MultiSpike (floor(v / theta) spikes, i.e. v >= theta) and subtract reset.

def _sinabs_warn(ctx: Ctx) -> None:
    log.warning("node `%s`: Sinabs fires floor(v / theta) spikes per step (MultiSpike); the IR emits at most "
                "one: reading it as single spikes at v >= theta (exact while v < 2 theta)", ctx.name)


def _sinabs_tau(tau: Any, ctx: Ctx) -> Any:
    return param(tau) * ctx.dt_ms  # tau counts steps


def _sinabs_theta(v_th: Any) -> Any:
    # v >= theta in the IR's strict test: the largest float32 below theta (Sinabs runs float32)
    th = np.asarray(v_th, np.float32)
    return param(np.nextafter(th, np.float32(-np.inf)).astype(np.float64))


def _sinabs_lif(n, ctx: Ctx) -> Chain:
    if np.any(np.asarray(n.v_leak) != 0):
        raise UnsupportedError(f"node `{ctx.name}`: Sinabs' NIR reader refuses v_leak != 0")
    _sinabs_warn(ctx)
    tau = _sinabs_tau(n.tau, ctx)
    return [("", P.LIF(tau=tau, r=_exact_unit_r(tau, ctx), theta=_sinabs_theta(n.v_threshold),
                       reset="subtract"))]


def _exact_unit_r(tau_ms: Any, ctx: Ctx) -> Any:
    g = P.gain(np.asarray(tau_ms, np.float64), ctx.dt_ms, "exact")
    r = 1.0 / g
    return float(r) if np.ndim(r) == 0 else r


def _sinabs_if(n, ctx: Ctx) -> Chain:
    _sinabs_warn(ctx)
    if not np.allclose(n.r, 1.0):
        log.warning("node `%s`: Sinabs' NIR reader ignores r (%s)", ctx.name, param(n.r))
    # min_v_mem = -v_threshold clips the membrane from below, which the IR cannot express
    log.warning("node `%s`: Sinabs clips the membrane at -v_threshold (min_v_mem); the IR does not", ctx.name)
    return [("", P.IF(theta=_sinabs_theta(n.v_threshold), reset="subtract"))]


def _sinabs_li(n, ctx: Ctx) -> Chain:
    if np.any(np.asarray(n.v_leak) != 0) or np.any(np.asarray(n.r) != 1):
        raise UnsupportedError(f"node `{ctx.name}`: Sinabs' NIR reader refuses LI with v_leak != 0 or r != 1")
    tau = _sinabs_tau(n.tau, ctx)
    return [("", P.LI(tau=tau, r=_exact_unit_r(tau, ctx)))]


# ------------------------------------------------------------------------------------------ Spyx
# spyx/nir.py and spyx/nn.py (1.0.0): dt is from_nir's argument (default 1, in the file's unit: 1 s);
# LIF -> beta = clip(1 - dt/tau, 0, 1): s_t = [V_{t-1} > theta], V_t = beta V_{t-1} + x_t - theta s_t: the
# spike of step t comes from the membrane of step t-1, and the subtraction is not decayed. IF: beta = 1.
# CubaLIF -> s_t = [V_{t-1} > theta]; V = V - theta s_t; I_t = alpha I + x_t; V_t = beta V + I_t. r, w_in,
# v_leak and v_reset are ignored.
# In the IR: the neuron's candidate voltage is Spyx's V; an IR subtract reset decays the subtraction, so
# the input gets -(1 - beta) theta s'_{t-1} through a feedback loop (Delay -> Scale -> Add, as the
# snnTorch frontend does for Leaky), and the output is the IR spike delayed by one step.


def _spyx_decay(tau: Any, ctx: Ctx) -> Any:
    beta = np.clip(1.0 - ctx.dt_s / np.asarray(tau, np.float64), 0.0, 1.0)
    return param(beta)


def _spyx_tau(beta: Any, ctx: Ctx) -> Any:
    b = np.asarray(beta, np.float64)
    if np.any(b >= 1):
        return None
    return param(ctx.dt_ms / (1.0 - b))  # euler: 1 - dt / tau = beta


def _spyx_lagged(core: P.Neuron, beta: Any, theta: Any) -> Chain:
    corr = -(1.0 - np.asarray(beta, np.float64)) * np.asarray(theta, np.float64)
    chain: list = []
    if np.any(corr != 0):
        chain += [("fb_sum", P.Add(), ["^", "fb_scale"])]
    chain += [("core", core)]
    if np.any(corr != 0):
        chain += [("fb", P.Delay(steps=1), ["core"]), ("fb_scale", P.Scale(factor=param(corr)), ["fb"])]
    return chain + [("", P.Delay(steps=1), ["core"])]


def _spyx_lif(n, ctx: Ctx) -> Chain:
    beta = _spyx_decay(n.tau, ctx)
    theta = param(n.v_threshold)
    tau = _spyx_tau(beta, ctx)
    core = (P.IF(theta=theta, reset="subtract") if tau is None else
            P.LIF(tau=tau, r=_unit_r(tau, ctx), theta=theta, reset="subtract"))
    return _spyx_lagged(core, beta, theta)


def _spyx_if(n, ctx: Ctx) -> Chain:
    return _spyx_lagged(P.IF(theta=param(n.v_threshold), reset="subtract"), 1.0, param(n.v_threshold))


def _spyx_cuba_lif(n, ctx: Ctx) -> Chain:
    alpha, beta = _spyx_decay(n.tau_syn, ctx), _spyx_decay(n.tau_mem, ctx)
    tau_s, tau_m = _spyx_tau(alpha, ctx), _spyx_tau(beta, ctx)
    if tau_s is None or tau_m is None:
        raise UnsupportedError(f"node `{ctx.name}`: Spyx reads a decay of 1 here (tau = inf), which the IR's "
                               "CubaLIF cannot express")
    core = P.CubaLIF(tau_syn=tau_s, tau_mem=tau_m, r=_unit_r(tau_m, ctx), theta=param(n.v_threshold),
                     reset="subtract")
    return [("core", core), ("", P.Delay(steps=1), ["core"])]


# -------------------------------------------------------------------------------------- Rockpool
# rockpool/nn/modules/torch/nir.py (3.1.0), `_convert_nir_to_rockpool`: CubaLIF -> LIFTorch(tau_mem, tau_syn,
# threshold = v_threshold, bias = v_leak, dt = min(tau_mem / (1 + r))), whose step (lif_torch.py `forward`) is
#   i_t = b_s (i_{t-1} + x_t);  v_t = a_m v_{t-1} + i_t + v_leak;  n_t = floor(v_t / theta) if v_t >= theta;
#   v_t -= n_t theta
# with a_m = exp(-dt / tau_mem), b_s = exp(-dt / tau_syn): the input enters the current already decayed, the
# membrane gain is 1, v_leak is a bias added every step, w_in, v_reset and r (beyond dt) are ignored, and a step
# may carry several spikes (max_spikes_per_dt = 2**16). A nested NIRGraph of four nodes holding a CubaLIF and an
# Affine/Linear is read as LIFTorch(has_rec=True, w_rec = W^T): i_t = b_s (i_{t-1} + x_t + W s_{t-1}), its bias
# dropped with a warning. nir.LIF fails (the reader reads `node.tau_mem`, which NIR's LIF does not have) and so
# does LI (ExpSynTorch(tau = int(tau)): every tau below 1 s becomes 0), so both are refused with that reason.
# In the IR: Scale(b_s) -> CubaLIF(a_s = b_s, a_m, unit membrane gain, v_leak = bias / (1 - a_m), subtract reset,
# theta just below v_threshold), each node on its own dt, mapped onto the graph's step.


def _rockpool_dt_s(n) -> float:
    # the reader's torch.min(tau_mem / (1 + r)).item(): one dt per node, in the file's unit
    return float(np.min(np.asarray(n.tau_mem, np.float64) / (1.0 + np.asarray(n.r, np.float64))))


def _rockpool_cuba_lif(n, ctx: Ctx) -> Chain:
    log.warning("node `%s`: Rockpool fires floor(v / theta) spikes per step; the IR emits at most one: reading "
                "it as single spikes at v >= theta (exact while v < 2 theta)", ctx.name)
    dt_s = _rockpool_dt_s(n)
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise UnsupportedError(f"node `{ctx.name}`: Rockpool's reader takes dt = min(tau_mem / (1 + r)) = {dt_s:g}, "
                               "not a positive step")
    # the node's own step mapped onto the graph's: tau' / dt_graph = tau / dt_node (scheme exact)
    tau_syn = param(np.asarray(n.tau_syn, np.float64) / dt_s * ctx.dt_ms)
    tau_mem = param(np.asarray(n.tau_mem, np.float64) / dt_s * ctx.dt_ms)
    a_m = np.exp(-dt_s / np.asarray(n.tau_mem, np.float64))
    b_s = np.exp(-dt_s / np.asarray(n.tau_syn, np.float64))
    v_leak = param(np.asarray(n.v_leak, np.float64) / (1.0 - a_m))
    vr = np.asarray(getattr(n, "v_reset", 0.0), np.float64)
    if ctx.explicit_reset and np.any(vr != 0):
        log.warning("node `%s`: Rockpool's NIR reader ignores v_reset (%s) and resets by subtraction", ctx.name,
                    param(vr))
    return _scale(b_s) + [("", P.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, v_leak=v_leak,
                                         r=_exact_unit_r(tau_mem, ctx), theta=_sinabs_theta(n.v_threshold),
                                         reset="subtract"))]


def _rockpool_lif(n, ctx: Ctx) -> Chain:
    raise UnsupportedError(f"node `{ctx.name}`: Rockpool 3.1.0's NIR reader fails on every nir.LIF: it reads "
                           "`node.tau_mem`, which NIR's LIF does not have (its field is `tau`): AttributeError")


def _rockpool_li(n, ctx: Ctx) -> Chain:
    raise UnsupportedError(f"node `{ctx.name}`: Rockpool 3.1.0's NIR reader builds ExpSynTorch(tau = int(tau)): a "
                           "tau below 1 s becomes 0 and the readout is always 0 (or the module cannot be built)")


# ------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Convention:
    """One library's reading of NIR.

    Attributes:
        scheme: the IR integration scheme that reproduces the library's update.
        recurrence: where a cycle gets its one-step delay: "neuron" (on the edge leaving the neuron: the
            recurrent synapse, bias included, acts from step 0 on the previous step's spikes), "back-edge"
            (on the edge the reader's executor reaches before its source has run this step: nirtorch's
            GraphExecutor, which skips that input at step 0), "snntorch" (snnTorch's reader, see below).
        dt_ms: the step the library fixes (None: the user's --dt, else `default_dt_ms`).
        neurons: NIR neuron type -> reader.
        reads: the stateless NIR node types the library's reader accepts (None: all).
        source: where the reading was derived from.
    """

    name: str
    library: str
    scheme: str
    neurons: dict[str, Reader]
    dt_ms: float | None = None
    default_dt_ms: float | None = None
    reads: frozenset[str] | None = None
    source: str = ""
    recurrence: str = "neuron"


_LITERAL: dict[str, Reader] = {"LIF": _exact_lif, "IF": _exact_if, "LI": _exact_li, "I": _exact_i,
                                "CubaLIF": _exact_cuba_lif, "CubaLI": _exact_cuba_li}
_COMMON = frozenset({"Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "NIRGraph", "Identity"})

CONVENTIONS: dict[str, Convention] = {
    "exact": Convention("exact", "n3ml (NIR's equations, zero-order hold)", "exact", _LITERAL,
                        source="nir/ir/neuron.py equations"),
    "euler": Convention("euler", "n3ml (NIR's equations, forward Euler)", "euler", _LITERAL,
                        source="nir/ir/neuron.py equations"),
    "snntorch": Convention(
        "snntorch", "snnTorch 1.0.0", "euler", {"LIF": _snn_lif, "IF": _snn_if, "CubaLIF": _snn_cuba_lif},
        dt_ms=SNNTORCH_DT_MS, reads=_COMMON | {"AvgPool2d"}, source="snntorch/import_nir.py",
        recurrence="snntorch"),
    "norse": Convention(
        "norse", "Norse 1.1.0", "euler", {"LIF": _norse_lif, "IF": _norse_if, "CubaLIF": _norse_cuba_lif},
        default_dt_ms=NORSE_DT_MS, reads=(_COMMON - {"NIRGraph"}) | {"SumPool2d"},
        source="norse/torch/utils/import_nir.py", recurrence="back-edge"),
    "sinabs": Convention(
        "sinabs", "Sinabs 3.1.3", "exact", {"LIF": _sinabs_lif, "IF": _sinabs_if, "LI": _sinabs_li},
        default_dt_ms=1.0, reads=(_COMMON - {"NIRGraph", "Linear"}) | {"Conv1d", "SumPool2d"},
        source="sinabs/nir.py", recurrence="back-edge"),
    "spyx": Convention(
        "spyx", "Spyx 1.0.0", "euler", {"LIF": _spyx_lif, "IF": _spyx_if, "CubaLIF": _spyx_cuba_lif},
        default_dt_ms=1000.0, reads=_COMMON - {"NIRGraph"} | {"SumPool2d"},
        source="spyx/nir.py, spyx/nn.py"),
    "rockpool": Convention(
        "rockpool", "Rockpool 3.1.0", "exact",
        {"CubaLIF": _rockpool_cuba_lif, "LIF": _rockpool_lif, "LI": _rockpool_li},
        default_dt_ms=1.0, reads=frozenset({"Input", "Output", "Affine", "Linear", "NIRGraph"}),
        source="rockpool/nn/modules/torch/nir.py, lif_torch.py", recurrence="neuron"),
}


# readers that were examined and cannot be reproduced, with the reason (docs/nir.md)
NOT_CONVENTIONS = {
    "lava": "lava-dl 0.6.0 has no NIR reader, and the one on lava-dl's main branch (netx/nir_lava.py, unreleased) "
            "builds slayer blocks from the weights' shapes without loading the NIR weights into them; read the file "
            "with another convention and use n3ml's lava target",
}


def convention(name: str | None) -> Convention:
    if name is None:
        name = "exact"
    if name in NOT_CONVENTIONS:
        raise UnsupportedError(f"NIR convention {name!r} is not provided: {NOT_CONVENTIONS[name]} (docs/nir.md)")
    if name not in CONVENTIONS:
        raise UnsupportedError(f"unknown NIR convention {name!r}; n3ml reads NIR as "
                               f"{', '.join(CONVENTIONS)} (docs/nir.md)")
    return CONVENTIONS[name]


def is_close_int(x: float) -> bool:
    return math.isfinite(x) and abs(x - round(x)) <= 1e-9 * max(1.0, abs(x))
