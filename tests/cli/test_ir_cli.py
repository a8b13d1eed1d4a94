"""n3ml check / fmt / simulate on the bundled examples and on bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from n3ml.cli import main
from n3ml.ir.interp import run
from n3ml.ir.text import load

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples" / "graphs").glob("*.n3ml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_check_examples(path, capsys):
    assert main(["check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_fmt_idempotent_via_cli(path, tmp_path, capsys):
    assert main(["fmt", str(path)]) == 0
    once = capsys.readouterr().out
    copy = tmp_path / path.name
    copy.write_text(once)
    sidecar = path.with_suffix(".npz")
    if sidecar.exists():
        (tmp_path / sidecar.name).write_bytes(sidecar.read_bytes())
    assert main(["fmt", str(copy)]) == 0
    assert capsys.readouterr().out == once


def test_check_reports_located_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.n3ml"
    bad.write_text("n3ml 1\ngraph g() {\n  x = Input(shape=(4,))\n  n = LIF(x, tau=-1.0ms)\n  o = Output(n)\n}\n")
    r = subprocess.run([sys.executable, "-m", "n3ml", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}:4:3" in r.stderr and "`tau` must be > 0" in r.stderr
    assert "Traceback" not in r.stderr
    assert "^" in r.stderr


def test_check_missing_file(capsys):
    assert main(["check", "does/not/exist.n3ml"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_simulate_writes_npz_matching_interpreter(tmp_path):
    path = ROOT / "examples" / "graphs" / "recurrent.n3ml"
    x = {"x": (np.random.default_rng(3).random((30, 2, 8)) < 0.3).astype(float)}
    np.savez(tmp_path / "in.npz", **x)
    out = tmp_path / "out.npz"
    assert main(["simulate", str(path), "--steps", "30", "--input", str(tmp_path / "in.npz"),
                 "-o", str(out), "--record", "lif"]) == 0
    got = np.load(out)
    ref = run(load(path), x, record=["lif"])
    np.testing.assert_array_equal(got["spikes"], ref.outputs["spikes"])
    np.testing.assert_array_equal(got["out"], ref.outputs["out"])
    np.testing.assert_array_equal(got["state/lif.v"], ref.states["lif.v"])


def test_simulate_default_input_is_seeded(tmp_path):
    path = str(ROOT / "examples" / "graphs" / "spiking_mlp.n3ml")
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["simulate", path, "--steps", "20", "--batch", "3", "-o", str(a)]) == 0
    assert main(["simulate", path, "--steps", "20", "--batch", "3", "-o", str(b)]) == 0
    np.testing.assert_array_equal(np.load(a)["out"], np.load(b)["out"])
    assert np.load(a)["out"].shape == (20, 3, 10)


def test_simulate_wrong_input_shape(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=np.zeros((5, 1, 7)))
    path = str(ROOT / "examples" / "graphs" / "spiking_mlp.n3ml")
    assert main(["simulate", path, "--steps", "5", "--input", str(tmp_path / "in.npz")]) == 1
    err = capsys.readouterr().err
    assert "node `x`" in err and "(T, B, 16)" in err


def test_simulate_unknown_engine(capsys):
    path = str(ROOT / "examples" / "graphs" / "spiking_mlp.n3ml")
    assert main(["simulate", path, "--steps", "5", "--engine", "nope"]) == 1
    assert "unknown engine 'nope'" in capsys.readouterr().err
