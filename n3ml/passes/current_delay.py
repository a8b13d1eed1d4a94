"""`delay-before-current`: a Delay between a synaptic current (an LI) and its neuron moved in front of the
current's synapses, exactly.

Norse's LSNNCell (and LSNNRecurrentCell) integrates its membrane with the current of the step before and
traces as

    X -> Dense ... -> Add -> LI(syn) -> Delay(d) -> ALIF

A fixed-point neuron (FixedCubaLIF: u = ... + I; v = ... + u) reads its current in the step the current is
formed, so quantize needs the LI directly before the neuron. An LI with v_leak = v_init = 0 is a linear
time-invariant filter starting from zero, j_t = a j_{t-1} + c I_t, and so are its synapses without bias
(Dense, Conv, pools: a zero input gives zero) and an Add of them: each commutes with a Delay, which holds
0 before its first step. So

    Delay(d, LI(Add(W1 x, W2 y))) = LI(Add(W1 Delay(d, x), W2 Delay(d, y)))

step for step, with the same operations in the same order (bit for bit in floats: the LI sees zeros for
d steps and then the same inputs). A synapse whose input is already a Delay read by it alone gets a
longer Delay (Delay(d1) then Delay(d) is Delay(d1 + d)); the others get a new `<synapse>_delay`.

Matched only where it is exact and nothing else reads the pieces: the neuron is an ALIF (a neuron with a
current of its own, CubaLIF, has no place for a second one; `fuse-synaptic` handles LI -> LIF), the Delay
is read by it alone, the LI by the Delay alone, v_leak = v_init = 0, and the LI reads a synapse, or an Add
read by the LI alone of synapses, none of them with a (nonzero) bias. A bias is refused with its name
when asked for explicitly (`refuse_bias`), as quantize does: a constant drive is not zero before the
Delay's first step, so no shift of the synapses reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Pass
from .cleanup import bypass

SYNAPSES = (P.Dense, P.Conv1d, P.Conv2d, P.SumPool2d, P.AvgPool2d)
READERS = (P.ALIF,)  # neurons that read their current through a Delay in the traced models (Norse's LSNN)


@dataclass(frozen=True, kw_only=True)
class DelayBeforeCurrent(Pass):
    """LI -> Delay(d) -> ALIF becomes LI -> ALIF with Delay(d) in front of the LI's synapses (exact)."""

    name = "delay-before-current"
    summary = "LI -> Delay(d) -> ALIF (Norse's LSNN current) -> LI -> ALIF, the Delay before the LI's synapses"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        return move_current_delays(graph)


def _match(graph: Graph, n: str) -> tuple[str, str, list[str]] | None:
    """(Delay, LI, synapses) of neuron `n` reading an LI through a Delay, or None."""
    (dl,) = graph.inputs_of(n)
    if not isinstance(graph.nodes[dl], P.Delay) or graph.users_of(dl) != [n] or graph.nodes[dl].steps < 1:
        return None
    (li,) = graph.inputs_of(dl)
    lp = graph.nodes[li]
    if (type(lp) is not P.LI or graph.users_of(li) != [dl] or np.any(np.asarray(lp.v_leak))
            or np.any(np.asarray(lp.v_init))):
        return None
    (src,) = graph.inputs_of(li)
    terms = [src]
    if isinstance(graph.nodes[src], P.Add):
        if graph.users_of(src) != [li]:
            return None
        terms = graph.inputs_of(src)
    if not all(isinstance(graph.nodes[t], SYNAPSES) for t in terms):
        return None
    return dl, li, terms


def move_current_delays(graph: Graph, *, refuse_bias: bool = False) -> Graph:
    """The graph with every LI -> Delay(d) -> ALIF rewritten (a copy; `graph` itself when none matches).

    Args:
        refuse_bias: raise UnsupportedError naming a synapse with a bias (else such a neuron is left as is).
    """
    g = graph
    for n, p in graph.nodes.items():
        if not isinstance(p, READERS):
            continue
        m = _match(g, n)
        if m is None:
            continue
        dl, li, terms = m
        biased = [t for t in terms if getattr(g.nodes[t], "bias", None) is not None
                  and np.any(np.asarray(g.nodes[t].bias))]
        if biased:
            if refuse_bias:
                raise UnsupportedError(
                    f"node `{n}` ({p.op}) reads its current `{li}` through the Delay `{dl}`; moving the Delay in "
                    f"front of the current's synapses is exact only without a synapse bias, and `{biased[0]}` has "
                    "one (a constant drive is nonzero before the Delay's first step)")
            continue
        if g is graph:
            g = graph.copy()
        d = g.nodes[dl].steps
        for t in terms:
            (src,) = g.inputs_of(t)
            if isinstance(g.nodes[src], P.Delay) and g.users_of(src) == [t]:
                g.replace(src, steps=g.nodes[src].steps + d)
            else:
                new = g.fresh_name(f"{t}_delay")
                g.nodes[new] = P.Delay(steps=d)
                g.edges = [Edge(new, e.dst, e.dst_port) if e.src == src and e.dst == t else e for e in g.edges]
                g.edges.append(Edge(src, new, 0))
        bypass(g, dl)
    return g
