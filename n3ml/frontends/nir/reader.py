"""Read a NIR graph (nir.NIRGraph, NIR 1.0.x) into an n3ml IR graph under one reader convention.

Steps: flatten nested NIRGraphs into one set of named nodes and edges; give every node an IR name; find
the cycles and close each with a one-step Delay on the edge that leaves its neuron (NIR has no delay in
a recurrent loop: every reader feeds the previous step's spikes back, so the recurrent synapse, bias
included, acts from step 0 on the previous step's spikes, as snnTorch's RLeaky does); sum the inputs of
a node fed by several edges through an Add; map each node through `STATELESS` or the convention's neuron
readers (conventions.py). The result is verified.
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
from .conventions import MS_PER_S, Convention, Ctx, is_close_int, param

log = logging.getLogger(__name__)

NEURON_TYPES = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI")
SPIKING = ("LIF", "IF", "CubaLIF", "Threshold")
TORCH_AXES = ("snntorch", "norse")  # readers whose Flatten axes count the batch (torch.nn.Flatten)
RESETTING = ("LIF", "IF", "CubaLIF")  # the neurons whose reset rule changed in NIR 1.0.5
LITERAL = ("exact", "euler")  # conventions that follow the file's own NIR version for the reset


@dataclass(frozen=True)
class FileFacts:
    """What the HDF5 file says beyond what nir.read returns: the writer's NIR version and which nodes store
    v_reset (nir.read fills a missing v_reset with zeros, hiding the 2025 reset change)."""

    version: str | None = None
    with_v_reset: frozenset[str] = frozenset()
    from_file: bool = False
    path: str = "the NIR graph"


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    if not v:
        return None
    nums = re.findall(r"\d+", v)
    return tuple(int(x) for x in nums[:3]) if nums else None


@dataclass
class _Flat:
    nodes: dict[str, Any] = field(default_factory=dict)  # NIR path ("sub.lif") -> node
    edges: list[tuple[str, str]] = field(default_factory=list)


def _flatten(g: Any, prefix: str, flat: _Flat) -> tuple[list[str], list[str]]:
    """Add g's nodes (nested graphs inlined) to flat; return the paths of its Input and Output nodes."""
    import nir

    ins, outs = [], []
    ports: dict[str, tuple[list[str], list[str]]] = {}  # subgraph name -> its (inputs, outputs)
    for name, node in g.nodes.items():
        path = prefix + name
        if isinstance(node, nir.NIRGraph):
            ports[name] = _flatten(node, path + ".", flat)
            continue
        flat.nodes[path] = node
        if isinstance(node, nir.Input):
            ins.append(path)
        elif isinstance(node, nir.Output):
            outs.append(path)

    def ends(ref: str, side: int) -> list[str]:
        if ref in ports:
            return ports[ref][side]
        head, dot, tail = ref.partition(".")
        if dot and head in ports:  # "sub.input" names a port of a nested graph
            return [prefix + ref]
        if ref not in g.nodes:
            raise N3mlError(f"NIR graph{' ' + prefix[:-1] if prefix else ''}: edge names unknown node `{ref}`")
        return [prefix + ref]

    for src, dst in g.edges:
        for s in ends(src, 1):
            for d in ends(dst, 0):
                flat.edges.append((s, d))
    return ins, outs


def _bypass(flat: _Flat, keep: set[str]) -> None:
    """Remove nested Input/Output and Identity nodes, joining their edges."""
    import nir

    for path, node in list(flat.nodes.items()):
        inner = isinstance(node, (nir.Input, nir.Output)) and path not in keep
        if not (inner or type(node).__name__ == "Identity"):
            continue
        srcs = [s for s, d in flat.edges if d == path]
        dsts = [d for s, d in flat.edges if s == path]
        flat.edges = [e for e in flat.edges if path not in e] + [(s, d) for s in srcs for d in dsts]
        del flat.nodes[path]


# the per-sample rank each synapse takes (its weight says so)
_RANK = {"Affine": 1, "Linear": 1, "Conv1d": 2, "Conv2d": 3}


