"""Hostile .pt2, .pt and TorchScript files: refused before torch reads them, naming file and member; no code runs.

Each .pt2 case is the bundled digits SNN with one member replaced or added. The controls at the end show
that the payloads are real: torch's own loaders run them.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from n3ml.cli import main
from n3ml.errors import N3mlError
from n3ml.frontends.torch import safe_load

from .conftest import DIGITS_PT2, REPO, edit_json, evil_pickle, evil_torch_save, rewrite_zip

ROOT = "digits_snn/"


def _replace(member: str, body: bytes):
    return lambda name, old: body if name == ROOT + member else old


def _config(folder: str, fqn: str, **changes):
    cfg = "model_weights_config.json" if folder == "weights" else "model_constants_config.json"
    return edit_json(f"data/{folder}/{cfg}", lambda doc: doc["config"][fqn].update(changes))


def _chain(*edits):
    def edit(name, body):
        for e in edits:
            body = e(name, body)
        return body
    return edit


def _model_json(fn):
    return edit_json("models/model.json", fn)


def _expr_payload(marker: Path):
    """Prefix the first symbolic size with a call that sympify evals."""
    def fn(doc):
        stack = [doc]
        while stack:
            o = stack.pop()
            if isinstance(o, dict):
                if isinstance(o.get("expr_str"), str):
                    o["expr_str"] = f"__import__('builtins').exec(\"open({str(marker)!r}, 'w')\") or {o['expr_str']}"
                    return
                stack.extend(o.values())
            elif isinstance(o, list):
                stack.extend(o)
    return fn


def _in_spec(spec: dict):
    def fn(doc):
        doc["graph_module"]["module_call_graph"][0]["signature"]["in_spec"] = json.dumps([1, spec])
    return fn


def _first_string_arg(doc: dict) -> None:
    """A string argument that would close the quotes ExportedProgram.module() pastes it between."""
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if isinstance(o.get("as_string"), str):
                o["as_string"] = "x' + __import__('os').system('true') + '"
                return
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    raise AssertionError("the digits program has no string argument")


def _first_target(doc: dict) -> None:
    doc["graph_module"]["graph"]["nodes"][0]["target"] = "torch.serialization.os.system"


# case -> (how to build it from the digits .pt2 given a marker path, the member the error must name)
PT2_CASES = {
    "sample_inputs": (lambda m: (_replace("data/sample_inputs/model.pt", evil_torch_save(m)), None),
                      "data/sample_inputs/model.pt"),
    "pickled_weight": (lambda m: (_chain(_config("weights", "fc1.weight", use_pickle=True),
                                         _replace("data/weights/weight_0", evil_torch_save(m))), None),
                       "data/weights/weight_0"),
    "pickled_constant": (lambda m: (_chain(_config("constants", "lif1.lifted_tensor_0", use_pickle=True),
                                           _replace("data/constants/tensor_0", evil_torch_save(m))), None),
                         "data/constants/tensor_0"),
    "opaque_constant": (lambda m: (_config("constants", "lif1.lifted_tensor_0", path_name="opaque_obj_0",
                                           use_pickle=True),
                                   {ROOT + "data/constants/opaque_obj_0": evil_pickle(m)}),
                        "model_constants_config.json"),
    "script_object_constant": (lambda m: (_config("constants", "lif1.lifted_tensor_0", path_name="custom_obj_0",
                                                  use_pickle=True),
                                          {ROOT + "data/constants/custom_obj_0": evil_torch_save(m)}),
                               "model_constants_config.json"),
    "legacy_weights": (lambda m: (None, {ROOT + "data/weights/model.pt": evil_torch_save(m)}),
                       "data/weights/model.pt"),
    "legacy_constants": (lambda m: (None, {ROOT + "data/constants/model.pt": evil_torch_save(m)}),
                         "data/constants/model.pt"),
    "aotinductor": (lambda m: (None, {ROOT + "data/aotinductor/model/model.so": b"\x7fELF"}),
                    "data/aotinductor/model/model.so"),
    "unknown_member": (lambda m: (None, {ROOT + "data/other/state.pkl": evil_pickle(m)}), "data/other/state.pkl"),
    "sympify_expr": (lambda m: (_model_json(_expr_payload(m)), None), "models/model.json"),
    "guards_code": (lambda m: (_model_json(lambda d: d.__setitem__("guards_code", [
        "L['x'].size()[0] >= 2 or __import__('os').system('true')"])), None), "models/model.json"),
    "treespec_defaultdict": (lambda m: (_model_json(_in_spec({"type": "collections.defaultdict", "context": json.dumps(
        {"default_factory_module": "antigravity", "default_factory_name": "x", "dict_context": []}),
        "children_spec": []})), None), "models/model.json"),
    "treespec_enum": (lambda m: (_model_json(_in_spec({"type": "builtins.dict", "context": json.dumps(
        [{"__enum__": True, "fqn": "antigravity:Fly", "name": "x"}]), "children_spec": []})), None),
        "models/model.json"),
    "call_target": (lambda m: (_model_json(_first_target), None), "models/model.json"),
    "range_constraint_key": (lambda m: (_model_json(lambda d: d["range_constraints"].__setitem__(
        "u99999999999", {"min_val": 0, "max_val": None})), None), "models/model.json"),
    "empty_weight_claims_a_shape": (lambda m: (_replace("data/weights/weight_0", b""), None),
                                    "model_weights_config.json"),
    "string_argument": (lambda m: (_model_json(_first_string_arg), None), "models/model.json"),
    "parameter_name": (lambda m: (_model_json(lambda d: d["graph_module"]["signature"]["input_specs"][0]["parameter"]
                                              .__setitem__("parameter_name", 'fc1")+os.system("true')), None),
                       "models/model.json"),
}


def _build(case: str, tmp_path: Path, marker: Path) -> tuple[Path, str]:
    make, member = PT2_CASES[case]
    edit, add = make(marker)
    path = rewrite_zip(DIGITS_PT2, tmp_path / f"{case}.pt2", edit or (lambda n, b: b), add)
    return path, member


def _refused_by_every_command(path: Path, member: str, tmp_path: Path, marker: Path, capsys) -> None:
    for argv in (["check", str(path)], ["simulate", str(path), "--steps", "2"],
                 ["convert", str(path), "--target", "ir", "-o", str(tmp_path / "out")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert str(path) in err and member in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not marker.exists(), f"{argv[0]} ran the payload"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", sorted(PT2_CASES))
def test_hostile_pt2_is_refused_without_running_it(case, tmp_path, marker, capsys):
    path, member = _build(case, tmp_path, marker)
    _refused_by_every_command(path, member, tmp_path, marker, capsys)


def test_the_bundled_pt2_passes_the_checks():
    safe_load.check_pt2(str(DIGITS_PT2), DIGITS_PT2.read_bytes())


def _flip_bit_in(src: Path, dst: Path, member: str) -> Path:
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = z.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + info.compress_size // 2] ^= 0x10
    dst.write_bytes(bytes(data))
    return dst


def test_flipped_bit_in_a_pt2_weight_is_a_located_error(tmp_path, capsys):
    bad = _flip_bit_in(DIGITS_PT2, tmp_path / "flipped.pt2", ROOT + "data/weights/weight_0")
    assert main(["convert", str(bad), "--target", "ir", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "digits_snn/data/weights/weight_0" in err and "CRC" in err, err
    assert not (tmp_path / "out").exists()


def test_flipped_bit_in_a_state_dict_is_a_located_error(tmp_path, capsys):
    src = tmp_path / "sd.pt"
    torch.save({"fc1.weight": torch.randn(16, 8)}, src)
    with zipfile.ZipFile(src) as z:
        member = next(n for n in z.namelist() if "/data/" in n and not n.endswith(".pkl"))
    bad = _flip_bit_in(src, tmp_path / "flipped.pt", member)
    meta = json.loads((REPO / "examples" / "digits" / "digits_snn.json").read_text())
    assert main(["convert", str(bad), "--model", meta["model"], "--input-shape", "64", "--target", "ir",
                 "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert member in err and "CRC" in err, err


def test_hostile_state_dict_is_refused(tmp_path, marker, capsys):
    path = tmp_path / "evil.pt"
    path.write_bytes(evil_torch_save(marker))
    meta = json.loads((REPO / "examples" / "digits" / "digits_snn.json").read_text())
    for extra in ([], ["--model", meta["model"], "--input-shape", "64"]):
        assert main(["convert", str(path), *extra, "--target", "ir", "-o", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert str(path) in err and "--unsafe-allow-pickle" in err, err
        assert not marker.exists()


# ------------------------------------------------------------------------------------ TorchScript


class _Writes(torch.nn.Module):
    """A scripted module whose __setstate__ (run by torch.jit.load) writes the file named in `where`."""

    def __init__(self, where: str):
        super().__init__()
        self.where = where
        self.w = torch.ones(2)

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.where, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.where = state[0]
        self.w = state[1]
        self.training = state[2]
        torch.save(self.w, self.where)


def _hostile_torchscript(tmp_path: Path, marker: Path, suffix: str) -> Path:
    path = tmp_path / f"setstate{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(_Writes(str(marker))).save(str(path))
    return path


@pytest.mark.parametrize("suffix", [".ts", ".pt"])
def test_torchscript_that_runs_code_on_load_is_refused(suffix, tmp_path, marker, capsys):
    path = _hostile_torchscript(tmp_path, marker, suffix)
    for argv in (["check", str(path)], ["convert", str(path), "--input-shape", "2", "--target", "ir",
                                        "-o", str(tmp_path / "out")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert str(path) in err and "__setstate__" in err and "/code/" in err, err
        assert not marker.exists()


def test_flipped_bit_in_torchscript_is_a_located_error(tmp_path, capsys):
    src = tmp_path / "m.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3))).save(str(src))
    with zipfile.ZipFile(src) as z:
        member = next(n for n in z.namelist() if "/data/" in n and not n.endswith(".pkl"))
    bad = _flip_bit_in(src, tmp_path / "bad.ts", member)
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert member in err and "CRC" in err, err


# --------------------------------------------------------------------------------- zip structure


def test_prepended_bytes_and_duplicate_members_are_refused(tmp_path):
    data = DIGITS_PT2.read_bytes()
    with pytest.raises(N3mlError, match="not a zip archive|before its first entry"):
        safe_load.zip_members("x.pt2", b"junk" + data)
    with pytest.raises(N3mlError, match="corrupt or truncated"):
        safe_load.zip_members("x.pt2", data + b"junk")
    dup = tmp_path / "dup.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        rewrite_zip(DIGITS_PT2, dup, lambda n, b: b, {ROOT + "models/model.json": b"{}"})
    with pytest.raises(N3mlError, match="two members"):
        safe_load.zip_members(str(dup), dup.read_bytes())


def test_a_member_name_with_invalid_utf8_is_a_clear_error(tmp_path):
    path = rewrite_zip(DIGITS_PT2, tmp_path / "name.pt2", lambda n, b: b, {ROOT + "extra/x": b"x"})
    data = bytearray(path.read_bytes())
    i = data.rfind(b"extra/x")  # in the central directory; mark the name UTF-8 and break it
    data[i + 6] = 0xFF
    head = data.rfind(b"PK\x01\x02", 0, i)
    data[head + 9] |= 0x08  # flag bit 11: the name is UTF-8
    path.write_bytes(bytes(data))
    with pytest.raises(N3mlError, match="not a readable zip archive"):
        safe_load.zip_members(str(path), bytes(data))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.pt2"
    import os

    os.mkfifo(fifo)
    with pytest.raises(N3mlError, match="not a regular file"):
        safe_load.read_file(str(fifo))


# ------------------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("text", ["Symbol('s0', positive=True, integer=True)",
                                  "Mul(Integer(64), Symbol('s27', positive=True, integer=True))",
                                  "FloorDiv(Symbol('s0'), 2) + Max(1, Symbol('u3'))", "Pow(Symbol('s1'), 2)"])
def test_symbolic_sizes_torch_writes_pass(text):
    assert safe_load.check_sym_expr(text) is None


@pytest.mark.parametrize("text", ["__import__('os').system('x')", "exec(chr(105))", "Symbol.__class__",
                                  "Symbol('a b')", "10**10**10", "Pow(Integer(10), Integer(10**9))",
                                  "Symbol('s0')\nimport os", "(lambda: 1)()", "[x for x in ()]",
                                  "Symbol(*'a')", "Symbol(**{})"])
def test_symbolic_sizes_that_run_code_fail(text):
    assert safe_load.check_sym_expr(text) is not None


@pytest.mark.parametrize("text", ["L['x'].size()[0] >= 2", "Eq(L['x'].size()[1], 64)",
                                  "2 <= L['x'].size()[0] and L['x'].stride()[0] == 64"])
def test_guards_on_sizes_pass(text):
    assert safe_load.check_guard(text) is None


@pytest.mark.parametrize("text", ["L['x'].size()[0] >= 2 or __import__('os')", "L['x'].__class__",
                                  "L['a\"b'].size()[0] == 1", "True, '')\rimport os\r(1",
                                  "getattr(L, 'size')"])
def test_guards_that_run_code_fail(text):
    assert safe_load.check_guard(text) is not None


# ------------------------------------------------------------- controls: the payloads are real


def test_control_torch_export_load_runs_the_sample_inputs_payload(tmp_path, marker):
    import n3ml.nn  # noqa: F401  (registers torch.ops.n3ml, which the program uses)

    path, _ = _build("sample_inputs", tmp_path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.export.load(str(path))
        except Exception:  # the payload returns None where inputs were expected; it has run by then
            pass
    assert marker.exists()


def test_control_torch_export_load_evals_symbolic_sizes(tmp_path, marker):
    import n3ml.nn  # noqa: F401

    path, _ = _build("sympify_expr", tmp_path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.export.load(str(path))
        except Exception:
            pass
    assert marker.exists()


def test_control_torch_jit_load_runs_setstate(tmp_path, marker):
    path = _hostile_torchscript(tmp_path, marker, ".ts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(io.BytesIO(path.read_bytes()))
    assert marker.exists()


# ------------------------------------------------------------------------- no false refusals


class _Residual(torch.nn.Module):
    """Batch norm, a residual add, concatenation, pooling, dropout: strings and specs a real export writes."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 4 * 4 * 2, 10)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        z = torch.cat([self.pool(self.c2(y) + y), self.pool(y)], 1)
        return torch.sigmoid(self.fc(self.drop(torch.flatten(z, 1))))


