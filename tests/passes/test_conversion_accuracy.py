"""Acceptance of the ANN-to-SNN conversion on the bundled digits models (examples/ann_to_snn/).

Converted with "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}" on the bundled calibration set
(training split), then simulated on the executor on a subset of the held-out test split.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from n3ml.ir import prims as P
from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.backends.torch import run as torch_run
from n3ml.passes.base import Engine
from n3ml.passes.report import conversion_report, format_report

TORCH = Engine("torch", torch_run, {"dtype": "float64"})  # the caller lends passes an engine

PIPELINE = "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"
CAL = dict(np.load("examples/ann_to_snn/calib.npz"))
TEST = dict(np.load("examples/ann_to_snn/test.npz"))
N_TEST, STEPS = 150, 60


def _convert_and_measure(model: str) -> dict:
    ctx = {"calibration": CAL, "steps": STEPS, "report": None}
    snn = PassManager.from_string(PIPELINE).run(load_model(f"examples/ann_to_snn/{model}.onnx"), ctx)
    rep = conversion_report(snn, {"x": TEST["x"][:N_TEST].astype(np.float64)}, steps=STEPS,
                            labels=TEST["labels"][:N_TEST], ann=ctx["ann"], engine=TORCH)
    print(format_report(rep))
    return rep


@pytest.mark.parametrize("model,tolerance", [("cnn", 0.01), ("residual", 0.02), ("concat", 0.02)])
def test_snn_keeps_ann_accuracy_and_rates_follow_activations(model, tolerance):
    rep = _convert_and_measure(model)
    ann = rep["accuracy"]["ann"]["probs"]
    snn = rep["accuracy"]["snn"]["probs"]
    assert ann > 0.95
    assert snn[str(STEPS)] >= ann - tolerance, snn
    assert snn["1"] < ann - 0.2  # accuracy really builds up over time (the SNN is simulated)
    for layer in rep["layers"]:
        assert layer["correlation"] is not None and layer["correlation"] >= 0.97, layer


def test_convert_cli_writes_the_report(tmp_path):
    from n3ml.cli import main

    out, rep = tmp_path / "snn", tmp_path / "report.json"
    code = main(["convert", "examples/ann_to_snn/concat.onnx", "--target", "ir", "-o", str(out), "--steps", "30",
                 "-p", "fold-batchnorm,ann-to-snn{readout=membrane},normalize{percentile=99.9,samples=48}",
                 "--calibration", "examples/ann_to_snn/calib.npz", "--report", str(rep)])
    assert code == 0
    data = json.loads(rep.read_text())
    assert data["steps"] == 30 and data["samples"] == 48
    names = {lay["node"] for lay in data["layers"]}
    assert {"a_2_Relu", "b_2_Relu", "mix_2_Relu"} <= names
    assert set(data["accuracy"]["snn"]["probs"]) >= {"1", "10", "30"}
    assert data["normalize"]["percentile"] == 99.9
    g = load_model(str(next(out.glob("*.n3ml"))))
    assert isinstance(g.nodes[g.inputs_of("probs")[0]], P.Integrator)


@pytest.mark.nest
@pytest.mark.skipif(__import__("importlib").util.find_spec("nest") is None, reason="NEST not installed")
@pytest.mark.parametrize("model", ["cnn", "residual"])
def test_converted_graph_runs_identically_on_nest(model, tmp_path, capsys):
    """`n3ml verify --targets nest` on the converted graph: identical output spikes (exit status 0)."""
    from n3ml.cli import main

    out = tmp_path / "snn"
    assert main(["convert", f"examples/ann_to_snn/{model}.onnx", "--target", "ir", "-o", str(out), "-p",
                 "fold-batchnorm,ann-to-snn,normalize{percentile=99.9,report=false}",
                 "--calibration", "examples/ann_to_snn/calib.npz"]) == 0
    x = TEST["x"][:6].astype(np.float64)
    np.savez(tmp_path / "x.npz", x=np.ascontiguousarray(np.broadcast_to(x[None], (40, *x.shape))))
    code = main(["verify", str(next(out.glob("*.n3ml"))), "--targets", "nest", "--steps", "40",
                 "--input", str(tmp_path / "x.npz")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "100.00%" in text


def test_conversion_report_pass_and_engines_agree():
    ctx = {"calibration": {"x": CAL["x"][:16], "labels": CAL["labels"][:16]}, "report": None}
    pipe = "fold-batchnorm,ann-to-snn,normalize{report=false},conversion-report{steps=20,engine=reference}"
    snn = PassManager.from_string(pipe).run(load_model("examples/ann_to_snn/residual.onnx"), ctx)
    rep = ctx["report"]
    assert rep["engine"] == "reference" and rep["steps"] == 20 and rep["samples"] == 16
    assert set(rep["accuracy"]["snn"]["probs"]) == {"1", "2", "5", "10", "20"}
    other = conversion_report(snn, {"x": CAL["x"][:16].astype(np.float64)}, steps=20,
                              labels=CAL["labels"][:16], engine=TORCH)
    for a, b in zip(rep["layers"], other["layers"]):  # float64 executor == reference interpreter
        assert a["node"] == b["node"] and a["snn_rate_mean"] == b["snn_rate_mean"]
    table = format_report(rep)
    assert all(lay["node"] in table for lay in rep["layers"]) and "ANN" in table
