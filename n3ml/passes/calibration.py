"""Calibration data and the ANN view of a converted SNN, shared by `normalize` and the conversion report.

A leaf of the passes package: `normalize` (which reports after rescaling) and `report` both read
calibration data and run the ANN view, and neither needs to import the other for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..commands._inputs import validate_array
from ..errors import N3mlError
from ..io import read_npz
from ..ir import Graph
from ..ir import prims as P
from ..ir.interp import run as interp_run
from .base import PassError
from .cleanup import insert_on_edge


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