def _drop_batch_axis(flat: _Flat) -> None:
    """Exporters that trace with a sample batch (Norse's to_nir, snnTorch's without ignore_dims) write the
    Input's shape with a leading batch axis of 1; drop it when the synapses it feeds say so."""
    import nir

    for path, node in flat.nodes.items():
        if not isinstance(node, nir.Input):
            continue
        shape = [int(d) for d in np.asarray(node.input_type["input"]).ravel()]
        ranks = {_RANK.get(type(flat.nodes[d]).__name__) for s, d in flat.edges if s == path}
        if len(shape) >= 2 and shape[0] == 1 and ranks == {len(shape) - 1}:
            log.warning("NIR Input `%s` has shape %s with a leading batch axis (as tracing exporters write it); "
                        "reading it as %s", path, tuple(shape), tuple(shape[1:]))
            node.input_type = {"input": np.asarray(shape[1:])}


def _ir_names(paths: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9_]", "_", p) or "node"
        if not re.match(r"[A-Za-z_]", base):
            base = "n" + base
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out[p] = name
    return out


def _order(flat: _Flat, inputs: list[str]) -> list[str]:
    """Depth-first order from the Inputs (nodes unreachable from them last): the order a graph executor runs
    the nodes in; an edge to a node that comes earlier closes a cycle."""
    succ: dict[str, list[str]] = {p: [] for p in flat.nodes}
    for s, d in flat.edges:
        succ[s].append(d)
    seen: set[str] = set()
    post: list[str] = []

    def visit(n: str) -> None:
        stack = [(n, iter(succ[n]))]
        seen.add(n)
        while stack:
            node, it = stack[-1]
            nxt = next((m for m in it if m not in seen), None)
            if nxt is None:
                post.append(node)
                stack.pop()
            else:
                seen.add(nxt)
                stack.append((nxt, iter(succ[nxt])))

    for n in inputs + list(flat.nodes):
        if n not in seen:
            visit(n)
    return post[::-1]


def _spyx_chain(flat: _Flat) -> None:
    """Spyx's reader builds a Sequential by following edges from the node named `input` to the one named
    `output` (spyx/nir.py `_order_edge_list`); anything else is not part of what it runs."""
    succ: dict[str, list[str]] = {}
    for s, d in flat.edges:
        succ.setdefault(s, []).append(d)
    node, seen = "input", []
    while node != "output":
        nxt = succ.get(node, [])
        if node not in flat.nodes or len(nxt) != 1 or node in seen:
            where = "has no `input` node" if node not in flat.nodes else f"branches or ends at `{node}`"
            raise UnsupportedError("Spyx's NIR reader runs only a chain of nodes from one named `input` to one "
                                   f"named `output`; this graph {where}")
        seen.append(node)
        node = nxt[0]
    extra = sorted(set(flat.nodes) - set(seen) - {"output"})
    if extra:
        raise UnsupportedError(f"Spyx's NIR reader would ignore node(s) {', '.join(extra)} (off the chain from "
                               "`input` to `output`)")


