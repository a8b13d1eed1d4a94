"""Calibration data and the ANN view of a converted SNN, shared by `normalize` and the conversion report.

A leaf of the passes package: `normalize` (which reports after rescaling) and `report` both read
calibration data and run the ANN view, and neither needs to import the other for it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np

from ..commands._inputs import validate_array
from ..errors import N3mlError
from ..io import read_npz
from ..ir import Graph
from ..ir import prims as P
from ..ir.interp import run as interp_run
from .base import Engine, PassError, progress
from .cleanup import insert_on_edge

REFERENCE = Engine("reference", interp_run)

# Memory a batched run may hold at once (the recorded sequences dominate); `context["memory_budget"]`
# (bytes) or an explicit batch size overrides it.
MEMORY_BUDGET = 512 << 20
MAX_BATCH = 256


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
                batch: int = 512, engine: Engine | None = None) -> dict[str, np.ndarray]:
    """Run an ANN graph (or a converted graph's ANN view) for one step on (B, *shape) inputs; return
    {node: (B, *shape)} for `nodes` (default: all nodes) and the outputs. Holds every activation:
    for large data use `activation_batches`, which streams them."""
    nodes = [n for n in (nodes if nodes is not None else graph.nodes) if not isinstance(graph.nodes[n], P.Output)]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in [*nodes, *graph.output_names]}
    for _, acts in activation_batches(graph, inputs, nodes, engine=engine, batch=batch):
        for n, v in acts.items():
            parts[n].append(v)
    return {n: np.concatenate(v) for n, v in parts.items()}


# --------------------------------------------------------------- batched runs


def held_runner(engine: Engine | None, graph: Graph) -> Callable[..., tuple[dict, dict]]:
    """`f(inputs {name: (B, *shape)}, steps, record) -> (outputs (T, B, ...), time means (B, ...))` for
    `graph` on `engine`: its `held` session where it has one (compiled once, reduced on the device),
    else its `run` with the inputs broadcast over time."""
    engine = engine or REFERENCE
    if engine.held is not None:
        return engine.held(graph, **engine.options)

    def run(inputs: dict[str, np.ndarray], steps: int, record: list[str]):
        data = {k: np.ascontiguousarray(np.broadcast_to(v[None], (steps, *v.shape))) for k, v in inputs.items()}
        res = engine.run(graph, data, steps, record=list(record), **engine.options)
        means = {n: np.asarray(res.states[n], dtype=np.float64).mean(axis=0) for n in record}
        return {k: np.asarray(v, dtype=np.float64) for k, v in res.outputs.items()}, means

    return run


def auto_batch(graph: Graph, record: list[str], steps: int, *, itemsize: int = 8,
               budget: int = MEMORY_BUDGET, held: bool = False) -> int:
    """Samples per batch so that one batch fits `budget` bytes.

    A plain engine run (`held` False) holds the recorded nodes' full (T, B, ...) sequences in the
    engine's `itemsize`, their float64 time means on the host, and the largest node twice (what a run
    holds while computing the next). A held session (`Engine.held`: time means summed on the device
    while the run goes, the run streamed in time chunks of bounded size) holds per sample the recorded
    nodes' float64 sums and host means, one step of every node (a chunk is at least one step) and the
    outputs' sequences; the executor's streaming window (`Executor.stream_bytes`) comes on top."""
    types = graph.verify()
    size = {n: math.prod(types[n].shape) for n in graph.nodes}
    rec = sum(size[n] for n in record)
    if held:
        outs = sum(size[n] for n in graph.output_names)
        per_sample = 16 * rec + itemsize * sum(size.values()) + steps * itemsize * outs
    else:
        per_sample = (steps * itemsize + 8) * rec + 2 * steps * itemsize * max(size.values(), default=1)
    return max(1, min(MAX_BATCH, budget // max(per_sample, 1)))


def engine_itemsize(engine: Engine | None) -> int:
    """Bytes per value the engine computes in (its `dtype` option; float64 by default)."""
    dt = str((engine.options if engine else {}).get("dtype", "float64"))
    return 4 if dt in ("float32", "float", "torch.float32") else 8


def batches(b: int, batch: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, b, batch):
        yield lo, min(b, lo + batch)


def activation_batches(graph: Graph, inputs: dict[str, np.ndarray], nodes: list[str], *,
                       engine: Engine | None = None, batch: int = 0, context: dict[str, Any] | None = None,
                       desc: str = "calibration") -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield (first sample, {node: (b, *shape)} for `nodes` and the graph's outputs) batch by batch:
    one step of `graph` (an ANN) on the engine, `batch` samples at a time (0: as many as fit
    `context["memory_budget"]`), with a progress bar over the samples."""
    nodes = [n for n in nodes if not isinstance(graph.nodes[n], P.Output)]
    run = held_runner(engine, graph)
    b = next(iter(inputs.values())).shape[0]
    budget = int((context or {}).get("memory_budget") or MEMORY_BUDGET)
    batch = batch or auto_batch(graph, nodes, 1, itemsize=engine_itemsize(engine), budget=budget)
    with progress(context, desc, b, "samples") as bar:
        for lo, hi in batches(b, batch):
            outs, means = run({k: v[lo:hi] for k, v in inputs.items()}, 1, nodes)
            means.update({k: v[0] for k, v in outs.items()})
            yield lo, means
            bar.update(hi - lo)


