"""The n3ml graph: named nodes, typed edges port-to-port, graph attributes."""

from __future__ import annotations

import dataclasses
import gc
import math
import re
from contextlib import contextmanager
from collections import deque
from dataclasses import dataclass, field
from typing import Container, Iterator

import networkx as nx
import numpy as np

from .prims import LI, SCHEMES, Delay, Input, Output, Primitive, check_values
from .types import PortType, VerifyError

SCHEMA_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Edge:
    """src's output port feeds input port number `dst_port` of dst."""

    src: str
    dst: str
    dst_port: int = 0


@dataclass
class Graph:
    """A spiking network. Nodes keep insertion order; edges are port-to-port.

    Attributes:
        name: identifier of the graph.
        dt: time step in milliseconds.
        scheme: "exact" (exponential) or "euler" integration of time constants.
    """

    name: str = "main"
    dt: float = 1.0
    scheme: str = "exact"
    nodes: dict[str, Primitive] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    # ------------------------------------------------------------------ build
    def add(self, name: str, prim: Primitive, *inputs: str) -> str:
        """Add node `name` computing `prim` over `inputs` (names of existing or later nodes)."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise VerifyError(f"node names must be identifiers ([A-Za-z_][A-Za-z0-9_]*), found {name!r}")
        if name in self.nodes:
            raise VerifyError("a node of that name already exists", node=name)
        if not isinstance(prim, Primitive):
            raise VerifyError(f"expected an IR primitive, found {type(prim).__name__}", node=name)
        self.nodes[name] = prim
        for i, src in enumerate(inputs):
            self.edges.append(Edge(src, name, i))
        return name

    def fresh_name(self, base: str, taken: Container[str] = ()) -> str:
        """`base`, else `base_2`, `base_3`, ...: the first that is neither a node nor in `taken`."""
        name, i = base, 1
        while name in self.nodes or name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def connect(self, src: str, dst: str, dst_port: int = 0) -> None:
        self.edges.append(Edge(src, dst, dst_port))

    def copy(self) -> Graph:
        return Graph(self.name, self.dt, self.scheme, dict(self.nodes), list(self.edges))

    def replace(self, name: str, **changes) -> None:
        """Replace node `name` by a copy with `changes` (primitives are immutable)."""
        self.nodes[name] = dataclasses.replace(self.nodes[name], **changes)

    def remove(self, name: str) -> None:
        del self.nodes[name]
        self.edges = [e for e in self.edges if e.src != name and e.dst != name]

    # ------------------------------------------------------------------ query
    def inputs_of(self, name: str) -> list[str]:
        """Sources feeding `name`, in port order.

        This scans every edge; code that needs the inputs of many nodes calls `input_map()` once.
        """
        es = sorted((e for e in self.edges if e.dst == name), key=lambda e: e.dst_port)
        return [e.src for e in es]

    def input_map(self) -> dict[str, list[str]]:
        """Sources feeding every node, in port order, in one pass over the edges.

        Not cached: passes edit `edges` in place, so an index kept on the graph could go stale.
        """
        by_dst: dict[str, list[Edge]] = {n: [] for n in self.nodes}
        for e in self.edges:
            by_dst.setdefault(e.dst, []).append(e)
        return {n: [es[0].src] if len(es) == 1 else [e.src for e in sorted(es, key=_port)]
                for n, es in by_dst.items()}

    def users_of(self, name: str) -> list[str]:
        return [e.dst for e in self.edges if e.src == name]

    @property
    def input_names(self) -> list[str]:
        return [n for n, p in self.nodes.items() if isinstance(p, Input)]

    @property
    def output_names(self) -> list[str]:
        return [n for n, p in self.nodes.items() if isinstance(p, Output)]

    def __iter__(self) -> Iterator[tuple[str, Primitive]]:
        return iter(self.nodes.items())

    def __len__(self) -> int:
        return len(self.nodes)

    def to_networkx(self, *, cut_delays: bool = False) -> nx.MultiDiGraph:
        """The graph as networkx; with cut_delays, edges leaving a Delay of >= 1 step are dropped."""
        g = nx.MultiDiGraph()
        g.add_nodes_from(self.nodes)
        for e in self.edges:
            p = self.nodes.get(e.src)
            if cut_delays and isinstance(p, Delay) and p.steps >= 1:
                continue
            g.add_edge(e.src, e.dst, port=e.dst_port)
        return g

    def topo_order(self) -> list[str]:
        """Evaluation order within a step: Delay outputs are known at the start of the step."""
        g = self.to_networkx(cut_delays=True)
        # lexicographical order on insertion index keeps the order stable and readable
        index = {n: i for i, n in enumerate(self.nodes)}
        return list(nx.lexicographical_topological_sort(g, key=lambda n: index[n]))

    # ----------------------------------------------------------------- verify
    def verify(self) -> dict[str, PortType]:
        """Check the whole graph; return the output port type of every node.

        Raises VerifyError naming the node and port at the first problem.
        """
        with paused_gc():
            return self._verify()

    def _verify(self) -> dict[str, PortType]:
        if not NAME_RE.match(self.name):
            raise VerifyError(f"graph name must be an identifier, found {self.name!r}")
        if (not isinstance(self.dt, (int, float, np.integer, np.floating)) or isinstance(self.dt, bool)
                or not math.isfinite(self.dt) or not self.dt > 0):
            raise VerifyError(f"graph attribute `dt` must be a positive finite number of ms, found {self.dt!r}")
        if not isinstance(self.scheme, str) or self.scheme not in SCHEMES:
            raise VerifyError(f"graph attribute `scheme` must be one of {', '.join(SCHEMES)}; found {self.scheme!r}")
        for name, prim in self.nodes.items():
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise VerifyError(f"node names must be identifiers ([A-Za-z_][A-Za-z0-9_]*), found {name!r}")
            if not isinstance(prim, Primitive):
                raise VerifyError(f"expected an IR primitive, found {type(prim).__name__}", node=name)
            check_values(prim, name)  # finite floats, 64-bit ints, real arrays: before the op's own checks
            prim.verify(name)
        nodes = self.nodes
        ports: dict[str, dict[int, str]] = {n: {} for n in nodes}
        for e in self.edges:
            src, dst, port = e.src, e.dst, e.dst_port
            if type(port) is not int or port < 0:
                raise VerifyError(f"input port numbers are integers >= 0, found {port!r} (edge from `{src}`)",
                                  node=dst if isinstance(dst, str) else None)
            at = ports.get(dst)
            if at is None:
                raise VerifyError(f"edge from `{src}` goes to unknown node `{dst}`")
            sp = nodes.get(src)
            if sp is None:
                known = ", ".join(list(nodes)[:8])
                raise VerifyError(f"input {port} refers to unknown node `{src}` (known: {known}...)",
                                  node=dst, port=_port_name(nodes[dst], port))
            if isinstance(sp, Output):
                raise VerifyError(f"an Output node cannot feed other nodes (edge to `{dst}`)", node=src)
            if port in at:
                raise VerifyError(f"port is connected twice (from `{at[port]}` and `{src}`); "
                                  "several inputs must be summed through an explicit Add",
                                  node=dst, port=_port_name(nodes[dst], port))
            at[port] = src
        ins: dict[str, list[str]] = {}
        has_input = has_output = False
        for name, prim in nodes.items():
            p = ports[name]
            n = len(p)
            arity = prim.arity
            # the ports are n distinct ints: they are exactly 0..n-1 when each of 0..n-1 is one of them
            if n == arity == 1:  # the common case, spelled out: this loop runs once per node
                if 0 not in p:
                    raise VerifyError(f"{prim.op} expects 1 input(s) on port 0, found port {next(iter(p))}", node=name)
                ins[name] = [p[0]]
                has_output = has_output or isinstance(prim, Output)
                continue
            if arity is None:
                if n < 2:
                    raise VerifyError(f"{prim.op} expects at least 2 inputs, found {n}", node=name)
                if not all(i in p for i in range(n)):
                    raise VerifyError(f"{prim.op} inputs must be numbered 0..{n - 1}, found {sorted(p)}", node=name)
            elif n != arity or not all(i in p for i in range(n)):
                raise VerifyError(f"{prim.op} expects {arity} input(s), found {n}", node=name)
            ins[name] = [p[i] for i in range(n)]
            has_input = has_input or isinstance(prim, Input)
            has_output = has_output or isinstance(prim, Output)
        if not has_input:
            raise VerifyError("the graph has no Input node")
        if not has_output:
            raise VerifyError("the graph has no Output node")
        cyc = _find_cycle(self)
        if cyc:
            path = " -> ".join(cyc + [cyc[0]])
            raise VerifyError(f"cycle without a Delay of at least 1 step: {path}; "
                              "insert a Delay(steps>=1) on the loop", node=cyc[0])
        return _infer(self, ins)

    def types(self) -> dict[str, PortType]:
        return self.verify()


@contextmanager
def paused_gc():
    """The cyclic garbage collector off for the block (restored after, as it was).

    Parsing and verifying allocate a few objects per node and free none: each automatic collection
    would rescan the whole (growing) heap, which made both superlinear on large graphs.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _port(e: Edge) -> int:
    return e.dst_port


