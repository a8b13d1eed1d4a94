"""Lower an n3ml IR graph to a NIR graph that one NIR reader (the consumer convention) runs exactly.

NIR sums every edge into a node, so IR `Add` nodes disappear into edges; a one-step `Delay` on a cycle
becomes NIR's implicit recurrent step (every reader feeds the previous step's output around a loop);
every neuron's per-step factors (decay a, input gain k = r g) are turned back into the continuous
parameters that the consumer's reader maps onto those same factors (docs/nir.md, "Writing NIR"):

* exact: tau = -dt / ln a, r = k / (1 - a) (the exact convention reads r (1 - a)); IF: r = 1 / dt.
* euler: the same with tau = dt / (1 - a) (n3ml's euler reading at the graph's dt).
* snntorch (dt = 1e-4 s): tau = dt / (1 - a), r = tau / dt (unit gain), v_threshold = theta / k.
* norse (dt = 1e-3 s): tau = dt / (1 - a); Norse ignores a LIF's r, so k / (1 - a) is folded into
  the weights of the synapses feeding the neuron.
* rockpool (CubaLIF only, subtract reset): tau = -dt / ln a, r = tau_mem / dt - 1 (its reader's dt is
  tau_mem / (1 + r)); its current takes the input already decayed and its membrane gain is 1, so k / a_s
  is folded into the synapses; a recurrent loop becomes the nested CubaLIF + Linear graph it reads.

Whatever a consumer cannot express exactly is refused, naming the node, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx
import numpy as np

from ...errors import UnsupportedError
from ...ir import Graph, VerifyError
from ...ir import prims as P

CONSUMER_DT_S = {"exact": None, "euler": None, "snntorch": 1e-4, "norse": 1e-3, "sinabs": None, "spyx": None,
                 "rockpool": None}
APPROXIMATE = ("sinabs", "rockpool")  # consumers whose files are a documented approximation (docs/nir.md)
CONSUMERS = tuple(CONSUMER_DT_S)


@dataclass
class _Out:
    """The NIR graph being built, and what has to change in it before it is written."""

    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    # synapse node -> per-output factor to fold into its weights (norse: Norse ignores LIF's r)
    fold: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ctx:
    graph: Graph
    name: str
    shape: tuple[int, ...]
    consumer: str
    sources: list[str]  # the NIR nodes summed into this node
    in_shape: tuple[int, ...] = ()  # the per-sample shape of the node's input

    @property
    def dt_ms(self) -> float:
        return self.graph.dt


def _arr(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim and a.size == int(np.prod(shape)):
        return a.reshape(shape).copy()
    return np.broadcast_to(a.reshape(()) if a.size == 1 else a, shape).astype(np.float64).copy()


def _factors(p: P.Primitive, tau: Any, graph: Graph, shape) -> tuple[np.ndarray, np.ndarray]:
    """(a, k): per-neuron decay and input gain r g of a leaky stage."""
    a = _arr(P.decay(np.asarray(tau, np.float64), graph.dt, graph.scheme), shape)
    k = _arr(np.asarray(getattr(p, "r", 1.0), np.float64) * P.gain(np.asarray(tau, np.float64), graph.dt,
                                                                   graph.scheme), shape)
    return a, k


def _tau(a: np.ndarray, ctx: _Ctx) -> np.ndarray:
    """The NIR time constant (s) that the exact or euler reading at the graph's dt turns into decay a."""
    dt_s = ctx.dt_ms / 1000
    return dt_s / (1 - a) if ctx.consumer == "euler" else -dt_s / np.log(a)


def _need(cond: bool, ctx: _Ctx, what: str) -> None:
    if not cond:
        raise UnsupportedError(f"node `{ctx.name}`: {what}")


