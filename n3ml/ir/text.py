"""Parser of the .n3ml text format (grammar in n3ml.lark) and file I/O.

Errors are `ParseError`s whose message is ``file:line:col: what`` followed by the
offending line and a caret.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from .budget import ensure_fits
from .graph import SCHEMA_VERSION, Edge, Graph, paused_gc
from .prims import INT64_MAX, INT64_MIN, REGISTRY, SCHEMES
from .scan import Fallback, parse_fast
from .sidecar import Sidecar, SidecarError, open_regular
from .syntax import DTYPES, TIME_FIELDS, UNITS  # noqa: F401 (shared with the printer; re-exported)
from .types import FixedPoint, VerifyError

GRAPH_ATTRS = ("dt", "scheme", "weights")
PARSE_BYTES_PER_CHAR = 80

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
    lines: Mapping[str, tuple[int, int]]  # node name -> (line, col)
    # (node, field path) -> (sidecar key, the array read for it): lets `fmt` print the text back with
    # the references it was read with, without writing (or needing to write) any weights file
    refs: dict[tuple[str, str], tuple[str, np.ndarray]] = field(default_factory=dict)


class _NodeLines(Mapping):
    """node name -> (line, column) of its definition, located only when asked for (a verifier
    error): the fast path's tokens locate themselves lazily, so a graph that verifies never pays."""

    def __init__(self, toks: dict[str, Token]):
        self._toks = toks

    def __getitem__(self, name: str) -> tuple[int, int]:
        t = self._toks[name]
        return t.line, t.column

    def __iter__(self):
        return iter(self._toks)

    def __len__(self) -> int:
        return len(self._toks)


class _Values(Transformer):
    """Turns value subtrees into Python values (sidecar refs stay symbolic).

    Every literal is range-checked here, where its token (and so its line and column) is known:
    integers must fit 64 bits (or the tensor's dtype), floats must be finite.
    """

    def number(self, items):
        tok, unit = items
        val = _number(tok)
        if unit is not None:
            ms = float(val) * UNITS[str(unit)]
            if not math.isfinite(ms):
                raise _Located(tok.line, tok.column, f"{_clip(tok)}{unit} is out of the range of 64-bit floats "
                               "once converted to ms")
            return _Quantity(ms, str(unit), tok)
        return val

    def string(self, items):
        tok = items[0]
        try:
            return json.loads(str(tok))
        except json.JSONDecodeError as e:
            hint = " (write \\t, \\n, ... for control characters such as TAB)" if "control" in e.msg else ""
            raise _Located(tok.line, tok.column + e.pos, f"invalid string: {e.msg}{hint}") from None

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

    def fixed(self, items):
        kind, bits, frac = items
        b, f = _int(bits), _int(frac)
        try:
            return FixedPoint(bits=b, frac=f, signed=str(kind) == "fixed")
        except VerifyError as e:
            raise _Located(kind.line, kind.column, e.detail) from None

    def sidecar(self, items):
        return _Ref(str(items[0]), items[0])

    def tensor(self, items):
        name_tok = items[0]
        dtype = np.dtype(DTYPES[str(name_tok)])
        rest = items[1:]
        dims = [_int(t, 0, INT64_MAX) for t in rest if t is not None and t.type == "INT"]
        vals = [t for t in rest if t is not None and t.type == "SIGNED_NUMBER"]
        n = math.prod(dims)
        if len(vals) != n:
            raise _Located(name_tok.line, name_tok.column,
                           f"tensor of shape {tuple(dims)} needs {n} values, found {len(vals)}")
        if dtype.kind == "f":
            data = [_number(v) for v in vals]
            arr = np.array([float(x) for x in data], dtype=np.float64)
            if dtype != np.float64:
                with np.errstate(over="ignore"):
                    narrow = arr.astype(dtype)
                bad = np.flatnonzero(~np.isfinite(narrow))
                if bad.size:
                    v = vals[int(bad[0])]
                    raise _Located(v.line, v.column, f"{v} is out of the range of tensor<{name_tok}>")
                arr = narrow
        else:
            info = np.iinfo(dtype)
            data = []
            for v in vals:
                if not str(v).lstrip("+-").isdigit():
                    raise _Located(v.line, v.column, f"tensor<{name_tok}> holds integers only, found {_clip(v)}")
                data.append(_int(v, int(info.min), int(info.max), f"tensor<{name_tok}>"))
            arr = np.array(data, dtype=dtype)
        return arr.reshape(dims)


