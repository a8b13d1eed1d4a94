"""Legalization: what a target accepts, as data, and the passes that make a graph acceptable.

Each target declares a `Legality`: the primitives it takes, why it takes no others, its canonical
pipeline (exact passes only: the graph keeps its function up to float rounding) and, per illegal
primitive, the pass that would legalize it and at what cost. `legalize(graph, legality)` runs the
pipeline and refuses, listing every node still illegal, each with the target's reason and the remedy.
`n3ml convert` and `n3ml verify` call it before the target's own (finer) check; `n3ml targets` prints
the tables.

The passes defined here are the target-neutral rewrites the pipelines use:

* `merge-linear` (exact): a Dense whose only user is a Dense becomes one Dense,
  W = W2 W1, b = W2 b1 + b2 (targets whose neurons read one synapse each, like Lava).
* `maxpool-as-or` (exact): a MaxPool2d over spikes is an OR of each window: SumPool2d -> IF(theta=0.5,
  reset to 0), one extra neuron per pooled value (one step of latency on targets that pay per synapse).
* `pool-after-neuron` (approximation): Pool -> Neuron with the pool a MaxPool2d of analog currents
  becomes Neuron -> MaxPool2d of spikes (then an OR). The neuron integrates every current of the window
  instead of their maximum: the pooled spike train is the OR of the window's spike trains, which is
  not the spike train of the maximum current. `n3ml verify` measures the effect against the graph
  without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx
import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph
from ..ir import prims as P
from ..ir.graph import Edge
from .base import Pass, PassError, PassManager, get_pass_class
from .cleanup import bypass

# ------------------------------------------------------------------ the tables a target declares


@dataclass(frozen=True)
class Remedy:
    """The pass that legalizes a primitive, on which inputs (`on`: "any", "spike" or "analog") and at what cost."""

    pass_name: str
    cost: str  # "exact" or what is lost
    on: str = "any"


@dataclass(frozen=True)
class Legality:
    """What one target accepts.

    Attributes:
        target: the target's name.
        legal: primitive op name -> note (what it becomes on the target).
        reason: why the target takes no other primitive.
        pipeline: the canonical legalization pipeline, exact passes only, run before the target's check.
        remedies: op name -> the passes that would legalize it (the first whose `on` matches is named).
        why: op name -> a reason specific to that op (instead of `reason`).
    """

    target: str
    legal: dict[str, str]
    reason: str
    pipeline: tuple[str, ...] = ()
    remedies: dict[str, tuple[Remedy, ...]] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)

    @property
    def pipeline_text(self) -> str:
        return ",".join(self.pipeline)


# the exact rewrites that give every neuron one synapse (or an Add of synapses) of spikes: the Lava target's
# legalization, and quantize's canonical form before it fits fixed-point formats (one list, so they cannot drift)
SYNAPSE_PER_NEURON = ("fuse-synapse-filter", "fold-batchnorm", "fold-scales", "remove-identity", "maxpool-as-or", "spike-gates",
                      "fold-synaptic-reset", "spikes-as-synapse", "split-shared-synapses", "fold-scales",
                      "distribute-synapse", "dce", "merge-convs", "merge-pool-dense", "merge-linear", "fuse-synaptic",
                      "remove-identity", "dce")

# remedies every spiking target shares (the passes are the same; the costs are theirs)
FOLD_BN = Remedy("fold-batchnorm", "exact, when the BatchNorm follows a Dense/Conv used only by it")
FOLD_SCALE = Remedy("fold-scales", "exact, when the Scale is next to a Dense/Conv (per channel for a Conv)")
MAXPOOL_SPIKES = Remedy("maxpool-as-or", "exact: one IF neuron per pooled value", on="spike")
MAXPOOL_CURRENT = Remedy("pool-after-neuron", "approximation: the neuron integrates every current of the window "
                                              "and the spikes are pooled (`n3ml verify` measures the agreement)",
                         on="analog")
ANN = Remedy("ann-to-snn", "approximation: rate coding over the time steps (see docs/conversion.md)")


def spike_gated_loop(graph: Graph, name: str) -> str:
    """Why a node in a loop of analog values through a ReLU maps to no neuron and synapse (float or fixed
    point), or "".

    SpikingJelly's SynapseFilter, i = i - (1 - s) i / tau + s, traces as Add(i_prev, -ReLU(i_prev / tau -
    BIG s), s): its current decays only on steps without an input spike. That is a product of a spike and a
    state; a LIF (float or fixed point) decays by one factor every step and a synapse only adds, so neither
    computes it (it needs a custom neuron model)."""
    nxg = graph.to_networkx()
    if not nxg.has_node(name):
        return ""
    loop = (nx.descendants(nxg, name) & nx.ancestors(nxg, name)) | {name}
    gates = sorted(n for n in loop if isinstance(graph.nodes[n], P.ReLU))
    if not gates or not any(isinstance(graph.nodes[n], P.Delay) for n in loop):
        return ""
    return (f": a state that decays only on steps without an input spike (a loop through the ReLU `{gates[0]}`, "
            "like SpikingJelly's SynapseFilter, i = i - (1 - s) i / tau + s), a product of spike and state that no "
            "neuron decaying by one factor every step and no additive synapse computes. The IR's SynapseFilter "
            "primitive computes it (the SpikingJelly frontend writes it), and `fuse-synapse-filter`, part of "
            "the legalization, makes one of the exact form P = Delay(1, I), I = Add(P, -ReLU(Scale(k, P) - M s), s) "
            "(0 <= k <= 1, M >= 2^32); this loop is not of that form")


def illegal_nodes(graph: Graph, legality: Legality) -> list[str]:
    """One line per node the target does not accept: name, op, the target's reason and the remedy if any."""
    types = graph.verify()
    problems = []
    for name, prim in graph.nodes.items():
        if prim.op in legality.legal:
            continue
        kinds = [types[s].kind for s in graph.inputs_of(name)]
        kind = kinds[0] if kinds else "any"
        remedy = next((r for r in legality.remedies.get(prim.op, ()) if r.on in ("any", kind)), None)
        on = f" on {kind} inputs" if kinds else ""
        gated = spike_gated_loop(graph, name)  # the real reason a Scale or ReLU of such a loop is left
        line = f"node `{name}` ({prim.op}){on}" + (gated or f": {legality.why.get(prim.op, legality.reason)}")
        if remedy is not None and not gated:
            line += f"; `-p {remedy.pass_name}` would legalize it ({remedy.cost})"
        problems.append(line)
    return problems


