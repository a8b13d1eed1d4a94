"""Neurons of other libraries inside torch.export programs (.pt2).

torch.export inlines an snnTorch neuron into a dozen ATen operations (state initialisation by
`aten.zeros_like`, the reset, the threshold test, ...), but it keeps, on every operation, the
module it came from (`node.meta["nn_module_stack"]`: path and class) and the module's buffers
(`beta`, `threshold`, `reset_mechanism_val`, `graded_spikes_factor`). The operations of one
neuron module form a *region*; the region's module is rebuilt from its class and buffers,
checked against the region's own ATen computation on a random input (so a setting the buffers
do not carry, like `inhibition`, is caught), and converted by the library's table entry, as in
the fx path. A program exports one step of a per-step model: its neurons are converted with
their state carried from step to step (what the model computes when called step after step).

Libraries whose neuron settings are plain Python numbers (SpikingJelly's `v_threshold`, Norse's
parameter tuples) are folded into the ATen constants and cannot be rebuilt this way: their
regions are refused by name, with the state_dict route as the rewrite.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import fx, nn

from ...errors import UnsupportedError
from .vocab import Context, State, Tensor


@dataclass
class Region:
    path: str
    cls_name: str
    nodes: list[fx.Node]
    input: fx.Node
    output: fx.Node
    module: nn.Module | None = None


def _rebuild_snntorch(cls: type, attrs: dict[str, torch.Tensor]) -> nn.Module:
    import snntorch as snn

    mech = ["subtract", "zero", "none"][int(attrs["reset_mechanism_val"])]
    common = dict(threshold=attrs["threshold"].clone(), reset_mechanism=mech, init_hidden=True)
    if cls is snn.Leaky:
        m = snn.Leaky(beta=attrs["beta"].clone(), **common)
    elif cls is snn.Synaptic:
        m = snn.Synaptic(alpha=attrs["alpha"].clone(), beta=attrs["beta"].clone(), **common)
    else:
        raise KeyError(cls.__name__)
    with torch.no_grad():
        m.graded_spikes_factor = attrs["graded_spikes_factor"].clone()
    return m


# class path -> rebuild(class, {buffer name: tensor}) -> module
REBUILD: dict[str, Callable[[type, dict[str, torch.Tensor]], nn.Module]] = {
    "snntorch._neurons.leaky.Leaky": _rebuild_snntorch,
    "snntorch._neurons.synaptic.Synaptic": _rebuild_snntorch,
}

_PEERS = ("snntorch", "norse", "spikingjelly")


def _owner(node: fx.Node) -> tuple[str, str] | None:
    """(path, class path) of the innermost peer-library module an operation came from."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, cls in reversed(list(stack.values())):
        name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        if name.split(".")[0] in _PEERS:
            return str(path), name
    return None


def find_regions(gm: fx.GraphModule, where: str) -> dict[fx.Node, Region]:
    """The ATen operations of each peer neuron module, with its one input and one output."""
    groups: dict[str, tuple[str, list[fx.Node]]] = {}
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        o = _owner(n)
        if o is not None:
            groups.setdefault(o[0], (o[1], []))[1].append(n)
    regions: dict[fx.Node, Region] = {}
    for path, (cls_name, nodes) in groups.items():
        inside = set(nodes)
        ins = {a for n in nodes for a in n.all_input_nodes if a not in inside and a.op != "get_attr"}
        outs = [n for n in nodes if any(u not in inside for u in n.users)]
        if cls_name not in REBUILD:
            raise UnsupportedError(
                f"{where}: module `{path}` ({cls_name}) was inlined by torch.export into ATen operations and its "
                f"settings are not all in the program; n3ml rebuilds {', '.join(sorted(REBUILD))} from .pt2 "
                "programs. Convert this model from its state_dict with --model package.module:Class instead")
        if len(ins) != 1 or len(outs) != 1:
            raise UnsupportedError(f"{where}: module `{path}` ({cls_name}) takes {len(ins)} inputs and gives "
                                   f"{len(outs)} outputs in the program; n3ml reads a neuron with one input and "
                                   "one output (spikes)")
        region = Region(path, cls_name, nodes, ins.pop(), outs[0])
        region.module = _rebuilt(gm, region, where)
        for n in nodes:
            regions[n] = region
    return regions


def _rebuilt(gm: fx.GraphModule, r: Region, where: str) -> nn.Module:
    mod_name, _, cls = r.cls_name.rpartition(".")
    klass = getattr(importlib.import_module(mod_name), cls)
    prefix = r.path + "."
    attrs = {}
    for n in gm.graph.nodes:
        if n.op == "get_attr" and str(n.target).startswith(prefix):
            attrs[str(n.target)[len(prefix):]] = _attr(gm, str(n.target))
    try:
        module = REBUILD[r.cls_name](klass, attrs)
    except KeyError as e:
        raise UnsupportedError(f"{where}: module `{r.path}` ({r.cls_name}): the program lacks its buffer {e}") \
            from None
    _check_against_program(gm, r, module, where)
    return module


def _attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj.detach()


def _check_against_program(gm: fx.GraphModule, r: Region, module: nn.Module, where: str) -> None:
    """Run the program and the rebuilt module on the same region input: their spikes must be equal."""
    seen: dict[fx.Node, Any] = {}

    class Probe(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n in (r.input, r.output):
                seen[n] = out
            return out

    ph = next(n for n in gm.graph.nodes if n.op == "placeholder")
    val = ph.meta.get("val")
    if val is None:
        return
    g = torch.Generator().manual_seed(0)
    x = torch.rand(tuple(int(d) for d in val.shape), generator=g, dtype=val.dtype) * 4.0 - 1.0
    with torch.no_grad():
        Probe(gm).run(x)
        got = module(seen[r.input])
    got = got[0] if isinstance(got, tuple) else got
    if not torch.equal(got.to(seen[r.output].dtype), seen[r.output]):
        raise UnsupportedError(f"{where}: module `{r.path}` ({r.cls_name}) rebuilt from the program's buffers does "
                               "not compute what the program computes (a setting outside its buffers, e.g. "
                               "inhibition or reset_delay, differs); convert it from its state_dict with --model")


def call(ctx: Context, node: fx.Node, regions: dict[fx.Node, Region], results: dict[fx.Node, Any],
         inner: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Convert `node`: a region's output becomes the library converter's result; other region nodes vanish."""
    r = regions.get(node)
    if r is None:
        out = inner(ctx, node, args, kwargs)
    elif node is r.output:
        x = results[r.input]
        outer = ctx.lead
        ctx.lead = 1
        try:
            out = ctx.convert_module(r.module, r.path, x)
        finally:
            ctx.lead = outer
        out = out[0] if isinstance(out, tuple) else out
    else:
        out = State(r.path, "internal")
    results[node] = out
    return out


def record_input(results: dict[fx.Node, Any], node: fx.Node, value: Any) -> None:
    if isinstance(value, Tensor):
        results[node] = value
