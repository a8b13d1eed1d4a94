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
from ..ir.interp import run as interp_run
from .base import Engine, Pass, PassError
from .calibration import activations, ann_view, calibration_inputs, context_calibration

log = logging.getLogger(__name__)

# Passes know no engine but the IR's own reference interpreter; the caller (the command layer, or a
# script) supplies others as `Engine`s: context["engines"] (name -> Engine) and context["engine"]
# (the default's name), or `engine=` here.
REFERENCE = Engine("reference", interp_run)


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


def conversion_report(snn: Graph, inputs: dict[str, np.ndarray], *, steps: int = 100,
                      labels: np.ndarray | None = None, ann: Graph | None = None,
                      engine: Engine | None = None, batch: int = 256) -> dict[str, Any]:
    """Compare a converted SNN with its ANN on calibration inputs.

    Args:
        snn: the converted (and normalized) graph.
        inputs: {input name: (B, *shape)} samples (see `calibration_inputs`).
        steps: simulation steps T.
        labels: (B,) class indices; enables the accuracy figures.
        ann: the original ANN graph (accuracy reference); default: the SNN's ANN view.
        engine: how to run the SNN (default: the reference interpreter); e.g.
            ``Engine("torch", n3ml.backends.torch.run, {"dtype": "float64"})``.
    Returns:
        {"steps", "samples", "engine", "seconds", "layers": [{"node", "correlation", "ann_mean",
        "snn_rate_mean", "saturated"}], "accuracy": {"ann": {out: acc}, "snn": {out: {t: acc}}}}
    """
    engine = engine or REFERENCE
    t0 = time.perf_counter()
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.Neuron) and p.spiking]
    view = ann_view(snn)
    acts = activations(view, inputs, neurons)
    b = next(iter(inputs.values())).shape[0]
    rates = {n: [] for n in neurons}
    outs: dict[str, list[np.ndarray]] = {o: [] for o in snn.output_names}
    for lo in range(0, b, batch):
        part = {k: v[lo:lo + batch] for k, v in inputs.items()}
        res = simulate(snn, part, steps, neurons, engine)
        for n in neurons:
            rates[n].append(np.asarray(res.states[n], dtype=np.float64).mean(axis=0))
        for o in outs:
            outs[o].append(np.asarray(res.outputs[o], dtype=np.float64))
    layers = []
    for n in neurons:
        r = np.concatenate(rates[n]).reshape(-1)
        a = acts[n].reshape(-1)
        layers.append({"node": n, "correlation": _corr(a, r), "ann_mean": float(a.mean()),
                       "snn_rate_mean": float(r.mean()), "saturated": float((a > 1).mean())})
    rep: dict[str, Any] = {"steps": steps, "samples": int(b), "engine": engine.name, "layers": layers}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        ref = ann if ann is not None else view
        ann_out = activations(ref, inputs, [])
        acc_ann, acc_snn = {}, {}
        ann_outs = ref.output_names
        for i, o in enumerate(snn.output_names):
            vals = np.concatenate(outs[o], axis=1)
            acc_snn[o] = {str(t): float((decode(snn, o, vals, t).argmax(-1) == labels).mean())
                          for t in checkpoints(steps)}
            ao = o if o in ann_out else (ann_outs[i] if i < len(ann_outs) else None)
            if ao is not None:
                acc_ann[o] = float((ann_out[ao].argmax(-1) == labels).mean())
        rep["accuracy"] = {"ann": acc_ann, "snn": acc_snn}
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    return rep


def _corr(a: np.ndarray, r: np.ndarray) -> float | None:
    if a.std() == 0 or r.std() == 0:
        return None
    return float(np.corrcoef(a, r)[0, 1])


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
    device: str = "cpu"

    def _engine(self, context: dict[str, Any]) -> Engine:
        eng = engine_from(context, self.engine)
        if self.device != "cpu" and "device" in eng.options:
            eng = eng._replace(options={**eng.options, "device": self.device})
        return eng

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        context = {} if context is None else context
        inputs, labels = calibration_inputs(graph, context_calibration(context, self.calibration),
                                            samples=self.samples)
        steps = self.steps or int(context.get("steps") or 100)
        rep = conversion_report(graph, inputs, steps=steps, labels=labels, ann=context.get("ann"),
                                engine=self._engine(context))
        if context.get("report") is None:
            context["report"] = {}
        context["report"].update(rep)
        log.info("%s", format_report(rep))
        return graph
