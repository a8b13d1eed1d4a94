"""SpikingJelly's SynapseFilter on Lava: n3ml's N3mlSynapseFilter process (runtime.py `filter_models`), floating_pt
bit-identical to the float graph and fixed_pt bit-identical to the quantized graph, through `n3ml verify` (the CLI)
in the Lava venv:

* the two corpus models that use it (tests/frontends/corpus.py, rebuilt from SpikingJelly's docstring and its
  rsnn_sequential_fmnist.py example): `sj-synapse-filter` reads the filter's current as its Output,
  `sj-rsnn-stateful-synapse` sends it as graded spikes through a Dense into an IF layer;
* a graph with per-element leaks and a non-zero start, a filter behind a Delay(2) (its identity input delayed
  by a DelayDense) whose graded current reaches a neuron on a path one step shorter (a delayed graded Dense),
  batch 3.

Without .venv-lava the runs skip with the reason (as tests/backends/lava/test_lava.py); without SpikingJelly the
corpus cases do.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget
from n3ml.backends.lava.lower import lower
from n3ml.errors import UnsupportedError
from n3ml.ir import interp, prims as P
from n3ml.ir.text import parse
from n3ml.passes.legalize import legalize_for
from n3ml.passes.quantize import Quantize

from .test_lava import VERIFY_ROW, needs_lava, verify_cli

pytestmark = pytest.mark.lava
INPUT_SCALE = 16  # analog inputs in [0, 1) as graded integers under quantize (scripts/real_models_matrix.py)
QUANTIZE = f"quantize{{profile=loihi2,input_scale={INPUT_SCALE},readout=voltage}}"
FILTERS = {"sj-synapse-filter": ("syn", "sn2"), "sj-rsnn-stateful-synapse": ("fc_2", "fc_4")}  # (filter, neuron)


def verify(tmp_path, graph, feed: dict, steps: int, pipeline: str = "", record=(),
           inexact=()) -> dict[str, float]:
    """{output or state: agreement %} of `n3ml verify --targets lava`, which must exit 0 with max |err| 0 on
    every row but the `inexact` ones (a float neuron's v, which Lava holds in threshold units: < 1e-12)."""
    rc, text = verify_cli(tmp_path, graph, feed, steps, pipeline, record)
    rows = {o: float(a) for o, a in re.findall(VERIFY_ROW, text, re.M)}
    errs = dict(re.findall(r"^lava\s+(\S+)\s+(?:spike|analog)\s+.*\s(\S+)$", text, re.M))
    assert rc == 0 and rows and set(errs) == set(rows), text
    assert all(float(e) == 0 if o not in inexact else float(e) < 1e-12 for o, e in errs.items()), text
    return rows


def emitted(graph, tmp_path) -> dict:
    graph = legalize_for(LavaTarget(), graph, say=None)
    (tmp_path / "prog").mkdir()
    LavaTarget().emit(graph, tmp_path / "prog")
    return json.loads((tmp_path / "prog" / "network.json").read_text())


def corpus_model(name: str, T: int, B: int = 2):
    """(graph, Input name, analog input (T, B, n) in [0, 1)) of a corpus model, traced as its author wrote it."""
    pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (make setup-peers)")
    import torch

    from n3ml.frontends.torch import trace

    from ...frontends import corpus

    case = next(c for c in corpus.CASES if c.name == name)
    with contextlib.redirect_stdout(io.StringIO()):
        graph = trace(case.model(torch.float64), case.input_shape)
    (inp,) = graph.input_names
    x = np.random.default_rng(3).random((T, B) + tuple(case.input_shape))
    return graph, inp, x


@needs_lava
@pytest.mark.peers
@pytest.mark.parametrize("name", sorted(FILTERS))
def test_corpus_model_runs_on_lava_floating_pt_identically(name, tmp_path):
    """20 steps (the corpus' 4 barely let the filter decay): output and the filter's current identical."""
    graph, inp, x = corpus_model(name, 20)
    filt, _ = FILTERS[name]
    assert isinstance(graph.nodes[filt], P.SynapseFilter)
    pop = emitted(graph, tmp_path)["populations"][filt]
    # it holds v_init until its input arrives: its latency, one step behind the neuron it filters
    assert (pop["kind"], pop["process"], pop["start"]) == ("filter", "N3mlSynapseFilter", pop["latency"])
    ref = interp.run(graph, {inp: x}, record=[filt]).states[filt]
    assert ref.max() > 1.5 and np.any((ref > 0) & (ref < 1)), "the filter never accumulates or decays"
    rows = verify(tmp_path, graph, {inp: x}, 20, record=[filt])
    assert rows == {"out": 100.0, f"state/{filt}.v": 100.0}


@needs_lava
@pytest.mark.peers
@pytest.mark.parametrize("name", sorted(FILTERS))
def test_corpus_model_runs_on_lava_fixed_pt_bit_identically(name, tmp_path):
    """quantize{profile=loihi2}: the FixedSynapseFilter on fixed_pt, the neuron after it an N3mlLIF at input
    shift 0; output, the filter's integer current and the neuron's v and i identical."""
    graph, inp, x = corpus_model(name, 20)
    filt, after = FILTERS[name]
    feed = {inp: np.round(x * INPUT_SCALE)}
    q = Quantize(profile="loihi2", input_scale=INPUT_SCALE, readout="voltage").apply(graph)
    assert isinstance(q.nodes[filt], P.FixedSynapseFilter)
    desc = emitted(q, tmp_path)
    assert desc["run_cfg"] == "fixed_pt" and desc["populations"][filt]["process"] == "N3mlSynapseFilter"
    if q.nodes[after].input_shift == 0:  # (the rsnn's IF reads the filter; sj-synapse-filter's reads spikes)
        assert desc["populations"][after]["process"] == "N3mlLIF"
        assert desc["populations"][after]["input_shift"] == 0
    rows = verify(tmp_path, graph, feed, 20, QUANTIZE, record=[filt, after])
    assert set(rows) == {"out", f"state/{filt}.v", f"state/{after}.v", f"state/{after}.i"}
    assert all(a == 100.0 for a in rows.values()), rows


RNG = np.random.default_rng(11)
W1, W2, W3 = (np.round(RNG.normal(m, 0.45, s), 3) for m, s in ((0.45, (6, 8)), (0.3, (4, 6)), (0.2, (4, 8))))


def _t(a) -> str:
    a = np.asarray(a, dtype=np.float64)
    return f"tensor<f64>({', '.join(map(str, a.shape))})[{', '.join(repr(float(v)) for v in a.reshape(-1))}]"


GRAPH = f"""n3ml 1
graph filters(dt=1.0ms, scheme=euler) {{
  x = Input(shape=(8,), kind=spike)
  fc1 = Dense(x, weight={_t(W1)})
  n1 = LIF(fc1, tau=3.0ms, theta=1.0, reset=subtract)
  f = SynapseFilter(n1, leak={_t([0.25, 0.5, 0.1, 0.75, 0.3, 0.05])}, v_init={_t([0.5, 0, 0, 1.5, 0, -0.75])})
  xd = Delay(x, steps=2)
  h = SynapseFilter(xd, leak=0.4)
  fc2 = Dense(f, weight={_t(W2)})
  fc3 = Dense(h, weight={_t(W3)})
  s = Add(fc2, fc3)
  n2 = IF(s, theta=2.0, reset=to-value)
  out = Output(n2)
  cur = Output(f)
}}
"""


@needs_lava
@pytest.mark.parametrize("quantized", [False, True])
def test_filters_with_per_element_leak_a_delay_and_a_shorter_graded_path(quantized, tmp_path):
    g = parse(GRAPH)
    x = (np.random.default_rng(5).random((25, 3, 8)) < 0.3).astype(float)
    ref = interp.run(g, {"x": x}, record=["n2"])
    assert 0.05 < ref.outputs["out"].mean() < 0.95, "n2 never or always fires: the test proves nothing"
    uniform = g.copy()
    uniform.replace("f", leak=0.25)  # the per-element leak must matter
    assert not np.allclose(interp.run(uniform, {"x": x}).outputs["cur"], ref.outputs["cur"])
    run = Quantize(profile="loihi2").apply(g) if quantized else g
    net = lower(legalize_for(LavaTarget(), run, say=None))
    # h waits for its Delay(2): its identity input is delayed 2 steps; its current reaches n2 a step early
    delays = {c.name: c.delay for c in net.conns}
    assert delays["h_spikes"] == 2 and delays["fc3"] == 1 and net.pops["f"].start == 2
    pipeline = "quantize{profile=loihi2}" if quantized else ""
    rows = verify(tmp_path, g, {"x": x}, 25, pipeline, record=["f", "h", "n2"],
                  inexact=() if quantized else ("state/n2.v",))
    assert rows and all(a == 100.0 for a in rows.values()), rows


def test_refusals_name_the_node():
    g = parse(GRAPH)
    q = Quantize(profile="loihi2").apply(g)
    mixed = q.copy()
    mixed.nodes["h"] = P.SynapseFilter(leak=0.4)  # a float filter in a fixed-point graph
    with pytest.raises(UnsupportedError, match=r"node `h` \(SynapseFilter\): a graph mixing fixed-point and float"):
        lower(mixed)
    wide = q.copy()
    wide.replace("h", state_bits=30)  # more than a graded spike carries
    with pytest.raises(UnsupportedError, match=r"node `h` \(FixedSynapseFilter\): Lava's graded spikes carry 24 bits"):
        lower(wide)
    big = q.copy()
    big.replace("fc3", weight=np.full((4, 8), 255, np.int64), weight_format=None)
    big.replace("h", state_bits=24)
    with pytest.raises(UnsupportedError, match=r"node `fc3` \(Dense\): Lava sums its weights times the synapse "
                                               r"filter's current in 32 bits"):
        lower(big)
    shifted = q.copy()
    shifted.replace("n2", input_shift=7)
    with pytest.raises(UnsupportedError, match=r"node `n2` \(FixedCubaLIF\): Lava's fixed-point LIF shifts its input "
                                               r"by 6"):
        lower(shifted)


RNG2 = np.random.default_rng(2)
MAPS = f"""n3ml 1
graph maps(dt=1.0ms, scheme=euler) {{
  x = Input(shape=(2, 5, 5), kind=spike)
  c1 = Conv2d(x, weight={_t(np.round(RNG2.normal(0.3, 0.4, (3, 2, 3, 3)), 3))}, padding=(1, 1))
  n1 = IF(c1, theta=1.0, reset=subtract)
  f = SynapseFilter(n1, leak={_t(np.round(RNG2.uniform(0.1, 0.8, (3, 5, 5)), 3))})
  c2 = Conv2d(f, weight={_t(np.round(RNG2.normal(0.2, 0.3, (2, 3, 3, 3)), 3))})
  n2 = LIF(c2, tau=4.0ms, theta=1.5, reset=to-value)
  p = AvgPool2d(f, kernel=(2, 2))
  fl = Flatten(f)
  hd = Dense(fl, weight={_t(np.round(RNG2.normal(0.1, 0.2, (4, 75)), 3))})
  li = LI(hd, tau=5.0ms)
  out = Output(n2)
  pooled = Output(p)
  ro = Output(li)
}}
"""


@needs_lava
@pytest.mark.parametrize("quantized", [False, True])
def test_a_filter_over_maps_read_by_a_conv_a_pool_and_a_dense(quantized, tmp_path):
    """A filter of a spike map (Lava's (W, H, B*C) layout) read by a Conv2d, an AvgPool2d whose value is an
    Output and a Flatten -> Dense into an LI readout, batch 2. Quantized with readout=voltage, the pool's value
    and the LI are never-firing readouts (recorded); every value identical (float readouts within 1e-12)."""
    g = parse(MAPS)
    x = (np.random.default_rng(4).random((20, 2, 2, 5, 5)) < 0.3).astype(float)
    ref = interp.run(g, {"x": x}).outputs
    assert 0.05 < ref["out"].mean() < 0.95
    if quantized:
        rows = verify(tmp_path, g, {"x": x}, 20, "quantize{profile=loihi2,readout=voltage}",
                      record=["f", "li", "p_value", "n2"])
        assert {"state/p_value.v", "state/li.v", "state/f.v", "state/n2.i"} <= set(rows)
    else:
        rows = verify(tmp_path, g, {"x": x}, 20, record=["f"], inexact=("pooled", "ro"))
        assert set(rows) == {"out", "pooled", "ro", "state/f.v"}
    assert all(a == 100.0 for a in rows.values()), rows
