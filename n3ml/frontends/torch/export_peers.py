"""Neurons of other libraries inside torch.export programs (.pt2).

torch.export inlines a neuron module of snnTorch, Norse or SpikingJelly into ATen operations
(or, for SpikingJelly 2, one custom operator per call), but it keeps, on every operation, the
module it came from (`node.meta["nn_module_stack"]`: path and class). The operations of one
neuron module form a *region*. The region's module is rebuilt as a real module of its library,
from what the program holds: snnTorch's buffers (`export_peers`), Norse's inlined Euler step
(`export_norse`), SpikingJelly's operator arguments (`export_spikingjelly`). A rebuilder may
offer several candidates; the one kept computes, on the program's own inputs at several input
scales, exactly every value the region hands out (spikes and states), so a setting the
rebuild missed is caught rather than converted wrongly. The module is then converted by the
library's table entry, as in the fx path.

A program exports one step of a per-step model (or one sequence, for a multi-step module):
its neurons are converted with their state carried from step to step, and a state the
module returns (Norse's `(z, state)`) is dropped from the outputs, as in the fx path.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree

from ...errors import UnsupportedError
from . import export_loops, export_norse, export_spikingjelly
from .export_loops import source_line
from .vocab import Context, State, Tensor


@dataclass
class Region:
    path: str
    cls_name: str
    nodes: list[fx.Node]
    input: fx.Node
    outputs: list[fx.Node]
    module: nn.Module | None = None
    output: fx.Node | None = None  # the spikes (or an LI's voltage); the other outputs are states
    multi: bool = False  # the module runs a whole (T, B, ...) sequence per call


@dataclass
class View:
    """What a rebuilder reads of one region: its nodes, the module's buffers, its constant values."""

    gm: fx.GraphModule
    region: Region
    attrs: dict[str, torch.Tensor]
    consts: dict[fx.Node, Any] = field(default_factory=dict)
    where: str = ""

    def value(self, a: Any) -> Any:
        return self.consts.get(a, a) if isinstance(a, fx.Node) else a

    def refuse(self, what: str, expected: str, node: fx.Node | None = None) -> UnsupportedError:
        at = f" at operation `{node.name}` ({node.target}){source_line(node)}" if node is not None else ""
        return UnsupportedError(f"{self.where}: module `{self.region.path}` ({self.region.cls_name}){at}: {what}; "
                                f"expected {expected}")


def _rebuild_snntorch(cls: type, view: View) -> Iterable[nn.Module]:
    import snntorch as snn

    attrs = view.attrs
    try:
        mech = ["subtract", "zero", "none"][int(attrs["reset_mechanism_val"])]
        common = dict(threshold=attrs["threshold"].clone(), reset_mechanism=mech, init_hidden=True)
        if cls is snn.Leaky:
            m = snn.Leaky(beta=attrs["beta"].clone(), **common)
        elif cls is snn.Synaptic:
            m = snn.Synaptic(alpha=attrs["alpha"].clone(), beta=attrs["beta"].clone(), **common)
        else:
            raise view.refuse("no rebuild", "Leaky or Synaptic")
        with torch.no_grad():
            m.graded_spikes_factor = attrs["graded_spikes_factor"].clone()
    except KeyError as e:
        raise view.refuse(f"the program lacks its buffer {e}", "the module's registered buffers") from None
    yield m


def _rebuild_recurrent_snntorch(cls: type, view: View) -> Iterable[nn.Module]:
    """RLeaky/RSynaptic: the buffers as for Leaky, plus the recurrent connection's own parameters."""
    import snntorch as snn

    attrs = view.attrs
    try:
        mech = ["subtract", "zero", "none"][int(attrs["reset_mechanism_val"])]
        w = attrs.get("recurrent.weight")
        if w is not None and w.ndim == 2:
            rec: dict[str, Any] = dict(all_to_all=True, linear_features=int(w.shape[0]))
        elif w is not None and w.ndim == 4:
            rec = dict(all_to_all=True, conv2d_channels=int(w.shape[0]), kernel_size=int(w.shape[-1]))
        else:
            rec = dict(all_to_all=False, V=attrs["recurrent.V"].clone() if "recurrent.V" in attrs else
                       attrs["V"].clone())
        common = dict(threshold=attrs["threshold"].clone(), reset_mechanism=mech, init_hidden=True, **rec)
        if cls is snn.RLeaky:
            m = snn.RLeaky(beta=attrs["beta"].clone(), **common)
        else:
            m = snn.RSynaptic(alpha=attrs["alpha"].clone(), beta=attrs["beta"].clone(), **common)
        with torch.no_grad():
            m.graded_spikes_factor = attrs["graded_spikes_factor"].clone()
            for name, p in m.recurrent.named_parameters():
                if "recurrent." + name in attrs:
                    p.copy_(attrs["recurrent." + name])
    except KeyError as e:
        raise view.refuse(f"the program lacks its buffer {e}", "the module's registered buffers and parameters") \
            from None
    yield m


