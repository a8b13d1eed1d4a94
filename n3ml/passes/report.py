"""The conversion report: how closely a converted SNN follows its ANN.

`conversion_report` runs the SNN on calibration samples (input held constant for `steps` steps) and
returns, per spiking layer, the Pearson correlation between the ANN activation (from the SNN's ANN
view, i.e. already divided by the normalization scale) and the SNN firing rate, and -- when labels
are given -- the classification accuracy as a function of the number of simulation steps, next to
the ANN's. The `conversion-report` pass stores it in context["report"] (written by
`n3ml convert --report report.json`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir import prims as P
from .base import Engine, Pass, PassError, progress
from .calibration import (MEMORY_BUDGET, REFERENCE, ann_view, auto_batch, batches, calibration_inputs,  # noqa: F401
                          context_calibration, engine_itemsize, held_runner)

log = logging.getLogger(__name__)

# Passes know no engine but the IR's own reference interpreter; the caller (the command layer, or a
# script) supplies others as `Engine`s: context["engines"] (name -> Engine) and context["engine"]
# (the default's name), or `engine=` here.
DTYPES = ("float32", "float64", "engine")


def engine_from(context: dict[str, Any] | None, name: str = "") -> Engine:
    """The engine named `name` (default: context["engine"], else the reference interpreter) among those
    the caller put in context["engines"]."""
    context = context or {}
    table = {"reference": REFERENCE, **(context.get("engines") or {})}
    name = name or context.get("engine") or "reference"
    if name not in table:
        raise PassError(f"engine {name!r} is not available to passes here; available: {', '.join(sorted(table))} "
                        "(the caller supplies engines in context['engines'])")
    return table[name]


def with_dtype(engine: Engine, dtype: str, device: str = "") -> Engine:
    """`engine` computing in `dtype` (unless "engine") and on `device` (unless ""), where it takes them."""
    opts = dict(engine.options)
    if dtype != "engine" and "dtype" in opts:
        opts["dtype"] = dtype
    if device and "device" in opts:
        opts["device"] = device
    return engine._replace(options=opts)


def simulate(graph: Graph, inputs: dict[str, np.ndarray], steps: int, record: list[str],
             engine: Engine | None = None):
    """Run `graph` with every input held constant for `steps` steps; return the engine's Result."""
    engine = engine or REFERENCE
    data = {k: np.ascontiguousarray(np.broadcast_to(v[None], (steps, *v.shape))) for k, v in inputs.items()}
    return engine.run(graph, data, steps, record=record, **engine.options)


def decode(graph: Graph, output: str, values: np.ndarray, t: int) -> np.ndarray:
    """Class scores of Output `output` after `t` steps: spike counts for spiking outputs, else the value
    at step t-1 (a membrane-potential readout)."""
    (src,) = graph.inputs_of(output)
    p = graph.nodes[src]
    if isinstance(p, P.Neuron) and p.spiking:
        return values[:t].sum(axis=0)
    return values[t - 1]


def checkpoints(steps: int) -> list[int]:
    pts = [t for t in (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000) if t < steps]
    return pts + [steps]


class Moments:
    """Count, means, sums of squared deviations and co-deviation of value pairs (a, r), merged batch by
    batch with Chan et al.'s pairwise update (numerically stable, unlike raw sums of squares), and the
    count of a > 1."""

    def __init__(self) -> None:
        self.n = 0
        self.ma = self.mr = self.m2a = self.m2r = self.c = 0.0
        self.sat = 0

    def add(self, a: np.ndarray, r: np.ndarray) -> None:
        a, r = a.reshape(-1).astype(np.float64), r.reshape(-1).astype(np.float64)
        nb = a.size
        if nb == 0:
            return
        ma, mr = float(a.mean()), float(r.mean())
        da, dr = a - ma, r - mr
        m2a, m2r, c = float(da @ da), float(dr @ dr), float(da @ dr)
        n = self.n + nb
        fa, fr = ma - self.ma, mr - self.mr
        w = self.n * nb / n
        self.m2a += m2a + fa * fa * w
        self.m2r += m2r + fr * fr * w
        self.c += c + fa * fr * w
        self.ma += fa * nb / n
        self.mr += fr * nb / n
        self.n = n
        self.sat += int(np.count_nonzero(a > 1))

    def correlation(self) -> float | None:
        if self.m2a <= 0 or self.m2r <= 0:
            return None  # a constant activation or a silent layer: no correlation
        return float(self.c / np.sqrt(self.m2a * self.m2r))


