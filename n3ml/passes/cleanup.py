"""Clean-up passes: dead-node removal (`dce`) and identity removal (`remove-identity`).

Also holds the small rewiring helpers the conversion passes share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Pass


def bypass(graph: Graph, name: str) -> None:
    """Remove single-input node `name`, feeding its users from its input instead (in place)."""
    (src,) = graph.inputs_of(name)
    graph.edges = [Edge(src, e.dst, e.dst_port) if e.src == name else e for e in graph.edges if e.dst != name]
    del graph.nodes[name]


def fresh_name(graph: Graph, base: str) -> str:
    return graph.fresh_name(base)


def insert_after(graph: Graph, name: str, new: str, prim: P.Primitive) -> str:
    """Insert `prim` as node `new` between `name` and all of its users (in place); return `new`."""
    new = fresh_name(graph, new)
    graph.edges = [Edge(new, e.dst, e.dst_port) if e.src == name else e for e in graph.edges]
    graph.nodes[new] = prim
    graph.edges.append(Edge(name, new, 0))
    return new


def insert_on_edge(graph: Graph, edge: Edge, new: str, prim: P.Primitive) -> str:
    """Insert `prim` as node `new` on one edge (in place); return `new`."""
    new = fresh_name(graph, new)
    i = graph.edges.index(edge)
    graph.edges[i] = Edge(new, edge.dst, edge.dst_port)
    graph.nodes[new] = prim
    graph.edges.append(Edge(edge.src, new, 0))
    return new


@dataclass(frozen=True, kw_only=True)
class DeadNodeRemoval(Pass):
    """Remove nodes whose value reaches no Output (Input nodes are kept: they are the graph's interface)."""

    name = "dce"
    summary = "remove nodes that do not contribute to any Output"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        nxg = g.to_networkx()
        live: set[str] = set(g.output_names)
        for o in g.output_names:
            live |= nx.ancestors(nxg, o)
        for n in list(g.nodes):
            if n not in live and not isinstance(g.nodes[n], P.Input):
                g.remove(n)
        return g


def _is_identity(graph: Graph, name: str, prim: P.Primitive, types) -> bool:
    if isinstance(prim, P.Delay):
        return prim.steps == 0
    if isinstance(prim, P.Scale):
        f = np.asarray(prim.factor)
        return bool(np.all(f == 1)) and types[graph.inputs_of(name)[0]].shape == types[name].shape
    if isinstance(prim, P.Flatten):
        return len(types[graph.inputs_of(name)[0]].shape) == 1
    if isinstance(prim, P.ReLU):  # max(s, 0) of spikes (0/1) is s: Norse's ConvNet applies relu to LIF spikes
        return types[graph.inputs_of(name)[0]].kind == "spike"
    return False


@dataclass(frozen=True, kw_only=True)
class RemoveIdentity(Pass):
    """Remove operations that pass their input through unchanged: Delay(0), Scale(1), Flatten of 1-D, ReLU of
    spikes."""

    name = "remove-identity"
    summary = "remove Delay(steps=0), Scale(factor=1), Flatten of flat inputs and ReLU of spikes"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        types = g.verify()
        for n in list(g.nodes):
            p = g.nodes[n]
            if _is_identity(g, n, p, types):
                bypass(g, n)
        return g
