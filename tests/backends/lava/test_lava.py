"""The Lava backend: refusals up front, the emitted program, and bit-exact runs in the Lava venv.

The runs need .venv-lava (`make setup-lava`, which `make test` does); without it they are skipped
with the reason. Lava runs are slow to start (one OS process per Lava process): few steps, batch 3.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget, lava_python
from n3ml.errors import N3mlError, UnsupportedError
from n3ml.ir import Graph, interp, prims as P
from n3ml.ir.text import load
from n3ml.passes.quantize import Quantize

GRAPHS = Path(__file__).resolve().parents[3] / "examples" / "graphs"

try:
    LAVA_PY, WHY = lava_python(), ""
except N3mlError as e:
    LAVA_PY, WHY = None, str(e)
needs_lava = pytest.mark.skipif(LAVA_PY is None, reason=WHY or "the Lava venv is missing")


def lava_variant(name: str, quantized: bool, exp_max: int = -1) -> Graph:
    """Example graphs as Lava can run them: reset to 0 (Lava's LIF), no refractoriness in fixed_pt,
    no LI readout; `quantized` runs quantize{profile=loihi2}."""
    g = load(GRAPHS / f"{name}.n3ml")
    for n, p in list(g.nodes.items()):
        if isinstance(p, (P.IF, P.LIF, P.CubaLIF)):
            g.replace(n, reset="to-value", v_reset=0.0, **({"refractory": 0} if quantized else {}))
    if name == "recurrent":
        for n in ("out", "readout", "fc_out"):
            g.remove(n)
    return Quantize(profile="loihi2", weight_exp_max=exp_max).apply(g) if quantized else g


def spikes(g: Graph, T: int, B: int, seed: int = 1, p: float = 0.3) -> dict[str, np.ndarray]:
    return {n: (np.random.default_rng(seed).random((T, B) + tuple(g.nodes[n].shape)) < p).astype(float)
            for n in g.input_names}


def run_lava(g: Graph, x: dict, tmp: Path) -> dict[str, np.ndarray]:
    t = LavaTarget()
    t.check(g)
    out = tmp / "prog"
    out.mkdir()
    t.emit(g, out)
    np.savez(tmp / "in.npz", **x)
    r = subprocess.run(t.run_argv(out) + ["--input", str(tmp / "in.npz"), "-o", str(tmp / "out.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp / "out.npz") as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------- without Lava


def test_missing_venv_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("N3ML_LAVA_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(N3mlError, match="make setup-lava"):
        LavaTarget().run_argv(tmp_path)


def test_refuses_subtract_reset_naming_the_node():
    with pytest.raises(UnsupportedError, match=r"node `lif1` \(LIF\).*resets v to 0"):
        LavaTarget().check(load(GRAPHS / "spiking_mlp.n3ml"))


def test_refuses_unsupported_primitive_naming_it():
    g = Graph(name="g")
    g.add("x", P.Input(shape=(1, 4, 4)))
    g.add("mp", P.MaxPool2d(kernel=(2, 2)), "x")
    g.add("out", P.Output(), "mp")
    with pytest.raises(UnsupportedError, match=r"node `mp` \(MaxPool2d\).*does not support"):
        LavaTarget().check(g)


def test_refuses_unequal_latencies_into_an_add():
    g = Graph(name="g")
    g.add("x", P.Input(shape=(3,)))
    g.add("fa", P.Dense(weight=np.ones((3, 3))), "x")
    g.add("n1", P.IF(reset="to-value"), "fa")
    g.add("fb", P.Dense(weight=np.ones((3, 3))), "n1")
    g.add("fc", P.Dense(weight=np.ones((3, 3))), "x")
    g.add("sum", P.Add(), "fb", "fc")
    g.add("n2", P.IF(reset="to-value"), "sum")
    g.add("out", P.Output(), "n2")
    with pytest.raises(UnsupportedError, match=r"node `n2`.*different latencies"):
        LavaTarget().check(g)


def test_refuses_weights_beyond_8_bits():
    g = load(GRAPHS / "quantized.n3ml")
    g.replace("fc1", weight=g.nodes["fc1"].weight * 3)
    with pytest.raises(UnsupportedError, match=r"node `fc1`.*8-bit mantissa"):
        LavaTarget().check(g)


def test_emits_a_readable_program(tmp_path):
    g = lava_variant("spiking_cnn", quantized=True)
    LavaTarget().emit(g, tmp_path)
    src = (tmp_path / "run.py").read_text()
    compile(src, "run.py", "exec")
    for what in ("Loihi2SimCfg", 'RUN_CFG = "fixed_pt"', "Conv(", "Dense(", "LIF(", "Source(", "Sink("):
        assert what in src
    with np.load(tmp_path / "weights.npz") as w:
        assert w["fc.weight"].dtype.kind == "i"


# ------------------------------------------------------------------- with Lava

EXAMPLES = ["quantized", "cuba", "spiking_cnn", "spiking_mlp", "recurrent"]


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("name", EXAMPLES)
def test_fixed_pt_is_bit_identical_to_the_reference(name, tmp_path):
    g = load(GRAPHS / "quantized.n3ml") if name == "quantized" else lava_variant(name, quantized=True)
    x = spikes(g, T=25, B=3)
    ref = interp.run(g, x).outputs
    got = run_lava(g, x, tmp_path)
    try:
        from n3ml.backends.torch import run as torch_run
        exe = torch_run(g, x).outputs
    except ImportError:
        exe = ref
    for k in ref:
        assert ref[k].sum() > 0, "a test without spikes proves nothing"
        np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{name}:{k}")
        np.testing.assert_array_equal(exe[k], ref[k], err_msg=f"executor {name}:{k}")


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("name", ["cuba", "spiking_cnn", "spiking_mlp", "recurrent"])
def test_floating_pt_agrees_with_the_reference(name, tmp_path):
    g = lava_variant(name, quantized=False)
    x = spikes(g, T=25, B=3)
    ref = interp.run(g, x).outputs
    got = run_lava(g, x, tmp_path)
    for k in ref:
        assert ref[k].sum() > 0
        agree = float(np.mean(got[k] == ref[k]))
        assert agree >= 0.99, f"{name}:{k}: {agree:.4f} of spikes agree"


@needs_lava
@pytest.mark.lava
def test_bias_and_initial_voltage_survive_lavas_latency(tmp_path):
    g = lava_variant("spiking_mlp", quantized=False)  # fc1 has a bias
    for n in ("lif1", "lif2"):
        g.replace(n, v_init=0.4)
    q = lava_variant("spiking_mlp", quantized=True)
    for n in ("lif1", "lif2"):
        q.replace(n, v_init=int(q.nodes[n].theta) // 3)
    for i, graph in enumerate((g, q)):
        x = spikes(graph, T=20, B=2, seed=3)
        ref = interp.run(graph, x).outputs["out"]
        (tmp_path / str(i)).mkdir()
        got = run_lava(graph, x, tmp_path / str(i))["out"]
        assert np.mean(got == ref) >= (0.99 if i == 0 else 1.0)


@needs_lava
@pytest.mark.lava
def test_graded_input_and_recorded_states_are_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    g = Graph(name="graded")
    g.add("x", P.Input(shape=(6,), kind="analog"))  # graded spikes: integer payloads
    g.add("fc", P.Dense(weight=rng.integers(-50, 50, (4, 6)).astype(np.int64)), "x")
    g.add("n", P.FixedCubaLIF(du=3000, dv=300, theta=64 * 500, reset="to-value"), "fc")
    g.add("fc2", P.Dense(weight=rng.integers(-100, 120, (3, 4)).astype(np.int64)), "n")
    g.add("r", P.FixedCubaLIF(du=4096, dv=200, theta=(2**17 - 1) << 6, reset="to-value"), "fc2")
    g.add("out", P.Output(), "r")
    x = {"x": rng.integers(0, 17, (12, 2, 6)).astype(float)}
    ref = interp.run(g, x, record=["n", "r"])
    t = LavaTarget()
    (tmp_path / "p").mkdir()
    t.emit(g, tmp_path / "p")
    np.savez(tmp_path / "in.npz", **x)
    r = subprocess.run(t.run_argv(tmp_path / "p") + ["--input", str(tmp_path / "in.npz"), "--record", "n,r",
                                                     "-o", str(tmp_path / "o.npz")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz") as f:
        for k in ("n.v", "n.i", "r.v", "r.i"):
            assert np.abs(ref.states[k]).max() > 0
            np.testing.assert_array_equal(f[f"state/{k}"], ref.states[k], err_msg=k)