def _zero_reset(p: P.Neuron, ctx: _Ctx, lib: str, *, v_init: Any = 0.0) -> None:
    _need(p.reset == "to-value" and np.all(np.asarray(p.v_reset) == 0), ctx,
          f"{lib}'s NIR reader resets to 0; found reset={p.reset}" +
          (f" v_reset={p.v_reset}" if p.reset == "to-value" else ""))
    _need(p.refractory == 0, ctx, f"NIR has no refractory period (refractory={p.refractory})")
    _need(np.allclose(np.asarray(p.v_init, np.float64), np.asarray(v_init, np.float64), rtol=0, atol=0), ctx,
          f"{lib}'s reader starts the membrane at {'v_leak' if lib == 'Norse' else '0'}; found v_init={p.v_init}")


def _leak_ok(a: np.ndarray, ctx: _Ctx) -> None:
    _need(bool(np.all(a < 1) and np.all(a >= 0)), ctx, f"the decay must lie in [0, 1) to be a NIR time constant "
          f"(found {a.min():g}..{a.max():g})")


# --------------------------------------------------------------------------------- neuron writers

def _exact_lif(p: P.LIF, ctx: _Ctx):
    import nir

    a, k = _factors(p, p.tau, ctx.graph, ctx.shape)
    _leak_ok(a, ctx)
    _need(p.reset == "to-value", ctx, f"NIR >= 1.0.5 resets to v_reset; reset={p.reset} is not expressible")
    _need(p.refractory == 0, ctx, "NIR has no refractory period")
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "NIR has no initial state (v_init must be 0)")
    _need(bool(np.all(a > 0)), ctx, "a decay of 0 has no finite NIR time constant")
    return nir.LIF(tau=_tau(a, ctx), r=k / (1 - a),
                   v_leak=_arr(p.v_leak, ctx.shape), v_threshold=_arr(p.theta, ctx.shape),
                   v_reset=_arr(p.v_reset, ctx.shape))


def _exact_if(p: P.IF, ctx: _Ctx):
    import nir

    _need(p.reset == "to-value", ctx, f"NIR >= 1.0.5 resets to v_reset; reset={p.reset} is not expressible")
    _need(p.refractory == 0, ctx, "NIR has no refractory period")
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "NIR has no initial state (v_init must be 0)")
    return nir.IF(r=_arr(1000.0 / ctx.dt_ms, ctx.shape), v_threshold=_arr(p.theta, ctx.shape),
                  v_reset=_arr(p.v_reset, ctx.shape))


def _exact_li(p: P.LI, ctx: _Ctx):
    import nir

    a, k = _factors(p, p.tau, ctx.graph, ctx.shape)
    _leak_ok(a, ctx)
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "NIR has no initial state (v_init must be 0)")
    return nir.LI(tau=_tau(a, ctx), r=k / (1 - a), v_leak=_arr(p.v_leak, ctx.shape))


def _exact_integrator(p: P.Integrator, ctx: _Ctx):
    import nir

    _need(np.all(np.asarray(p.v_init) == 0), ctx, "NIR has no initial state (v_init must be 0)")
    return nir.I(r=_arr(np.asarray(p.r, np.float64) * 1000.0 / ctx.dt_ms, ctx.shape))


def _exact_cuba_lif(p: P.CubaLIF, ctx: _Ctx):
    import nir

    a_s = _arr(P.decay(np.asarray(p.tau_syn, np.float64), ctx.dt_ms, ctx.graph.scheme), ctx.shape)
    a_m, k = _factors(p, p.tau_mem, ctx.graph, ctx.shape)
    _leak_ok(a_s, ctx)
    _leak_ok(a_m, ctx)
    _need(p.reset == "to-value", ctx, f"NIR >= 1.0.5 resets to v_reset; reset={p.reset} is not expressible")
    _need(p.refractory == 0, ctx, "NIR has no refractory period")
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "NIR has no initial state (v_init must be 0)")
    return nir.CubaLIF(tau_syn=_tau(a_s, ctx), tau_mem=_tau(a_m, ctx), r=k / (1 - a_m),
                       v_leak=_arr(p.v_leak, ctx.shape), v_threshold=_arr(p.theta, ctx.shape),
                       v_reset=_arr(p.v_reset, ctx.shape), w_in=1.0 / (1 - a_s))


