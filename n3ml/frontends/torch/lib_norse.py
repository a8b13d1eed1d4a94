"""Norse neurons -> IR. See docs/frontends.md for the derivations.

Norse integrates with forward Euler. Its feed-forward LIF step (norse 1.1) is

    j_t = i_{t-1} + I_t                      (current jump, used in this step)
    v~  = v_{t-1} + dt/tau_mem (v_leak - v_{t-1} + j_t)
    z_t = [v~ - v_th > 0];  v_t = v_reset if z_t else v~
    i_t = (1 - dt/tau_syn) j_t

so j_t = (1 - dt/tau_syn) j_{t-1} + I_t is exactly the IR CubaLIF's current and
v~ its candidate voltage with a_m = 1 - dt/tau_mem and input gain dt/tau_mem: a
CubaLIF with reset to-value, v_init = v_leak. The per-step factors are computed
with torch exactly as Norse computes them and then expressed through the graph's
dt and scheme.
"""

from __future__ import annotations

from typing import Any, Callable

import norse.torch as norse
import numpy as np
import torch
from norse.torch.functional import reset as norse_reset
from torch import nn

from ...ir import prims as P
from .surrogates import Exact, Inexact, Rule, slope_of, train
from .trace import Context, Entry, State, Tensor

# p.method -> (IR surrogate, k, the only alpha it is exact for or None for any), from
# norse/torch/functional/threshold.py and superspike.py (n3ml/nn/surrogate.py has the table)
_SURROGATES: dict[str, tuple[str, float, float | None]] = {
    "super": ("fast_sigmoid", 1.0, None),  # the default; 1 / (|x| + 1)^2: norse 1.1 never reads alpha
    "triangle": ("triangle", 1.0, 1.0),  # alpha max(0, 1 - |x|) is k max(0, 1 - k |x|) for alpha = 1 only
}


def _surrogate(p: Any) -> Rule:
    """The IR surrogate of Norse's threshold(x, p.method, p.alpha), evaluated, as n3ml's, at v - v_th."""
    row, k = _SURROGATES.get(p.method), slope_of(p.alpha)
    if row is not None and (row[2] is None or k == row[2]):
        return Exact(row[0], row[1])
    return Inexact(f"method={p.method!r} (alpha={repr(p.alpha) if k is None else format(k, 'g')})")


# Whether a Norse step lets the gradient through the spike in its reset: the feed-forward steps write
# v = (1 - z) v + z v_reset with z itself (lif_feed_forward_step, iaf, lif_box, lsnn_feed_forward_step,
# lif_current_encoder); the recurrent lif_step and lsnn_step use z.detach()
_DETACHED, _THROUGH_SPIKE = True, False


def _factor(m: nn.Module, inv: torch.Tensor) -> np.ndarray:
    """dt / tau exactly as Norse computes it (in the parameters' dtype), then float64 for the IR."""
    with torch.no_grad():
        return (m.dt * torch.as_tensor(inv)).detach().cpu().double().numpy()


def _check_state(ctx: Context, state: tuple) -> None:
    if any(s is not None for s in state):
        raise ctx.unsupported("passing a state to the neuron; let it start from its initial state",
                              "module(input) or module(input, None)")


def lif_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    _check_state(ctx, state)
    x = ctx.tensor(x)
    return _lif(ctx, m, x), State(ctx.path, "state")


def _lif(ctx: Context, m: nn.Module, x: Tensor) -> Tensor:
    p = m.p
    k_mem = _factor(m, p.tau_mem_inv)
    k_syn = _factor(m, p.tau_syn_inv)
    out = ctx.cuba(ctx.path, x, a_syn=1 - k_syn, a_mem=1 - k_mem, k=k_mem, theta=p.v_th, reset="to-value",
                   v_reset=p.v_reset, v_leak=p.v_leak, v_init=p.v_leak)
    train(ctx, out, _surrogate(p), detach_reset=_THROUGH_SPIKE)
    return out