def _rockpool_graph(g: Any) -> Any:
    """The graph as Rockpool 3.1's reader runs it (rockpool/nn/modules/torch/nir.py): its modules take the whole
    sequence at once, so the only loop it runs is a nested NIRGraph of four nodes with a CubaLIF and an
    Affine/Linear, read as a recurrent LIFTorch whatever that graph's edges say (input -> lif -> w_rec -> lif ->
    output) and with the synapse's bias dropped (warned); any other nested graph or cycle is refused."""
    import networkx as nx
    import nir

    nodes: dict[str, Any] = {}
    for name, node in g.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        kinds = {type(v).__name__: k for k, v in node.nodes.items()}
        syn = kinds.get("Affine", kinds.get("Linear"))
        if len(node.nodes) != 4 or "CubaLIF" not in kinds or syn is None:
            raise UnsupportedError(f"node `{name}`: Rockpool's NIR reader reads a nested graph only as a recurrent "
                                   "layer of four nodes (Input, CubaLIF, Affine/Linear, Output); found "
                                   f"{sorted(type(v).__name__ for v in node.nodes.values())}")
        lif, w = node.nodes[kinds["CubaLIF"]], node.nodes[syn]
        if np.any(np.asarray(getattr(w, "bias", 0.0)) != 0):
            log.warning("node `%s.%s`: Rockpool's reader drops a recurrent synapse's bias; reading it so", name, syn)
        shape = {"input": np.asarray(np.asarray(lif.v_threshold).shape)}
        nodes[name] = nir.NIRGraph(
            nodes={"input": nir.Input(input_type=shape), "lif": lif, "w_rec": nir.Linear(weight=w.weight),
                   "output": nir.Output(output_type={"output": shape["input"]})},
            edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    top = nx.DiGraph(list(g.edges))
    cycles = [c for c in nx.simple_cycles(top)]
    if cycles:
        raise UnsupportedError(f"Rockpool's NIR reader runs every module over the whole sequence, so it cannot run "
                               f"the loop {' -> '.join(cycles[0])}; only a nested CubaLIF + Affine/Linear graph is "
                               "read as a recurrent layer")
    return nir.NIRGraph(nodes=nodes, edges=list(g.edges), type_check=False)


def _snntorch_rnn(flat: _Flat) -> None:
    """Rewire the recurrent layers as snnTorch's reader builds them (snntorch/import_nir.py,
    `_replace_rnn_subgraph_with_nirgraph`): a loop LIF/CubaLIF <-> Affine/Linear whose synapse has one
    input and one output becomes a subgraph with edges input -> w_rec -> lif -> w_rec, so the layer's
    input passes through the recurrent weights: v_t = beta v_{t-1} + W_rec (I_t + s_{t-1}) + b_rec."""
    es = set(flat.edges)
    for lif, w in sorted({(a, b) for a, b in es if (b, a) in es and a != b}):
        is_lif = type(flat.nodes[lif]).__name__ in ("LIF", "CubaLIF")
        is_w = type(flat.nodes[w]).__name__ in ("Affine", "Linear")
        if not (is_lif and is_w and sum(d == w for _, d in es) == 1 and sum(s == w for s, _ in es) == 1):
            continue
        log.warning("NIR loop `%s` <-> `%s`: snnTorch's reader feeds the layer's input through the recurrent "
                    "weights (input -> w_rec -> lif); reading it as snnTorch does", lif, w)
        flat.edges = [(s, w) if (d == lif and s != w) else (s, d) for s, d in flat.edges]
        es = set(flat.edges)


def _delay_edges(flat: _Flat, order: list[str], mode: str) -> set[tuple[str, str]]:
    """The edges that get a one-step Delay. "back-edge": each edge closing a cycle in execution order (where
    nirtorch's executor reads the previous step's cached output, absent at step 0). "neuron"/"snntorch":
    for each such edge, the edge leaving the neuron found walking back along the cycle through
    single-input stateless nodes (or the edge itself), so the recurrent synapse acts from step 0."""
    pos = {n: i for i, n in enumerate(order)}
    preds: dict[str, list[str]] = {p: [] for p in flat.nodes}
    for s, d in flat.edges:
        preds[d].append(s)
    out: set[tuple[str, str]] = set()
    for s, d in flat.edges:
        if pos[s] < pos[d]:
            continue
        if mode == "back-edge":
            out.add((s, d))
            continue
        edge, node = (s, d), s
        while type(flat.nodes[node]).__name__ not in NEURON_TYPES + ("Threshold",) and len(preds[node]) == 1:
            edge, node = (preds[node][0], node), preds[node][0]
        if type(flat.nodes[node]).__name__ not in NEURON_TYPES + ("Threshold",):
            edge = (s, d)
        out.add(edge)
    return out


# ------------------------------------------------------------------------- stateless node table

def _pair(x: Any, n: int = 2) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(x)).astype(np.int64).ravel()
    if a.size == 1:
        a = np.repeat(a, n)
    return tuple(int(v) for v in a[:n])


