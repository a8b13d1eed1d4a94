"""Model files: .pt2, TorchScript, state_dict + --model, pickles only behind the opt-in; clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n3ml.errors import N3mlError
from n3ml.frontends.torch import load
from n3ml.ir.interp import run as interp_run
from n3ml.loader import load_model

from .models import SpikingMLP, ann

X = np.random.default_rng(0).random((2, 3, 1, 8, 8))


def _ann_reference(model, x):
    with torch.no_grad():
        return torch.stack([model(torch.as_tensor(x[t], dtype=torch.float32)) for t in range(len(x))]).numpy()


def _check_ann(graph, model):
    got = interp_run(graph, {graph.input_names[0]: X}).outputs["out"]
    np.testing.assert_allclose(got, _ann_reference(model, X), rtol=1e-5, atol=1e-5)  # the model runs in float32


def test_pt2_export(tmp_path):
    model = ann()
    path = tmp_path / "ann.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(2, 1, 8, 8),)), path)
    graph = load_model(str(path))  # the input shape comes from the program
    assert graph.nodes[graph.input_names[0]].shape == (1, 8, 8)
    _check_ann(graph, model)
    with pytest.raises(N3mlError, match=r"--input-shape 1,9,8 does not match .*\(B, 1, 8, 8\)"):
        load_model(str(path), input_shape="1,9,8")


@pytest.mark.parametrize("suffix", [".ts", ".pt"])
def test_torchscript_scripted(tmp_path, suffix):
    model = ann()
    path = tmp_path / f"ann{suffix}"
    torch.jit.script(model).save(str(path))
    graph = load_model(str(path), input_shape="1,8,8")
    _check_ann(graph, model)


def test_torchscript_traced_is_refused_with_reason(tmp_path):
    path = tmp_path / "traced.ts"
    torch.jit.trace(ann(), torch.rand(1, 1, 8, 8)).save(str(path))
    with pytest.raises(N3mlError, match="traced module loses"):
        load_model(str(path), input_shape="1,8,8")


def test_state_dict_with_model_class(tmp_path):
    torch.manual_seed(0)
    model = SpikingMLP(n_in=6, hidden=10)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    graph = load_model(str(path), input_shape="6", model="tests.frontends.models:SpikingMLP",
                       model_args='{"n_in": 6, "hidden": 10}')
    x = np.random.default_rng(1).random((15, 2, 6)) * 4
    with torch.no_grad():
        expected = model.double()(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(interp_run(graph, {graph.input_names[0]: x}).outputs["out"], expected)
    with pytest.raises(N3mlError, match="does not fit --model"):
        load_model(str(path), input_shape="6", model="tests.frontends.models:SpikingMLP", model_args='{"hidden": 9}')
    with pytest.raises(N3mlError, match="this is a state_dict"):
        load_model(str(path), input_shape="6")
    with pytest.raises(N3mlError, match="package.module:ClassName"):
        load_model(str(path), input_shape="6", model="SpikingMLP")
    with pytest.raises(N3mlError, match="not valid JSON"):
        load_model(str(path), input_shape="6", model="tests.frontends.models:SpikingMLP", model_args="{hidden")


def test_pickle_needs_the_flag(tmp_path, caplog):
    model = ann()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(N3mlError, match="pickled Python objects.*--unsafe-allow-pickle"):
        load_model(str(path), input_shape="1,8,8")
    graph = load_model(str(path), input_shape="1,8,8", unsafe_allow_pickle=True)
    assert "unsafe-allow-pickle" in caplog.text
    _check_ann(graph, model)


@pytest.mark.parametrize("suffix", [".pt2", ".ts", ".pt"])
def test_truncated_files_are_clear_errors(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".pt2":
        torch.export.save(torch.export.export(ann(), (torch.rand(2, 1, 8, 8),)), good)
    elif suffix == ".ts":
        torch.jit.script(ann()).save(str(good))
    else:
        torch.save(ann().state_dict(), good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[:400])
    with pytest.raises(N3mlError, match=r"corrupt or truncated"):
        load_model(str(bad), input_shape="1,8,8", model="tests.frontends.models:SpikingMLP")


def test_missing_input_shape(tmp_path):
    path = tmp_path / "m.ts"
    torch.jit.script(ann()).save(str(path))
    with pytest.raises(N3mlError, match="needs --input-shape"):
        load.load_ts(str(path))
