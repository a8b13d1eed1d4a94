"""The hand-made hostile inputs of issue 14, each fed to the command that reads it: every one must end in one
message and exit 1 (or be accepted), never a traceback, an internal error or a hang."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from .harness import ROOT, run_cli

MLP = ROOT / "examples" / "graphs" / "spiking_mlp.n3ml"
HEAD = "n3ml 1\ngraph g(dt=1.0ms{graph_kw}) {{\n  x = Input(shape=(4,))\n{body}\n  o = Output(n)\n}}\n"

# name -> (graph keywords, body): each line once made the parser, verifier or an engine throw
TEXTS = {
    "refractory with 5000 digits": ("", "  n = LIF(x, tau=5.0ms, refractory=" + "9" * 5000 + ")"),
    "i8 tensor holding 300": ("", "  d = Dense(x, weight=tensor<i8>(1, 4)[300, 1, 1, 1])\n  n = LIF(d, tau=5.0ms)"),
    "u8 tensor holding -1": ("", "  d = Dense(x, weight=tensor<u8>(1, 4)[-1, 1, 1, 1])\n  n = LIF(d, tau=5.0ms)"),
    "int beyond int64": ("", "  d = Dense(x, weight=tensor<i64>(1, 4)[99999999999999999999, 1, 1, 1])\n"
                             "  n = LIF(d, tau=5.0ms)"),
    "tab in a string": (', name="a\tb"', "  n = LIF(x, tau=5.0ms)"),
    "array as scheme": (", scheme=tensor<f64>(1)[1.0]", "  n = LIF(x, tau=5.0ms)"),
    "tuple as reset": ("", "  n = LIF(x, tau=5.0ms, reset=(1, 2))"),
    "array as kind": ("", "  n = LIF(x, tau=5.0ms)"),
    "1000-deep tuples": ("", "  n = LIF(x, tau=" + "(" * 1000 + "1" + ",)" * 1000 + ")"),
    "theta=-1e308 on FixedCubaLIF": ("", "  n = FixedCubaLIF(x, theta=-1e308, du=1, dv=1)"),
    "theta=1e20 on FixedCubaLIF": ("", "  n = FixedCubaLIF(x, theta=1e20, du=1, dv=1)"),
    "Delay steps=1e20": ("", "  n = Delay(x, steps=1e20)"),
    "dt=1e400ms": ("", "  n = LIF(x, tau=5.0ms)"),
    "NaN bias": ("", "  d = Dense(x, weight=tensor<f64>(1, 4)[1, 1, 1, 1], bias=tensor<f64>(1)[nan])\n"
                     "  n = LIF(d, tau=5.0ms)"),
    "inf tau": ("", "  n = LIF(x, tau=1e400ms)"),
    "10^10-neuron input": ("", "  n = LIF(x, tau=5.0ms)"),
}


def _text(name: str) -> str:
    kw, body = TEXTS[name]
    text = HEAD.format(graph_kw=kw, body=body)
    if name == "array as kind":
        text = text.replace("Input(shape=(4,))", "Input(shape=(4,), kind=tensor<f64>(1)[1.0])")
    if name == "dt=1e400ms":
        text = text.replace("dt=1.0ms", "dt=1e400ms")
    if name == "10^10-neuron input":
        text = text.replace("shape=(4,)", "shape=(10000000000,)")
    return text


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_hostile_text(name, tmp_path):
    path = tmp_path / "g.n3ml"
    path.write_text(_text(name))
    for argv in (["check", str(path)], ["simulate", str(path), "--steps", "2"], ["fmt", str(path)]):
        out = run_cli(argv, limit=20)
        assert not out.failed, f"{argv[0]}: {out.kind}: {out.detail}"


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _lying_npz(old: bytes = b"'shape': (32, 16)", new: bytes = b"'shape': (1000000000000,)") -> bytes:
    """fc1.weight's .npy header rewritten (by default: it claims shape (10^12,) while the data holds 512 values)."""
    good = _npz(**dict(np.load(MLP.with_suffix(".npz"))))
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "fc1.weight.npy":
                data = data.replace(old, new)
            z.writestr(info, data)
    return out.getvalue()


def _bad_name_npz() -> bytes:
    """A member name with an invalid UTF-8 byte, flagged as UTF-8."""
    good = bytearray(_npz(**dict(np.load(MLP.with_suffix(".npz")))))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = good.find(sig)
        while at >= 0:
            name_at = at + (30 if sig == b"PK\x03\x04" else 46)
            good[name_at] = 0xFF
            flags = at + (6 if sig == b"PK\x03\x04" else 8)
            good[flags + 1] |= 0x08
            at = good.find(sig, at + 4)
    return bytes(good)


SIDECARS = {
    "lying .npy header": _lying_npz,
    "unbalanced .npy header": lambda: _lying_npz(b"'shape': (32, 16)", b"'shape': ((32, 16)"),
    "invalid UTF-8 member name": _bad_name_npz,
    "a .npy instead of .npz": lambda: _npy(np.zeros((32, 16))),
    "datetime weights": lambda: _npz(**{**dict(np.load(MLP.with_suffix(".npz"))),
                                        "fc2.weight": np.zeros((10, 32), dtype="M8[D]")}),
    "big-endian weights": lambda: _npz(**{k: v.astype(v.dtype.newbyteorder(">"))
                                          for k, v in np.load(MLP.with_suffix(".npz")).items()}),
    "complex weights": lambda: _npz(**{**dict(np.load(MLP.with_suffix(".npz"))),
                                       "fc2.weight": np.ones((10, 32)) * 1j}),
    "string weights": lambda: _npz(**{**dict(np.load(MLP.with_suffix(".npz"))),
                                      "fc2.weight": np.full((10, 32), "w")}),
    "structured weights": lambda: _npz(**{**dict(np.load(MLP.with_suffix(".npz"))),
                                          "fc2.weight": np.zeros((10, 32), dtype=[("a", "f8")])}),
}


@pytest.mark.parametrize("name", sorted(SIDECARS))
def test_hostile_sidecar(name, tmp_path):
    (tmp_path / MLP.name).write_text(MLP.read_text())
    (tmp_path / "spiking_mlp.npz").write_bytes(SIDECARS[name]())
    for argv in (["check", str(tmp_path / MLP.name)],
                 ["simulate", str(tmp_path / MLP.name), "--steps", "2", "--engine", "torch"],
                 ["simulate", str(tmp_path / MLP.name), "--steps", "2"]):
        out = run_cli(argv, limit=20)
        assert not out.failed, f"{' '.join(argv[:1])}: {out.kind}: {out.detail}"


def test_fifo_and_directory_as_weights(tmp_path):
    (tmp_path / MLP.name).write_text(MLP.read_text())
    os.mkfifo(tmp_path / "spiking_mlp.npz")
    out = run_cli(["check", str(tmp_path / MLP.name)], limit=10)
    assert out.kind == "error", f"{out.kind}: {out.detail}"
    os.unlink(tmp_path / "spiking_mlp.npz")
    (tmp_path / "spiking_mlp.npz").mkdir()
    out = run_cli(["check", str(tmp_path / MLP.name)], limit=10)
    assert out.kind == "error", f"{out.kind}: {out.detail}"
