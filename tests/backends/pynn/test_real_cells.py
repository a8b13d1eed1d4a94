"""The real models' cells on PyNN-on-NEST: decay 0 and SEW's IAND gate exactly; snnTorch's Synaptic (reset by
subtraction: no PyNN cell) refused naming the nest target."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from n3ml.backends.pynn import PynnTarget, lower_ir_to_pynn
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.passes.legalize import legalize_for

from ..nest import graphs as G
from ..nest.test_real_cells import decay_zero, iand_graph, synaptic

needs_pynn = pytest.mark.skipif(importlib.util.find_spec("pyNN") is None or importlib.util.find_spec("nest") is None,
                                reason="PyNN/NEST not installed (make setup-sim)")
pytestmark = [pytest.mark.pynn]
T = 25
ON_NEST = {"simulator": "nest"}


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


def test_synaptic_with_reset_term_is_refused_naming_nest():
    g = legalize_for(PynnTarget(), synaptic(), say=None)
    with pytest.raises(UnsupportedError, match=r"node `lif` .*Synaptic.*the nest target maps it exactly"):
        lower_ir_to_pynn(g, simulator="nest")
