"""Per-node counts of a graph and estimated synaptic operations per time step.

A synaptic operation (SOP) is one nonzero input value travelling along one connection:
for an input element with activity a (fraction of steps and samples on which it is
nonzero: the firing rate of a spiking source) and fan-out f (connections leaving it),
the node performs a * f operations per step on average. Dense, Conv1d, Conv2d and the
pooling nodes have connections; every other node has none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import N3mlError
from ..io import random_inputs
from ..ir import prims as P
from ..ir.graph import Graph
from ..ir.types import PortType
from .activity import Recording, load_recording

DEFAULT_RATE = 0.1


# ---------------------------------------------------------------- fan-out


def _fanout_conv2d(w_mask: np.ndarray, in_shape: tuple[int, int, int], out_hw: tuple[int, int],
                   stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                   groups: int) -> np.ndarray:
    """Connections leaving each input element of a 2-D convolution whose nonzero weights are `w_mask`.

    w_mask: (C_out, C_in/groups, KH, KW) booleans. Returns (C_in, H, W) counts; taps that fall
    on padding are not connections.
    """
    c_in, h, w = in_shape
    co, cig, kh, kw = w_mask.shape
    cog = co // groups
    fan = np.zeros(in_shape, np.int64)
    for g in range(groups):
        per_tap = w_mask[g * cog:(g + 1) * cog].sum(axis=0)  # (cig, KH, KW): output channels reached
        for i in range(kh):
            hs = np.arange(out_hw[0]) * stride[0] - padding[0] + i * dilation[0]
            hs = hs[(hs >= 0) & (hs < h)]
            for j in range(kw):
                ws = np.arange(out_hw[1]) * stride[1] - padding[1] + j * dilation[1]
                ws = ws[(ws >= 0) & (ws < w)]
                # for fixed (i, j) each output position uses a distinct input position: no repeated indices
                fan[np.ix_(np.arange(g * cig, (g + 1) * cig), hs, ws)] += per_tap[:, i, j][:, None, None]
    return fan


def _fan_dense(p: P.Dense, t_in: PortType, t_out: PortType) -> np.ndarray:
    return (p.weight != 0).sum(axis=0).astype(np.int64)


def _fan_conv2d(p: P.Conv2d, t_in: PortType, t_out: PortType) -> np.ndarray:
    return _fanout_conv2d(p.weight != 0, t_in.shape, t_out.shape[1:], p.stride, p.padding, p.dilation,
                          p.groups).ravel()


def _fan_conv1d(p: P.Conv1d, t_in: PortType, t_out: PortType) -> np.ndarray:
    c, length = t_in.shape
    return _fanout_conv2d((p.weight != 0)[:, :, None, :], (c, 1, length), (1, t_out.shape[1]), (1, p.stride),
                          (0, p.padding), (1, p.dilation), p.groups).ravel()


def _fan_pool(p: P._Pool2d, t_in: PortType, t_out: PortType) -> np.ndarray:
    c = t_in.shape[0]
    ones = np.ones((c, 1, *p.kernel), bool)  # each channel pools only itself
    return _fanout_conv2d(ones, t_in.shape, t_out.shape[1:], p.stride_, p.padding, (1, 1), c).ravel()


# Primitive type -> fan-out per (flattened) input element; looked up along the MRO.
FANOUT: dict[type, Callable[[Any, PortType, PortType], np.ndarray]] = {
    P.Dense: _fan_dense,
    P.Conv1d: _fan_conv1d,
    P.Conv2d: _fan_conv2d,
    P._Pool2d: _fan_pool,
}


def fanout(prim: P.Primitive, t_in: PortType, t_out: PortType) -> np.ndarray | None:
    """Connections leaving each input element of `prim`, or None for a node without connections."""
    for cls in type(prim).__mro__:
        if cls in FANOUT:
            return FANOUT[cls](prim, t_in, t_out)
    return None


def param_count(prim: P.Primitive) -> int:
    """Numbers stored in the node's array fields (weights, biases, per-neuron values); scalars count 0."""
    return int(sum(v.size for v in prim.params().values() if isinstance(v, np.ndarray)))


# -------------------------------------------------------------- summaries


@dataclass(frozen=True)
class NodeSummary:
    name: str
    op: str
    shape: tuple[int, ...]
    kind: str
    neurons: int
    synapses: int
    params: int
    activity: float | None = None  # mean fraction of nonzero outputs per element per step (firing rate)
    sops: float | None = None  # synaptic operations per step (per sample)
    rate_from: str = ""  # "measured", "assumed", or "" for nodes without connections


@dataclass(frozen=True)
class Summary:
    graph: str
    dt: float
    nodes: list[NodeSummary]
    rate_note: str
    totals: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for n in d["nodes"]:
            n["shape"] = list(n["shape"])
        return d


def _activity_of(rec: Recording | None, graph: Graph, node: str) -> np.ndarray | None:
    """Per-element activity of `node` (flattened), from the recording, looking through
    Flatten and Delay (which move values without changing them) and Output nodes that record it."""
    if rec is None:
        return None
    seen = set()
    while node not in seen:
        seen.add(node)
        if node in rec.signals:
            x = rec.signals[node]
            return (x != 0).reshape(x.shape[0], x.shape[1], -1).mean(axis=(0, 1))
        for out, src in rec.source.items():
            if src == node:
                x = rec.signals[out]
                return (x != 0).reshape(x.shape[0], x.shape[1], -1).mean(axis=(0, 1))
        prim = graph.nodes[node]
        if isinstance(prim, (P.Flatten, P.Delay)):
            node = graph.inputs_of(node)[0]
        else:
            return None
    return None


