"""n3ml.nn modules -> IR: each module already knows its primitive (`to_ir()`).

The modules run whole sequences (T, B, ...); `TimeDistributed` applies a layer to
every step. The graph takes dt and scheme from the modules (they must agree).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ...errors import UnsupportedError
from ...ir import Graph
from ...ir import prims as P
from ...nn import modules as M
from .trace import Context, Entry, Tensor


def neuron(ctx: Context, m: nn.Module, x: Any, *state: Any) -> Tensor:
    if any(s is not None for s in state):
        raise ctx.unsupported("passing a state to the module; it starts from its initial state", "module(x)")
    return ctx.add(ctx.path or type(m).__name__.lower(), m.to_ir(), ctx.tensor(x))


def recurrent(ctx: Context, m: M.Recurrent, x: Any) -> Tensor:
    """Add(x, Dense(Delay(s))) -> neuron s: the cycle closes through the Delay."""
    base = ctx.path or "recurrent"
    name, delayed, fed = ctx.reserve(base), ctx.reserve(base + "_delay"), ctx.reserve(base + "_recurrent")
    total = ctx.add(base + "_sum", P.Add(), ctx.tensor(x), fed)
    out = ctx.add(name, m.neuron.to_ir(), total, name=name)
    ctx.add(delayed, P.Delay(steps=m.delay), out, name=delayed)
    w = m.recurrent.weight.detach().cpu().double().numpy()
    b = m.recurrent.bias.detach().cpu().double().numpy() if m.recurrent.bias is not None else None
    ctx.add(fed, P.Dense(weight=np.ascontiguousarray(w), bias=b), delayed, name=fed)
    return out


def time_distributed(ctx: Context, m: nn.Module, x: Any) -> Any:
    lead = ctx.lead
    ctx.lead = 1  # the inner layer sees one step (time folded into the batch)
    try:
        return ctx.convert_module(m.module, f"{ctx.path}.module" if ctx.path else "module", x)
    finally:
        ctx.lead = lead


def _multi(m: nn.Module) -> str:
    return "multi"


def graph_hints(model: nn.Module) -> dict[str, Any]:
    for m in model.modules():
        if isinstance(m, M.NeuronModule) and m.timed:
            return {"dt": m.dt, "scheme": m.scheme}
    return {}


def check_model(ctx: Context, model: nn.Module, graph: Graph) -> None:
    """Every timed n3ml.nn module must use the graph's dt and scheme (their tau are in ms at that dt)."""
    for path, m in model.named_modules():
        if isinstance(m, M.NeuronModule) and m.timed and (m.dt != graph.dt or m.scheme != graph.scheme):
            raise UnsupportedError(f"module `{path}` ({type(m).__name__}) has dt={m.dt:g} ms, scheme={m.scheme}, "
                                   f"but the graph has dt={graph.dt:g} ms, scheme={graph.scheme}; all n3ml.nn "
                                   "modules of one model must share dt and scheme (and --dt/--scheme must match)")


MODULES: dict[type, Entry] = {
    M.NeuronModule: Entry(neuron, _multi, subclasses=True),  # every module implements to_ir()
    M.EncoderModule: Entry(neuron, _multi, subclasses=True),
    M.TimeDistributed: Entry(time_distributed),
    M.Recurrent: Entry(recurrent, _multi),
}