def _recurrent(ctx: Context, m: nn.Module, x: Any, neuron: Callable[[Any, str], Any]) -> Any:
    """Norse's *RecurrentCell wiring: neuron(W_in x_t + W_rec z_{t-1}) under the module's own name, z fed
    back through a one-step Delay and the recurrent Dense."""
    x = ctx.tensor(x)
    w_in = m.input_weights.detach().cpu().double().numpy()
    w_rec = m.recurrent_weights.detach().cpu().double().numpy()
    name = ctx.reserve(ctx.path)
    prev, rec = ctx.reserve(ctx.path + "_prev"), ctx.reserve(ctx.path + "_rec")
    fwd = ctx.add(ctx.path + "_in", P.Dense(weight=w_in), x)
    out = neuron(ctx.add(ctx.path + "_sum", P.Add(), fwd, rec), name)
    ctx.add(prev, P.Delay(steps=1), out, name=prev)
    ctx.add(rec, P.Dense(weight=w_rec), prev, name=rec)
    return out, State(ctx.path, "state")


def lif_recurrent_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    _check_state(ctx, state)
    p = m.p
    k_mem, k_syn = _factor(m, p.tau_mem_inv), _factor(m, p.tau_syn_inv)

    def neuron(total: Tensor, name: str) -> Tensor:
        out = ctx.cuba(ctx.path, total, a_syn=1 - k_syn, a_mem=1 - k_mem, k=k_mem, theta=p.v_th, reset="to-value",
                       v_reset=p.v_reset, v_leak=p.v_leak, v_init=p.v_leak, name=name)
        train(ctx, out, _surrogate(p), detach_reset=_DETACHED)
        return out
    return _recurrent(ctx, m, x, neuron)


def lif_box_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """v~ = v + dt/tau_mem (I + v_leak - v); reset by p.reset_method."""
    _check_state(ctx, state)
    x = ctx.tensor(x)
    p = m.p
    if p.reset_method is norse_reset.reset_value:
        reset = "to-value"
    elif p.reset_method is norse_reset.reset_subtract:
        reset = "subtract"
    else:
        raise ctx.unsupported(f"reset_method {p.reset_method!r}", "reset_value, reset_subtract")
    k = _factor(m, p.tau_mem_inv)
    out = ctx.neuron(ctx.path, x, a=1 - k, k=k, theta=p.v_th, reset=reset, v_reset=p.v_reset, v_leak=p.v_leak,
                     v_init=p.v_leak)
    train(ctx, out, _surrogate(p), detach_reset=_THROUGH_SPIKE)
    return out, State(ctx.path, "state")


def iaf_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """IAFCell / IAF: v = v + I; z = [v - v_th > 0]; v = v_reset after a spike; v starts at v_reset."""
    _check_state(ctx, state)
    p = m.p
    out = ctx.neuron(ctx.path, ctx.tensor(x), a=1.0, k=1.0, theta=p.v_th, reset="to-value", v_reset=p.v_reset,
                     v_init=p.v_reset)
    train(ctx, out, _surrogate(p), detach_reset=_THROUGH_SPIKE)
    return out, State(ctx.path, "state")


def li_box_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """LIBoxCell: v = v + dt/tau_mem ((v_leak - v) + I), no current term; the output is v (from v_leak)."""
    _check_state(ctx, state)
    k = _factor(m, m.p.tau_mem_inv)
    v = ctx.neuron(ctx.path, ctx.tensor(x), a=1 - k, k=k, v_leak=m.p.v_leak, v_init=m.p.v_leak, spiking=False)
    return v, State(ctx.path, "state")


