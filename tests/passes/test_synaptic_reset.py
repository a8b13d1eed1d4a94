"""fold-synaptic-reset: snnTorch's Synaptic (LI -> Add(LI, Scale(Delay(lif))) -> LIF) as one CubaLIF whose current
reads the reset terms (n3ml/passes/synaptic.py has the derivation). Exact: the same spikes, voltages within
float rounding, on hand-written graphs and on the corpus model traced from snnTorch; then Lava's legalization
and quantize{profile=loihi2} take the result."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from n3ml.backends.torch import run as exec_run
from n3ml.ir import interp, prims as P
from n3ml.ir.text import parse
from n3ml.passes import PassManager
from n3ml.passes.legalize import legalize
from n3ml.registry import TARGETS, lookup

# per-neuron LI and reset factors, two reset terms (one and two steps late), the LIF's own reset and refractory
SYNAPTIC = """n3ml 1
graph syn(dt=1.0ms, scheme={scheme}) {{
  x = Input(shape=(4,))
  fc = Dense(x, weight=tensor<f64>(3, 4)[0.9, -0.4, 0.5, 0.3, 0.2, 0.8, -0.3, 0.6, 0.5, 0.5, 0.4, -0.2],
             bias=tensor<f64>(3)[0.05, 0.0, 0.02])
  cur = LI(fc, tau=tensor<f64>(3)[4.0, 6.0, 9.0], r=tensor<f64>(3)[2.0, 1.5, 3.0])
  sum = Add(cur, back, back2)
  mem = LIF(sum, tau=5.0ms, r=1.2, theta=tensor<f64>(3)[1.0, 0.8, 1.2], {neuron})
  prev = Delay(mem)
  back = Scale(prev, factor=tensor<f64>(3)[-0.2, -0.15, -0.3])
  prev2 = Delay(mem, steps=2)
  back2 = Scale(prev2, factor=0.05)
  y = Output(mem)
}}
"""
NEURONS = ["reset=subtract", "reset=to-value, refractory=2", "reset=\"none\", v_init=0.3"]


def _graph(scheme="euler", neuron="reset=subtract"):
    return parse(SYNAPTIC.format(scheme=scheme, neuron=neuron))


def _feed(shape, T=300, B=4, seed=0):
    return {"x": np.random.default_rng(seed).random((T, B) + tuple(shape))}


def _same(g, h, feed, neurons, engine=interp.run):
    """Identical spikes and voltages within 1e-9 at every neuron; the spike counts (to check they fire)."""
    a, b = engine(g, feed, record=neurons), engine(h, feed, record=neurons)
    counts = {}
    for n in neurons:
        sa, sb = np.asarray(a.states[n]), np.asarray(b.states[n])
        np.testing.assert_array_equal(sb, sa, err_msg=n)
        np.testing.assert_allclose(np.asarray(b.states[f"{n}.v"]), np.asarray(a.states[f"{n}.v"]), rtol=0,
                                   atol=1e-9, err_msg=n)
        counts[n] = sa.mean()
    return counts


@pytest.mark.parametrize("scheme", ["euler", "exact"])
@pytest.mark.parametrize("neuron", NEURONS)
def test_the_fold_is_one_cubalif_with_the_same_spikes_and_voltages(scheme, neuron):
    g = _graph(scheme, neuron)
    h = PassManager.from_string("fold-synaptic-reset").run(g)
    assert "cur" not in h.nodes and isinstance(h.nodes["mem"], P.CubaLIF)
    terms = h.inputs_of("sum")
    assert terms[0] == "fc" and len(terms) == 5  # X, and per reset term its factor now and decayed a step later
    steps = sorted(h.nodes[h.inputs_of(t)[0]].steps for t in terms[1:])
    assert steps == [1, 2, 2, 3]
    # the factors are c / c1 and -a_s c / c1 (c1 = r g of the LI, a_s its decay), per neuron
    tau, r = np.array([4.0, 6.0, 9.0]), np.array([2.0, 1.5, 3.0])
    a_s, c1 = (1 - 1 / tau, r / tau) if scheme == "euler" else (np.exp(-1 / tau), r * (1 - np.exp(-1 / tau)))
    c = np.array([-0.2, -0.15, -0.3])
    np.testing.assert_allclose(h.nodes["back"].factor, c / c1)
    np.testing.assert_allclose(h.nodes["back_decayed"].factor, -a_s * c / c1)
    assert h.inputs_of("back_decayed") == ["mem_prev2"] and h.nodes["mem_prev2"].steps == 2
    np.testing.assert_allclose(h.nodes["mem"].r, 1.2 * c1)
    rate = _same(g, h, _feed((4,)), ["mem"])["mem"]
    assert 0.05 < rate < 0.99  # exercised: the neurons fire (and reset) often, not always


def test_the_torch_executor_runs_the_folded_graph_like_the_original():
    g = _graph("exact", "reset=subtract")
    h = PassManager.from_string("fold-synaptic-reset").run(g)
    feed = _feed((4,), T=200)
    _same(g, h, feed, ["mem"], engine=exec_run)
    np.testing.assert_array_equal(np.asarray(exec_run(h, feed).outputs["y"]), interp.run(h, feed).outputs["y"])


@pytest.mark.parametrize("edit", [
    ("prev2 = Delay(mem, steps=2)", "prev2 = Delay(mem, steps=2)\n  z = Output(prev2)"),  # a Delay someone else reads
    ("back = Scale(prev, factor", "seen = Output(back)\n  back = Scale(prev, factor"),  # a Scale someone else reads
    ("cur = LI(fc, tau=tensor<f64>(3)[4.0, 6.0, 9.0],", "cur = LI(fc, v_init=0.1, tau=tensor<f64>(3)[4.0, 6.0, 9.0],"),
    ("sum = Add(cur, back, back2)", "sum = Add(cur, back, back2, fc)"),  # a current term beside the LI
    ("prev2 = Delay(mem, steps=2)", "prev2 = Delay(other, steps=2)\n  other = IF(fc)"),  # another neuron's spikes
    ("mem = LIF(sum,", "mem = ALIF(sum, tau_adapt=20.0ms,"),
    ("r=tensor<f64>(3)[2.0, 1.5, 3.0])", "r=tensor<f64>(3)[2.0, 0.0, 3.0])"),  # a zero gain: no current i = j / c1
])
def test_anything_else_is_left_as_it_is(edit):
    old, new = edit
    text = SYNAPTIC.format(scheme="euler", neuron="reset=subtract")
    assert old in text
    g = parse(text.replace(old, new))
    assert PassManager.from_string("fold-synaptic-reset").run(g) is g


def _corpus(name):
    pytest.importorskip("snntorch")
    import torch

    from n3ml.frontends.torch import trace
    from tests.frontends import corpus

    case = next(c for c in corpus.CASES if c.name == name)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        graph = trace(case.model(torch.float32), case.input_shape)
    return case, graph, case.make_input(torch.float32).double().numpy()


def test_snntorch_synaptic_from_the_corpus_folds_exactly_over_many_steps():
    _, g, x = _corpus("snntorch-synaptic")
    assert [g.nodes[n].op for n in g.inputs_of("lif1_in")] == ["LI", "Scale"]  # the traced form this pass is for
    h = PassManager.from_string("fold-synaptic-reset").run(g)
    assert not any(isinstance(p, (P.LI, P.LIF)) for p in h.nodes.values())
    rng = np.random.default_rng(3)
    held = np.concatenate([x, rng.random((14,) + x.shape[1:])])  # the corpus input and more, held 400 steps
    rates = _same(g, h, {"x": np.repeat(held[None], 400, 0)}, ["lif1", "lif2"])
    assert all(0.05 < r < 0.9 for r in rates.values()), rates
    _same(g, h, {"x": np.repeat(held[None], 100, 0)}, ["lif1", "lif2"], engine=exec_run)


def test_lava_legalization_takes_the_corpus_synaptic_model():
    _, g, _ = _corpus("snntorch-synaptic")
    lava = lookup(TARGETS, "lava", "target")()
    legal = legalize(g, lava.legality)
    lava.check(legal)
    for n in ("lif1", "lif2"):  # the input synapse and two diagonal self-synapses through Delay 1 and 2
        assert isinstance(legal.nodes[n], P.CubaLIF)
        (add,) = legal.inputs_of(n)
        syns = legal.inputs_of(add)
        assert len(syns) == 3 and all(isinstance(legal.nodes[s], P.Dense) for s in syns)
        delays = sorted(legal.nodes[legal.inputs_of(s)[0]].steps for s in syns[1:])
        assert delays == [1, 2]


def test_quantize_takes_the_corpus_synaptic_model_and_tracks_the_float_graph():
    _, g, x = _corpus("snntorch-synaptic")
    ctx = {}
    q = PassManager.from_string("quantize{profile=loihi2,input_scale=16}").run(g, ctx)
    for n in ("lif1", "lif2"):
        assert isinstance(q.nodes[n], P.FixedCubaLIF)
        (add,) = q.inputs_of(n)
        syns = q.inputs_of(add)
        resets = [q.nodes[s].weight for s in syns[1:]]
        # the reset now (negative) and its decayed copy a step later (positive), diagonal integers
        assert all(np.count_nonzero(w - np.diag(np.diag(w))) == 0 and w.dtype.kind == "i" for w in resets)
        assert sorted(np.sign(np.diag(w)).max() for w in resets) == [-1, 1]
    assert ctx["report"]["quantize"]["max_weight_error"] < 0.03
    rng = np.random.default_rng(5)
    held = np.repeat(np.concatenate([x, rng.random((30,) + x.shape[1:])])[None], 300, 0)
    a = interp.run(g, {"x": held}, record=["lif1", "lif2"])
    b = interp.run(q, {"x": np.round(16 * held)}, record=["lif1", "lif2"])
    for n in ("lif1", "lif2"):
        sa, sb = a.states[n], b.states[n]
        assert np.mean(sa == sb) > 0.95, n  # measured 0.977 / 0.977 (docs/quantization.md)
        assert abs(sa.sum() - sb.sum()) < 0.02 * sa.sum(), n
