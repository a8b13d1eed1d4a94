"""Lowering: an n3ml graph -> Lava concepts (populations, connections, probes, latencies).

Nothing here imports Lava: the result is plain data that `emit.py` writes out as
a Lava script. Everything a target cannot do exactly is refused here, before a
file is written, with the node's name.

What Lava (lava-nc 0.10, lava/proc/*/models.py) computes and how n3ml maps it:

* `LIF` (fixed_pt, PyLifModelBitAcc) is the IR's `FixedCubaLIF` with decay_bits
  12, state_bits 24, input_shift 6, wrapped current, saturated voltage, reset to
  0, no refractoriness; Lava's `du` register is the IR's du - 1 and its `vth`
  is theta >> 6; its bias is `bias_mant << bias_exp` (13-bit signed mantissa).
  In floating_pt, `u = u (1 - du) + a_in; v = v (1 - dv) + u + bias`, so IF, LIF
  and CubaLIF map with du = 1 - a_syn (1 for a delta synapse), dv = 1 - a_mem
  and the gain r g folded into the incoming weights (per neuron, divided by the
  threshold, so vth = 1). An `LI` readout is the same LIF with du = 1 (so u is
  the step's input), dv = 1 - a, bias (1 - a) v_leak, the gain r g folded into
  its weights (no threshold division) and vth = +inf, which v never exceeds;
  its output is its voltage, read with a Monitor.
* What Lava's LIF lacks runs on n3ml's own process N3mlLIF (runtime.py `own_models`): reset by subtraction
  or none, per-neuron decays, a start step, the IR's refractory period (both configurations; Lava's
  LIFRefractory, floating_pt only, where the reset is to 0 and the two agree) and an adaptive threshold:
  ALIF's (floating_pt, b and q in threshold units) and FixedCubaLIF's db and q (fixed_pt, integers, as
  n3ml.ir.neurons.step_fixed_cuba_lif: b' = trunc((2^12 - db) b >> 12), b = sat(b' + q s)).
* A SynapseFilter (FixedSynapseFilter in fixed_pt) runs on n3ml's own process N3mlSynapseFilter (runtime.py
  `filter_models`): it reads its spikes through an identity Dense (one step, as every synapse) and sends its
  current every step as graded spikes to the synapses after it; an Output of it is read through a Monitor.
  A FixedCubaLIF reading one has input_shift 0 (the current carries 2^J >= 2^6 per spike): an N3mlLIF with
  that shift.
* An LI with v_leak = v_init = 0 read only by an IF/LIF/ALIF/LI, directly or through a Delay(d), is that
  population's u (`current_chains`); its synapses take the Delay (a zero-state linear filter commutes with it).
  A Dense reading a Concat is one connection per source population; an Output of a Concat, one Sink each.
* `Dense` and `Conv` deliver `W s` one step late (a_out sends the buffer of the
  previous step). n3ml synapses act in the same step, so every node gets a
  latency (Lava step = IR step + latency); a `Delay(d)` in front of a synapse
  is absorbed by it (latency + 1 - d). A neuron's latency is the latest
  arrival over its inputs (at least 1); every earlier input is delayed to it
  exactly: a Dense becomes Lava's DelayDense (per-synapse delays 0..63), a Conv
  reads a chain of relay populations (LIFs that repeat their input's spikes one
  step later) or, from an Input, a copy of the Input's data sent later.
  Outputs are read back shifted by their latency.
* Dense fixed_pt weights: 8-bit mantissa; a mixed-sign matrix is truncated to
  even values (one bit less), the accumulated sum is shifted by `weight_exp`.
  Integer IR weights `W = m << s` are emitted as `m << t` with `weight_exp = s - t`
  (t = 1 for mixed sign), which Lava computes exactly.
* Conv (PyConvModelFixed) ignores `weight_exp` and wraps its sum to 24 bits;
  it convolves (flipped kernel) in (W, H, C) order.
* A batch of B samples runs as one network: populations are B times as wide
  and the weights block-diagonal (convolutions: B times the groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...errors import UnsupportedError
from ...ir import prims as P
from ...ir import neurons as N
from ...ir.graph import Graph
from ...ir.profiles import LOIHI2

# Loihi 2 limits as lava-nc 0.10 models them: data of the IR's profile (n3ml/ir/profiles.py), shared with quantize
FIXED = LOIHI2.neuron_fields()
VTH_MAX = LOIHI2.vth_max
BIAS_MANT = LOIHI2.bias_mant_max  # 13-bit signed
BIAS_EXP_MAX = LOIHI2.bias_exp_max
# what the Lava target supports, declared once: primitive -> restriction ("" for none)
SUPPORTED_OPS: dict[type, str] = {
    P.Input: "", P.Output: "", P.Dense: "", P.Conv2d: "", P.SumPool2d: "", P.AvgPool2d: "", P.Flatten: "",
    P.Add: "", P.Delay: "", P.Concat: "of populations, read by a Dense or an Output", P.IF: "", P.LIF: "",
    P.CubaLIF: "", P.ALIF: "float graphs", P.FixedCubaLIF: "", P.LI: "float graphs",
    P.SynapseFilter: "float graphs", P.FixedSynapseFilter: "fixed-point graphs",
}
# spike-gated currents: n3ml's N3mlSynapseFilter process (graded spikes out)
FILTERS = (P.SynapseFilter, P.FixedSynapseFilter)
# neurons whose input enters v in its own step (no current of their own): an LI before one is its current
CURRENT_READERS = (P.IF, P.LIF, P.ALIF, P.LI)
SUPPORTED = ", ".join(c.__name__ + (f" ({why})" if why else "") for c, why in SUPPORTED_OPS.items())


@dataclass
class Pop:
    """A Lava population: a RingBuffer source (IR Input) or a LIF process (IR neuron)."""

    name: str
    kind: str  # "input" | "neuron" | "filter" (N3mlSynapseFilter) | "bias" (one spike every step from `latency` on)
    shape: tuple[int, ...]  # IR per-sample shape
    conv: bool = False  # Lava (W, H, B*C) layout instead of a flat (B*n,) vector
    latency: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # LIF arguments (scalars or per-neuron arrays)
    refractory: int = 0
    graded: bool = False  # an analog Input: graded spikes (Dense/Conv num_message_bits > 0)
    v_scale: Any = 1  # n3ml voltage = Lava v * v_scale (floating_pt works in threshold units)
    reset: str = "zero"  # "zero": Lava's LIF; "subtract" (v -= vth) / "none" (v kept): n3ml's N3mlLIF (runtime.py)
    start: int = 0  # N3mlLIF holds u, v (no spike) for Lava steps 1..start: its wait for the first input
    of: str = ""  # an input kind: the Input whose data this population sends `latency` steps later
    fixed: bool = False  # fixed_pt (Lava's LIFRefractory has floating_pt models only)
    # N3mlLIF's adaptive threshold: ALIF {"a_b", "q"} (q in threshold units); FixedCubaLIF {"keep_b", "q"} (integers)
    adapt: dict[str, Any] = field(default_factory=dict)
    input_shift: int = LOIHI2.input_shift  # fixed_pt: a_in << input_shift (0 behind a synapse filter: N3mlLIF)

    @property
    def process(self) -> str:
        """The Lava process of a neuron or relay: Lava's LIF where it suffices (LIFRefractory for a floating_pt
        refractory period with reset to 0, where Lava's semantics equal n3ml's), n3ml's own N3mlLIF where the
        population resets by subtraction or keeps v, has per-neuron decays, holds until its start step, adapts
        its threshold, or has a refractory period in fixed_pt."""
        if self.kind == "filter":
            return "N3mlSynapseFilter"
        if self.kind not in ("neuron", "relay"):
            return ""
        if (self.reset != "zero" or self.start or self.per_neuron_decay or self.adapt
                or (self.refractory and self.fixed) or self.input_shift != LOIHI2.input_shift):
            return "N3mlLIF"
        return "LIFRefractory" if self.refractory else "LIF"

    @property
    def per_neuron_decay(self) -> bool:
        return any(np.size(self.params.get(k, 0)) > 1 for k in ("du", "dv"))


@dataclass
class Conn:
    """A Lava Dense or Conv process from a population to a population."""

    name: str
    op: str  # "dense" | "conv"
    src: str
    dst: str
    weight: np.ndarray  # IR layout (Dense (out, in); Conv torch (Cout, Cin/g, KH, KW)); Lava-ready values
    args: dict[str, Any] = field(default_factory=dict)  # weight_exp, num_weight_bits, sign_mode / conv geometry
    comment: str = ""
    skip: int = 0  # the IR Delay absorbed in front of the synapse (its source is `skip` steps older)
    delay: int = 0  # extra steps on Lava (a DelayDense): the path is as long as the neuron's latest input


@dataclass
class Probe:
    output: str  # IR Output node
    pop: str
    latency: int  # IR step t is Lava step t + latency
    var: str = "s"  # "s": spikes through a Sink; "v": a readout's voltage through a Monitor
    parts: list[tuple[str, int]] = field(default_factory=list)  # an Output of a Concat: (pop, latency) each
    axis: int = 0  # the per-sample axis the parts are concatenated along


@dataclass
class LavaNet:
    name: str
    fixed: bool
    pops: dict[str, Pop]
    conns: list[Conn]
    probes: list[Probe]
    dt: float

    @property
    def extra_steps(self) -> int:
        return max([0] + [p.latency for p in self.probes] + [lat for p in self.probes for _, lat in p.parts])


def _unsupported(node: str, prim: P.Primitive, why: str) -> UnsupportedError:
    return UnsupportedError(f"node `{node}` ({prim.op}): {why}")


# ------------------------------------------------------------------ structure


def _resolve_pop(graph: Graph, name: str, user: str) -> tuple[str, int]:
    """Follow Flatten/Delay back to the population; return (pop, total delay)."""
    d = 0
    while True:
        p = graph.nodes[name]
        if isinstance(p, (P.Input, *P.NEURONS)) or (isinstance(graph.nodes[user], P.Output) and d == 0
                                                     and isinstance(p, (P.Dense, P.Conv2d, P.SumPool2d,
                                                                        P.AvgPool2d, P.Add))):
            return name, d
        if isinstance(p, P.Flatten):
            name = graph.inputs_of(name)[0]
        elif isinstance(p, P.Delay):
            d += p.steps
            name = graph.inputs_of(name)[0]
        else:
            raise _unsupported(user, graph.nodes[user], f"Lava connections read spikes of a neuron or an input; "
                                                        f"its input `{name}` is a {p.op}")


def _sources(graph: Graph, types, name: str, user: str, d: int = 0) -> list[tuple[str, int, Any]]:
    """The populations a synapse `user` reads through Flatten, Delay and Concat: (population, delay, the flat
    indices of its values in what the synapse reads, or None for all of them). A Concat is one part per input
    (Flatten keeps the C order of the flat indices, a Delay keeps them)."""
    p = graph.nodes[name]
    if isinstance(p, (P.Flatten, P.Delay)):
        return _sources(graph, types, graph.inputs_of(name)[0], user, d + (p.steps if isinstance(p, P.Delay) else 0))
    if not isinstance(p, P.Concat):
        pop, d2 = _resolve_pop(graph, name, user)
        return [(pop, d + d2, None)]
    ins = graph.inputs_of(name)
    idx = np.arange(math.prod(types[name].shape)).reshape(types[name].shape)
    bounds = np.cumsum([types[i].shape[p.axis] for i in ins])[:-1]
    parts = []
    for i, block in zip(ins, np.split(idx, bounds, axis=p.axis)):
        flat = block.reshape(-1)
        parts += [(pop, d2, flat if sub is None else flat[sub]) for pop, d2, sub in _sources(graph, types, i, user, d)]
    return parts


def current_chains(graph: Graph) -> dict[str, tuple[str, int]]:
    """{neuron: (LI, d)} for an LI with v_leak = v_init = 0, read from a synapse, read only by that neuron
    (an IF, LIF, ALIF or LI) through an optional Delay(d) (Norse's LICell readout and its LSNN's current).

    Such an LI is the neuron's synaptic current: a linear filter with zero initial state, so a Delay after it is
    the same shift as a Delay before its synapses. On Lava the neuron's population runs it as u (du = 1 - a_LI,
    its gain times the LI's r g) and the LI's input synapses get the Delay (Conn.skip)."""
    chains = {}
    for n, p in graph.nodes.items():
        if type(p) not in CURRENT_READERS:
            continue
        (src,) = graph.inputs_of(n)
        user, d = n, 0
        if isinstance(graph.nodes[src], P.Delay) and graph.users_of(src) == [n]:
            user, d = src, graph.nodes[src].steps
            (src,) = graph.inputs_of(src)
        li = graph.nodes[src]
        if type(li) is not P.LI or graph.users_of(src) != [user]:
            continue
        fed_by_neuron = isinstance(graph.nodes[graph.inputs_of(src)[0]], P.Neuron)  # (LI -> LI -> n: no)
        if not np.any(np.asarray(li.v_leak)) and not np.any(np.asarray(li.v_init)) and not fed_by_neuron:
            chains[n] = (src, d)
    return chains


def _check_prims(graph: Graph) -> None:
    for n, p in graph.nodes.items():
        if type(p) not in SUPPORTED_OPS:
            raise _unsupported(n, p, f"the Lava target does not support {p.op}; it supports {SUPPORTED}")


def _synapse_inputs(graph: Graph, neuron: str) -> list[str]:
    """The synapses a population reads: its input, or the terms of the Add it reads. A synapse read by several
    populations becomes one Lava connection per reader (Lava's Dense/Conv feed one port)."""
    (src,) = graph.inputs_of(neuron)
    sp = graph.nodes[src]
    srcs = graph.inputs_of(src) if isinstance(sp, P.Add) else [src]
    for s in srcs:
        p = graph.nodes[s]
        if not isinstance(p, (P.Dense, P.Conv2d, P.SumPool2d, P.AvgPool2d)):
            raise _unsupported(neuron, graph.nodes[neuron], "on Lava a neuron's input must be a Dense/Conv/pool "
                                                            f"synapse or an Add of them; found `{s}` ({p.op})")
    return srcs


def _value_readouts(graph: Graph) -> list[str]:
    """Synapse values (a Dense/Conv/pool, or an Add of them) that Outputs read: each becomes a readout
    population whose v is the step's input (du = dv = 1, vth = +inf), read through a Monitor."""
    found = []
    for o in graph.output_names:
        (src,) = graph.inputs_of(o)
        p = graph.nodes[src]
        terms = graph.inputs_of(src) if isinstance(p, P.Add) else [src]
        if isinstance(p, (P.Dense, P.Conv2d, P.SumPool2d, P.AvgPool2d, P.Add)) and all(
                isinstance(graph.nodes[t], (P.Dense, P.Conv2d, P.SumPool2d, P.AvgPool2d)) for t in terms):
            if src not in found:
                found.append(src)
    return found


def _latencies(graph: Graph, pops: dict[str, Pop], conns: list[Conn]) -> None:
    """Latency of every population (Lava step = IR step + latency): inputs 0; a neuron the latest arrival over
    its connections (source + 1 - absorbed Delay), and at least 1 (Lava delivers nothing sooner). A longest
    path, by relaxation: a loop that lengthens every time around (fewer Delay steps than synapses on it)
    has no latency and is refused."""
    into: dict[str, list[Conn]] = {}
    for c in conns:
        into.setdefault(c.dst, []).append(c)
    lat: dict[str, int] = {n: 0 for n, p in pops.items() if p.kind == "input"}
    for _ in range(len(pops) + 1):
        grown = ""
        for n, pop in pops.items():
            arrive = [lat[c.src] + 1 - c.skip for c in into.get(n, []) if c.src in lat]
            if pop.kind != "input" and arrive and lat.get(n) != max(1, *arrive):
                lat[n], grown = max(1, *arrive), n
        if not grown:
            break
    else:
        raise _unsupported(grown, graph.nodes[grown], "it is on a loop whose synapses outnumber its Delay steps "
                                                      "(each synapse takes a step on Lava), so its latency grows "
                                                      "without bound")
    for n, pop in pops.items():
        if pop.kind == "input":
            continue
        if n not in lat:
            raise _unsupported(n, graph.nodes[n], "no input reaches it; Lava needs every neuron driven from an "
                                                  "Input through synapses")
        pop.latency = lat[n]


DELAY_MAX = 63  # Loihi 2's synaptic delay field is 6 bits (Lava's bit-accurate DelayDense checks it)


def _equalize(graph: Graph, pops: dict[str, Pop], conns: list[Conn], fixed: bool) -> None:
    """Delay every connection that arrives before its neuron's latency by the difference, exactly: a Dense
    becomes a DelayDense, a Conv from an Input reads a later copy of the Input, a Conv from a neuron reads
    the end of a chain of relay populations (one step each, shared by the connections of that source)."""
    for c in list(conns):
        extra = pops[c.dst].latency - (pops[c.src].latency + 1 - c.skip)
        if extra <= 0:
            continue
        if c.op == "dense":
            if extra > DELAY_MAX:
                raise _unsupported(c.dst, graph.nodes[c.dst], f"its input `{c.name}` must wait {extra} steps for "
                                                              f"its other inputs; Loihi 2's synaptic delays hold "
                                                              f"0..{DELAY_MAX}")
            c.delay = extra
            note = f"delayed {extra} step(s): its path is shorter than the neuron's other inputs"
            c.comment = f"{c.comment}; {note}" if c.comment else note
        elif pops[c.src].kind == "input":
            c.src = _late_input(graph, pops, c.src, extra)
        elif pops[c.src].kind == "filter":  # relays repeat spikes, not a graded current
            raise _unsupported(c.dst, graph.nodes[c.dst], f"its convolution `{c.name}` reads the synapse filter "
                                                          f"`{c.src}` on a path {extra} step(s) shorter than its "
                                                          "other inputs; Lava's Conv has no delay for graded values")
        else:
            c.src = _relays(graph, pops, conns, c.src, extra, fixed)


def _fresh(graph: Graph, pops: dict[str, Pop], name: str) -> str:
    while name in pops or name in graph.nodes:
        name += "_"
    return name


def _late_input(graph: Graph, pops: dict[str, Pop], src: str, extra: int) -> str:
    """A copy of Input `src` that sends its data `extra` steps later (any message, graded or spikes)."""
    for n, p in pops.items():
        if p.kind == "input" and p.of == src and p.latency == extra:
            return n
    pop = pops[src]
    name = _fresh(graph, pops, f"{src}_late{extra}")
    pops[name] = Pop(name, "input", pop.shape, conv=pop.conv, latency=extra, graded=pop.graded, of=src)
    return name


def _relays(graph: Graph, pops: dict[str, Pop], conns: list[Conn], src: str, extra: int, fixed: bool) -> str:
    """The relay `extra` steps after `src`: relay k is a LIF that fires exactly when relay k - 1 (or src) fired
    one step before, through a depthwise 1x1 Conv of ones. Its u and v forget everything each step (fixed_pt:
    du register 4095, dv 4095) and its threshold is below one input spike (floating_pt 0.5, fixed_pt 0)."""
    prev = src
    for k in range(1, extra + 1):
        found = [n for n, p in pops.items() if p.kind == "relay" and p.of == src and p.latency == pops[src].latency + k]
        if found:
            prev = found[0]
            continue
        pop = pops[src]
        name = _fresh(graph, pops, f"{src}_relay{k}")
        params = ({"du": LOIHI2.one - 1, "dv": LOIHI2.dv_max, "vth": 0, "bias_mant": 0, "bias_exp": 0, "u": 0, "v": 0}
                  if fixed else
                  {"du": 1.0, "dv": 1.0, "vth": 0.5, "bias_mant": 0.0, "bias_exp": 0, "u": 0.0, "v": 0.0})
        pops[name] = Pop(name, "relay", pop.shape, conv=True, latency=pop.latency + k, params=params, of=src)
        cin = pop.shape[0]
        conns.append(Conn(f"{name}_in", "conv", prev, name,
                          np.ones((cin, 1, 1, 1), dtype=np.int64 if fixed else np.float64),
                          {"padding": (0, 0), "stride": (1, 1), "dilation": (1, 1), "groups": cin},
                          f"relay: `{src}`'s spikes {k} step(s) later (a path shorter than its reader's other inputs)"))
        prev = name
    return prev


# -------------------------------------------------------------------- neurons


def _decay(v, shape: tuple[int, ...]) -> Any:
    """A decay as one number where it is uniform, else per neuron (n3ml's N3mlLIF process takes arrays)."""
    a = np.asarray(v)
    if a.size == 1 or np.all(a == a.reshape(-1)[0]):
        return a.reshape(-1)[0].item()
    return np.broadcast_to(a, shape).copy()


def _uniform(node: str, prim: P.Primitive, field_: str, v) -> float:
    a = np.asarray(v, dtype=np.float64)
    if a.size > 1 and not np.all(a == a.reshape(-1)[0]):
        raise _unsupported(node, prim, f"Lava's LIF takes one `{field_}` for the whole population; found "
                                       "per-neuron values")
    return float(a.reshape(-1)[0])


def _fixed_neuron(n: str, p: P.FixedCubaLIF, shape: tuple[int, ...]) -> dict[str, Any]:
    if not 0 <= p.input_shift <= LOIHI2.input_shift:
        raise _unsupported(n, p, f"Lava's fixed-point LIF shifts its input by {LOIHI2.input_shift} (n3ml's N3mlLIF by "
                                 f"less, behind a synapse filter); found input_shift={p.input_shift}")
    for k, v in FIXED.items():
        if k != "input_shift" and getattr(p, k) != v:
            raise _unsupported(n, p, f"Lava's fixed-point LIF has {k}={v}; found {getattr(p, k)} (quantize with "
                                     "quantize{profile=loihi2})")
    if p.reset == "to-value" and np.any(np.asarray(p.v_reset) != 0):
        raise _unsupported(n, p, f"Lava's LIF resets v to 0 (n3ml's N3mlLIF subtracts theta or keeps v); found "
                                 f"reset={p.reset}, v_reset={p.v_reset!r}")
    du = _decay(np.asarray(p.du, dtype=np.int64), shape)
    dv = _decay(np.asarray(p.dv, dtype=np.int64), shape)
    theta = int(_uniform(n, p, "theta", p.theta))
    if np.any(np.asarray(du) < 1):
        raise _unsupported(n, p, "Lava's du register holds du - 1 >= 0; found du=0 (a current that never decays)")
    if np.any(np.asarray(dv) > LOIHI2.dv_max):
        raise _unsupported(n, p, f"Lava's dv register holds 0..{LOIHI2.dv_max}; found dv={dv}")
    shift = LOIHI2.theta_shift
    if theta < 0 or theta % (1 << shift) or (theta >> shift) > VTH_MAX:
        raise _unsupported(n, p, f"Lava's threshold is vth << {shift} with vth in 0..{VTH_MAX}; found theta={theta}")
    bias = np.asarray(p.bias, dtype=np.int64)
    mant, exp = _split_bias(n, p, bias)
    return {"du": du - 1, "dv": dv, "vth": theta >> shift, "bias_mant": mant, "bias_exp": exp,
            "v": np.asarray(p.v_init, dtype=np.int64), "u": 0}


def _split_bias(n: str, p: P.Primitive, bias: np.ndarray) -> tuple[Any, Any]:
    if not np.any(bias):
        return 0, 0
    exp = np.zeros(bias.shape, np.int64)
    mant = bias.copy()
    while np.any(np.abs(mant) > BIAS_MANT):
        big = np.abs(mant) > BIAS_MANT
        if np.any(big & (mant % 2 != 0)) or np.any(exp[big] >= BIAS_EXP_MAX):
            raise _unsupported(n, p, f"bias {bias!r} is not a 13-bit mantissa << exponent 0..{BIAS_EXP_MAX}")
        mant = np.where(big, mant // 2, mant)
        exp = np.where(big, exp + 1, exp)
    return mant, exp


def _float_neuron(n: str, p: P.Neuron, dt: float, scheme: str,
                  shape: tuple[int, ...]) -> tuple[dict[str, Any], np.ndarray]:
    """LIF arguments in threshold units, and the per-neuron factor for incoming weights."""
    if isinstance(p, P.FixedCubaLIF):
        raise _unsupported(n, p, "a graph mixing fixed-point and float neurons cannot run on Lava (fixed_pt and "
                                 "floating_pt are whole-network choices)")
    if isinstance(p, P.LI):
        return _float_readout(n, p, dt, scheme, shape)
    if p.reset == "to-value" and np.any(np.asarray(p.v_reset) != 0):
        raise _unsupported(n, p, f"Lava's LIF resets v to 0 after a spike (n3ml's N3mlLIF subtracts theta or "
                                 f"keeps v); found reset={p.reset}, v_reset={p.v_reset!r}")
    theta = np.asarray(p.theta, dtype=np.float64)
    if np.any(theta <= 0):
        raise _unsupported(n, p, f"the Lava target needs theta > 0; found {p.theta!r}")
    a_s, a, gain, leak = N.discretize(p, dt, scheme).linear()  # i = a_s i + I; v = a v + gain i + leak
    params = {"du": _decay(1.0 - np.asarray(a_s, np.float64), shape),
              "dv": _decay(1.0 - np.asarray(a, np.float64), shape), "vth": 1.0,
              "bias_mant": np.asarray(leak / theta, dtype=np.float64), "bias_exp": 0,
              "v": np.asarray(np.asarray(p.v_init) / theta, dtype=np.float64), "u": 0.0}
    return params, np.asarray(gain / theta, dtype=np.float64)


def _adaptation(p: P.Neuron, dt: float, scheme: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """A neuron's threshold adaptation for N3mlLIF. ALIF (floating_pt): b' = a_b b, threshold theta + b',
    b = b' + q s; Lava's floating_pt v is in threshold units (v / theta), so b and q are divided by theta too.
    FixedCubaLIF with q != 0 (fixed_pt): keep_b = 2^12 - db and q, integers in state units as the IR's."""
    if isinstance(p, P.FixedCubaLIF):
        if not N.fixed_adapts(p):
            return {}
        k = N.discretize(p, dt, scheme, param=lambda f, v: np.asarray(v, np.int64))
        return {"keep_b": _decay(k.keep_b, shape), "q": _decay(k.q, shape)}
    if not isinstance(p, P.ALIF):
        return {}
    k = N.discretize(p, dt, scheme)
    q = np.asarray(k.q, np.float64) / np.asarray(p.theta, np.float64)
    return {"a_b": _decay(np.asarray(k.a_b, np.float64), shape), "q": _decay(q, shape)}


def _float_readout(n: str, p: P.LI, dt: float, scheme: str,
                   shape: tuple[int, ...]) -> tuple[dict[str, Any], np.ndarray]:
    """An LI readout as a Lava float LIF that never fires, in n3ml's voltage units (v_scale 1).

    LI: v_t = a v_{t-1} + (1 - a) v_leak + r g I_t. Lava: u = u (1 - du) + a_in, v = v (1 - dv) + u + bias.
    With du = 1, u is the step's input; the weights carry r g (per neuron), dv = 1 - a, bias = (1 - a) v_leak
    and vth = +inf, which no finite v exceeds (so there is no spike and no reset).
    """
    _, a, gain, leak = N.discretize(p, dt, scheme).linear()
    for what, arr in (("r", np.asarray(p.r)), ("v_leak", np.asarray(p.v_leak)), ("v_init", np.asarray(p.v_init)),
                      ("r g (the input gain)", gain)):
        if not np.all(np.isfinite(arr)):
            raise _unsupported(n, p, f"`{what}` must be finite on Lava; found {arr!r}")
    params = {"du": 1.0, "dv": _decay(1.0 - np.asarray(a, np.float64), shape), "vth": math.inf, "bias_mant": np.asarray(leak, dtype=np.float64),
              "bias_exp": 0, "v": np.asarray(p.v_init, dtype=np.float64), "u": 0.0}
    return params, gain


# ------------------------------------------------------------------- synapses


def _dense_fixed(n: str, p: P.Dense) -> tuple[np.ndarray, dict[str, Any], str]:
    w = np.asarray(p.weight)
    if w.dtype.kind not in "iu":
        raise _unsupported(n, p, "a fixed-point Lava network needs integer weights (quantize first)")
    w = w.astype(np.int64)
    nz = w[w != 0]
    s = 0
    if nz.size:
        while s < 31 and np.all(nz % (2 ** (s + 1)) == 0):
            s += 1
    m = w >> s
    lo, hi, sign = LOIHI2.mantissa_range(w)
    mode, t = sign.upper(), 1 if sign == "mixed" else 0  # Lava stores a mixed-sign mantissa shifted by one
    if m.min() < lo or m.max() > hi:
        raise _unsupported(n, p, f"its integer weights need more than Lava's {LOIHI2.weight_bits}-bit mantissa ({sign} sign: "
                                 f"{lo}..{hi} << exponent); found {w.min()}..{w.max()} (quantize with "
                                 "quantize{profile=loihi2})")
    args = {"weight_exp": s - t, "num_weight_bits": LOIHI2.weight_bits, "sign_mode": mode}
    return m << t, args, f"weights = mantissa << {t}, sum shifted by weight_exp {s - t}: exactly W = m * 2^{s}"


def _conv_geom(p) -> dict[str, Any]:
    # Lava orders (X, Y) = (W, H): reverse torch's (H, W)
    return {"padding": tuple(p.padding[::-1]), "stride": tuple(p.stride[::-1]),
            "dilation": tuple(p.dilation[::-1]) if hasattr(p, "dilation") else (1, 1),
            "groups": getattr(p, "groups", 1)}


def _pool_weight(p: P._Pool2d, cin: int, fixed: bool) -> np.ndarray:
    kh, kw = p.kernel
    if isinstance(p, P.AvgPool2d):
        if fixed:
            raise UnsupportedError("AvgPool2d has no integer form on Lava (quantize turns pools into Conv2d)")
        return np.full((cin, 1, kh, kw), 1.0 / (kh * kw))
    return np.ones((cin, 1, kh, kw), dtype=np.int64 if fixed else np.float64)


# ------------------------------------------------------------------------ main


def lower(graph: Graph) -> LavaNet:
    """Lower `graph` to Lava populations and connections, or raise UnsupportedError naming the node."""
    types = graph.verify()
    _check_prims(graph)
    neurons = [n for n, p in graph.nodes.items() if isinstance(p, P.Neuron) and not isinstance(p, FILTERS)]
    filters = [n for n, p in graph.nodes.items() if isinstance(p, FILTERS)]
    fixed = any(isinstance(p, (P.FixedCubaLIF, P.FixedSynapseFilter)) for p in graph.nodes.values())
    chains = {} if fixed else current_chains(graph)
    neurons = [n for n in neurons if n not in {li for li, _ in chains.values()}]
    pops, gains = _populations(graph, types, neurons, fixed)
    for n, (li, _) in chains.items():  # LI -> (Delay ->) n: the LI is the population's current u (du = 1 - a_LI)
        _, a1, c1, _ = N.discretize(graph.nodes[li], graph.dt, graph.scheme).linear()
        pops[n].params["du"] = _decay(1.0 - np.asarray(a1, np.float64), pops[n].shape)
        gains[n] = np.asarray(gains[n], np.float64) * np.asarray(c1, np.float64)
    values = _value_readouts(graph)
    for v in values:
        pops[v], gains[v] = _value_population(graph, types, v, fixed)
    conns: list[Conn] = []
    for f in filters:
        pops[f] = _filter_population(graph, types, f, fixed)
        conns += _filter_inputs(graph, types, f, fixed)
    biases_of: dict[str, list] = {}
    for n in neurons + values:
        biases: list = []
        srcs = _synapse_inputs(graph, chains[n][0] if n in chains else n) if n not in values else (
            graph.inputs_of(n) if isinstance(graph.nodes[n], P.Add) else [n])
        for s in srcs:
            for c in _connections(graph, types, n, s, gains, fixed, biases):
                c.skip += chains[n][1] if n in chains else 0  # the Delay after the current, moved before it
                conns.append(c)
        if biases and not fixed:
            biases_of[n] = biases
    _name_connections(conns)
    _layouts(graph, pops, conns)
    _latencies(graph, pops, conns)
    for f in filters:  # it holds v_init and sends nothing until its input arrives
        pops[f].start = pops[f].latency
    _equalize(graph, pops, conns, fixed)
    for n, biases in biases_of.items():  # after the latencies: a current's bias arrives from a source timed by them
        _add_bias(graph, types, n, pops, conns, biases, gains[n], current=n in chains,
                  late=chains[n][1] if n in chains else 0)
    for n in neurons:  # Lava runs a neuron `latency` steps before its first input arrives
        _warm_up(n, graph.nodes[n], pops[n], fixed)
    return LavaNet(graph.name, fixed, pops, conns, _probes(graph, types, pops), graph.dt)


def _value_population(graph: Graph, types, name: str, fixed: bool) -> tuple[Pop, np.ndarray]:
    """The readout of a synapse value: a LIF whose u and v forget everything each step (du = dv = 1), so v is
    the step's input plus the synapse bias, and which never fires (vth = +inf); read through a Monitor."""
    if fixed:
        raise _unsupported(name, graph.nodes[name], "an Output of a synapse value has no fixed-point Lava form "
                                                    "(read spikes, or run the float graph on floating_pt)")
    params = {"du": 1.0, "dv": 1.0, "vth": math.inf, "bias_mant": 0.0, "bias_exp": 0, "v": 0.0, "u": 0.0}
    return Pop(name, "neuron", tuple(types[name].shape), params=params), np.asarray(1.0)


def _filter_population(graph: Graph, types, name: str, fixed: bool) -> Pop:
    """A synapse filter as n3ml's N3mlSynapseFilter: leak and v_init (floating_pt), or keep_v = 2^D - d, jump,
    the shift D, state_bits and v_init (fixed_pt), per neuron where they differ."""
    p = graph.nodes[name]
    shape = tuple(types[name].shape)
    if fixed != isinstance(p, P.FixedSynapseFilter):
        raise _unsupported(name, p, "a graph mixing fixed-point and float neurons cannot run on Lava (fixed_pt and "
                                    "floating_pt are whole-network choices; quantize all of it)")
    if fixed:
        if p.state_bits > LOIHI2.state_bits:  # what a graded spike carries (the Dense after it: 24 message bits)
            raise _unsupported(name, p, f"Lava's graded spikes carry {LOIHI2.state_bits} bits; found state_bits="
                                        f"{p.state_bits} (quantize with quantize{{profile=loihi2}})")
        k = N.discretize(p, graph.dt, graph.scheme, param=lambda f, v: np.asarray(v, np.int64))
        params = {"keep_v": _decay(k.keep_v, shape), "jump": _decay(k.jump, shape),
                  "v": _decay(np.asarray(p.v_init, np.int64), shape), "shift": int(k.shift),
                  "state_bits": int(k.state_bits)}
    else:
        leak, v0 = np.asarray(p.leak, np.float64), np.asarray(p.v_init, np.float64)
        if not (np.all(np.isfinite(leak)) and np.all(np.isfinite(v0))):
            raise _unsupported(name, p, "`leak` and `v_init` must be finite on Lava")
        params = {"leak": _decay(leak, shape), "v": _decay(v0, shape)}
    return Pop(name, "filter", shape, params=params, graded=True, fixed=fixed)


def _filter_inputs(graph: Graph, types, name: str, fixed: bool) -> list[Conn]:
    """The spikes a synapse filter reads, through an identity Dense from their population (its columns of a
    Concat): weight 1, so the filter receives 0/1, one step later as every Lava synapse delivers."""
    n = math.prod(types[name].shape)
    conns = []
    for k, (src, d, idx) in enumerate(_sources(graph, types, graph.inputs_of(name)[0], name)):
        w = np.eye(n, dtype=np.int64 if fixed else np.float64)
        w = w if idx is None else w[:, idx]
        args = {"weight_exp": 0, "num_weight_bits": LOIHI2.weight_bits, "sign_mode": "EXCITATORY"} if fixed else {}
        conns.append(Conn(f"{name}_spikes" + (f"_from_{src}" if k else ""), "dense", src, name, w, args,
                          "identity: the spikes the synapse filter reads", skip=d))
    return conns


def _name_connections(conns: list[Conn]) -> None:
    """A synapse read by several populations is one Lava process per reader: the later ones get the
    reader's name appended (process names and weights.npz keys must be unique)."""
    seen: set[str] = set()
    for c in conns:
        if c.name in seen:
            c.name = f"{c.name}_to_{c.dst}"
        seen.add(c.name)


def _populations(graph: Graph, types, neurons: list[str], fixed: bool) -> tuple[dict[str, Pop], dict[str, np.ndarray]]:
    """A population per Input and neuron; the per-neuron factor of a float neuron's incoming weights."""
    pops: dict[str, Pop] = {}
    for n, p in graph.nodes.items():
        if isinstance(p, P.Input):
            # an analog input becomes graded spikes (integers in fixed_pt: feed integer data)
            pops[n] = Pop(n, "input", tuple(p.shape), graded=p.kind != "spike")
    gains: dict[str, np.ndarray] = {}
    for n in neurons:
        p = graph.nodes[n]
        if not p.spiking and fixed:
            raise _unsupported(n, p, "a graph mixing fixed-point neurons and float readouts cannot run on Lava "
                                     "(quantize it with readout=voltage)")
        if fixed:
            if not isinstance(p, P.FixedCubaLIF):
                raise _unsupported(n, p, "a graph mixing fixed-point and float neurons cannot run on Lava "
                                         "(quantize all of it)")
            params = _fixed_neuron(n, p, tuple(types[n].shape))
        else:
            params, gains[n] = _float_neuron(n, p, graph.dt, graph.scheme, tuple(types[n].shape))
            if p.refractory and p.spiking:  # a readout never spikes: its refractoriness never starts
                params["refractory_period"] = int(p.refractory)
        pops[n] = Pop(n, "neuron", tuple(types[n].shape), params=params,
                      refractory=int(p.refractory) if p.spiking else 0,
                      reset=p.reset if p.spiking and p.reset in ("subtract", "none") else "zero",
                      v_scale=1 if fixed or not p.spiking else np.asarray(p.theta, dtype=np.float64),
                      fixed=fixed, adapt=_adaptation(p, graph.dt, graph.scheme, tuple(types[n].shape)),
                      input_shift=p.input_shift if fixed else LOIHI2.input_shift)
    return pops, gains


def _connections(graph: Graph, types, n: str, s: str, gains, fixed: bool, biases: list) -> list[Conn]:
    """The Lava connections of synapse `s` into neuron `n` (float biases are collected in `biases`): one, or
    one per source population of a Concat the synapse reads (a Dense's columns split by source)."""
    sp = graph.nodes[s]
    parts = _sources(graph, types, graph.inputs_of(s)[0], s)
    conns = []
    for k, (src, d, idx) in enumerate(parts):
        if (isinstance(graph.nodes[src], P.Neuron) and not graph.nodes[src].spiking
                and not isinstance(graph.nodes[src], FILTERS)):  # (a filter sends its current as graded spikes)
            raise _unsupported(s, sp, f"it reads the voltage of the readout `{src}`; on Lava a readout's voltage "
                                      "can only be an Output (Lava's synapses carry spikes)")
        if idx is None:
            c = (_dense_connection(s, sp, src, n, gains, fixed, biases) if isinstance(sp, P.Dense) else
                 _conv_connection(graph, types, s, sp, src, n, gains, fixed, biases))
        elif isinstance(sp, P.Dense):  # the bias once, with the first part
            part = replace(sp, weight=np.asarray(sp.weight)[:, idx], bias=sp.bias if k == 0 else None)
            c = _dense_connection(f"{s}_from_{src}" if k else s, part, src, n, gains, fixed, biases)
            c.comment = f"the columns of `{s}` that read `{src}` (through a Concat)"
        else:
            raise _unsupported(s, sp, "on Lava only a Dense reads a Concat (its columns split by source "
                                      "population)")
        if fixed and isinstance(graph.nodes[src], P.FixedSynapseFilter):
            _check_graded_sum(s, sp, c, graph.nodes[src])
        c.skip = d
        conns.append(c)
    return conns


def _check_graded_sum(s: str, sp: P.Primitive, c: Conn, filt: P.FixedSynapseFilter) -> None:
    """Lava's fixed-point Dense forms `weights . s_in` in int32, its Conv wraps the sum to 24 bits: a synapse
    filter's current times the Lava weights must stay within that (quantize's filters saturate far below, at
    filter_max, and their neurons' worst case keeps the sum within 24 bits)."""
    vmax = (1 << (filt.state_bits - 1)) - 1
    worst = int(np.abs(np.asarray(c.weight, np.int64)).reshape(c.weight.shape[0], -1).sum(axis=1).max()) * vmax
    bits = 31 if c.op == "dense" else LOIHI2.state_bits - 1
    if worst >= 2**bits:
        raise _unsupported(s, sp, f"Lava sums its weights times the synapse filter's current in {bits + 1} bits; "
                                  f"these weights times {vmax} (where the filter saturates) reach {worst}")


def _dense_connection(s: str, sp: P.Dense, src: str, n: str, gains, fixed: bool, biases: list) -> Conn:
    if fixed:
        if sp.bias is not None:
            raise _unsupported(s, sp, "a Dense bias has no fixed-point Lava form; quantize moves it into "
                                      "the neuron's bias")
        w, args, comment = _dense_fixed(s, sp)
        return Conn(s, "dense", src, n, w, args, comment)
    if sp.bias is not None:
        biases.append(np.asarray(sp.bias, np.float64))
    return Conn(s, "dense", src, n, np.asarray(sp.weight, np.float64) * _rows(gains[n], 0), {}, "")


def _conv_connection(graph: Graph, types, s: str, sp, src: str, n: str, gains, fixed: bool, biases: list) -> Conn:
    """A Conv2d, or a pool as a depthwise convolution with constant weights."""
    cin = types[graph.inputs_of(s)[0]].shape[0]
    if isinstance(sp, P.Conv2d):
        w = np.asarray(sp.weight)
        geom = _conv_geom(sp)
        if sp.bias is not None:
            if fixed:
                raise _unsupported(s, sp, "a convolution bias has no fixed-point Lava form; quantize "
                                          "moves it into the neuron's bias")
            biases.append(np.asarray(sp.bias, np.float64)[:, None, None] * np.ones(types[n].shape))
    else:
        try:
            w = _pool_weight(sp, cin, fixed)
        except UnsupportedError as e:
            raise _unsupported(s, sp, str(e)) from None
        geom = {"padding": tuple(sp.padding[::-1]), "stride": tuple(sp.stride_[::-1]),
                "dilation": (1, 1), "groups": cin}
    if fixed:
        if w.dtype.kind not in "iu":
            raise _unsupported(s, sp, "a fixed-point Lava network needs integer weights (quantize first)")
        w = w.astype(np.int64)
        worst = np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max()
        if worst > LOIHI2.state_max:
            raise _unsupported(s, sp, f"Lava's fixed-point Conv wraps its sum to {LOIHI2.state_bits} bits; "
                                      f"these weights can sum to {worst}")
        return Conn(s, "conv", src, n, w, geom, "Lava's fixed-point Conv ignores weight_exp: the weights are the "
                                                  "full integers")
    gchan = _channel(n, graph.nodes[n], gains[n], types[n].shape)
    return Conn(s, "conv", src, n, np.asarray(w, np.float64) * gchan[:, None, None, None], geom, "")


def _add_bias(graph: Graph, types, n: str, pops: dict[str, Pop], conns: list[Conn], biases: list, gain,
              current: bool = False, late: int = 0) -> None:
    """Synapse biases of a float neuron go to its Lava bias (scaled like its weights); a current-based
    neuron's (CubaLIF, or a neuron whose current is an LI: the bias enters the current, which Lava's LIF has no
    bias for) come from a source that sends one spike per step, from the step its other inputs first arrive
    (`late` steps later behind a Delay after the current), through a Dense of the biases (exact: the same b is
    added to u every step)."""
    p, pop = graph.nodes[n], pops[n]
    # a Dense bias is one value per neuron (or channel); a Conv's is already spread over the neuron's shape
    b = sum(np.broadcast_to(x if np.ndim(x) == len(types[n].shape) else
                            np.asarray(x).reshape((-1,) + (1,) * (len(types[n].shape) - 1)), types[n].shape)
            for x in biases)
    b = b * np.broadcast_to(np.asarray(gain), types[n].shape)
    # u is the step's input of an IF/LIF/LI, so its bias may go to v, except where a spiking neuron waits more
    # than one step for its input: a bias on v runs through those steps and may fire it (snnTorch's deep CNNs)
    if not isinstance(p, P.CubaLIF) and not current and (pop.latency <= 1 or not getattr(p, "spiking", False)):
        pop.params["bias_mant"] = pop.params["bias_mant"] + b
        return
    src = f"{n}_bias_source"
    pops[src] = Pop(src, "bias", (1,), latency=pop.latency - 1 + late)
    conns.append(Conn(f"{n}_bias", "dense", src, n, np.asarray(b, np.float64).reshape(-1, 1), {},
                      "the synapse biases of a current-based neuron, sent every step by a one-spike source"))


def _layouts(graph: Graph, pops: dict[str, Pop], conns: list[Conn]) -> None:
    """A population is (W, H, B*C) when a convolution reads or writes it."""
    for c in conns:
        if c.op == "conv":
            pops[c.src].conv = True
            pops[c.dst].conv = True
    for pop in pops.values():
        if pop.conv and len(pop.shape) != 3:
            raise _unsupported(pop.name, graph.nodes[pop.name], f"convolutions on Lava need (C, H, W) populations; "
                                                                f"found shape {pop.shape}")


def _probes(graph: Graph, types, pops: dict[str, Pop]) -> list[Probe]:
    probes = []
    for o in graph.output_names:
        src = graph.inputs_of(o)[0]
        if isinstance(graph.nodes[src], P.Concat):  # one Sink per part, concatenated when read back
            parts = []
            for i in graph.inputs_of(src):
                pop, d = _resolve_pop(graph, i, src)
                if pops[pop].kind not in ("neuron", "input") or (isinstance(graph.nodes[pop], P.Neuron)
                                                                 and not graph.nodes[pop].spiking):
                    raise _unsupported(o, graph.nodes[o], "Lava records a Concat of spikes of neurons or inputs; "
                                                          f"`{i}` is not one")
                parts.append((pop, pops[pop].latency - d))
            probes.append(Probe(o, parts[0][0], parts[0][1], "s", parts, graph.nodes[src].axis))
            continue
        pop, d = _resolve_pop(graph, src, o)
        if pops[pop].kind not in ("neuron", "input", "filter"):
            raise _unsupported(o, graph.nodes[o], "Lava outputs record spikes of a neuron or an input")
        readout = pops[pop].kind == "filter" or pops[pop].kind == "neuron" and not (
            isinstance(graph.nodes[pop], P.Neuron) and graph.nodes[pop].spiking)
        probes.append(Probe(o, pop, pops[pop].latency - d, "v" if readout else "s"))
    return probes


def _warm_up(n: str, prim: P.Primitive, pop: Pop, fixed: bool) -> None:
    """Start v so that after `latency` input-free steps it is the graph's v_init, without spiking.

    With no input, u stays 0 and v follows v <- decay(v) + bias; the start value is found by
    inverting that map step by step (Lava's truncation in fixed_pt) and then checked forward.
    """
    prm = pop.params
    bias, v_init = np.asarray(prm["bias_mant"]), np.asarray(prm["v"])
    if not np.any(bias) and not np.any(v_init):
        return
    steps = pop.latency
    if fixed:
        b = bias.astype(np.int64) << np.asarray(prm["bias_exp"], dtype=np.int64)
        one = LOIHI2.one
        a = one - np.asarray(prm["dv"], dtype=np.int64)  # per neuron where the decays are
        vth = int(prm["vth"]) << LOIHI2.theta_shift
        lim = LOIHI2.state_max

        def fwd(v):  # the FixedCubaLIF voltage update without input (n3ml.ir.neurons)
            return N.overflow(N.NUMPY, N.trunc_shift(N.NUMPY, v * a, LOIHI2.decay_bits) + b, LOIHI2.state_bits,
                              "saturate")

        v = np.broadcast_to(v_init, np.broadcast_shapes(b.shape, v_init.shape)).astype(np.int64)
        for _ in range(steps):
            z = v - b
            v = np.sign(z) * ((np.abs(z) * one + a - 1) // a)  # the smallest |x| with trunc(x a / one) = z
        start, trace = v.copy(), v.copy()
        ok = np.all(np.abs(start) <= lim)
        for _ in range(steps):
            trace = fwd(trace)
            ok = ok and not np.any(trace > vth)
        ok = ok and np.array_equal(trace, np.broadcast_to(v_init, trace.shape))
    else:
        keep = 1.0 - np.asarray(prm["dv"], dtype=np.float64)
        if np.all(keep == 0.0) and np.all(bias <= float(prm["vth"])):
            return  # v forgets everything each step: no start value matters, and the bias alone never fires
        if np.any(keep == 0.0):  # no start value survives a step: hold it until the input arrives
            pop.start = steps
            return
        v = np.broadcast_to(v_init, np.broadcast_shapes(bias.shape, v_init.shape)).astype(np.float64)
        for _ in range(steps):
            v = (v - bias) / keep
        start, trace = v.copy(), v.copy()
        ok = True
        for _ in range(steps):
            trace = trace * keep + bias
            ok = ok and not np.any(trace > float(prm["vth"]))
    if not ok:  # n3ml's N3mlLIF process holds its initial state until its input arrives
        pop.start = steps
        return
    prm["v"] = start if start.size > 1 else start.reshape(-1)[0].item()


def _rows(g: np.ndarray, axis: int) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    return g[:, None]


def _channel(n: str, p: P.Primitive, g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    if g.size == 1:
        return np.full(shape[0], float(g.reshape(-1)[0]))
    flat = np.broadcast_to(g.reshape(shape) if g.size == math.prod(shape) else g, shape).reshape(shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise _unsupported(n, p, "behind a convolution the neurons of a channel must share gain and threshold")
    return flat[:, 0].copy()
