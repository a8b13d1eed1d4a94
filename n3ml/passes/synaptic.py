"""`fold-synaptic-reset`: snnTorch's Synaptic with its next-step reset as one CubaLIF, exactly.

snnTorch's `Synaptic` (reset by subtraction) traces as

    X -> LI(syn) -> Add(syn, Scale(c, Delay(1, lif))) -> LIF(lif)

The LI is the synaptic current; the Scale carries the difference between snnTorch's reset (the threshold
subtracted undecayed one step after the spike) and the IR's (subtracted at the spike, then decayed with the
membrane). `fuse-synaptic` fuses an LI only when it feeds the LIF directly, so the Add stays, and targets
whose neurons read synapses (Lava, and quantize's canonical form) cannot take an LI's value added to
spikes. This pass moves the reset terms into the current, where a CubaLIF's synapses can carry them.

Derivation (per neuron; c1 = r g of the LI, a_s its decay, s the LIF's spikes, X the LI's input):

    LI:   j_t = a_s j_{t-1} + c1 X_t                      (v_leak = v_init = 0)
    LIF:  reads y_t = j_t + sum_k c_k s_{t-d_k}

With i = j / c1 (as in `fuse-synaptic`: a CubaLIF with tau_syn = the LI's tau, r = r_LIF c1) the LIF reads
c1 i'_t where i'_t = i_t + sum_k (c_k / c1) s_{t-d_k}. That i' is a CubaLIF current,

    i'_t - a_s i'_{t-1} = X_t + sum_k (c_k / c1) (s_{t-d_k} - a_s s_{t-d_k-1})

so i'_t = a_s i'_{t-1} + J_t with J_t = X_t + sum_k [(c_k / c1) s_{t-d_k} - a_s (c_k / c1) s_{t-d_k-1}].
The start matches: j_0 = 0 and every Delay is 0 before its first step, so i'_0 = 0 = the CubaLIF's i_0.
Reset mode and refractoriness are the LIF's own and act on v alone (the current integrates through a
refractory period in both forms), so they carry over unchanged. The graph becomes

    X, Scale(c_k / c1, Delay(d_k, lif)), Scale(-a_s c_k / c1, Delay(d_k + 1, lif)) -> Add -> CubaLIF(lif)

Exact in real arithmetic. In floats the current is summed in another order and through other factors, so
it differs from the original in the last bits (float64: about 1e-15 relative); a spike changes only where
the voltage sits within that of the threshold. `spikes-as-synapse` then makes the Scales of spikes diagonal
self-synapses (through Delay 1 and 2) into the neuron's current, which Lava and quantize take.

Matched only where nothing else reads the pieces: the LI feeds only the Add, the Add only the LIF, every
other term of the Add is a Scale read only by the Add of a Delay (>= 1 step) read only by that Scale of the
LIF's own spikes, and the LI's gain c1 is finite and nonzero. Anything else is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..ir import Graph
from ..ir import neurons as N
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Pass

# the LIF fields a CubaLIF keeps as they are (its input side, tau_syn and r, is what changes)
KEPT = ("theta", "v_reset", "reset", "refractory", "v_init", "detach_reset", "surrogate", "slope", "v_leak")


class _Term(NamedTuple):
    scale: str  # Scale(c, Delay(d, lif)) into the Add
    delay: str
    c: Any
    d: int


class _Match(NamedTuple):
    add: str
    li: str
    terms: list[_Term]


def _zero(x: Any) -> bool:
    return not np.any(np.asarray(x))


def _reset_term(g: Graph, lif: str, add: str, term: str) -> _Term | None:
    """The term as Scale(c, Delay(d, lif)) owned by the Add, or None."""
    sp = g.nodes[term]
    if not isinstance(sp, P.Scale) or g.users_of(term) != [add]:
        return None
    (d,) = g.inputs_of(term)
    dp = g.nodes[d]
    if not isinstance(dp, P.Delay) or dp.steps < 1 or g.inputs_of(d) != [lif] or g.users_of(d) != [term]:
        return None
    return _Term(term, d, sp.factor, int(dp.steps))


def match(g: Graph, lif: str) -> _Match | None:
    """The LI and reset terms around LIF `lif` that the pass folds, or None."""
    if type(g.nodes[lif]) is not P.LIF:
        return None
    (add,) = g.inputs_of(lif)
    if not isinstance(g.nodes[add], P.Add) or g.users_of(add) != [lif]:
        return None
    li, terms = None, []
    for t in g.inputs_of(add):
        q = g.nodes[t]
        if type(q) is P.LI and li is None and g.users_of(t) == [add] and _zero(q.v_leak) and _zero(q.v_init):
            li = t
            continue
        term = _reset_term(g, lif, add, t)
        if term is None:
            return None
        terms.append(term)
    if li is None or not terms:
        return None
    c1 = np.asarray(N.discretize(g.nodes[li], float(g.dt), g.scheme).rg, np.float64)
    if not np.all(np.isfinite(c1)) or np.any(c1 == 0):  # the current i = j / c1 needs a finite, nonzero gain
        return None
    return _Match(add, li, terms)


def _param(x: np.ndarray) -> Any:
    """A factor as the IR holds it: a float for a scalar, else the array."""
    return float(x) if x.ndim == 0 else x


def fold(g: Graph, lif: str, m: _Match) -> None:
    """Rewrite one match in place (the derivation in the module docstring)."""
    li, p = g.nodes[m.li], g.nodes[lif]
    k = N.discretize(li, float(g.dt), g.scheme)
    c1, a_s = np.asarray(k.rg, np.float64), np.asarray(k.a, np.float64)
    (x,) = g.inputs_of(m.li)
    g.edges = [Edge(x, e.dst, e.dst_port) if e.src == m.li else e for e in g.edges if e.dst != m.li]
    del g.nodes[m.li]
    port = len(g.inputs_of(m.add))
    for t in m.terms:
        ratio = np.asarray(t.c, np.float64) / c1
        g.nodes[t.scale] = P.Scale(factor=_param(ratio))
        later = g.fresh_name(f"{lif}_prev{t.d + 1}")
        g.nodes[later] = P.Delay(steps=t.d + 1)
        decayed = g.fresh_name(f"{t.scale}_decayed")
        g.nodes[decayed] = P.Scale(factor=_param(-a_s * ratio))
        g.edges += [Edge(lif, later), Edge(later, decayed), Edge(decayed, m.add, port)]
        port += 1
    g.nodes[lif] = P.CubaLIF(tau_syn=li.tau, tau_mem=p.tau, r=_param(np.asarray(p.r, np.float64) * c1),
                             **{f: getattr(p, f) for f in KEPT})


@dataclass(frozen=True, kw_only=True)
class FoldSynapticReset(Pass):
    """LI -> Add(LI, Scale(c, Delay(d, lif)), ...) -> LIF(lif) (snnTorch's Synaptic with its next-step reset)
    becomes one CubaLIF whose current reads X, Scale(c / c1, Delay(d, lif)) and Scale(-a_s c / c1,
    Delay(d + 1, lif)) (c1 = r g of the LI, a_s its decay). Exact up to float rounding (module docstring);
    the CubaLIF keeps the LIF's name and the Add its own."""

    name = "fold-synaptic-reset"
    summary = "LI -> Add(LI, Scale(Delay(lif))) -> LIF (snnTorch's Synaptic) -> one CubaLIF, reset in its current (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        for lif in list(graph.nodes):
            m = match(g, lif)
            if m is None:
                continue
            if g is graph:
                g = graph.copy()
            fold(g, lif, m)
        return g
