"""Custom autograd Functions for neuron recurrences over all T steps.

The executor applies synapses to every time step at once; what remains sequential
is the neuron recurrence. Running it as ordinary autograd ops would record ~5
nodes per step and save several tensors per step. These Functions run the loop
without autograd, save ONE (T, B, ...) tensor, and compute the gradient with a
linear backward recurrence of one fused op per step.

The forward operations are the ones docs/semantics.md prescribes, in the same
order as the reference interpreter (so float64 results are bit-identical).
"""

from __future__ import annotations

import math

import torch

__all__ = ["linear_scan", "spiking_scan"]

# elements per chunk of the backward pass's bulk work (surrogate, products): its scratch stays in cache
CHUNK_ELEMENTS = 1 << 18


def _cand(v: torch.Tensor, a, v_leak, out: torch.Tensor) -> torch.Tensor:
    """out = v_leak + a (v - v_leak), written as the interpreter orders it (a None: out = v)."""
    if a is None:
        out.copy_(v)
    elif v_leak is None:
        torch.mul(v, a, out=out)
    else:
        torch.sub(v, v_leak, out=out)
        out.mul_(a)
        out.add_(v_leak)
    return out


class _LinearScan(torch.autograd.Function):
    """y_t = v_leak + a (y_{t-1} - v_leak) + x_t with y_{-1} = y0 (a None: y_t = y_{t-1} + x_t)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y0: torch.Tensor, a, v_leak):  # type: ignore[override]
        T = x.shape[0]
        y = torch.empty_like(x)
        prev = y0.expand_as(x[0]).contiguous() if T else y0
        for t in range(T):
            _cand(prev, a, v_leak, y[t])
            y[t].add_(x[t])
            prev = y[t]
        ctx.a = a
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):  # type: ignore[override]
        a = ctx.a
        gx = torch.empty_like(gy)
        g = None
        for t in range(gy.shape[0] - 1, -1, -1):
            if g is None:
                gx[t].copy_(gy[t])
            elif a is None:
                torch.add(gy[t], g, out=gx[t])
            else:
                torch.add(gy[t], g * a, out=gx[t])
            g = gx[t]
        return gx, None, None, None


def linear_scan(x: torch.Tensor, y0: torch.Tensor, a=None, v_leak=None) -> torch.Tensor:
    """The leaky accumulation y_t = v_leak + a (y_{t-1} - v_leak) + x_t over axis 0 of `x` (T, B, ...).

    Args:
        x: input per step, (T, B, *shape).
        y0: value before step 0, broadcastable to (B, *shape).
        a: decay (tensor broadcastable to the shape, or None for no decay).
        v_leak: resting value (None: 0).
    Returns:
        y of the same shape as x; differentiable in x.
    """
    return _LinearScan.apply(x, y0, a, v_leak)


def _scalars(x: torch.Tensor, *cs):
    """Python-number coefficients as 0-dim tensors of x's dtype, for ops called once per step: a
    float32/float64 op casts a Python scalar to the tensor's dtype first, so the values are the same,
    but a 0-dim tensor skips the scalar's wrapping (~2.5 us of ~5 per small op on CPU, the loop-bound
    case). Half-precision ops compute a Python scalar in float32: there they stay numbers."""
    if x.dtype not in (torch.float32, torch.float64):
        return cs
    return tuple(torch.tensor(c, dtype=x.dtype, device=x.device) if isinstance(c, (int, float)) else c for c in cs)


def _zero_reset(reset: str, v_reset) -> bool:
    """A reset to the number 0: v = v* - s v* in one operation instead of a comparison into a bool
    mask, its copy into the spikes and a selection (3x faster on CPU). s is exactly 0 or 1, so s v* is
    exact and, for every finite v*, this is v* where s = 0 and v* - v* = +0 where s = 1: the selection's
    values (a -0 that does not spike becomes +0, equal under ==). Not finite: +inf spikes and gives NaN,
    as the reset n3ml.ir.neurons writes, v* (1 - s) + s v_reset, does; -inf gives NaN where both
    others keep -inf (an input of -inf)."""
    return reset == "to-value" and not isinstance(v_reset, torch.Tensor) and float(v_reset) == 0.0


def _spiking_loop(x, v0, a, v_leak, theta, reset, v_reset, vs, out=None):
    """Forward loop of the spiking scan; writes the candidate voltage v*_t into vs (T, B, ...) (what
    the backward pass needs: h = v* - theta is formed from it there, a chunk at a time, by the same
    subtraction) or, when vs is None (no gradient wanted), runs `_inference_loop`. Writes the spikes
    into `out` (may be x itself: x[t] is read before out[t] is written) or a new tensor. vs may be x
    itself too (v*_t is x_t plus the decayed voltage, written in place). Returns the spikes and the
    voltage after the last step (what a run streamed in time chunks carries on).

    Per LIF step: a v, + x_t, [v* > theta], v* - theta s: four operations; the spike test
    [v* > theta] is the same predicate as [v* - theta > 0] in IEEE arithmetic (see `_inference_loop`)."""
    T = x.shape[0]
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)  # x may be a held (stride-0) input
    if vs is None:
        return _inference_loop(x, v0, a, v_leak, theta, reset, v_reset, out)
    v = v0
    if T:
        v = v0.expand_as(x[0]).clone()
        c = torch.empty_like(v) if a is not None else None  # a (v - v_leak) + v_leak, before x_t is added
        th_t = isinstance(theta, torch.Tensor)
        neg_theta = -theta  # a number where theta is one (the alpha of an add)
        a, v_leak, theta = _scalars(x, a, v_leak, theta)
        zero = _zero_reset(reset, v_reset)
        sb = vr = None
        if reset == "to-value" and not zero:
            sb = torch.empty(v.shape, dtype=torch.bool, device=v.device)
            vr = torch.as_tensor(v_reset, dtype=x.dtype, device=x.device).expand_as(v).contiguous()
        xs, outs, cs = x.unbind(0), out.unbind(0), vs.unbind(0)  # per-step views made once, not per step
        for t in range(T):
            ct, st = cs[t], outs[t]
            if a is None:  # IF: v* = v + x_t in one operation
                torch.add(v, xs[t], out=ct)
            else:
                _cand(v, a, v_leak, c)
                torch.add(c, xs[t], out=ct)  # x_t is consumed: v*_t may overwrite it
            if sb is not None:
                torch.gt(ct, theta, out=sb)
                st.copy_(sb)
                torch.where(sb, vr, ct, out=v)  # (faster than masked_fill_ on CPU)
                continue
            torch.gt(ct, theta, out=st)
            if zero:
                torch.addcmul(ct, st, ct, value=-1.0, out=v)  # v* - s v*: see _zero_reset
            elif reset == "none":
                v = ct  # read, never written, by the next step
            elif th_t:  # v* - theta s: theta*s is exactly 0 or theta, so this equals v* - theta
                torch.addcmul(ct, st, neg_theta, out=v)
            else:
                torch.add(ct, st, alpha=neg_theta, out=v)
        if reset == "none":
            v = v.clone()  # not a view of vs, which the caller may overwrite
    return out, v


def _inference_loop(x, v0, a, v_leak, theta, reset, v_reset, out):
    """`_spiking_loop` without h (no gradient wanted): three passes over the state per IF step
    instead of four, in place. The same values: the spike is [v* > theta] instead of
    [v* - theta > 0], the same predicate in IEEE arithmetic (with gradual underflow the difference
    of two unequal floats is never 0; NaN compares false both ways), and the resets are the same
    operations on the same operands."""
    T = x.shape[0]
    if not T:
        return out, v0
    v = v0.expand_as(x[0]).clone()  # v* is formed in place in v
    c = torch.empty_like(v) if a is not None else None
    th_t = isinstance(theta, torch.Tensor)
    neg_theta = -theta  # a number where theta is one (the alpha of an add)
    a, v_leak, theta = _scalars(x, a, v_leak, theta)
    zero = _zero_reset(reset, v_reset)
    sb = vr = None
    if reset == "to-value" and not zero:
        sb = torch.empty(v.shape, dtype=torch.bool, device=v.device)
        vr = torch.as_tensor(v_reset, dtype=x.dtype, device=x.device).expand_as(v).contiguous()
    xs, outs = x.unbind(0), out.unbind(0)  # per-step views made once, not indexed step by step
    for t in range(T):
        if a is None:  # IF: v* = v + x_t
            v.add_(xs[t])
        else:
            _cand(v, a, v_leak, c)
            c.add_(xs[t])
            v, c = c, v
        st = outs[t]  # may be x[t] itself: x[t] was consumed above
        if sb is not None:
            torch.gt(v, theta, out=sb)
            st.copy_(sb)
            torch.where(sb, vr, v, out=v)
            continue
        torch.gt(v, theta, out=st)
        if zero:
            v.addcmul_(st, v, value=-1.0)  # v* - s v*: see _zero_reset
        elif reset == "none":
            continue
        elif th_t:  # v* - theta s: theta*s is exactly 0 or theta, so this equals v* - theta
            v.addcmul_(st, neg_theta)
        else:
            v.add_(st, alpha=neg_theta)
    return out, v


def _arctan(x, k, out):  # (k / 2) / (1 + (pi k / 2 x)^2)
    return torch.mul(x, math.pi * k / 2.0, out=out).square_().add_(1.0).reciprocal_().mul_(k / 2.0)


def _fast_sigmoid(x, k, out):  # 1 / (1 + k |x|)^2
    return torch.abs(x, out=out).mul_(k).add_(1.0).square_().reciprocal_()


def _triangle(x, k, out):  # k max(0, 1 - k |x|)
    return torch.abs(x, out=out).mul_(k).neg_().add_(1.0).clamp_(min=0.0).mul_(k)


# n3ml.nn.surrogate's derivatives written into a scratch buffer: the same operations, so the same values
# (tested bit for bit), without allocating several temporaries per chunk
_DERIVATIVES = {"arctan": _arctan, "fast_sigmoid": _fast_sigmoid, "triangle": _triangle}


def surrogate_derivative(spike, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """spike.derivative(x), written into `out` where the surrogate has an in-place form."""
    fn = _DERIVATIVES.get(getattr(spike, "name", None))
    if fn is None:
        return out.copy_(spike.derivative(x))
    return fn(x, spike.slope, out)


class _SpikingScan(torch.autograd.Function):
    """Membrane recurrence of IF/LIF/CubaLIF neurons without refractoriness, all steps in one Function.

    Per step: v* = v_leak + a (v - v_leak) + x_t; h = v* - theta; s = [h > 0];
    reset: subtract -> v = v* - theta s; to-value -> v = v_reset where s; none -> v = v*.
    Saves only v* (T, B, ...), written over x when the caller owns x (`inplace`). The
    gradient treats the reset as differentiable through the spike (v = v* - theta s,
    resp. v = v* (1 - s) + v_reset s) unless `detach` holds s constant there, exactly as
    autograd does on the step-by-step form (n3ml.ir.neurons.step).

    Large fresh allocations cost more than the arithmetic on CPU (page faults), so the
    loop writes into preallocated buffers, and the backward pass works in cache-sized
    chunks of steps.
    """

    @staticmethod
    def forward(ctx, x, v0, a, v_leak, theta, reset, v_reset, spike, inplace, detach):  # type: ignore[override]
        vs = x if inplace else torch.empty_like(x)
        out, _ = _spiking_loop(x, v0, a, v_leak, theta, reset, v_reset, vs)
        if inplace:
            ctx.mark_dirty(x)
        ctx.mark_non_differentiable(vs)
        ctx.set_materialize_grads(False)  # v* gets no gradient: do not fill a (T, B, ...) zero tensor for it
        ctx.save_for_backward(vs)
        ctx.cfg = (a, theta, reset, v_reset, spike, detach)
        return out, vs

    @staticmethod
    def backward(ctx, gs: torch.Tensor, _gvs):  # type: ignore[override]
        (vs,) = ctx.saved_tensors
        if gs is None:
            return (None,) * 10
        gx, _ = scan_backward(vs, gs, ctx.cfg, out=None if _graph_kept() else vs)
        return gx, None, None, None, None, None, None, None, None, None


def _graph_kept() -> bool:
    """Whether the running backward pass keeps the graph (retain_graph=True): then the saved v* must
    survive it. Otherwise the gradient is written over v* (each step's v* is read before that step's
    gradient is written): one (T, B, ...) buffer fewer -- a fresh buffer of that size is page-faulted
    in anew at every training step on CPU (measured: ~4800 faults, 20 ms of system time per step at
    N=256, T=1000), a reused one is not. Where torch does not say, the graph counts as kept."""
    get = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if get is None else bool(get())


def scan_backward(vs: torch.Tensor, gs: torch.Tensor, cfg: tuple, g=None, out: torch.Tensor | None = None):
    """dL/dx (T, B, ...) of the spiking scan from the candidate voltages v* and dL/ds, walking back
    from step T-1. `g` is dL/dv*_T coming from later steps (None: there are none); returns (dL/dx,
    dL/dv*_0), the latter to hand on to the steps before these (a scan run in time chunks, backward in
    reverse order, computes exactly the same values as one backward over all steps). dL/dx is written
    into `out` when given -- which may be vs itself: each chunk's v* are read before its gradients
    are written."""
    a, theta, reset, v_reset, spike, detach = cfg
    T = vs.shape[0]
    gx = torch.empty_like(vs) if out is None else out
    if T == 0:
        return gx, g
    chunk = min(T, max(1, CHUNK_ELEMENTS // max(1, vs[0].numel())))
    # scratch for one chunk, reused: fresh (T, B, ...)-sized allocations cost page faults on CPU
    buf_sg, buf_p = torch.empty_like(vs[:chunk]), torch.empty_like(vs[:chunk])
    to_value, zero = reset == "to-value", _zero_reset(reset, v_reset)
    buf_m = torch.empty_like(vs[:chunk]) if to_value else None
    buf_r = torch.empty_like(vs[:chunk]) if to_value and not (zero or detach) else None
    # subtract: m = a (1 - theta s') in two passes, s' (-a theta) + a, coefficients formed once
    ma, mc = (1.0, -theta) if a is None else (a, -(a * theta))
    gxs = gx.unbind(0)  # per-step views made once
    for t1 in range(T, 0, -chunk):
        t0 = max(0, t1 - chunk)
        n = t1 - t0
        vc = vs[t0:t1]
        if to_value:  # 1 - s = [v* <= theta], the negation of the forward's spike test, as 1.0 / 0.0
            m = torch.le(vc, theta, out=buf_m[:n])
        hc = torch.sub(vc, theta, out=buf_sg[:n])  # h = v* - theta: the forward's subtraction
        sg = surrogate_derivative(spike, hc, buf_sg[:n])  # ds/dv* at every step of the chunk, over h
        p = torch.mul(gs[t0:t1], sg, out=buf_p[:n])  # direct path: loss -> s_t -> v*_t
        # m_t = dv*_{t+1}/dv*_t = a * dv_t/dv*_t
        if reset == "none" or (reset == "subtract" and detach):
            m = a  # dv/dv* = 1 (None: no decay either)
        elif reset == "subtract":
            m = sg.mul_(mc).add_(ma)
        else:  # to-value: v = v* (1 - s) + v_reset s -> dv/dv* = (1 - s) + (v_reset - v*) s' (s' = 0 detached)
            if zero and not detach:
                m.addcmul_(vc, sg, value=-1.0)
            elif not detach:
                m.addcmul_(torch.neg(vc, out=buf_r[:n]).add_(v_reset), sg)  # -v* + v_reset = v_reset - v*
            m = m.mul_(a) if a is not None else m
        ps = p.unbind(0)
        ms = m.unbind(0) if isinstance(m, torch.Tensor) and m.dim() == vs.dim() else None
        for t in range(t1 - 1, t0 - 1, -1):
            j = t - t0
            if g is None:
                gxs[t].copy_(ps[j])
            elif m is None:
                torch.add(ps[j], g, out=gxs[t])
            elif not isinstance(m, torch.Tensor):
                torch.add(ps[j], g, alpha=m, out=gxs[t])
            else:
                torch.addcmul(ps[j], g, m if ms is None else ms[j], out=gxs[t])
            g = gxs[t]
    return gx, g


def spiking_scan(x: torch.Tensor, v0: torch.Tensor, *, a=None, v_leak=None, theta, reset: str, v_reset=0.0,
                 spike, inplace: bool = False, detach_reset: bool = False, final: list | None = None) -> torch.Tensor:
    """Spikes (T, B, ...) of IF/LIF-type neurons driven by the (already scaled) input x (T, B, ...).

    Args:
        x: per-step input term added to the candidate voltage.
        v0: initial voltage, broadcastable to (B, ...).
        a: decay per step (None for IF); v_leak: resting voltage (None: 0).
        theta: threshold; reset: "subtract", "to-value" or "none"; v_reset: value after a spike.
        spike: a surrogate spike function with `.derivative(x)` (n3ml.nn.spike_fn).
        inplace: x is a temporary of the caller's; its storage is reused (saves one (T, B, ...) buffer).
        detach_reset: no gradient through the reset (the spike in v* - theta s, v* (1 - s) + v_reset s
            counts as a constant), as n3ml.ir.neurons.step with the neuron's `detach_reset`.
        final: inference only: a list that receives the voltage after the last step (B, ...).
    """
    if not (torch.is_grad_enabled() and x.requires_grad):  # inference: nothing to save
        out, v = _spiking_loop(x, v0, a, v_leak, theta, reset, v_reset, None, x if inplace else None)
        if final is not None:
            final.append(v)
        return out
    if final is not None:
        raise ValueError("the final voltage is returned in inference only (streamed runs)")
    return _SpikingScan.apply(x, v0, a, v_leak, theta, reset, v_reset, spike, inplace, detach_reset)[0]