def summarize(graph: Graph, recording: Any = None, *, rate: float | None = None, note: str = "") -> Summary:
    """Counts per node and synaptic operations per step.

    Args:
        recording: measured activity (anything `load_recording` reads); record the sources of the
            synapse nodes (`record=` of the interpreter) to measure their rates.
        rate: activity assumed for every source without a measurement (default 0.1 when no
            recording is given; without it, unmeasured nodes get no SOP estimate).
        note: describes where the measured rates come from (printed under the table).
    """
    types = graph.verify()
    rec = load_recording(recording, graph) if recording is not None else None
    if rate is None and rec is None:
        rate = DEFAULT_RATE
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise N3mlError(f"the assumed rate must lie in [0, 1] (spikes per neuron per step), found {rate}")
    rows = []
    measured = assumed = 0
    for name, prim in graph.nodes.items():
        t = types[name]
        srcs = graph.inputs_of(name)
        fan = fanout(prim, types[srcs[0]], t) if len(srcs) == 1 else None
        synapses = int(fan.sum()) if fan is not None else 0
        sops, rate_from = None, ""
        if fan is not None:
            act = _activity_of(rec, graph, srcs[0])
            if act is not None and act.size == fan.size:
                sops, rate_from = float(act @ fan), "measured"
                measured += 1
            elif rate is not None:
                sops, rate_from = rate * synapses, "assumed"
                assumed += 1
        own = _activity_of(rec, graph, name)
        rows.append(NodeSummary(
            name=name, op=prim.op, shape=t.shape, kind=t.kind,
            neurons=t.size if prim.category == "neuron" else 0, synapses=synapses, params=param_count(prim),
            activity=float(own.mean()) if own is not None and own.size else None, sops=sops, rate_from=rate_from))
    syn_rows = [r for r in rows if r.rate_from or r.synapses]
    totals: dict[str, float] = {
        "nodes": len(rows), "edges": len(graph.edges),
        "neurons": sum(r.neurons for r in rows), "synapses": sum(r.synapses for r in rows),
        "params": sum(r.params for r in rows),
    }
    if all(r.sops is not None for r in syn_rows):
        totals["sops_per_step"] = float(sum(r.sops for r in syn_rows))
        totals["sops_per_second"] = totals["sops_per_step"] * 1000.0 / graph.dt
    parts = []
    if measured:
        parts.append(f"{measured} synapse node(s) from measured rates" + (f" ({note})" if note else ""))
    if assumed:
        parts.append(f"{assumed} from an assumed rate of {rate:g} spikes/neuron/step")
    missing = [r.name for r in syn_rows if r.sops is None]
    if missing:
        parts.append(f"no rate for the inputs of {', '.join(missing)} (record them, or give --rate)")
    return Summary(graph=graph.name, dt=graph.dt, nodes=rows, rate_note="; ".join(parts), totals=totals)


def _si(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def format_summary(s: Summary) -> str:
    """The summary as an aligned text table with a totals row."""
    head = ("node", "type", "shape", "neurons", "synapses", "params", "rate", "SOP/step")
    lines = []
    for r in s.nodes:
        lines.append((r.name, r.op, "x".join(map(str, r.shape)), str(r.neurons or "-"), str(r.synapses or "-"),
                      str(r.params or "-"),
                      "-" if r.activity is None or r.kind != "spike" else f"{r.activity:.3f}",
                      "-" if r.sops is None else _si(r.sops) + ("*" if r.rate_from == "assumed" else "")))
    t = s.totals
    total = ("total", f"{t['nodes']} nodes", f"{t['edges']} edges", str(t["neurons"]), str(t["synapses"]),
             str(t["params"]), "", _si(t["sops_per_step"]) if "sops_per_step" in t else "-")
    widths = [max(len(row[i]) for row in [head, total, *lines]) for i in range(len(head))]

    def fmt(row):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * len(fmt(head))
    out = [f"graph {s.graph} (dt={s.dt:g} ms)", fmt(head), rule, *map(fmt, lines), rule, fmt(total)]
    if "sops_per_step" in t:
        out.append(f"synaptic operations: {_si(t['sops_per_step'])} per step per sample, "
                   f"{_si(t['sops_per_second'])} per second of model time")
    if s.rate_note:
        out.append(f"rates: {s.rate_note}" + ("; * = assumed" if any(r.rate_from == "assumed" for r in s.nodes)
                                                else ""))
    if any(r.activity is not None for r in s.nodes):
        out.append("rate = spikes per neuron per step of spiking nodes (mean over steps and samples)")
    return "\n".join(out)


def measure_activity(graph: Graph, steps: int, *, batch: int = 1, seed: int = 0, input_rate: float = 0.2,
                     inputs: dict[str, np.ndarray] | None = None) -> Recording:
    """Run the reference interpreter for `steps` on seeded random input (Bernoulli(input_rate) spikes,
    U[0,1) analog values) recording every node."""
    from ..ir import interp

    if steps < 1:
        raise N3mlError(f"the number of steps must be >= 1, found {steps}")
    if inputs is None:
        inputs = random_inputs(graph, steps, batch, seed, input_rate)
    record = [n for n, p in graph.nodes.items() if not isinstance(p, P.Output)]
    res = interp.run(graph, inputs, steps, record=record)
    return load_recording(res, graph)