def legalize(graph: Graph, legality: Legality, context: dict[str, Any] | None = None) -> Graph:
    """Run the target's pipeline, then refuse (UnsupportedError listing every node) what is still illegal."""
    if legality.pipeline:
        try:
            graph = PassManager([get_pass_class(n)() for n in legality.pipeline]).run(graph, context)
        except PassError as e:  # an exact pass that cannot apply leaves the graph illegal for this target
            raise UnsupportedError(f"legalization for {legality.target} {e}") from None
    problems = illegal_nodes(graph, legality)
    if problems:
        raise UnsupportedError("\n  ".join(problems) + f"\n  (the {legality.target} target refuses these after its "
                               f"legalization: {', '.join(legality.pipeline) or 'no passes'})")
    return graph


def describe(legality: Legality) -> str:
    """The one line convert and verify print: "legalize for nest: fold-batchnorm, fold-scales, ..."."""
    return f"legalize for {legality.target}: {', '.join(legality.pipeline) or '(nothing to do)'}"


def legalize_for(target: Any, graph: Graph, *, say: Callable[[str], Any] | None = print) -> Graph:
    """Legalize `graph` for a target object that declares `legality` (others take the graph as it is)."""
    legality = getattr(target, "legality", None)
    if legality is None:
        return graph
    if say is not None:
        say(describe(legality))
    return legalize(graph, legality)


# ------------------------------------------------------------------------------ the passes


def _float(prim) -> bool:
    return prim.weight.dtype.kind == "f" and getattr(prim, "weight_format", None) is None


@dataclass(frozen=True, kw_only=True)
class MergeLinear(Pass):
    """Merge a Dense whose only user is another Dense into it: W = W2 W1, b = W2 b1 + b2 (float weights;
    the second Dense keeps its name, so its users and Outputs are unchanged)."""

    name = "merge-linear"
    summary = "merge chained Dense -> Dense synapses into one Dense"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        changed = True
        while changed:
            changed = False
            for n, p in list(g.nodes.items()):
                if not isinstance(p, P.Dense) or not _float(p):
                    continue
                (src,) = g.inputs_of(n)
                sp = g.nodes[src]
                if isinstance(sp, P.Dense) and _float(sp) and g.users_of(src) == [n]:
                    w2 = np.asarray(p.weight, np.float64)
                    b1 = np.zeros(sp.weight.shape[0]) if sp.bias is None else sp.bias
                    bias = w2 @ b1 + (0.0 if p.bias is None else p.bias)
                    keep_bias = sp.bias is not None or p.bias is not None
                    g.replace(n, weight=w2 @ np.asarray(sp.weight, np.float64), bias=bias if keep_bias else None)
                    bypass(g, src)
                    changed = True
                    break
        return g


