"""Legalization: the targets' tables, the canonical pipelines, the refusals and the new passes
(merge-linear, maxpool-as-or exact; pool-after-neuron an approximation)."""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.errors import UnsupportedError
from n3ml.ir.interp import run
from n3ml.ir.text import parse
from n3ml.passes import PassError, PassManager
from n3ml.passes.legalize import illegal_nodes, legalize
from n3ml.registry import TARGETS, lookup

CHAIN = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(3,))
  fc1 = Dense(x, weight=tensor<f64>(4, 3)[1, -2, 0.5, 0.25, 3, -1, 0.5, 0.5, 0.5, -1, 1, 2],
              bias=tensor<f64>(4)[0.5, -1, 0, 0.25])
  s = Scale(fc1, factor=0.5)
  fc2 = Dense(s, weight=tensor<f64>(2, 4)[1, 1, -1, 0.5, 2, 0, 1, -1], bias=tensor<f64>(2)[0.1, 0.2])
  n = LIF(fc2, tau=5.0ms, reset=to-value)
  y = Output(n)
}
"""

POOL = """n3ml 1
graph g(dt=1.0ms, scheme=exact) {
  x = Input(shape=(1, 4, 4))
  c = Conv2d(x, weight=tensor<f64>(2, 1, 1, 1)[0.7, 0.4])
  p = MaxPool2d(c, kernel=(2, 2))
  n = IF(p, theta=1.0)
  q = MaxPool2d(n, kernel=(2, 2))
  y = Output(q)
}
"""


def _spikes(g, seed=0, steps=30):
    x = (np.random.default_rng(seed).random((steps, 4, *g.nodes[g.input_names[0]].shape)) < 0.4).astype(float)
    return run(g, {g.input_names[0]: x}).outputs


def test_merge_linear_folds_scale_and_dense_chain_exactly():
    g = parse(CHAIN)
    f = PassManager.from_string("fold-scales,merge-linear").run(g)
    assert [p.op for p in f.nodes.values()] == ["Input", "Dense", "LIF", "Output"]
    w1 = np.array([1, -2, 0.5, 0.25, 3, -1, 0.5, 0.5, 0.5, -1, 1, 2.0]).reshape(4, 3)
    w2 = np.array([1, 1, -1, 0.5, 2, 0, 1, -1.0]).reshape(2, 4)
    np.testing.assert_allclose(f.nodes["fc2"].weight, w2 @ (0.5 * w1))
    np.testing.assert_allclose(f.nodes["fc2"].bias, w2 @ (0.5 * np.array([0.5, -1, 0, 0.25])) + [0.1, 0.2])
    a, b = _spikes(g), _spikes(f)
    np.testing.assert_array_equal(a["y"], b["y"])


def test_merge_linear_keeps_a_dense_with_two_users():
    text = CHAIN.replace("  y = Output(n)", "  y = Output(n)\n  z = Output(fc1)")
    f = PassManager.from_string("merge-linear").run(parse(text))
    assert "fc1" in f.nodes and "fc2" in f.nodes


def test_maxpool_as_or_is_exact():
    g = parse(POOL.replace("MaxPool2d(c", "SumPool2d(c"))
    f = PassManager.from_string("maxpool-as-or").run(g)
    assert f.nodes["q"].op == "IF" and f.nodes["q_sum"].op == "SumPool2d"
    np.testing.assert_array_equal(_spikes(g)["y"], _spikes(f)["y"])


def test_pool_after_neuron_moves_the_pool_and_is_measurably_approximate():
    g = parse(POOL)
    f = PassManager.from_string("pool-after-neuron").run(g)
    order = [(n, p.op) for n, p in f.nodes.items()]
    assert order[2:5] == [("n_unpooled", "IF"), ("n", "MaxPool2d"), ("q", "MaxPool2d")]
    assert f.verify()["n"].kind == "spike" and f.verify()["n"].shape == (2, 2, 2)
    a, b = _spikes(g)["y"], _spikes(f)["y"]
    assert a.shape == b.shape and not np.array_equal(a, b)  # an approximation: it changes the function
    agree = np.sum((a > 0) & (b > 0)) / max(np.sum((a > 0) | (b > 0)), 1)
    assert 0.3 < agree < 1.0


def test_pool_after_neuron_refuses_per_neuron_parameters():
    text = POOL.replace("IF(p, theta=1.0)", "IF(p, theta=tensor<f64>(2, 2, 2)[1, 2, 1, 1, 1, 1, 1, 1])")
    with pytest.raises(PassError, match="theta.*per channel"):
        PassManager.from_string("pool-after-neuron").run(parse(text))


@pytest.mark.parametrize("target", ["nest", "pynn", "lava"])
def test_refusal_names_node_reason_and_remedy(target):
    legality = lookup(TARGETS, target, "target").legality
    with pytest.raises(UnsupportedError) as e:
        legalize(parse(POOL), legality)
    msg = str(e.value)
    assert "node `p` (MaxPool2d) on analog inputs" in msg and "cannot take a maximum" in msg
    assert "-p pool-after-neuron" in msg and "approximation" in msg
    assert "node `q`" not in msg  # on spikes: legalized by the pipeline (maxpool-as-or)


def test_target_pipelines_legalize_scale_chains_for_lava_and_batchnorm_for_nest():
    lava = lookup(TARGETS, "lava", "target").legality
    g = legalize(parse(CHAIN), lava)
    assert illegal_nodes(g, lava) == [] and sum(p.op == "Dense" for p in g.nodes.values()) == 1
    assert "node `s` (Scale" in illegal_nodes(parse(CHAIN), lava)[0]
    nest = lookup(TARGETS, "nest", "target").legality
    assert nest.pipeline[:2] == ("fuse-synapse-filter", "fold-batchnorm") and illegal_nodes(parse(CHAIN), nest) == []


def test_every_target_in_the_registry_lists(capsys):
    from n3ml.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("nest:", "pynn:", "lava:", "ir:"):
        assert name in out
    assert ("legalize: fuse-synapse-filter, fold-batchnorm, fold-scales, remove-identity, maxpool-as-or, spike-gates, "
            "fold-synaptic-reset, spikes-as-synapse") in out


def test_verify_prints_the_legalization_and_measures_an_approximation_against_the_original(tmp_path, capsys):
    from n3ml.cli import main
    from n3ml.ir.text import save

    save(parse(POOL), tmp_path / "pool.n3ml")
    rc = main(["verify", str(tmp_path / "pool.n3ml"), "-p", "pool-after-neuron", "--targets", "ir", "--steps", "20",
               "--batch", "2", "--min-agreement", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "reference: the graph without pool-after-neuron" in out and "ir: legalize for ir" in out
    row = [line for line in out.splitlines() if line.startswith("ir ") and " y " in line][0]
    assert "100.00%" not in row.split()[3]  # the approximation's effect is what the table measures


@pytest.mark.parametrize("scheme", ["exact", "euler"])
def test_fuse_synaptic_is_one_cubalif_with_the_same_spikes(scheme):
    text = f"""n3ml 1