def _snn_lif(p: P.LIF, ctx: _Ctx):
    import nir

    a, k = _factors(p, p.tau, ctx.graph, ctx.shape)
    _leak_ok(a, ctx)
    _zero_reset(p, ctx, "snnTorch")
    _need(np.all(np.asarray(p.v_leak) == 0), ctx, "snnTorch's NIR reader refuses v_leak != 0")
    thr = _arr(p.theta, ctx.shape) / k
    _need(np.unique(thr).size == 1, ctx, "snnTorch's NIR reader needs one threshold / gain (theta / (r g)) for "
          f"all neurons; found {np.unique(thr).size} values")
    dt = CONSUMER_DT_S["snntorch"]
    tau = dt / (1 - a)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(ctx.shape), v_threshold=thr, v_reset=np.zeros(ctx.shape))


def _snn_cuba_lif(p: P.CubaLIF, ctx: _Ctx):
    import nir

    a_s = _arr(P.decay(np.asarray(p.tau_syn, np.float64), ctx.dt_ms, ctx.graph.scheme), ctx.shape)
    a_m, k = _factors(p, p.tau_mem, ctx.graph, ctx.shape)
    _leak_ok(a_s, ctx)
    _leak_ok(a_m, ctx)
    _zero_reset(p, ctx, "snnTorch")
    _need(np.all(np.asarray(p.v_leak) == 0), ctx, "snnTorch's NIR reader refuses v_leak != 0")
    thr = _arr(p.theta, ctx.shape) / k
    _need(np.unique(thr).size == 1, ctx, "snnTorch's NIR reader needs one theta / (r g) for all neurons")
    dt = CONSUMER_DT_S["snntorch"]
    tau_syn, tau_mem = dt / (1 - a_s), dt / (1 - a_m)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(ctx.shape),
                       v_threshold=thr, v_reset=np.zeros(ctx.shape), w_in=tau_syn / dt)


def _norse_lif(p: P.LIF, ctx: _Ctx, out: _Out):
    import nir

    a, k = _factors(p, p.tau, ctx.graph, ctx.shape)
    _leak_ok(a, ctx)
    _zero_reset(p, ctx, "Norse", v_init=p.v_leak)
    # Norse adds dt/tau (v_leak - v + I): its input gain is 1 - a and r is ignored; the rest of k goes into
    # the synapses that feed the neuron
    factor = k / (1 - a)
    if not np.allclose(factor, 1.0, rtol=1e-15, atol=0):
        _fold(ctx, out, factor)
    dt = CONSUMER_DT_S["norse"]
    return nir.LIF(tau=dt / (1 - a), r=np.ones(ctx.shape), v_leak=_arr(p.v_leak, ctx.shape),
                   v_threshold=_arr(p.theta, ctx.shape), v_reset=np.zeros(ctx.shape))


def _norse_if(p: P.IF, ctx: _Ctx, out: _Out):
    import nir

    _zero_reset(p, ctx, "Norse")
    return nir.IF(r=np.ones(ctx.shape), v_threshold=_arr(p.theta, ctx.shape), v_reset=np.zeros(ctx.shape))


def _norse_cuba_lif(p: P.CubaLIF, ctx: _Ctx, out: _Out):
    import nir

    a_s = _arr(P.decay(np.asarray(p.tau_syn, np.float64), ctx.dt_ms, ctx.graph.scheme), ctx.shape)
    a_m, k = _factors(p, p.tau_mem, ctx.graph, ctx.shape)
    _leak_ok(a_s, ctx)
    _leak_ok(a_m, ctx)
    _zero_reset(p, ctx, "Norse")
    _need(np.all(np.asarray(p.v_leak) == 0), ctx, "Norse's reader gives the synapse the neuron's v_leak; "
          "only v_leak = 0 is exact")
    dt = CONSUMER_DT_S["norse"]
    return nir.CubaLIF(tau_syn=dt / (1 - a_s), tau_mem=dt / (1 - a_m), r=k / (1 - a_m), v_leak=np.zeros(ctx.shape),
                       v_threshold=_arr(p.theta, ctx.shape), v_reset=np.zeros(ctx.shape), w_in=1.0 / (1 - a_s))


