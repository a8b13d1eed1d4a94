"""Activity plots of a recording: spike rasters, membrane traces, firing-rate histograms.

Every function takes any recording n3ml produces: an `n3ml.ir.interp.Result` (the reference
interpreter and the torch executor return one), a dict in the common `.npz` layout
(outputs by Output node name, recorded node outputs and states under ``state/<node>`` and
``state/<node>.<v|i|b>``), or the path of such an `.npz` (a backend's output). Figures are
built with matplotlib's object API (no pyplot, no display, no global state) and returned,
so callers can read the plotted data back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..errors import N3mlError
from ..io import read_npz
from ..ir import prims as P
from ..ir.graph import Graph

MAX_TRACES = 5  # neurons per node drawn by default in voltage traces


@dataclass
class Recording:
    """Recorded activity, every array shaped (T, B, *shape).

    Attributes:
        signals: node name -> the node's output at every step (recorded nodes and Output nodes).
        states: node name -> {state name ("v", "i", "b") -> values}.
        source: Output node name -> the node it records, when a graph was given.
        dt: step length in ms when known (rates are then in Hz), else None (rates per step).
    """

    signals: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    dt: float | None = None
    spiking: dict[str, bool] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        for a in list(self.signals.values()) + [s for d in self.states.values() for s in d.values()]:
            return int(a.shape[0])
        return 0

    def spike_nodes(self) -> list[str]:
        """Nodes whose signal is spikes, without Output nodes that repeat a recorded node."""
        return [n for n in self.signals if self.spiking.get(n) and self.source.get(n) not in self.signals]

    def analog_nodes(self) -> list[str]:
        return [n for n in self.signals if not self.spiking.get(n) and self.source.get(n) not in self.signals
                and not (self.source.get(n, n) in self.states and "v" in self.states[self.source.get(n, n)])]

    def rates(self, node: str) -> np.ndarray:
        """Per-neuron firing rate of `node` (flattened), averaged over steps and samples:
        Hz when dt is known, else spikes per step."""
        x = self._signal(node)
        r = x.reshape(x.shape[0], x.shape[1], -1).mean(axis=(0, 1))
        return r * (1000.0 / self.dt) if self.dt else r

    def _signal(self, node: str) -> np.ndarray:
        if node not in self.signals:
            raise N3mlError(f"node `{node}` is not in the recording; recorded: {', '.join(self.signals) or '(none)'}"
                            " (record it with `n3ml simulate --record NODE`)")
        return self.signals[node]


def _is_spikes(a: np.ndarray) -> bool:
    a = np.asarray(a)
    return a.dtype.kind in "biuf" and a.size > 0 and bool(np.all((a == 0) | (a == 1)))


def load_recording(src: Any, graph: Graph | None = None) -> Recording:
    """Bring any recording into one form.

    Args:
        src: a Recording, a Result (anything with `.outputs` and `.states`), a dict in the common
            `.npz` layout, or the path of an `.npz`.
        graph: the graph that produced it; gives the step length, which nodes spike, and what
            each Output node records.
    """
    if isinstance(src, Recording):
        return src
    if isinstance(src, (str, os.PathLike)):
        src = read_npz(src)
    if hasattr(src, "outputs") and hasattr(src, "states"):
        outputs, states = dict(src.outputs), dict(src.states)
    elif isinstance(src, Mapping):
        outputs = {k: v for k, v in src.items() if not k.startswith("state/")}
        states = {k[len("state/"):]: v for k, v in src.items() if k.startswith("state/")}
    else:
        raise N3mlError(f"cannot read a recording from a {type(src).__name__}; expected a Result, "
                        "a dict of arrays or an .npz path")
    rec = Recording(dt=graph.dt if graph is not None else None)
    for name, a in outputs.items():
        rec.signals[name] = _check_array(name, a)
    for key, a in states.items():
        node, dot, state = key.rpartition(".")
        if dot:
            rec.states.setdefault(node, {})[state] = _check_array(key, a)
        else:
            rec.signals[key] = _check_array(key, a)
    types = graph.verify() if graph is not None else {}
    for name, a in rec.signals.items():
        if graph is not None and name in graph.nodes:
            prim = graph.nodes[name]
            if isinstance(prim, P.Output):
                rec.source[name] = graph.inputs_of(name)[0]
            rec.spiking[name] = types[name].kind == "spike"
        else:
            rec.spiking[name] = _is_spikes(a)
    if graph is not None:  # keep the graph's order: rasters read top to bottom like the network
        order = {n: i for i, n in enumerate(graph.nodes)}
        rec.signals = dict(sorted(rec.signals.items(), key=lambda kv: order.get(kv[0], len(order))))
    return rec


def _check_array(key: str, a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, possibly on a GPU
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim < 2 or a.size == 0:
        raise N3mlError(f"recording `{key}` has shape {a.shape}; expected (T, B, *shape), none of them 0")
    if a.dtype.kind not in "biuf":  # strings, datetimes, complex: not activity
        raise N3mlError(f"recording `{key}` holds {a.dtype} values; expected numbers")
    return a


def _sample(a: np.ndarray, sample: int, key: str) -> np.ndarray:
    if not -a.shape[1] <= sample < a.shape[1]:
        raise N3mlError(f"sample {sample} is out of range for `{key}` with batch size {a.shape[1]}")
    return a[:, sample].reshape(a.shape[0], -1)


# -------------------------------------------------------------------- drawing


def _draw_raster(fig, rec: Recording, nodes: Sequence[str], sample: int) -> None:
    axes = fig.subplots(len(nodes), 1, sharex=True, squeeze=False)[:, 0]
    for ax, node in zip(axes, nodes):
        x = _sample(rec._signal(node), sample, node)
        t, i = np.nonzero(x)
        coll = ax.scatter(t, i, marker="|", s=40 if x.shape[1] <= 64 else 8, linewidths=1.0, color="black")
        coll.set_label(node)
        title = node + (f" (= {rec.source[node]})" if node in rec.source else "")
        ax.set_ylabel("neuron")
        ax.set_ylim(-0.5, max(x.shape[1], 1) - 0.5)
        ax.set_xlim(-0.5, x.shape[0] - 0.5)
        ax.set_title(f"{title}: {len(t)} spikes, {x.shape[1]} neurons", fontsize=9, loc="left")
    axes[-1].set_xlabel("time step" + (f" (dt = {rec.dt:g} ms)" if rec.dt else ""))


def _draw_traces(fig, rec: Recording, items: Sequence[tuple[str, str]], neurons: dict[str, Sequence[int]],
                 sample: int, graph: Graph | None) -> None:
    axes = fig.subplots(len(items), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (node, state) in zip(axes, items):
        if state:
            a = rec.states[node][state]
            key = f"{node}.{state}"
        else:
            a, key = rec._signal(node), node
        x = _sample(a, sample, key)
        idx = list(neurons.get(node, range(min(MAX_TRACES, x.shape[1]))))
        for i in idx:
            if not 0 <= i < x.shape[1]:
                raise N3mlError(f"neuron {i} is out of range for `{key}` with {x.shape[1]} neurons")
            ax.plot(np.arange(x.shape[0]), x[:, i], label=f"{node}[{i}]", linewidth=1.0)
        prim = graph.nodes.get(node) if graph is not None else None
        if state == "v" and isinstance(prim, P.Neuron) and prim.spiking and np.ndim(prim.theta) == 0:
            ax.axhline(float(prim.theta), color="red", linestyle="--", linewidth=0.8, label="theta")
        ax.set_ylabel(state or "value")
        ax.set_title(key, fontsize=9, loc="left")
        if len(idx) <= 8:
            ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time step")


def _draw_rates(fig, rec: Recording, nodes: Sequence[str], bins: int) -> None:
    axes = fig.subplots(1, len(nodes), squeeze=False)[0]
    unit = "Hz" if rec.dt else "spikes/step"
    for ax, node in zip(axes, nodes):
        r = rec.rates(node)
        ax.hist(r, bins=bins, color="#4c72b0", label=node)
        ax.set_title(f"{node}: mean {r.mean():.3g} {unit}", fontsize=9)
        ax.set_xlabel(f"rate ({unit})")
    axes[0].set_ylabel("neurons")


def _pick_spiking(rec: Recording, nodes: Iterable[str] | None) -> list[str]:
    if nodes is None:
        out = rec.spike_nodes()
        if not out:
            raise N3mlError("the recording holds no spiking node; record one with `--record NODE`")
        return out
    out = list(nodes)
    for n in out:
        rec._signal(n)
    return out


# ------------------------------------------------------------------------ API


def plot_raster(recording: Any, nodes: Iterable[str] | None = None, *, graph: Graph | None = None,
                sample: int = 0) -> Figure:
    """Spike raster, one panel per node: a mark at (step, neuron) for every spike of batch `sample`.

    Neurons are numbered in C order of the node's shape. `nodes` defaults to every spiking node recorded.
    """
    rec = load_recording(recording, graph)
    nodes = _pick_spiking(rec, nodes)
    fig = Figure(figsize=(8, 1.0 + 1.6 * len(nodes)), layout="constrained")
    _draw_raster(fig, rec, nodes, sample)
    return fig


def plot_voltage(recording: Any, node: str, neurons: Sequence[int] | None = None, *, graph: Graph | None = None,
                 sample: int = 0, state: str = "v") -> Figure:
    """Traces of state `state` (default the membrane voltage) of chosen neurons (flat indices) of `node`."""
    rec = load_recording(recording, graph)
    have = rec.states.get(node, {})
    if state not in have:
        got = [f"{n}.{s}" for n, d in rec.states.items() for s in d]
        raise N3mlError(f"no state `{node}.{state}` in the recording; recorded states: {', '.join(got) or '(none)'}"
                        " (record it with `n3ml simulate --record NODE`)")
    fig = Figure(figsize=(8, 3), layout="constrained")
    _draw_traces(fig, rec, [(node, state)], {node: neurons} if neurons is not None else {}, sample, graph)
    return fig


def plot_rates(recording: Any, nodes: Iterable[str] | None = None, *, graph: Graph | None = None,
               bins: int = 20) -> Figure:
    """Histogram of per-neuron firing rates, one panel per layer (Hz when the graph gives dt)."""
    rec = load_recording(recording, graph)
    nodes = _pick_spiking(rec, nodes)
    fig = Figure(figsize=(max(4, 3 * len(nodes)), 3), layout="constrained")
    _draw_rates(fig, rec, nodes, bins)
    return fig


def plot_result(graph: Graph | None, result: Any, path: str | os.PathLike | None = None, *, sample: int = 0,
                neurons: Mapping[str, Sequence[int]] | None = None, bins: int = 20) -> Figure:
    """One figure with the rasters of every spiking node, the voltage traces of every recorded
    neuron state and analog output, and the firing-rate histograms; saved to `path` if given
    (format from the suffix: .png, .svg, .pdf)."""
    rec = load_recording(result, graph)
    spiking = rec.spike_nodes()
    traces = [(n, "v") for n, d in rec.states.items() if "v" in d] + [(n, "") for n in rec.analog_nodes()]
    parts = [p for p in (("raster", len(spiking)), ("traces", len(traces)), ("rates", 1 if spiking else 0))
             if p[1]]
    if not parts:
        raise N3mlError("the recording is empty: nothing to plot")
    heights = [1.6 * n if k != "rates" else 2.6 for k, n in parts]
    fig = Figure(figsize=(9, 0.8 + sum(heights)), layout="constrained")
    subs = fig.subfigures(len(parts), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, (kind, _) in zip(subs, parts):
        if kind == "raster":
            _draw_raster(sub, rec, spiking, sample)
        elif kind == "traces":
            _draw_traces(sub, rec, traces, dict(neurons or {}), sample, graph)
        else:
            _draw_rates(sub, rec, spiking, bins)
    if graph is not None:
        fig.suptitle(f"{graph.name}: {rec.steps} steps", fontsize=10)
    if path is not None:
        p = Path(path)
        fmt = p.suffix.lstrip(".").lower()
        if fmt not in ("png", "svg", "pdf"):
            raise N3mlError(f"{path}: cannot write a figure as {fmt or '(no suffix)'!r}; use .png, .svg or .pdf")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            fig.savefig(tmp, format=fmt, dpi=100)
            os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return fig
