"""fuse-synapse-filter: the Delay/Scale/ReLU-gate form of SpikingJelly's SynapseFilter (what n3ml's frontend
wrote before the SynapseFilter primitive) -> one SynapseFilter, bit for bit; anything else left alone."""

import numpy as np
import pytest
import torch

from n3ml.backends.torch.executor import Executor
from n3ml.ir import interp
from n3ml.ir.text import parse
from n3ml.passes import PassManager

OLD = """n3ml 1
graph sf(dt=1.0ms, scheme=euler) {{
  x = Input(shape=(3,))
  fc = Dense(x, weight=tensor<f64>(4, 3)[0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 1.1, -0.3, 0.4, 0.2, 0.6, 0.9])
  sn = IF(fc, theta=1.0, reset=subtract)
  syn_prev = Delay({prev_src}{steps})
  syn_leak = Scale(syn_prev, factor={leak})
  syn_block = Scale(sn, factor={gate})
  syn_gate = Add(syn_leak, syn_block)
  syn_hold = ReLU(syn_gate)
  syn_neg = Scale(syn_hold, factor=-1.0)
  syn = Add(syn_prev, syn_neg, sn)
  head = Dense(syn, weight=tensor<f64>(2, 4)[0.3, -0.5, 0.8, 0.1, 0.4, 0.4, -0.2, 0.6])
  out = Output(head){extra}
}}
"""
LEAKS = "tensor<f64>(4)[0.25, 0.5, 0.125, 0.9]"


def _old(leak=LEAKS, gate="-1.8446744073709552e19", steps="", extra="", prev_src="syn"):
    return parse(OLD.format(leak=leak, gate=gate, steps=steps, extra=extra, prev_src=prev_src))


def _fuse(g):
    return PassManager.from_string("fuse-synapse-filter").run(g)


def test_the_old_form_becomes_one_filter_bit_for_bit():
    g = _old()
    h = _fuse(g)
    assert [p.op for p in h.nodes.values()] == ["Input", "Dense", "IF", "SynapseFilter", "Dense", "Output"]
    np.testing.assert_array_equal(h.nodes["syn"].leak, [0.25, 0.5, 0.125, 0.9])
    x = np.random.default_rng(0).random((200, 4, 3)) * 1.5
    a, b = interp.run(g, x).outputs["out"], interp.run(h, x).outputs["out"]
    assert np.abs(a).max() > 1
    np.testing.assert_array_equal(a, b)
    for dtype in (torch.float32, torch.float64):  # the executor's own arithmetic, both dtypes
        ya = Executor(g, dtype=dtype)({"x": torch.tensor(x)})["out"]
        yb = Executor(h, dtype=dtype)({"x": torch.tensor(x)})["out"]
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)


@pytest.mark.parametrize("target", ["nest", "pynn", "lava"])
def test_the_old_form_passes_every_spiking_targets_legalization(target):
    from n3ml.passes.legalize import legalize_for
    from n3ml.registry import TARGETS, lookup

    legal = legalize_for(lookup(TARGETS, target, "target")(), _old(), say=None)  # refuses what stays illegal
    assert "SynapseFilter" in {p.op for p in legal.nodes.values()}


@pytest.mark.parametrize("change", [
    dict(gate="-1000.0"),                      # a gate a long run reaches: the ReLU would cut the current
    dict(leak="1.5"),                          # not a decay
    dict(steps=", steps=2"),                   # not the previous step's current
    dict(extra="\n  spy = Output(syn_prev)"),  # something else reads the delayed current
])
def test_other_forms_are_left_alone(change):
    g = _old(**change)
    h = _fuse(g)
    assert "SynapseFilter" not in {p.op for p in h.nodes.values()}
    assert set(h.nodes) == set(g.nodes)


def test_analog_input_is_left_alone():
    src = OLD.format(leak="0.5", gate="-1.8446744073709552e19", steps="", extra="", prev_src="syn").replace(
        "syn_block = Scale(sn,", "syn_block = Scale(fc,").replace("syn = Add(syn_prev, syn_neg, sn)",
                                                                   "syn = Add(syn_prev, syn_neg, fc)")
    g = parse(src)
    assert "SynapseFilter" not in {p.op for p in _fuse(g).nodes.values()}
