"""Hostile and careless command lines (issue 14): one located message and exit 1 for bad input, a short
"internal error" and exit 2 for a bug in n3ml, never a traceback, never a hang."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from n3ml import cli
from n3ml.cli import main

ROOT = Path(__file__).parents[2]
MLP = str(ROOT / "examples" / "graphs" / "spiking_mlp.n3ml")  # Input x: spike[16]
CUBA = ROOT / "examples" / "graphs" / "cuba.n3ml"


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["--steps", "1e23"], "would need about"),
    (["--steps", "0"], "--steps must be >= 1, found 0"),
    (["--steps", "-1"], "--steps must be >= 1"),
    (["--steps", "2.5"], "--steps expects a whole number, found '2.5'"),
    (["--steps", "1e999999"], "--steps expects a whole number"),
    (["--steps", "5", "--batch", "-1"], "--batch must be >= 1"),
    (["--steps", "5", "--batch", "0"], "--batch must be >= 1"),
    (["--steps", "5", "--seed", "-1"], "--seed must be between 0 and"),
    (["--steps", "5", "--rate", "nan"], "--rate must lie in [0, 1], found nan"),
    (["--steps", "5", "--rate", "1.5"], "--rate must lie in [0, 1]"),
    (["--steps", "5", "--rate", "-0.1"], "--rate must lie in [0, 1]"),
    (["--steps", "5", "--engine", "torch", "--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["--steps", "5", "--engine", "torch", "--device", "tpu"], "--device 'tpu'"),
])
def test_simulate_bad_options(argv, expected, capsys):
    assert main(["simulate", MLP, *argv]) == 1
    assert expected in _err(capsys)


def test_steps_accepts_exact_scientific_notation(tmp_path):
    out = tmp_path / "o.npz"
    assert main(["simulate", MLP, "--steps", "1e1", "-o", str(out)]) == 0
    assert np.load(out)["out"].shape == (10, 1, 10)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(capsys):
    assert main(["simulate", MLP, "--steps", "5", "--engine", "torch", "--device", "cuda"]) == 1
    assert "CUDA is not available" in _err(capsys)


def test_memory_estimate_refuses_huge_runs(tmp_path, capsys, monkeypatch):
    # 1e8 steps of the MLP hold at least its input and output sequences: 1e8 x (16 + 10) x 8 bytes
    from n3ml.commands import _inputs
    from n3ml.ir.text import load

    g = load(MLP)
    assert _inputs.estimate_bytes(g, 10 ** 8, 1) >= 10 ** 8 * 26 * 8
    assert _inputs.estimate_bytes(g, 10 ** 8, 1, engine="torch") > _inputs.estimate_bytes(g, 10 ** 8, 1)
    assert _inputs.estimate_bytes(g, 10, 1, record=["lif1"]) - _inputs.estimate_bytes(g, 10, 1) == 10 * 32 * 4 * 8
    # seeded random input: the float64 draws besides the spikes
    assert _inputs.estimate_bytes(g, 10, 1, random_input=True) - _inputs.estimate_bytes(g, 10, 1) == 10 * 16 * 8
    monkeypatch.setattr(_inputs, "available_bytes", lambda device="cpu": 16 * 2 ** 30)
    assert main(["simulate", MLP, "--steps", "1e8"]) == 1
    err = _err(capsys)
    assert "would need about" in err and "16.0 GiB is available" in err and "nothing was allocated" in err
    big = tmp_path / "big.n3ml"
    big.write_text("n3ml 1\ngraph big() {\n  x = Input(shape=(10000000000,))\n  n = LIF(x, tau=5.0ms)\n"
                   "  o = Output(n)\n}\n")
    assert main(["simulate", str(big), "--steps", "1"]) == 1
    assert "would need about" in _err(capsys)


@pytest.mark.parametrize("array, expected", [
    (np.full((5, 1, 16), np.nan), "array `x` holds nan at index (0, 0, 0); values must be finite"),
    (np.full((5, 1, 16), np.inf), "array `x` holds inf"),
    (np.full((5, 1, 16), 7.5), "feeds a spike input but holds 7.5"),
    (np.full((5, 1, 16), "a"), "holds strings"),
    (np.ones((5, 1, 16)) * 1j, "holds complex numbers"),
    (np.zeros((5, 1, 16), dtype="M8[D]"), "holds datetimes"),
    (np.zeros((5, 1, 16), dtype=[("a", "f8")]), "holds structured records"),
    (np.full((5, 1, 16), 2 ** 60, dtype=np.int64), "beyond ±2^53"),
])
def test_simulate_refuses_bad_input_arrays(array, expected, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=array)
    for engine in ("reference", "torch"):
        assert main(["simulate", MLP, "--steps", "5", "--input", str(tmp_path / "in.npz"), "--engine", engine]) == 1
        err = _err(capsys)
        assert expected in err and "in.npz" in err


def test_big_endian_input_is_converted_exactly(tmp_path):
    x = (np.random.default_rng(1).random((6, 2, 16)) < 0.4).astype(float)
    np.savez(tmp_path / "le.npz", x=x)
    np.savez(tmp_path / "be.npz", x=x.astype(">f8"))
    for engine in ("reference", "torch"):
        assert main(["simulate", MLP, "--steps", "6", "--input", str(tmp_path / "le.npz"), "--engine", engine,
                     "-o", str(tmp_path / "a.npz")]) == 0
        assert main(["simulate", MLP, "--steps", "6", "--input", str(tmp_path / "be.npz"), "--engine", engine,
                     "-o", str(tmp_path / "b.npz")]) == 0
        np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["out"], np.load(tmp_path / "b.npz")["out"])


def test_static_input_is_held_over_steps(tmp_path):
    """An array (B, *shape), without a time axis, is the same input at every step (issue 12 point 5)."""
    x = (np.random.default_rng(2).random((3, 16)) < 0.5).astype(float)
    np.savez(tmp_path / "static.npz", x=x)
    np.savez(tmp_path / "timed.npz", x=np.broadcast_to(x, (7, 3, 16)))
    for name in ("static", "timed"):
        assert main(["simulate", MLP, "--steps", "7", "--input", str(tmp_path / f"{name}.npz"),
                     "-o", str(tmp_path / f"{name}-out.npz")]) == 0
    a, b = np.load(tmp_path / "static-out.npz")["out"], np.load(tmp_path / "timed-out.npz")["out"]
    assert a.shape == (7, 3, 10)
    np.testing.assert_array_equal(a, b)


def test_verify_refuses_nan_input_before_running(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=np.full((5, 1, 16), np.nan))
    assert main(["verify", MLP, "--targets", "nest", "--steps", "5", "--input", str(tmp_path / "in.npz")]) == 1
    assert "holds nan" in _err(capsys)


@pytest.mark.parametrize("flag", ["-o", "--plot"])
def test_outputs_checked_before_work(flag, tmp_path, capsys):
    assert main(["simulate", MLP, "--steps", "5", flag, str(tmp_path / "missing" / "x.out")]) == 1
    assert "does not exist" in _err(capsys)
    assert main(["simulate", MLP, "--steps", "5", flag, str(tmp_path)]) == 1
    assert "is a directory" in _err(capsys)


def test_convert_report_into_missing_directory(tmp_path, capsys):
    assert main(["convert", str(CUBA), "--target", "ir", "-o", str(tmp_path / "out"),
                 "--report", str(tmp_path / "nope" / "r.json")]) == 1
    assert "does not exist" in _err(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["check"], ["show"], ["simulate", "--steps", "2"],
                                     ["convert", "--target", "ir", "-o", "OUT"]])
def test_directory_and_fifo_given_as_model(command, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in command]
    assert main([argv[0], str(tmp_path), *argv[1:]]) == 1
    assert "is a directory" in _err(capsys)
    fifo = tmp_path / "model.n3ml"
    os.mkfifo(fifo)
    assert main([argv[0], str(fifo), *argv[1:]]) == 1  # returns at once: stat, never open
    assert "not a regular file" in _err(capsys)


def test_fifo_as_input_file_does_not_hang(tmp_path, capsys):
    fifo = tmp_path / "in.npz"
    os.mkfifo(fifo)
    assert main(["simulate", MLP, "--steps", "2", "--input", str(fifo)]) == 1
    assert "not a regular file" in _err(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_permission_denied(tmp_path, capsys):
    m = tmp_path / "m.n3ml"
    m.write_text(CUBA.read_text())
    m.chmod(0)
    assert main(["check", str(m)]) == 1
    assert "permission denied" in _err(capsys)


def test_os_errors_are_located_user_errors(monkeypatch, capsys):
    def boom(args):
        raise PermissionError(13, "Permission denied", "/some/where.npz")

    monkeypatch.setattr(importlib.import_module("n3ml.commands.check"), "run", boom)
    assert main(["check", str(CUBA)]) == 1
    assert "n3ml check: error: /some/where.npz: Permission denied" in _err(capsys)


@pytest.mark.parametrize("exc, code, expected", [
    (ZeroDivisionError("division by zero"), 2, "internal error: ZeroDivisionError: division by zero"),
    (MemoryError(), 1, "out of memory"),
    (RecursionError("maximum recursion depth exceeded"), 1, "nested too deeply"),
])
def test_internal_errors_are_short(exc, code, expected, monkeypatch, capsys):
    def boom(args):
        raise exc

    monkeypatch.setattr(importlib.import_module("n3ml.commands.check"), "run", boom)
    monkeypatch.delenv("N3ML_DEBUG", raising=False)
    monkeypatch.delenv("N3ML_TRACEBACK", raising=False)
    assert main(["check", str(CUBA)]) == code
    err = _err(capsys)
    assert expected in err
    if code == 2:
        assert "N3ML_DEBUG=1" in err and "report" in err
    monkeypatch.setenv("N3ML_DEBUG", "1")
    with pytest.raises(type(exc)):
        main(["check", str(CUBA)])


def test_internal_error_exit_status_in_a_process(tmp_path):
    """Through the real entry point: exit 2 and no traceback; N3ML_DEBUG=1 gives the traceback."""
    code = ("import sys, n3ml.commands.check as c\n"
            "c.run = lambda args: 1 / 0\n"
            "from n3ml.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("N3ML_DEBUG", "N3ML_TRACEBACK")}
    r = subprocess.run([sys.executable, "-c", code, "check", str(CUBA)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "internal error: ZeroDivisionError" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-c", code, "check", str(CUBA)], capture_output=True, text=True,
                       env={**env, "N3ML_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_path_table_names_existing_options():
    """Every (command, option) of PATH_ARGS exists, so no check is silently skipped."""
    parser, modules = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for (cmd, attr), _ in cli.PATH_ARGS.items():
        names = modules if cmd == "*" else [cmd]
        assert any(attr in {a.dest for a in sub.choices[c]._actions} for c in names), (cmd, attr)


CNN = str(ROOT / "examples" / "ann_to_snn" / "cnn.onnx")
PIPE = "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}"


@pytest.mark.parametrize("edit, expected", [
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), "array `x` holds nan at index"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 0, np.inf, x), "array `x` holds inf"),
    (lambda x: x[:0], "calibration array `x` is empty"),
    (lambda x: x.astype("U8"), "array `x` holds strings"),
])
def test_bad_calibration_data_is_refused(edit, expected, tmp_path, capsys):
    x = np.load(ROOT / "examples" / "ann_to_snn" / "calib.npz")["x"][:4]
    np.savez(tmp_path / "cal.npz", x=edit(x))
    assert main(["convert", CNN, "--target", "ir", "-o", str(tmp_path / "out"), "-p", PIPE,
                 "--calibration", str(tmp_path / "cal.npz"), "--steps", "5"]) == 1
    assert expected in _err(capsys)
    assert not (tmp_path / "out").exists()


def test_report_is_strict_json(tmp_path):
    from n3ml.commands.convert import _write_report

    path = tmp_path / "r.json"
    _write_report(str(path), {"a": float("nan"), "b": [np.float64("inf"), 1.5], "c": np.array([np.nan, 2.0]),
                              "d": {"e": np.float32(-np.inf), "f": 3}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [None, 2.0], "d": {"e": None, "f": 3}}


@pytest.mark.parametrize("kind", ["spike", "analog"])
def test_convert_input_kind(kind, tmp_path):
    """--input-kind declares what a PyTorch model's input carries (issue 12 point 5)."""
    import torch

    from n3ml.ir.text import load
    from tests.frontends.models import SpikingMLP

    torch.save(SpikingMLP(n_in=6, hidden=10).state_dict(), tmp_path / "w.pt")
    assert main(["convert", str(tmp_path / "w.pt"), "--model", "tests.frontends.models:SpikingMLP",
                 "--model-args", '{"n_in": 6, "hidden": 10}', "--input-shape", "6", "--target", "ir",
                 "-o", str(tmp_path / "out"), "--input-kind", kind]) == 0
    g = load(next((tmp_path / "out").glob("*.n3ml")))
    assert [g.nodes[n].kind for n in g.input_names] == [kind]


