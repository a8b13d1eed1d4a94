"""Per-primitive implementations of the torch executor, dispatched through `IMPLS` (`@impl(Dense)`).

Every implementation is a small `nn.Module` built from one IR node. It computes the node's
output over ALL time steps at once (`bulk`, tensors (T, B, *shape)) and, for nodes on a
cycle, one step at a time (`step`, tensors (B, *shape)). Stateless operations are written
once over a leading "batch-like" axis, so `bulk` folds (T, B) into T*B and runs a single
matmul/conv for the whole run.

Values follow the reference interpreter's dtypes: the compute dtype (float64 or float32),
or int64 in fixed-point mode, where operations that the interpreter performs in floating
point (a float Scale factor, ConstantCurrent, AvgPool2d, ...) give float64.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import N3mlError, UnsupportedError
from ...ir import neurons as N
from ...ir import prims as P
from ...ir.types import PortType
from ...nn.functional import TORCH
from ...nn.surrogate import spike_fn
from .scan import linear_scan, spiking_scan

IMPLS: dict[type[P.Primitive], type["OpImpl"]] = {}

# numpy dtype kinds that are not real numbers: torch refuses some deep inside (datetime, strings) and silently
# drops the imaginary part of complex ones, so they are refused where arrays become tensors
_NOT_NUMBERS = {"c": "complex", "U": "string", "S": "bytes", "O": "Python object", "M": "datetime",
                "m": "timedelta", "V": "structured"}


def numeric_array(a, what: str = "array") -> np.ndarray:
    """`a` as a numpy array of real numbers in native byte order (values unchanged); N3mlError otherwise."""
    x = np.asarray(a)
    if x.dtype.kind in _NOT_NUMBERS:
        raise N3mlError(f"{what} holds {_NOT_NUMBERS[x.dtype.kind]} values (dtype {x.dtype}); the torch engine "
                        "computes with real numbers")
    return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))  # big-endian: same values, exactly


def impl(*prims: type[P.Primitive]) -> Callable[[type["OpImpl"]], type["OpImpl"]]:
    """Register an implementation class for the given primitive types."""

    def deco(cls):
        for p in prims:
            IMPLS[p] = cls
        return cls

    return deco


@dataclass
class Ctx:
    """Compile-time options shared by all implementations."""

    device: torch.device
    dtype: torch.dtype  # dtype of values: float32/float64, or int64 in fixed-point mode
    fixed: bool
    spike: Any  # surrogate spike function overriding the neurons' own (None: each neuron's surrogate, slope)
    dt: float
    scheme: str

    @property
    def fdtype(self) -> torch.dtype:
        """dtype of values that are not integers (float64 in fixed-point mode, like the interpreter)."""
        return torch.float64 if self.fixed else self.dtype

    def tensor(self, a, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(numeric_array(a), dtype=dtype or self.dtype, device=self.device)


@dataclass
class RunCtx:
    """Per-call data: sizes, inputs, caches.

    A run streamed in time chunks (`Executor.forward(chunk=...)`) makes one RunCtx per chunk: `T`
    is the chunk's length, `t0` its first step, and `carry` (shared by all chunks) holds what a
    stateful node hands from one chunk to the next (neuron state, Delay buffer, random stream).
    `carry` is None in an ordinary run, where every node sees all steps at once.
    """

    T: int
    B: int
    data: dict[str, torch.Tensor]
    cache: dict[str, Any] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)  # nodes that may overwrite their input sequence
    t0: int = 0
    carry: dict[str, Any] | None = None

    def carried(self, node: str) -> dict | None:
        """The dict a stateful node keeps across time chunks (None when the run is not streamed)."""
        return None if self.carry is None else self.carry.setdefault(node, {})


def as_float(x: torch.Tensor, ctx: Ctx) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(ctx.fdtype)


def held_in_time(x: torch.Tensor) -> bool:
    """`x` (T, B, ...) is one (B, ...) value expanded over T > 1 steps (stride 0 along time): an input
    held constant, as the conversion report feeds it, and what per-step functions compute from it."""
    return x.dim() > 0 and x.shape[0] > 1 and x.stride(0) == 0


def writable(x: torch.Tensor) -> bool:
    """An owned sequence may be overwritten in place unless it is a value expanded over time."""
    return not held_in_time(x)


class OpImpl(nn.Module):
    """Base of all implementations. `stateful` ones keep per-step state in cycles."""

    stateful = False
    # the output at step t is a function of the inputs at step t alone (no state, no randomness, no
    # shift in time): inputs held constant over time give an output held constant, computed once
    per_step = False

    def __init__(self, name: str, prim: P.Primitive, ctx: Ctx, in_types: list[PortType], out_type: PortType):
        super().__init__()
        self.node = name
        self.prim = prim
        self.ctx = ctx
        self.out_type = out_type

    # the whole run at once: xs are (T, B, *shape)
    def bulk(self, xs: list[torch.Tensor], run: RunCtx, states: dict | None) -> torch.Tensor:
        T, B = run.T, run.B
        flat = [x.reshape(T * B, *x.shape[2:]) for x in xs]
        y = self.apply(flat)
        return y.reshape(T, B, *y.shape[1:])

    def _bulk_temporary(self, xs, run):
        """`bulk` for operations whose backward keeps neither their output nor a view of it
        (convolution, pools): the (T, B, ...) result is not an autograd view of the (T*B, ...)
        one, so a reader that owns it (a batch-norm or neuron writing in place) does not make
        autograd copy the whole base tensor back and forth in the backward pass (CopySlices)."""
        T, B = run.T, run.B
        y = self.apply([x.reshape(T * B, *x.shape[2:]) for x in xs])
        if torch.is_grad_enabled() and y.requires_grad and y.is_contiguous():
            return torch.ops.aten._unsafe_view(y, (T, B, *y.shape[1:]))  # what torch.matmul does for F.linear
        return y.reshape(T, B, *y.shape[1:])

    # one step: xs are (B, *shape)
    def init_state(self, run: RunCtx) -> Any:
        return None

    def step(self, xs: list[torch.Tensor], t: int, state: Any, run: RunCtx, states: dict | None) -> torch.Tensor:
        return self.apply(xs)

    def apply(self, xs: list[torch.Tensor]) -> torch.Tensor:  # stateless ops over (N, *shape)
        raise NotImplementedError

    def to_prim(self) -> P.Primitive:
        """The IR primitive with the current (possibly trained) parameters."""
        return self.prim


# ---------------------------------------------------------------------- I/O


@impl(P.Input)
class InputImpl(OpImpl):
    def bulk(self, xs, run, states):
        x = run.data[self.node]
        if held_in_time(x) and x.dtype != self.ctx.dtype:  # convert the one held value, not T copies
            return x[:1].to(self.ctx.dtype).expand(x.shape)
        return x.to(self.ctx.dtype)

    def step(self, xs, t, state, run, states):
        return run.data[self.node][t].to(self.ctx.dtype)


@impl(P.Output)
class OutputImpl(OpImpl):
    def bulk(self, xs, run, states):
        # a value held over time (an output computed once from a held input) is handed out as a
        # sequence of its own, which callers may write to
        return xs[0].contiguous() if held_in_time(xs[0]) else xs[0]

    def apply(self, xs):
        return xs[0]


# ----------------------------------------------------------------- synapses


def _int_bound(w: np.ndarray) -> float:
    """Largest possible |output| per unit |input| of an integer synapse (for exact float64 fallbacks)."""
    return float(np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).sum(axis=1).max(initial=0.0))


class _Weighted(OpImpl):
    """Synapse with trainable `weight` and optional `bias` parameters."""
    per_step = True


    def __init__(self, name, prim, ctx, in_types, out_type):
        super().__init__(name, prim, ctx, in_types, out_type)
        self.int_weights = ctx.fixed
        self.np_dtype = prim.weight.dtype
        self.weight = nn.Parameter(ctx.tensor(prim.weight), requires_grad=not ctx.fixed)
        self.bias = None if prim.bias is None else nn.Parameter(ctx.tensor(prim.bias), requires_grad=not ctx.fixed)
        self._bound = _int_bound(np.asarray(prim.weight, dtype=np.int64)) if ctx.fixed else 0.0

    def _lin(self, fn, x):
        if not self.int_weights:
            return fn(x, self.weight, self.bias)
        x = x.to(torch.int64)
        if x.device.type == "cpu":
            return fn(x, self.weight, self.bias)
        # CUDA has no integer matmul/conv: float64 is exact while every sum stays below 2**53
        big = float(x.abs().max()) * self._bound + (0 if self.bias is None else float(self.bias.abs().max()))
        if big >= 2.0**53:
            raise UnsupportedError(f"integer sums up to {big:.3g} exceed the exact float64 range on {x.device}")
        b = None if self.bias is None else self.bias.double()
        return fn(x.double(), self.weight.double(), b).round().to(torch.int64)

    def to_prim(self):
        w = self.weight.detach().cpu().numpy()
        changes = {"weight": w.astype(self.np_dtype) if self.int_weights else w.astype(np.float64)}
        if self.bias is not None:
            b = self.bias.detach().cpu().numpy()
            changes["bias"] = b.astype(self.prim.bias.dtype) if self.int_weights else b.astype(np.float64)
        return dataclasses.replace(self.prim, **changes)


@impl(P.Dense)
class DenseImpl(_Weighted):
    def bulk(self, xs, run, states):
        return self._lin(F.linear, xs[0])  # F.linear takes any leading axes: one GEMM over T*B rows

    def apply(self, xs):
        return self._lin(F.linear, xs[0])


@impl(P.Conv2d, P.Conv1d)
class ConvImpl(_Weighted):
    def __init__(self, name, prim, ctx, in_types, out_type):
        super().__init__(name, prim, ctx, in_types, out_type)
        conv = F.conv2d if isinstance(prim, P.Conv2d) else F.conv1d
        opts = dict(stride=prim.stride, padding=prim.padding, dilation=prim.dilation, groups=prim.groups)
        self._fn = lambda x, w, b: conv(x, w, b, **opts)

    def bulk(self, xs, run, states):
        return self._bulk_temporary(xs, run)

    def apply(self, xs):
        return self._lin(self._fn, xs[0])


def _max_windows(x: torch.Tensor, k: tuple[int, int]) -> torch.Tensor:
    """Max over non-overlapping kh x kw windows (stride = kernel, no padding) of (N, C, H, W), as
    element-wise maxima of strided views: rows of each window first, then its columns. The same values
    as F.max_pool2d (torch.maximum propagates NaN as it does; windows past the edge are dropped, its
    floor mode), without its per-plane NCHW kernel: ~5x faster on CPU for 2 x 2 windows."""
    n, c, h, w = x.shape
    kh, kw = k
    h2, w2 = h // kh, w // kw
    if kh == kw == 1:
        return x.clone()  # a new tensor, as max_pool2d's (its readers may write in place)
    rows = x[:, :, : h2 * kh, : w2 * kw].reshape(n, c, h2, kh, w2 * kw)
    y = rows[:, :, :, 0]
    for i in range(1, kh):
        y = torch.maximum(y, rows[:, :, :, i], out=y if i > 1 else None)
    cols = y.reshape(n, c, h2, w2, kw)
    z = cols[..., 0]
    for j in range(1, kw):
        z = torch.maximum(z, cols[..., j], out=z if j > 1 else None)
    return z.contiguous() if kw == 1 else z


def _fast_max_pool(p: P.MaxPool2d, x: torch.Tensor) -> bool:
    """`_max_windows` applies: non-overlapping windows without padding, no gradient wanted, on CPU
    (CUDA's max_pool2d is fast). Training keeps max_pool2d: a backward pass routing each window's
    gradient to its first maximum through strided views was measured slower than max_pool2d's
    forward with indices plus its backward (53 vs 36 ms at 64 x 128 x 28 x 28)."""
    return (p.stride_ == p.kernel and p.padding == (0, 0) and x.device.type == "cpu" and x.dim() == 4
            and not (torch.is_grad_enabled() and x.requires_grad))


@impl(P.SumPool2d, P.AvgPool2d, P.MaxPool2d)
class PoolImpl(OpImpl):
    per_step = True

    def bulk(self, xs, run, states):
        return self._bulk_temporary(xs, run)

    def apply(self, xs):
        (x,) = xs
        p = self.prim
        k, s, pad = p.kernel, p.stride_, p.padding
        if x.is_floating_point():
            if isinstance(p, P.MaxPool2d):
                if _fast_max_pool(p, x):
                    return _max_windows(x, tuple(k))
                return F.max_pool2d(x, k, s, pad)  # implicit -inf padding
            if isinstance(p, P.AvgPool2d):
                return F.avg_pool2d(x, k, s, pad, count_include_pad=True)
            return F.avg_pool2d(x, k, s, pad, count_include_pad=True, divisor_override=1)
        # integer values (fixed-point mode): explicit windows, as the interpreter
        fill = torch.iinfo(x.dtype).min if isinstance(p, P.MaxPool2d) else 0
        xp = F.pad(x, (pad[1], pad[1], pad[0], pad[0]), value=fill)
        win = xp.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])
        if isinstance(p, P.MaxPool2d):
            return win.amax(dim=(-2, -1))
        total = win.sum(dim=(-2, -1))
        if isinstance(p, P.AvgPool2d):
            return total.to(torch.float64) / (k[0] * k[1])
        return total


@impl(P.Flatten)
class FlattenImpl(OpImpl):
    per_step = True

    def apply(self, xs):
        return xs[0].reshape(xs[0].shape[0], -1)


@impl(P.Scale)
class ScaleImpl(OpImpl):
    per_step = True

    def __init__(self, name, prim, ctx, in_types, out_type):
        super().__init__(name, prim, ctx, in_types, out_type)
        f = np.asarray(prim.factor)
        self.int_factor = f.dtype.kind in "iu"
        dt = torch.int64 if (ctx.fixed and self.int_factor) else ctx.fdtype
        self.register_buffer("factor", ctx.tensor(f, dt))

    def apply(self, xs):
        x = xs[0]
        if self.ctx.fixed and not self.int_factor:
            x = x.to(torch.float64)
        return x * self.factor


@impl(P.Add)
class AddImpl(OpImpl):
    per_step = True

    def bulk(self, xs, run, states):
        x0 = xs[0]
        if (self.node in run.owned and writable(x0) and x0.is_floating_point()
                and all(x.dtype == x0.dtype and x.shape == x0.shape for x in xs[1:])):
            # the first input is a temporary nobody else reads (a convolution's output in a residual
            # block): the same additions in the same order, into it -- no new (T, B, ...) buffer
            for x in xs[1:]:
                x0.add_(x)
            return x0
        return self.apply(xs)

    def apply(self, xs):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


@impl(P.Concat)
class ConcatImpl(OpImpl):
    per_step = True

    def apply(self, xs):
        return torch.cat(xs, dim=self.prim.axis + 1)


@impl(P.ReLU)
class ReLUImpl(OpImpl):
    per_step = True

    def bulk(self, xs, run, states):
        return torch.relu(xs[0])

    def apply(self, xs):
        return torch.relu(xs[0])


@impl(P.BatchNorm)
class BatchNormImpl(OpImpl):
    per_step = True

    def __init__(self, name, prim, ctx, in_types, out_type):
        super().__init__(name, prim, ctx, in_types, out_type)
        k = prim.gamma / np.sqrt(prim.var + prim.eps)  # in numpy float64, as the interpreter
        shp = (-1,) + (1,) * (len(in_types[0].shape) - 1)
        self.register_buffer("mean", ctx.tensor(prim.mean.reshape(shp), ctx.fdtype))
        self.register_buffer("k", ctx.tensor(k.reshape(shp), ctx.fdtype))
        self.register_buffer("beta", ctx.tensor(prim.beta.reshape(shp), ctx.fdtype))

    def bulk(self, xs, run, states):
        x = xs[0]
        if self.node in run.owned and x.is_floating_point() and x.dtype == self.k.dtype and writable(x):
            # the input is a temporary nobody else reads (a convolution's output): the same three
            # roundings, in place -- no new (T, B, ...) buffers (autograd needs none of these values)
            return x.sub_(self.mean).mul_(self.k).add_(self.beta)
        return self.apply(xs)

    def apply(self, xs):
        return (as_float(xs[0], self.ctx) - self.mean) * self.k + self.beta


@impl(P.Softmax)
class SoftmaxImpl(OpImpl):
    per_step = True

    def apply(self, xs):
        x = as_float(xs[0], self.ctx)
        d = self.prim.axis + 1
        e = torch.exp(x - x.amax(dim=d, keepdim=True))
        return e / e.sum(dim=d, keepdim=True)


@impl(P.Delay)
class DelayImpl(OpImpl):
    """Outside cycles a Delay is a shift along time; inside cycles the executor keeps its buffer."""

    def bulk(self, xs, run, states):
        x = xs[0].to(self.ctx.dtype)
        if self.prim.detach:  # training rule only: the values are the same
            x = x.detach()
        d = self.prim.steps
        if d == 0:
            return x if self.prim.detach else xs[0]
        carry = run.carried(self.node)
        if carry is not None:  # streamed: the last d input steps of earlier chunks come first
            past = carry.get("past")
            seq = torch.cat([torch.zeros_like(x[:1]).expand(d, *x.shape[1:]) if past is None else past, x], dim=0)
            carry["past"] = seq[seq.shape[0] - d:].clone()
            return seq[: run.T]
        if d >= run.T:
            return torch.zeros_like(x)
        return torch.cat([torch.zeros_like(x[:d]), x[: run.T - d]], dim=0)

    def apply(self, xs):  # steps == 0 inside a cycle
        return xs[0].detach() if self.prim.detach else xs[0]


# ----------------------------------------------------------------- encoders


@impl(P.ConstantCurrent)
class ConstantCurrentImpl(OpImpl):
    per_step = True

    def apply(self, xs):
        return self.prim.scale * as_float(xs[0], self.ctx) + self.prim.offset


@impl(P.PoissonRate)
class PoissonImpl(OpImpl):
    """The random stream is numpy's PCG64(seed), drawn once for the whole (T, B, *shape) array."""

    def _noise(self, run: RunCtx) -> torch.Tensor:
        key = f"noise/{self.node}"
        if key not in run.cache:
            carry = run.carried(self.node)
            if carry is None:
                rng = np.random.default_rng(self.prim.seed)
            else:  # streamed: each chunk draws the next T*B*size values of the one stream, the same numbers
                rng = carry.get("rng")
                if rng is None:
                    rng = carry["rng"] = np.random.default_rng(self.prim.seed)
            u = rng.random((run.T, run.B, *self.out_type.shape))
            run.cache[key] = torch.as_tensor(u, device=self.ctx.device)
        return run.cache[key]

    def _spikes(self, x, u):
        prob = torch.clamp(self.prim.gain * x.to(torch.float64), 0.0, 1.0)  # float64 like the interpreter
        return (u < prob).to(self.ctx.dtype)

    def bulk(self, xs, run, states):
        return self._spikes(xs[0], self._noise(run))

    def step(self, xs, t, state, run, states):
        return self._spikes(xs[0], self._noise(run)[t])


@impl(P.Latency)
class LatencyImpl(OpImpl):
    stateful = True

    def _spikes(self, x0, tmod):
        w = self.prim.window
        ts = torch.floor((1.0 - x0) * (w - 1) + 0.5)
        return ((ts == tmod) & (x0 > self.prim.x_min)).to(self.ctx.dtype)

    def bulk(self, xs, run, states):
        w = self.prim.window
        t = torch.arange(run.t0, run.t0 + run.T, device=xs[0].device)
        carry = run.carried(self.node)
        if carry is None:
            x0 = torch.clamp(xs[0].to(torch.float64)[(t // w) * w], 0.0, 1.0)
        else:  # streamed: a window may have started in an earlier chunk (its sample is carried)
            x = torch.clamp(xs[0].to(torch.float64), 0.0, 1.0)
            past = carry.get("x", torch.zeros_like(x[0]))
            x0 = torch.cat([past[None], x])[((t // w) * w - run.t0 + 1).clamp(min=0)]
            if run.T:
                carry["x"] = x0[-1].clone()
        tmod = (t % w).to(torch.float64).reshape(-1, *([1] * (x0.dim() - 1)))
        return self._spikes(x0, tmod)

    def init_state(self, run):
        return {}

    def step(self, xs, t, state, run, states):
        t = run.t0 + t  # the window is counted from the run's first step, not the chunk's
        if t % self.prim.window == 0:
            state["x"] = torch.clamp(xs[0].to(torch.float64), 0.0, 1.0)
        return self._spikes(state["x"], float(t % self.prim.window))


# ------------------------------------------------------------------ neurons


class NeuronImpl(OpImpl):
    """Every neuron primitive, following the stage order of docs/semantics.md §5.

    `step` is `n3ml.ir.neurons.step` on torch tensors -- the interpreter's own update --
    differentiable through the neuron's surrogate spike function, with the reset detached or
    not as the primitive says. `bulk` runs a fused custom-autograd scan when the neuron allows
    it (`_FAST`, tested against `step` bit for bit), else loops `step` over time.
    """

    stateful = True

    def __init__(self, name, prim, ctx, in_types, out_type):
        if isinstance(prim, (P.FixedCubaLIF, P.FixedSynapseFilter)) and not ctx.fixed:
            raise UnsupportedError(f"node `{name}`: {prim.op} runs in fixed-point mode only (fixed=True)")
        super().__init__(name, prim, ctx, in_types, out_type)
        self.shape = tuple(out_type.shape)
        self.size = int(np.prod(self.shape))
        self.sdtype = torch.int64 if ctx.fixed else ctx.dtype  # state dtype
        self.np_sdtype = np.int64 if ctx.fixed else np.float64
        self._consts: dict[str, Any] = {}
        self.spiking = prim.spiking
        self.R = prim.refractory if prim.spiking else 0
        # the coefficients as the interpreter holds them: in the state dtype, r g formed from converted values
        k = N.discretize(prim, ctx.dt, ctx.scheme, param=lambda f, v: self.per(v),
                         factor=lambda f, tau, formula: self.per(formula(np.asarray(tau, np.float64))))
        for f in N.ARRAYS:
            if getattr(k, f) is not None:
                self.const(f, getattr(k, f))
        spike = None  # integers: the strict step
        if prim.spiking and not ctx.fixed:
            spike = ctx.spike or spike_fn(prim.surrogate, prim.slope)
        self.spike = spike
        self._k = k._replace(spike=spike, **{f: None for f in N.ARRAYS})  # the rules; values come from c()

    def const(self, key: str, value) -> Any:
        """A neuron coefficient as the interpreter holds it (np.asarray(v, state dtype)): a Python
        scalar, or a per-neuron tensor shaped like the port."""
        a = np.asarray(value, dtype=self.np_sdtype)
        if a.ndim and a.size == self.size and self.size > 1:
            self.register_buffer("c_" + key, self.ctx.tensor(a.reshape(self.shape), self.sdtype))
            self._consts[key] = None
        else:
            self._consts[key] = a.reshape(-1)[0].item() if a.size == 1 else a.item()
        return self.c(key)

    def per(self, value) -> np.ndarray:
        a = np.asarray(value, dtype=self.np_sdtype)
        return a.reshape(self.shape) if a.ndim and a.size == self.size else a

    def c(self, key: str) -> Any:
        v = self._consts[key]
        return getattr(self, "c_" + key) if v is None else v

    def is_zero(self, key: str) -> bool:
        v = self._consts[key]
        return v is not None and v == 0

    def coefficients(self) -> N.Discrete:
        """The neuron's `Discrete` with this module's current buffers (they follow .to(device))."""
        return self._k._replace(**{f: self.c(f) for f in self._consts})

    # ---- per-step
    def init_state(self, run):
        shape = (run.B, *self.shape)
        dev = self.ctx.device
        v0 = self.c("v_init")
        v = (v0.expand(shape).clone() if isinstance(v0, torch.Tensor)
             else torch.full(shape, v0, dtype=self.sdtype, device=dev))
        z = torch.zeros(shape, dtype=self.sdtype, device=dev)
        cnt = torch.zeros(shape, dtype=torch.int64, device=dev) if self.R else None
        return {"st": N.State(v=v, i=z, b=z, c=cnt)}

    def step(self, xs, t, holder, run, states):
        out, st = N.step(TORCH, self.coefficients(), holder["st"], xs[0])
        if st.v.dtype != self.sdtype:  # a float factor in integer mode: the state stays integer
            st = st._replace(v=st.v.to(self.sdtype))
        holder["st"] = st
        if states is not None:
            for k in N.STATE_NAMES[self._k.kind]:
                states.setdefault(k, []).append(getattr(st, k))
        return out

    # ---- all steps
    def bulk(self, xs, run, states):
        carry = run.carried(self.node)  # streamed runs: the state after the previous chunk
        fast = _FAST.get(self._k.kind)
        if fast is not None and states is None and not self.ctx.fixed and (not self.spiking or self.R == 0):
            return fast(self, xs[0], self.node in run.owned and writable(xs[0]), carry)
        if run.T == 0:
            return torch.zeros_like(xs[0], dtype=self.sdtype)
        holder = carry["holder"] if carry and "holder" in carry else self.init_state(run)
        if carry is not None:
            carry["holder"] = holder
        rec: dict | None = {} if states is not None else None
        # unbind, not x[t]: indexing a sequence that needs gradients makes the backward O(T^2)
        out = torch.stack([self.step([xt], t, holder, run, rec) for t, xt in enumerate(xs[0].unbind(0))])
        if states is not None:
            for k, v in rec.items():
                states[k] = torch.stack(v)
        return out

    # shared by the fused forms
    def _v0(self, carry=None):
        if carry and "v" in carry:
            return carry["v"]
        return torch.as_tensor(self.c("v_init"), dtype=self.sdtype, device=self.ctx.device)

    @staticmethod
    def _keep_last(carry, key, y):
        """Carry the last step of a linear scan's output to the next chunk (streamed runs)."""
        if carry is not None and y.shape[0]:
            carry[key] = y[-1].clone()  # a copy: the sequence may be overwritten by its reader
        return y

    def _leak(self):
        return None if self.is_zero("v_leak") else self.c("v_leak")

    def _scaled(self, key, x, owned):
        """(c x, whether the result is a temporary of ours)."""
        k = self._consts[key]
        return (x, owned) if (k is not None and k == 1) else (x * self.c(key), True)

    def chunk_scan(self):
        """(prep, (v0, scan options)) for lean mode's time-chunked segments, or None when this neuron
        does not run the spiking scan (n3ml.backends.torch.lean.chunked_segment)."""
        if self._k.kind not in ("IF", "LIF") or not self.spiking or self.R or self.ctx.fixed:
            return None
        a = self.c("a") if self._k.kind == "LIF" else None
        kw = dict(a=a, v_leak=self._leak() if "v_leak" in self._consts else None, theta=self.c("theta"),
                  reset=self._k.reset, v_reset=self.c("v_reset"), spike=self.spike, detach=self._k.detach_reset)
        if self._k.kind == "LIF":
            return (lambda x: self._scaled("rg", x, False)[0]), (self._v0(), kw)
        return (lambda x: x), (self._v0(), kw)

    def _spiking_fast(self, xin, owned, a, carry=None):
        final = None if carry is None else []
        out = spiking_scan(xin, self._v0(carry), a=a, v_leak=self._leak() if "v_leak" in self._consts else None,
                           theta=self.c("theta"), reset=self._k.reset, v_reset=self.c("v_reset"),
                           spike=self.spike, inplace=owned, detach_reset=self._k.detach_reset, final=final)
        if carry is not None:
            carry["v"] = final[0]
        return out


IMPLS.update({p: NeuronImpl for p in (P.IF, P.LIF, P.LI, P.Integrator, P.CubaLIF, P.ALIF, P.FixedCubaLIF,
                                      P.SynapseFilter, P.FixedSynapseFilter)})


# The fused scans (scan.py): the same operations as n3ml.ir.neurons.step, all steps at once, for neurons
# without refractoriness (ALIF and FixedCubaLIF always step).


# `carry` is None, or (runs streamed in time chunks) the dict holding the state after the previous chunk.


def _fast_if(self, x, owned, carry):
    return self._spiking_fast(x, owned, None, carry)


def _fast_lif(self, x, owned, carry):
    xin, owned = self._scaled("rg", x, owned)
    if not self.spiking:
        return self._keep_last(carry, "v", linear_scan(xin, self._v0(carry), self.c("a"), self._leak()))
    return self._spiking_fast(xin, owned, self.c("a"), carry)


def _fast_integrator(self, x, owned, carry):
    return self._keep_last(carry, "v", linear_scan(self.c("rg") * x, self._v0(carry), None, None))


def _fast_cuba_lif(self, x, owned, carry):
    # the synaptic current ignores spikes and refractoriness: a linear filter of the input
    i0 = carry["i"] if carry and "i" in carry else torch.zeros((), dtype=x.dtype, device=x.device)
    i = self._keep_last(carry, "i", linear_scan(x, i0, self.c("a_s"), None))
    return self._spiking_fast(*self._scaled("rg", i, True), a=self.c("a"), carry=carry)


_FAST: dict[str, Callable] = {"IF": _fast_if, "LIF": _fast_lif, "LI": _fast_lif, "Integrator": _fast_integrator,
                              "CubaLIF": _fast_cuba_lif}