def _conv_padding(node: Any, nd: int) -> tuple[int, ...]:
    pad = node.padding
    if isinstance(pad, (str, bytes)):
        pad = pad.decode() if isinstance(pad, bytes) else pad
        if pad == "valid":
            return (0,) * nd
        k = np.asarray(node.weight.shape[2:])
        d = np.asarray(_pair(node.dilation, nd))
        eff = (k - 1) * d
        if np.any(eff % 2):
            raise UnsupportedError("padding 'same' with an even effective kernel pads unevenly")
        return tuple(int(v) for v in eff // 2)
    return _pair(pad, nd)


def _affine(n, ctx) -> P.Primitive:
    return P.Dense(weight=np.asarray(n.weight, np.float64), bias=np.asarray(n.bias, np.float64).ravel())


def _linear(n, ctx) -> P.Primitive:
    return P.Dense(weight=np.asarray(n.weight, np.float64))


def _conv1d(n, ctx) -> P.Primitive:
    return P.Conv1d(weight=np.asarray(n.weight, np.float64), bias=np.asarray(n.bias, np.float64).ravel(),
                    stride=_pair(n.stride, 1)[0], padding=_conv_padding(n, 1)[0], dilation=_pair(n.dilation, 1)[0],
                    groups=int(np.asarray(n.groups).ravel()[0]))


def _conv2d(n, ctx) -> P.Primitive:
    return P.Conv2d(weight=np.asarray(n.weight, np.float64), bias=np.asarray(n.bias, np.float64).ravel(),
                    stride=_pair(n.stride), padding=_conv_padding(n, 2), dilation=_pair(n.dilation),
                    groups=int(np.asarray(n.groups).ravel()[0]))


def _pool(cls):
    def read(n, ctx) -> P.Primitive:
        return cls(kernel=_pair(n.kernel_size), stride=_pair(n.stride), padding=_pair(n.padding))
    return read


def _sum_pool_norse(n, ctx) -> P.Primitive:
    if np.any(np.asarray(n.padding) != 0):
        log.warning("node `%s`: Norse reads SumPool2d as LPPool2d(1), which ignores padding %s", ctx.name,
                    _pair(n.padding))
    return P.SumPool2d(kernel=_pair(n.kernel_size), stride=_pair(n.stride))


def _flatten_node(n, ctx) -> P.Primitive:
    # NIR counts the axes per sample (nir's type inference, Sinabs); snnTorch and Norse pass start_dim and
    # end_dim to torch.nn.Flatten, where axis 0 is the batch
    offset = 1 if ctx.convention in TORCH_AXES else 0
    shape = (getattr(n, "input_type", None) or {}).get("input")
    rank = None if shape is None else np.asarray(shape).size
    start, end = int(n.start_dim) - offset, int(n.end_dim)
    end = end - offset if end >= 0 else (rank - 1 if rank else end)
    if start < 0 and offset:
        raise UnsupportedError(f"node `{ctx.name}`: {ctx.convention}'s reader hands start_dim={n.start_dim} to "
                               "torch.nn.Flatten, which would flatten the batch axis too (the library fails on "
                               "this file: 'mat1 and mat2 shapes cannot be multiplied')")
    if start > 0 or start < 0 or (rank is not None and end not in (-1, rank - 1)):
        raise UnsupportedError(f"node `{ctx.name}`: Flatten(start_dim={n.start_dim}, end_dim={n.end_dim}) read as "
                               f"{ctx.convention} does not flatten every per-sample axis; the IR's Flatten does")
    return P.Flatten()


def _scale(n, ctx) -> P.Primitive:
    return P.Scale(factor=param(n.scale))


def _delay(n, ctx) -> P.Primitive:
    d = np.unique(np.asarray(n.delay, np.float64))
    if d.size != 1:
        raise UnsupportedError(f"node `{ctx.name}`: the IR's Delay delays all neurons alike; found delays {d}")
    steps = float(d[0]) * MS_PER_S / ctx.dt_ms
    if not is_close_int(steps):
        raise UnsupportedError(f"node `{ctx.name}`: delay {d[0]:g} s is not a whole number of steps of "
                               f"{ctx.dt_ms:g} ms ({steps:g})")
    return P.Delay(steps=int(round(steps)))


def _threshold(n, ctx) -> P.Primitive:
    # z_t = [x_t > theta], no state: a LIF whose decay is exactly 0 and gain exactly 1 under either scheme
    tau = ctx.dt_ms if ctx.scheme == "euler" else ctx.dt_ms / 1000.0  # exp(-1000) is 0.0 in float64
    return P.LIF(tau=tau, theta=param(n.threshold), reset="none")


STATELESS: dict[str, Callable[[Any, Any], P.Primitive]] = {
    "Affine": _affine, "Linear": _linear, "Conv1d": _conv1d, "Conv2d": _conv2d,
    "SumPool2d": _pool(P.SumPool2d), "AvgPool2d": _pool(P.AvgPool2d), "Flatten": _flatten_node,
    "Scale": _scale, "Delay": _delay, "Threshold": _threshold,
}
# per-convention replacements of the stateless table (a library that reads a node differently)
def _channels_last(n, ctx) -> P.Primitive:
    raise UnsupportedError(f"node `{ctx.name}`: Spyx runs {type(n).__name__} channels-last (NHWC) and flattens in "
                           "HWC order; the IR's layers are channels-first, so n3ml does not read it as Spyx does")


OVERRIDES: dict[str, dict[str, Callable[[Any, Any], P.Primitive]]] = {
    "spyx": {"Conv2d": _channels_last, "SumPool2d": _channels_last},
    "norse": {"SumPool2d": _sum_pool_norse},
    "sinabs": {"SumPool2d": _sum_pool_norse},  # sl.SumPool2d(kernel, stride): padding dropped
}


@dataclass(frozen=True)
class _NodeCtx:
    name: str
    dt_ms: float
    scheme: str
    convention: str


# ----------------------------------------------------------------------------------- the reader


def _reset_reading(path: str, node: Any, conv: Convention, facts: FileFacts, warned: set[str]) -> tuple[Any, bool]:
    """The IR reset (mode, v_reset) that the file's NIR version gives the node, and whether v_reset is stored."""
    explicit = (path in facts.with_v_reset) or not facts.from_file
    v_reset = param(node.v_reset)
    if explicit:
        return ("to-value", v_reset), True
    ver = version_tuple(facts.version)
    if ver is not None and ver < (1, 0, 5):
        if conv.name in LITERAL and "old" not in warned:
            warned.add("old")
            log.warning("%s was written by NIR %s, before the 2025 reset change: its IF/LIF/CubaLIF store no "
                        "v_reset and reset by subtraction (v <- v - v_threshold); reading them so",
                        facts.path, facts.version)
        return ("subtract", 0.0), False
    if conv.name in LITERAL and "missing" not in warned:
        warned.add("missing")
        log.warning("%s (NIR version %s) stores no v_reset for `%s`: reading reset to 0 (NIR >= 1.0.5)",
                    facts.path, facts.version or "unknown", path)
    return ("to-value", 0.0), False


def read_graph(g: Any, conv: Convention, *, dt_ms: float, name: str = "main", facts: FileFacts | None = None,
               input_kind: str = "spike") -> Graph:
    """Convert an in-memory nir.NIRGraph into a verified IR graph under convention `conv`."""
    import nir

    facts = facts or FileFacts()
    if not isinstance(g, nir.NIRGraph):
        g = nir.NIRGraph(nodes={"input": nir.Input(g.input_type), "node": g, "output": nir.Output(g.output_type)},
                         edges=[("input", "node"), ("node", "output")])
    if conv.name == "rockpool":
        g = _rockpool_graph(g)
    flat = _Flat()
    top_in, top_out = _flatten(g, "", flat)
    if not top_in or not top_out:
        raise N3mlError(f"NIR graph: needs Input and Output nodes at the top level, found inputs {top_in}, "
                        f"outputs {top_out}")
    _bypass(flat, set(top_in) | set(top_out))
    _check_reads(flat, conv)
    if conv.name == "spyx":
        _spyx_chain(flat)
    _drop_batch_axis(flat)
    if conv.recurrence == "snntorch":
        _snntorch_rnn(flat)
    order = _order(flat, top_in)
    names = _ir_names(order)
    delayed = _delay_edges(flat, order, conv.recurrence)
    graph = Graph(name=name, dt=dt_ms, scheme=conv.scheme)
    # per node, the IR name of its output (the last primitive of its chain)
    out_name: dict[str, str] = {}
    chains: dict[str, list[tuple[str, P.Primitive]]] = {}
    warned: set[str] = set()
    problems: list[str] = []
    for path in order:
        node, nm = flat.nodes[path], names[path]
        try:
            chains[path] = _chain(path, node, nm, conv, dt_ms, facts, warned, input_kind)
        except UnsupportedError as e:
            problems.append(str(e))
            continue
        out_name[path] = chains[path][-1][0]
    if problems:
        raise UnsupportedError(f"the {conv.library} reading of NIR cannot convert:\n  " + "\n  ".join(problems))
    preds: dict[str, list[str]] = {p: [] for p in flat.nodes}
    for s, d in flat.edges:
        preds[d].append(s)
    for path in order:
        chain = chains[path]
        srcs = []
        for s in preds[path]:
            src = out_name[s]
            if (s, path) in delayed:
                dname = _fresh(graph, f"{names[s]}_delay")
                graph.add(dname, P.Delay(steps=1), src)
                src = dname
            srcs.append(src)
        if type(flat.nodes[path]).__name__ == "Input":
            if srcs:
                raise N3mlError(f"NIR node `{path}`: an Input node has incoming edges")
        elif not srcs:
            raise N3mlError(f"NIR node `{path}` ({type(flat.nodes[path]).__name__}) has no input edge")
        elif len(srcs) > 1:
            add = _fresh(graph, f"{names[path]}_sum")
            graph.add(add, P.Add(), *srcs)
            srcs = [add]
        external = srcs
        for entry in chain:
            cname, prim = entry[0], entry[1]
            # an entry may name its inputs (a reader's feedback loop): "^" is the node's own input
            ins = srcs if len(entry) < 3 else [x for i in entry[2] for x in (external if i == "^" else [i])]
            graph.add(cname, prim, *ins)
            srcs = [cname]
    try:
        graph.verify()
    except VerifyError as e:
        raise N3mlError(f"NIR graph read as {conv.name}: {e}") from None
    return graph


def _fresh(graph: Graph, base: str) -> str:
    name, i = base, 1
    while name in graph.nodes:
        name, i = f"{base}_{i}", i + 1
    return name


def _check_reads(flat: _Flat, conv: Convention) -> None:
    if conv.reads is None:
        return
    bad = [f"`{p}` ({type(n).__name__})" for p, n in flat.nodes.items()
           if type(n).__name__ not in conv.reads and type(n).__name__ not in conv.neurons]
    if bad:
        raise UnsupportedError(f"{conv.library}'s NIR reader ({conv.source}) does not read node(s) "
                               f"{', '.join(bad)}; it reads {', '.join(sorted(conv.reads | set(conv.neurons)))}. "
                               "Read the file with --nir-convention exact for NIR's own equations")


def _chain(path: str, node: Any, nm: str, conv: Convention, dt_ms: float, facts: FileFacts, warned: set[str],
           input_kind: str) -> list[tuple[str, P.Primitive]]:
    """The IR nodes (name, primitive) one NIR node becomes, in data-flow order."""
    kind = type(node).__name__
    if kind == "Input":
        shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).ravel())
        return [(nm, P.Input(shape=shape, kind=input_kind))]
    if kind == "Output":
        return [(nm, P.Output())]
    if kind in conv.neurons:
        reset, explicit = (("to-value", 0.0), False)
        if kind in RESETTING:
            reset, explicit = _reset_reading(path, node, conv, facts, warned)
        ctx = Ctx(name=nm, dt_ms=dt_ms, reset=reset, explicit_reset=explicit, scheme=conv.scheme)
        full = lambda s: f"{nm}_{s}" if s else nm  # noqa: E731
        return [(full(e[0]), e[1], *([[i if i == "^" else full(i) for i in e[2]]] if len(e) > 2 else []))
                for e in conv.neurons[kind](node, ctx)]
    if kind in NEURON_TYPES:
        raise UnsupportedError(f"node `{nm}`: {conv.library}'s NIR reader does not read {kind} neurons")
    table = {**STATELESS, **OVERRIDES.get(conv.name, {})}
    if kind not in table:
        raise UnsupportedError(f"node `{nm}`: NIR node type {kind} is not supported (n3ml reads "
                               f"{', '.join(sorted(set(table) | set(NEURON_TYPES)))})")
    return [(nm, table[kind](node, _NodeCtx(nm, dt_ms, conv.scheme, conv.name)))]