graph g(dt=1.0ms, scheme={scheme}) {{
  x = Input(shape=(3,))
  fc = Dense(x, weight=tensor<f64>(2, 3)[1.5, 0.5, 1, 2, -0.5, 1.5])
  syn = LI(fc, tau=4.0ms, r=2.0)
  mem = LIF(syn, tau=6.0ms, theta=0.8, reset=to-value, v_leak=0.1, v_init=0.1)
  y = Output(mem)
}}
"""
    g = parse(text)
    f = PassManager.from_string("fuse-synaptic").run(g)
    assert [p.op for p in f.nodes.values()] == ["Input", "Dense", "CubaLIF", "Output"]
    a, b = _spikes(g, steps=60)["y"], _spikes(f, steps=60)["y"]
    assert a.sum() > 10
    np.testing.assert_array_equal(a, b)
    started = parse(text.replace("tau=4.0ms, r=2.0", "tau=4.0ms, v_init=0.5"))
    kept = PassManager.from_string("fuse-synaptic").run(started)
    assert "syn" in kept.nodes  # an LI that starts away from 0 is not a pure current


def test_legal_tables_agree_with_what_the_lowerings_take():
    """The declared tables cannot drift from the lowerings: Lava's from SUPPORTED_OPS, nest/pynn's from the
    netlist's linear rules and the targets' cell tables."""
    from n3ml.backends import netlist
    from n3ml.backends.lava.lower import SUPPORTED_OPS
    from n3ml.backends.nest.lower import CELLS as NEST_CELLS
    from n3ml.backends.pynn.lower import CELLS as PYNN_CELLS

    assert set(lookup(TARGETS, "lava", "target").legality.legal) == {c.__name__ for c in SUPPORTED_OPS}
    for target, cells in (("nest", NEST_CELLS), ("pynn", PYNN_CELLS)):
        taken = {c.__name__ for c in (*netlist.LINEAR, *netlist.ENCODERS, *cells, *netlist.KEPT_BY_CELLS,
                                      netlist.P.Input, netlist.P.Output)}
        assert set(lookup(TARGETS, target, "target").legality.legal) == taken, target


# the structures real models bring to a synapse-per-neuron target (snnTorch's reset term, SEW-ResNet's spike
# sums, SpikingJelly's pooled Linear head, a synapse two neurons read), each rewritten exactly
SNN_SHAPES = """n3ml 1
graph g(dt=1.0ms, scheme=euler) {
  x = Input(shape=(2, 4, 4))
  c1 = Conv2d(x, weight=@w1)
  a = IF(c1, theta=1.0)
  c2 = Conv2d(x, weight=@w2, bias=tensor<f64>(2)[0.1, -0.2])
  b = LIF(c2_in, tau=4.0ms, r=4.0, reset=subtract)
  b_prev = Delay(b)
  b_reset = Scale(b_prev, factor=-0.25)
  c2_in = Add(c2, b_reset)
  s = Add(a, b)
  c3 = Conv2d(s, weight=@w3, padding=(1, 1))
  n3 = IF(c3, theta=1.5)
  n4 = IF(c3, theta=2.5)
  p = AvgPool2d(n3, kernel=(2, 2))
  f = Flatten(p)
  fc = Dense(f, weight=@w4, bias=tensor<f64>(3)[0.1, 0.2, 0.3])
  y1 = Output(fc)
  y2 = Output(n4)
  y3 = Output(a)
}
"""


def _snn_shapes():
    rng = np.random.default_rng(3)
    weights = {"w1": rng.normal(1, 0.5, (2, 2, 1, 1)), "w2": rng.normal(1, 0.5, (2, 2, 1, 1)),
               "w3": rng.normal(0.3, 0.5, (2, 2, 3, 3)), "w4": rng.normal(0, 1, (3, 8))}
    text = SNN_SHAPES
    for k, w in weights.items():  # inline tensors (the text format's own literal)
        text = text.replace(f"@{k}", f"tensor<f64>({', '.join(map(str, w.shape))})["
                                     f"{', '.join(repr(float(v)) for v in w.reshape(-1))}]")
    return parse(text)


@pytest.mark.parametrize("passes", [("spikes-as-synapse",), ("distribute-synapse",), ("merge-pool-dense",),
                                    ("split-shared-synapses",),
                                    ("distribute-synapse", "spikes-as-synapse", "merge-pool-dense", "dce")])
def test_synapse_rewrites_keep_every_output_exactly(passes):
    from n3ml.passes import get_pass_class

    g = _snn_shapes()
    h = PassManager([get_pass_class(p)() for p in passes]).run(g)
    x = {"x": np.random.default_rng(1).random((25, 2, 2, 4, 4)) * 2}
    want, got = run(g, x), run(h, x)
    for k in want.outputs:
        np.testing.assert_allclose(got.outputs[k], want.outputs[k], rtol=0, atol=1e-12, err_msg=k)
    assert any(np.any(want.outputs[k]) for k in ("y2", "y3"))  # the spiking outputs are not silent
    if passes[-1] == "dce":  # everything Lava needs: no Scale, every synapse reads spikes or an input
        ops = {p.op for p in h.nodes.values()}
        assert "Scale" not in ops and "AvgPool2d" not in ops
        types = h.verify()
        for n, p in h.nodes.items():
            if p.op in ("Dense", "Conv2d"):
                src = h.inputs_of(n)[0]
                src = h.inputs_of(src)[0] if h.nodes[src].op == "Flatten" else src
                assert types[src].kind == "spike" or h.nodes[src].op == "Input", n


def test_the_lava_target_accepts_the_rewritten_structures():
    lava = lookup(TARGETS, "lava", "target")
    g = legalize(_snn_shapes(), lava.legality)
    lava().check(g)


def test_pool_after_neuron_moves_snntorchs_reset_loop_with_the_neuron():
    """snnTorch's Conv -> MaxPool -> Leaky traces as MaxPool -> Add(pool, Scale(Delay(lif))) -> LIF; the
    approximation moves the neuron and its reset loop before the pool (and is exact on a 1x1 pool)."""
    text = """n3ml 1
graph g(dt=1.0ms, scheme=euler) {
  x = Input(shape=(1, 4, 4), kind=analog)
  c = Conv2d(x, weight=tensor<f64>(2, 1, 1, 1)[0.7, 0.4])
  p = MaxPool2d(c, kernel=(KK, KK))
  lif_in = Add(p, lif_reset)
  lif = LIF(lif_in, tau=2.0ms, r=2.0)
  lif_prev = Delay(lif)
  lif_reset = Scale(lif_prev, factor=-0.5)
  y = Output(lif)
}
"""
    from n3ml.passes import get_pass_class

    x = {"x": np.random.default_rng(2).random((30, 3, 1, 4, 4)) * 2}
    for k in (1, 2):
        g = parse(text.replace("KK", str(k)))
        h = get_pass_class("pool-after-neuron")().apply(g)
        assert h.nodes["lif"].op == "MaxPool2d" and h.nodes["lif_unpooled"].op == "LIF"
        assert "lif_reset_unpooled" in h.nodes and "lif_reset" not in h.nodes
        a, b = run(g, x).outputs["y"], run(h, x).outputs["y"]
        assert a.sum() > 0
        if k == 1:  # a 1x1 pool: moving it changes nothing
            np.testing.assert_array_equal(a, b)
