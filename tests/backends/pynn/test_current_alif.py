"""Norse's LSNNCell on PyNN-on-NEST: an ALIF behind its synaptic current as the nest target's cell, a native cell
type: NEST's gif_psc_exp for reset none, n3ml's own NEST cell (compiled by the program) for reset to v_reset; both
identical. Off NEST refused (no standard cell adapts its threshold) naming simulator=nest."""

from __future__ import annotations

import pytest

from n3ml.backends.pynn import PynnTarget, lower_ir_to_pynn
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs

from ..nest import graphs as G
from ..nest.test_current_alif import beyond, cuba_loop, lsnn, needs_cxx
from .test_pynn import ON_NEST, T, needs_pynn

pytestmark = [pytest.mark.pynn]


@needs_pynn
@pytest.mark.parametrize("reset,celltype", [("none", "native:gif_psc_exp"),
                                            pytest.param("to-value", "native:n3ml_cell", marks=needs_cxx)])
def test_identical_on_nest(reset, celltype, tmp_path):
    g = lsnn(reset=reset)
    net = lower_ir_to_pynn(g, simulator="nest")
    assert {net.cells[n].celltype for n in "abc"} == {celltype}
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert min(counts.values()) > 10


def test_refused_off_nest():
    for reset in ("none", "to-value"):
        with pytest.raises(UnsupportedError, match=r"`a` \(ALIF\) behind its synaptic current `syn` \(LI\): PyNN's "
                           r"standard cells have no adaptive threshold; emit with simulator=nest"):
            lower_ir_to_pynn(lsnn(reset=reset), simulator="spiNNaker")


@needs_pynn
@needs_cxx
def test_cuba_in_one_step_loop_identical_on_nest(tmp_path):
    g = cuba_loop()
    assert lower_ir_to_pynn(g, simulator="nest").cells["cuba"].celltype == "native:n3ml_cell"
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert counts["out"] > 20


def test_cuba_in_one_step_loop_refused_off_nest_naming_it():
    with pytest.raises(UnsupportedError, match=r"nodes `cuba` -> `cuba` form a loop with 1 Delay step; pynn needs 2.*"
                       r"with simulator=nest such a CubaLIF is n3ml's own NEST cell"):
        lower_ir_to_pynn(cuba_loop(), simulator="spiNNaker")


@needs_pynn
@needs_cxx
def test_what_nest_models_refuse_identical_on_nest(tmp_path):
    g = beyond()
    assert {c.celltype for c in lower_ir_to_pynn(g, simulator="nest").cells.values()} == {"native:n3ml_cell"}
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(PynnTarget(), g, x, tmp_path / "o", steps=T, options=ON_NEST))
    assert min(counts.values()) > 5, counts