def _clip(tok) -> str:
    s = str(tok)
    return s if len(s) <= 40 else f"{s[:20]}...{s[-8:]} ({len(s)} characters)"


def _number(tok: Token):
    """An int (64-bit) or a finite float from a SIGNED_NUMBER token."""
    s = str(tok)
    if s.lstrip("+-").isdigit():
        return _int(tok)
    val = float(s)
    if not math.isfinite(val):
        raise _Located(tok.line, tok.column, f"number {_clip(tok)} is out of the range of 64-bit floats "
                       "(about -1.8e308..1.8e308)")
    return val


def _int(tok: Token, lo: int = INT64_MIN, hi: int = INT64_MAX, what: str = "a 64-bit integer") -> int:
    """An integer token within lo..hi. Checked by length first: Python refuses to convert integers
    of more than 4300 digits, and no bound of interest has more than 20."""
    s = str(tok)
    digits = s.lstrip("+-").lstrip("0")
    if len(digits) > 20:
        raise _Located(tok.line, tok.column, f"integer {_clip(tok)} does not fit in {what} ({lo}..{hi})")
    val = int(s)
    if not lo <= val <= hi:
        raise _Located(tok.line, tok.column, f"integer {s} does not fit in {what} ({lo}..{hi})")
    return val


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
    # a parse allocates a few objects per character and frees none of them: the cyclic garbage
    # collector would rescan the growing heap again and again (superlinear time), for nothing
    with paused_gc():
        return _parse(text, path, base_dir, with_source)


def _parse(text: str, path: str, base_dir, with_source: bool):
    try:
        tree = parse_fast(text, _Values())
    except Fallback:
        tree = _parse_lark(text, path)
    header, gtree = tree.children
    version_tok = header.children[0]
    try:
        version = _int(version_tok)
    except _Located as e:
        raise ParseError(path, text, e.line, e.col, e.message) from None
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
    except RecursionError:
        raise _too_deep(path, text) from None
    try:
        graph.verify()
    except VerifyError as e:
        line, col = source.lines.get(e.node or "", (1, 1))
        raise ParseError(path, text, line, col, str(e)) from None
    return (graph, source) if with_source else graph


