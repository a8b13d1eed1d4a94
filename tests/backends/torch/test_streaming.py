"""Inference streamed in time chunks (`Executor.forward(chunk=...)`) computes what one run over all
steps computes: every stateful node (neurons on both paths, Delay, PoissonRate, Latency, cycles)
hands its state on to the next chunk."""

from pathlib import Path

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile
from n3ml.errors import N3mlError
from n3ml.ir.text import load

from ...strategies import random_inputs
from .test_reference import _kitchen_sink

EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "graphs").glob("*.n3ml"))


def _sink_inputs(T):
    rng = np.random.default_rng(0)
    return {"img": torch.as_tensor(rng.random((T, 2, 2, 6, 6))), "vec": torch.as_tensor(rng.normal(0.5, 1, (T, 2, 6))),
            "seq": torch.as_tensor((rng.random((T, 2, 2, 9)) < 0.5).astype(float))}


def _assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("record", [False, True])
@pytest.mark.parametrize("chunk", [1, 5, 23])
def test_every_primitive_streams_exactly(chunk, record):
    g = _kitchen_sink()
    exe = compile(g, dtype=torch.float64)
    x = _sink_inputs(24)
    rec = list(g.nodes) if record else []
    with torch.no_grad():
        whole = exe(x, record=rec)
        parts = exe(x, record=rec, chunk=chunk)
    if record:
        _assert_same(whole[0], parts[0])
        _assert_same(whole[1], parts[1])
        assert whole[1]["ifn"].sum() > 0 and whole[1]["lat"].sum() > 0 and whole[1]["poi"].sum() > 0
    else:
        _assert_same(whole, parts)
        assert whole["out_cuba"].sum() > 0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_graphs_stream_exactly(path):
    g = load(path)
    exe = compile(g, dtype=torch.float64)
    x = {k: torch.as_tensor(v) for k, v in random_inputs(g, 40, 3, seed=2).items()}
    with torch.no_grad():
        _assert_same(exe(x), exe(x, chunk=7))


def test_large_inference_runs_stream_by_themselves(monkeypatch):
    g = load(EXAMPLES[[p.stem for p in EXAMPLES].index("spiking_cnn")])
    exe = compile(g, dtype=torch.float64)
    x = {k: torch.as_tensor(v) for k, v in random_inputs(g, 30, 2, seed=4).items()}
    with torch.no_grad():
        whole = exe(x)
        sizes = []
        real = exe._run
        monkeypatch.setattr(exe, "_run", lambda run, *a: sizes.append(run.T) or real(run, *a))
        exe.stream_bytes = 1  # any run is "large": one step per chunk
        _assert_same(whole, exe(x))
    assert sizes == [1] * 30
    sizes.clear()
    exe(x)["out"].sum().backward()  # with gradients: one run over all steps
    assert sizes == [30]


def test_chunk_is_checked():
    exe = compile(load(EXAMPLES[0]))
    x = torch.zeros(4, 1, *exe.graph.nodes[exe.input_names[0]].shape)
    with pytest.raises(N3mlError, match="chunk must be a positive number of steps, found 0"):
        exe(x, chunk=0)
    with pytest.raises(N3mlError, match="inference only"):
        exe(x, chunk=2)
