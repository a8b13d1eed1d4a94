"""torch.export programs (.pt2) -> IR: ATen operations of plain layers and n3ml's neuron operators.

An ExportedProgram has lost its module structure. Plain layers arrive as the ATen
operations of ATEN below; n3ml.nn neurons and encoders arrive as one operator each,
``torch.ops.n3ml.<op>`` (registered by `n3ml.nn.ops`; the loader imports n3ml.nn
before `torch.export.load`), mapped by N3ML to the primitive the module's `to_ir()`
gives, with the same fields.

A program without n3ml operators is an ANN on input (B, ...). A program with them is a
spiking network on a sequence (T, B, ...): its input's sample shape follows the two
leading axes, and each reshape is read against the fake tensors export recorded
(``node.meta["val"]``) to tell the time/batch axes (folded by `TimeDistributed`) from
the per-sample axes the IR keeps.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from ...errors import N3mlError, UnsupportedError
from ...ir import Graph
from ...ir import prims as P
from ...nn import ops as n3ml_ops
from . import lib_torch
from .export_spikingjelly import register_ops
from .trace import Context, Symbolic, Tensor, _ident, _interpret, _verified, load_tables

register_ops()  # SpikingJelly's neuron operators must be known before torch.export.load reads a program using them

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
    return ctx.add(ctx.path or "linear", P.Dense(weight=_arr(w), bias=_arr(b)), ctx.tensor(x))


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
    return ctx.add(ctx.path or "conv", prim, x)


def _max_pool(ctx: Context, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
              ceil_mode: bool = False) -> Tensor:
    if _pair(dilation, 1) != (1, 1) or ceil_mode:
        raise ctx.unsupported("max_pool2d with dilation or ceil_mode", "dilation=1, ceil_mode=False")
    k = _pair(kernel, 1)
    s = k if not stride else _pair(stride, 1)
    return ctx.add(ctx.path or "maxpool", P.MaxPool2d(kernel=k, stride=s, padding=_pair(padding, 0)), ctx.tensor(x))


def _avg_pool(ctx: Context, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, ceil_mode: bool = False,
              count_include_pad: bool = True, divisor_override: Any = None) -> Tensor:
    pad = _pair(padding, 0)
    if ceil_mode or divisor_override is not None or (not count_include_pad and pad != (0, 0)):
        raise ctx.unsupported("avg_pool2d with ceil_mode, divisor_override or count_include_pad=False",
                              "plain average pooling")
    k = _pair(kernel, 1)
    s = k if not stride else _pair(stride, 1)
    return ctx.add(ctx.path or "avgpool", P.AvgPool2d(kernel=k, stride=s, padding=pad), ctx.tensor(x))


def _batch_norm(ctx: Context, x: Any, w: Any, b: Any, mean: Any, var: Any, training: bool = False,
                momentum: float = 0.1, eps: float = 1e-5, *rest: Any) -> Tensor:
    if training:
        raise ctx.unsupported("batch_norm in training mode", "batch_norm with running statistics (eval)")
    if mean is None or var is None:
        raise ctx.unsupported("batch_norm without running statistics", "batch_norm with running statistics")
    c = _arr(mean).shape[0]
    prim = P.BatchNorm(mean=_arr(mean), var=_arr(var), gamma=np.ones(c) if w is None else _arr(w),
                       beta=np.zeros(c) if b is None else _arr(b), eps=float(eps))
    return ctx.add(ctx.path or "batchnorm", prim, ctx.tensor(x))


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


def _avg_pool1d(ctx: Context, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, ceil_mode: bool = False,
                count_include_pad: bool = True) -> Tensor:
    """F.avg_pool1d(x.unsqueeze(1), k).squeeze(1) of a flat sample (SpikingJelly's VotingLayer)."""
    if _pair(padding, 0) != (0, 0) or ceil_mode:
        raise ctx.unsupported("avg_pool1d with padding or ceil_mode", "plain 1-d average pooling")
    return lib_torch.avg_pool1d_node(ctx, ctx.tensor(x), kernel, stride=stride or None)


def _squeeze(ctx: Context, x: Any, dim: int) -> Any:
    """The channel axis a 1-d pooling added (x.unsqueeze(1) ... .squeeze(1)): the sample is already flat."""
    if len(ctx.shape(ctx.tensor(x))) != 1:
        raise ctx.unsupported(f"squeeze({dim}) of per-sample shape {ctx.shape(ctx.tensor(x))}",
                              "the squeeze after a 1-d pooling of a flat sample")
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
    aten.add_.Tensor: _add,  # `out += identity` (spiking_resnet's blocks): export keeps the in-place form
    aten.adaptive_avg_pool2d.default: lambda ctx, x, size: lib_torch._adaptive_avg_pool2d_fn(ctx, x, size),
    aten._adaptive_avg_pool2d.default: lambda ctx, x, size: lib_torch._adaptive_avg_pool2d_fn(ctx, x, size),
    aten.avg_pool1d.default: _avg_pool1d,
    aten.squeeze.dim: _squeeze,
    aten.mul.Tensor: lambda ctx, a, b: lib_torch._mul(ctx, a, b),  # a layer scaled by a number (10 * conv(x))
    aten.cat.default: lambda ctx, ts, dim=0: lib_torch._cat(ctx, ts, dim),
    aten.dropout.default: _dropout,
    aten.softmax.int: _softmax,
    aten._softmax.default: _softmax,
    aten.clone.default: _same,
    aten.contiguous.default: _same,
    aten.detach.default: _same,
    # a number the module turns into a tensor in forward (an n3ml operator's scalar field) is a lifted constant
    aten.lift_fresh_copy.default: _same,
    aten.detach_.default: _same,
}