def test_input_kind_is_refused_for_n3ml_files(tmp_path, capsys):
    assert main(["convert", str(CUBA), "--target", "ir", "-o", str(tmp_path / "o"), "--input-kind", "spike"]) == 1
    assert "--input-kind" in _err(capsys)


@pytest.mark.parametrize("argv, expected", [
    (["render", str(CUBA), "-o", "x.svg", "--clusters", "1_0"], "invalid choice: '1_0'"),
    (["simulate", str(CUBA), "--steps"], "argument --steps/-T: expected one argument"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["verify", MLP, "--targets", "nest", "--steps", "3", "--timeout", "nan"], "--timeout must be a finite number"),
])
def test_bad_command_lines_exit_1(argv, expected, capsys):
    """A usage error is a user error (exit 1), distinct from an internal error (exit 2)."""
    assert main(argv) == 1
    err = _err(capsys)
    assert expected in err
    if not expected.startswith("--timeout"):  # argparse's own refusals point to the command's help
        assert "--help" in err


def test_torchscript_with_a_short_storage_record(tmp_path):
    """Found by the fuzzer (replace_member on a .ts): must be one message and exit 1, not a crash."""
    import io
    import zipfile

    import torch

    good = tmp_path / "good.ts"
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))).save(
        str(good))
    src = zipfile.ZipFile(good)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info, b"" if info.filename.endswith("/data/1") else src.read(info))
    bad = tmp_path / "bad.ts"
    bad.write_bytes(out.getvalue())
    r = subprocess.run([sys.executable, "-m", "n3ml", "convert", str(bad), "--target", "ir", "-o",
                        str(tmp_path / "out"), "--input-shape", "8"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr[-500:])
    assert "Traceback" not in r.stderr
    assert "data/1" in r.stderr and "declares" in r.stderr


def test_torch_engine_converts_or_refuses_arrays():
    """The torch engine's array-to-tensor entry: big-endian converted exactly, non-numbers refused by name."""
    from n3ml.backends.torch import run as torch_run
    from n3ml.backends.torch.ops import numeric_array
    from n3ml.errors import N3mlError
    from n3ml.ir.interp import run as ref_run
    from n3ml.ir.text import load

    g = load(MLP)
    x = (np.random.default_rng(4).random((5, 2, 16)) < 0.5).astype(np.float64)
    ref = ref_run(g, {"x": x}).outputs["out"]
    np.testing.assert_array_equal(torch_run(g, {"x": x.astype(">f8")}).outputs["out"], ref)
    assert numeric_array(np.arange(3, dtype=">i4")).dtype == np.dtype("<i4")
    for bad, word in [(np.zeros((5, 2, 16), dtype="M8[D]"), "datetime"), (np.ones((5, 2, 16)) * 1j, "complex"),
                      (np.full((5, 2, 16), "s"), "string")]:
        with pytest.raises(N3mlError, match=f"input `x` holds {word}"):
            torch_run(g, {"x": bad})
