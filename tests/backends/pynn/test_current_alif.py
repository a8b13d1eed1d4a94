"""Norse's LSNNCell on PyNN-on-NEST: an ALIF behind its synaptic current as NEST's native gif_psc_exp (the nest
target's construction), exact for reset none; reset to v_reset refused with the nest target's reason; refused
off NEST (no standard cell adapts its threshold) naming simulator=nest."""

from __future__ import annotations

import pytest

from n3ml.backends.pynn import PynnTarget, lower_ir_to_pynn
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs

from ..nest import graphs as G
from ..nest.test_current_alif import lsnn
from .test_pynn import ON_NEST, T, needs_pynn

pytestmark = [pytest.mark.pynn]


@needs_pynn
def test_reset_none_identical_on_nest(tmp_path):
    g = lsnn()
    net = lower_ir_to_pynn(g, simulator="nest")
    assert {net.cells[n].celltype for n in "abc"} == {"native:gif_psc_exp"}
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert min(counts.values()) > 10


def test_refusals():
    with pytest.raises(UnsupportedError, match=r"`a` \(ALIF\) behind its synaptic current `syn` \(LI\) resets to "
                       r"v_reset.*gif_psc_exp sets V to V_reset only in its refractory branch"):
        lower_ir_to_pynn(lsnn(reset="to-value"), simulator="nest")
    with pytest.raises(UnsupportedError, match=r"`a` \(ALIF\) behind its synaptic current `syn` \(LI\): PyNN's "
                       r"standard cells have no adaptive threshold; emit with simulator=nest"):
        lower_ir_to_pynn(lsnn(), simulator="spiNNaker")