def conversion_report(snn: Graph, inputs: dict[str, np.ndarray], *, steps: int = 100,
                      labels: np.ndarray | None = None, ann: Graph | None = None,
                      engine: Engine | None = None, batch: int = 0,
                      context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compare a converted SNN with its ANN on calibration inputs.

    The samples go through batch by batch: the ANN view (one step), the SNN (`steps` steps, input
    held) and the ANN; each batch only updates running statistics (`Moments`, correct-prediction
    counts), so memory is one batch's, whatever the number of samples.

    Args:
        snn: the converted (and normalized) graph.
        inputs: {input name: (B, *shape)} samples (see `calibration_inputs`).
        steps: simulation steps T.
        labels: (B,) class indices; enables the accuracy figures.
        ann: the original ANN graph (accuracy reference); default: the SNN's ANN view.
        engine: how to run the SNN (default: the reference interpreter); e.g.
            ``Engine("torch", n3ml.backends.torch.run, {"dtype": "float64"})``.
        batch: samples per batch (0: context["report_batch"], else as many as fit
            context["memory_budget"], 1 GiB by default).
        context: the pass context (progress bars, batch size, memory budget).
    Returns:
        {"steps", "samples", "engine", "seconds", "layers": [{"node", "correlation", "ann_mean",
        "snn_rate_mean", "saturated"}], "accuracy": {"ann": {out: acc}, "snn": {out: {t: acc}}}}
    """
    engine = engine or REFERENCE
    context = context or {}
    t0 = time.perf_counter()
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.Neuron) and p.spiking]
    view = ann_view(snn)
    ref = ann if ann is not None else view
    run_snn, run_view = held_runner(engine, snn), held_runner(engine, view)
    run_ann = held_runner(engine, ann) if labels is not None and ann is not None else None
    b = next(iter(inputs.values())).shape[0]
    budget = int(context.get("memory_budget") or MEMORY_BUDGET)
    batch = batch or int(context.get("report_batch") or 0) or auto_batch(
        snn, neurons, steps, itemsize=engine_itemsize(engine), budget=budget, held=engine.held is not None)
    moments = {n: Moments() for n in neurons}
    pts = checkpoints(steps)
    right_snn = {o: dict.fromkeys(pts, 0) for o in snn.output_names}
    right_ann: dict[str, int] = {}
    ann_name = {o: (o if o in ref.output_names else (ref.output_names[i] if i < len(ref.output_names) else None))
                for i, o in enumerate(snn.output_names)}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
    with progress(context, f"conversion report (T={steps}, {engine.name})", b, "samples") as bar:
        for lo, hi in batches(b, batch):
            part = {k: v[lo:hi] for k, v in inputs.items()}
            view_outs, acts = run_view(part, 1, neurons)
            outs, rates = run_snn(part, steps, neurons)
            for n in neurons:
                moments[n].add(acts[n], rates[n])
            if labels is not None:
                y = labels[lo:hi]
                ann_outs = run_ann(part, 1, [])[0] if run_ann is not None else view_outs
                for o in snn.output_names:
                    for t in pts:
                        right_snn[o][t] += int(np.count_nonzero(decode(snn, o, outs[o], t).argmax(-1) == y))
                    if ann_name[o] is not None:
                        right_ann[o] = right_ann.get(o, 0) + int(np.count_nonzero(ann_outs[ann_name[o]][0].argmax(-1) == y))
            bar.update(hi - lo)
    layers = [{"node": n, "correlation": m.correlation(), "ann_mean": m.ma, "snn_rate_mean": m.mr,
               "saturated": m.sat / max(m.n, 1)} for n, m in moments.items()]
    rep: dict[str, Any] = {"steps": steps, "samples": int(b), "engine": engine.name, "layers": layers}
    if labels is not None:
        rep["accuracy"] = {"ann": {o: c / b for o, c in right_ann.items()},
                           "snn": {o: {str(t): c / b for t, c in by_t.items()} for o, by_t in right_snn.items()}}
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [f"conversion report: {rep['samples']} samples, T = {rep['steps']} steps, engine {rep['engine']}",
             f"{'layer':<40} {'corr':>7} {'ANN mean':>9} {'SNN rate':>9} {'sat.':>6}"]
    for lay in rep["layers"]:
        c = "-" if lay["correlation"] is None else f"{lay['correlation']:.4f}"
        lines.append(f"{lay['node']:<40} {c:>7} {lay['ann_mean']:>9.4f} {lay['snn_rate_mean']:>9.4f} "
                     f"{lay['saturated']:>6.1%}")
    acc = rep.get("accuracy")
    if acc:
        for o, by_t in acc["snn"].items():
            a = acc["ann"].get(o)
            lines.append(f"accuracy `{o}`: ANN {a:.4f}" if a is not None else f"accuracy `{o}`:")
            lines.append("  steps " + " ".join(f"{t:>6}" for t in by_t))
            lines.append("  SNN   " + " ".join(f"{v:>6.4f}" for v in by_t.values()))
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class ConversionReport(Pass):
    """Fill context["report"] with the conversion report (the graph is returned unchanged)."""

    name = "conversion-report"
    summary = "per-layer ANN/SNN correlation and accuracy vs. steps on calibration data"
    steps: int = 0
    samples: int = 0
    calibration: str = ""
    engine: str = ""
    device: str = ""
    dtype: str = "float32"
    batch: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"option dtype must be one of {', '.join(DTYPES)}, found {self.dtype!r}")
        if self.steps < 0 or self.samples < 0 or self.batch < 0:
            raise ValueError("options steps, samples and batch must be >= 0")

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        context = {} if context is None else context
        inputs, labels = calibration_inputs(graph, context_calibration(context, self.calibration),
                                            samples=self.samples)
        steps = self.steps or int(context.get("steps") or 100)
        engine = with_dtype(engine_from(context, self.engine), self.dtype, self.device)
        rep = conversion_report(graph, inputs, steps=steps, labels=labels, ann=context.get("ann"),
                                engine=engine, batch=self.batch, context=context)
        if context.get("report") is None:
            context["report"] = {}
        context["report"].update(rep)
        log.info("%s", format_report(rep))
        return graph
