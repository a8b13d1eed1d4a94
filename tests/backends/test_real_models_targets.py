"""Real peer models (tests/frontends/corpus.py) on the hardware targets: `n3ml verify` with no -p.

A representative subset of scripts/real_models_matrix.py (which runs every model, docs/targets.md):
snnTorch's reset by subtraction (a Scale of the delayed spikes, legalized into a self-synapse on Lava),
SpikingJelly's spike counter `/ T` and Linear head (Outputs of synapse values, read through a monitor on
Lava), Norse's LICell readout (LI -> LI) and biased CubaLIF (a bias source on Lava), and a quantized
model on Lava fixed_pt. Each must agree 100% with the reference executor. Few steps, batch 2.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")
pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")
pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (make setup-peers)")

import torch  # noqa: E402

from n3ml.backends.lava import lava_python  # noqa: E402
from n3ml.cli import main  # noqa: E402
from n3ml.errors import N3mlError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402
from n3ml.ir.text import save  # noqa: E402
from n3ml.passes.legalize import legalize_for  # noqa: E402
from n3ml.registry import TARGETS, lookup  # noqa: E402

from ..frontends import corpus  # noqa: E402

pytestmark = pytest.mark.peers
CASES = {c.name: c for c in corpus.CASES}

try:
    lava_python()
    NO_LAVA = ""
except N3mlError as e:
    NO_LAVA = str(e)

try:
    import nest  # noqa: F401
    NO_NEST = ""
except Exception as e:  # noqa: BLE001 (any import failure means: no NEST here)
    NO_NEST = f"NEST is not importable: {e}"


def traced(name: str, tmp_path):
    """(model file, input file, graph) of a corpus model as its author wrote it."""
    case = CASES[name]
    dtype = torch.float32 if case.f32_only else torch.float64
    with contextlib.redirect_stdout(io.StringIO()):
        graph = trace(case.model(dtype), case.input_shape)
    feed = case.graph_input(graph, case.make_input(dtype))
    return save(graph, tmp_path / f"{name}.n3ml"), feed, graph


def verify(tmp_path, name: str, target: str, pipeline: str = "", scale: float = 0) -> list[float]:
    model, feed, graph = traced(name, tmp_path)
    if scale:
        feed = {k: np.round(v * scale) for k, v in feed.items()}
    np.savez(tmp_path / "x.npz", **feed)
    argv = ["verify", str(model), "--targets", target, "--steps", str(CASES[name].steps), "--input",
            str(tmp_path / "x.npz")] + (["-p", pipeline] if pipeline else [])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    text = out.getvalue()
    rows = [float(a) for a in re.findall(rf"^{target}\s+\S+\s+(?:spike|analog)\s+([\d.]+)%", text, re.M)]
    assert rc == 0 and rows, text
    return rows


@pytest.mark.parametrize("name", ["snntorch-tutorial5", "sj-lif-fc-counter", "sj-plif-mnist", "norse-readme",
                                  "norse-loop-mlp", "sj-containers", "snntorch-rleaky"])
def test_lava_legalization_accepts_real_models(name, tmp_path):
    """What Lava refused before: snnTorch's reset term, Outputs of synapse values, LI -> LI readouts, a bias
    into a CubaLIF, a pool feeding a Linear; all legal after the Lava pipeline (exact passes only)."""
    _, _, graph = traced(name, tmp_path)
    target = lookup(TARGETS, "lava", "target")()
    g = legalize_for(target, graph, say=None)
    target.check(g)
    assert not any(p.op in ("Scale", "MaxPool2d", "BatchNorm") for p in g.nodes.values())


def test_lava_still_refuses_a_max_of_currents_and_names_the_approximation(tmp_path):
    _, _, graph = traced("snntorch-tutorial6", tmp_path)
    with pytest.raises(N3mlError, match=r"`-p pool-after-neuron` would legalize it \(approximation"):
        legalize_for(lookup(TARGETS, "lava", "target")(), graph, say=None)


@pytest.mark.skipif(bool(NO_NEST), reason=NO_NEST or "NEST is installed")
@pytest.mark.parametrize("name", ["snntorch-tutorial5", "norse-loop-mlp", "sj-lif-fc-counter"])
def test_nest_reproduces_real_models(name, tmp_path):
    assert min(verify(tmp_path, name, "nest")) == 100.0


@pytest.mark.skipif(bool(NO_LAVA), reason=NO_LAVA or "Lava is installed")
@pytest.mark.parametrize("name", ["snntorch-tutorial5", "sj-lif-fc-counter"])
def test_lava_floating_pt_reproduces_real_models(name, tmp_path):
    """snnTorch's reset as a self-synapse (one Lava step of latency = the graph's Delay); the counter's
    `/ T` as a synapse whose value a monitor reads."""
    assert min(verify(tmp_path, name, "lava")) == 100.0


@pytest.mark.skipif(bool(NO_LAVA), reason=NO_LAVA or "Lava is installed")
def test_lava_fixed_pt_is_bit_identical_to_the_quantized_real_model(tmp_path):
    """Norse's state loop (CubaLIF with biases) quantized for Loihi 2: fixed_pt equals the quantized graph."""
    rows = verify(tmp_path, "norse-state-loop", "lava", "quantize{profile=loihi2,input_scale=16}", scale=16)
    assert min(rows) == 100.0
