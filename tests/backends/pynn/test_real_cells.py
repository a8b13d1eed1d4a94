"""The real models' cells on PyNN-on-NEST: decay 0, SEW's IAND gate and snnTorch's Synaptic (NEST's native
gif_psc_exp) exactly; the Synaptic refused elsewhere (no standard cell), naming simulator=nest."""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.backends.pynn import PynnTarget, lower_ir_to_pynn
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import CubaLIF, Dense, Graph, Input, Output
from n3ml.passes.legalize import legalize_for

from ..nest import graphs as G
from ..nest.test_real_cells import decay_zero, iand_graph, synaptic
from .test_pynn import ON_NEST, T, needs_pynn

pytestmark = [pytest.mark.pynn]


@needs_pynn
@pytest.mark.parametrize("make", [decay_zero, iand_graph], ids=["decay-zero", "iand"])
def test_identical_on_nest(make, tmp_path):
    g = make()
    target = PynnTarget()
    x = random_inputs(g, T, 2, 5, 0.4)
    got = G.run_emitted(target, legalize_for(target, g, say=None), x, tmp_path / "o", steps=T, options=ON_NEST)
    counts = G.assert_same_outputs(g, x, got)
    assert sum(counts.values()) > 10


def test_decay_zero_forgets_v_init():
    """v_init of a decay-0 membrane does not reach step 0: the program gets 0, not v_init / 0."""
    net = lower_ir_to_pynn(legalize_for(PynnTarget(), decay_zero(), say=None), simulator="nest")
    assert np.all(np.asarray(net.cells["val"].v_init) == 0.0) and net.cells["sub"].params["tau_m"] == 1e-3


@needs_pynn
@pytest.mark.parametrize("reset,jump", [("subtract", -0.15), ("none", -1.0)])
def test_synaptic_identical_on_nest(reset, jump, tmp_path):
    """snnTorch's Synaptic (LI -> Add(LI, own spikes one step late) -> LIF) as NEST's native gif_psc_exp."""
    g = synaptic(reset, jump)
    target = PynnTarget()
    legal = legalize_for(target, g, say=None)
    assert lower_ir_to_pynn(legal, simulator="nest").cells["lif"].celltype == "native:gif_psc_exp"
    x = {"x": np.random.default_rng(3).uniform(-0.5, 1.5, (T, 2, 7))}
    counts = G.assert_same_outputs(g, x, G.run_emitted(target, legal, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert counts["out"] > 30 and counts["out2"] > 5


def test_synaptic_is_refused_off_nest_naming_it():
    g = legalize_for(PynnTarget(), synaptic(), say=None)
    with pytest.raises(UnsupportedError, match=r"node `lif` .*Synaptic.*simulator=nest"):
        lower_ir_to_pynn(g, simulator="spiNNaker")
    g = Graph(name="cuba_subtract", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("fc", Dense(weight=np.eye(3)), "x")
    g.add("cuba", CubaLIF(tau_mem=5.0, tau_syn=3.0, reset="subtract"), "fc")
    g.add("out", Output(), "cuba")
    with pytest.raises(UnsupportedError, match=r"node `cuba` \(CubaLIF\).*simulator=nest"):
        lower_ir_to_pynn(g, simulator="brian2")


@needs_pynn
def test_alif_identical_on_nest(tmp_path):
    """ALIF (reset to a value, reset none) as NEST's native adaptive e-prop neurons."""
    from ..nest.test_real_cells import alif_features

    g = alif_features()
    net = lower_ir_to_pynn(g, simulator="nest")
    assert net.cells["a1"].celltype == "native:eprop_iaf_psc_delta_adapt"
    x = random_inputs(g, T, 2, 8, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert counts["out1"] > 20 and counts["out2"] > 5


def test_alif_is_refused_off_nest():
    from ..nest.test_real_cells import alif_features

    with pytest.raises(UnsupportedError, match=r"`a1` \(ALIF\): PyNN's standard cells have no adaptive threshold"):
        lower_ir_to_pynn(alif_features(), simulator="spiNNaker")
