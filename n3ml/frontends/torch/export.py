"""torch.export programs (.pt2) -> IR: ATen-level operations of plain torch layers.

An ExportedProgram has lost its module structure (neuron modules are inlined
into ATen operations), so this path reads ANNs and synaptic layers: the
operations in ATEN below. Spiking models enter through their Python classes
(state_dict + --model) instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from ...errors import N3mlError, UnsupportedError
from ...ir import Graph
from ...ir import prims as P
from . import lib_torch
from .trace import Context, Tensor, _ident, _interpret, _verified, load_tables

aten = torch.ops.aten


def _arr(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    return np.asarray(v, dtype=np.float64)


def _pair(v: Any, default: int) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and not v):
        return (default, default)
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[-1]) if len(v) > 1 else int(v[0]))


def _linear(ctx: Context, x: Any, w: Any, b: Any = None) -> Tensor:
    return ctx.add("linear", P.Dense(weight=_arr(w), bias=_arr(b)), ctx.tensor(x))


def _conv(ctx: Context, x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
          groups: int = 1) -> Tensor:
    x = ctx.tensor(x)
    w = _arr(w)
    if isinstance(padding, str):
        raise ctx.unsupported(f"padding={padding!r}", "explicit zero padding")
    if w.ndim == 3:
        prim: P.Primitive = P.Conv1d(weight=w, bias=_arr(b), stride=_pair(stride, 1)[0],
                                     padding=_pair(padding, 0)[0], dilation=_pair(dilation, 1)[0], groups=groups)
    else:
        prim = P.Conv2d(weight=w, bias=_arr(b), stride=_pair(stride, 1), padding=_pair(padding, 0),
                        dilation=_pair(dilation, 1), groups=groups)
    return ctx.add("conv", prim, x)


def _max_pool(ctx: Context, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
              ceil_mode: bool = False) -> Tensor:
    if _pair(dilation, 1) != (1, 1) or ceil_mode:
        raise ctx.unsupported("max_pool2d with dilation or ceil_mode", "dilation=1, ceil_mode=False")
    k = _pair(kernel, 1)
    s = k if not stride else _pair(stride, 1)
    return ctx.add("maxpool", P.MaxPool2d(kernel=k, stride=s, padding=_pair(padding, 0)), ctx.tensor(x))


def _avg_pool(ctx: Context, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, ceil_mode: bool = False,
              count_include_pad: bool = True, divisor_override: Any = None) -> Tensor:
    pad = _pair(padding, 0)
    if ceil_mode or divisor_override is not None or (not count_include_pad and pad != (0, 0)):
        raise ctx.unsupported("avg_pool2d with ceil_mode, divisor_override or count_include_pad=False",
                              "plain average pooling")
    k = _pair(kernel, 1)
    s = k if not stride else _pair(stride, 1)
    return ctx.add("avgpool", P.AvgPool2d(kernel=k, stride=s, padding=pad), ctx.tensor(x))


def _batch_norm(ctx: Context, x: Any, w: Any, b: Any, mean: Any, var: Any, training: bool = False,
                momentum: float = 0.1, eps: float = 1e-5, *rest: Any) -> Tensor:
    if training:
        raise ctx.unsupported("batch_norm in training mode", "batch_norm with running statistics (eval)")
    if mean is None or var is None:
        raise ctx.unsupported("batch_norm without running statistics", "batch_norm with running statistics")
    c = _arr(mean).shape[0]
    prim = P.BatchNorm(mean=_arr(mean), var=_arr(var), gamma=np.ones(c) if w is None else _arr(w),
                       beta=np.zeros(c) if b is None else _arr(b), eps=float(eps))
    return ctx.add("batchnorm", prim, ctx.tensor(x))


def _bn_legit(ctx: Context, x: Any, w: Any, b: Any, mean: Any, var: Any, momentum: float, eps: float) -> tuple:
    return (_batch_norm(ctx, x, w, b, mean, var, False, momentum, eps), None, None)


def _view(ctx: Context, x: Any, shape: Any) -> Tensor:
    x = ctx.tensor(x)
    tail = list(shape)[1:]
    size = int(np.prod(ctx.shape(x)))
    if len(tail) == 1 and tail[0] in (-1, size):
        return lib_torch.flatten_dims(ctx, x, 1, -1)
    if tuple(tail) == ctx.shape(x):
        return x
    raise ctx.unsupported(f"view of per-sample shape {ctx.shape(x)} as {list(shape)}", "flattening views")


def _dropout(ctx: Context, x: Any, p: float = 0.5, train: bool = False) -> Any:
    if train:
        raise ctx.unsupported("dropout in training mode", "dropout in eval mode")
    return x


def _softmax(ctx: Context, x: Any, dim: int, *rest: Any) -> Tensor:
    return lib_torch._softmax(ctx, ctx.tensor(x), dim)


def _add(ctx: Context, a: Any, b: Any, alpha: Any = 1) -> Any:
    return lib_torch._add(ctx, a, b, alpha=alpha)


def _same(ctx: Context, x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


ATEN: dict[Any, Any] = {
    aten.linear.default: _linear,
    aten.conv1d.default: _conv,
    aten.conv2d.default: _conv,
    aten.max_pool2d.default: _max_pool,
    aten.avg_pool2d.default: _avg_pool,
    aten.batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _bn_legit,
    aten.relu.default: lambda ctx, x: lib_torch._relu(ctx, x),
    aten.flatten.using_ints: lambda ctx, x, s=0, e=-1: lib_torch._flatten(ctx, x, s, e),
    aten.view.default: _view,
    aten.reshape.default: _view,
    aten.add.Tensor: _add,
    aten.cat.default: lambda ctx, ts, dim=0: lib_torch._cat(ctx, ts, dim),
    aten.dropout.default: _dropout,
    aten.softmax.int: _softmax,
    aten._softmax.default: _softmax,
    aten.clone.default: _same,
    aten.contiguous.default: _same,
    aten.detach.default: _same,
}


def _call(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    fn = ATEN.get(node.target)
    if fn is not None:
        return fn(ctx, *args, **kwargs)
    if isinstance(node.target, torch._ops.OpOverload):
        names = ", ".join(sorted(str(k) for k in ATEN))
        raise ctx.unsupported(f"ATen operation `{node.target}` is not supported in .pt2 programs", names)
    return lib_torch.call(ctx, node, args, kwargs)


def trace_exported(ep: Any, path: str, *, input_shape: tuple[int, ...] | None, dt: float | None,
                   scheme: str | None, input_kind: str, name: str) -> Graph:
    gm = ep.module()
    places = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(places) != 1:
        raise UnsupportedError(f"{path}: the exported program takes {len(places)} inputs; n3ml reads one input")
    val = places[0].meta.get("val")
    shape = tuple(int(d) for d in val.shape[1:]) if val is not None else input_shape
    if shape is None:
        raise N3mlError(f"{path}: the program records no input shape; pass --input-shape")
    if input_shape is not None and tuple(input_shape) != shape:
        raise N3mlError(f"{path}: --input-shape {','.join(map(str, input_shape))} does not match the exported "
                        f"program's input (B, {', '.join(map(str, shape))})")
    # drop export's runtime guard module calls: they compute nothing the graph uses
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and str(n.target).startswith("_guards") and not n.users:
            gm.graph.erase_node(n)
    graph = Graph(_ident(name), float(dt or 1.0), scheme or "euler")
    ctx = Context(graph, lead=1, dtype=torch.float32)
    ctx.tables = load_tables()
    try:
        _interpret(ctx, gm, gm.graph, shape, input_kind, call=_call)
    except N3mlError as e:
        raise type(e)(f"{path}: {e} (a .pt2 program is read as an ANN on input (B, {', '.join(map(str, shape))}); "
                      "convert a spiking model from its state_dict with --model instead)") from None
    return _verified(graph)