@dataclass(frozen=True, kw_only=True)
class FuseSynaptic(Pass):
    """LI -> LIF, the LI feeding only the LIF with v_leak = v_init = 0 (snnTorch's Synaptic, Norse's LIF with a
    current traced as two neurons) becomes one CubaLIF: with c1 = r g of the LI and i = j / c1, the pair is
    i = a_s i + I, v = v_leak + a_m (v - v_leak) + (c1 r g_m) i, i.e. CubaLIF(tau_syn = the LI's tau,
    tau_mem, r = c1 r). Exact up to float rounding; the CubaLIF keeps the LIF's name."""

    name = "fuse-synaptic"
    summary = "LI -> LIF (a synaptic current and its membrane) -> one CubaLIF"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        from ..ir import neurons as N

        g = graph
        for name, p in graph.nodes.items():
            if type(p) is not P.LIF:
                continue
            (src,) = graph.inputs_of(name)
            li = graph.nodes[src]
            if (type(li) is not P.LI or graph.users_of(src) != [name] or np.any(np.asarray(li.v_leak))
                    or np.any(np.asarray(li.v_init))):
                continue
            if g is graph:
                g = graph.copy()
            c1 = N.discretize(li, float(graph.dt), graph.scheme).rg
            keep = {f: getattr(p, f) for f in ("theta", "v_reset", "reset", "refractory", "v_init", "detach_reset",
                                               "surrogate", "slope", "v_leak")}
            g.nodes[name] = P.CubaLIF(tau_syn=li.tau, tau_mem=p.tau,
                                      r=np.asarray(p.r, np.float64) * np.asarray(c1, np.float64), **keep)
            bypass(g, src)
        return g


def _insert_before(g: Graph, name: str, new: str, prim: P.Primitive) -> str:
    """Put node `new` in front of `name` (taking over its input edges), keeping the dict's order."""
    new = g.fresh_name(new)
    nodes = {}
    for n, q in g.nodes.items():
        if n == name:
            nodes[new] = prim
        nodes[n] = q
    g.nodes = nodes
    g.edges = [Edge(e.src, new, e.dst_port) if e.dst == name else e for e in g.edges] + [Edge(new, name)]
    return new


@dataclass(frozen=True, kw_only=True)
class MaxPoolAsOr(Pass):
    """Replace every MaxPool2d over spikes by SumPool2d -> IF(theta=0.5, reset to 0): an OR neuron.

    Over spikes (0/1) the window maximum is 1 exactly when the window sum is >= 1; the IF starts every
    step at 0 (reset after each spike, a silent window adds 0), so it fires exactly when the sum exceeds
    0.5. Zero padding equals MaxPool's -inf padding because every window holds a real entry. The IF keeps
    the MaxPool's name, so its users and Outputs are unchanged.
    """

    name = "maxpool-as-or"
    summary = "MaxPool2d over spikes -> SumPool2d and an OR neuron (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        types = graph.verify()
        pools = [n for n, p in graph.nodes.items()
                 if isinstance(p, P.MaxPool2d) and types[graph.inputs_of(n)[0]].kind == "spike"]
        if not pools:
            return graph
        g = graph.copy()
        for name in pools:
            p = g.nodes[name]
            _insert_before(g, name, name + "_sum", P.SumPool2d(kernel=p.kernel, stride=p.stride, padding=p.padding))
            g.nodes[name] = P.IF(theta=0.5, reset="to-value", v_reset=0.0)
        return g


def _channel_param(v, pooled: tuple[int, ...]) -> bool:
    """Whether a neuron parameter is a scalar or one value per channel (so it fits the unpooled map)."""
    a = np.asarray(v)
    if a.ndim == 0 or a.size == 1:
        return True
    full = np.broadcast_to(a, pooled).reshape(pooled[0], -1)
    return bool(np.all(full == full[:, :1]))


@dataclass(frozen=True, kw_only=True)
class PoolAfterNeuron(Pass):
    """Approximation: MaxPool2d(currents) -> Neuron becomes Neuron -> MaxPool2d(spikes).

    A spiking target cannot take the maximum of currents. This moves the pool after the neuron: the
    neuron runs on the whole map and each pooled output spikes when any neuron of its window does. That
    is not the same train as a neuron driven by the window's maximum current (a window whose currents are
    all below threshold can still fire through accumulation in several neurons), so it changes the
    function: `n3ml verify` reports the agreement with the graph without this pass. Per-neuron parameters
    must be per channel (they are spread over the unpooled map).
    """

    name = "pool-after-neuron"
    summary = "approximation: MaxPool2d of currents -> neuron becomes neuron -> MaxPool2d of spikes"
    approximate = True

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        types = g.verify()
        for name, prim in list(g.nodes.items()):
            if not isinstance(prim, P.MaxPool2d) or types[g.inputs_of(name)[0]].kind != "analog":
                continue
            users = g.users_of(name)
            if _pool_with_reset_loop(g, name, types):
                types = g.verify()
                continue
            if len(users) != 1 or not isinstance(g.nodes[users[0]], P.Neuron) or not g.nodes[users[0]].spiking:
                raise PassError(f"node `{name}` (MaxPool2d of currents) feeds {users}; pool-after-neuron needs "
                                "exactly one spiking neuron after it")
            neuron, np_ = users[0], g.nodes[users[0]]
            pooled = types[name].shape
            for f in np_._shape_params():
                v = getattr(np_, f)
                if not _channel_param(v, pooled):
                    raise PassError(f"node `{neuron}` ({np_.op}): `{f}` varies within a channel; pool-after-"
                                    "neuron spreads parameters over the unpooled map, so they must be per channel")
            changes = {f: np.asarray(getattr(np_, f)).reshape(-1)[:pooled[0]].reshape(-1, 1, 1)
                       if np.asarray(getattr(np_, f)).size > 1 else getattr(np_, f) for f in np_._shape_params()}
            # the neuron moves in front of the pool under a new name; the pool takes the neuron's name
            moved = g.fresh_name(neuron + "_unpooled")
            nodes = {}
            for n, q in g.nodes.items():
                if n == name:
                    nodes[moved] = type(np_)(**{**_fields(np_), **changes})
                elif n == neuron:
                    nodes[n] = prim
                    continue
                if n != name:
                    nodes[n] = q
            g.nodes = nodes
            edges = []
            for e in g.edges:
                if e.dst == name:
                    edges.append(Edge(e.src, moved, e.dst_port))
                elif e.src == name and e.dst == neuron:
                    edges.append(Edge(moved, neuron, 0))
                else:
                    edges.append(e)
            g.edges = edges
            types = g.verify()
        return g


