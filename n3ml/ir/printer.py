"""Printer of the .n3ml text format: the canonical form of a graph.

print -> parse -> print is the identity. Tensors with more than `inline_max`
elements go to a sidecar .npz under the key ``node.field``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Mapping

import numpy as np

from .arrays import DTYPE_NAMES, to_text_dtype
from .graph import SCHEMA_VERSION, Graph, infer_types
from .syntax import TIME_FIELDS
from .types import FixedPoint, VerifyError

# a string printed bare must lex as the grammar's WORD and not as a keyword (FIXED outranks WORD)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*")
_RESERVED = frozenset({"true", "false", "none", "tensor", "fixed", "ufixed"})

Refs = Mapping[tuple[str, str], tuple[str, np.ndarray]]


def dumps(graph: Graph, *, sidecar: str | None = None, inline_max: int = 16,
          refs: Refs | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Return (text, sidecar arrays). Without `sidecar`, every tensor is inlined.

    Args:
        sidecar: the weights file name written into the text (`weights="..."`).
        inline_max: tensors with more elements go to the sidecar under the key ``node.field``.
        refs: print the text back as it was read (`n3ml fmt`): an array that is still the one read
            from the sidecar under some key is printed as that `@key`, every other array inline,
            and `weights=` is kept whenever `sidecar` is given; nothing is returned to be written.
    Raises:
        VerifyError if a value cannot be written so that it reads back the same (e.g. a NaN).
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        types = infer_types(graph)
    except Exception:  # an unverifiable graph still prints, without type comments
        types = {}
    ctx = _Ctx(arrays, sidecar, inline_max, refs)
    body = []
    ins = graph.input_map()
    for name, prim in graph.nodes.items():
        parts = list(ins[name])
        for f in dataclasses.fields(prim):
            v = getattr(prim, f.name)
            if _is_default(f, v):
                continue
            parts.append(f"{f.name}={_fmt(v, f.name, name, ctx)}")
        line = f"  {name} = {prim.op}({', '.join(parts)})"
        if name in types:
            line += f"  # -> {types[name]}"
        body.append(line)
    attrs = [f"dt={_float(graph.dt, 'dt', None)}ms", f"scheme={graph.scheme}"]
    if sidecar is not None and (arrays or refs is not None):
        attrs.append(f"weights={json.dumps(sidecar)}")
    head = f"n3ml {SCHEMA_VERSION}\ngraph {graph.name}({', '.join(attrs)}) {{\n"
    return head + "\n".join(body) + ("\n" if body else "") + "}\n", arrays


@dataclasses.dataclass(frozen=True)
class _Ctx:
    arrays: dict[str, np.ndarray]
    sidecar: str | None
    inline_max: int
    refs: Refs | None


def _is_default(f: dataclasses.Field, v) -> bool:
    """Whether `v` equals the field's default so exactly that leaving it out reads back the same value.

    Numbers compare by value within their kind (an np.float64 1.0 is the default 1.0, an int 1 is
    not, -0.0 is not 0.0); anything else by type and value.
    """
    if f.default is dataclasses.MISSING:
        return False
    d = f.default
    if isinstance(v, np.ndarray) or isinstance(d, np.ndarray):
        return False
    if isinstance(d, bool) or isinstance(v, (bool, np.bool_)):
        return type(v) is type(d) and v == d
    if isinstance(d, float):
        return (isinstance(v, (float, np.floating)) and float(v) == d
                and math.copysign(1.0, float(v)) == math.copysign(1.0, d))
    if isinstance(d, int):
        return isinstance(v, (int, np.integer)) and int(v) == d
    return type(v) is type(d) and v == d


def _float(x, field: str, node: str | None) -> str:
    x = float(x)
    if not math.isfinite(x):  # `inf`/`nan` do not parse back: refuse instead of printing them
        raise VerifyError(f"`{field}` must be finite to be written, found {x!r}", node=node)
    return repr(x)


def _scalar(x, field: str, node: str | None) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return _float(x, field, node)


def _fmt(v, field: str, node: str, ctx: _Ctx, path: str | None = None) -> str:
    path = field if path is None else path
    if v is None:
        return "none"
    if isinstance(v, FixedPoint):
        return f"{'fixed' if v.signed else 'ufixed'}<{v.bits}, {v.frac}>"
    if isinstance(v, np.ndarray):
        if ctx.refs is not None:
            ref = ctx.refs.get((node, path))
            if ref is not None and ref[1] is v:
                return "@" + ref[0]
        elif ctx.sidecar is not None and v.size > ctx.inline_max:
            key = f"{node}.{path}".replace("[", ".").replace("]", "")  # the grammar's KEY has no brackets
            ctx.arrays[key] = v
            return "@" + key
        try:
            v = to_text_dtype(v, f"{node}.{path}")
        except VerifyError as e:
            raise VerifyError(e.detail, node=node) from None
        dims = ", ".join(str(d) for d in v.shape)
        vals = ", ".join(_scalar(x, path, node) for x in v.reshape(-1).tolist())
        return f"tensor<{DTYPE_NAMES[v.dtype]}>({dims})[{vals}]"
    if isinstance(v, tuple):
        inner = [_fmt(x, field, node, ctx, f"{path}[{i}]") for i, x in enumerate(v)]
        return "(" + inner[0] + ",)" if len(inner) == 1 else "(" + ", ".join(inner) + ")"
    if isinstance(v, str):
        if _WORD.fullmatch(v) and v not in _RESERVED:
            return v
        return json.dumps(v)
    if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
        if field in TIME_FIELDS and path == field and not isinstance(v, (bool, np.bool_)):
            return _float(v, path, node) + "ms"  # a time reads back as a float in ms: print it as one
        return _scalar(v, path, node)
    raise VerifyError(f"cannot print field `{path}` of type {type(v).__name__}", node=node)