# class path -> rebuild(class, View) -> candidate modules (first that computes what the program computes wins)
REBUILD: dict[str, Callable[[type, View], Iterable[nn.Module]]] = {
    "snntorch._neurons.leaky.Leaky": _rebuild_snntorch,
    "snntorch._neurons.synaptic.Synaptic": _rebuild_snntorch,
    "snntorch._neurons.rleaky.RLeaky": _rebuild_recurrent_snntorch,
    "snntorch._neurons.rsynaptic.RSynaptic": _rebuild_recurrent_snntorch,
    **export_norse.REBUILD,
    **export_spikingjelly.REBUILD,
}
# class path -> reset(module) before a fresh run (modules whose state outlives a call)
RESET: dict[str, Callable[[nn.Module], None]] = {**export_spikingjelly.RESET}

_PEERS = ("snntorch", "norse", "spikingjelly")
# each library's neuron base classes (its lib_* OPAQUE): a module of these has state, so its operations are a region
_NEURON_BASES = {"snntorch": "lib_snntorch", "norse": "lib_norse", "spikingjelly": "lib_spikingjelly"}


def _class(name: str) -> type | None:
    mod, _, cls = name.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), cls)
    except Exception:
        return None


def _is_neuron(name: str) -> bool:
    """A neuron of a peer (its operations form a region), not a stateless layer or container of it."""
    if name in REBUILD:
        return True
    klass = _class(name)
    if klass is None:
        return True  # a class that cannot be imported cannot be checked: refuse it by name
    try:
        lib = importlib.import_module(f"{__package__}.{_NEURON_BASES[name.split('.')[0]]}")
    except Exception:
        return True
    return issubclass(klass, lib.OPAQUE)