def _port_name(prim: Primitive, i: int) -> str:
    return "in" if prim.arity == 1 else f"in{i}"


def _find_cycle(graph: Graph) -> list[str]:
    """A cycle that passes through no Delay of >= 1 step, as the list of its nodes; [] if none.

    Iterative depth-first search (no recursion limit, linear in nodes + edges), starting from the
    nodes in insertion order and following edges in their order, as networkx's find_cycle does.
    """
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for e in graph.edges:
        p = graph.nodes.get(e.src)
        if isinstance(p, Delay) and p.steps >= 1:
            continue
        if e.src in succ and e.dst in succ:
            succ[e.src].append(e.dst)
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in graph.nodes:
        if root in state:
            continue
        path = [root]
        its = [iter(succ[root])]
        state[root] = 1
        while its:
            nxt = next(its[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                its.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                its.append(iter(succ[nxt]))
    return []


def infer_types(graph: Graph) -> dict[str, PortType]:
    """Shape inference over the whole graph (one function, worklist over cycles).

    A node is inferred once all its inputs are known; an Add once any input is known (that is
    how a cycle is entered). Each edge is visited a constant number of times, so this is linear
    in the size of the graph whatever the order the nodes were written in. Every edge is checked
    once all types are known.
    """
    return _infer(graph, graph.input_map())


def _infer(graph: Graph, ins: dict[str, list[str]]) -> dict[str, PortType]:
    # nodes by position in lists rather than by name in dicts: on 200k-node graphs the cache misses
    # of the hash lookups were most of the time
    names = list(graph.nodes)
    prims = list(graph.nodes.values())
    index = {n: i for i, n in enumerate(names)}
    srcs_of: list[list[int]] = []
    users: list[list[int]] = [[] for _ in names]
    for i, n in enumerate(names):
        srcs = []
        for s in ins[n]:
            j = index.get(s)
            if j is None:
                raise VerifyError(f"input refers to unknown node `{s}`", node=n)
            srcs.append(j)
            users[j].append(i)
        srcs_of.append(srcs)
    unknown = [len(x) for x in srcs_of]
    is_add = [p.op == "Add" for p in prims]
    types: list[PortType | None] = [None] * len(names)
    ready = deque(i for i, u in enumerate(unknown) if u == 0)
    partial = []  # Adds inferred before all their inputs were known: checked again at the end
    while ready:
        i = ready.popleft()
        if types[i] is not None:
            continue
        known = [types[j] for j in srcs_of[i] if types[j] is not None]
        if len(known) < len(srcs_of[i]):
            partial.append(i)
        types[i] = prims[i].infer(names[i], known)
        for u in users[i]:
            unknown[u] -= 1
            if types[u] is None and (unknown[u] == 0 or is_add[u]):
                ready.append(u)
    if any(t is None for t in types):
        first = names[next(i for i, t in enumerate(types) if t is None)]
        raise VerifyError("cannot infer the port types of this cycle; put an Add or the cycle's "
                          "entry point after a node of known shape", node=first)
    # every other node was inferred from all its inputs, whose types never change once set
    for i in partial:
        t = prims[i].infer(names[i], [types[j] for j in srcs_of[i]])
        if t != types[i]:
            raise VerifyError(f"output type {t} disagrees around a cycle with {types[i]}", node=names[i])
    return dict(zip(names, types))


def li_chains(graph: Graph) -> dict[str, str]:
    """{LI2: LI1} for an LI read only by an LI with v_leak = v_init = 0 (Norse's LICell: a current and its
    membrane). Such a pair is a pure two-stage filter, which targets run as one exponential-current cell."""
    chains = {}
    for n, p in graph.nodes.items():
        if type(p) is not LI:
            continue
        (src,) = graph.inputs_of(n)
        q = graph.nodes[src]
        if (type(q) is LI and graph.users_of(src) == [n] and not np.any(np.asarray(q.v_leak))
                and not np.any(np.asarray(q.v_init))):
            chains[n] = src
    return chains
