"""`n3ml show`: node table and synaptic operations from assumed, measured or simulated rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from n3ml.cli import main
from n3ml.ir.interp import run
from n3ml.ir.text import load

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples" / "graphs").glob("*.n3ml"))


def show_json(capsys, *argv) -> dict:
    assert main(["show", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_table_of_every_example(path, capsys):
    g = load(str(path))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    for name, prim in g.nodes.items():
        assert any(ln.split()[:2] == [name, prim.op] for ln in out.splitlines())
    types = g.verify()
    neurons = sum(types[n].size for n, p in g.nodes.items() if p.category == "neuron")
    total = [ln for ln in out.splitlines() if ln.startswith("total")][0].split()
    assert total[1:5] == [str(len(g.nodes)), "nodes", str(len(g.edges)), "edges"] and total[5] == str(neurons)


def test_assumed_rate_scales_sops(capsys):
    path = ROOT / "examples/graphs/spiking_mlp.n3ml"
    g = load(str(path))
    d = show_json(capsys, path, "--rate", 0.5)
    synapses = sum(int(np.count_nonzero(p.weight)) for p in g.nodes.values() if p.op == "Dense")
    assert d["totals"]["synapses"] == synapses
    assert d["totals"]["sops_per_step"] == pytest.approx(0.5 * synapses)
    assert d["totals"]["sops_per_second"] == pytest.approx(0.5 * synapses * 1000 / g.dt)


def test_rates_from_simulate_npz(tmp_path, capsys):
    path = ROOT / "examples/graphs/spiking_mlp.n3ml"
    npz = tmp_path / "r.npz"
    assert main(["simulate", str(path), "-T", "25", "--record", "x,lif1", "-o", str(npz), "--seed", "3"]) == 0
    capsys.readouterr()
    d = show_json(capsys, path, "--rates", npz)
    rows = {r["name"]: r for r in d["nodes"]}
    g = load(str(path))
    with np.load(npz) as z:
        x, lif1 = z["state/x"], z["state/lif1"]
    nz1 = np.count_nonzero(g.nodes["fc1"].weight, axis=0)
    nz2 = np.count_nonzero(g.nodes["fc2"].weight, axis=0)
    assert rows["fc1"]["sops"] == pytest.approx((x[:, 0] * nz1).sum() / 25)
    assert rows["fc2"]["sops"] == pytest.approx((lif1[:, 0] * nz2).sum() / 25)
    assert rows["fc2"]["rate_from"] == "measured" and rows["lif1"]["activity"] == pytest.approx(lif1.mean())


def test_simulate_option_measures_with_the_interpreter(capsys):
    path = ROOT / "examples/graphs/recurrent.n3ml"
    d = show_json(capsys, path, "--simulate", 15, "--seed", 4, "--input-rate", 0.3)
    g = load(str(path))
    x = (np.random.default_rng(4).random((15, 1, 8)) < 0.3).astype(float)
    res = run(g, x, record=["lif"])
    rows = {r["name"]: r for r in d["nodes"]}
    nz = np.count_nonzero(g.nodes["fc_out"].weight, axis=0)
    assert rows["fc_out"]["sops"] == pytest.approx((res.states["lif"][:, 0] * nz).sum() / 15)
    assert rows["lif"]["activity"] == pytest.approx(res.states["lif"].mean())
    assert "reference interpreter, 15 steps" in d["rate_note"]


def test_show_errors(capsys):
    path = ROOT / "examples/graphs/cuba.n3ml"
    assert main(["show", str(path), "--rate", "3"]) == 1
    assert "[0, 1]" in capsys.readouterr().err
    assert main(["show", str(path), "--simulate", "0"]) == 1
    assert ">= 1" in capsys.readouterr().err
    assert main(["show", str(path), "--rates", "/nonexistent.npz"]) == 1
    assert "no such file" in capsys.readouterr().err
