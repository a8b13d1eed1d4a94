"""Reference interpreter: the ground truth of docs/semantics.md.

numpy, float64 (int64 for fixed-point graphs), one time step at a time, written
for clarity rather than speed. Every backend is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from . import neurons as N
from . import prims as P
from .graph import Graph
from .types import VerifyError


@dataclass
class Result:
    """Output of a run: arrays of shape (T, B, *shape) keyed by output node name,
    and recorded states keyed by ``"node.state"`` (``"node"`` alone is the node's output)."""

    outputs: dict[str, np.ndarray]
    states: dict[str, np.ndarray] = field(default_factory=dict)

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        d = dict(self.outputs)
        for k, v in self.states.items():
            d[f"state/{k}"] = v
        return d


def normalize_inputs(graph: Graph, inputs, steps: int | None) -> tuple[dict[str, np.ndarray], int, int]:
    """Check inputs against the graph's Input nodes; return (arrays (T,B,*shape), T, B)."""
    names = graph.input_names
    if isinstance(inputs, np.ndarray):
        if len(names) != 1:
            raise VerifyError(f"the graph has inputs {names}; pass a dict of arrays by name")
        inputs = {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    if missing:
        raise VerifyError(f"no data for input node(s) {missing}; inputs given: {sorted(inputs)}")
    extra = [n for n in inputs if n not in names]
    if extra:
        raise VerifyError(f"data given for unknown input(s) {extra}; the graph's inputs are {names}")
    out, T, B = {}, None, None
    for n in names:
        x = np.asarray(inputs[n])
        shape = tuple(graph.nodes[n].shape)
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise VerifyError(f"input data must have shape (T, B, {', '.join(map(str, shape))}), found {x.shape}",
                              node=n)
        if T is None:
            T, B = x.shape[0], x.shape[1]
        elif (x.shape[0], x.shape[1]) != (T, B):
            raise VerifyError(f"all inputs must share (T, B) = {(T, B)}, found {x.shape[:2]}", node=n)
        out[n] = x
    if steps is not None:
        if steps > T:
            raise VerifyError(f"{steps} steps requested but the input holds only {T}")
        out = {k: v[:steps] for k, v in out.items()}
        T = steps
    return out, T, B


def check_integer_inputs(data: dict[str, np.ndarray]) -> None:
    """A fixed-point graph computes in integers: fractional input would be silently truncated, so refuse it."""
    for n, x in data.items():
        if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
            raise VerifyError("a fixed-point graph takes integer input (spikes 0/1 or graded integers); found "
                              "non-integer values (scale analog data first, e.g. quantize's input_scale)", node=n)


# ----------------------------------------------------------------- synapses


def _pad2(x: np.ndarray, p: tuple[int, int], value: float) -> np.ndarray:
    return np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])], constant_values=value)


def _windows2(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> np.ndarray:
    """(B, C, H, W) -> (B, C, Ho, Wo, kh, kw) windows."""
    eh, ew = d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1
    w = np.lib.stride_tricks.sliding_window_view(x, (eh, ew), axis=(2, 3))
    return w[:, :, :: s[0], :: s[1], :: d[0], :: d[1]]


def conv2d(x: np.ndarray, w: np.ndarray, b, stride, padding, dilation, groups) -> np.ndarray:
    x = _pad2(x, padding, 0)
    co = w.shape[0]
    cig = w.shape[1]
    cog = co // groups
    outs = []
    for g in range(groups):
        win = _windows2(x[:, g * cig:(g + 1) * cig], w.shape[2:], stride, dilation)
        outs.append(np.einsum("bchwij,ocij->bohw", win, w[g * cog:(g + 1) * cog]))
    y = np.concatenate(outs, axis=1)
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def conv1d(x, w, b, stride, padding, dilation, groups):
    y = conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, padding), (1, dilation), groups)
    return y[:, :, 0, :]


def pool2d(x: np.ndarray, prim: P._Pool2d) -> np.ndarray:
    pad = -np.inf if isinstance(prim, P.MaxPool2d) else 0
    if np.issubdtype(x.dtype, np.integer) and pad == -np.inf:
        pad = np.iinfo(np.int64).min
    win = _windows2(_pad2(x, prim.padding, pad), prim.kernel, prim.stride_, (1, 1))
    if isinstance(prim, P.MaxPool2d):
        return win.max(axis=(-2, -1))
    total = win.sum(axis=(-2, -1))
    if isinstance(prim, P.AvgPool2d):
        return total / (prim.kernel[0] * prim.kernel[1])
    return total


