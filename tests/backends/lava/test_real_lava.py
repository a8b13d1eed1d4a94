"""Real peer models (tests/frontends/corpus.py, as their authors wrote them) that need n3ml's own Lava process
or lowerings, through `n3ml verify --targets lava` (the CLI, with no -p beyond quantize):

* Norse's LSNN (`norse-memory-lsnn`): Dense -> Add -> LI (the synaptic current) -> Delay(1) -> ALIF (reset to 0,
  adaptive threshold) with a recurrent Dense, beside a CubaLIF layer; both concatenated into an LI -> LI readout.
  floating_pt: the ALIF is N3mlLIF with adaptation, the LI its u, the Concat split per population; fixed_pt
  after quantize{profile=loihi2}: one FixedCubaLIF with an integer adaptive threshold, N3mlLIF, bit-identical.
* snnTorch's Leaky with reset to zero and its CubaLIF with refractory=1 (`snntorch-zero-reset`) after
  quantize{profile=loihi2}: fixed_pt N3mlLIF with the refractory period, bit-identical.
* snnTorch's Synaptic (`snntorch-synaptic`, legalized by fold-synaptic-reset into a CubaLIF with its reset as
  delayed self-synapses) on floating_pt and fixed_pt.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")
pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")

import torch  # noqa: E402

from n3ml.backends.lava import LavaTarget  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402
from n3ml.ir import interp, prims as P  # noqa: E402
from n3ml.passes.legalize import legalize_for  # noqa: E402
from n3ml.passes.quantize import Quantize  # noqa: E402

from ...frontends import corpus  # noqa: E402
from .test_lava import VERIFY_ROW, needs_lava, verify_cli  # noqa: E402

pytestmark = [pytest.mark.peers, pytest.mark.lava]
CASES = {c.name: c for c in corpus.CASES}
INPUT_SCALE = 16  # analog inputs in [0, 1) as graded integers under quantize (scripts/real_models_matrix.py)
QUANTIZE = f"quantize{{profile=loihi2,input_scale={INPUT_SCALE},readout=voltage}}"


def traced(name: str):
    """(graph, Input name, the corpus input time-major (T, B, ...)) of a corpus model."""
    case = CASES[name]
    dtype = torch.float32 if case.f32_only else torch.float64
    with contextlib.redirect_stdout(io.StringIO()):
        graph = trace(case.model(dtype), case.input_shape)
    ((inp, x),) = case.graph_input(graph, case.make_input(dtype)).items()
    return graph, inp, x


def verify(tmp_path, graph, feed: dict, steps: int, pipeline: str = "", record=()) -> dict[str, float]:
    """{output: agreement %} of `n3ml verify --targets lava` (the CLI), which must exit 0."""
    rc, text = verify_cli(tmp_path, graph, feed, steps, pipeline, record)
    rows = {o: float(a) for o, a in re.findall(VERIFY_ROW, text, re.M)}
    assert rc == 0 and rows, text
    return rows


def emitted(graph, tmp_path, pipeline: str = "") -> dict:
    """network.json of the graph as `convert --target lava` writes it (after -p and Lava's legalization)."""
    if pipeline:  # (QUANTIZE, the only pipeline these tests give)
        graph = Quantize(profile="loihi2", input_scale=INPUT_SCALE, readout="voltage").apply(graph)
    graph = legalize_for(LavaTarget(), graph, say=None)
    (tmp_path / "prog").mkdir()
    LavaTarget().emit(graph, tmp_path / "prog")
    return json.loads((tmp_path / "prog" / "network.json").read_text())


@needs_lava
def test_norse_lsnn_runs_on_lava_floating_pt_identically(tmp_path):
    graph, inp, _ = traced("norse-memory-lsnn")
    T = 20  # longer than the corpus' 4 steps: the adaptation acts only after the ALIF's first spikes
    x = (np.random.default_rng(0).random((T, 2, 12)) < 0.4).astype(float)
    ref = interp.run(graph, {inp: x}).outputs
    lsnn = ref["out0"][..., 6:]  # cat = [lif layer (6), lsnn layer (6)]
    assert lsnn.sum() > 0, "the ALIF layer never spikes: the test proves nothing"
    no_adapt = graph.copy()
    no_adapt.replace("layer_lsnn_cell", q=0.0)
    assert not np.array_equal(interp.run(no_adapt, {inp: x}).outputs["out0"], ref["out0"]), "adaptation unused"
    desc = emitted(graph, tmp_path)
    alif = desc["populations"]["layer_lsnn_cell"]
    assert alif["process"] == "N3mlLIF" and set(alif["adapt"]) == {"a_b", "q"}
    assert "layer_lsnn_cell_syn" not in desc["populations"]  # the LI is the ALIF's current
    assert [p["population"] for p in desc["outputs"]["out0"]["parts"]] == ["layer_lif_cell", "layer_lsnn_cell"]
    assert verify(tmp_path, graph, {inp: x}, T) == {"out0": 100.0, "out1": 100.0}


@needs_lava
def test_norse_lsnn_runs_on_lava_fixed_pt_bit_identically(tmp_path):
    """quantize{profile=loihi2}: the ALIF with its LI current (the Delay moved before the current's synapses)
    is one FixedCubaLIF with threshold adaptation (db, q), N3mlLIF in fixed_pt; spikes and the readout's
    voltage bit-identical to the quantized graph."""
    graph, inp, _ = traced("norse-memory-lsnn")
    T = 20  # the adaptation acts only after the ALIF's first spikes
    feed = {inp: np.round(np.random.default_rng(1).random((T, 2, 12)) * INPUT_SCALE)}
    q = Quantize(profile="loihi2", input_scale=INPUT_SCALE, readout="voltage").apply(graph)
    alif = q.nodes["layer_lsnn_cell"]
    assert isinstance(alif, P.FixedCubaLIF) and alif.q > 0 and alif.db > 0
    ref = interp.run(q, feed).outputs["out0"]
    assert ref[..., 6:].sum() > 0, "the ALIF layer never spikes: the test proves nothing"
    free = q.copy()
    free.replace("layer_lsnn_cell", q=0)
    assert not np.array_equal(interp.run(free, feed).outputs["out0"], ref), "adaptation unused"
    desc = emitted(graph, tmp_path, QUANTIZE)
    pop = desc["populations"]["layer_lsnn_cell"]
    assert (pop["process"], set(pop["adapt"]), desc["run_cfg"]) == ("N3mlLIF", {"keep_b", "q"}, "fixed_pt")
    rows = verify(tmp_path, graph, feed, T, QUANTIZE, record=["readout"])
    assert set(rows) >= {"out0", "out1"} and all(a == 100.0 for a in rows.values()), rows


@needs_lava
def test_snntorch_zero_reset_refractory_runs_on_lava_fixed_pt_bit_identically(tmp_path):
    graph, inp, x = traced("snntorch-zero-reset")
    assert graph.nodes["lif2"].refractory == 1
    desc = emitted(graph, tmp_path, QUANTIZE)
    lif2 = desc["populations"]["lif2"]
    assert (lif2["process"], lif2["refractory"], desc["run_cfg"]) == ("N3mlLIF", 1, "fixed_pt")
    feed = {inp: np.round(x * INPUT_SCALE) if graph.nodes[inp].kind != "spike" else x}
    q = Quantize(profile="loihi2", input_scale=INPUT_SCALE, readout="voltage").apply(graph)
    ref = interp.run(q, feed).outputs
    free = q.copy()
    free.replace("lif2", refractory=0)
    assert not np.array_equal(interp.run(free, feed).outputs["out"], ref["out"]), "the refractory period is unused"
    rows = verify(tmp_path, graph, feed, CASES["snntorch-zero-reset"].steps, QUANTIZE)
    assert rows and all(a == 100.0 for a in rows.values()), rows


@needs_lava
@pytest.mark.parametrize("quantized", [False, True])
def test_snntorch_synaptic_runs_on_lava(quantized, tmp_path):
    graph, inp, x = traced("snntorch-synaptic")
    feed = {inp: np.round(x * INPUT_SCALE) if quantized and graph.nodes[inp].kind != "spike" else x}
    rows = verify(tmp_path, graph, feed, CASES["snntorch-synaptic"].steps, QUANTIZE if quantized else "")
    assert rows and all(a == 100.0 for a in rows.values()), rows