def _fold(ctx: _Ctx, out: _Out, factor: np.ndarray) -> None:
    """Multiply the weights of every synapse feeding the neuron by `factor` (per neuron)."""
    for s in ctx.sources:
        node = out.nodes.get(s)
        kind = type(node).__name__
        _need(kind in ("Affine", "Linear", "Conv2d", "Conv1d"), ctx, "Norse ignores this LIF's input gain r g / "
              f"(1 - a) = {float(np.ravel(factor)[0]):g}; it can be folded only into synapses, but `{s}` is {kind}")
        _need(s not in out.fold, ctx, f"synapse `{s}` feeds more than one neuron needing a gain")
        out.fold[s] = factor


def _sinabs_theta(theta: Any, shape) -> np.ndarray:
    # Sinabs fires at v >= threshold (MultiSpike) in float32; the smallest float32 above theta makes that v > theta
    th = _arr(theta, shape).astype(np.float32)
    return np.nextafter(th, np.float32(np.inf)).astype(np.float64)


def _sinabs_common(p: P.Neuron, ctx: _Ctx) -> None:
    _need(p.reset == "subtract", ctx, f"Sinabs resets by subtraction (MembraneSubtract); found reset={p.reset}")
    _need(p.refractory == 0, ctx, "NIR has no refractory period")
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "Sinabs starts the membrane at 0")


def _sinabs_lif(p: P.LIF, ctx: _Ctx, out: _Out):
    import nir

    a, k = _factors(p, p.tau, ctx.graph, ctx.shape)
    _need(bool(np.all((a > 0) & (a < 1))), ctx, "the decay must lie in (0, 1) for Sinabs' exp(-1/tau)")
    _sinabs_common(p, ctx)
    _need(np.all(np.asarray(p.v_leak) == 0), ctx, "Sinabs' reader refuses v_leak != 0")
    if not np.allclose(k, 1.0, rtol=1e-15, atol=0):  # Sinabs adds its input unscaled (norm_input=False)
        _fold(ctx, out, k)
    return nir.LIF(tau=-1.0 / np.log(a), r=np.ones(ctx.shape), v_leak=np.zeros(ctx.shape),
                   v_threshold=_sinabs_theta(p.theta, ctx.shape), v_reset=np.zeros(ctx.shape))


def _sinabs_if(p: P.IF, ctx: _Ctx, out: _Out):
    import nir

    _sinabs_common(p, ctx)
    return nir.IF(r=np.ones(ctx.shape), v_threshold=_sinabs_theta(p.theta, ctx.shape), v_reset=np.zeros(ctx.shape))


def _spyx_neuron(p: P.Neuron, ctx: _Ctx):
    raise UnsupportedError(f"node `{ctx.name}`: Spyx's neurons emit the spike of step t from the membrane of step "
                           f"t-1 (spyx/nn.py), one step after n3ml's {p.op}; no NIR file makes Spyx run it exactly")


def _affine_always(p: P.Dense, ctx: _Ctx):
    import nir

    w = np.asarray(p.weight, np.float64)
    return nir.Affine(weight=w, bias=np.zeros(w.shape[0]) if p.bias is None else np.asarray(p.bias, np.float64))


# -------------------------------------------------------------------------------- stateless writers

def _dense(p: P.Dense, ctx: _Ctx):
    import nir

    w = np.asarray(p.weight, np.float64)
    if p.bias is None:
        return nir.Linear(weight=w)
    return nir.Affine(weight=w, bias=np.asarray(p.bias, np.float64))


