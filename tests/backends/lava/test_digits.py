"""The committed digits network quantized for Loihi 2 keeps its test accuracy (examples/digits/loihi2.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from n3ml.cli import main

from .test_lava import LAVA_PY

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
SCRIPT = DIGITS / "loihi2.py"


@pytest.mark.skipif(not SCRIPT.exists(), reason="examples/digits/loihi2.py is not in this checkout")
def test_digits_loihi2_accuracy_within_one_point(tmp_path):
    pytest.importorskip("sklearn")
    argv = [sys.executable, str(SCRIPT), "--json", str(tmp_path / "fig.json")]
    if LAVA_PY is not None:
        argv += ["--lava", "30"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    fig = json.loads((tmp_path / "fig.json").read_text())
    assert fig["float_accuracy"] >= 0.95
    assert abs(fig["loihi2_accuracy"] - fig["float_accuracy"]) <= 0.01, fig
    if LAVA_PY is not None:
        assert fig["lava_bit_identical"] is True


@pytest.mark.skipif(LAVA_PY is None, reason="the Lava venv is missing (make setup-lava)")
def test_digits_pt2_verify_on_lava_bit_identical(tmp_path, capsys):
    """`n3ml verify digits_snn.pt2 -p quantize{...} --targets lava --record`: the emitted Lava program's
    readout and hidden states equal the torch executor's fixed-point run on a few test samples."""
    with np.load(DIGITS / "test.npz") as z:
        x = z["x"][:, :4]
    np.savez(tmp_path / "in.npz", x=np.round(x * 16).astype(np.int64))
    rc = main(["verify", str(DIGITS / "digits_snn.pt2"),
               "-p", "quantize{profile=loihi2,input_scale=16,readout=voltage}", "--targets", "lava",
               "--steps", str(x.shape[0]), "--input", str(tmp_path / "in.npz"), "--record", "readout",
               "--record", "lif1"])
    table = capsys.readouterr().out
    assert rc == 0, table
    rows = {line.split()[1]: line.split() for line in table.splitlines() if line.startswith("lava ")}
    assert set(rows) == {"out", "state/readout.v", "state/readout.i", "state/lif1.v", "state/lif1.i"}, table
    for row in rows.values():
        assert row[3] == "100.00%" and row[-1] == "0", table  # agreement, max |err|


def test_verify_refuses_float_pixels_for_integer_inputs(tmp_path, capsys):
    """With input_scale the quantized graph takes round(16 x); the float pixels (0..1) are refused, not
    silently truncated to 0 by the integer arithmetic."""
    with np.load(DIGITS / "test.npz") as z:
        np.savez(tmp_path / "in.npz", x=z["x"][:, :2])
    rc = main(["verify", str(DIGITS / "digits_snn.pt2"),
               "-p", "quantize{profile=loihi2,input_scale=16,readout=voltage}", "--targets", "lava",
               "--steps", "8", "--input", str(tmp_path / "in.npz")])
    assert rc == 1
    assert "non-integer values" in capsys.readouterr().err


def test_digits_pt2_converts_to_floating_pt_without_a_pipeline(tmp_path):
    """The headline command: no quantize pipeline, so a floating_pt program whose LI readout is a LIF
    that never fires, read through its voltage."""
    rc = main(["convert", str(DIGITS / "digits_snn.pt2"), "--target", "lava", "-o", str(tmp_path / "out")])
    assert rc == 0
    desc = json.loads((tmp_path / "out" / "network.json").read_text())
    assert desc["run_cfg"] == "floating_pt"
    assert desc["readouts"] == {"out": {"population": "readout", "latency": 2}}  # the Output is the LI's voltage
    assert desc["populations"]["x"]["graded"]  # analog pixels arrive as graded spikes (num_message_bits=24)


@pytest.mark.skipif(LAVA_PY is None, reason="the Lava venv is missing (make setup-lava)")
def test_digits_pt2_verify_floating_pt(tmp_path, capsys):
    """`n3ml verify digits_snn.pt2 --targets lava` (float pixels, no pipeline): the readout voltage and
    the hidden voltages agree with the reference to float rounding."""
    with np.load(DIGITS / "test.npz") as z:
        np.savez(tmp_path / "in.npz", x=z["x"][:, :4])
    rc = main(["verify", str(DIGITS / "digits_snn.pt2"), "--targets", "lava", "--steps", "8",
               "--input", str(tmp_path / "in.npz"), "--record", "readout", "--record", "lif1"])
    table = capsys.readouterr().out
    assert rc == 0, table
    rows = {line.split()[1]: line.split() for line in table.splitlines() if line.startswith("lava ")}
    assert set(rows) == {"out", "state/readout.v", "state/lif1.v"}, table
    for row in rows.values():
        assert row[3] == "100.00%" and float(row[-1]) < 1e-9, table  # agreement, max |err|