def _parse_lark(text: str, path: str) -> Tree:
    """The parser of record (the fast path in scan.py hands everything it does not handle here)."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as e:
        raise ParseError(path, text, e.line, e.column, _lark_message(e)) from None
    try:
        return _Values().transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, _Located):
            raise ParseError(path, text, e.orig_exc.line, e.orig_exc.col, e.orig_exc.message) from None
        if isinstance(e.orig_exc, RecursionError):
            raise _too_deep(path, text) from None
        raise
    except RecursionError:
        raise _too_deep(path, text) from None


MAX_DEPTH = 64  # where the message about over-nested values points


def _too_deep(path: str, text: str) -> ParseError:
    """A located error for values nested beyond what the parser recurses through."""
    depth, line, col = 0, 1, 1
    in_str = in_comment = False
    at = (1, 1)
    prev = ""
    for ch in text:
        if in_comment:
            in_comment = ch != "\n"
        elif in_str:
            in_str = not (ch == '"' and prev != "\\")
        elif ch == "#":
            in_comment = True
        elif ch == '"':
            in_str = True
        elif ch == "(":
            depth += 1
            if depth == MAX_DEPTH:
                at = (line, col)
        elif ch == ")":
            depth -= 1
        prev = ch
        line, col = (line + 1, 1) if ch == "\n" else (line, col + 1)
    return ParseError(path, text, at[0], at[1], f"values are nested too deeply (more than {MAX_DEPTH} levels "
                      "of parentheses here); no field takes nested tuples")


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
    arrays: Sidecar | None = None
    if "weights" in attrs:
        v, k = attrs["weights"]
        if not isinstance(v, str):
            raise _Located(k.line, k.column, "`weights` must be a file name in quotes")
        sidecar_name = v
        arrays = _open_sidecar(base / v, v, k)
    try:
        return _build_nodes(name_tok, nodes, attrs, path, arrays, sidecar_name)
    finally:
        if arrays is not None:
            arrays.close()


def _build_nodes(name_tok, nodes, attrs, path, arrays, sidecar_name) -> tuple[Graph, Source]:
    graph = Graph(name=str(name_tok))
    if "dt" in attrs:
        graph.dt = _num(attrs["dt"][0], attrs["dt"][1], "dt", time=True)
    if "scheme" in attrs:
        v, k = attrs["scheme"]
        scheme = v.text if isinstance(v, _Word) else v
        if not isinstance(scheme, str) or scheme not in SCHEMES:
            raise _Located(k.line, k.column, f"`scheme` must be one of {', '.join(SCHEMES)}; found {_show(v)}")
        graph.scheme = scheme
    lines: dict[str, Token] = {}
    nodes_, edges_ = graph.nodes, graph.edges
    refs: dict[tuple[str, str], tuple[str, np.ndarray]] = {}
    fields_of: dict[type, tuple[dict[str, None], list[str]]] = {}  # per class: field names, required ones
    for nt in nodes:
        ntok, optok, *args = nt.children
        name, op = str(ntok), str(optok)
        if op not in REGISTRY:
            raise _Located(optok.line, optok.column,
                           f"unknown primitive `{op}`; known: {', '.join(sorted(REGISTRY))}")
        cls = REGISTRY[op]
        if cls not in fields_of:
            fs = dataclasses.fields(cls)
            fields_of[cls] = ({f.name: None for f in fs}, [f.name for f in fs if f.default is dataclasses.MISSING
                                                           and f.default_factory is dataclasses.MISSING])
        field_names, required = fields_of[cls]
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
                kwargs[key] = _value(v, k, key, arrays, sidecar_name, (name, refs))
        missing = [f for f in required if f not in kwargs]
        if missing:
            raise _Located(optok.line, optok.column, f"{op} needs attribute(s) {', '.join('`%s`' % m for m in missing)}")
        try:
            prim = cls(**kwargs)
        except (TypeError, ValueError) as e:  # a constructor meeting a value of the wrong kind
            raise _Located(optok.line, optok.column, f"{op}: {e}") from None
        if name in nodes_:
            raise _Located(ntok.line, ntok.column, f"node `{name}` is defined twice")
        # what Graph.add does, less its checks: the name is a NAME token, prim one of REGISTRY's
        nodes_[name] = prim
        for i, src in enumerate(inputs):
            edges_.append(Edge(src, name, i))
        lines[name] = ntok
    return graph, Source(path, sidecar_name, _NodeLines(lines), refs)


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
    if isinstance(v, np.ndarray):
        return f"a tensor of shape {v.shape}"
    return repr(v)


def _value(v, tok: Token, field: str, arrays: Sidecar | None, sidecar_name, where):
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
        try:
            arr = arrays[v.key]
        except SidecarError as e:
            raise _Located(v.tok.line, v.tok.column, f"`@{v.key}` in weights file {sidecar_name!r}: {e}") from None
        node, refs = where
        refs[(node, field)] = (v.key, arr)
        return arr
    if isinstance(v, tuple):
        return tuple(_value(x, tok, f"{field}[{i}]", arrays, sidecar_name, where) for i, x in enumerate(v))
    return v


def _open_sidecar(p: Path, name: str, tok: Token) -> Sidecar:
    try:
        return Sidecar(p)
    except SidecarError as e:
        raise _Located(tok.line, tok.column, f"cannot read weights file {name!r}: it {e}") from None


# ------------------------------------------------------------------------ file I/O


def load(path: str | os.PathLike, *, with_source: bool = False):
    """Read and verify a .n3ml file (and its sidecar)."""
    p = Path(path)
    try:
        with open_regular(p) as f:
            # a parse holds about 75 bytes of objects per byte of text (measured on 200k-node files)
            ensure_fits(os.fstat(f.fileno()).st_size * PARSE_BYTES_PER_CHAR, f"parsing {p}")
            data = f.read()
    except SidecarError as e:
        raise VerifyError(f"{p}: {'no such file' if str(e) == 'does not exist' else e}") from None
    except OSError as e:
        raise VerifyError(f"{p}: cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ParseError(str(p), "", line, col, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from None
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