def _owner(node: fx.Node, neurons: dict[str, bool]) -> tuple[str, str] | None:
    """(path, class path) of the innermost peer-library neuron module an operation came from."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, cls in reversed(list(stack.values())):
        name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        if name.split(".")[0] in _PEERS:
            if name not in neurons:
                neurons[name] = _is_neuron(name)
            if neurons[name]:
                return str(path), name
    return None


def find_regions(gm: fx.GraphModule, where: str) -> tuple[dict[fx.Node, Region], export_loops.Loop | None]:
    """The ATen operations of each peer neuron module, with its one input, rebuilt as a module of its library.

    A module called once per step of an unrolled time loop has one region per call; the program is then
    folded to its first step (`export_loops`) and the regions of that step are returned with the loop.
    """
    groups: dict[str, tuple[str, dict[int, list[fx.Node]]]] = {}
    neurons: dict[str, bool] = {}
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        o = _owner(n, neurons)
        if o is not None:
            k = export_loops.call_index(n) or 0
            groups.setdefault(o[0], (o[1], {}))[1].setdefault(k, []).append(n)
    varying = _input_dependent(gm)
    found: list[list[Region]] = []
    for path, (cls_name, by_call) in groups.items():
        if cls_name not in REBUILD:
            first = next(iter(by_call.values()))[0]
            raise UnsupportedError(
                f"{where}: module `{path}` ({cls_name}) was inlined by torch.export into ATen operations "
                f"(first: `{first.name}` {first.target}{source_line(first)}) and n3ml cannot read its settings back; "
                f"n3ml rebuilds {', '.join(sorted(c.rsplit('.', 1)[-1] for c in REBUILD))} from .pt2 programs. "
                "Convert this model from its state_dict with --model package.module:Class instead")
        every = {n for ns in by_call.values() for n in ns}
        calls = []
        for k in sorted(by_call):
            nodes = by_call[k]
            inside = set(nodes)
            # constants computed elsewhere (export shares equal lifted tensors between modules) are not inputs,
            # and the state handed over from the module's previous call is its own
            ins = list(dict.fromkeys(a for n in nodes for a in n.all_input_nodes
                                     if a not in inside and a in varying and a not in every))
            outs = [n for n in nodes if n in varying and any(u not in inside for u in n.users)]
            if len(ins) != 1 or not outs:
                raise UnsupportedError(
                    f"{where}: module `{path}` ({cls_name}) call {k} takes {len(ins)} inputs "
                    f"({', '.join(a.name for a in ins[:4])}) and gives {len(outs)} outputs in the program; n3ml "
                    "reads a neuron module call on one input (its state apart)")
            calls.append(Region(path, cls_name, nodes, ins[0], outs))
        found.append(calls)
    if not found:
        return {}, None
    runs = _probe(gm, [r for calls in found for r in calls])
    consts = _consts(gm, varying)
    for calls in found:
        _rebuild(gm, calls, runs, consts, where)
    loop = None
    if any(len(calls) > 1 for calls in found):
        loop = export_loops.fold(gm, where, varying, {c[0].path: [r.nodes for r in c] for c in found})
    regions: dict[fx.Node, Region] = {}
    for calls in found:
        for n in calls[0].nodes:
            regions[n] = calls[0]
    return regions, loop


def _attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj.detach() if isinstance(obj, torch.Tensor) else obj


def _input_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    varying: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder" or any(a in varying for a in n.all_input_nodes):
            varying.add(n)
    return varying


def _consts(gm: fx.GraphModule, varying: set[fx.Node]) -> dict[fx.Node, Any]:
    """Values of the operations that do not depend on the input (parameters, dt products, 0-d numbers)."""
    consts: dict[fx.Node, Any] = {}
    for n in gm.graph.nodes:
        if n in varying or n.op not in ("get_attr", "call_function"):
            continue
        if n.op == "get_attr":
            consts[n] = _attr(gm, str(n.target))
        elif all(a in consts for a in n.all_input_nodes):
            try:
                with torch.no_grad():
                    consts[n] = n.target(*fx.node.map_arg(n.args, lambda a: consts[a]),
                                         **fx.node.map_arg(n.kwargs, lambda a: consts[a]))
            except Exception:  # an operation that needs a runtime (assertions, ...): not a constant
                pass
    return consts


_SCALES = (1.0, 8.0, 64.0)


def _probe(gm: fx.GraphModule, regions: list[Region]) -> list[dict[fx.Node, Any]]:
    """Run the program on random input at a few scales, keeping each region's input and output values."""
    keep = {n for r in regions for n in (r.input, *r.outputs)}
    ph = next(n for n in gm.graph.nodes if n.op == "placeholder")
    val = ph.meta.get("val")
    if val is None:
        return []
    runs = []
    for scale in _SCALES:
        seen: dict[fx.Node, Any] = {}

        class Probe(fx.Interpreter):
            def run_node(self, n):
                out = super().run_node(n)
                if n in keep:
                    seen[n] = out
                return out

        g = torch.Generator().manual_seed(0)
        x = (torch.rand(tuple(int(d) for d in val.shape), generator=g, dtype=val.dtype) * 4.0 - 1.0) * scale
        with torch.no_grad():
            Probe(gm).run(x)
        runs.append(seen)
    return runs


def _matches(calls: list[Region], module: nn.Module, runs: list[dict[fx.Node, Any]]) -> tuple[list, int] | None:
    """(spike output node of each call, how many other outputs it also gives) if `module`, called once per
    call of the region in turn, gives the region's spikes at every call on every run; else None."""
    spikes: list[fx.Node | None] = [None] * len(calls)
    extra = 0
    for seen in runs:
        m = copy.deepcopy(module)
        if calls[0].cls_name in RESET:
            RESET[calls[0].cls_name](m)
        state = None
        for k, r in enumerate(calls):
            try:
                with torch.no_grad():
                    if r.cls_name.startswith("norse."):  # Norse hands its state back: (z, state) = cell(x, state)
                        out = m(seen[r.input], state)
                        state = out[1]
                    else:  # snnTorch (init_hidden) and SpikingJelly keep it in the module
                        out = m(seen[r.input])
                    leaves = [v for v in pytree.tree_leaves(out) if isinstance(v, torch.Tensor)]
            except Exception:
                return None
            for o in r.outputs:
                want = seen[o]
                hits = [j for j, v in enumerate(leaves) if isinstance(want, torch.Tensor) and v.shape == want.shape
                        and torch.equal(v.to(want.dtype), want)]
                if 0 in hits:
                    spikes[k] = spikes[k] or o
                elif hits:
                    extra += 1
            if spikes[k] is None or not any(torch.equal(seen[spikes[k]], v.to(seen[spikes[k]].dtype))
                                            for v in leaves[:1]):
                return None
    return spikes, extra