def _pool_with_reset_loop(g: Graph, pool: str, types) -> bool:
    """pool-after-neuron for snnTorch's form, MaxPool2d -> Add(pool, Scale(Delay(neuron))) -> neuron (its reset
    term a loop of the neuron's own spikes): the neuron, its loop and the Add move before the pool on the
    unpooled map; the pool takes the neuron's name. In place; False when the pattern is not there."""
    (add,) = g.users_of(pool) if len(g.users_of(pool)) == 1 else (None,)
    if add is None or not isinstance(g.nodes[add], P.Add) or len(g.users_of(add)) != 1:
        return False
    neuron = g.users_of(add)[0]
    np_ = g.nodes[neuron]
    if not isinstance(np_, P.Neuron) or not np_.spiking:
        return False
    pooled, loops = types[pool].shape, []
    for term in g.inputs_of(add):
        if term == pool:
            continue
        sp = g.nodes[term]
        d = g.inputs_of(term)[0] if isinstance(sp, P.Scale) else None
        if (d is None or not isinstance(g.nodes[d], P.Delay) or g.inputs_of(d) != [neuron]
                or g.users_of(term) != [add] or g.users_of(d) != [term] or not _channel_param(sp.factor, pooled)):
            return False
        loops.append((term, d))
    if not loops or any(not _channel_param(getattr(np_, f), pooled) for f in np_._shape_params()):
        return False

    def per_channel(v):
        a = np.asarray(v)
        return a.reshape(-1)[:pooled[0]].reshape(-1, 1, 1) if a.size > 1 else v

    src = g.inputs_of(pool)[0]
    moved, add_u = g.fresh_name(neuron + "_unpooled"), g.fresh_name(add + "_unpooled")
    nodes = dict(g.nodes)
    nodes[moved] = type(np_)(**{**_fields(np_), **{f: per_channel(getattr(np_, f)) for f in np_._shape_params()}})
    nodes[add_u] = P.Add()
    edges = [Edge(src, add_u, 0), Edge(add_u, moved)]
    for i, (term, d) in enumerate(loops, 1):
        du, su = g.fresh_name(d + "_unpooled"), g.fresh_name(term + "_unpooled")
        nodes[du] = g.nodes[d]
        nodes[su] = P.Scale(factor=per_channel(g.nodes[term].factor))
        edges += [Edge(moved, du), Edge(du, su), Edge(su, add_u, i)]
    pool_prim = g.nodes[pool]
    gone = {pool, add, *(t for t, _ in loops), *(d for _, d in loops)}
    g.nodes = {n: q for n, q in nodes.items() if n not in gone}
    g.nodes[neuron] = pool_prim
    g.edges = [e for e in g.edges if e.src not in gone and e.dst not in gone] + edges + [Edge(moved, neuron)]
    return True


def _fields(prim) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(prim, f.name) for f in dataclasses.fields(prim)}


# ------------------------------------------- synapse-level rewrites (targets whose neurons read synapses)

SYNAPSES = (P.Dense, P.Conv2d, P.SumPool2d, P.AvgPool2d)