@pytest.mark.parametrize("dynamic", [False, True])
def test_real_exports_pass_the_checks(dynamic):
    kw = {"dynamic_shapes": ({0: torch.export.Dim("B", min=2)},)} if dynamic else {}
    buf = io.BytesIO()
    torch.export.save(torch.export.export(_Residual().eval(), (torch.rand(2, 1, 8, 8),), **kw), buf)
    safe_load.check_pt2("residual.pt2", buf.getvalue())


# ------------------------------------------------------------------------------- mutations


_VALUES = [None, 0, -1, 2**63, 1e308, float("nan"), "", "x", "s0", [], {}, True, "a'b", "__import__('os')"]


def _leaves(o, path=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _mutations(tmp_path: Path, n: int):
    """Byte-level damage (caught by the zip checks) and CRC-valid edits of the JSON members (past them)."""
    import random

    rng = random.Random(1234)
    raw = DIGITS_PT2.read_bytes()
    with zipfile.ZipFile(DIGITS_PT2) as z:
        members = {name: z.read(name) for name in z.namelist()}
    for i in range(n):
        path = tmp_path / f"m{i}.pt2"
        if i % 2:
            b = bytearray(raw)
            if i % 3:
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            else:
                b = b[:rng.randrange(len(b))]
            path.write_bytes(bytes(b))
        else:
            name = rng.choice([m for m in members if m.endswith(".json")])
            doc = json.loads(members[name])
            spots = list(_leaves(doc))
            for _ in range(rng.randint(1, 3)):
                *head, last = rng.choice(spots)
                o = doc
                for k in head:
                    o = o[k]
                o[last] = rng.choice(_VALUES)
                spots = list(_leaves(doc))
            with zipfile.ZipFile(path, "w") as zo:
                for m, body in members.items():
                    zo.writestr(m, json.dumps(doc).encode() if m == name else body)
        yield path


def test_mutated_pt2_files_give_located_errors(tmp_path, capsys):
    """Every mutant is converted or refused with one line naming the file; none prints a traceback."""
    for path in _mutations(tmp_path, 24):
        rc = main(["check", str(path)])
        err = capsys.readouterr().err
        assert rc in (0, 1), (path, err)
        if rc:
            assert str(path) in err and "Traceback" not in err and "internal error" not in err, err