def _conv(nd: int):
    def write(p, ctx: _Ctx):
        import nir

        cls = nir.Conv2d if nd == 2 else nir.Conv1d
        w = np.asarray(p.weight, np.float64)
        bias = np.zeros(w.shape[0]) if p.bias is None else np.asarray(p.bias, np.float64)
        return cls(input_shape=None, weight=w, stride=p.stride, padding=p.padding, dilation=p.dilation,
                   groups=p.groups, bias=bias)
    return write


def _pool(kind: str):
    def write(p, ctx: _Ctx):
        import nir

        cls = getattr(nir, kind)
        return cls(kernel_size=np.asarray(p.kernel), stride=np.asarray(p.stride_), padding=np.asarray(p.padding))
    return write


def _flatten(p, ctx: _Ctx):
    import nir

    # NIR counts Flatten's axes per sample (nir's own type inference, Sinabs); snnTorch's and Norse's readers
    # hand start_dim to torch.nn.Flatten, where axis 0 is the batch
    start = 1 if ctx.consumer in ("snntorch", "norse") else 0
    node = nir.Flatten(input_type={"input": np.asarray(ctx.in_shape)}, start_dim=0, end_dim=-1)
    node.start_dim = start
    return node


def _scale(p: P.Scale, ctx: _Ctx):
    import nir

    return nir.Scale(scale=_arr(p.factor, ctx.shape))


def _delay(p: P.Delay, ctx: _Ctx):
    import nir

    return nir.Delay(delay=_arr(p.steps * ctx.dt_ms / 1000.0, ctx.shape))


def _rockpool_cuba_lif(p: P.CubaLIF, ctx: _Ctx, out: _Out):
    """Rockpool 3.1 reads CubaLIF as LIFTorch: i_t = b_s (i + x_t); v_t = a_m v + i_t + v_leak; v >= theta spikes,
    subtract reset, with dt = min(tau_mem / (1 + r)). The IR's current adds its input unscaled and the membrane
    takes k = r g of it, so k / a_s goes into the synapses feeding the neuron."""
    import nir

    a_s = _arr(P.decay(np.asarray(p.tau_syn, np.float64), ctx.dt_ms, ctx.graph.scheme), ctx.shape)
    a_m, k = _factors(p, p.tau_mem, ctx.graph, ctx.shape)
    for a in (a_s, a_m):
        _need(bool(np.all((a > 0) & (a < 1))), ctx, "the decays must lie in (0, 1) for Rockpool's exp(-dt/tau)")
    _need(p.reset == "subtract", ctx, f"Rockpool resets by subtraction; found reset={p.reset}")
    _need(p.refractory == 0, ctx, "NIR has no refractory period")
    _need(np.all(np.asarray(p.v_init) == 0), ctx, "Rockpool starts the membrane at 0")
    factor = k / a_s
    if not np.allclose(factor, 1.0, rtol=1e-15, atol=0):
        _fold(ctx, out, factor)
    dt = ctx.dt_ms / 1000.0
    tau_mem = -dt / np.log(a_m)
    return nir.CubaLIF(tau_syn=-dt / np.log(a_s), tau_mem=tau_mem, r=tau_mem / dt - 1.0,
                       v_leak=(1 - a_m) * _arr(p.v_leak, ctx.shape), v_threshold=_sinabs_theta(p.theta, ctx.shape),
                       v_reset=np.zeros(ctx.shape), w_in=np.ones(ctx.shape))


def _rockpool_refused(p, ctx: _Ctx):
    why = {"LIF": "its reader fails on every nir.LIF (it reads `node.tau_mem`, which NIR's LIF does not have)",
           "LI": "its reader truncates LI's tau to whole seconds (ExpSynTorch(tau = int(tau)))"}
    raise UnsupportedError(f"node `{ctx.name}`: Rockpool 3.1.0 cannot run this {p.op}: "
                           + why.get(p.op, "it reads CubaLIF neurons only"))


