"""`n3ml convert`: output written atomically, --force, passes and report, and clean failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from n3ml.cli import main
from n3ml.ir import text
from n3ml.ir.interp import run as interp_run
from n3ml.nn.zoo import DigitsSNN
from tests.frontends.models import SpikingMLP, ann

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.fixture
def state_dict(tmp_path):
    torch.manual_seed(0)
    model = SpikingMLP(n_in=6, hidden=10)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    return model, path


SD_ARGS = ["--model", "tests.frontends.models:SpikingMLP", "--model-args", '{"n_in": 6, "hidden": 10}']


def test_convert_state_dict_to_ir(tmp_path, state_dict, capsys):
    model, path = state_dict
    out = tmp_path / "out"
    rc = main(["convert", str(path), "--target", "ir", "-o", str(out), "--input-shape", "6", *SD_ARGS])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["model.n3ml", "model.npz"]
    graph = text.load(out / "model.n3ml")
    x = np.random.default_rng(0).random((12, 2, 6)) * 4
    with torch.no_grad():
        expected = model.double()(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(interp_run(graph, {graph.input_names[0]: x}).outputs["out"], expected)
    assert _leftovers(tmp_path, "out") == []


def test_existing_output_needs_force(tmp_path, state_dict, capsys):
    _, path = state_dict
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    argv = ["convert", str(path), "--target", "ir", "-o", str(out), "--input-shape", "6", *SD_ARGS]
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.n3ml", "model.npz"]
    assert _leftovers(tmp_path, "out") == []


def test_n3ml_file_is_a_model(tmp_path):
    out = tmp_path / "o"
    assert main(["convert", str(ROOT / "examples/graphs/recurrent.n3ml"), "--target", "ir", "-o", str(out)]) == 0
    a, b = text.load(ROOT / "examples/graphs/recurrent.n3ml"), text.load(out / "model.n3ml")
    assert list(a.nodes) == list(b.nodes) and all(a.nodes[n].same_as(b.nodes[n]) for n in a.nodes)


def test_pipeline_and_report(tmp_path):
    model = ann()
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
    src = tmp_path / "ann.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(2, 1, 8, 8),)), src)
    out, report = tmp_path / "o", tmp_path / "report.json"
    rc = main(["convert", str(src), "--target", "ir", "-o", str(out), "-p", "fold-batchnorm", "--report", str(report)])
    assert rc == 0
    graph = text.load(out / "model.n3ml")
    assert "BatchNorm" not in {p.op for p in graph.nodes.values()}
    assert isinstance(json.loads(report.read_text()), dict)


def _bad_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    torch.save(ann(), tmp_path / "whole.pt")
    good = tmp_path / "good.ts"
    torch.jit.script(ann()).save(str(good))
    (tmp_path / "cut.ts").write_bytes(good.read_bytes()[:300])
    torch.save(SpikingMLP(n_in=6, hidden=10).state_dict(), tmp_path / "w.pt")
    return {
        "pickle without the flag": ([str(tmp_path / "whole.pt"), "--input-shape", "1,8,8"], "--unsafe-allow-pickle"),
        "truncated file": ([str(tmp_path / "cut.ts"), "--input-shape", "1,8,8"], "corrupt or truncated"),
        "wrong input shape": ([str(tmp_path / "w.pt"), "--input-shape", "7", *SD_ARGS],
                              r"input shape \(7,\).*expected input shape \(6,\)"),
        "malformed input shape": ([str(tmp_path / "w.pt"), "--input-shape", "6,a", *SD_ARGS],
                                  "--input-shape must be positive sizes"),
        "unsupported target option": ([str(tmp_path / "w.pt"), "--input-shape", "6", *SD_ARGS, "-O", "x=1"],
                                      "takes no options"),
        "unknown target": ([str(tmp_path / "w.pt"), "--input-shape", "6", *SD_ARGS, "--target", "nope"],
                           "unknown target"),
    }


@pytest.mark.parametrize("case", ["pickle without the flag", "truncated file", "wrong input shape",
                                  "malformed input shape", "unsupported target option", "unknown target"])
def test_errors_leave_no_output(tmp_path, capsys, case):
    argv, message = _bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    target = [] if "--target" in argv else ["--target", "ir"]
    rc = main(["convert", *argv, *target, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()
    assert _leftovers(tmp_path, "out") == []


def test_unsupported_module_names_it(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GRU(4, 4))
    path = tmp_path / "m.ts"
    torch.jit.script(model).save(str(path))
    rc = main(["convert", str(path), "--target", "ir", "-o", str(tmp_path / "o"), "--input-shape", "4"])
    assert rc == 1
    assert "`1` is a GRU" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


DIGITS = ROOT / "examples" / "digits"


@pytest.mark.skipif(not (DIGITS / "digits_snn.pt").exists(), reason="the digits example has not been trained")
def test_digits_example_converts_and_keeps_its_accuracy(tmp_path):
    meta = json.loads((DIGITS / "digits_snn.json").read_text())
    out = tmp_path / "digits"
    rc = main(["convert", str(DIGITS / "digits_snn.pt"), "--model", meta["model"],
               "--model-args", json.dumps(meta["model_args"]), "--input-shape", str(meta["model_args"]["n_in"]),
               "--target", "ir", "-o", str(out)])
    assert rc == 0
    graph = text.load(out / "model.n3ml")
    with np.load(DIGITS / "test.npz") as z:
        x, labels = z["x"], z["labels"]
    readout = interp_run(graph, {graph.input_names[0]: x}).outputs["out"]
    pred = readout.mean(axis=0).argmax(axis=-1)
    model = DigitsSNN(**meta["model_args"])
    model.load_state_dict(torch.load(DIGITS / "digits_snn.pt", weights_only=True))
    with torch.no_grad():
        want = model.double().predict(torch.from_numpy(x).double()).numpy()
    np.testing.assert_array_equal(pred, want)
    assert float(np.mean(pred == labels)) >= 0.95
