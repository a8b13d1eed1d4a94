"""SpikingJelly neurons inside torch.export programs (.pt2): one custom operator per neuron call.

SpikingJelly 2 runs IFNode, LIFNode and ParametricLIFNode (torch backend, both step modes)
through its own operators ``torch.ops.sj_if/sj_lif/sj_plif.forward(x_seq, v, <settings>)``,
which torch.export keeps whole: the settings the fx path reads from the module (`v_threshold`,
`v_reset`, `tau`, `decay_input`, `detach_reset`, PLIF's `w`) are the operator's arguments. A
single-step module feeds ``x.unsqueeze(0)`` and takes ``spikes.select(0, 0)``; a multi-step one
feeds the whole (T, B, ...) sequence. The module is rebuilt from these and converted by
`lib_spikingjelly`, as in the fx path.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import fx, nn


NAMESPACES = ("sj_if", "sj_lif", "sj_plif")


def register_ops() -> None:
    """Make SpikingJelly's operators known to torch before a program that uses them is loaded."""
    try:
        import spikingjelly._ops.if_  # noqa: F401
        import spikingjelly._ops.lif  # noqa: F401
        import spikingjelly._ops.plif  # noqa: F401
    except Exception:  # SpikingJelly absent or of another version: its programs are refused when read
        pass


def _bind(node: fx.Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, a in enumerate(node.target._schema.arguments):
        if i < len(node.args):
            out[a.name] = node.args[i]
        elif a.name in node.kwargs:
            out[a.name] = node.kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _full_value(node: Any) -> float | None:
    """The fill value of ``full_like(x, value)`` / ``zeros_like(x)`` (SpikingJelly's initial membrane)."""
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return None
    if node.target is torch.ops.aten.full_like.default:
        return float(node.args[1])
    if node.target is torch.ops.aten.zeros_like.default:
        return 0.0
    return None


def _surrogate(a: dict[str, Any], view: Any, op: Any) -> nn.Module:
    """The surrogate module the operator's (surrogate_id, alpha) name (SpikingJelly's own id table)."""
    from spikingjelly._ops.surrogate import _SURROGATE_IDS
    from spikingjelly.activation_based import surrogate

    names = {i: name for name, i in _SURROGATE_IDS.items()}
    sid = int(a.get("surrogate_id", 0))
    if sid not in names:
        raise view.refuse(f"surrogate_id {sid}", ", ".join(f"{i} ({n})" for i, n in sorted(names.items())), node=op)
    return getattr(surrogate, names[sid])(alpha=float(a["alpha"]))


def rebuild(klass: type, view: Any) -> Iterator[nn.Module]:
    from spikingjelly.activation_based import neuron

    ops = [n for n in view.region.nodes if n.op == "call_function"
           and getattr(n.target, "namespace", None) in NAMESPACES]
    if len(ops) != 1:
        raise view.refuse(f"{len(ops)} SpikingJelly neuron operators ({', '.join(NAMESPACES)}) in one call",
                          "one sj_*.forward operator per neuron module call")
    op = ops[0]
    a = _bind(op)
    x = a["x"]
    single = isinstance(x, fx.Node) and x.target is torch.ops.aten.unsqueeze.default and x.args[1:] == (0,)
    v0, expected = _full_value(a["v"]), 0.0 if a["reset"] is None else float(a["reset"])
    if v0 != expected:
        raise view.refuse(f"the membrane starts from {a['v']} (not v_reset = {expected:g})",
                          "the neuron's own initial state (functional.reset_net before the export)", node=op)
    common = dict(v_threshold=float(a["threshold"]), v_reset=None if a["reset"] is None else float(a["reset"]),
                  detach_reset=bool(a["detach_reset"]), step_mode="s" if single else "m",
                  surrogate_function=_surrogate(a, view, op))
    ns = op.target.namespace
    if ns == "sj_if":
        m: nn.Module = neuron.IFNode(**common)
    elif ns == "sj_lif":
        m = neuron.LIFNode(tau=float(a["tau"]), decay_input=bool(a["decay_input"]), **common)
    else:
        w = view.value(a["w"])
        m = neuron.ParametricLIFNode(decay_input=bool(a["decay_input"]), **common)
        with torch.no_grad():
            m.w.copy_(w)
    if type(m) is not klass:
        raise view.refuse(f"operator {op.target} inside a {klass.__name__}", f"{type(m).__name__}", node=op)
    view.region.multi = not single
    yield m


def rebuild_synapse_filter(klass: type, view: Any) -> Iterator[nn.Module]:
    """layer.SynapseFilter, which torch.export inlines: `out_i - (1 - x) * out_i * inv_tau + x` per step.

    A learnable filter's `w` is the module's parameter; a fixed one's 1/tau is the float constant of its
    multiplications (tau rebuilt so that SpikingJelly's `1. / tau` gives that constant back). Multi-step
    mode selects the steps of the region's input (`x_seq[t]`) inside the region."""
    from spikingjelly.activation_based import layer

    region = view.region
    multi = any(n.target is torch.ops.aten.select.int and n.args[0] is region.input and n.args[1] == 0
                for n in region.nodes)
    mode = "m" if multi else "s"
    if "w" in view.attrs:
        m = layer.SynapseFilter(tau=2.0, learnable=True, step_mode=mode)
        with torch.no_grad():
            m.w.copy_(view.attrs["w"])
        candidates = [m]
    else:
        inv = {float(a) for n in region.nodes if n.target is torch.ops.aten.mul.Tensor
               for a in n.args if isinstance(a, float) and 0.0 < a < 1.0}
        candidates = []
        for c in sorted(inv):
            tau = 1.0 / c
            for t in (tau, math.nextafter(tau, 0.0), math.nextafter(tau, math.inf)):
                if t > 1.0 and 1.0 / t == c:
                    candidates.append(layer.SynapseFilter(tau=t, step_mode=mode))
                    break
        if not candidates:
            raise view.refuse("no constant 1/tau in its multiplications", "a SynapseFilter's update")
    region.multi = multi
    yield from candidates


def reset(module: nn.Module) -> None:
    from spikingjelly.activation_based import functional

    functional.reset_net(module)


_CLS = "spikingjelly.activation_based.neuron."
REBUILD = {_CLS + "integrate_and_fire.IFNode": rebuild, _CLS + "lif.LIFNode": rebuild,
           _CLS + "plif.ParametricLIFNode": rebuild}
REBUILD["spikingjelly.activation_based.layer.misc.SynapseFilter"] = rebuild_synapse_filter
RESET = {k: reset for k in REBUILD}

