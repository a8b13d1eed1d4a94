"""The mutation fuzzer over the example files (.n3ml, .npz sidecars, inputs, calibration, .onnx, .pt2, .pt),
fed to check/simulate/show/convert in-process. A fixed seed and a small budget here (each case is one
mutant, the same on every machine); `make fuzz` runs the same code with N3ML_FUZZ_BUDGET cases."""

from __future__ import annotations

import pytest

from .files import families, fuzz_family, split
from .harness import Tally, budget, run_cli, seed

FAMILIES = families()
SHARE = split(budget(60), FAMILIES)


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_mutants_get_clean_errors(fam, tmp_path):
    tally = Tally()
    fuzz_family(fam, SHARE[fam.name], seed(), tmp_path, tally)
    assert tally.total() == SHARE[fam.name]
    assert not tally.failures, "\n".join([tally.table(), *tally.failures[:20]])


def test_harness_catches_failures(monkeypatch, tmp_path):
    """The fuzzer's own check: a traceback, an internal error and a hang are each reported as failures."""
    import sys
    import time

    check = sys.modules["n3ml.commands.check"]
    path = str(tmp_path / "x.n3ml")
    (tmp_path / "x.n3ml").write_text("n3ml 1\n")

    monkeypatch.setattr(check, "run", lambda args: time.sleep(5))
    assert run_cli(["check", path], limit=0.2).kind == "hang"
    monkeypatch.setattr(check, "run", lambda args: [][1])
    out = run_cli(["check", path])
    assert out.kind == "internal" and out.failed and "IndexError" in out.detail

    def escape(args):
        raise SystemExit(3)

    monkeypatch.setattr(check, "run", escape)
    assert run_cli(["check", path]).failed
