"""`ann-to-snn`: turn an ANN graph (ReLU, pools, Softmax) into a rate-coded spiking graph.

* ReLU -> a spiking neuron (default IF with reset by subtraction, threshold 1): its firing rate
  approximates the ReLU of its (constant) input current, clipped at one spike per step.
* Dense/Conv biases stay: the IR adds them at every step, which is a constant current.
* Softmax at an output is dropped (it does not change the arg-max); the logits drive a readout:
  `readout=count` (IF neurons, decode by spike count) or `readout=membrane` (an Integrator, decode by
  the final membrane potential = the summed logits).
* Max-pooling (`maxpool=...`, measured in docs/conversion.md): `decompose` (default) computes the
  maximum of the window's rates with IF neurons, max(a, b) = a + relu(b - a), from linear synapses
  only, so every target that runs IF neurons runs it; `current` moves the MaxPool before the neurons
  and pools their input current (relu(max(x)) = max(relu(x)); exact while the current is constant,
  i.e. right after an analog input, but over-estimates on spike-driven currents); `auto` uses
  `current` where the current is constant and `decompose` elsewhere; `spikes` pools the output
  spikes (MaxPool on spikes = OR; over-estimates the rate); `avg` replaces it by average pooling.
* Encoding (`encoding=...`): `analog` feeds the input values to the first synapses at every step (a
  constant current); `poisson` inserts a PoissonRate encoder (rate = gain * x).

Use `normalize` afterwards to scale the weights so that rates do not saturate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir.graph import Edge
from ..ir import prims as P
from .base import Pass, PassError
from .cleanup import bypass, fresh_name, insert_after
from .fold import WEIGHTED

NEURONS = ("if", "lif")
READOUTS = ("count", "membrane")
MAXPOOL = ("auto", "decompose", "spikes", "current", "avg")
ENCODINGS = ("analog", "poisson")


@dataclass(frozen=True, kw_only=True)
class AnnToSnn(Pass):
    """Replace ReLUs by spiking neurons, drop the output Softmax and add a readout.

    Options:
        neuron: "if" (default) or "lif" (with membrane time constant `tau` ms).
        reset: "subtract" (default; keeps the residual charge, Rueckauer et al. 2017) or "to-value" (to 0).
        v_init: initial membrane potential as a fraction of the threshold (0.5 halves the rounding
            error of the rate code).
        readout: "count" or "membrane".
        maxpool: "decompose" (default), "auto", "current", "spikes" or "avg".
        encoding: "analog" or "poisson" (with `gain`, `seed`).
    """

    name = "ann-to-snn"
    summary = "ReLU -> IF (reset by subtraction), Softmax -> spike-count/membrane readout, max-pool method"
    neuron: str = "if"
    tau: float = 100.0
    reset: str = "subtract"
    v_init: float = 0.5
    readout: str = "count"
    maxpool: str = "decompose"
    encoding: str = "analog"
    gain: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for opt, allowed in (("neuron", NEURONS), ("readout", READOUTS), ("maxpool", MAXPOOL),
                             ("encoding", ENCODINGS), ("reset", ("subtract", "to-value"))):
            if getattr(self, opt) not in allowed:
                raise ValueError(f"option {opt} must be one of {', '.join(allowed)}, found {getattr(self, opt)!r}")
        if not self.gain > 0:
            raise ValueError(f"option gain must be > 0, found {self.gain}")

    def make_neuron(self, g: Graph, *, readout: bool = False) -> P.Neuron:
        v0 = 0.0 if readout else self.v_init
        if self.neuron == "lif":  # r = 1/g: the input current enters unscaled, as for IF
            return P.LIF(tau=self.tau, r=1.0 / float(P.gain(self.tau, g.dt, g.scheme)), theta=1.0,
                         reset=self.reset, v_init=v0)
        return P.IF(theta=1.0, reset=self.reset, v_init=v0)

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        if context is not None:
            context["ann"] = graph
        g = graph.copy()
        for n, p in g.nodes.items():
            if isinstance(p, P.BatchNorm):
                src = g.inputs_of(n)[0]
                raise PassError(f"BatchNorm `{n}` is still in the graph (after `{src}`, {g.nodes[src].op}); run "
                                "fold-batchnorm first, and export models whose BatchNorms follow a Conv/Linear")
            if isinstance(p, P.Neuron) or isinstance(p, (P.PoissonRate, P.Latency)):
                raise PassError(f"node `{n}` ({p.op}) is already spiking; ann-to-snn expects an ANN graph")
        self._drop_softmax(g)
        for n in list(g.nodes):
            if isinstance(g.nodes[n], P.ReLU):
                g.nodes[n] = self.make_neuron(g)
        self._maxpools(g)
        self._readouts(g)
        self._encode(g)
        return g

    # ------------------------------------------------------------------ steps
    def _drop_softmax(self, g: Graph) -> None:
        for n in list(g.nodes):
            if isinstance(g.nodes[n], P.Softmax):
                users = g.users_of(n)
                if not users or not all(isinstance(g.nodes[u], P.Output) for u in users):
                    raise PassError(f"Softmax `{n}` feeds {users}; only a Softmax right before an Output can be "
                                    "dropped (it does not change the arg-max)")
                bypass(g, n)

    def _maxpools(self, g: Graph) -> None:
        types = g.verify()
        for m in list(g.nodes):
            p = g.nodes[m]
            if not isinstance(p, P.MaxPool2d):
                continue
            (src,) = g.inputs_of(m)
            method = self.maxpool
            if method == "auto":
                method = "current" if self._constant_current(g, src) else "decompose"
            if method == "avg":
                g.nodes[m] = P.AvgPool2d(kernel=p.kernel, stride=p.stride, padding=p.padding)
            elif method == "current" and isinstance(g.nodes[src], P.Neuron) and g.users_of(src) == [m]:
                self._pool_current(g, m, src)
            elif method == "decompose" and isinstance(g.nodes[src], P.Neuron) and g.nodes[src].spiking:
                self._pool_decompose(g, m, p, src, types[src].shape)
            # else: the pool reads an analog current (a MaxPool before the ReLU in the ANN): it stays

    @staticmethod
    def _constant_current(g: Graph, neuron: str) -> bool:
        """True if `neuron` is driven by a synapse fed straight by an analog Input (constant over time)."""
        if not isinstance(g.nodes[neuron], P.Neuron):
            return False
        (cur,) = g.inputs_of(neuron)
        if not isinstance(g.nodes[cur], WEIGHTED):
            return False
        return all(isinstance(g.nodes[s], P.Input) and g.nodes[s].kind == "analog" for s in g.inputs_of(cur))

    @staticmethod
    def _pool_current(g: Graph, m: str, src: str) -> None:
        # relu(maxpool(I)) == maxpool(relu(I)): pool the current, then spike. Rewire
        # cur -> src(neuron) -> m(pool) -> users  into  cur -> m(pool) -> src(neuron) -> users.
        (cur,) = g.inputs_of(src)
        edges = []
        for e in g.edges:
            if e.src == cur and e.dst == src:
                e = Edge(cur, m, 0)
            elif e.src == src and e.dst == m:
                e = Edge(m, src, 0)
            elif e.src == m:
                e = Edge(src, e.dst, e.dst_port)
            edges.append(e)
        g.edges = edges

    def _pool_decompose(self, g: Graph, m: str, p: P.MaxPool2d, src: str, shape: tuple[int, ...]) -> None:
        """max(e_0..e_K-1) as a running max m_j = m_{j-1} + relu(e_j - m_{j-1}) over spike counts.

        Window elements are picked by depthwise convolutions (zero padding is exact for the non-negative
        rates of spiking inputs); each relu is an IF neuron fed by e_j - e_0 - r_1 - ... - r_{j-1}; the
        pool's output is e_0 + r_1 + ... + r_{K-1}, whose rate is the maximum of the window's rates.
        """
        c = shape[0]
        kh, kw = p.kernel

        def pick(plus: int, minus: int | None = None) -> P.Conv2d:
            w = np.zeros((c, 1, kh, kw))
            w[:, 0, plus // kw, plus % kw] = 1.0
            if minus is not None:
                w[:, 0, minus // kw, minus % kw] = -1.0
            return P.Conv2d(weight=w, stride=p.stride_, padding=p.padding, groups=c)

        base = g.add(fresh_name(g, f"{m}_e0"), pick(0), src)
        rs: list[str] = []
        negs: list[str] = []
        for j in range(1, kh * kw):
            diff = g.add(fresh_name(g, f"{m}_d{j}"), pick(j, 0), src)
            inp = g.add(fresh_name(g, f"{m}_s{j}"), P.Add(), diff, *negs) if negs else diff
            r = g.add(fresh_name(g, f"{m}_r{j}"), P.IF(theta=1.0, reset="subtract", v_init=self.v_init), inp)
            rs.append(r)
            negs.append(g.add(fresh_name(g, f"{m}_n{j}"), P.Scale(factor=-1.0), r))
        g.edges = [e for e in g.edges if e.dst != m]
        g.nodes[m] = P.Add()  # the pool's users keep reading node `m`
        for i, s in enumerate([base, *rs]):
            g.connect(s, m, i)

    def _readouts(self, g: Graph) -> None:
        for o in g.output_names:
            (src,) = g.inputs_of(o)
            sp = g.nodes[src]
            if isinstance(sp, P.Neuron):
                continue  # the network already ends in spiking neurons
            prim = self.make_neuron(g, readout=True) if self.readout == "count" else P.Integrator(r=1.0)
            new = fresh_name(g, f"{o}_readout")
            for i, e in enumerate(g.edges):
                if e.dst == o:
                    g.edges[i] = Edge(new, o, e.dst_port)
            g.add(new, prim, src)

    def _encode(self, g: Graph) -> None:
        if self.encoding != "poisson":
            return
        for n in g.input_names:
            enc = insert_after(g, n, f"{n}_poisson", P.PoissonRate(gain=self.gain, seed=self.seed))
            if self.gain != 1.0:  # rate = gain * x: the first synapses undo the gain
                for u in g.users_of(enc):
                    up = g.nodes[u]
                    if not isinstance(up, WEIGHTED):
                        raise PassError(f"encoding gain {self.gain} needs the input `{n}` to feed synapses "
                                        f"only; it feeds `{u}` ({up.op})")
                    g.replace(u, weight=up.weight / self.gain)
