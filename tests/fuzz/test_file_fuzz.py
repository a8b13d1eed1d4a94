"""The mutation fuzzer over the example files (.n3ml, .npz sidecars, inputs, calibration, .onnx, .pt2, .pt),
fed to check/simulate/show/convert in-process. A fixed seed and a small budget here (each case is one
mutant, the same on every machine); `make fuzz` runs the same code with N3ML_FUZZ_BUDGET cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .files import families, fuzz_family, split
from .harness import ROOT, Tally, budget, run_cli, seed

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
    import importlib
    import time

    check = importlib.import_module("n3ml.commands.check")
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


# inputs the fuzzer once failed on, kept as files (tests/fuzz/corpus/cases.json says how each is fed and why
# it failed): each must now be one message and exit 1
CORPUS = Path(__file__).parent / "corpus"
CASES = json.loads((CORPUS / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["file"])
def test_corpus_cases_stay_fixed(case, tmp_path):
    data = (CORPUS / case["file"]).read_bytes()
    if "graph" in case:  # a sidecar: beside a copy of its graph
        graph = tmp_path / Path(case["graph"]).name
        graph.write_bytes((ROOT / case["graph"]).read_bytes())
        (tmp_path / case["as"]).write_bytes(data)
    else:
        graph = None
        (tmp_path / case["file"]).write_bytes(data)
    subst = {"{file}": str(tmp_path / case["file"]), "{out}": str(tmp_path / "out"), "{graph}": str(graph)}
    argv = [subst.get(a, a) for a in case["argv"]]
    argv = [str(ROOT / a) if a.startswith("examples/") else a for a in argv]
    out = run_cli(argv)
    assert out.kind == "error", f"{case['file']} ({case['why']}): {out.kind}: {out.detail}"
