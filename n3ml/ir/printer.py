"""Printer of the .n3ml text format: the canonical form of a graph.

print -> parse -> print is the identity. Tensors with more than `inline_max`
elements go to a sidecar .npz under the key ``node.field``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from .graph import SCHEMA_VERSION, Graph, infer_types
from .syntax import DTYPES, TIME_FIELDS
from .types import FixedPoint

_DTYPE_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def dumps(graph: Graph, *, sidecar: str | None = None, inline_max: int = 16) -> tuple[str, dict[str, np.ndarray]]:
    """Return (text, sidecar arrays). Without `sidecar`, every tensor is inlined."""
    arrays: dict[str, np.ndarray] = {}
    try:
        types = infer_types(graph)
    except Exception:  # an unverifiable graph still prints, without type comments
        types = {}
    body = []
    ins = graph.input_map()
    for name, prim in graph.nodes.items():
        parts = list(ins[name])
        for f in dataclasses.fields(prim):
            v = getattr(prim, f.name)
            if _is_default(f, v):
                continue
            parts.append(f"{f.name}={_fmt(v, f.name, name, arrays, sidecar, inline_max)}")
        line = f"  {name} = {prim.op}({', '.join(parts)})"
        if name in types:
            line += f"  # -> {types[name]}"
        body.append(line)
    attrs = [f"dt={_float(graph.dt)}ms", f"scheme={graph.scheme}"]
    if arrays:
        attrs.append(f"weights={json.dumps(sidecar)}")
    head = f"n3ml {SCHEMA_VERSION}\ngraph {graph.name}({', '.join(attrs)}) {{\n"
    return head + "\n".join(body) + ("\n" if body else "") + "}\n", arrays


def _is_default(f: dataclasses.Field, v) -> bool:
    if f.default is dataclasses.MISSING:
        return False
    d = f.default
    if isinstance(v, np.ndarray) or isinstance(d, np.ndarray):
        return False
    return type(v) is type(d) and v == d


def _float(x) -> str:
    return repr(float(x))


def _scalar(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return _float(x)


def _fmt(v, field: str, node: str, arrays, sidecar, inline_max) -> str:
    if v is None:
        return "none"
    if isinstance(v, FixedPoint):
        return f"{'fixed' if v.signed else 'ufixed'}<{v.bits}, {v.frac}>"
    if isinstance(v, np.ndarray):
        if sidecar is not None and v.size > inline_max:
            key = f"{node}.{field}"
            arrays[key] = v
            return "@" + key
        dt = v.dtype if v.dtype in _DTYPE_NAMES else (np.dtype(np.float64) if v.dtype.kind == "f" else np.dtype(np.int64))
        v = v.astype(dt)
        dims = ", ".join(str(d) for d in v.shape)
        vals = ", ".join(_scalar(x) for x in v.reshape(-1).tolist())
        return f"tensor<{_DTYPE_NAMES[dt]}>({dims})[{vals}]"
    if isinstance(v, tuple):
        inner = [_fmt(x, field, node, arrays, sidecar, inline_max) for x in v]
        return "(" + inner[0] + ",)" if len(inner) == 1 else "(" + ", ".join(inner) + ")"
    if isinstance(v, str):
        if v.replace("-", "_").isidentifier() and v not in ("true", "false", "none", "tensor"):
            return v
        return json.dumps(v)
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        s = _scalar(v)
        return s + "ms" if field in TIME_FIELDS and not isinstance(v, bool) else s
    raise TypeError(f"node `{node}`: cannot print field `{field}` of type {type(v).__name__}")
