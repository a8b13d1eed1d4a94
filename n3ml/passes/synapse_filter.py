"""`fuse-synapse-filter`: SpikingJelly's SynapseFilter written with linear prims and a ReLU gate -> one
`SynapseFilter` (docs/semantics.md §5b), bit for bit.

n3ml before the `SynapseFilter` primitive traced `layer.SynapseFilter` (and a user may write it so) as

    P = Delay(1, I);  w = Scale(k, P);  g = Add(w, Scale(-M, S));  d = ReLU(g);  I = Add(P, Scale(-1, d), S)

for spikes S and a gate M far above the current. For S = 0, P >= 0: d = P k and I = (P + (-(P k))) + 0,
which is `P - (1 - 0) P k + 0` of the primitive bit for bit (negation, adding 0 and multiplying by 1 are
exact); for S = 1 and P k < M: d = 0 and I = (P + -0) + 1 = P + 1, the primitive's `P - 0 + 1`. The
current starts at 0 and only adds 1 or decays by k in 0..1, so P >= 0 always and P <= t: exact while the
number of steps stays below M (the frontend's M = 2^64). Targets then map the primitive (Lava's
N3mlSynapseFilter, NEST's filter ports; quantize's FixedSynapseFilter).

Matched only where nothing else reads the pieces (P is read by w and the final Add only; w, the block
Scale, g, d and Scale(-1) by their one successor), S is spikes, the Delay is one step, k lies in 0..1,
the block factor is a single value -M with M >= 2^32 (the gate must exceed every current reached) and
the Add's inputs are exactly (P, Scale(-1, d), S) in that order. Anything else is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Pass

MIN_GATE = 2.0 ** 32  # below this a long run could reach the gate and the ReLU would cut the current


class _Match(NamedTuple):
    spikes: str
    leak: Any
    removed: tuple[str, ...]  # the Delay, the leak Scale, the block Scale, the gate Add, the ReLU, Scale(-1)


def _scalar(x: Any) -> float | None:
    a = np.asarray(x, dtype=np.float64)
    return float(a.reshape(-1)[0]) if a.size and np.all(a == a.reshape(-1)[0]) else None


def _only(g: Graph, name: str, user: str) -> bool:
    return g.users_of(name) == [user]


def match(g: Graph, types: dict, name: str) -> _Match | None:
    """The decomposed filter whose current is the Add `name`, or None."""
    add = g.nodes[name]
    ins = g.inputs_of(name)
    if not isinstance(add, P.Add) or len(ins) != 3:
        return None
    prev, neg, s = ins
    pd, pn = g.nodes.get(prev), g.nodes.get(neg)
    if not (isinstance(pd, P.Delay) and pd.steps == 1 and g.inputs_of(prev) == [name]):
        return None
    if types[s].kind != "spike" or not isinstance(pn, P.Scale) or _scalar(pn.factor) != -1.0 or not _only(g, neg, name):
        return None
    (hold,) = g.inputs_of(neg)
    if not isinstance(g.nodes[hold], P.ReLU) or not _only(g, hold, neg):
        return None
    (gate,) = g.inputs_of(hold)
    gins = g.inputs_of(gate)
    if not isinstance(g.nodes[gate], P.Add) or len(gins) != 2 or not _only(g, gate, hold):
        return None
    leak, block = gins
    pl, pb = g.nodes[leak], g.nodes[block]
    if not (isinstance(pl, P.Scale) and g.inputs_of(leak) == [prev] and _only(g, leak, gate)):
        return None
    m = _scalar(pb.factor) if isinstance(pb, P.Scale) else None
    if m is None or -m < MIN_GATE or g.inputs_of(block) != [s] or not _only(g, block, gate):
        return None
    k = np.asarray(pl.factor, dtype=np.float64)
    if not np.all((k >= 0) & (k <= 1)) or sorted(g.users_of(prev)) != sorted([leak, name]):
        return None
    return _Match(s, pl.factor, (prev, leak, block, gate, hold, neg))


@dataclass(frozen=True, kw_only=True)
class FuseSynapseFilter(Pass):
    """P = Delay(1, I); I = Add(P, -ReLU(Scale(k, P) - M S), S) (SpikingJelly's SynapseFilter in linear prims
    and a ReLU gate, as n3ml traced it before the primitive) -> one SynapseFilter(leak=k) reading S, keeping
    the Add's name. Bit for bit (module docstring)."""

    name = "fuse-synapse-filter"
    summary = "Delay/Scale/ReLU-gate form of SpikingJelly's SynapseFilter -> one SynapseFilter (bit for bit)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        if not any(isinstance(p, P.ReLU) for p in graph.nodes.values()):
            return graph
        types = graph.verify()
        g = graph
        for name in list(graph.nodes):
            if name not in g.nodes:
                continue
            m = match(g, types, name)
            if m is None:
                continue
            if g is graph:
                g = graph.copy()
            for n in m.removed:
                g.remove(n)
            g.edges = [e for e in g.edges if e.dst != name]
            g.nodes[name] = P.SynapseFilter(leak=m.leak)
            g.edges.append(Edge(m.spikes, name, 0))
        return g
