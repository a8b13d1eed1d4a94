"""examples/ann_to_snn's CNN, converted with the default pipeline and quantized for Loihi 2, on Lava fixed_pt.

The default conversion (docs/conversion.md: IF neurons, reset by subtraction, v_init 0.5, max-pool
decomposed into IF layers) reaches the next layer over paths of unequal latency; the Lava lowering delays
the short ones (relay populations, DelayDense) and holds neurons whose bias cannot wait for their input.
The run must be bit-identical to the torch executor's fixed-point mode, spike for spike.
scripts/lava_ann_to_snn.py measures the accuracy on all test images (docs/backends/lava.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.lava.lower import lower
from n3ml.backends.torch import run as torch_run
from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.passes.legalize import legalize_for

from .test_lava import needs_lava, run_lava

HERE = Path(__file__).resolve().parents[3] / "examples" / "ann_to_snn"
CONVERT = "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"  # docs/conversion.md's default
QUANTIZE = "quantize{profile=loihi2,input_scale=64}"  # run on its own: the conversion's context has report None


@pytest.fixture(scope="module")
def converted():
    from n3ml.backends.lava import LavaTarget

    cal = dict(np.load(HERE / "calib.npz"))
    cal = {k: v[:64] for k, v in cal.items()}
    snn = PassManager.from_string(CONVERT).run(load_model(str(HERE / "cnn.onnx")),
                                               {"calibration": cal, "steps": 20, "report": None})
    q = PassManager.from_string(QUANTIZE).run(snn, {"report": {}})
    return legalize_for(LavaTarget(), q, say=None)


def test_the_default_conversion_lowers_with_relays_and_delays(converted):
    net = lower(converted)
    relays = [p for p in net.pops.values() if p.kind == "relay"]
    delayed = [c for c in net.conns if c.delay]
    assert relays and delayed  # the decomposed max-pools' short paths, Conv (relays) and Dense (DelayDense)
    assert all(r.process == "LIF" for r in relays)
    for c in net.conns:  # every connection now arrives exactly at its neuron's latency
        assert net.pops[c.src].latency + 1 - c.skip + c.delay == net.pops[c.dst].latency, c.name


@needs_lava
@pytest.mark.lava
def test_the_default_conversion_is_bit_identical_on_lava_fixed_pt(converted, tmp_path):
    test = dict(np.load(HERE / "test.npz"))
    T, n = 16, 5
    x = {"x": np.repeat(np.rint(test["x"][:n].astype(np.float64) * 64)[None], T, axis=0)}
    ref = torch_run(converted, x, T).outputs
    got = run_lava(converted, x, tmp_path)
    for k in ref:
        assert np.asarray(ref[k]).sum() > 20, "a test without spikes proves nothing"
        np.testing.assert_array_equal(got[k], np.asarray(ref[k]), err_msg=k)