def _nest_recurrent(graph: Graph, rec: set[str], ins: dict[str, list[str]], out: _Out) -> list[str]:
    """Rockpool runs a recurrent layer only as a nested NIRGraph (Input, CubaLIF, Affine/Linear, Output): put each
    loop neuron and its recurrent synapse into one, named after the neuron."""
    import nir

    problems = []
    for d in sorted(rec):
        neuron, syns = ins[d][0], graph.users_of(d)
        if len(syns) != 1 or type(out.nodes.get(neuron)).__name__ != "CubaLIF":
            problems.append(f"node `{d}`: Rockpool's recurrent layer is one CubaLIF with one recurrent synapse")
            continue
        (syn,) = syns
        lif, w = out.nodes.pop(neuron), out.nodes.pop(syn)
        shape = {"input": np.asarray(np.asarray(lif.v_threshold).shape)}
        out.nodes[neuron] = nir.NIRGraph(
            nodes={"input": nir.Input(input_type=shape), "lif": lif, "w_rec": w,
                   "output": nir.Output(output_type={"output": shape["input"]})},
            edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
        out.edges = [e for e in out.edges if e not in ((neuron, syn), (syn, neuron))]
    return problems


Writer = Callable[..., Any]
COMMON: dict[str, Writer] = {"Dense": _dense, "Conv1d": _conv(1), "Conv2d": _conv(2), "SumPool2d": _pool("SumPool2d"),
                             "AvgPool2d": _pool("AvgPool2d"), "Flatten": _flatten}
WRITERS: dict[str, dict[str, Writer]] = {
    "exact": {**COMMON, "Scale": _scale, "Delay": _delay, "LIF": _exact_lif, "IF": _exact_if, "LI": _exact_li,
              "Integrator": _exact_integrator, "CubaLIF": _exact_cuba_lif},
    "euler": {**COMMON, "Scale": _scale, "Delay": _delay, "LIF": _exact_lif, "IF": _exact_if, "LI": _exact_li,
              "Integrator": _exact_integrator, "CubaLIF": _exact_cuba_lif},
    "snntorch": {"Dense": _dense, "Conv2d": _conv(2), "AvgPool2d": _pool("AvgPool2d"), "Flatten": _flatten,
                 "LIF": _snn_lif, "CubaLIF": _snn_cuba_lif},
    "norse": {"Dense": _dense, "Conv2d": _conv(2), "SumPool2d": _pool("SumPool2d"), "Flatten": _flatten,
              "LIF": _norse_lif, "IF": _norse_if, "CubaLIF": _norse_cuba_lif},
}
WRITERS["sinabs"] = {"Dense": _affine_always, "Conv1d": _conv(1), "Conv2d": _conv(2), "SumPool2d": _pool("SumPool2d"),
                     "Flatten": _flatten, "LIF": _sinabs_lif, "IF": _sinabs_if}
WRITERS["spyx"] = {"Dense": _dense, "Flatten": _flatten, "LIF": _spyx_neuron, "IF": _spyx_neuron,
                   "CubaLIF": _spyx_neuron}
WRITERS["rockpool"] = {"Dense": _dense, "CubaLIF": _rockpool_cuba_lif, "LIF": _rockpool_refused,
                       "LI": _rockpool_refused}
NEEDS_OUT = {"_norse_lif", "_norse_if", "_norse_cuba_lif", "_sinabs_lif", "_sinabs_if",
             "_rockpool_cuba_lif"}  # may edit other nodes


def _recurrent_delays(graph: Graph) -> set[str]:
    """Delay nodes that close a cycle: NIR expresses them by the cycle itself (one implicit step)."""
    g = graph.to_networkx()
    out = set()
    for comp in nx.strongly_connected_components(g):
        for n in comp:
            if len(comp) > 1 and isinstance(graph.nodes[n], P.Delay):
                out.add(n)
    return out


def lower(graph: Graph, consumer: str):
    """The nir.NIRGraph that `consumer`'s reader runs as `graph` runs; UnsupportedError lists every node
    it cannot express."""
    import nir

    if consumer not in WRITERS:
        raise UnsupportedError(f"the nir target writes for readers {', '.join(WRITERS)}; found {consumer!r}")
    try:
        types = graph.verify()
    except VerifyError as e:
        raise UnsupportedError(f"the graph is not valid IR: {e}") from None
    writers = WRITERS[consumer]
    ins = graph.input_map()
    rec = _recurrent_delays(graph)
    problems: list[str] = []
    for n in rec:
        p = graph.nodes[n]
        src = graph.nodes[ins[n][0]]
        if p.steps != 1:
            problems.append(f"node `{n}`: a recurrent loop in NIR delays by exactly one step; found {p.steps}")
        elif not (isinstance(src, P.Neuron) and src.spiking):
            problems.append(f"node `{n}`: a recurrent Delay must take a spiking neuron's output (NIR readers feed "
                            f"back the previous step's spikes); it takes `{ins[n][0]}` ({src.op})")

    def sources(n: str) -> list[str]:
        p = graph.nodes[n]
        if isinstance(p, P.Add) or n in rec:
            return [s for i in ins[n] for s in sources(i)]
        return [n]

    out = _Out()
    order = graph.topo_order()
    for n in order:
        p = graph.nodes[n]
        if isinstance(p, P.Add) or n in rec:
            continue
        shape = types[n].shape
        if isinstance(p, P.Input):
            out.nodes[n] = nir.Input(input_type={"input": np.asarray(shape)})
            continue
        srcs = [s for i in ins[n] for s in sources(i)]
        if isinstance(p, P.Output):
            out.nodes[n] = nir.Output(output_type={"output": np.asarray(shape)})
        elif p.op not in writers:
            problems.append(f"node `{n}`: {p.op} has no NIR form that the {consumer} reader runs exactly "
                            f"(it writes {', '.join(sorted(writers))})")
            continue
        else:
            ctx = _Ctx(graph, n, shape, consumer, srcs, in_shape=types[ins[n][0]].shape)
            fn = writers[p.op]
            try:
                out.nodes[n] = fn(p, ctx, out) if fn.__name__ in NEEDS_OUT else fn(p, ctx)
            except UnsupportedError as e:
                problems.append(str(e))
                continue
        out.edges.extend((s, n) for s in srcs)
    rec_synapses = {u for d in rec for u in graph.users_of(d) if u not in rec}
    if consumer == "snntorch" and rec:
        problems.append(f"node(s) {', '.join(sorted(rec))}: snnTorch 1.0's reader routes a recurrent layer's input "
                        "through its recurrent weights (v = beta v + W_rec (I + s_prev) + b_rec, "
                        "snntorch/import_nir.py `_create_rnn_subgraph`), which no n3ml recurrent layer equals")
    if consumer in ("norse", "rockpool") and not problems:
        problems += _move_recurrent_bias(out, rec_synapses, consumer)
    if consumer in ("sinabs", "spyx") and rec:
        problems.append(f"node(s) {', '.join(sorted(rec))}: {consumer}'s reader does not run recurrent graphs")
    if problems:
        raise UnsupportedError(f"the nir target ({consumer} reader) cannot express this graph exactly:\n  "
                               + "\n  ".join(problems))
    _apply_folds(out)
    if consumer == "rockpool" and rec:
        problems = _nest_recurrent(graph, rec, ins, out)
        if problems:
            raise UnsupportedError("the nir target (rockpool reader) cannot express this graph exactly:\n  "
                                   + "\n  ".join(problems))
    for n, node in out.nodes.items():  # inputs of convolutions: readers build layers from them
        if type(node).__name__ in ("Conv1d", "Conv2d"):
            node.input_shape = np.asarray(types[ins[n][0]].shape[1:])
    if consumer == "snntorch":
        _group_recurrent(graph, rec, ins, out)
        _sortable_names(out)
    return nir.NIRGraph(nodes=out.nodes, edges=out.edges, type_check=False)


def _sortable_names(out: _Out) -> None:
    """Prefix every node with its position in execution order. nir.read returns an HDF5 group's nodes in
    alphabetical order, and snnTorch 1.0's reader (through nirtorch 2.6) fails on a recurrent graph whose
    nodes do not come in execution order ('GraphModule' object has no attribute 'items'); snnTorch's own
    exporter gets away with it by naming nodes 0, 1, 2, ..."""
    width = len(str(len(out.nodes)))
    rename = {k: f"n{i:0{width}d}_{k}" for i, k in enumerate(out.nodes)}
    out.nodes = {rename[k]: v for k, v in out.nodes.items()}
    out.edges = [(rename[a], rename[b]) for a, b in out.edges]


def _group_recurrent(graph: Graph, rec: set[str], ins: dict[str, list[str]], out: _Out) -> None:
    """snnTorch's reader finds a loop neuron <-> synapse and names the RLeaky it builds after the part of
    the neuron's name before the first dot (its exporter writes `1.lif`, `1.w_rec`): name them so."""
    rename: dict[str, str] = {}
    users = {n: graph.users_of(n) for n in rec}
    for d in sorted(rec):
        neuron = ins[d][0]
        for syn in users[d]:
            group = neuron.replace(".", "_")
            rename[neuron] = f"{group}.lif"
            rename[syn] = f"{group}.w_rec"
    out.nodes = {rename.get(k, k): v for k, v in out.nodes.items()}
    out.edges = [(rename.get(a, a), rename.get(b, b)) for a, b in out.edges]


def _move_recurrent_bias(out: _Out, rec_synapses: set[str], consumer: str = "norse") -> list[str]:
    """Norse runs NIR through nirtorch's GraphExecutor, where a recurrent synapse's output reaches its
    neuron one step late, so its bias is missing at step 0; Rockpool drops a recurrent synapse's bias. NIR
    sums all inputs of a node, so the bias can move to a feed-forward Affine feeding the same neuron, which
    runs at every step."""
    import nir

    problems = []
    for s in sorted(rec_synapses):
        node = out.nodes.get(s)
        if type(node).__name__ != "Affine" or not np.any(node.bias):
            continue
        targets = [d for a, d in out.edges if a == s]
        hosts = [a for a, d in out.edges if len(targets) == 1 and d == targets[0] and a not in rec_synapses
                 and type(out.nodes[a]).__name__ == "Affine"]
        if not hosts:
            why = ("adds a recurrent synapse's bias from step 1 on only" if consumer == "norse" else
                   "drops a recurrent synapse's bias")
            problems.append(f"node `{s}`: {consumer}'s reader {why}; give the neuron a feed-forward Dense with a bias "
                            "to carry it, or no recurrent bias")
            continue
        host = out.nodes[hosts[0]]
        host.bias = host.bias + node.bias
        out.nodes[s] = nir.Linear(weight=node.weight)
    return problems


def _apply_folds(out: _Out) -> None:
    for s, factor in out.fold.items():
        node = out.nodes[s]
        f = np.asarray(factor, np.float64).reshape(-1)
        if type(node).__name__ in ("Affine", "Linear"):
            node.weight = node.weight * f[:, None]
            if type(node).__name__ == "Affine":
                node.bias = node.bias * f
        else:  # convolution: one factor per output channel
            c = node.weight.shape[0]
            per = f.reshape(c, -1)
            if not np.all(per == per[:, :1]):
                raise UnsupportedError(f"node `{s}`: the gain to fold differs within an output channel")
            shape = (c,) + (1,) * (node.weight.ndim - 1)
            node.weight = node.weight * per[:, 0].reshape(shape)
            node.bias = node.bias * per[:, 0]