def _lsnn(ctx: Context, m: nn.Module, drive: Tensor, name: str | None = None, *, detach_reset: bool) -> Tensor:
    """Norse's LSNN step (lsnn_step / lsnn_feed_forward_step): the voltage integrates the current of the
    *previous* step, and the threshold b relaxes to v_th and jumps by beta at each spike:

        v~ = v + dt/tau_mem ((v_leak - v) + i_{t-1});  b~ = b + dt/tau_adapt (v_th - b);  z = [v~ - b~ > 0]
        v = v_reset after a spike;  i_t = (1 - dt/tau_syn) i_{t-1} + I_t;  b = b~ + beta z

    With b = v_th + b', b' starting at 0, this is the IR's ALIF (theta = v_th, a_b = 1 - dt/tau_adapt, q = beta)
    fed Delay(1) of an LI current (a_s = 1 - dt/tau_syn, unit gain)."""
    p = m.p
    k_mem, k_syn, k_b = _factor(m, p.tau_mem_inv), _factor(m, p.tau_syn_inv), _factor(m, p.tau_adapt_inv)
    base = name or ctx.path
    i = ctx.neuron(base + "_syn", drive, a=1 - k_syn, k=1.0, spiking=False)
    i_prev = ctx.add(base + "_syn_prev", P.Delay(steps=1), i)
    shape = ctx.shape(i_prev)
    tau = ctx.tau_for(ctx.param(1 - k_mem, shape, "membrane decay"), "membrane decay")
    tau_b = ctx.tau_for(ctx.param(1 - k_b, shape, "adaptation decay"), "adaptation decay")
    r = np.asarray(ctx.param(k_mem, shape, "input gain")) / P.gain(tau, ctx.g.dt, ctx.g.scheme)
    prim = P.ALIF(tau=tau, tau_adapt=tau_b, q=ctx.param(p.beta, shape, "beta"), v_leak=ctx.param(p.v_leak, shape,
                  "v_leak"), r=float(r) if np.ndim(r) == 0 else r, theta=ctx.param(p.v_th, shape, "threshold"),
                  v_reset=ctx.param(p.v_reset, shape, "v_reset"), reset="to-value",
                  v_init=ctx.param(p.v_leak, shape, "v_init"))
    out = ctx.add(base, prim, i_prev, name=name)
    train(ctx, out, _surrogate(p), detach_reset=detach_reset)
    return out


def lsnn_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    _check_state(ctx, state)
    return _lsnn(ctx, m, ctx.tensor(x), detach_reset=_THROUGH_SPIKE), State(ctx.path, "state")


def lsnn_recurrent_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """LSNNRecurrentCell: the current jumps by W_in x_t + W_rec z_{t-1}, then the LSNN step."""
    _check_state(ctx, state)
    # lsnn_step detaches z in the reset and in the threshold jump b += beta z; the IR's ALIF detaches only the
    # reset (docs/semantics.md §5a), so the gradient through the jump is the IR's, not Norse's
    return _recurrent(ctx, m, x, lambda total, name: _lsnn(ctx, m, total, name=name, detach_reset=_DETACHED))


def constant_current_lif_encoder(ctx: Context, m: nn.Module, x: Any) -> Any:
    """ConstantCurrentLIFEncoder(seq_length): the static input current held for seq_length steps into a LIF
    without synaptic current (Norse's lif_current_encoder): v~ = v + dt/tau_mem ((v_leak - v) + I),
    z = [v~ - v_th > 0], v = v_reset after a spike; v starts at 0 (not v_leak)."""
    x = ctx.tensor(x)
    p = m.p
    k = _factor(m, p.tau_mem_inv)
    out = ctx.neuron(ctx.path, x, a=1 - k, k=k, theta=p.v_th, reset="to-value", v_reset=p.v_reset,
                     v_leak=p.v_leak, v_init=0.0)
    train(ctx, out, _surrogate(p), detach_reset=_THROUGH_SPIKE)
    return out


constant_current_lif_encoder.held_steps = lambda m: m.seq_length  # the recorder holds its input this long


