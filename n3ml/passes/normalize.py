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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..commands._inputs import validate_array
from ..errors import N3mlError
from ..io import read_npz
from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from ..ir.interp import run as interp_run
from .base import Pass, PassError
from .cleanup import insert_on_edge

log = logging.getLogger(__name__)

# --------------------------------------------------------------- calibration


def calibration_inputs(graph: Graph, calibration: dict[str, np.ndarray] | None, *,
                       samples: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Match calibration arrays to the graph's inputs.

    Args:
        calibration: arrays of shape (B, *shape) keyed by Input node name (a single-input graph takes
            its one non-`labels` array under any key), optionally `labels` (B,) class indices.
        samples: keep only the first `samples` samples (0: all).
    Returns:
        ({input name: (B, *shape) float64}, labels or None)
    """
    if calibration is None:
        raise N3mlError("this pass needs calibration data: pass --calibration X.npz (one array (B, *shape) per "
                        "input, optional `labels`) or the pass option calibration=PATH")
    # NaN/inf or an empty batch would give NaN scales and a NaN report: refused here, naming the array
    data = {k: validate_array(k, v, "calibration", where="calibration data") for k, v in calibration.items()
            if k != "labels"}
    labels = calibration.get("labels")
    names = graph.input_names
    if not all(n in data for n in names):
        if len(names) == 1 and len(data) == 1:
            data = {names[0]: next(iter(data.values()))}
        else:
            raise N3mlError(f"calibration data has arrays {sorted(data)}; expected one per input node {names}")
    out = {}
    for n in names:
        shape = tuple(graph.nodes[n].shape)
        x = data[n]
        if x.ndim == len(shape) + 2 and tuple(x.shape[2:]) == shape:  # (T, B, *shape): use the time mean
            x = x.mean(axis=0)
        if tuple(x.shape[1:]) != shape:
            raise N3mlError(f"calibration array for input `{n}` has shape {x.shape}; expected (B, "
                            f"{', '.join(map(str, shape))})")
        out[n] = x.astype(np.float64)[: samples or None]
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[: samples or None]
        b = next(iter(out.values())).shape[0]
        if labels.shape[0] != b:
            raise N3mlError(f"calibration `labels` has {labels.shape[0]} entries for {b} samples")
    return out, labels


def load_calibration(path: str) -> dict[str, np.ndarray]:
    return read_npz(path, "calibration .npz file")


def context_calibration(context: dict[str, Any] | None, path: str) -> dict[str, np.ndarray] | None:
    if path:
        return load_calibration(path)
    cal = (context or {}).get("calibration")
    if isinstance(cal, str):
        return load_calibration(cal)
    return cal


# ------------------------------------------------------------------- ANN view


def ann_view(graph: Graph) -> Graph:
    """The rate-equivalent ANN of a converted graph: IF -> ReLU(I / theta), Integrator(r) -> Scale(r),
    PoissonRate(gain) -> Scale(gain). ANN graphs (ReLU, BatchNorm, Softmax) are returned unchanged."""
    g = graph.copy()
    for n, p in list(g.nodes.items()):
        if isinstance(p, P.Neuron) and p.spiking:
            if not isinstance(p, (P.IF, P.LIF)):
                raise PassError(f"node `{n}` ({p.op}): only IF (or LIF) neurons have a rate-equivalent ANN")
            theta = np.asarray(p.theta, dtype=np.float64)
            g.nodes[n] = P.ReLU()
            if np.any(theta != 1):
                edge = next(e for e in g.edges if e.dst == n)
                insert_on_edge(g, edge, f"{n}_theta", P.Scale(factor=_full(1.0 / theta)))
        elif isinstance(p, P.Integrator):
            g.nodes[n] = P.Scale(factor=_full(np.asarray(p.r, dtype=np.float64)))
        elif isinstance(p, P.Neuron):
            raise PassError(f"node `{n}` ({p.op}) has no rate-equivalent ANN operation")
        elif isinstance(p, P.PoissonRate):
            g.nodes[n] = P.Scale(factor=float(p.gain))
        elif isinstance(p, P.Latency) or (isinstance(p, P.Delay) and p.steps > 0):
            raise PassError(f"node `{n}` ({p.op}) has no rate-equivalent ANN operation")
    return g


def _full(a: np.ndarray):
    return float(a) if a.ndim == 0 else a


def activations(graph: Graph, inputs: dict[str, np.ndarray], nodes: list[str] | None = None,
                batch: int = 512) -> dict[str, np.ndarray]:
    """Run an ANN graph (or a converted graph's ANN view) for one step on (B, *shape) inputs; return
    {node: (B, *shape)} for `nodes` (default: all nodes)."""
    nodes = [n for n in (nodes if nodes is not None else graph.nodes) if not isinstance(graph.nodes[n], P.Output)]
    b = next(iter(inputs.values())).shape[0]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in nodes}
    outs: dict[str, list[np.ndarray]] = {n: [] for n in graph.output_names}
    for lo in range(0, b, batch):
        res = interp_run(graph, {k: v[None, lo:lo + batch] for k, v in inputs.items()}, record=nodes)
        for n in nodes:
            parts[n].append(res.states[n][0])
        for n in outs:
            outs[n].append(res.outputs[n][0])
    acts = {n: np.concatenate(v) for n, v in parts.items()}
    acts.update({n: np.concatenate(v) for n, v in outs.items()})
    return acts


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
    """

    name = "normalize"
    summary = "data-based weight normalization at an activation percentile (per layer or channel)"
    percentile: float = 99.9
    channelwise: bool = False
    calibration: str = ""
    samples: int = 0
    report: bool = True
    steps: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ValueError(f"option percentile must be in (0, 100], found {self.percentile}")
        if self.samples < 0 or self.steps < 0:
            raise ValueError("options samples and steps must be >= 0")

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        cal = context_calibration(context, self.calibration)
        inputs, labels = calibration_inputs(graph, cal, samples=self.samples)
        lam = self.scales(graph, inputs)
        g = rescale(graph, lam)
        if context is not None:
            context.setdefault("normalize", {})["scales"] = {n: _json(v) for n, v in lam.items()}
            if self.report and context.get("report") is not None:
                from .report import conversion_report

                steps = self.steps or int(context.get("steps") or 100)
                rep = conversion_report(g, inputs, steps=steps, labels=labels, ann=context.get("ann"))
                rep["normalize"] = {"percentile": self.percentile, "channelwise": self.channelwise,
                                    "scales": {n: _json(v) for n, v in lam.items()}}
                context["report"].update(rep)
        return g

    def scales(self, graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """lambda per spiking neuron node (scalar, or per channel broadcastable to the port shape)."""
        view = ann_view(graph)
        neurons = [n for n, p in graph.nodes.items() if isinstance(p, P.Neuron) and p.spiking]
        acts = activations(view, inputs, neurons)
        lam: dict[str, np.ndarray] = {}
        for n in neurons:
            a = acts[n]
            readout = any(isinstance(graph.nodes[u], P.Output) for u in graph.users_of(n))
            if self.channelwise and a.ndim > 2 and not readout:
                per = np.array([_pct(a[:, c], self.percentile) for c in range(a.shape[1])])
                lam[n] = per.reshape(-1, *([1] * (a.ndim - 2)))
            else:
                lam[n] = np.asarray(_pct(a, self.percentile))
            log.info("normalize: %s lambda %s", n, np.round(np.asarray(lam[n]).reshape(-1)[:4], 4))
        return lam


def _pct(a: np.ndarray, q: float) -> float:
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
    ones = {n: np.ones(shape[n]) for n in g.nodes}

    # 1. demands: the scale each adjustable / pass-through node's output should have (reverse order)
    demand: dict[str, np.ndarray] = {}
    for n in reversed(order):
        for e in [e for e in g.edges if e.src == n]:
            d = _demand_on_edge(g, e, lam, demand, shape)
            if d is not None and n not in demand:
                demand[n] = d  # the first consumer's demand wins; _match bridges the others with a Scale

    # 2. scales forward; rescale weights; insert Scale nodes where fixed scales disagree
    s: dict[str, np.ndarray] = {}
    for n in order:
        p = g.nodes[n]
        ins = g.inputs_of(n)
        if isinstance(p, P.Input):
            s[n] = ones[n]
        elif isinstance(p, (P.Dense, P.Conv1d, P.Conv2d)):
            s_in, s_out = s[ins[0]], demand.get(n, ones[n])
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
            g.replace(n, weight=w, bias=None if p.bias is None else p.bias / cout)
            s[n] = np.broadcast_to(s_out, shape[n]).astype(np.float64)
        elif isinstance(p, P.Neuron) and p.spiking:
            target = np.broadcast_to(lam[n], shape[n]).astype(np.float64)
            _match(g, n, ins, s, target)
            s[n] = target
        elif isinstance(p, P.Add):
            target = demand.get(n, s[ins[0]])
            _match(g, n, ins, s, np.broadcast_to(target, shape[n]))
            s[n] = np.broadcast_to(target, shape[n]).astype(np.float64)
        elif isinstance(p, P.Concat):
            s[n] = np.concatenate([s[i] for i in ins], axis=p.axis)
        elif isinstance(p, P.Flatten):
            s[n] = s[ins[0]].reshape(-1)
        elif isinstance(p, P._Pool2d):
            c = _per_channel(s[ins[0]], ins[0])
            s[n] = np.broadcast_to(c[:, None, None], shape[n]).astype(np.float64)
        elif isinstance(p, (P.Delay, P.Scale, P.Integrator, P.Output, P.ConstantCurrent, P.PoissonRate)):
            s[n] = np.broadcast_to(s[ins[0]], shape[n]).astype(np.float64)
        else:
            raise PassError(f"node `{n}` ({p.op}): normalize does not know how this operation scales")
    return g


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
