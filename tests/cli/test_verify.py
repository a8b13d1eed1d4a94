"""n3ml verify: the conformance harness, on the real NEST / PyNN and on a fake target."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from n3ml import registry
from n3ml.backends.conformance import compare
from n3ml.cli import main

ROOT = Path(__file__).parents[2]
GRAPHS = ROOT / "examples" / "graphs"
needs_sim = pytest.mark.skipif(importlib.util.find_spec("nest") is None or importlib.util.find_spec("pyNN") is None,
                               reason="NEST/PyNN not installed (make setup-sim)")


def _rows(out: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[2] in ("spike", "analog"):
            rows[(cells[0], cells[1])] = cells
    return rows


@needs_sim
@pytest.mark.nest
@pytest.mark.pynn
def test_verify_cuba_on_nest_and_pynn(capsys):
    rc = main(["verify", str(GRAPHS / "cuba.n3ml"), "--targets", "nest,pynn", "--steps", "20", "--batch", "2",
               "--seed", "3", "--engine", "reference"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = _rows(out)
    for target in ("nest", "pynn"):
        cells = rows[(target, "out")]
        assert cells[3] == "100.00%" and cells[4] == "100.00%" and cells[6] == "-", out


@needs_sim
@pytest.mark.nest
def test_verify_recurrent_reports_spikes_and_voltages(capsys):
    rc = main(["verify", str(GRAPHS / "recurrent.n3ml"), "--targets", "nest", "--steps", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = _rows(out)
    assert rows[("nest", "spikes")][3] == "100.00%"
    assert rows[("nest", "out")][2] == "analog" and rows[("nest", "out")][3] == "100.00%"


def test_verify_refused_graph_fails_naming_the_node(capsys):
    rc = main(["verify", str(GRAPHS / "quantized.n3ml"), "--targets", "nest", "--steps", "5", "--engine",
               "reference"])
    out = capsys.readouterr()
    assert rc == 1
    assert "nest: refused: node `n1` (FixedCubaLIF)" in out.out


class _Fake:
    """A target whose program returns the reference outputs with spikes removed after step `cut`."""

    name = "fake"

    def check(self, graph, options=None):
        pass

    def emit(self, graph, out_dir, *, steps=None, options=None):
        from n3ml.ir.text import save

        save(graph, out_dir / "g.n3ml")
        cut = int((options or {}).get("cut", 10**9))
        (out_dir / "run.py").write_text(textwrap.dedent(f"""
            import argparse, numpy as np
            from n3ml.ir.text import load
            from n3ml.ir.interp import run
            p = argparse.ArgumentParser(); p.add_argument("--input"); p.add_argument("--steps", type=int)
            p.add_argument("-o")
            a = p.parse_args()
            x = dict(np.load(a.input))
            r = run(load({str(out_dir / 'g.n3ml')!r}), x, a.steps)
            outs = {{k: v.copy() for k, v in r.outputs.items()}}
            for v in outs.values():
                v[{cut}:] = 0
            np.savez(a.o, **outs)
        """))

    def run_argv(self, out_dir):
        return [sys.executable, str(out_dir / "run.py")]


def test_verify_is_generic_over_targets(monkeypatch, capsys, tmp_path):
    """Any registered target plugs in; agreement below --min-agreement makes the exit status 1."""
    monkeypatch.setitem(registry.TARGETS, "fake", f"{__name__}:_Fake")
    model = str(GRAPHS / "spiking_mlp.n3ml")
    base = ["verify", model, "--targets", "fake", "--steps", "30", "--engine", "reference", "--rate", "0.5"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "-O", "fake.cut=12", "--keep", str(tmp_path / "k")]) == 1
    out = capsys.readouterr().out
    cells = _rows(out)[("fake", "out")]
    assert cells[6] == "12"  # first divergence step
    assert float(cells[3].rstrip("%")) < 100
    assert (tmp_path / "k" / "fake" / "run.py").exists()
    assert main([*base, "-O", "fake.cut=12", "--min-agreement", "0.0"]) == 0


def test_compare_metrics_by_hand():
    ref = np.zeros((4, 1, 3))
    got = np.zeros((4, 1, 3))
    ref[0, 0, 0] = ref[1, 0, 1] = ref[2, 0, 1] = 1  # counts (1, 2, 0)
    got[0, 0, 0] = got[2, 0, 1] = got[3, 0, 2] = 1  # counts (1, 1, 1)
    c = compare("out", ref, got, "spike")
    assert c.agreement == pytest.approx(2 / 4)  # 2 shared of 4 distinct events
    assert c.count_agreement == pytest.approx(1 - 2 / 4)  # |0| + |1| + |1| over max-sum 1 + 2 + 1
    assert c.first_divergence == 1
    assert c.count_corr is None  # the target's counts are constant: no correlation
    got[1, 0, 2] = 1  # counts (1, 1, 2)
    assert compare("out", ref, got, "spike").count_corr == pytest.approx(np.corrcoef([1, 2, 0], [1, 1, 2])[0, 1])
    silent = compare("out", np.zeros((3, 1, 2)), np.zeros((3, 1, 2)), "spike")
    assert silent.agreement == 1.0 and silent.first_divergence is None
    v = compare("v", np.array([[[1.0]], [[2.0]]]), np.array([[[1.0]], [[2.5]]]), "analog")
    assert v.agreement == 0.5 and v.first_divergence == 1 and v.max_error == 0.5


@needs_sim
@pytest.mark.nest
def test_verify_with_input_file(tmp_path, capsys):
    """--input X.npz: the given batch (3 samples) runs on the target, sample by sample."""
    x = (np.random.default_rng(5).random((15, 3, 16)) < 0.4).astype(float)
    np.savez(tmp_path / "x.npz", x=x)
    rc = main(["verify", str(GRAPHS / "spiking_mlp.n3ml"), "--targets", "nest", "--steps", "12", "--input",
               str(tmp_path / "x.npz"), "--engine", "reference", "--keep", str(tmp_path / "k")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert _rows(out)[("nest", "out")][3] == "100.00%"
    with np.load(tmp_path / "k" / "nest-out.npz") as z:
        assert z["out"].shape == (12, 3, 10)


@needs_sim
@pytest.mark.nest
@pytest.mark.pynn
def test_outputs_named_like_savez_keywords_are_saved(tmp_path, capsys):
    """np.savez reserves `file` and `allow_pickle`; the programs write their outputs without that limit."""
    g = tmp_path / "names.n3ml"
    g.write_text(textwrap.dedent("""\
        n3ml 1
        graph g(dt=1ms) {
          x = Input(shape=(3,), kind=spike)
          fc = Dense(x, weight=tensor<f64>(2, 3)[1.5, 0.2, 0.9, 0.4, 1.2, 0.3])
          lif = LIF(fc, tau=5ms, theta=1.0, reset=to-value)
          file = Output(lif)
          allow_pickle = Output(fc)
        }
        """))
    rc = main(["verify", str(g), "--targets", "nest,pynn", "--steps", "30", "--batch", "2", "--rate", "0.6",
               "--engine", "reference"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = _rows(out)
    for target in ("nest", "pynn"):
        assert rows[(target, "file")][3] == "100.00%"
    assert rows[("nest", "allow_pickle")][3] == "100.00%"
