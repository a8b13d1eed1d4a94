"""Parser of the .n3ml text format (grammar in n3ml.lark) and file I/O.

Errors are `ParseError`s whose message is ``file:line:col: what`` followed by the
offending line and a caret.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from .graph import SCHEMA_VERSION, Graph
from .prims import REGISTRY, SCHEMES
from .syntax import DTYPES, TIME_FIELDS, UNITS  # noqa: F401 (shared with the printer; re-exported)
from .types import FixedPoint, VerifyError

GRAPH_ATTRS = ("dt", "scheme", "weights")

_GRAMMAR = Path(__file__).with_name("n3ml.lark").read_text()
_PARSER = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class ParseError(ValueError):
    """A located error in a .n3ml file."""

    def __init__(self, path: str, text: str, line: int, col: int, message: str):
        self.path, self.line, self.col, self.detail = path, line, col, message
        src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        caret = " " * (max(col, 1) - 1) + "^"
        super().__init__(f"{path}:{line}:{col}: {message}\n    {src}\n    {caret}")


@dataclass
class Source:
    """Where a graph came from: the text file and its weights sidecar (if any)."""

    path: str
    sidecar: str | None
    lines: dict[str, tuple[int, int]]  # node name -> (line, col)


class _Values(Transformer):
    """Turns value subtrees into Python values (sidecar refs stay symbolic)."""

    def number(self, items):
        tok, unit = items
        s = str(tok)
        val: Any = int(s) if s.lstrip("+-").isdigit() else float(s)
        if unit is not None:
            return _Quantity(float(val) * UNITS[str(unit)], str(unit), tok)
        return val

    def string(self, items):
        import json

        return json.loads(items[0])

    def true(self, _):
        return True

    def false(self, _):
        return False

    def none(self, _):
        return None

    def word(self, items):
        return _Word(str(items[0]))

    def empty_tuple(self, _):
        return ()

    def tuple(self, items):
        return tuple(items)

    @v_args(meta=True)
    def fixed(self, meta, items):
        kind, bits, frac = items
        try:
            return FixedPoint(bits=int(bits), frac=int(frac), signed=str(kind) == "fixed")
        except VerifyError as e:
            raise _Located(meta.line, meta.column, e.detail) from None

    def sidecar(self, items):
        return _Ref(str(items[0]), items[0])

    @v_args(meta=True)
    def tensor(self, meta, items):
        dtype = DTYPES[str(items[0])]
        rest = items[1:]
        dims = [int(t) for t in rest if t is not None and t.type == "INT"]
        vals = [t for t in rest if t is not None and t.type == "SIGNED_NUMBER"]
        n = int(np.prod(dims)) if dims else 1
        if len(vals) != n:
            raise _Located(meta.line, meta.column,
                           f"tensor of shape {tuple(dims)} needs {n} values, found {len(vals)}")
        conv = float if np.dtype(dtype).kind == "f" else int
        try:
            data = [conv(str(v)) for v in vals]
        except ValueError:
            raise _Located(meta.line, meta.column, f"tensor<{items[0]}> holds integers only") from None
        return np.array(data, dtype=dtype).reshape(dims)


@dataclass
class _Quantity:
    value: float
    unit: str
    tok: Token


@dataclass
class _Word:
    text: str


@dataclass
class _Ref:
    key: str
    tok: Token


class _Located(Exception):
    def __init__(self, line, col, message):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def parse(text: str, path: str = "<string>", *, base_dir: str | os.PathLike | None = None,
          with_source: bool = False):
    """Parse .n3ml text into a verified Graph.

    Args:
        text: the file's contents.
        path: name used in error messages; also locates the weights sidecar.
        base_dir: directory of the sidecar (default: the directory of `path`).
    Raises:
        ParseError located at the offending line and column.
    """
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as e:
        raise ParseError(path, text, e.line, e.column, _lark_message(e)) from None
    try:
        tree = _Values().transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, _Located):
            raise ParseError(path, text, e.orig_exc.line, e.orig_exc.col, e.orig_exc.message) from None
        raise
    header, gtree = tree.children
    version_tok = header.children[0]
    version = int(version_tok)
    if version != SCHEMA_VERSION:
        hint = ("it was written by a newer n3ml; upgrade n3ml to read it" if version > SCHEMA_VERSION
                else "no migration exists for it")
        raise ParseError(path, text, version_tok.line, version_tok.column,
                         f"unknown schema version {version}; this n3ml reads version {SCHEMA_VERSION} "
                         f"({hint}); the file is not reinterpreted")
    base = Path(base_dir) if base_dir is not None else Path(path).parent
    try:
        graph, source = _build(gtree, path, base)
    except _Located as e:
        raise ParseError(path, text, e.line, e.col, e.message) from None
    try:
        graph.verify()
    except VerifyError as e:
        line, col = source.lines.get(e.node or "", (1, 1))
        raise ParseError(path, text, line, col, str(e)) from None
    return (graph, source) if with_source else graph


def _lark_message(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {e.char!r}"
    if isinstance(e, UnexpectedEOF):
        return "unexpected end of file (is a `}` or `)` missing?)"
    if isinstance(e, UnexpectedToken):
        exp = sorted(x for x in e.expected if not x.startswith("__"))
        shown = ", ".join(exp[:8]) + (", ..." if len(exp) > 8 else "")
        return f"unexpected {e.token!r}; expected one of: {shown}"
    return str(e)


def _build(gtree: Tree, path: str, base: Path) -> tuple[Graph, Source]:
    name_tok, *rest = gtree.children
    nodes = [c for c in rest if isinstance(c, Tree) and c.data == "node"]
    kws = [c for c in rest if isinstance(c, Tree) and c.data == "kw"]
    attrs: dict[str, Any] = {}
    for kw in kws:
        k, v = kw.children
        if str(k) not in GRAPH_ATTRS:
            raise _Located(k.line, k.column, f"unknown graph attribute `{k}`; expected one of {', '.join(GRAPH_ATTRS)}")
        if str(k) in attrs:
            raise _Located(k.line, k.column, f"graph attribute `{k}` is given twice")
        attrs[str(k)] = (v, k)
    sidecar_name = None
    arrays: dict[str, np.ndarray] | None = None
    if "weights" in attrs:
        v, k = attrs["weights"]
        if not isinstance(v, str):
            raise _Located(k.line, k.column, "`weights` must be a file name in quotes")
        sidecar_name = v
        arrays = _load_sidecar(base / v, k)
    graph = Graph(name=str(name_tok))
    if "dt" in attrs:
        graph.dt = _num(attrs["dt"][0], attrs["dt"][1], "dt", time=True)
    if "scheme" in attrs:
        v, k = attrs["scheme"]
        graph.scheme = v.text if isinstance(v, _Word) else v
        if graph.scheme not in SCHEMES:
            raise _Located(k.line, k.column, f"`scheme` must be one of {', '.join(SCHEMES)}; found {_show(v)}")
    lines: dict[str, tuple[int, int]] = {}
    for nt in nodes:
        ntok, optok, *args = nt.children
        name, op = str(ntok), str(optok)
        if op not in REGISTRY:
            raise _Located(optok.line, optok.column,
                           f"unknown primitive `{op}`; known: {', '.join(sorted(REGISTRY))}")
        cls = REGISTRY[op]
        field_names = [f.name for f in dataclasses.fields(cls)]
        inputs, kwargs = [], {}
        for a in args:
            if a is None:
                continue
            if isinstance(a, Tree) and a.data == "ref":
                if kwargs:
                    t = a.children[0]
                    raise _Located(t.line, t.column, "inputs must come before attributes")
                inputs.append(str(a.children[0]))
            else:
                k, v = a.children
                key = str(k)
                if key not in field_names:
                    raise _Located(k.line, k.column, f"{op} has no attribute `{key}`; expected one of "
                                   f"{', '.join(field_names) or '(none)'}")
                if key in kwargs:
                    raise _Located(k.line, k.column, f"attribute `{key}` is given twice")
                kwargs[key] = _value(v, k, key, arrays, sidecar_name)
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        if missing:
            raise _Located(optok.line, optok.column, f"{op} needs attribute(s) {', '.join('`%s`' % m for m in missing)}")
        try:
            prim = cls(**kwargs)
        except (TypeError, VerifyError) as e:
            raise _Located(optok.line, optok.column, str(e)) from None
        if name in graph.nodes:
            raise _Located(ntok.line, ntok.column, f"node `{name}` is defined twice")
        graph.add(name, prim, *inputs)
        lines[name] = (ntok.line, ntok.column)
    return graph, Source(path, sidecar_name, lines)


def _num(v, tok, field, *, time=False):
    if isinstance(v, _Quantity):
        if not time:
            raise _Located(v.tok.line, v.tok.column, f"`{field}` takes no unit (only time constants do)")
        return v.value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Located(tok.line, tok.column, f"`{field}` must be a number, found {_show(v)}")
    return v


def _show(v) -> str:
    if isinstance(v, _Word):
        return v.text
    if isinstance(v, _Ref):
        return "@" + v.key
    return repr(v)


def _value(v, tok: Token, field: str, arrays, sidecar_name):
    if isinstance(v, _Quantity):
        return _num(v, tok, field, time=field in TIME_FIELDS)
    if isinstance(v, _Word):
        return v.text
    if isinstance(v, _Ref):
        if arrays is None:
            raise _Located(v.tok.line, v.tok.column,
                           f"`@{v.key}` refers to a weights file, but the graph names none (add weights=\"FILE.npz\")")
        if v.key not in arrays:
            raise _Located(v.tok.line, v.tok.column,
                           f"`@{v.key}` is not in weights file {sidecar_name!r}")
        return arrays[v.key]
    if isinstance(v, tuple):
        return tuple(_value(x, tok, field, arrays, sidecar_name) for x in v)
    return v


def _load_sidecar(p: Path, tok: Token) -> dict[str, np.ndarray]:
    if not p.exists():
        raise _Located(tok.line, tok.column, f"weights file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise _Located(tok.line, tok.column, f"cannot read weights file {str(p)!r}: {e}") from None


# ------------------------------------------------------------------------ file I/O


def load(path: str | os.PathLike, *, with_source: bool = False):
    """Read and verify a .n3ml file (and its sidecar)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerifyError(f"{p}: no such file") from None
    except UnicodeDecodeError as e:
        raise ParseError(str(p), "", 1, 1, f"not a UTF-8 text file ({e.reason})") from None
    return parse(text, str(p), with_source=with_source)


def save(graph: Graph, path: str | os.PathLike, *, inline_max: int = 16) -> Path:
    """Write `graph` to PATH.n3ml plus PATH.npz for tensors with more than `inline_max` elements.

    Both files are written to temporary names first and renamed into place.
    """
    from .printer import dumps

    p = Path(path)
    sidecar = p.with_suffix(".npz").name
    text, arrays = dumps(graph, sidecar=sidecar, inline_max=inline_max)
    tmp_text = p.with_name(p.name + ".tmp")
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        tmp_npz = p.with_name(sidecar + ".tmp")
        tmp_npz.write_bytes(buf.getvalue())
        os.replace(tmp_npz, p.with_name(sidecar))
    tmp_text.write_text(text, encoding="utf-8")
    os.replace(tmp_text, p)
    return p
