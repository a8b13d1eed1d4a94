"""`normalize`: data-based weight normalization of a converted SNN.

For every spiking neuron layer l the pass measures the ANN activation a_l on calibration data and
picks a scale lambda_l: the `percentile`-th percentile of the positive activations (default 99.9,
Rueckauer et al. 2017) or their maximum (`percentile=100`, the max-norm of Diehl et al. 2015),
per layer or per channel (`channelwise=true`). The SNN then represents a_l by the rate a_l / lambda_l.

Every node n carries a scale s(n) (an array over its per-sample shape): SNN value = ANN value / s(n).
Neurons have s = lambda; a Dense/Conv whose output must arrive at scale s_out from inputs at scale
s_in gets W'[o, i] = W[o, i] s_in[i] / s_out[o] and b' = b / s_out (the demanded s_out comes from
the neurons downstream, through pools, Flatten, Add and Concat). Where a fixed-scale value meets a
different demand -- the skip input of a residual Add, a neuron fed directly by another neuron -- a
`Scale(s_in / s_out)` node is inserted on that edge, so Add and Concat are scaled exactly, not skipped.

The ANN activations come from the *ANN view* of the spiking graph (`ann_view`): each IF becomes a
ReLU of its input divided by its threshold, an Integrator readout a Scale, a PoissonRate its gain.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Engine, Pass, PassError
# calibration data and the ANN view live in calibration.py (shared with the report); re-exported here
from .calibration import (TailPercentile, activation_batches, activations, ann_view, calibration_inputs,  # noqa: F401
                          context_calibration, dust, engine_itemsize, load_calibration)
from .cleanup import insert_on_edge
from .report import DTYPES, conversion_report, engine_from, with_dtype

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the pass


@dataclass(frozen=True, kw_only=True)
class Normalize(Pass):
    """Data-based weight normalization (see the module docstring).

    Options:
        percentile: activation percentile that maps to one spike per step (100 = max-norm).
        channelwise: one scale per channel of convolutional layers (C, H, W) instead of per layer; flat
            (Dense) layers and readouts stay per layer (one scale per neuron over a few hundred samples
            over-fits the calibration set: measured, it saturates the rarely active neurons).
        calibration: path of an .npz used when the context holds no calibration data.
        samples: use at most this many calibration samples (0 = all).
        report: fill context["report"] with the conversion report (needs `steps`, runs the SNN).
        steps: simulation steps for the report (0: the context's steps, else 100).
        engine: the engine that runs the calibration and the report (default: the context's).
        dtype: what that engine computes in, where it takes a dtype (the torch executor): float32
            (default: the statistics need no more, and it is 2-10x faster on a CPU), float64, or
            `engine` (the engine's own option). The reference interpreter computes in float64.
        device: where that engine runs ("cuda", "cuda:1"; default: the engine's own option).
    """

    name = "normalize"
    summary = "data-based weight normalization at an activation percentile (per layer or channel)"
    percentile: float = 99.9
    channelwise: bool = False
    calibration: str = ""
    samples: int = 0
    report: bool = True
    steps: int = 0
    engine: str = ""
    device: str = ""
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ValueError(f"option percentile must be in (0, 100], found {self.percentile}")
        if self.dtype not in DTYPES:
            raise ValueError(f"option dtype must be one of {', '.join(DTYPES)}, found {self.dtype!r}")
        if self.samples < 0 or self.steps < 0:
            raise ValueError("options samples and steps must be >= 0")

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        cal = context_calibration(context, self.calibration)
        inputs, labels = calibration_inputs(graph, cal, samples=self.samples)
        engine = self._engine(context)
        lam = self.scales(graph, inputs, context, engine)
        g = rescale(graph, lam)
        if context is not None:
            context.setdefault("normalize", {})["scales"] = {n: _json(v) for n, v in lam.items()}
            if self.report and context.get("report") is not None:
                steps = self.steps or int(context.get("steps") or 100)
                rep = conversion_report(g, inputs, steps=steps, labels=labels, ann=context.get("ann"),
                                        engine=engine, context=context)
                rep["normalize"] = {"percentile": self.percentile, "channelwise": self.channelwise,
                                    "scales": {n: _json(v) for n, v in lam.items()}}
                context["report"].update(rep)
        return g

    def scales(self, graph: Graph, inputs: dict[str, np.ndarray], context: dict[str, Any] | None = None,
               engine: Engine | None = None) -> dict[str, np.ndarray]:
        """lambda per spiking neuron node (scalar, or per channel broadcastable to the port shape).

        The ANN view runs batch after batch on `engine` (default: the context's, see `engine_from`) and
        each layer's percentile is streamed (`TailPercentile`: exact, bounded memory)."""
        engine = engine or self._engine(context)
        view = ann_view(graph)
        neurons = [n for n, p in graph.nodes.items() if isinstance(p, P.Neuron) and p.spiking]
        types = view.verify()
        b = next(iter(inputs.values())).shape[0]
        tails: dict[str, tuple[TailPercentile, bool]] = {}
        dust_rel = dust(engine_itemsize(engine))
        for n in neurons:
            shape = types[n].shape
            readout = any(isinstance(graph.nodes[u], P.Output) for u in graph.users_of(n))
            per_channel = self.channelwise and len(shape) > 1 and not readout
            groups = shape[0] if per_channel else 1
            tails[n] = (TailPercentile(self.percentile, b * math.prod(shape) // groups, groups, dust_rel), per_channel)
        batch = int((context or {}).get("calibration_batch") or 0)
        for _, acts in activation_batches(view, inputs, neurons, engine=engine, batch=batch, context=context,
                                          desc=f"normalize: calibration ({engine.name})"):
            for n in neurons:
                tail, per_channel = tails[n]
                a = acts[n]
                if per_channel:
                    for c in range(a.shape[1]):
                        tail.feed(a[:, c], c)
                else:
                    tail.feed(a)
        lam: dict[str, np.ndarray] = {}
        for n in neurons:
            tail, per_channel = tails[n]
            if per_channel:
                per = np.array([tail.value(c) for c in range(len(tail.top))])
                lam[n] = per.reshape(-1, *([1] * (len(types[n].shape) - 1)))
            else:
                lam[n] = np.asarray(tail.value())
            log.info("normalize: %s lambda %s", n, np.round(np.asarray(lam[n]).reshape(-1)[:4], 4))
        return lam

    def _engine(self, context: dict[str, Any] | None) -> Engine:
        """The context's engine (or `self.engine`), in `self.dtype` and on `self.device` where it takes them."""
        return with_dtype(engine_from(context, self.engine), self.dtype, self.device)


def _pct(a: np.ndarray, q: float) -> float:
    """The percentile of one array's positive values, all at once (the definition `TailPercentile` streams)."""
    top = float(a.max()) if a.size else 0.0
    pos = a[a > 1e-9 * top]  # positive activations; float dust from exact cancellations (a - a) is not one
    if pos.size == 0:
        return 1.0  # a silent layer: leave its scale alone
    return float(np.percentile(pos, q))


def _json(v: np.ndarray) -> float | list:
    v = np.asarray(v)
    return float(v) if v.ndim == 0 else v.reshape(-1).tolist()


# ---------------------------------------------------------------- rescaling


def _per_channel(s: np.ndarray, name: str) -> np.ndarray:
    flat = s.reshape(s.shape[0], -1)
    if not np.allclose(flat, flat[:, :1], rtol=1e-12, atol=0):
        raise PassError(f"node `{name}`: the scale varies within a channel; a convolution or pooling can "
                        "only carry one scale per channel")
    return flat[:, 0].copy()


def rescale(graph: Graph, lam: dict[str, np.ndarray]) -> Graph:
    """Apply neuron scales `lam` to the graph (see the module docstring); return a new graph."""
    g = graph.copy()
    types = g.verify()
    shape = {n: types[n].shape for n in g.nodes}
    order = g.topo_order()

    # 1. demands: the scale each adjustable / pass-through node's output should have (reverse order)
    demand: dict[str, np.ndarray] = {}
    for n in reversed(order):
        for e in [e for e in g.edges if e.src == n]:
            d = _demand_on_edge(g, e, lam, demand, shape)
            if d is not None and n not in demand:
                demand[n] = d  # the first consumer's demand wins; _match bridges the others with a Scale

    # 2. scales forward; rescale weights; insert Scale nodes where fixed scales disagree
    r = _Rescale(g, lam, demand, shape, {})
    for n in order:
        p = g.nodes[n]
        rule = _FORWARD.get(type(p))
        if rule is None:
            raise PassError(f"node `{n}` ({p.op}): normalize does not know how this operation scales")
        r.s[n] = rule(r, n, p, g.inputs_of(n))
    return g


@dataclass
class _Rescale:
    """State of one rescaling: the graph being edited, the neuron scales, the demands, the scales so far."""

    g: Graph
    lam: dict[str, np.ndarray]
    demand: dict[str, np.ndarray]
    shape: dict[str, tuple[int, ...]]
    s: dict[str, np.ndarray]

    def full(self, n: str, v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(v, self.shape[n]).astype(np.float64)


def _f_input(r: _Rescale, n, p, ins):
    return np.ones(r.shape[n])


def _f_weighted(r: _Rescale, n, p, ins):
    s_in, s_out = r.s[ins[0]], r.demand.get(n, np.ones(r.shape[n]))
    if isinstance(p, P.Dense):
        cin, cout = s_in.reshape(-1), s_out.reshape(-1)
        w = p.weight * cin[None, :] / cout[:, None]
    else:
        cin, cout = _per_channel(s_in, ins[0]), _per_channel(s_out, n)
        w = p.weight / cout.reshape(-1, *([1] * (p.weight.ndim - 1)))
        cig, cog = p.weight.shape[1], p.weight.shape[0] // p.groups
        w = w.copy()
        for gi in range(p.groups):
            w[gi * cog:(gi + 1) * cog] *= cin[gi * cig:(gi + 1) * cig].reshape(1, -1, *([1] * (w.ndim - 2)))
    r.g.replace(n, weight=w, bias=None if p.bias is None else p.bias / cout)
    return r.full(n, s_out)


def _f_spiking(r: _Rescale, n, p, ins):
    target = r.full(n, r.lam[n])
    _match(r.g, n, ins, r.s, target)
    return target


def _f_add(r: _Rescale, n, p, ins):
    target = r.full(n, r.demand.get(n, r.s[ins[0]]))
    _match(r.g, n, ins, r.s, target)
    return target


def _f_concat(r: _Rescale, n, p, ins):
    return np.concatenate([r.s[i] for i in ins], axis=p.axis)


def _f_flatten(r: _Rescale, n, p, ins):
    return r.s[ins[0]].reshape(-1)


def _f_pool(r: _Rescale, n, p, ins):
    return r.full(n, _per_channel(r.s[ins[0]], ins[0])[:, None, None])


def _f_through(r: _Rescale, n, p, ins):
    return r.full(n, r.s[ins[0]])


# how each operation's output scale follows from its inputs' (and rescales its weights)
_FORWARD = {P.Input: _f_input, P.Dense: _f_weighted, P.Conv1d: _f_weighted, P.Conv2d: _f_weighted,
            P.Add: _f_add, P.Concat: _f_concat, P.Flatten: _f_flatten,
            P.SumPool2d: _f_pool, P.AvgPool2d: _f_pool, P.MaxPool2d: _f_pool,
            P.Delay: _f_through, P.Scale: _f_through, P.Integrator: _f_through, P.Output: _f_through,
            P.ConstantCurrent: _f_through, P.PoissonRate: _f_through,
            **{c: _f_spiking for c in P.NEURONS if c.spiking}}


def _demand_on_edge(g: Graph, e: Edge, lam, demand, shape) -> np.ndarray | None:
    c = g.nodes[e.dst]
    n = e.src
    if isinstance(c, P.Neuron) and c.spiking:
        return np.broadcast_to(lam[e.dst], shape[n]).astype(np.float64)
    if isinstance(c, P.Output):
        return np.ones(shape[n])
    if e.dst not in demand:
        return None
    d = demand[e.dst]
    if isinstance(c, (P.Add, P.Delay, P.Scale, P.Integrator)):
        return np.broadcast_to(d, shape[n]).astype(np.float64)
    if isinstance(c, P.Flatten):
        return d.reshape(shape[n])
    if isinstance(c, P._Pool2d):
        per = _per_channel(d, e.dst)
        return np.broadcast_to(per[:, None, None], shape[n]).astype(np.float64)
    if isinstance(c, P.Concat):
        lo = sum(shape[s][c.axis] for s in g.inputs_of(e.dst)[: e.dst_port])
        idx = [slice(None)] * d.ndim
        idx[c.axis] = slice(lo, lo + shape[n][c.axis])
        return d[tuple(idx)].copy()
    return None


def _match(g: Graph, n: str, ins: list[str], s: dict[str, np.ndarray], target: np.ndarray) -> None:
    """Insert Scale(s_in / target) on each input edge of `n` whose scale differs from `target`."""
    for e in [e for e in g.edges if e.dst == n]:
        si = np.broadcast_to(s[e.src], target.shape)
        if np.allclose(si, target, rtol=1e-9, atol=0):
            continue
        f = si / target
        flat = f.reshape(-1)
        factor = float(flat[0]) if np.all(flat == flat[0]) else f.copy()
        insert_on_edge(g, e, f"{n}_in{e.dst_port}_scale", P.Scale(factor=factor))
