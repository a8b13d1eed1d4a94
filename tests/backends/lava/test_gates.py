"""SpikingJelly's SEW IAND gate, relu(x - y) of two spike trains, on Lava: the `spike-gates` pass (in Lava's
legalization and in quantize's canonical form) makes it a decay-0 LIF with threshold 0.5, which Lava's LIF
runs; floating_pt identical to the graph, fixed_pt identical to the quantized graph."""
from __future__ import annotations

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget
from n3ml.ir import LIF, interp
from n3ml.passes.legalize import legalize_for
from n3ml.passes.quantize import Quantize

from ..nest.test_real_cells import iand_graph
from .test_lava import needs_lava, run_lava, spikes


def test_iand_gates_legalize_for_lava():
    legal = legalize_for(LavaTarget(), iand_graph(), say=None)
    assert isinstance(legal.nodes["andnot"], LIF) and isinstance(legal.nodes["andnot2"], LIF)
    LavaTarget().check(legal)


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("fixed", [False, True], ids=["floating_pt", "fixed_pt"])
def test_iand_gates_run_identically(fixed, tmp_path):
    g = iand_graph()
    x = spikes(g, T=30, B=2, p=0.4)
    if fixed:
        g = Quantize(profile="loihi2").apply(g)
    ref = interp.run(g, x).outputs
    assert ref["out_gate"].sum() > 5 and ref["out"].sum() > 5  # the gate passes spikes; the layer after fires
    got = run_lava(legalize_for(LavaTarget(), g, say=None), x, tmp_path)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def test_relu_that_is_not_a_gate_is_refused_with_the_reason_not_a_remedy():
    """A ReLU that can reach 2 is no gate: refused naming the node; `ann-to-snn` appears only as the way for ANNs,
    not as a pass that would legalize a spiking graph."""
    from n3ml.errors import UnsupportedError

    g = iand_graph()
    g.replace("neg", factor=1.0)  # relu(a + b)
    with pytest.raises(UnsupportedError) as e:
        legalize_for(LavaTarget(), g, say=None)
    msg = str(e.value)
    assert "node `andnot` (ReLU)" in msg and "would legalize" not in msg and "spike-gates" in msg