# -------------------------------------------------------------------- neurons


def overflow(x: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """Bring x into a `bits`-bit state register (docs/semantics.md §6)."""
    return N.overflow(N.NUMPY, x, bits, mode)


class _NeuronState:
    """One neuron node's coefficients and state; the update itself is `n3ml.ir.neurons.step`."""

    def __init__(self, prim: P.Neuron, shape, dt: float, scheme: str, fixed: bool):
        dtype = np.int64 if fixed else np.float64
        size = int(np.prod(shape[1:]))

        def per(field, v):
            a = np.asarray(v, dtype=dtype)
            return a.reshape(shape[1:]) if a.ndim and a.size == size else a

        # factors in the state dtype, as every engine holds them (r g is formed from the converted values)
        self.k = N.discretize(prim, dt, scheme, param=per,
                              factor=lambda f, tau, formula: per(f, formula(np.asarray(tau, np.float64))))
        self.names = N.STATE_NAMES[self.k.kind]
        v = np.broadcast_to(self.k.v_init, shape).astype(dtype).copy()
        self.st = N.State(v=v, i=np.zeros(shape, dtype), b=np.zeros(shape, dtype), c=np.zeros(shape, np.int64))

    def step(self, x: np.ndarray) -> np.ndarray:
        dtype = self.st.v.dtype
        out, st = N.step(N.NUMPY, self.k, self.st, x)
        if st.v.dtype != dtype:  # a float factor in integer mode: the state stays integer
            st = st._replace(v=st.v.astype(dtype))
        self.st = st
        return out if out.dtype == dtype else out.astype(dtype)

    def states(self) -> dict[str, np.ndarray]:
        return {k: getattr(self.st, k) for k in self.names}


# ----------------------------------------------------------------------- run


def run(graph: Graph, inputs, steps: int | None = None, *, record: Iterable[str] = (),
        fixed: bool | None = None, progress: Callable[[int, int], None] | None = None) -> Result:
    """Run `graph` on `inputs` (dict name -> (T, B, *shape), or one array).

    Args:
        steps: number of steps (default: all of the input's T).
        record: node names whose output (and neuron states) are recorded at each step.
        fixed: integer arithmetic; default: True when the graph holds a FixedCubaLIF.
    Returns:
        Result with outputs[name] of shape (T, B, *shape) for every Output node.
    """
    types = graph.verify()
    data, T, B = normalize_inputs(graph, inputs, steps)
    if fixed is None:
        fixed = any(isinstance(p, (P.FixedCubaLIF, P.FixedSynapseFilter)) for p in graph.nodes.values())
    if fixed:
        check_integer_inputs(data)
    dtype = np.int64 if fixed else np.float64
    record = list(record)
    for r in record:
        if r not in graph.nodes:
            raise VerifyError(f"cannot record unknown node `{r}`")
    order = graph.topo_order()
    ins = {n: graph.inputs_of(n) for n in graph.nodes}
    neurons = {n: _NeuronState(p, (B, *types[n].shape), graph.dt, graph.scheme, fixed)
               for n, p in graph.nodes.items() if isinstance(p, P.Neuron)}
    delays = {n: [np.zeros((B, *types[n].shape), dtype)] * p.steps
              for n, p in graph.nodes.items() if isinstance(p, P.Delay) and p.steps >= 1}
    noise = {}
    for n, p in graph.nodes.items():
        if isinstance(p, P.PoissonRate):
            noise[n] = np.random.default_rng(p.seed).random((T, B, *types[n].shape))
    latency_x: dict[str, np.ndarray] = {}
    outs = {n: [] for n in graph.output_names}
    rec: dict[str, list] = {}
    ctx = _Ctx("", 0, dtype, data, neurons, noise, latency_x)  # one per run; node and step updated in place
    for t in range(T):
        ctx.t = t
        val: dict[str, np.ndarray] = {n: buf[0] for n, buf in delays.items()}
        for n in order:
            p = graph.nodes[n]
            if n in delays:
                continue
            xs = [val[s] for s in ins[n]]
            ctx.node = n
            try:
                val[n] = _eval(ctx, p, xs)
            except VerifyError:
                raise
            except Exception as e:  # name the node whose evaluation failed
                raise VerifyError(f"while executing {p.op} at step {t}: {e}", node=n) from e
        for n, buf in delays.items():
            buf.pop(0)
            buf.append(np.asarray(val[ins[n][0]], dtype))
        for n in outs:
            outs[n].append(val[n])
        for n in record:
            rec.setdefault(n, []).append(np.array(val[n]))
            if n in neurons:
                for k, v in neurons[n].states().items():
                    rec.setdefault(f"{n}.{k}", []).append(np.array(v))
        if progress:
            progress(t + 1, T)
    return Result({n: np.stack(v) for n, v in outs.items()}, {k: np.stack(v) for k, v in rec.items()})


@dataclass
class _Ctx:
    """What an op may read besides its inputs: the step, the input data and per-node state."""

    node: str
    t: int
    dtype: type
    data: dict[str, np.ndarray]
    neurons: dict[str, _NeuronState]
    noise: dict[str, np.ndarray]
    latency_x: dict[str, np.ndarray]


_OPS: dict[type, Callable] = {}


def _op(*classes):
    def register(fn):
        for c in classes:
            _OPS[c] = fn
        return fn
    return register


def _eval(c: _Ctx, p: P.Primitive, xs: list[np.ndarray]) -> np.ndarray:
    fn = _OPS.get(type(p))
    if fn is None:
        raise VerifyError(f"the reference interpreter has no semantics for {p.op}", node=c.node)
    return fn(c, p, xs)


def _w(a, dtype):
    return None if a is None else a.astype(dtype)


@_op(P.Input)
def _input(c, p, xs):
    return c.data[c.node][c.t].astype(c.dtype)


@_op(P.Output, P.Delay)  # a Delay reaching here has steps == 0
def _identity(c, p, xs):
    return xs[0]


@_op(P.Flatten)
def _flatten(c, p, xs):
    return xs[0].reshape(xs[0].shape[0], -1)


@_op(P.Dense)
def _dense(c, p, xs):
    y = xs[0] @ p.weight.astype(c.dtype).T
    return y + p.bias.astype(c.dtype) if p.bias is not None else y


@_op(P.Conv2d)
def _conv2d(c, p, xs):
    return conv2d(xs[0], _w(p.weight, c.dtype), _w(p.bias, c.dtype), p.stride, p.padding, p.dilation, p.groups)


@_op(P.Conv1d)
def _conv1d(c, p, xs):
    return conv1d(xs[0], _w(p.weight, c.dtype), _w(p.bias, c.dtype), p.stride, p.padding, p.dilation, p.groups)


@_op(P.SumPool2d, P.AvgPool2d, P.MaxPool2d)
def _pool(c, p, xs):
    return pool2d(xs[0], p)


@_op(P.Scale)
def _scale(c, p, xs):
    f = np.asarray(p.factor)
    return xs[0] * (f.astype(c.dtype) if f.dtype.kind in "iu" or c.dtype is np.float64 else f)


@_op(P.Add)
def _add(c, p, xs):
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


@_op(P.Concat)
def _concat(c, p, xs):
    return np.concatenate(xs, axis=p.axis + 1)


@_op(*P.NEURONS)
def _neuron(c, p, xs):
    return c.neurons[c.node].step(xs[0])


@_op(P.ReLU)
def _relu(c, p, xs):
    return np.maximum(xs[0], 0)


@_op(P.BatchNorm)
def _batchnorm(c, p, xs):
    shp = (1, -1) + (1,) * (xs[0].ndim - 2)
    k = (p.gamma / np.sqrt(p.var + p.eps)).reshape(shp)
    return (xs[0] - p.mean.reshape(shp)) * k + p.beta.reshape(shp)


@_op(P.Softmax)
def _softmax(c, p, xs):
    z = xs[0] - xs[0].max(axis=p.axis + 1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=p.axis + 1, keepdims=True)


@_op(P.PoissonRate)
def _poisson(c, p, xs):
    prob = np.clip(p.gain * xs[0], 0.0, 1.0)
    return (c.noise[c.node][c.t] < prob).astype(c.dtype)


@_op(P.ConstantCurrent)
def _constant_current(c, p, xs):
    return p.scale * xs[0] + p.offset


@_op(P.Latency)
def _latency(c, p, xs):
    if c.t % p.window == 0:
        c.latency_x[c.node] = np.clip(xs[0], 0.0, 1.0)
    x = c.latency_x[c.node]
    ts = np.floor((1.0 - x) * (p.window - 1) + 0.5)
    return ((c.t % p.window == ts) & (x > p.x_min)).astype(c.dtype)
