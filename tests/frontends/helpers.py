"""Shared checks of the frontend tests: run a traced graph on the reference interpreter and the executor."""

from __future__ import annotations

import numpy as np
import torch

from n3ml.ir import Graph
from n3ml.ir.interp import run as interp_run


def run_graph(graph: Graph, x: np.ndarray, out: str = "out") -> dict[str, np.ndarray]:
    """Outputs of `graph` on input x (T, B, *shape): reference interpreter (float64) and torch executor."""
    feed = {graph.input_names[0]: np.asarray(x, dtype=np.float64)}
    res = {"interp": interp_run(graph, feed).outputs[out]}
    from n3ml.backends.torch import run as exec_run

    got = exec_run(graph, feed).outputs[out]
    res["executor"] = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    return res


def run_steps(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """A per-step model run over x (T, B, ...): outputs stacked to (T, B, ...)."""
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y = model(x[t])
            outs.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(outs).double().numpy()


def assert_same_spikes(graph: Graph, x: torch.Tensor, expected: np.ndarray, *, lo: float = 0.02,
                       hi: float = 0.9, out: str = "out") -> None:
    """Identical spikes at every step, on both engines; the activity must be neither silent nor saturated."""
    rate = float(np.mean(expected))
    assert lo <= rate <= hi, f"test input gives spike rate {rate:.3f}; choose weights that exercise the neurons"
    for engine, got in run_graph(graph, x.double().numpy(), out).items():
        assert got.shape == expected.shape, engine
        bad = np.argwhere(got != expected)
        assert bad.size == 0, f"{engine}: {len(bad)} spikes differ, first at (t, b, i) = {tuple(bad[0])}"


def boost(model: torch.nn.Module, gain: float = 3.0, bias: float = 0.2) -> torch.nn.Module:
    """Scale synaptic weights so random inputs drive the neurons well above and below threshold."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                m.weight.mul_(gain)
                if m.bias is not None:
                    m.bias.add_(bias)
    return model