# --------------------------------------------------------------- percentiles


def dust(itemsize: int) -> float:
    """Activations at most this fraction of a layer's maximum are float dust of exact cancellations
    (a - a), not positive activations: 1e-9 in float64, 1e-5 (~100 ulp) in float32."""
    return 1e-9 if itemsize == 8 else 1e-5


class TailPercentile:
    """The `q`-th percentile (numpy's default linear interpolation) of the positive values among at
    most `n` values fed in batches, per group (a layer, or each channel of one), in bounded memory.

    The percentile of N sorted positive values v_0 <= ... <= v_{N-1} interpolates v_j and v_{j+1} at
    j = floor(q/100 (N - 1)); only the N - j <= (1 - q/100) N + 2 largest values matter. So it keeps
    the k = ceil((1 - q/100) n) + 2 largest values seen (exact top-k: a candidate is kept only if it
    beats the current k-th) and the count N: exact, in k values per group (99.9: 0.1 % of the data).

    "Positive" is above `dust` times the maximum seen so far; the batch definition uses the final
    maximum, so the count can differ only by values between `dust` x an earlier maximum and `dust` x
    the final one (float dust; the rank moves by at most their number).
    """

    def __init__(self, q: float, n: int, groups: int = 1, dust_rel: float = 1e-9):
        self.q = q
        self.k = min(n, math.ceil((1.0 - q / 100.0) * n) + 2)
        self.dust = dust_rel
        self.top = [np.empty(0) for _ in range(groups)]
        self.count = np.zeros(groups, dtype=np.int64)
        self.max = np.zeros(groups)
        self.evicted = np.zeros(groups, dtype=bool)  # False: `top` holds every positive value seen

    def feed(self, a: np.ndarray, group: int = 0) -> None:
        a = a.reshape(-1)
        if a.size == 0:
            return
        self.max[group] = max(self.max[group], float(a.max()))
        thr = self.dust * self.max[group]
        self.count[group] += int(np.count_nonzero(a > thr))
        top = self.top[group]
        floor = top.min() if top.size >= self.k else thr
        cand = a[a > max(floor, thr)]
        if cand.size == 0:
            return
        top = np.concatenate([top, cand.astype(np.float64)])
        if top.size > self.k:
            top = np.partition(top, top.size - self.k)[top.size - self.k:]
            self.evicted[group] = True
        self.top[group] = top

    def value(self, group: int = 0) -> float:
        """The percentile, or 1.0 for a group with no positive value (a silent layer keeps its scale)."""
        top = self.top[group]
        top = np.sort(top[top > self.dust * self.max[group]])
        n = int(self.count[group]) if self.evicted[group] else top.size  # all kept: the count is exact
        if n == 0 or top.size == 0:
            return 1.0
        q = np.float64(self.q) / 100  # numpy's 'linear' method, term by term (same rounding)
        virtual = (n - 1) * q
        j = int(np.floor(virtual))
        gamma = virtual - j
        lo, hi = _order(top, n, j), _order(top, n, min(j + 1, n - 1))
        diff = hi - lo
        return float(hi - diff * (1 - gamma) if gamma >= 0.5 else lo + diff * gamma)


def _order(top: np.ndarray, n: int, j: int) -> np.float64:
    """The j-th smallest of n values of which `top` (sorted) holds the largest."""
    i = j - (n - top.size)
    if i < 0:
        raise PassError(f"internal: percentile rank {j} of {n} is below the {top.size} values kept")
    return top[i]
