"""The emitted Lava program is the package's `n3ml/backends/lava/runtime.py` copied verbatim next to the
network as data: it imports without Lava (its layout functions are tested here with numpy alone), never
imports n3ml (the Lava venv has no n3ml), and `-O source=...` and node names reach it only as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget
from n3ml.backends.lava import emit as lava_emit
from n3ml.backends.lava import runtime as lava_runtime
from n3ml.backends.lava.lower import lower
from n3ml.ir import interp

from ..nest.runtime_checks import SIMULATORS, any_names, hostile, hostile_graph, lint, run_without_n3ml  # noqa: F401
from .test_lava import LAVA_PY, WHY, spikes

needs_lava = pytest.mark.skipif(LAVA_PY is None, reason=WHY or "the Lava venv is missing")


def test_runtime_is_clean_standalone_code():
    assert lint(Path(lava_runtime.__file__)) == []


@pytest.mark.parametrize("shape,conv", [((5,), False), ((3, 2, 4), True)])
def test_layouts_round_trip_without_lava(shape, conv):
    """n3ml (T, B, *shape) -> Lava's layout -> back is the identity; block-diagonal Dense weights map
    sample b's inputs to sample b's outputs only."""
    rng = np.random.default_rng(0)
    T, B = 4, 3
    x = rng.integers(0, 9, (T, B) + shape).astype(float)
    data = lava_runtime.to_lava(x, shape, conv, T + 2, np.float64)
    assert data.shape == lava_runtime.lava_shape(shape, conv, B) + (T + 2,)
    np.testing.assert_array_equal(lava_runtime.from_lava(data, shape, conv, B, 0, T), x)
    np.testing.assert_array_equal(lava_runtime.from_lava(data, shape, conv, B, 1, T - 1), x[1:])
    n = int(np.prod(shape))
    w = rng.normal(size=(2, n))
    big = lava_runtime.dense_weights(w, B, (shape, conv), ((2,), False))
    y = big @ data[..., 0].reshape(-1)
    np.testing.assert_allclose(y.reshape(B, 2), x[0].reshape(B, n) @ w.T)


def test_help_runs_without_lava_and_without_n3ml(tmp_path):
    g = hostile_graph("ok_")
    LavaTarget().emit(g, tmp_path, steps=6)
    r = run_without_n3ml(tmp_path / "run.py", ["--help"], block=SIMULATORS)
    assert r.returncode == 0, r.stderr
    assert "--record" in r.stdout


def test_hostile_source_and_names_are_json_strings(tmp_path, any_names):  # noqa: F811
    """`source` and node names that would break out of a docstring, a string or a comment: the program is
    the runtime byte for byte and the values are JSON strings, read back unchanged. (The target refuses
    such a `-O source=` up front; the emitter is called directly to show it would not need that.)"""
    bad = hostile(tmp_path / "pwned")
    out = tmp_path / "prog"
    out.mkdir()
    lava_emit.emit(lower(hostile_graph(bad)), out, steps=8, source=bad)
    assert (out / "run.py").read_bytes() == Path(lava_runtime.__file__).read_bytes()
    desc = json.loads((out / "network.json").read_text())
    assert desc["source"] == bad and desc["graph"] == bad + "g"
    assert set(desc["populations"]) == {bad + "in", bad + "lif"} and set(desc["outputs"]) == {bad + "out"}
    net = lava_runtime.Network(out)  # the runtime reads it back as it is
    assert net.spec["source"] == bad and net.pops[bad + "in"]["shape"] == (5,)


@needs_lava
@pytest.mark.lava
def test_hostile_program_runs_on_lava_and_the_payload_never_runs(tmp_path, any_names):  # noqa: F811
    marker = tmp_path / "pwned"
    bad = hostile(marker)
    g = hostile_graph(bad)
    for n, p in list(g.nodes.items()):  # Lava's LIF resets to 0
        if n.endswith("lif"):
            g.replace(n, v_reset=0.0)
    out = tmp_path / "prog"
    out.mkdir()
    lava_emit.emit(lower(g), out, steps=None, source=bad)
    x = spikes(g, T=12, B=2, p=0.5)
    np.savez(tmp_path / "in.npz", **x)
    r = subprocess.run(LavaTarget().run_argv(out) + ["--input", str(tmp_path / "in.npz"), "--record", bad + "lif",
                                                     "-o", str(tmp_path / "o.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = interp.run(g, x, record=[bad + "lif"])
    with np.load(tmp_path / "o.npz", allow_pickle=False) as f:
        assert ref.outputs[bad + "out"].sum() > 3
        np.testing.assert_array_equal(f[bad + "out"], ref.outputs[bad + "out"])
        assert f"state/{bad}lif.v" in f.files
    assert not marker.exists()