def li_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """j = (1 - dt/tau_syn) j + I (an LI with unit gain); v = v + dt/tau_mem (v_leak - v + j) (a second LI)."""
    _check_state(ctx, state)
    x = ctx.tensor(x)
    p = m.p
    k_mem, k_syn = _factor(m, p.tau_mem_inv), _factor(m, p.tau_syn_inv)
    j = ctx.neuron(ctx.path + "_syn", x, a=1 - k_syn, k=1.0, spiking=False)
    v = ctx.neuron(ctx.path, j, a=1 - k_mem, k=k_mem, v_leak=p.v_leak, v_init=p.v_leak, spiking=False)
    return v, State(ctx.path, "state")


def li_linear_cell(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """LILinearCell: i_jump = i + W x, then the LICell dynamics (a Dense before the two LIs)."""
    _check_state(ctx, state)
    x = ctx.tensor(x)
    w = m.input_weights.detach().cpu().double().numpy()
    fwd = ctx.add(ctx.path + "_in", P.Dense(weight=np.ascontiguousarray(w)), x)
    return li_cell(ctx, m, fwd)


def sequential_state(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    _check_state(ctx, state)
    for name, child in m.named_children():
        out = ctx.convert_module(child, f"{ctx.path}.{name}" if ctx.path else name, x)
        x = out[0] if isinstance(out, tuple) else out
    return x, State(ctx.path or "(root)", "state")


sequential_state.carries_state = True  # the recording tracer follows its state like a neuron's


def lift(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Any:
    """Lift(module): the module applied to every step of a (T, B, ...) sequence (a cell carries its state)."""
    _check_state(ctx, state)
    if isinstance(x, tuple):  # (spikes, state) of a preceding LIF in an nn.Sequential: Lift drops the state
        x = x[0]
    lead = ctx.lead
    ctx.lead = 1
    try:
        return ctx.convert_module(m.lifted_module, f"{ctx.path}.lifted_module" if ctx.path else "lifted_module", x)
    finally:
        ctx.lead = lead


lift.takes_output_tuple = True  # the recorder passes it the spikes of a (spikes, state) tuple


def _lift_mode(m: nn.Module) -> str | None:
    return "multi" if m.is_stateful else None


def _single(m: nn.Module) -> str:
    return "single"


def _multi(m: nn.Module) -> str:
    return "multi"


def graph_hints(model: nn.Module) -> dict[str, Any]:
    """Norse's own step (seconds) as the graph's dt in ms, unless the user gives one."""
    for m in model.modules():
        if isinstance(m, tuple(MODULES)) and hasattr(m, "dt"):
            return {"dt": float(m.dt) * 1000.0, "scheme": "euler"}
    return {}


MODULES: dict[type, Entry] = {
    norse.LIFCell: Entry(lif_cell, _single),
    norse.LIF: Entry(lif_cell, _multi),
    norse.LIFBoxCell: Entry(lif_box_cell, _single),
    norse.LICell: Entry(li_cell, _single),
    norse.LI: Entry(li_cell, _multi),
    norse.LIFRecurrentCell: Entry(lif_recurrent_cell, _single),
    norse.LIFRecurrent: Entry(lif_recurrent_cell, _multi),
    norse.SequentialState: Entry(sequential_state),
    norse.LILinearCell: Entry(li_linear_cell, _single),
    norse.Lift: Entry(lift, _lift_mode),
    norse.LSNNCell: Entry(lsnn_cell, _single),
    norse.IAFCell: Entry(iaf_cell, _single),
    norse.IAF: Entry(iaf_cell, _multi),
    norse.LIBoxCell: Entry(li_box_cell, _single),
    norse.LSNN: Entry(lsnn_cell, _multi),
    norse.LSNNRecurrentCell: Entry(lsnn_recurrent_cell, _single),
    norse.LSNNRecurrent: Entry(lsnn_recurrent_cell, _multi),
    norse.ConstantCurrentLIFEncoder: Entry(constant_current_lif_encoder, lambda m: "encode"),
}

# Norse's neuron base classes: a cell without a converter is refused by name, never traced into
from norse.torch.module import snn as _snn  # noqa: E402

OPAQUE = (_snn.SNNCell, _snn.SNNRecurrentCell, _snn.SNN, _snn.SNNRecurrent)
