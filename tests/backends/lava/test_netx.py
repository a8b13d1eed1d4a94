"""netx HDF5 export: the file reads back (as lava-dl's netx reads it) into the same computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from n3ml.backends.lava import LavaTarget, netx  # noqa: E402
from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.ir import interp  # noqa: E402
from n3ml.ir.text import load  # noqa: E402

from .test_lava import GRAPHS, lava_variant, spikes  # noqa: E402


@pytest.mark.parametrize("name", ["quantized", "cuba", "spiking_cnn"])
def test_netx_round_trip_computes_the_same_spikes(name, tmp_path):
    g = load(GRAPHS / "quantized.n3ml") if name == "quantized" else lava_variant(name, quantized=True, exp_max=1)
    netx.write(g, tmp_path / "network.net")
    back = netx.read(tmp_path / "network.net")
    x = spikes(g, T=30, B=2)
    ref = interp.run(g, x).outputs["out"]
    assert ref.sum() > 0
    np.testing.assert_array_equal(interp.run(back, {back.input_names[0]: x["x"]}).outputs["out"], ref)


def test_netx_layout_follows_lava_dl(tmp_path):
    g = lava_variant("spiking_cnn", quantized=True, exp_max=1)
    netx.write(g, tmp_path / "n.net")
    with h5py.File(tmp_path / "n.net") as f:
        kinds = [f["layer"][str(i)]["type"][0].decode() for i in range(len(f["layer"]))]
        assert kinds == ["input", "conv", "conv", "flatten", "dense"]
        conv = f["layer/1"]
        assert conv["weight"].shape == g.nodes["conv1"].weight.shape and conv["neuron/type"][0] == b"CUBA"
        n = g.nodes["if1"]
        assert conv["neuron/iDecay"][()] == n.du and conv["neuron/vDecay"][()] == n.dv
        assert conv["neuron/vThMant"][()] << 6 == n.theta
        assert tuple(f["layer/0/shape"][()]) == (1, 8, 8)


def test_netx_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(UnsupportedError, match="feed-forward chain"):
        netx.check(lava_variant("recurrent", quantized=True))
    with pytest.raises(UnsupportedError, match=r"node `fc1` \(Dense\): netx clips weights.*weight_exp_max=1"):
        netx.check(lava_variant("cuba", quantized=True))  # exponents up to 7: Lava runs it, netx would clip
    with pytest.raises(UnsupportedError, match=r"node `lif1`: netx's bias is a 13-bit mantissa << 6"):
        netx.check(lava_variant("spiking_mlp", quantized=True, exp_max=1))  # its bias is not a multiple of 64
    with pytest.raises(UnsupportedError, match="fixed-point"):
        netx.check(lava_variant("cuba", quantized=False))


def test_convert_option_writes_network_net(tmp_path):
    LavaTarget().emit(load(GRAPHS / "quantized.n3ml"), tmp_path, options={"netx": "true"})
    assert (tmp_path / "run.py").exists() and (tmp_path / "network.net").exists()
