"""The committed digits network quantized for Loihi 2 keeps its test accuracy (examples/digits/loihi2.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_lava import LAVA_PY

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "digits" / "loihi2.py"


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
