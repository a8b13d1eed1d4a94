"""netx HDF5 export: the file reads back into the same computation, and lava-dl's own
`netx.hdf5.Network` (in .venv-lava-dl, `make setup-lava-dl`) runs it in Lava with the executor's spikes."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from n3ml.backends.lava import LavaTarget, netx  # noqa: E402
from n3ml.errors import N3mlError, UnsupportedError  # noqa: E402
from n3ml.ir import interp  # noqa: E402
from n3ml.ir import prims as P  # noqa: E402
from n3ml.ir.text import load  # noqa: E402

from .test_lava import GRAPHS, LAVA_PY, lava_variant, run_lava, spikes  # noqa: E402

try:
    LAVA_DL_PY, LAVA_DL_WHY = netx.lava_dl_python(), ""
except N3mlError as e:
    LAVA_DL_PY, LAVA_DL_WHY = None, str(e)
needs_lava_dl = pytest.mark.skipif(LAVA_DL_PY is None, reason=LAVA_DL_WHY or "the lava-dl venv is missing")


def _graph(name):
    return load(GRAPHS / "quantized.n3ml") if name == "quantized" else lava_variant(name, quantized=True, exp_max=1)


@pytest.mark.parametrize("name", ["quantized", "cuba", "spiking_cnn"])
def test_netx_round_trip_computes_the_same_spikes(name, tmp_path):
    g = _graph(name)
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


@needs_lava_dl
@pytest.mark.parametrize("name", ["quantized", "cuba", "spiking_cnn"])
def test_lava_dl_netx_runs_the_file_bit_identical(name, tmp_path):
    """lava-dl 0.6.0's own reader (netx.hdf5.Network) loads every kind of file n3ml writes (dense, conv with
    groups, flatten) and Lava fixed_pt gives the executor's spikes, and n3ml's own Lava program's."""
    g = _graph(name)
    netx.write(g, tmp_path / "network.net")
    x = spikes(g, T=16, B=2)
    ref = interp.run(g, x).outputs["out"]
    assert ref.sum() > 10
    np.savez(tmp_path / "x.npz", **x)
    r = subprocess.run(netx.run_argv(tmp_path / "network.net") + ["--input", str(tmp_path / "x.npz"), "-o",
                                                                   str(tmp_path / "y.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "y.npz") as f:
        got = f["out"]
    np.testing.assert_array_equal(got, ref)
    if LAVA_PY is not None:  # n3ml's own Lava program on the same graph
        np.testing.assert_array_equal(run_lava(g, x, tmp_path)["out"], got)


def _with(g, before, name, prim):
    """Insert node `name` (prim) on the edges leaving `before`."""
    for e in [e for e in g.edges if e.src == before]:
        g.edges.remove(e)
        g.connect(name, e.dst, e.dst_port)
    g.add(name, prim, before)
    return g


def test_netx_refuses_delays_pools_and_subtract_with_the_node_and_reason():
    with pytest.raises(UnsupportedError, match=r"node `d` \(Delay\): netx's only delay is a per-synapse"):
        netx.check(_with(_graph("quantized"), "n1", "d", P.Delay(steps=2)))
    g = _graph("spiking_cnn")
    first = next(n for n, p in g.nodes.items() if isinstance(p, P.FixedCubaLIF))
    with pytest.raises(UnsupportedError, match=r"node `pool` \(SumPool2d\): netx's `pool` layer is a pooling "
                                               "synapse followed by its own CUBA neuron"):
        netx.check(_with(g, first, "pool", P.SumPool2d(kernel=(2, 2), stride=(2, 2))))
    g = _graph("quantized")
    g.replace("n1", reset="subtract")
    with pytest.raises(UnsupportedError, match=r"node `n1`: netx's CUBA neurons \(Lava's LIF\) reset v to 0; "
                                               "found reset=subtract"):
        netx.check(g)