def _linear_matrix(prim: P.Primitive, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(M, b): the (out, in) matrix and the bias of a linear synapse on inputs of `shape` (C order), found by
    applying it to the unit vectors (interp's own conv/pool, so the merged matrix is the same arithmetic)."""
    from ..ir import interp

    n = int(np.prod(shape))
    eye = np.eye(n).reshape((n,) + tuple(shape))
    if isinstance(prim, P.Conv2d):
        cols = interp.conv2d(eye, np.asarray(prim.weight, np.float64), None, prim.stride, prim.padding,
                             prim.dilation, prim.groups)
        zero = interp.conv2d(np.zeros((1,) + tuple(shape)), np.asarray(prim.weight, np.float64),
                             None if prim.bias is None else np.asarray(prim.bias, np.float64), prim.stride,
                             prim.padding, prim.dilation, prim.groups)
        return cols.reshape(n, -1).T, zero.reshape(-1)
    cols = interp.pool2d(eye, prim)
    return cols.reshape(n, -1).T, np.zeros(cols[0].size)


def _through_flatten(g: Graph, name: str) -> tuple[str, str | None]:
    """(source, flatten): the node feeding `name`, seen through one Flatten used only by `name`."""
    (src,) = g.inputs_of(name)
    if isinstance(g.nodes[src], P.Flatten) and g.users_of(src) == [name]:
        return g.inputs_of(src)[0], src
    return src, None


MERGE_MAX = 1 << 22  # entries of a merged matrix (a convolution over a large map stays a convolution)
MERGE_SCRATCH = 1 << 24  # entries of the first synapse's matrix built on the way (128 MiB in float64)


@dataclass(frozen=True, kw_only=True)
class MergePoolDense(Pass):
    """A pool or convolution feeding (through a Flatten) only a Dense becomes part of that Dense: W = W2 M1,
    b = W2 b1 + b2, M1 the first synapse's matrix (exact; Lava's neurons read one synapse, so two synapses
    in a row, as SpikingJelly's AdaptiveAvgPool2d -> Flatten -> Linear heads, cannot run otherwise)."""

    name = "merge-pool-dense"
    summary = "pool/Conv2d -> (Flatten) -> Dense: one Dense (exact, small maps)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        types = graph.verify()
        for n, p in list(graph.nodes.items()):
            if not isinstance(p, P.Dense) or not _float(p):
                continue
            src, flat = _through_flatten(g, n)
            sp = g.nodes[src]
            if not isinstance(sp, (P.Conv2d, P.SumPool2d, P.AvgPool2d)) or (isinstance(sp, P.Conv2d) and not _float(sp)):
                continue
            users = g.users_of(src)
            if users != [flat or n]:
                continue
            shape = types[g.inputs_of(src)[0]].shape
            n_in = int(np.prod(shape))
            if n_in * types[src].size > MERGE_SCRATCH or p.weight.shape[0] * n_in > MERGE_MAX:
                continue
            if g is graph:
                g = graph.copy()
            m1, b1 = _linear_matrix(sp, shape)
            w2 = np.asarray(p.weight, np.float64)
            bias = w2 @ b1 + (0.0 if p.bias is None else p.bias)
            keep = bool(np.any(b1)) or p.bias is not None
            # the Dense reads the first synapse's input through the Flatten (or directly, a flat input)
            g.nodes[n] = P.Dense(weight=w2 @ m1, bias=bias if keep else None)
            bypass(g, src)
        return g


def _identity_synapse(factor, shape: tuple[int, ...]) -> P.Primitive | None:
    """A synapse computing factor * x on spikes of `shape`: a diagonal Dense for a vector, a depthwise 1x1
    Conv2d for a (C, H, W) map whose factor is one per channel; None when neither fits."""
    f = np.asarray(factor, np.float64)
    if len(shape) == 1:
        return P.Dense(weight=np.diag(np.broadcast_to(f, shape).astype(np.float64)))
    if len(shape) == 3 and _channel_param(f, shape):
        per = np.broadcast_to(f, shape).reshape(shape[0], -1)[:, 0] if f.size > 1 else np.full(shape[0], float(f))
        return P.Conv2d(weight=per.reshape(shape[0], 1, 1, 1).copy(), groups=shape[0])
    return None


def _carried(g: Graph, types, name: str) -> bool:
    """Whether `name` is what a synapse can read directly: spikes, or an analog graph Input (through one
    Flatten), which the targets carry as graded spikes."""
    if types[name].kind == "spike":
        return True
    p = g.nodes[name]
    origin = g.inputs_of(name)[0] if isinstance(p, P.Flatten) else name
    return isinstance(g.nodes[origin], P.Input)


@dataclass(frozen=True, kw_only=True)
class SpikesAsSynapse(Pass):
    """Spikes (or a graph Input's analog values) that reach a neuron (or an Add) without a synapse get one,
    exactly:

    * a Scale of spikes becomes a synapse of weight `factor` (snnTorch's reset term, `lif_reset =
      Scale(Delay(lif))`, becomes the neuron's diagonal self-connection; SpikingJelly's `/ T` of a counter
      a synapse an Output reads);
    * a Scale of an analog Input (through a Flatten), which fold-scales could not fold because no Dense/Conv
      reads it, likewise (Norse's ConstantCurrentLIFEncoder, `LIF(6 x)`): targets whose neurons read
      synapses carry the input as graded spikes through it, and quantize's input_scale applies to it;
    * spikes or an analog Input added to currents or driving a neuron directly (a residual identity) get an
      identity synapse.

    The synapse is a diagonal Dense (vectors) or a depthwise 1x1 Conv2d (maps, per-channel factors)."""

    name = "spikes-as-synapse"
    summary = "Scale of spikes or of an analog Input, and either into an Add or a neuron -> a diagonal synapse (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        types = graph.verify()
        for n, p in list(graph.nodes.items()):
            src = graph.inputs_of(n)[0] if isinstance(p, P.Scale) else None
            if src is None or not _carried(graph, types, src):
                continue
            syn = _identity_synapse(p.factor, types[n].shape)
            if syn is not None:
                if g is graph:
                    g = graph.copy()
                g.nodes[n] = syn
        types = g.verify()
        for n, p in list(g.nodes.items()):
            # a synapse filter reads its spikes directly (its update selects by them): no synapse in front
            if not isinstance(p, (P.Add, P.Neuron)) or isinstance(p, (P.SynapseFilter, P.FixedSynapseFilter)):
                continue
            for port, src in enumerate(g.inputs_of(n)):
                if not _carried(g, types, src) or isinstance(g.nodes[src], SYNAPSES):
                    continue
                syn = _identity_synapse(1.0, types[src].shape)
                if syn is None:
                    continue
                if g is graph:
                    g = graph.copy()
                new = g.fresh_name(f"{src}_to_{n}")
                g.nodes = {**g.nodes, new: syn}
                g.edges = [Edge(new, e.dst, e.dst_port) if e.src == src and e.dst == n and e.dst_port == port
                           else e for e in g.edges] + [Edge(src, new)]
        return g


def _add_terms(g: Graph, add: str) -> list[str]:
    """The terms of an Add, nested Adds opened (SEW-ResNet's running sum of spike trains)."""
    out = []
    for t in g.inputs_of(add):
        out += _add_terms(g, t) if isinstance(g.nodes[t], P.Add) else [t]
    return out


@dataclass(frozen=True, kw_only=True)
class DistributeSynapse(Pass):
    """A synapse reading an Add of spike trains (SEW-ResNet's `out + identity` into the next convolution),
    or of pools read only by it (its pooled head), becomes an Add of one synapse per term, W (x + y) = W x + W y (the bias once); exact. The Add of the
    synapses keeps the synapse's name."""

    name = "distribute-synapse"
    summary = "synapse(Add of spikes) -> Add of synapses (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        changed = True
        while changed:
            changed = False
            types = g.verify()
            for n, p in list(g.nodes.items()):
                if not isinstance(p, SYNAPSES):
                    continue
                src, flat = _through_flatten(g, n)
                add = g.nodes[src]
                terms = _add_terms(g, src) if isinstance(add, P.Add) else []
                if not terms or not all(types[s].kind == "spike" or isinstance(g.nodes[s], SYNAPSES) for s in terms):
                    continue  # (a term that is a synapse is copied for this reader: merge-convs/-pool-dense merge it)
                if g is graph:
                    g = graph.copy()
                parts = []
                for i, t in enumerate(terms):
                    head = t
                    if isinstance(g.nodes[t], SYNAPSES):  # a copy of its own, which the part alone reads
                        head = g.fresh_name(f"{t}_{n}")
                        g.nodes = {**g.nodes, head: g.nodes[t]}
                        g.edges.append(Edge(g.inputs_of(t)[0], head))
                    if flat is not None:
                        t = head
                        head = g.fresh_name(f"{flat}_{i}")
                        g.nodes = {**g.nodes, head: P.Flatten()}
                        g.edges.append(Edge(t, head))
                    part = g.fresh_name(f"{n}_{i}")
                    prim = p if i == 0 or getattr(p, "bias", None) is None else type(p)(**{**_fields(p), "bias": None})
                    g.nodes = {**g.nodes, part: prim}
                    g.edges.append(Edge(head, part))
                    parts.append(part)
                g.nodes[n] = P.Add()
                g.edges = [e for e in g.edges if e.dst != n] + [Edge(s, n, i) for i, s in enumerate(parts)]
                changed = True
                break
        return _open_nested_adds(g, graph)  # the Add left unread goes with dce


def _open_nested_adds(g: Graph, graph: Graph) -> Graph:
    """An Add whose term is an Add reads that Add's terms instead (exact up to the order of float additions):
    a neuron reads one Add of synapses (MS-ResNet's residual stream, `add_2 = conv + add`, is a nested sum).
    A synapse term of an inner Add that others still read is copied for the outer one (a quantized synapse
    feeds one neuron); an inner Add read only through the outer one goes, its synapses moving. `g` is `graph`
    or already a copy of it."""
    for n in graph.topo_order():
        if n not in g.nodes or not isinstance(g.nodes[n], P.Add):
            continue
        if not any(isinstance(g.nodes[t], P.Add) for t in g.inputs_of(n)):
            continue
        if g is graph:
            g = graph.copy()
        opened: list[str] = []

        def gather(add: str, own: bool) -> list[str]:
            out = []
            for u in g.inputs_of(add):
                if isinstance(g.nodes[u], P.Add):
                    opened.append(u)
                    out += gather(u, own and g.users_of(u) == [add])
                elif not own and isinstance(g.nodes[u], SYNAPSES):  # still read through another Add
                    copy = g.fresh_name(f"{u}_{n}")
                    g.nodes = {**g.nodes, copy: g.nodes[u]}
                    g.edges.append(Edge(g.inputs_of(u)[0], copy))
                    out.append(copy)
                else:
                    out.append(u)
            return out

        terms = gather(n, True)
        g.edges = [e for e in g.edges if e.dst != n] + [Edge(t, n, i) for i, t in enumerate(terms)]
        for t in opened:  # in the order met: an Add is met before the Adds it reads
            if t in g.nodes and not g.users_of(t):
                g.remove(t)
    return g


@dataclass(frozen=True, kw_only=True)
class SplitSharedSynapses(Pass):
    """A synapse read by several nodes becomes one copy per reader (exact; quantize fits a synapse's weights
    to the one neuron it feeds, whose threshold scales them)."""

    name = "split-shared-synapses"
    summary = "a synapse read by several nodes -> one copy per reader (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        for n, p in list(graph.nodes.items()):
            if not isinstance(p, SYNAPSES):
                continue
            readers = [e for e in g.edges if e.src == n]
            if len(readers) < 2:
                continue
            if g is graph:
                g = graph.copy()
            (src,) = g.inputs_of(n)
            readers = [e for e in g.edges if e.src == n]
            for i, e in enumerate(readers[1:], 1):
                copy = g.fresh_name(f"{n}_{i}")
                g.nodes = {**g.nodes, copy: p}
                g.edges = [Edge(copy, e.dst, e.dst_port) if x is e else x for x in g.edges] + [Edge(src, copy)]
        return g


def _full_weight(prim: P.Primitive, cin: int) -> np.ndarray | None:
    """The (out, in, kh, kw) weight of a Conv2d (groups expanded to zero blocks) or a pool (a diagonal of its
    window); None for a dilated or integer convolution."""
    if isinstance(prim, P.Conv2d):
        if tuple(prim.dilation) != (1, 1) or not _float(prim):
            return None
        w = np.asarray(prim.weight, np.float64)
        if prim.groups == 1:
            return w
        co, cig = w.shape[0], w.shape[1]
        cog = co // prim.groups
        full = np.zeros((co, cin) + w.shape[2:])
        for gi in range(prim.groups):
            full[gi * cog:(gi + 1) * cog, gi * cig:(gi + 1) * cig] = w[gi * cog:(gi + 1) * cog]
        return full
    kh, kw = prim.kernel
    full = np.zeros((cin, cin, kh, kw))
    full[np.arange(cin), np.arange(cin)] = 1.0 / (kh * kw) if isinstance(prim, P.AvgPool2d) else 1.0
    return full


def _compose_unpadded(c1: P.Primitive, c2: P.Primitive, shape: tuple[int, ...]) -> P.Conv2d | None:
    """c2 after c1 as one Conv2d where c2 (a Conv2d or a pool) has no padding (a ResNet's 1x1 downsample
    convolution reading the residual sum, whose terms are convolutions; SEW-ResNet's average pool of an
    identity synapse), or None.

    Without c2's padding every tap of c2 reads a real output of c1, so the composite is exact for any c1
    (Conv2d or pool, any stride, padding, groups, bias): W[o, c, a s1 + i, b s1 + j] = sum_m w2[o, m, a, b]
    w1[m, c, i, j], stride s1 s2, c1's padding, bias b2 + sum w2 b1. Its output size equals c2's
    (floor((H + 2 p1 - k1 - (k2 - 1) s1) / (s1 s2)) = floor((H1 - k2) / s2) with H1 c1's output size)."""
    pool2 = isinstance(c2, P._Pool2d)
    if tuple(c2.padding) != (0, 0) or (not pool2 and (tuple(c2.dilation) != (1, 1) or not _float(c2))):
        return None
    w1 = _full_weight(c1, shape[0])
    w2 = _full_weight(c2, w1.shape[0]) if w1 is not None else None
    if w2 is None:
        return None
    s1 = tuple(c1.stride_ if isinstance(c1, P._Pool2d) else c1.stride)
    k1, k2 = w1.shape[2:], w2.shape[2:]
    kh, kw = k1[0] + (k2[0] - 1) * s1[0], k1[1] + (k2[1] - 1) * s1[1]
    if w2.shape[0] * shape[0] * kh * kw > MERGE_MAX:
        return None
    w = np.zeros((w2.shape[0], shape[0], kh, kw))
    for a in range(k2[0]):
        for b in range(k2[1]):
            w[:, :, a * s1[0]:a * s1[0] + k1[0], b * s1[1]:b * s1[1] + k1[1]] += np.einsum(
                "om,mcij->ocij", w2[:, :, a, b], w1)
    b1, b2 = getattr(c1, "bias", None), getattr(c2, "bias", None)
    bias = b2
    if b1 is not None:
        bias = np.einsum("omab,m->o", w2, np.asarray(b1, np.float64)) + (0.0 if b2 is None else b2)
    s2 = tuple(c2.stride_ if pool2 else c2.stride)
    return P.Conv2d(weight=w, bias=bias, stride=(s1[0] * s2[0], s1[1] * s2[1]), padding=tuple(c1.padding))


def _per_channel(c: P.Conv2d, C: int) -> np.ndarray | None:
    """The (C, kh, kw) kernel of a convolution that maps each channel to itself: depthwise, or a full kernel that
    is zero off the channel diagonal (a Scale of spikes composed with an average pool: SpikingJelly's OTTT VGG)."""
    w = np.asarray(c.weight, np.float64)
    if c.groups == C and w.shape[0] == C:
        return w[:, 0]
    if c.groups != 1 or w.shape[:2] != (C, C):
        return None
    diag = w[np.arange(C), np.arange(C)]
    off = w.copy()
    off[np.arange(C), np.arange(C)] = 0.0
    return diag if not off.any() else None


def _compose_conv(c1: P.Primitive, c2: P.Conv2d, shape: tuple[int, ...]) -> P.Conv2d | None:
    """c2 after c1 as one Conv2d, or None where that is not exact (the tiling case below, else
    `_compose_unpadded`).

    Exact when c1 tiles its input (stride = kernel, no padding, no bias, the map a whole number of tiles,
    depthwise or a pool) and c2 has no dilation or groups: the composite kernel puts c1's window under each
    of c2's taps, W[o, c, a s + i, b s + j] = w2[o, c, a, b] w1[c, i, j], stride s s2, padding p2 s (c2's
    zero padding of c1's output is a padding of whole tiles of c1's input)."""
    k1, s1 = tuple(c1.kernel if isinstance(c1, P._Pool2d) else c1.weight.shape[2:]), tuple(
        c1.stride_ if isinstance(c1, P._Pool2d) else c1.stride)
    C = shape[0]
    if isinstance(c1, P.Conv2d):
        w1 = _per_channel(c1, C)
        if c1.bias is not None or w1 is None or tuple(c1.dilation) != (1, 1) or not _float(c1):
            return _compose_unpadded(c1, c2, shape)
    elif isinstance(c1, (P.SumPool2d, P.AvgPool2d)):
        w1 = np.full((C,) + k1, 1.0 / (k1[0] * k1[1]) if isinstance(c1, P.AvgPool2d) else 1.0)
    else:
        return None
    if (k1 != s1 or tuple(c1.padding) != (0, 0) or shape[1] % s1[0] or shape[2] % s1[1] or c2.groups != 1
            or tuple(c2.dilation) != (1, 1) or not _float(c2)):
        return _compose_unpadded(c1, c2, shape)
    w2 = np.asarray(c2.weight, np.float64)
    o, _, kh, kw = w2.shape
    w = np.zeros((o, C, kh * s1[0], kw * s1[1]))
    for a in range(kh):
        for b in range(kw):
            w[:, :, a * s1[0]:(a + 1) * s1[0], b * s1[1]:(b + 1) * s1[1]] = w2[:, :, a, b][:, :, None, None] * w1[None]
    return P.Conv2d(weight=w, bias=c2.bias, stride=(s1[0] * c2.stride[0], s1[1] * c2.stride[1]),
                    padding=(s1[0] * c2.padding[0], s1[1] * c2.padding[1]))


@dataclass(frozen=True, kw_only=True)
class MergeConvs(Pass):
    """A Conv2d whose input is a convolution or pool becomes one Conv2d (exact; `_compose_conv`) where the
    two compose: the first tiles its input (the max-pool that ann-to-snn decomposes selects each window's
    entry with such a convolution, which the next layer's convolution then reads), or the second has no
    padding (MS-ResNet's 1x1 downsample convolutions reading the residual sum of convolutions). An unpadded
    pool of a Conv2d likewise becomes one Conv2d (SEW-ResNet's average pool of an identity synapse). A first
    convolution read by others too stays for them."""

    name = "merge-convs"
    summary = "Conv2d/pool -> Conv2d or unpadded pool (tiling first, or unpadded second): one Conv2d (exact)"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph
        types = graph.verify()  # a composite keeps its node's shape, so the types hold throughout
        for n in graph.topo_order():  # upstream first: a chain c0 -> c1 -> c2 composes c1 with c0, then c2
            while n in g.nodes and isinstance(g.nodes[n], (P.Conv2d, P.SumPool2d, P.AvgPool2d)):
                p = g.nodes[n]
                (src,) = g.inputs_of(n)
                if not isinstance(g.nodes[src], P.Conv2d if isinstance(p, P._Pool2d) else
                                  (P.Conv2d, P.SumPool2d, P.AvgPool2d)):
                    break  # (a pool of a pool is left to the targets that take pools)
                (origin,) = g.inputs_of(src)
                if isinstance(p, P._Pool2d):
                    merged = _compose_unpadded(g.nodes[src], p, types[origin].shape)
                else:
                    merged = _compose_conv(g.nodes[src], p, types[origin].shape)
                if merged is None:
                    break
                if g is graph:
                    g = graph.copy()
                g.nodes[n] = merged
                if g.users_of(src) == [n]:
                    bypass(g, src)
                else:  # the first convolution keeps its other readers
                    g.edges = [Edge(origin, n, e.dst_port) if e.dst == n else e for e in g.edges]
        return g
