"""Translate an ONNX model into an n3ml IR graph.

Each supported ONNX op has one converter in the `CONVERTERS` table. Values are
either *activations* (they become IR nodes) or *constants* (initializers,
`Constant` nodes and small shape computations, folded with numpy). Every problem
in a model -- unknown op types and unsupported attribute values alike -- is
collected and reported in one error that names each node and its op type.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import N3mlError, UnsupportedError
from ...ir import Graph, VerifyError
from ...ir import prims as P
from ...ir.types import PortType

log = logging.getLogger(__name__)


class _Unsupported(Exception):
    """Raised by a converter: this node cannot be expressed (the message says why)."""


@dataclass
class _Ctx:
    graph: Graph
    opset: int
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)  # ONNX value -> IR node
    types: dict[str, PortType] = field(default_factory=dict)  # IR node -> port type
    users: dict[str, int] = field(default_factory=dict)  # ONNX value -> number of readers
    graph_outputs: set[str] = field(default_factory=set)
    used_names: set[str] = field(default_factory=set)

    # ---------------------------------------------------------------- helpers
    def fresh(self, base: str) -> str:
        cand = self.graph.fresh_name(_sanitize(base), self.used_names)
        self.used_names.add(cand)
        return cand

    def add(self, node, prim: P.Primitive, *srcs: str, out: str | None = None, suffix: str = "") -> str:
        """Add an IR node computing `prim` over IR nodes `srcs`; bind ONNX output `out` to it."""
        name = self.fresh(_node_base(node) + suffix)
        try:
            prim.verify(name)
            t = prim.infer(name, [self.types[s] for s in srcs])
        except VerifyError as e:
            raise _Unsupported(e.detail) from None
        self.graph.add(name, prim, *srcs)
        self.types[name] = t
        if out is not None:
            self.alias[out] = name
        return name

    def act(self, node, value: str) -> str:
        """The IR node of activation `value` (an error if it is a constant)."""
        if value in self.alias:
            return self.alias[value]
        if value in self.consts:
            raise _Unsupported(f"input `{value}` is a constant where an activation was expected")
        raise _Unsupported(f"input `{value}` is not produced by any node")

    def const(self, node, value: str, what: str) -> np.ndarray:
        if value in self.consts:
            return self.consts[value]
        raise _Unsupported(f"{what} (`{value}`) must be a constant (initializer), found a computed value")

    def shape(self, ir: str) -> tuple[int, ...]:
        return self.types[ir].shape


def _sanitize(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]+", "_", s.strip("/")).strip("_")
    if not s or not re.match(r"[A-Za-z_]", s[0]):
        s = "n_" + s
    return s


def _node_base(node) -> str:
    name = node.name or (node.output[0] if node.output else node.op_type)
    if name.startswith("/"):  # torch's scoped names "/features/features.0/Conv": keep module + op
        name = "_".join(name.strip("/").split("/")[-2:])
    return name


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ints(v: Any) -> list[int]:
    return [int(x) for x in v]


def _inputs(node) -> list[str]:
    """Node inputs with empty (omitted optional) names kept as ''."""
    return list(node.input)


def _unused_outputs(ctx: _Ctx, node, first: int = 1) -> None:
    for o in node.output[first:]:
        if o and (ctx.users.get(o, 0) or o in ctx.graph_outputs):
            raise _Unsupported(f"output `{o}` (training-mode or index output) is used; only the first output "
                               "can be converted")


def _sym_pads(node, pads: list[int], n: int) -> tuple[int, ...]:
    if not pads:
        return (0,) * n
    begin, end = pads[:n], pads[n:]
    if begin != end:
        raise _Unsupported(f"asymmetric padding {pads} (begin {begin} != end {end}); the IR pads symmetrically")
    return tuple(begin)


def _auto_pads(node, a: dict, in_sp: tuple[int, ...], k: list[int], s: list[int], d: list[int]) -> list[int]:
    mode = a.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    n = len(k)
    if mode in ("NOTSET", ""):
        return _ints(a.get("pads", [0] * 2 * n))
    if mode == "VALID":
        return [0] * 2 * n
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for i in range(n):
            out = -(-in_sp[i] // s[i])
            total = max(0, (out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - in_sp[i])
            if total % 2:
                raise _Unsupported(f"auto_pad={mode} needs asymmetric padding on axis {i}")
            pads.append(total // 2)
        return pads + pads
    raise _Unsupported(f"unknown auto_pad {mode!r}")


# ------------------------------------------------------------------ converters


def _real(a: np.ndarray) -> np.ndarray:
    """A weight as the IR stores it, in the source's precision: float32 and float64 stay as they are
    (a float32 model's sidecar stays float32, and every engine computes exactly on the stored values),
    float16 widens to float32 exactly, integers become float64."""
    a = np.asarray(a)
    if a.dtype in (np.float32, np.float64):
        return a
    if a.dtype.kind == "f" and a.dtype.itemsize < 4:
        return a.astype(np.float32)
    return a.astype(np.float64)


def _sum_exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b, in float64 unless the sum is exact in the operands' common dtype."""
    s = a + b
    if s.dtype == np.float64 or np.array_equal(s.astype(np.float64), a.astype(np.float64) + b.astype(np.float64)):
        return s
    return a.astype(np.float64) + b.astype(np.float64)



def _conv(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    a = _attrs(node)
    x = ctx.act(node, ins[0])
    w = _real(ctx.const(node, ins[1], "the weight"))
    b = _real(ctx.const(node, ins[2], "the bias")) if len(ins) > 2 and ins[2] else None
    n = w.ndim - 2
    if n not in (1, 2):
        raise _Unsupported(f"{n}-D convolution; only 1-D and 2-D are supported")
    k = _ints(a.get("kernel_shape", w.shape[2:]))
    s = _ints(a.get("strides", [1] * n))
    d = _ints(a.get("dilations", [1] * n))
    in_sp = ctx.shape(x)[1:]
    pads = _sym_pads(node, _auto_pads(node, a, in_sp, k, s, d), n)
    g = int(a.get("group", 1))
    if n == 2:
        prim = P.Conv2d(weight=w, bias=b, stride=tuple(s), padding=tuple(pads), dilation=tuple(d), groups=g)
    else:
        prim = P.Conv1d(weight=w, bias=b, stride=s[0], padding=pads[0], dilation=d[0], groups=g)
    ctx.add(node, prim, x, out=node.output[0])


def _gemm(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    a = _attrs(node)
    if int(a.get("transA", 0)):
        raise _Unsupported("transA=1 (the activation must not be transposed)")
    x = ctx.act(node, ins[0])
    bmat = _real(ctx.const(node, ins[1], "B (the weight)"))
    if bmat.ndim != 2:
        raise _Unsupported(f"weight B must be 2-D, found shape {bmat.shape}")
    w = bmat if int(a.get("transB", 0)) else bmat.T
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if alpha != 1.0:  # a product the source's float32 may not hold exactly: computed in float64
        w = alpha * w.astype(np.float64)
    bias = None
    if len(ins) > 2 and ins[2]:
        c = _real(ctx.const(node, ins[2], "C (the bias)"))
        c = c if beta == 1.0 else beta * c.astype(np.float64)
        bias = _row_bias(c, w.shape[0])
    ctx.add(node, P.Dense(weight=np.ascontiguousarray(w), bias=bias), _flat1(ctx, node, x), out=node.output[0])


def _row_bias(c: np.ndarray, n: int) -> np.ndarray:
    c = _real(c)
    if c.size == 1:
        return np.full(n, c.reshape(-1)[0], dtype=c.dtype)
    c2 = c.reshape(-1)
    if c.ndim >= 1 and c.shape[-1] == n and c2.size == n:
        return c2.copy()
    raise _Unsupported(f"bias of shape {c.shape} does not broadcast per output unit ({n},)")


def _flat1(ctx: _Ctx, node, x: str) -> str:
    shp = ctx.shape(x)
    if len(shp) == 1:
        return x
    raise _Unsupported(f"a matrix product needs a flat (N, features) input, found per-sample shape {shp}")


def _matmul(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    if ins[0] in ctx.consts:
        raise _Unsupported("MatMul with a constant left operand; expected activation @ weight")
    x = ctx.act(node, ins[0])
    if ins[1] not in ctx.consts:
        raise _Unsupported("MatMul of two activations; only activation @ constant weight is supported")
    w = _real(ctx.consts[ins[1]])
    if w.ndim != 2:
        raise _Unsupported(f"MatMul weight must be 2-D, found shape {w.shape}")
    ctx.add(node, P.Dense(weight=np.ascontiguousarray(w.T)), _flat1(ctx, node, x), out=node.output[0])


def _add(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    consts = [i for i in ins if i in ctx.consts]
    acts = [i for i in ins if i not in ctx.consts]
    if not consts:
        srcs = [ctx.act(node, i) for i in acts]
        if len({ctx.shape(s) for s in srcs}) > 1:
            raise _Unsupported(f"Add of differently shaped inputs {[ctx.shape(s) for s in srcs]} (broadcasting)")
        ctx.add(node, P.Add(), *srcs, out=node.output[0])
        return
    if len(acts) != 1:
        raise _Unsupported("Add of constants only")
    x = ctx.act(node, acts[0])
    prim = ctx.graph.nodes[x]
    c = ctx.consts[consts[0]]
    if not isinstance(prim, (P.Dense, P.Conv1d, P.Conv2d)) or ctx.users.get(acts[0], 0) != 1 \
            or acts[0] in ctx.graph_outputs:
        raise _Unsupported(f"Add of a constant to the output of {prim.op}; a constant is supported only as the "
                           "bias of the MatMul/Gemm/Conv right before it")
    nout = prim.weight.shape[0]
    per = _channel_const(c, ctx.shape(x), nout)
    bias = per if prim.bias is None else _sum_exact(prim.bias, per)
    ctx.graph.replace(x, bias=bias)
    ctx.alias[node.output[0]] = x


def _channel_const(c: np.ndarray, shape: tuple[int, ...], nout: int) -> np.ndarray:
    c = _real(c)
    while c.ndim > len(shape):
        if c.shape[0] != 1:
            raise _Unsupported(f"constant of shape {c.shape} varies along the batch axis")
        c = c[0]
    full = np.broadcast_to(c, shape)
    per = full.reshape(nout, -1)
    if not np.all(per == per[:, :1]):
        raise _Unsupported(f"constant of shape {c.shape} is not one value per output channel")
    return per[:, 0].copy()


def _mul_div(ctx: _Ctx, node) -> None:
    """Multiplication or division by a constant (e.g. input scaling x / 255) -> Scale."""
    ins = _inputs(node)
    if all(i in ctx.consts for i in ins):
        a, b = (ctx.consts[i] for i in ins)
        ctx.consts[node.output[0]] = a * b if node.op_type == "Mul" else a / b
        return
    consts = [i for i in ins if i in ctx.consts]
    if len(consts) != 1 or (node.op_type == "Div" and ins[1] not in ctx.consts):
        raise _Unsupported(f"{node.op_type} of two activations; only scaling by a constant is supported")
    x = ctx.act(node, next(i for i in ins if i not in ctx.consts))
    c = np.asarray(ctx.consts[consts[0]], dtype=np.float64)
    if node.op_type == "Div":
        if np.any(c == 0):
            raise _Unsupported("division by a constant that contains zeros")
        c = 1.0 / c
    shp = ctx.shape(x)
    while c.ndim > len(shp):
        if c.shape[0] != 1:
            raise _Unsupported(f"constant of shape {c.shape} varies along the batch axis")
        c = c[0]
    try:
        np.broadcast_to(c, shp)
    except ValueError:
        raise _Unsupported(f"constant of shape {c.shape} does not broadcast to the per-sample shape {shp}") from None
    factor = float(c.reshape(-1)[0]) if c.size == 1 else c
    ctx.add(node, P.Scale(factor=factor), x, out=node.output[0])


def _relu(ctx: _Ctx, node) -> None:
    ctx.add(node, P.ReLU(), ctx.act(node, node.input[0]), out=node.output[0])


def _pool(ctx: _Ctx, node, cls) -> None:
    a = _attrs(node)
    x = ctx.act(node, node.input[0])
    shp = ctx.shape(x)
    k = _ints(a["kernel_shape"])
    if len(k) != 2 or len(shp) != 3:
        raise _Unsupported(f"only 2-D pooling over (C, H, W) is supported; kernel {k}, input {shp}")
    s = _ints(a.get("strides", [1, 1]))
    d = _ints(a.get("dilations", [1, 1]))
    if d != [1, 1]:
        raise _Unsupported(f"dilated pooling (dilations={d})")
    pads = _sym_pads(node, _auto_pads(node, a, shp[1:], k, s, d), 2)
    if int(a.get("ceil_mode", 0)):
        for i in range(2):
            n = shp[1 + i] + 2 * pads[i] - k[i]
            if n % s[i]:
                raise _Unsupported("ceil_mode=1 changes the output size here; export with ceil_mode=False")
    if cls is P.AvgPool2d and any(pads) and not int(a.get("count_include_pad", 0)):
        raise _Unsupported("AveragePool with padding and count_include_pad=0; the IR counts padded zeros")
    _unused_outputs(ctx, node)
    ctx.add(node, cls(kernel=tuple(k), stride=tuple(s), padding=tuple(pads)), x, out=node.output[0])


def _global_avg(ctx: _Ctx, node) -> None:
    x = ctx.act(node, node.input[0])
    shp = ctx.shape(x)
    if len(shp) != 3:
        raise _Unsupported(f"GlobalAveragePool over per-sample shape {shp}; expected (C, H, W)")
    ctx.add(node, P.AvgPool2d(kernel=(shp[1], shp[2])), x, out=node.output[0])


def _flatten(ctx: _Ctx, node) -> None:
    axis = int(_attrs(node).get("axis", 1))
    if node.input[0] in ctx.consts:
        c = ctx.consts[node.input[0]]
        ctx.consts[node.output[0]] = c.reshape(int(np.prod(c.shape[:axis])), -1)
        return
    x = ctx.act(node, node.input[0])
    rank = 1 + len(ctx.shape(x))
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise _Unsupported(f"Flatten with axis={axis}; only axis=1 (keep the batch) is supported")
    _flat_or_alias(ctx, node, x)


def _flat_or_alias(ctx: _Ctx, node, x: str) -> None:
    if len(ctx.shape(x)) == 1:
        ctx.alias[node.output[0]] = x
    else:
        ctx.add(node, P.Flatten(), x, out=node.output[0])


def _reshape(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    a = _attrs(node)
    if len(ins) > 1 and ins[1]:
        target = [int(v) for v in ctx.const(node, ins[1], "the target shape").reshape(-1)]
    elif "shape" in a:  # opset < 5
        target = _ints(a["shape"])
    else:
        raise _Unsupported("Reshape without a target shape")
    if ins[0] in ctx.consts:
        c = ctx.consts[ins[0]]
        t = [c.shape[i] if v == 0 and not int(a.get("allowzero", 0)) else v for i, v in enumerate(target)]
        ctx.consts[node.output[0]] = c.reshape(t)
        return
    x = ctx.act(node, ins[0])
    shp = ctx.shape(x)
    size = int(np.prod(shp))
    if not target or target[0] not in (0, -1, 1):
        raise _Unsupported(f"Reshape to {target} changes the batch axis")
    rest = [shp[i - 1] if v == 0 and i - 1 < len(shp) else v for i, v in enumerate(target) if i > 0]
    if rest.count(-1) == 1:
        known = int(np.prod([v for v in rest if v != -1])) or 1
        rest = [size // known if v == -1 else v for v in rest]
    if target[0] == -1 and int(np.prod(rest)) != size:
        raise _Unsupported(f"Reshape to {target} moves samples across the batch axis")
    if tuple(rest) == shp:
        ctx.alias[node.output[0]] = x
    elif rest == [size]:
        _flat_or_alias(ctx, node, x)
    else:
        raise _Unsupported(f"Reshape from per-sample {shp} to {tuple(rest)}; only flattening (N, -1) is supported")


def _batchnorm(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    a = _attrs(node)
    if int(a.get("training_mode", 0)):
        raise _Unsupported("training_mode=1; export the model in eval mode")
    if "spatial" in a and not int(a["spatial"]):
        raise _Unsupported("spatial=0 (per-activation statistics)")
    x = ctx.act(node, ins[0])
    gamma, beta, mean, var = (ctx.const(node, ins[i], f).astype(np.float64).reshape(-1)
                              for i, f in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
    _unused_outputs(ctx, node)
    ctx.add(node, P.BatchNorm(mean=mean, var=var, gamma=gamma, beta=beta, eps=float(a.get("epsilon", 1e-5))),
            x, out=node.output[0])


def _concat(ctx: _Ctx, node) -> None:
    ins = _inputs(node)
    axis = int(_attrs(node).get("axis", 1))
    if all(i in ctx.consts for i in ins):
        ctx.consts[node.output[0]] = np.concatenate([np.atleast_1d(ctx.consts[i]) for i in ins], axis=axis)
        return
    srcs = [ctx.act(node, i) for i in ins]
    rank = 1 + len(ctx.shape(srcs[0]))
    axis = axis + rank if axis < 0 else axis
    if axis < 1:
        raise _Unsupported("Concat along the batch axis")
    if len(srcs) == 1:
        ctx.alias[node.output[0]] = srcs[0]
        return
    ctx.add(node, P.Concat(axis=axis - 1), *srcs, out=node.output[0])


def _identity(ctx: _Ctx, node) -> None:
    src = node.input[0]
    if node.op_type == "Dropout":
        _unused_outputs(ctx, node)
        if len(node.input) > 2 and node.input[2]:
            mode = ctx.consts.get(node.input[2])
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                raise _Unsupported("Dropout in training mode")
    if src in ctx.consts:
        ctx.consts[node.output[0]] = ctx.consts[src]
    else:
        ctx.alias[node.output[0]] = ctx.act(node, src)


def _softmax(ctx: _Ctx, node) -> None:
    x = ctx.act(node, node.input[0])
    shp = ctx.shape(x)
    default = -1 if ctx.opset >= 13 else 1
    axis = int(_attrs(node).get("axis", default))
    rank = 1 + len(shp)
    axis = axis + rank if axis < 0 else axis
    if axis < 1:
        raise _Unsupported("Softmax over the batch axis")
    if ctx.opset < 13 and axis != rank - 1:
        raise _Unsupported(f"Softmax (opset {ctx.opset}) over flattened axes {axis}..{rank - 1}")
    out = node.output[0]
    if ctx.users.get(out, 0) or out not in ctx.graph_outputs:
        raise _Unsupported("Softmax is supported only at the output of the network (its result feeds other nodes)")
    ctx.add(node, P.Softmax(axis=axis - 1), x, out=out)


def _constant(ctx: _Ctx, node) -> None:
    from onnx import numpy_helper

    a = _attrs(node)
    for key, v in a.items():
        if key == "value":
            ctx.consts[node.output[0]] = numpy_helper.to_array(v)
        elif key in ("value_float", "value_int"):
            ctx.consts[node.output[0]] = np.asarray(v)
        elif key in ("value_floats", "value_ints"):
            ctx.consts[node.output[0]] = np.asarray(list(v))
        else:
            raise _Unsupported(f"Constant with attribute {key!r}")


# shape arithmetic that torch exports for x.view(x.size(0), -1): folded to constants


def _shape(ctx: _Ctx, node) -> None:
    src = node.input[0]
    shp = ctx.consts[src].shape if src in ctx.consts else (1, *ctx.shape(ctx.act(node, src)))
    a = _attrs(node)
    start, end = int(a.get("start", 0)), a.get("end")
    ctx.consts[node.output[0]] = np.asarray(shp, dtype=np.int64)[start:None if end is None else int(end)]


def _const_fn(fn: Callable[..., np.ndarray]) -> Callable[[_Ctx, Any], None]:
    def conv(ctx: _Ctx, node) -> None:
        vals = []
        for i in node.input:
            if i and i not in ctx.consts:
                raise _Unsupported("shape arithmetic on an activation; only constant folding is supported")
            vals.append(ctx.consts.get(i) if i else None)
        ctx.consts[node.output[0]] = np.asarray(fn(_attrs(node), ctx.opset, *vals))
    return conv


def _unsqueeze(a, opset, x, axes=None):
    ax = _ints(a["axes"]) if axes is None else [int(v) for v in axes.reshape(-1)]
    out = x
    for ax_ in sorted(v + out.ndim + len(ax) if v < 0 else v for v in ax):
        out = np.expand_dims(out, ax_)
    return out


def _gather(a, opset, x, idx):
    return np.take(x, idx, axis=int(a.get("axis", 0)))


def _cast(a, opset, x):
    from onnx import helper

    return x.astype(helper.tensor_dtype_to_np_dtype(int(a["to"])))


CONVERTERS: dict[str, Callable[[_Ctx, Any], None]] = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Conv": _conv,
    "Relu": _relu,
    "Mul": _mul_div,
    "Div": _mul_div,
    "MaxPool": lambda c, n: _pool(c, n, P.MaxPool2d),
    "AveragePool": lambda c, n: _pool(c, n, P.AvgPool2d),
    "GlobalAveragePool": _global_avg,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "BatchNormalization": _batchnorm,
    "Concat": _concat,
    "Identity": _identity,
    "Dropout": _identity,
    "Softmax": _softmax,
    "Constant": _constant,
    "Shape": _shape,
    "Gather": _const_fn(_gather),
    "Unsqueeze": _const_fn(_unsqueeze),
    "Cast": _const_fn(_cast),
}
SUPPORTED_OPS = tuple(sorted(CONVERTERS))


# ------------------------------------------------------------------------ load


def load(path: str, *, input_shape: tuple[int, ...] | None = None, name: str | None = None,
         dt: float | None = None, **options) -> Graph:
    """Read the ONNX model at `path` into an IR graph.

    Args:
        input_shape: per-sample input shape (no batch axis), needed only when the model's
            input has symbolic dimensions besides the batch.
        name: graph name (default: derived from the file name).
        dt: the graph's time step in ms.
    Returns:
        A verified Graph with `Input(kind="analog")` nodes, ANN operations and `Output` nodes.
    Raises:
        N3mlError: the file is missing or not a valid ONNX model.
        UnsupportedError: listing every node that cannot be converted.
    """
    options.pop("steps", None)  # a run-time setting shared by all loaders; an ONNX model holds no time
    if options:
        raise N3mlError(f"{path}: option(s) {', '.join(sorted(options))} do not apply to ONNX models "
                        "(they take input_shape, name, dt)")
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - onnx is a dependency
        raise N3mlError(f"reading .onnx files needs the `onnx` package: {e}") from None
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise N3mlError(f"{path}: no such file") from None
    except Exception as e:  # protobuf raises DecodeError/RuntimeError/ValueError on corrupt bytes
        raise N3mlError(f"{path}: not a readable ONNX model (corrupt or truncated protobuf: "
                        f"{type(e).__name__}: {e})") from None
    base = re.sub(r"\.onnx$", "", path.replace("\\", "/").rsplit("/", 1)[-1])
    return load_model_proto(model, source=path, input_shape=input_shape, name=name or _sanitize(base),
                            dt=1.0 if dt is None else float(dt))


def _add_inputs(ctx: "_Ctx", g, source: str, input_shape: tuple[int, ...] | None) -> None:
    """One analog Input per (non-initializer) graph input; per-sample shape from the model or --input-shape."""
    inputs = [i for i in g.input if i.name not in ctx.consts]
    if not inputs:
        raise N3mlError(f"{source}: the model has no (non-initializer) input")
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        per = [d.dim_value if d.HasField("dim_value") else None for d in dims][1:]
        if input_shape is not None:
            if len(inputs) != 1:
                raise N3mlError(f"{source}: the model has {len(inputs)} inputs; an input shape applies to one")
            known = all(d is not None and d >= 1 for d in per)
            if per and known and tuple(per) != tuple(input_shape):
                raise N3mlError(f"{source}: input `{vi.name}` has per-sample shape {tuple(per)}, but the input "
                                f"shape given is {tuple(input_shape)}")
            per = list(input_shape)
        if not per or any(d is None or d < 1 for d in per):
            raise N3mlError(f"{source}: input `{vi.name}` has shape {[d.dim_param or d.dim_value for d in dims]} "
                            "with unknown per-sample dimensions; give the input shape (--input-shape)")
        iname = ctx.fresh(vi.name)
        ctx.graph.add(iname, P.Input(shape=tuple(int(d) for d in per), kind="analog"))
        ctx.types[iname] = PortType(shape=tuple(int(d) for d in per), kind="analog")
        ctx.alias[vi.name] = iname


def _convert_nodes(ctx: "_Ctx", g, problems: list[str]) -> None:
    """Convert every node and the graph outputs; a node that fails poisons what depends on it, and every
    problem is collected (all are reported at once)."""
    poisoned: set[str] = set()
    for node in g.node:
        conv = CONVERTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if conv is None or any(i in poisoned for i in node.input):
            poisoned.update(node.output)
            continue
        try:
            conv(ctx, node)
        except _Unsupported as e:
            problems.append(f"node `{node.name or node.output[0]}` ({node.op_type}): {e}")
            poisoned.update(node.output)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            problems.append(f"node `{node.name or node.output[0]}` ({node.op_type}): cannot convert ({e})")
            poisoned.update(node.output)

    for o in g.output:
        if o.name in poisoned:
            continue
        if o.name not in ctx.alias:
            problems.append(f"graph output `{o.name}`: not computed from the input (a constant)")
            continue
        ctx.graph.add(ctx.fresh(o.name), P.Output(), ctx.alias[o.name])


def load_model_proto(model, *, source: str = "<model>", input_shape: tuple[int, ...] | None = None,
                     name: str = "main", dt: float = 1.0) -> Graph:
    """Convert an in-memory `onnx.ModelProto` (see `load`)."""
    import onnx
    from onnx import numpy_helper

    if not model.HasField("graph") or not len(model.graph.node):
        raise N3mlError(f"{source}: not a usable ONNX model (it holds no graph or no nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise N3mlError(f"{source}: invalid ONNX model: {str(e).strip().splitlines()[0]}") from None
    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [1])
    g = model.graph
    ctx = _Ctx(graph=Graph(name=name, dt=dt), opset=opset)
    for init in g.initializer:
        ctx.consts[init.name] = numpy_helper.to_array(init)
    for node in g.node:
        for i in node.input:
            if i:
                ctx.users[i] = ctx.users.get(i, 0) + 1
    ctx.graph_outputs = {o.name for o in g.output}

    problems: list[str] = []
    for node in g.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTERS:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            problems.append(f"node `{node.name or node.output[0]}` ({op}): unsupported op type")

    _add_inputs(ctx, g, source, input_shape)

    _convert_nodes(ctx, g, problems)

    if problems:
        raise UnsupportedError(
            f"{source}: cannot convert {len(problems)} node(s) of the ONNX model:\n  - " + "\n  - ".join(problems)
            + f"\nsupported ONNX ops: {', '.join(SUPPORTED_OPS)}")
    try:
        ctx.graph.verify()
    except VerifyError as e:
        raise N3mlError(f"{source}: the converted graph is invalid: {e}") from None
    log.info("loaded %s: %d ONNX nodes -> %d IR nodes (opset %d)", source, len(g.node), len(ctx.graph), opset)
    return ctx.graph
