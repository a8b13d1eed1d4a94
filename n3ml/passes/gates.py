"""`spike-gates` (exact): a ReLU whose value is always 0 or 1 becomes a gate neuron.

SpikingJelly's SEW ResNet with `cnf="IAND"` computes `x * (1 - y)` of two spike trains; the torch frontend
writes it as `relu(x - y)` (n3ml/frontends/torch/record.py, `_spike_product`). Over spikes that ReLU is a
logical gate, not an analog activation: if its input is an integer combination of spike trains whose
positive weights add up to at most 1 (element by element), the input is an integer <= 1, so the ReLU is 1
exactly when the input exceeds 0.5, and 0 otherwise. A LIF whose membrane restarts every step (per-step
decay 0: tau = dt under `euler`, tau = dt / 1000 under `exact`, exp(-1000) being 0.0 in float64), with
r g = 1, threshold 0.5 and reset to 0 computes exactly that: v_t = 0 * v_{t-1} + x_t = x_t.

The LIF keeps the ReLU's name, so users and Outputs are unchanged (its port is then `spike`, which every
reader of a 0/1 analog value also takes). Spiking targets (the netlist of NEST and PyNN) run it as a
neuron; any ReLU that does not fit stays as it is (and a target refuses it as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir import prims as P
from .base import Pass

# tau per ms of dt of the gate under the `exact` scheme: exp(-1000) is 0.0 in float64 (decay 0, gain 1)
EXACT_GATE_TAU_PER_DT = 1e-3

Terms = dict[tuple[str, int], np.ndarray]  # (spike-valued node, IR delay) -> weight per element (flat)


def gate_neuron(dt: float, scheme: str) -> P.LIF:
    """The LIF with decay 0 and r g = 1 under the graph's scheme: v_t = x_t, spike when x_t > 0.5."""
    tau = dt if scheme == "euler" else dt * EXACT_GATE_TAU_PER_DT
    return P.LIF(tau=tau, r=1.0, theta=0.5, reset="to-value", v_reset=0.0)


def _terms(g: Graph, types, name: str, spiking: set[str], stack: tuple[str, ...] = ()) -> Terms | None:
    """The input of a ReLU as a linear combination of spike trains (each at an IR delay), or None if it is
    not made of Add, Scale, Delay and Flatten over spike-valued nodes (a loop through them: None)."""
    if name in spiking or types[name].kind == "spike":
        return {(name, 0): np.ones(types[name].size)}
    prim = g.nodes[name]
    if name in stack or not isinstance(prim, (P.Add, P.Scale, P.Delay, P.Flatten)):
        return None
    out: Terms = {}
    for src in g.inputs_of(name):
        part = _terms(g, types, src, spiking, stack + (name,))
        if part is None:
            return None
        for (leaf, d), w in part.items():
            if isinstance(prim, P.Delay):
                d += prim.steps
            elif isinstance(prim, P.Scale):
                w = w * np.broadcast_to(np.asarray(prim.factor, np.float64), types[name].shape).ravel()
            out[(leaf, d)] = out[(leaf, d)] + w if (leaf, d) in out else w
    return out


def is_gate(terms: Terms | None) -> bool:
    """Whether relu(sum of terms) is always 0 or 1: integer weights, positive ones adding up to <= 1."""
    if not terms:
        return False
    w = np.stack(list(terms.values()))
    return bool(np.all(w == np.round(w)) and np.all(np.clip(w, 0.0, None).sum(axis=0) <= 1.0))


@dataclass(frozen=True, kw_only=True)
class SpikeGates(Pass):
    """ReLU of spike differences (SEW's IAND) -> a decay-0 LIF with threshold 0.5 (exact)."""

    name = "spike-gates"
    summary = "ReLU of an integer combination of spikes (SEW's IAND) -> a gate neuron (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        types = graph.verify()
        gates: set[str] = set()
        for name in graph.topo_order():  # a gate may read an earlier gate (SEW blocks in a row)
            if isinstance(graph.nodes[name], P.ReLU) and is_gate(_terms(graph, types, graph.inputs_of(name)[0],
                                                                         gates)):
                gates.add(name)
        if not gates:
            return graph
        g = graph.copy()
        for name in gates:
            g.nodes[name] = gate_neuron(float(graph.dt), graph.scheme)
        g.verify()
        return g
