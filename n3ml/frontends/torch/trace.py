"""Trace a PyTorch module into an n3ml graph with torch.fx.

The module is traced symbolically (`torch.fx`) with every module that a
library table knows as a leaf; the resulting fx graph is then walked node by
node and each leaf module, function and method is turned into IR nodes by its
converter. Tables: `lib_torch` (plain layers and tensor operations), `lib_n3ml`,
`lib_snntorch`, `lib_norse`, `lib_spikingjelly`; a library's table is loaded only
when the library itself is imported (a model of that library exists).

Time. A traced forward is either *per step* (input ``(B, *shape)``, neurons
keep their state between calls: snnTorch, Norse cells, SpikingJelly
``step_mode="s"``) or *per sequence* (input ``(T, B, *shape)``: n3ml.nn, Norse
``LIF``/``LI``, SpikingJelly ``step_mode="m"``). Both become the same graph,
whose nodes are evaluated once per step (docs/semantics.md §2).

Anything without a converter fails with the module path or operation and the
list of what is supported; nothing is dropped silently.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import fx, nn

from ...errors import N3mlError, UnsupportedError
from ...ir import Graph, VerifyError
from ...ir import prims as P
from ...ir.types import PortType

log = logging.getLogger(__name__)

# library -> (module whose presence in sys.modules loads the table, "module" holding MODULES/FUNCTIONS/METHODS)
LIBRARIES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "n3ml.frontends.torch.lib_torch"),
    "n3ml": ("n3ml.nn", "n3ml.frontends.torch.lib_n3ml"),
    "snntorch": ("snntorch", "n3ml.frontends.torch.lib_snntorch"),
    "norse": ("norse", "n3ml.frontends.torch.lib_norse"),
    "spikingjelly": ("spikingjelly", "n3ml.frontends.torch.lib_spikingjelly"),
}


# the shared vocabulary (values, converter entries, Context) lives in vocab.py; re-exported for the tables
from .vocab import (Context, Entry, Shape, State, Symbolic, Tensor, _ident,  # noqa: E402,F401
                    check_outputs, output_leaves, output_name)


def load_tables() -> list[Any]:
    tables = []
    for lib, (trigger, modname) in LIBRARIES.items():
        if trigger not in sys.modules:
            continue
        try:
            tables.append(importlib.import_module(modname))
        except ImportError as e:  # the library is half-installed; its models cannot be converted
            log.warning("converter table for %s is not available: %s", lib, e)
    return tables


# ---------------------------------------------------------------- tracer


class _Tracer(fx.Tracer):
    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if self.ctx.entry(m) is not None:
            return True
        # a library's own module without a converter, or a subclass of a known type, stays whole so the
        # error names it
        if type(m).__module__.split(".")[0] in _LIBRARY_ROOTS:
            return True
        if any(c in t.MODULES for c in type(m).__mro__[1:] for t in self.ctx.tables if c is not nn.Module):
            return True
        return super().is_leaf_module(m, qualname)


_LIBRARY_ROOTS = frozenset({"snntorch", "norse", "spikingjelly", "n3ml"})


def _model_dtype(model: nn.Module) -> torch.dtype:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _step_mode(ctx: Context, model: nn.Module) -> int:
    modes: dict[str, list[str]] = {}
    containers = tuple(c for t in ctx.tables for c in getattr(t, "CONTAINERS", ()))
    inside: list[str] = []  # paths of containers whose own step mode governs their children
    for path, m in model.named_modules():
        if any(path.startswith(p + ".") for p in inside):
            continue
        if containers and isinstance(m, containers):
            inside.append(path)
        e = ctx.entry(m)
        if e is not None and e.steps is not None:
            mode = e.steps(m)
            if mode in ("single", "multi"):  # ("encode": an encoder of static input, either way)
                modes.setdefault(mode, []).append(path or "(root)")
    if len(modes) > 1:
        raise UnsupportedError(f"the model mixes single-step modules ({', '.join(modes['single'][:3])}) and "
                               f"multi-step modules ({', '.join(modes['multi'][:3])}); n3ml traces one or the other")
    return 2 if "multi" in modes else 1


def trace(model: nn.Module, input_shape: tuple[int, ...], *, dt: float | None = None, scheme: str | None = None,
          name: str = "main", input_kind: str = "analog") -> Graph:
    """Trace `model` into an IR graph.

    Args:
        model: a torch module (put into eval mode; neuron modules are leaves).
        input_shape: per-sample input shape, without batch or time axes.
        dt: graph step in ms (default: the n3ml.nn modules' dt, Norse's dt, else 1.0).
        scheme: "exact" or "euler" (default: the n3ml.nn modules' scheme, else "euler").
        input_kind: "analog" or "spike" for the Input node.
    Returns:
        A verified Graph computing, step by step, what the model computes.
    """
    if not isinstance(model, nn.Module):
        raise N3mlError(f"expected a torch.nn.Module, found {type(model).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise N3mlError(f"input shape must be positive sizes without the batch axis, found {input_shape!r}")
    modes = {m: m.training for m in model.modules()}
    model.eval()  # BatchNorm/Dropout in inference form; the caller's flags are restored afterwards
    try:
        return _trace(model, shape, dt=dt, scheme=scheme, name=name, input_kind=input_kind)
    finally:
        for m, training in modes.items():
            m.training = training


def _trace(model: nn.Module, shape: tuple[int, ...], *, dt: float | None, scheme: str | None, name: str,
           input_kind: str) -> Graph:
    tables = load_tables()
    hints = [t.graph_hints(model) for t in tables if hasattr(t, "graph_hints")]
    g_dt = dt if dt is not None else next((h["dt"] for h in hints if h.get("dt")), 1.0)
    g_scheme = scheme or next((h["scheme"] for h in hints if h.get("scheme")), "euler")
    graph = Graph(_ident(name), float(g_dt), g_scheme)
    ctx = Context(graph, lead=1, dtype=_model_dtype(model))
    ctx.tables = tables
    for t in tables:
        if hasattr(t, "check_model"):
            t.check_model(ctx, model, graph)
    ctx.lead = _step_mode(ctx, model)

    root_entry = ctx.entry(model)
    if root_entry is not None:  # the whole model is one known module (a Sequential-like container, a neuron)
        x = ctx.add("x", P.Input(shape=shape, kind=input_kind))
        out = ctx.convert_module(model, "", x)
        _outputs(ctx, out)
        return _verified(graph)

    try:
        fx_graph = _Tracer(ctx).trace(model, concrete_args=_concrete_args(model))
        _interpret(ctx, model, fx_graph, shape, input_kind)
        return _verified(graph)
    except Exception as e:  # loops over time, explicit state, time-axis glue, library blocks: run the forward
        log.debug("torch.fx could not trace %s (%s: %s); recording its forward instead", type(model).__name__,
                  type(e).__name__, e)
        fx_error = e
    from .record import NotRunnable, record

    def fresh_ctx() -> Context:
        c = Context(Graph(_ident(name), float(g_dt), g_scheme), lead=1, dtype=ctx.dtype)
        c.tables = tables
        return c

    try:
        return _verified(record(model, shape, fresh_ctx, input_kind=input_kind, multi=ctx.lead == 2))
    except NotRunnable:
        # the forward does not even run on the declared input: fx's error names the layer and shapes
        if isinstance(fx_error, UnsupportedError):
            raise fx_error from None
        raise


def _concrete_args(model: nn.Module) -> dict[str, Any]:
    """Every forward argument after the first is bound to None (states start from the module's own)."""
    params = list(inspect.signature(model.forward).parameters.values())
    out = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def _verified(graph: Graph) -> Graph:
    try:
        graph.verify()
    except VerifyError as e:
        raise N3mlError(f"the traced graph is invalid (a converter bug): {e}") from e
    return graph


def _interpret(ctx: Context, model: nn.Module, fxg: fx.Graph, shape: tuple[int, ...], kind: str,
               call: Callable[..., Any] | None = None) -> None:
    from . import lib_torch

    call = call or lib_torch.call
    env: dict[fx.Node, Any] = {}
    calls: dict[str, int] = {}
    first = True
    modules = dict(model.named_modules())
    for node in fxg.nodes:
        ctx.where = f"operation `{node.name}` ({node.op} {_target_name(node.target)})"
        if node.op == "placeholder":
            if first:
                env[node] = ctx.add(node.target if isinstance(node.target, str) else "x", P.Input(shape=shape,
                                                                                                 kind=kind))
                first = False
            else:
                env[node] = None
            continue
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "get_attr":
            env[node] = _get_attr(model, node.target)
        elif node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
            entry = ctx.entry(modules[node.target])
            if calls[node.target] > 1 and entry is not None and entry.steps is not None:
                raise UnsupportedError(
                    f"module `{node.target}` is called more than once in one forward (a loop over time?); "
                    "n3ml traces a forward that computes one step (or one sequence) with each neuron module "
                    "called once; put the time loop outside forward")
            env[node] = ctx.convert_module(modules[node.target], node.target, *args, **kwargs)
        elif node.op in ("call_function", "call_method"):
            env[node] = call(ctx, node, args, kwargs)
        elif node.op == "output":
            _outputs(ctx, args[0])


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    mod = getattr(target, "__module__", None) or ""
    return f"{mod}.{getattr(target, '__name__', str(target))}".lstrip(".")


def _get_attr(model: nn.Module, target: str) -> Any:
    obj: Any = model
    for part in target.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().double().numpy()
    return obj


def _outputs(ctx: Context, out: Any) -> None:
    flat: list[tuple[str, Tensor]] = []
    dropped: list[str] = []
    for key, v in output_leaves(out):
        if isinstance(v, Tensor):
            flat.append((key, v))
        elif isinstance(v, State):
            dropped.append(f"{v.owner}.{v.what}")
        else:
            raise UnsupportedError(f"the model returns {type(v).__name__} {v!r:.60}; n3ml outputs traced tensors only")
    check_outputs(len(flat), dropped, log)
    for key, t in flat:
        ctx.add(output_name(key, len(flat)), P.Output(), t)
