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


# cases the fuzzer once failed on (they replay exactly while mutate.py's mutators are unchanged):
# an unbalanced .npy header dict (tokenize.TokenError) in sidecars, inputs and calibration data;
# a corrupt record in a state_dict archive (torch's reader raised IndexError: stoull)
FOUND = [("sidecar", 7, 25), ("sidecar", 7, 236), ("input", 7, 160), ("calibration", 7, 61), ("pt", 7, 208)]


@pytest.mark.parametrize("name, seed_, case", FOUND, ids=lambda v: str(v))
def test_found_cases_stay_fixed(name, seed_, case, tmp_path):
    import random

    from .harness import case_dir

    fam = next((f for f in FAMILIES if f.name == name), None)
    if fam is None:
        pytest.skip(f"no {name} example here")
    rng = random.Random(f"{seed_}:{name}:{case}")
    with case_dir(tmp_path) as d:
        label, _, outs = fam.driver(rng, d)
    assert not any(o.failed for o in outs), f"{label}: {[(o.kind, o.detail) for o in outs]}"
