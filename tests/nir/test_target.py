"""The nir target: the file each reader imports runs with the executor's spikes, or the graph is refused."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the nir package is not installed (make setup-nir)")

from n3ml.backends.nir import NirTarget  # noqa: E402
from n3ml.backends.nir.run import READERS  # noqa: E402
from n3ml.errors import N3mlError, UnsupportedError  # noqa: E402
from n3ml.frontends.nir import load  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402

from .models import MODELS, cuba_subtract, spikes  # noqa: E402

T = 30
LIBS = {"snntorch": "snntorch", "norse": "norse.torch"}


def _reader(consumer):
    if consumer in LIBS:
        pytest.importorskip(LIBS[consumer], reason=f"{consumer} is not installed (make setup-peers)")
    return consumer


def _emit(graph, tmp_path, consumer):
    out = tmp_path / consumer
    out.mkdir()
    NirTarget().emit(graph, out, options={"convention": consumer})
    return out


CASES = [(m, c) for m in MODELS for c in ("exact", "snntorch", "norse") if not (m == "recurrent" and c == "snntorch")]


@pytest.mark.parametrize("model,consumer", CASES)
def test_each_reader_runs_the_executors_spikes(tmp_path, model, consumer):
    _reader(consumer)
    graph = MODELS[model]()
    x = spikes(graph, T, batch=6, rate=0.4)
    ref = run(graph, x, T).outputs["out"]
    out = _emit(graph, tmp_path, consumer)
    if consumer == "exact":  # n3ml reads its own file back with the exact convention and the same dt
        back = load(str(out / "model.nir"), dt=graph.dt, nir_convention="exact")
        got = run(back, x, T).outputs["out"]
    else:
        got = READERS[consumer](out / "model.nir", {}, x["x"])
    assert ref.sum() > 20  # the comparison means something
    np.testing.assert_array_equal(got, ref)


def test_snntorch_refuses_recurrent_layers_naming_them(tmp_path):
    with pytest.raises(UnsupportedError, match="node\\(s\\) loop: snnTorch 1.0's reader routes"):
        NirTarget().check(MODELS["recurrent"](), {"convention": "snntorch"})


def test_refusals_name_the_node_and_list_every_problem():
    g = MODELS["mlp"]()
    g.nodes["lif1"] = dataclasses.replace(g.nodes["lif1"], reset="subtract")
    g.nodes["lif2"] = dataclasses.replace(g.nodes["lif2"], refractory=2)
    for consumer in ("snntorch", "norse", "exact"):
        with pytest.raises(UnsupportedError) as e:
            NirTarget().check(g, {"convention": consumer})
        assert "`lif1`" in str(e.value) and "`lif2`" in str(e.value)
    with pytest.raises(N3mlError, match="convention='lava'"):
        NirTarget().check(g, {"convention": "lava"})


def test_norse_folds_the_input_gain_into_the_weights(tmp_path):
    graph = MODELS["cnn"]()  # lif2 has r = 1.5: Norse ignores a LIF's r, so fc's weights and bias carry it
    out = _emit(graph, tmp_path, "norse")
    g = nir.read(out / "model.nir", type_check=False)
    assert np.allclose(g.nodes["fc"].weight, graph.nodes["fc"].weight * 1.5, rtol=1e-14)
    assert np.allclose(g.nodes["fc"].bias, graph.nodes["fc"].bias * 1.5, rtol=1e-14)
    assert np.all(g.nodes["lif2"].r == 1)


def test_convert_writes_nir_and_manifest(tmp_path):
    from n3ml.cli import main
    from n3ml.ir.text import save

    save(MODELS["cnn"](), tmp_path / "cnn.n3ml")
    out = tmp_path / "out"
    assert main(["convert", str(tmp_path / "cnn.n3ml"), "--target", "nir", "-O", "convention=norse", "-o",
                 str(out)]) == 0
    assert json.loads((out / "target.json").read_text())["convention"] == "norse"
    assert set(nir.read(out / "model.nir", type_check=False).nodes) >= {"x", "conv", "lif1", "out"}


def test_verify_runs_the_readers_in_the_same_table(tmp_path, capsys):
    _reader("norse")
    from n3ml.cli import main
    from n3ml.ir.text import save

    save(MODELS["mlp"](), tmp_path / "mlp.n3ml")
    # verify in this process (each nir:* target still runs its reader in a process of its own)
    assert main(["verify", str(tmp_path / "mlp.n3ml"), "--targets", "nir:exact,nir:norse", "--steps", "12",
                 "--batch", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("nir:")]
    assert len([r for r in rows if "100.00%" in r]) == 2, out


def _subtract_net(scale_in: float, scale_out: float, out_if: bool = True):
    from n3ml.ir import Graph
    from n3ml.ir import prims as P

    rng = np.random.default_rng(0)
    g = Graph(name="s", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(10,)))
    g.add("fc", P.Dense(weight=rng.normal(0, scale_in, (12, 10))), "x")
    g.add("lif", P.LIF(tau=5.0, r=1.0, theta=1.0, reset="subtract"), "fc")
    g.add("fc2", P.Dense(weight=rng.normal(0, scale_out, (6, 12)), bias=np.zeros(6)), "lif")
    out = P.IF(theta=1.0, reset="subtract") if out_if else P.LIF(tau=8.0, r=6.0, theta=1.0, reset="subtract")
    g.add("if2", out, "fc2")
    g.add("out", P.Output(), "if2")
    return g


def test_sinabs_file_is_exact_without_multi_spikes_and_close_with_them(tmp_path):
    pytest.importorskip("sinabs", reason="Sinabs is not installed (make setup-nir-readers)")
    # LIF only and a weak drive: no multi-spike, no clipped IF membrane, so identical; then Sinabs' IF
    # (clipped at -theta) and multi-spikes under a strong drive: close
    for scales, out_if, least in (((0.3, 1.0), False, 1.0), ((0.6, 0.8), True, 0.95)):
        g = _subtract_net(*scales, out_if=out_if)
        x = spikes(g, 50, batch=8, rate=0.4)
        ref = run(g, x, 50).outputs["out"]
        out = tmp_path / f"s{scales[0]}"
        out.mkdir()
        NirTarget().emit(g, out, options={"convention": "sinabs"})
        got = READERS["sinabs"](out / "model.nir", {}, x["x"])
        assert ref.sum() > 20 and np.mean(ref == got) >= least
        if least == 1.0:
            assert got.max() == 1  # no multi-spike: the approximation is exact here


def test_spyx_refuses_every_neuron_naming_it():
    with pytest.raises(UnsupportedError, match="node `lif`: Spyx's neurons emit the spike of step t from the "
                                                "membrane of step t-1"):
        NirTarget().check(_subtract_net(0.3, 1.0), {"convention": "spyx"})


@pytest.mark.parametrize("recurrent", [False, True])
def test_rockpool_runs_the_executors_spikes(tmp_path, recurrent):
    """nir:rockpool: the decayed input (i = b_s (i + x)), the membrane gain, v_leak as a bias and the recurrent
    synapse's bias are folded so that Rockpool 3.1's reader runs the graph; identical while no neuron fires twice
    in one step (Rockpool's multi-spikes, the documented approximation)."""
    pytest.importorskip("rockpool.nn.modules.torch.nir", reason="Rockpool is not installed (make setup-nir-readers)")
    g = cuba_subtract(recurrent)
    x = spikes(g, 40, batch=6, rate=0.4)
    ref = run(g, x, 40).outputs["out"]
    out = _emit(g, tmp_path, "rockpool")
    got = READERS["rockpool"](out / "model.nir", {}, x["x"])
    assert ref.sum() > 10 and got.max() == 1
    np.testing.assert_array_equal(got, ref)
    if recurrent:  # the loop is a nested graph, as Rockpool reads recurrent layers
        assert type(nir.read(out / "model.nir", type_check=False).nodes["lif"]).__name__ == "NIRGraph"
    back = load(str(out / "model.nir"), dt=1.0, nir_convention="rockpool")
    np.testing.assert_array_equal(run(back, x["x"], 40).outputs[back.output_names[0]], ref)


def test_rockpool_refuses_lif_naming_its_readers_bug():
    with pytest.raises(UnsupportedError, match="node `lif`: Rockpool 3.1.0 cannot run this LIF: its reader fails on "
                                                "every nir.LIF"):
        NirTarget().check(_subtract_net(0.3, 1.0), {"convention": "rockpool"})