# ------------------------------------------------------------- n3ml operators


def _ir_value(v: Any, ctx: Context, field: str) -> Any:
    """A field as `NeuronModule.to_ir()` stores it: float for a scalar, float64 array otherwise."""
    if isinstance(v, Tensor):
        raise ctx.unsupported(f"field `{field}` is computed from the network's input", "constant parameters")
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    arr = np.asarray(v, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else np.array(arr, dtype=np.float64)


def _bind(node: fx.Node, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The operator's arguments by schema name (defaults filled in)."""
    out: dict[str, Any] = {}
    for i, a in enumerate(node.target._schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _fields(prim_cls: type[P.Primitive], a: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The primitive's fields from the operator's arguments of the same names (as `to_ir()` gives them)."""
    out = {}
    for f in dataclasses.fields(prim_cls):
        if f.name not in a:  # LI/Integrator have no spiking arguments: their defaults, as to_ir()
            continue
        v = a[f.name]
        is_enum = isinstance(v, (str, int))  # reset, refractory, seed, window, surrogate, detach_reset
        out[f.name] = v if is_enum else _ir_value(v, ctx, f.name)
    return out


def _primitive(prim_cls: type[P.Primitive]) -> Any:
    """Converter of a neuron or encoder operator: one node of `prim_cls`."""
    def convert(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Tensor:
        a = _bind(node, args, kwargs)
        return ctx.add(ctx.path or node.name, prim_cls(**_fields(prim_cls, a, ctx)), ctx.tensor(a["x"]))

    return convert


def _recurrent(prim_cls: type[P.Primitive]) -> Any:
    """Converter of ``recurrent_<neuron>`` (`n3ml.nn.Recurrent`): Add(x, Dense(Delay(s))) -> neuron s."""
    def convert(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Tensor:
        a = _bind(node, args, kwargs)
        base = ctx.path or node.name
        name, delayed, fed = ctx.reserve(base), ctx.reserve(base + "_delay"), ctx.reserve(base + "_recurrent")
        total = ctx.add(base + "_sum", P.Add(), ctx.tensor(a["x"]), fed)
        out = ctx.add(name, prim_cls(**_fields(prim_cls, a, ctx)), total, name=name)
        ctx.add(delayed, P.Delay(steps=int(a["delay"])), out, name=delayed)
        bias = None if a.get("bias") is None else _ir_value(a["bias"], ctx, "bias")
        ctx.add(fed, P.Dense(weight=_ir_value(a["weight"], ctx, "weight"), bias=bias), delayed, name=fed)
        return out

    return convert


_NEURONS = {"if_": P.IF, "lif": P.LIF, "cuba_lif": P.CubaLIF, "alif": P.ALIF, "li": P.LI, "integrator": P.Integrator,
            "synapse_filter": P.SynapseFilter}

# One entry per operator of n3ml.nn.ops: every field of the primitive is the argument of that name.
N3ML: dict[Any, Any] = {
    **{getattr(torch.ops.n3ml, op).default: _primitive(cls) for op, cls in _NEURONS.items()},
    **{getattr(torch.ops.n3ml, "recurrent_" + op).default: _recurrent(cls) for op, cls in _NEURONS.items()},
    torch.ops.n3ml.poisson_rate.default: _primitive(P.PoissonRate),
    torch.ops.n3ml.constant_current.default: _primitive(P.ConstantCurrent),
    torch.ops.n3ml.latency.default: _primitive(P.Latency),
}


class _Context(Context):
    """Context that also knows each fx node's value (fake tensor) and its number of leading axes."""

    def __init__(self, graph: Graph, *, lead: int, dtype: torch.dtype):
        super().__init__(graph, lead=lead, dtype=dtype)
        self.input_lead = lead
        self.leads: dict[fx.Node, int] = {}
        self.readouts: dict[str, str] = {}  # IR node -> "mean"/"sum": an output read out over time
        self.held = 0  # steps the program repeats its static input for


def _val(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _size(d: Any) -> Any:
    """A (possibly symbolic) size as a sympy expression or int."""
    return d.node.expr if isinstance(d, torch.SymInt) else int(d)


def _prod(dims: Any) -> Any:
    p: Any = 1
    for d in dims:
        p = p * _size(d)
    return p


def _same_size(a: Any, b: Any) -> bool:
    diff = a - b
    return diff == 0 if isinstance(diff, int) else bool(diff.expand() == 0)


def _lead_of(ctx: _Context, node: fx.Node, x: Tensor) -> int:
    val = _val(node)
    if isinstance(val, torch.Tensor):
        return val.ndim - len(ctx.shape(x))
    return ctx.leads.get(node, ctx.input_lead)


def _reshape(ctx: _Context, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """view/reshape: a change of the leading (time, batch) axes only, or a flattening of the sample axes.

    The output's leading axes are those whose product equals the input's leading product (T B, or the
    folded T*B); the rest must hold the sample. Where a size-1 axis makes that ambiguous, keeping the
    sample shape wins, then the most leading axes.
    """
    x = ctx.tensor(args[0])
    src, out = _val(node.args[0]), _val(node)
    if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor):
        return _view(ctx, x, args[1])
    sample = ctx.shape(x)
    lead_in = src.ndim - len(sample)
    lead_size, n = _prod(src.shape[:lead_in]), int(np.prod(sample)) if sample else 1
    fits = []
    for k in range(1, out.ndim + 1):
        tail = out.shape[k:]
        if all(isinstance(d, int) for d in tail) and _same_size(_prod(out.shape[:k]), lead_size) \
                and int(np.prod(tail)) == n:
            fits.append(tuple(int(d) for d in tail))
    if sample in fits:
        return x
    if fits and len(fits[-1]) == 1:
        return lib_torch.flatten_dims(ctx, x, lead_in, -1, lead=lead_in)
    raise ctx.unsupported(f"reshape of {tuple(src.shape)} (per-sample shape {sample}) to {tuple(out.shape)}",
                          "reshapes of the time/batch axes (TimeDistributed) and flattening of the sample axes")


def _module_path(node: fx.Node) -> str:
    """The path of the innermost module the operation came from (names the IR node, as --model tracing does)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def _call(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    ctx.path = _module_path(node)
    if ctx.path:
        ctx.where += f" of module `{ctx.path}`"
    if isinstance(ctx, _Context):
        for a in node.all_input_nodes:  # converters see the leading axes of their tensor argument
            if isinstance(ctx.leads.get(a), int):
                ctx.lead = ctx.leads[a]
                break
    if not isinstance(_val(node), torch.Tensor) and isinstance(_val(node), (torch.SymInt, int)) \
            and node.target in _SIZES:
        return Symbolic("size")  # sizes only feed reshapes, which are read from the recorded shapes
    if node.target in _RESHAPES and isinstance(ctx, _Context):
        result = _reshape(ctx, node, args, kwargs)
    elif node.target in _TIME_GLUE and isinstance(ctx, _Context):
        result = _TIME_GLUE[node.target](ctx, node, args)
    elif node.target in N3ML:
        result = N3ML[node.target](ctx, node, args, kwargs)
    elif node.target in ATEN:
        result = ATEN[node.target](ctx, *args, **kwargs)
    elif isinstance(node.target, torch._ops.OpOverload):
        ns = node.target.namespace
        if ns == "aten":
            names = ", ".join(sorted(str(k) for k in ATEN))
            raise ctx.unsupported(f"ATen operation `{node.target}` is not supported in .pt2 programs", names)
        known = ", ".join(sorted(str(k) for k in N3ML))
        raise ctx.unsupported(f"operator `{node.target}` ({ns}::{node.target._schema.name.split('::')[-1]}) is "
                              "not one n3ml knows", f"ATen layers and the n3ml.nn operators {known}")
    else:
        result = lib_torch.call(ctx, node, args, kwargs)
    if isinstance(ctx, _Context) and isinstance(result, Tensor):
        ctx.leads[node] = _lead_of(ctx, node, result)
    return result


_RESHAPES = {aten.view.default, aten.reshape.default, aten.flatten.using_ints, aten.unflatten.int,
             aten._unsafe_view.default}


def _time_axis(ctx: _Context, node: fx.Node, x: Tensor, dims: Any) -> bool:
    """Whether `dims` name exactly the time axis (axis 0 of a (T, B, ...) value)."""
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    return dims == [0] and isinstance(_val(node.args[0]), torch.Tensor) and \
        _val(node.args[0]).ndim - len(ctx.shape(x)) == 2


def _readout(how: str) -> Any:
    """`.mean(0)`/`.sum(0)` over time of a (T, B, ...) sequence: the model's readout (Output.reduce)."""
    def convert(ctx: _Context, node: fx.Node, args: tuple) -> Tensor:
        x = ctx.tensor(args[0])
        dims = args[1] if len(args) > 1 else node.kwargs.get("dim")
        keep = (args[2] if len(args) > 2 else node.kwargs.get("keepdim", False))
        if not _time_axis(ctx, node, x, dims) or keep:
            raise ctx.unsupported(f"{how} over axes {dims} (keepdim={keep})",
                                  f"`.{how}(0)` over the time axis of a (T, B, ...) sequence, as the model's readout")
        if any(u.op != "output" for u in node.users):
            raise ctx.unsupported(f"a {how} over time used inside the network (by `{next(iter(node.users)).name}`)",
                                  f"`.{how}(0)` over time only as the model's output")
        ctx.readouts[x.node] = how
        return x

    return convert


def _repeat_time(ctx: _Context, node: fx.Node, args: tuple) -> Any:
    """x.unsqueeze(0) then .repeat(T, 1, ...)/.expand(T, ...): one static sample fed to each of T steps."""
    x = ctx.tensor(args[0])
    src, out = _val(node.args[0]), _val(node)
    lead_in = src.ndim - len(ctx.shape(x)) if isinstance(src, torch.Tensor) else ctx.lead
    if node.target is aten.unsqueeze.default:
        pooled = node.users and all(u.target is aten.avg_pool1d.default for u in node.users)
        if pooled and args[1] == lead_in and len(ctx.shape(x)) == 1:  # a channel axis for F.avg_pool1d
            return x
        if args[1] != 0 or lead_in != 1:
            raise ctx.unsupported(f"unsqueeze({args[1]}) of a value with {lead_in} leading axes",
                                  "x.unsqueeze(0) of a (B, ...) input before repeating it over time")
        return x
    sizes = list(args[1])
    same = all(int(d) in (1, -1) or int(d) == int(s) for d, s in zip(sizes[1:], out.shape[1:]))
    if lead_in != 2 or int(src.shape[0]) != 1 or not same or node.args[0].target is not aten.unsqueeze.default \
            or node.args[0].args[0].op != "placeholder":
        raise ctx.unsupported(f"{node.target} to {tuple(out.shape)}", "x.unsqueeze(0).repeat(T, 1, ...) (or "
                              ".expand(T, ...)) of the model's input: the input held for T steps")
    ctx.held = int(sizes[0])
    return x


_TIME_GLUE = {
    aten.mean.dim: _readout("mean"),
    aten.sum.dim_IntList: _readout("sum"),
    aten.unsqueeze.default: _repeat_time,
    aten.repeat.default: _repeat_time,
    aten.expand.default: _repeat_time,
}


def _held_input(gm: fx.GraphModule, x: fx.Node) -> bool:
    """Whether the program repeats its (B, ...) input over time (x.unsqueeze(0).repeat(T, ...))."""
    return bool(x.users) and all(
        u.target is aten.unsqueeze.default and u.args[1:] == (0,) and u.users
        and all(r.target in (aten.repeat.default, aten.expand.default) for r in u.users) for u in x.users)


_SIZES = {aten.sym_size.int, operator.mul, operator.add, operator.sub, operator.floordiv, operator.truediv}


def _hints(gm: fx.GraphModule, path: str, dt: float | None, scheme: str | None) -> tuple[float, str, bool]:
    """(dt, scheme, spiking) from the n3ml operators; all timed ones must agree (with --dt/--scheme too)."""
    found: dict[tuple[float, str], str] = {}
    spiking = False
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target in N3ML:
            spiking = True
            a = _bind(n, n.args, n.kwargs)
            if "dt" in a:
                found.setdefault((float(a["dt"]), str(a["scheme"])), n.name)
    if len(found) > 1:
        desc = ", ".join(f"`{k}` dt={d:g} ms scheme={s}" for (d, s), k in found.items())
        raise UnsupportedError(f"{path}: the n3ml neurons use different time steps or schemes ({desc}); all "
                               "n3ml.nn modules of one model must share dt and scheme")
    if found:
        (m_dt, m_scheme), who = next(iter(found.items()))
        if (dt is not None and float(dt) != m_dt) or (scheme is not None and scheme != m_scheme):
            raise UnsupportedError(f"{path}: operation `{who}` has dt={m_dt:g} ms, scheme={m_scheme}, but "
                                   f"--dt/--scheme ask for dt={dt} ms, scheme={scheme}; the time constants are "
                                   "in ms at the module's dt, so they must match")
        return m_dt, m_scheme, spiking
    return float(dt or 1.0), scheme or "euler", spiking


def trace_exported(ep: Any, path: str, *, input_shape: tuple[int, ...] | None, dt: float | None,
                   scheme: str | None, input_kind: str, name: str) -> Graph:
    gm = ep.module()
    places = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(places) != 1:
        raise UnsupportedError(f"{path}: the exported program takes {len(places)} inputs; n3ml reads one input")
    # drop export's runtime guard module calls: they compute nothing the graph uses
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and str(n.target).startswith("_guards") and not n.users:
            gm.graph.erase_node(n)
    from . import export_peers  # neurons of snnTorch, Norse and SpikingJelly inlined into ATen operations

    regions, loop = export_peers.find_regions(gm, path)
    multi = export_peers.is_multi_step(regions) or (loop is not None and loop.sequence)
    if regions and not export_peers.is_multi_step(regions) and any(r.multi for r in regions.values()):
        raise UnsupportedError(f"{path}: the program mixes single-step and multi-step neuron modules; n3ml reads "
                               "one step or one sequence")
    if regions and dt is None and scheme is None and not any(
            n.op == "call_function" and n.target in N3ML for n in gm.graph.nodes):
        hints = export_peers.graph_hints(regions)
        dt, scheme = hints.get("dt"), hints.get("scheme")
    g_dt, g_scheme, spiking = _hints(gm, path, dt, scheme)
    lead = 2 if spiking or multi else 1
    in_lead = 1 if lead == 2 and _held_input(gm, places[0]) else lead
    val = places[0].meta.get("val")
    shape = tuple(int(d) for d in val.shape[in_lead:]) if val is not None else input_shape
    if shape is None:
        raise N3mlError(f"{path}: the program records no input shape; pass --input-shape")
    if input_shape is not None and tuple(input_shape) != shape:
        axes = "(T, B, " if lead == 2 else "(B, "
        raise N3mlError(f"{path}: --input-shape {','.join(map(str, input_shape))} does not match the exported "
                        f"program's input {axes}{', '.join(map(str, shape))})")
    graph = Graph(_ident(name), g_dt, g_scheme)
    ctx = _Context(graph, lead=lead, dtype=torch.float32)
    ctx.tables = load_tables()
    ctx.leads[places[0]] = in_lead
    call = _call
    if regions:
        results: dict[fx.Node, Any] = {places[0]: Tensor(_ident(str(places[0].target)))}

        def call(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Any:
            return export_peers.call(ctx, node, regions, results, _call, args, kwargs)
    try:
        _interpret(ctx, gm, gm.graph, shape, input_kind, call=call)
    except N3mlError as e:
        how = (f"a spiking program on input (T, B, {', '.join(map(str, shape))})" if lead == 2 else
               f"one step of a spiking program on input (B, {', '.join(map(str, shape))})" if regions else
               f"an ANN on input (B, {', '.join(map(str, shape))}); spiking layers must be n3ml.nn modules, or "
               "convert a spiking model of another library from its state_dict with --model")
        raise type(e)(f"{path}: {e} (the .pt2 program is read as {how})") from None
    held = loop.steps if loop is not None and not loop.sequence else ctx.held
    if held:  # the program fed the same sample to each of its steps
        for name in graph.input_names:
            graph.replace(name, hold=held)
    for e in list(graph.edges):
        if e.dst in graph.output_names and e.src in ctx.readouts:
            graph.replace(e.dst, reduce=ctx.readouts[e.src])
    return _verified(graph)