def _rebuild(gm: fx.GraphModule, calls: list[Region], runs: list[dict[fx.Node, Any]], consts: dict[fx.Node, Any],
             where: str) -> None:
    r = calls[0]
    klass = _class(r.cls_name)
    prefix = r.path + "."
    attrs = {str(n.target)[len(prefix):]: _attr(gm, str(n.target)) for n in gm.graph.nodes
             if n.op == "get_attr" and str(n.target).startswith(prefix)}
    view = View(gm, r, attrs, consts, where)
    tried, best = 0, None
    full = sum(len(c.outputs) - 1 for c in calls) * len(runs)
    for module in REBUILD[r.cls_name](klass, view):
        tried += 1
        if not runs:
            best = (module, [c.outputs[0] for c in calls], 0)
            break
        got = _matches(calls, module.eval(), runs)
        if got is not None and (best is None or got[1] > best[2]):
            best = (module, got[0], got[1])
            if got[1] >= full:  # every state matches too: no other candidate can do better
                break
    if best is None:
        raise UnsupportedError(
            f"{where}: module `{r.path}` ({r.cls_name}): none of the {tried} {r.cls_name.rsplit('.', 1)[-1]} "
            "modules rebuilt from the program computes what the program computes (a setting outside what the "
            "program records, e.g. inhibition, reset_delay or a changed step function, differs); convert it "
            "from its state_dict with --model package.module:Class instead")
    later = {n for c in calls[1:] for n in c.nodes}
    for c, spikes in zip(calls, best[1]):
        c.module, c.output, c.multi = best[0], spikes, r.multi
        for o in c.outputs:
            if o is spikes:
                continue
            users = [u for u in o.users if u not in set(c.nodes) and u not in later and u.op != "output"
                     and not _state_record(u)]
            if users:
                u = users[0]
                raise UnsupportedError(
                    f"{where}: module `{r.path}` ({r.cls_name}): its internal state `{o.name}` is used by operation "
                    f"`{u.name}` ({u.target}){source_line(u)}; the IR's neurons give only their spikes (or an LI's "
                    "voltage). Use the module's first output instead")


def _state_record(n: fx.Node) -> bool:
    """torch.stack of states that the model only returns (snnTorch's mem_rec): dropped like the states."""
    return n.target is torch.ops.aten.stack.default and all(u.op == "output" for u in n.users)


def call(ctx: Context, node: fx.Node, regions: dict[fx.Node, Region], results: dict[fx.Node, Any],
         inner: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Convert `node`: a region's output becomes the library converter's result; other region nodes vanish."""
    r = regions.get(node)
    if r is None and node.users and all(u in regions for u in node.users) and not any(
            isinstance(a, Tensor) for a in pytree.tree_leaves((args, kwargs))):
        out = State("(program)", "initial state")  # a neuron's initial state (snnTorch's init_leaky())
    elif r is None:
        out = inner(ctx, node, args, kwargs)
    elif node is r.output:
        x = results[r.input]
        outer = ctx.lead
        if not r.multi:
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


def is_multi_step(regions: dict[fx.Node, Region]) -> bool:
    """Whether the program's input is a (T, B, ...) sequence: its neuron modules run whole sequences."""
    modes = {r.multi for r in regions.values()}
    return modes == {True}


def graph_hints(regions: dict[fx.Node, Region]) -> dict[str, Any]:
    """dt/scheme the rebuilt modules' library declares (Norse's dt in seconds), as the fx path reads them."""
    modules = nn.ModuleList({id(r.module): r.module for r in regions.values()}.values())
    for name in {r.cls_name.split(".")[0] for r in regions.values()}:
        lib = importlib.import_module(f"{__package__}.{_NEURON_BASES[name]}")
        hints = getattr(lib, "graph_hints", None)
        if hints is not None:
            found = hints(modules)
            if found:
                return found
    return {}


def record_input(results: dict[fx.Node, Any], node: fx.Node, value: Any) -> None:
    if isinstance(value, Tensor):
        results[node] = value
