"""The quantize pass: float spiking graphs -> integer weights and `FixedCubaLIF` neurons.

    quantize{profile=loihi2}     Loihi 2 as Lava models it (lava-nc 0.10, fixed_pt)
    quantize{profile=int8}       a generic int8-weight, int32-state form

The float graph's synapses (Dense, Conv1d/Conv2d, SumPool2d/AvgPool2d) and the
spiking neurons they feed (IF, LIF, CubaLIF, ALIF) become integer synapses and
`FixedCubaLIF` neurons (docs/semantics.md §6; an ALIF's adaptive threshold becomes
the neuron's db and q, §6a). What the hardware can hold is data in a `Profile`;
this pass knows no target.

A SpikingJelly `SynapseFilter` (spikes in, a graded current out) becomes a
`FixedSynapseFilter` whose current counts jump = 2^J >= 2^input_shift per spike,
saturating at `filter_max` spikes' worth; the neuron after its synapses reads it
at input_shift 0 with weights / jump (docs/quantization.md, "Synapse filters").

An ALIF reading an LI current (v_leak = v_init = 0; Norse's LSNN) is one neuron
whose current is the LI: when the LI reaches it through a Delay (the LSNN integrates
the current of the step before), the Delay is first moved in front of the LI's
synapses (`delay-before-current`, exact).

How the scales are chosen (docs/quantization.md has the derivation): a neuron's
spikes depend only on its inputs and state relative to its threshold, so every
synapse row is first normalised by the gain it reaches the voltage with and by
the neuron's threshold (`w~ = r g W / theta`). The pass then picks one integer
threshold per neuron group (`theta = vth << theta_shift`) and one weight
exponent per synapse (`W_int = m << s`, `m` an 8-bit mantissa), scanning
candidate thresholds and keeping the one with the least error, subject to the
state never overflowing (worst case: every input spiking at every step). The
error per layer goes to the log and to `context["report"]["quantize"]`.
"""

from __future__ import annotations


import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import UnsupportedError
from ..ir import prims as P
from ..ir.graph import Graph, li_chains
from ..ir.neurons import discretize
from ..ir.profiles import PROFILES, Profile  # noqa: F401 (the profiles are data of the IR; re-exported)
from ..ir.types import FixedPoint
from .base import Pass, PassError
from .cleanup import bypass
from .current_delay import move_current_delays
from .legalize import SYNAPSE_PER_NEURON, spike_gated_loop

log = logging.getLogger(__name__)


SYNAPSES = (P.Dense, P.Conv1d, P.Conv2d, P.SumPool2d, P.AvgPool2d)
FLOAT_NEURONS = (P.IF, P.LIF, P.CubaLIF, P.ALIF)
PASSIVE = (P.Input, P.Output, P.Flatten, P.Delay, P.Add, P.Concat, P.FixedCubaLIF)  # (a Concat of spikes: `_synapse`)


CANONICAL = SYNAPSE_PER_NEURON  # the Lava target's legalization (passes/legalize.py)


@dataclass(frozen=True, kw_only=True)
class Quantize(Pass):
    """Quantize weights and neurons for a fixed-point profile (loihi2, int8)."""

    name = "quantize"
    summary = ("float synapses and IF/LIF/CubaLIF/ALIF (SynapseFilter) -> integer weights and FixedCubaLIF "
               "(FixedSynapseFilter) (profile=loihi2|int8)")
    profile: str = "loihi2"
    candidates: int = 256  # thresholds tried per neuron group
    input_scale: float = 0.0  # > 0: analog inputs become graded integers round(input_scale * x), |x| <= 1
    readout: str = "refuse"  # "voltage": LI readouts become never-firing neurons read through their v
    weight_exp_max: int = -1  # >= 0: cap the profile's shared weight exponent (netx files want 0 or 1)
    filter_max: float = 64.0  # a SynapseFilter saturates above this current, in spikes (rounded up to 2^k)

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        if self.profile not in PROFILES:
            raise PassError(f"quantize: unknown profile {self.profile!r}; available: {', '.join(PROFILES)}")
        if self.readout not in ("refuse", "voltage"):
            raise PassError(f"quantize: readout must be refuse or voltage; found {self.readout!r}")
        if not (math.isfinite(self.filter_max) and self.filter_max >= 1):
            raise PassError(f"quantize: filter_max must be a finite number >= 1 (a current of one spike at "
                            f"least); found {self.filter_max!r}")
        prof = PROFILES[self.profile]
        if self.weight_exp_max >= 0:
            prof = dataclasses.replace(prof, weight_exp_max=min(prof.weight_exp_max, self.weight_exp_max))
        from .base import PassManager, get_pass_class

        # the exact rewrites every synapse-per-neuron target needs first (a BatchNorm, a Scale of spikes, a
        # max-pool of spikes, two synapses in a row have no fixed-point form of their own)
        # an ALIF's current through a Delay (Norse's LSNN): the Delay goes in front of the current's synapses, so
        # that the current is formed in the step the neuron reads it, as FixedCubaLIF's u is
        graph = move_current_delays(graph, refuse_bias=True)
        graph = PassManager([get_pass_class(n)() for n in CANONICAL]).run(graph, None)
        out, report = quantize(graph, prof, candidates=self.candidates, input_scale=self.input_scale,
                               readout=self.readout, filter_max=self.filter_max)
        if context is not None:
            context.setdefault("report", {})["quantize"] = report
        return out


# --------------------------------------------------------------------- groups


@dataclass
class _Syn:
    name: str
    prim: P.Primitive
    w: np.ndarray  # float weights, torch layout, pools made explicit
    groups: int  # conv groups (1 for Dense)
    bias: np.ndarray | None
    xmax: float = 1.0  # largest input magnitude (1 for spikes, input_scale for graded inputs)
    mant: tuple[int, int] | None = None  # its weight mantissa range under the profile (found once)
    unshift: int = 0  # log2 of the scale its input already carries (a synapse filter's jump)
    filt: str | None = None  # the synapse filter it reads


@dataclass
class _Group:
    neuron: str
    prim: P.Neuron
    shape: tuple[int, ...]
    syns: list[_Syn]
    first: str | None = None  # LI1 of an LI1 -> LI2 readout: the group's current (removed from the graph)

    def input_shift(self, prof: Profile) -> int:
        """The neuron's input shift: the profile's, or 0 where it reads a synapse filter, whose current carries
        2^input_shift or more per spike (jump) already: the filter's synapses take weights / jump, its spike
        synapses weights 2^input_shift larger, which their exponent holds."""
        return max(0, prof.input_shift - max(s.unshift for s in self.syns))


class _Filter(NamedTuple):
    """How a SynapseFilter is quantized: v_int = jump * v, saturating at `state_bits` (docs/quantization.md)."""

    jump: int  # 2^J: one spike in state units (J fractional bits)
    state_bits: int  # saturates at 2^(state_bits - 1) - 1 = filter_max jump - 1


def _as_conv(name: str, prim: P.Primitive, cin: int) -> _Syn:
    """A pool as a depthwise convolution with constant weights."""
    kh, kw = prim.kernel
    val = 1.0 / (kh * kw) if isinstance(prim, P.AvgPool2d) else 1.0
    w = np.full((cin, 1, kh, kw), val)
    return _Syn(name, prim, w, cin, None)


def _synapse(graph: Graph, types, name: str, user: str, input_scale: float, filters: dict[str, _Filter]) -> _Syn:
    prim = graph.nodes[name]
    if not isinstance(prim, SYNAPSES):
        raise UnsupportedError(f"node `{user}`: quantize needs its input to come from a synapse (Dense, Conv, "
                               f"SumPool2d, AvgPool2d) or an Add of synapses; found `{name}` ({prim.op})")
    src = graph.inputs_of(name)[0]
    origin = src
    while isinstance(graph.nodes[origin], (P.Flatten, P.Delay)):  # graded integers stay graded through both
        origin = graph.inputs_of(origin)[0]
    graded = isinstance(graph.nodes[origin], P.Input) and input_scale > 0
    filt = filters.get(origin)
    if types[src].kind != "spike" and not graded and filt is None:
        raise UnsupportedError(f"node `{name}` ({prim.op}): quantize needs spikes into a synapse; its input "
                               f"`{src}` is {types[src].kind} (for analog Input data give input_scale, which "
                               "makes it graded integers)")
    users = graph.users_of(name)
    if users != [user]:
        raise UnsupportedError(f"node `{name}` ({prim.op}): a quantized synapse must feed exactly one neuron "
                               f"(or one Add); it feeds {users}")
    if isinstance(prim, P._Pool2d):
        syn = _as_conv(name, prim, types[src].shape[0])
    else:
        if isinstance(prim, P.Conv2d):
            prim = _live_taps(prim, types[src].shape)
        syn = _Syn(name, prim, np.asarray(prim.weight, dtype=np.float64), getattr(prim, "groups", 1),
                   None if prim.bias is None else np.asarray(prim.bias, dtype=np.float64))
    if filt is not None:  # the filter's current v_int = jump * v: the weight takes 1 / jump, read at shift 0
        cap = (1 << (filt.state_bits - 1)) - 1  # where the fixed-point filter saturates
        return dataclasses.replace(syn, w=syn.w / filt.jump, xmax=float(cap), unshift=filt.jump.bit_length() - 1,
                                   filt=origin)
    if types[src].kind != "spike":  # graded input x_int = input_scale * x: the weight takes 1 / input_scale
        return dataclasses.replace(syn, w=syn.w / input_scale, xmax=float(input_scale))
    return syn


def _live_taps(prim: P.Conv2d, shape: tuple[int, ...]) -> P.Conv2d:
    """The convolution cropped to the kernel taps that read the input somewhere (same outputs): on a small map
    (ResNet-18's 1x1 maps from its third stage on an 8x8 image) a padded 3x3 kernel reads the map with its
    centre only. Unread taps would still count in the worst-case current and the exponent fit, costing
    threshold range and weight precision; they also cost synapses."""
    w, pad, keep = prim.weight, list(prim.padding), [slice(None), slice(None)]
    if tuple(prim.dilation) != (1, 1):
        return prim
    for ax in (0, 1):
        size, k, p, st = shape[1 + ax], w.shape[2 + ax], prim.padding[ax], prim.stride[ax]
        n_out = (size + 2 * p - k) // st + 1
        live = [i for i in range(k) if any(0 <= o * st + i - p < size for o in range(n_out))]
        if not live:
            return prim
        a, k2 = live[0], live[-1] - live[0] + 1
        if (a, k2) == (0, k) or a > p or (size + 2 * (p - a) - k2) // st + 1 != n_out:
            keep.append(slice(None))
            continue
        pad[ax] = p - a
        keep.append(slice(a, a + k2))
    if pad == list(prim.padding) and all(k == slice(None) for k in keep):
        return prim
    return dataclasses.replace(prim, weight=np.ascontiguousarray(w[tuple(keep)]), padding=tuple(pad))


def current_inputs(graph: Graph) -> dict[str, str]:
    """{ALIF: LI} for an ALIF reading an LI with v_leak = v_init = 0 read by it alone, fed by a synapse or an
    Add (Norse's LSNN current, its Delay moved before the synapses): the pair quantizes as one FixedCubaLIF
    whose current u is the LI (du from the LI's decay, the gains multiplied)."""
    found = {}
    for n, p in graph.nodes.items():
        if type(p) is not P.ALIF:
            continue
        (src,) = graph.inputs_of(n)
        q = graph.nodes[src]
        if (type(q) is P.LI and graph.users_of(src) == [n] and not np.any(np.asarray(q.v_leak))
                and not np.any(np.asarray(q.v_init))
                and isinstance(graph.nodes[graph.inputs_of(src)[0]], SYNAPSES + (P.Add,))):
            found[n] = src
    return found


def _groups(graph: Graph, types, input_scale: float, readout: str, filters: dict[str, _Filter]) -> list[_Group]:
    groups = []
    chains = {**(li_chains(graph) if readout == "voltage" else {}), **current_inputs(graph)}
    for n in graph.topo_order():
        p = graph.nodes[n]
        if n in chains.values():
            continue  # the current of the LI -> LI readout it feeds
        if isinstance(p, FLOAT_NEURONS) or (isinstance(p, P.LI) and readout == "voltage"):
            first = chains.get(n)
            (src,) = graph.inputs_of(first or n)
            if isinstance(graph.nodes[src], P.Add):
                if graph.users_of(src) != [first or n]:
                    raise UnsupportedError(f"node `{src}` (Add): quantize needs an Add to feed one neuron; it "
                                           f"feeds {graph.users_of(src)}")
                syns = [_synapse(graph, types, s, src, input_scale, filters) for s in graph.inputs_of(src)]
            else:
                syns = [_synapse(graph, types, src, first or n, input_scale, filters)]
            groups.append(_Group(n, p, tuple(types[n].shape), syns, first))
        elif not isinstance(p, SYNAPSES + PASSIVE + (P.SynapseFilter,)):
            raise UnsupportedError(f"node `{n}` ({p.op}) has no fixed-point form" + (spike_gated_loop(graph, n) or (
                "; quantize handles synapses (Dense, Conv, SumPool2d, AvgPool2d) feeding IF, LIF, CubaLIF or ALIF "
                "neurons (an ALIF's current may be an LI with v_leak = v_init = 0)"
                + (" and LI readouts with readout=voltage" if isinstance(p, P.LI) else ""))))
    return groups


# ------------------------------------------------------------------- neurons


class _Dyn(NamedTuple):
    """A float neuron as per-step factors: i = a_s i + I; v = a v + gain i + leak (normalised below)."""

    a_s: np.ndarray | float  # 0: delta synapse
    a: np.ndarray | float
    gain: np.ndarray | float
    leak: np.ndarray | float  # constant added to v per step from v_leak


def _dynamics(prim: P.Neuron, dt: float, scheme: str) -> _Dyn:
    return _Dyn(*discretize(prim, dt, scheme).linear())


def _check_neuron(name: str, prim: P.Neuron, prof: Profile) -> None:
    where = f"node `{name}` ({prim.op})"
    if not prim.spiking:  # a readout: never fires, so reset and threshold do not matter
        return
    if prim.reset not in prof.resets:
        raise UnsupportedError(f"{where}: reset `{prim.reset}` is not supported by profile {prof.name} (it supports "
                               f"{', '.join(prof.resets)}); Lava's LIF resets v to 0 after a spike")
    if prim.reset == "to-value" and prof.v_reset_zero and np.any(np.asarray(prim.v_reset) != 0):
        raise UnsupportedError(f"{where}: profile {prof.name} resets to 0 only; found v_reset={prim.v_reset!r}")
    if isinstance(prim, P.ALIF) and not prof.adaptation:
        raise UnsupportedError(f"{where}: profile {prof.name} has no adaptive threshold")
    if prim.refractory and not prof.refractory:
        raise UnsupportedError(f"{where}: profile {prof.name} has no refractory period; found refractory="
                               f"{prim.refractory}")
    if np.any(np.asarray(prim.theta) <= 0):
        raise UnsupportedError(f"{where}: quantization scales by the threshold, which must be > 0; found "
                               f"theta={prim.theta!r}")


def _per_out(name: str, x, shape: tuple[int, ...]) -> np.ndarray:
    """A per-neuron parameter as one value per output row (Dense) or channel (Conv)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0 or a.size == 1:
        return np.full(shape[0], float(a.reshape(-1)[0]))
    a = a.reshape(shape)
    flat = a.reshape(shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise UnsupportedError(f"node `{name}`: a convolution's neurons must share their gain/threshold within a "
                               "channel for quantization")
    return flat[:, 0]


# ------------------------------------------------------------------- weights


def _weight_format(lo: int, hi: int, exp: int) -> FixedPoint:
    """The smallest fixed-point storage of mantissas lo..hi scaled by 2**exp (W = m << exp)."""
    signed = lo < 0
    bits = 1
    while (signed and (lo < -(2 ** (bits - 1)) or hi > 2 ** (bits - 1) - 1)) or (not signed and hi > 2**bits - 1):
        bits += 1
    return FixedPoint(bits=bits, frac=-exp, signed=signed)


def _fit(target: np.ndarray, lo: int, hi: int, exp_max: int) -> tuple[np.ndarray, int] | None:
    """Integer weights m << s nearest to `target`, m in lo..hi; None when no s <= exp_max fits."""
    big = float(np.max(np.abs(target))) if target.size else 0.0
    if big == 0.0:
        return np.zeros(target.shape, np.int64), 0
    lim = float(hi if hi > 0 else -lo)
    s = max(0, math.ceil(math.log2(big / lim))) if big > lim else 0
    for s in (s, s + 1):  # rounding at the top can need one more step
        if s > exp_max:
            return None
        m = np.round(target / 2**s)
        if m.min() >= lo and m.max() <= hi:
            return m.astype(np.int64) << s, s
    return None


def _round_bias(b: np.ndarray, prof: Profile, node: str = "?") -> tuple[np.ndarray, np.ndarray]:
    """The bias `b` (state units) as the hardware holds it: m << e with m a `bias_mant_bits` signed mantissa
    and e the smallest exponent 0..`bias_exp_max` that holds round(b / 2^e) (Loihi 2's bias_mant, bias_exp,
    which the Lava lowering splits back out of the integer); (bias, e)."""
    r = np.round(b)
    if prof.bias_mant_bits is None:
        return r.astype(np.int64), np.zeros(np.shape(b), np.int64)
    lim = prof.bias_mant_max
    out = np.zeros_like(r)
    exp = np.full(np.shape(b), -1, np.int64)
    for e in range(prof.bias_exp_max + 1):  # the smallest exponent that holds each value
        m = np.round(b / 2**e)
        ok = (np.abs(m) <= lim) & (exp < 0)
        out = np.where(ok, m * 2**e, out)
        exp = np.where(ok, e, exp)
    if np.any(exp < 0):
        raise UnsupportedError(f"node `{node}`: neuron bias {b[exp < 0][0]:.4g} does not fit a {prof.bias_mant_bits}-bit mantissa "
                               f"with exponent <= {prof.bias_exp_max}")
    return out.astype(np.int64), np.where(out == 0, 0, exp)


# ----------------------------------------------------------------- synapse filters


def _filters(graph: Graph, prof: Profile, filter_max: float) -> dict[str, _Filter]:
    """{SynapseFilter node: its first fixed-point form}, jump 2^input_shift; `_fit_jumps` then widens the jump
    where the synapses after the filter leave room.

    A float filter fed a spike at every step grows without bound; the integer one saturates, at filter_max
    spikes' worth (2^k jump - 1): so the worst case of the neurons after it (every input at its largest at
    every step, `_theta_cap`) is a real bound, and their current never wraps."""
    found = {}
    for n, p in graph.nodes.items():
        if not isinstance(p, P.SynapseFilter):
            continue
        if not prof.synapse_filter:
            raise UnsupportedError(f"node `{n}` (SynapseFilter): profile {prof.name} has no graded synapse filter "
                                   "(a current that sends its value to the synapses after it)")
        found[n] = _Filter(1 << prof.input_shift, _filter_bits(filter_max) + prof.input_shift + 1)
    return found


def _filter_bits(filter_max: float) -> int:
    """k with 2^k >= filter_max: a filter saturates at 2^k spikes' worth."""
    return max(0, math.ceil(math.log2(filter_max) - 1e-12))


def _fit_jumps(graph: Graph, groups: list[_Group], filters: dict[str, _Filter], prof: Profile,
               filter_max: float) -> dict[str, _Filter]:
    """Each filter's jump 2^J, J fractional bits: the J with the least error of the input it gives its neurons.

    Two errors trade off. The filter truncates toward zero, a bias under 2^-J of a spike per step, piled up by
    1 / leak (half that on average). A synapse after it reads it at input shift 0 with weights w~ theta / 2^J:
    its neuron's threshold is bounded by the worst case, which does not depend on J (the current saturates
    at filter_max spikes' worth whatever J), so every bit of J beyond what fills the mantissa costs a weight
    bit. J is scanned from input_shift (a spike's own scale) to what the state holds beside filter_max, each
    scored as the synapses' relative weight error at that bound plus the filter's mean truncation in spikes;
    a filter only Outputs read takes the most bits."""
    k = _filter_bits(filter_max)
    top = prof.state_bits - 1 - k
    if top < prof.input_shift:
        raise UnsupportedError(f"node `{next(iter(filters))}` (SynapseFilter): filter_max {filter_max:g} leaves the "
                               f"{prof.state_bits}-bit state no room for {prof.input_shift} fractional bits")
    js = np.arange(prof.input_shift, top + 1)
    score = {n: np.zeros(js.size) for n in filters}
    for grp in groups:
        if not any(s.filt for s in grp.syns):
            continue
        st = _setup(graph, grp, prof, graph.dt, graph.scheme)
        th = _theta_cap(grp, st.targets, prof, st.pile, st.cap)
        for s, t in zip(grp.syns, st.targets):
            if s.filt is None:
                continue
            lo, hi = prof.mantissa_range(s.w)[:2]
            tgt = t * (1 << s.unshift) * th  # w~ theta in state units, to be divided by 2^J
            den = float(np.sqrt(np.sum(tgt**2))) or 1.0
            for i, j in enumerate(js):
                f = _fit(tgt / 2.0**j, lo, hi, prof.weight_exp_max)
                err = np.inf if f is None else float(np.sqrt(np.sum((f[0] * 2.0**j - tgt) ** 2))) / den
                score[s.filt][i] += err
    out = {}
    for n in filters:
        leak = np.maximum(np.asarray(graph.nodes[n].leak, np.float64), 1.0 / prof.one)
        trunc = 0.5 * float(np.mean(1.0 / leak)) / 2.0**js  # the mean truncation, in spikes
        j = int(js[np.argmin(score[n] + trunc)])  # (the first, the fewest bits, among equal scores)
        out[n] = _Filter(1 << j, k + j + 1)
    return out


def _quantize_filter(out: Graph, name: str, f: _Filter, prof: Profile) -> dict[str, Any]:
    """Replace SynapseFilter `name` in `out` by its FixedSynapseFilter (d = round(2^D leak), jump, v_init * jump);
    its report."""
    p = out.nodes[name]
    leak = np.asarray(p.leak, dtype=np.float64)
    d = np.round(leak * prof.one).astype(np.int64)  # leak lies in 0..1 (verified): d in 0..2^D
    cap = (1 << (f.state_bits - 1)) - 1
    v0 = np.round(np.asarray(p.v_init, dtype=np.float64) * f.jump)
    if np.any(np.abs(v0) > cap):
        raise UnsupportedError(f"node `{name}` (SynapseFilter): v_init {np.max(np.abs(p.v_init)):g} lies beyond the "
                               f"current its fixed-point form holds ({cap / f.jump:g}; raise filter_max)")
    out.nodes[name] = P.FixedSynapseFilter(d=_scalar(d), jump=f.jump, decay_bits=prof.decay_bits,
                                           state_bits=f.state_bits, v_init=_scalar(v0.astype(np.int64)))
    rep = {"jump": f.jump, "d": int(np.max(d)), "state_bits": f.state_bits, "saturates_at": cap / f.jump,
           "leak_error": float(np.max(np.abs(d / prof.one - leak))), "voltage_scale": f.jump,
           "readout": f"its integers are the float current * {f.jump} (an Output of it reads them)"}
    log.info("quantize[%s] %s: filter d=%d jump=%d state_bits=%d (saturates at %g spikes)", prof.name, name,
             rep["d"], f.jump, f.state_bits, rep["saturates_at"])
    return rep


# ----------------------------------------------------------------------- main


def quantize(graph: Graph, prof: Profile, *, candidates: int = 256, input_scale: float = 0.0,
             readout: str = "refuse", filter_max: float = 64.0) -> tuple[Graph, dict[str, Any]]:
    """Quantize `graph` for `prof`; return the new graph and the per-layer report.

    Args:
        input_scale: > 0 lets analog Inputs in as graded integers: feed round(input_scale * x), |x| <= 1.
        readout: "voltage" turns LI readouts into FixedCubaLIF neurons that never fire; read their
            voltage (record the node: state/<node>.v), which is the float voltage times a per-layer scale.
        filter_max: a SynapseFilter saturates above this many spikes' worth (rounded up to a power of two),
            which bounds the current of the neurons after it.
    """
    if readout == "voltage":
        graph = _value_readouts(graph)
    types = graph.verify()
    for n, p in graph.nodes.items():
        if isinstance(p, P.Input) and p.kind != "spike" and graph.users_of(n) and not input_scale > 0:
            raise UnsupportedError(f"node `{n}` (Input): quantized graphs take spike inputs (or graded integers "
                                   f"with input_scale); found {p.kind}")
    filters = _filters(graph, prof, filter_max)
    groups = _groups(graph, types, input_scale, readout, filters)
    if filters:  # the jumps the synapses after each filter leave room for; its synapses read them
        filters = _fit_jumps(graph, groups, filters, prof, filter_max)
        groups = _groups(graph, types, input_scale, readout, filters)
    out = graph.copy()
    report: dict[str, Any] = {"profile": prof.name, "layers": {}}
    if input_scale > 0:
        report["input_scale"] = input_scale
    for n, f in filters.items():
        report.setdefault("filters", {})[n] = _quantize_filter(out, n, f, prof)
    for grp in groups:
        _check_neuron(grp.neuron, grp.prim, prof)
        rep = _quantize_group(out, grp, prof, graph.dt, graph.scheme, candidates)
        report["layers"][grp.neuron] = rep
        if grp.first is not None:  # LI2 now reads LI1's input: LI1 is its current
            bypass(out, grp.first)
        log.info("quantize[%s] %s: vth=%d theta=%d du=%d dv=%d; %s", prof.name, grp.neuron, rep["vth"], rep["theta"],
                 rep["du"], rep["dv"], ", ".join(f"{s}: exp {r['exp']} {r['sign']} weight error {r['weight_error']:.2%}"
                                                 for s, r in rep["synapses"].items()))
    if groups:
        errs = [r["weight_error"] for g in report["layers"].values() for r in g["synapses"].values()]
        report["max_weight_error"] = max(errs)
    return out, report


def _value_readouts(graph: Graph) -> Graph:
    """An Output of a synapse value (SpikingJelly's Linear head, a counter's `/ T`) reads, with readout=voltage,
    an LI that forgets every step (a = 0, gain 1: its voltage is the value) named `<synapse>_value`, which
    then quantizes as a readout: record it (state/<synapse>_value.v) to read the value."""
    from ..ir.graph import Edge

    g = graph
    for o in graph.output_names:
        (src,) = graph.inputs_of(o)
        p = graph.nodes[src]
        terms = graph.inputs_of(src) if isinstance(p, P.Add) else [src]
        if not all(isinstance(graph.nodes[t], SYNAPSES) for t in terms):
            continue
        if g is graph:
            g = graph.copy()
        dt = float(graph.dt)
        tau = dt if graph.scheme == "euler" else dt / 50  # a = 0 (euler) or e^-50, and r g = 1
        g1 = discretize(P.LI(tau=tau, r=1.0), dt, graph.scheme).rg  # the LI's gain at r = 1 (n3ml.ir.neurons)
        li = P.LI(tau=tau, r=1.0 / float(np.asarray(g1)))
        name = g.fresh_name(f"{src}_value")
        g.nodes = {**g.nodes, name: li}
        g.edges = [Edge(name, e.dst, e.dst_port) if e.src == src and e.dst == o else e for e in g.edges]
        g.edges.append(Edge(src, name))
    return g


class _Setup(NamedTuple):
    """A neuron group's float dynamics as quantize reads them, before any threshold is chosen."""

    dyn: _Dyn
    theta: np.ndarray  # the float threshold (1.0 for a readout)
    du: np.ndarray
    dv: np.ndarray
    pile: float
    targets: list[np.ndarray]  # w~ per synapse
    bias_n: np.ndarray
    note: str | None
    db: np.ndarray | None
    q_n: np.ndarray | None
    cap: int | None  # the largest threshold its bias and threshold jump allow


def _setup(out: Graph, grp: _Group, prof: Profile, dt: float, scheme: str) -> _Setup:
    p = grp.prim
    dyn = _dynamics(p, dt, scheme)
    if grp.first is not None:  # LI1 -> LI2 (or -> ALIF): u = a1 u + c1 c2 I, v = a2 v + u + leak2
        first = _dynamics(out.nodes[grp.first], dt, scheme)
        dyn = _Dyn(first.a, dyn.a, np.asarray(first.gain) * np.asarray(dyn.gain), dyn.leak)
    # a readout has no threshold: its voltage is scaled as if 1.0 were one (only ratios matter)
    theta = np.asarray(p.theta if p.spiking else 1.0, dtype=np.float64)
    du, dv, pile = _registers(dyn, prof, p.spiking)
    bias_n, note = _normalised_bias(grp, dyn, theta)
    db, q_n = _adaptation(p, dt, scheme, theta, prof)
    caps = [c for c in (_bias_cap(grp, bias_n, prof), _adapt_cap(q_n, prof)) if c is not None]
    return _Setup(dyn, theta, du, dv, pile, _normalised_weights(grp, dyn, theta), bias_n, note, db, q_n,
                  min(caps) if caps else None)


def _quantize_group(out: Graph, grp: _Group, prof: Profile, dt: float, scheme: str,
                    candidates: int) -> dict[str, Any]:
    """Quantize one neuron group in `out`: its registers, a threshold and weight exponents, its constants."""
    p = grp.prim
    dyn, theta, du, dv, pile, targets, bias_n, note, db, q_n, cap = _setup(out, grp, prof, dt, scheme)
    th, vth, fits = _choose_threshold(grp, targets, prof, pile, candidates, cap)
    bias, bias_v, bias_exp, v_init, v_reset = _neuron_constants(grp, bias_n, theta, th, prof)
    syn_rep = _write_synapses(out, grp, targets, fits, th, prof)
    fire_th = th if p.spiking else prof.vth_max << prof.theta_shift
    adapt = {}
    if db is not None:  # b in the units of v: q / theta * th, like every voltage
        adapt = {"db": _scalar(db), "q": _scalar(np.round(q_n * th).astype(np.int64))}
    out.nodes[grp.neuron] = P.FixedCubaLIF(
        du=_scalar(du), dv=_scalar(dv), bias=_scalar(bias), theta=fire_th, v_reset=_scalar(v_reset),
        reset=p.reset if p.spiking else "to-value", refractory=p.refractory if p.spiking else 0,
        v_init=_scalar(v_init), **adapt, **{**prof.neuron_fields(), "input_shift": grp.input_shift(prof)})
    rep = {"vth": fire_th >> prof.theta_shift, "theta": fire_th, "du": int(np.max(du)), "dv": int(np.max(dv)),
           "voltage_decay_error": float(np.max(np.abs((1 - dv / prof.one) - np.asarray(dyn.a)))),
           "current_decay_error": float(np.max(np.abs((1 - du / prof.one) - np.asarray(dyn.a_s, np.float64)))),
           "synapses": syn_rep,
           "bias_error": float(np.max(np.abs(bias - bias_v))) / th if np.any(bias_v) else 0.0,
           "bias_exp": int(np.max(bias_exp))}
    if note:
        rep["note"] = note
    if grp.input_shift(prof) != prof.input_shift:
        rep["input_shift"] = grp.input_shift(prof)
    if adapt:
        rep["db"], rep["q"] = int(np.max(db)), int(np.max(np.abs(adapt["q"])))
        rep["adaptation_decay_error"] = float(np.max(np.abs((1 - db / prof.one) - np.asarray(
            discretize(p, dt, scheme).a_b, np.float64))))
    if not p.spiking:
        rep["readout"] = (f"never fires (theta {fire_th}); read state/{grp.neuron}.v = float voltage * {th}")
        rep["voltage_scale"] = th
    return rep


def _registers(dyn: _Dyn, prof: Profile, spiking: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The decay registers du, dv and how much a constant input piles up in the state (1/du, and 1/dv
    in a readout's voltage, which must stay below its unreachable threshold)."""
    one = prof.one
    du = np.clip(np.round(one * (1 - np.asarray(dyn.a_s, dtype=np.float64))), prof.du_min, one).astype(np.int64)
    dv = np.clip(np.round(one * (1 - np.asarray(dyn.a, dtype=np.float64))), 0, prof.dv_max).astype(np.int64)
    pile = float(one / max(int(np.min(du)), 1))
    if not spiking:
        pile *= float(one / max(int(np.min(dv)), 1))
    return du, dv, pile


def _adaptation(p: P.Neuron, dt: float, scheme: str, theta: np.ndarray,
                prof: Profile) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An ALIF's adaptation as (db, q / theta): the decay register of b' = trunc((2^D - db) b / 2^D) and the
    threshold jump normalised like the voltage (times the integer threshold, it is q in state units);
    (None, None) for a neuron without one."""
    if not isinstance(p, P.ALIF):
        return None, None
    k = discretize(p, dt, scheme)
    db = np.clip(np.round(prof.one * (1 - np.asarray(k.a_b, np.float64))), 0, prof.one).astype(np.int64)
    return db, np.asarray(k.q, np.float64) / theta


def _adapt_cap(q_n: np.ndarray | None, prof: Profile) -> int | None:
    """The largest threshold (state units) at which the jump q = q_n theta fits the state register.

    Not the (far lower) cap that would keep b in the state if the neuron spiked at every step: a spike needs
    v > theta + b', and v stays within the state (`_choose_threshold`), so b' < state_max - theta and b stays
    below state_max + (q - theta). b saturates at the state's edge (docs/semantics.md §6a) only where v reaches
    within q - theta of it, which the worst-case scaling of v keeps out of reach. Measured on Norse's LSNN
    (docs/quantization.md): the every-step cap cut the threshold 8x and the agreement with the float graph."""
    big = float(np.max(np.abs(q_n))) if q_n is not None and np.size(q_n) else 0.0
    return int(prof.state_max / big) if big > 0 else None


def _normalised_weights(grp: _Group, dyn: _Dyn, theta: np.ndarray) -> list[np.ndarray]:
    """w~ = r g W / theta per synapse: the factor takes a weight to a threshold-normalised voltage step."""
    k = _per_out(grp.neuron, np.asarray(dyn.gain) / theta, grp.shape)
    return [s.w * k.reshape((-1,) + (1,) * (s.w.ndim - 1)) for s in grp.syns]


def _choose_threshold(grp: _Group, targets: list[np.ndarray], prof: Profile, pile: float,
                      candidates: int, cap: int | None = None) -> tuple[int, int, list[tuple[np.ndarray, int]]]:
    """(theta in state units, its mantissa vth, the fitted weights per synapse) with the least error.

    Worst case: every input at its largest at every step; |u| <= sum |W_int| x << input_shift =
    sum |w~| x * theta_state, piled up by `pile`. The threshold must keep that within the state.
    `cap` (from `_bias_cap`, `_adapt_cap`) is the largest threshold whose bias and threshold jump still fit the
    profile's bias format and state.
    """
    hi_v = _theta_cap(grp, targets, prof, pile, cap) >> prof.theta_shift
    if hi_v < 1:
        why = (f"its bias or threshold jump ({cap} state units at most) and " if cap is not None
               and cap < 1 << prof.theta_shift else "")
        raise UnsupportedError(f"node `{grp.neuron}`: no threshold keeps {why}the worst-case current within "
                               f"{prof.state_bits} bits (fan-in or bias too large for profile {prof.name})")
    best = None
    for vth in np.unique(np.round(np.geomspace(1, hi_v, candidates)).astype(np.int64))[::-1]:
        th = int(vth) << prof.theta_shift
        fitted = _fit_weights(grp, targets, prof, th)
        if fitted is not None:
            fits, werr = fitted
            score = werr + 1.0 / th  # v's per-step truncation costs up to one state unit
            if best is None or score < best[0]:
                best = (score, th, int(vth), fits)
    if best is None:
        mixed = ""
        if grp.input_shift(prof) != prof.input_shift and any(not s.unshift for s in grp.syns):
            mixed = (f" (it reads a synapse filter's current at input shift {grp.input_shift(prof)} beside "
                     f"{', '.join(s.name for s in grp.syns if not s.unshift)}, whose weights must then be "
                     f"2^{prof.input_shift - grp.input_shift(prof)} times larger)")
        raise UnsupportedError(f"node `{grp.neuron}`: its weights cannot be held in a {prof.weight_bits}-bit mantissa "
                               f"with exponent <= {prof.weight_exp_max} under profile {prof.name}{mixed}")
    return best[1], best[2], best[3]


def _theta_cap(grp: _Group, targets: list[np.ndarray], prof: Profile, pile: float, cap: int | None) -> int:
    """The largest threshold (state units) that keeps the worst-case current within the state (and `cap`)."""
    row_sum = sum(np.abs(t).reshape(t.shape[0], -1).sum(axis=1) * s.xmax for s, t in zip(grp.syns, targets))
    worst = float(np.max(row_sum)) * pile
    theta_cap = prof.vth_max << prof.theta_shift
    if worst > 0:
        theta_cap = min(theta_cap, int(prof.headroom * prof.state_max / worst))
    if cap is not None:
        theta_cap = min(theta_cap, cap)
    return theta_cap


def _fit_weights(grp: _Group, targets: list[np.ndarray], prof: Profile,
                 th: int) -> tuple[list[tuple[np.ndarray, int]], float] | None:
    """Integer weights of every synapse for threshold `th` and their relative error; None if one cannot fit."""
    fits, err2, den2 = [], 0.0, 0.0
    for s, t in zip(grp.syns, targets):
        tgt = t * th / 2 ** grp.input_shift(prof)
        if s.mant is None:  # the same for every candidate threshold
            s.mant = prof.mantissa_range(s.w)[:2]
        lo, hi = s.mant
        f = _fit(tgt, lo, hi, prof.weight_exp_max)
        if f is None:
            return None
        fits.append(f)
        err2 += float(np.sum((f[0] - tgt) ** 2))
        den2 += float(np.sum(tgt**2))
    return fits, (math.sqrt(err2 / den2) if den2 > 0 else 0.0)


def _normalised_bias(grp: _Group, dyn: _Dyn, theta: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The neuron's constant drive per step as a fraction of its threshold (the bias is this times the
    integer threshold), and a note on how a current-based neuron's bias was moved."""
    p, shape = grp.prim, grp.shape
    bias_f = np.zeros(shape)
    note = None
    for s in grp.syns:
        if s.bias is not None:
            b = s.bias.reshape((-1,) + (1,) * (len(shape) - 1)) * np.ones(shape)
            if isinstance(p, P.CubaLIF) or grp.first is not None:  # a constant current reaches v as its steady state
                b = b / (1 - np.asarray(dyn.a_s, dtype=np.float64))
                note = "bias of a current-based neuron moved to the voltage as its steady state"
            bias_f = bias_f + b
    bias_n = (np.asarray(dyn.gain) * bias_f + np.asarray(dyn.leak)) / theta
    return np.broadcast_to(bias_n, shape).astype(np.float64), note


def _bias_cap(grp: _Group, bias_n: np.ndarray, prof: Profile) -> int | None:
    """The largest threshold (state units) at which every bias bias_n * theta still rounds into the profile's
    bias format, a mantissa of `bias_mant_bits` << 0..`bias_exp_max` (Loihi 2: |b| <= 4095 << 7); None when
    the profile's bias is unbounded or the group has none."""
    big = float(np.max(np.abs(bias_n))) if bias_n.size else 0.0
    if prof.bias_mant_max is None or big == 0.0:
        return None
    # round(b / 2^e) <= mant_max  <=>  b < (mant_max + 1/2) 2^e
    return int(math.floor((prof.bias_mant_max + 0.5) * 2**prof.bias_exp_max / big - 1e-9))


def _neuron_constants(grp: _Group, bias_n: np.ndarray, theta: np.ndarray, th: int, prof: Profile):
    """(bias, its float value, its exponent, v_init, v_reset) in state units (v_state = v / theta * th)."""
    p = grp.prim
    bias_v = bias_n * th
    bias, bias_exp = _round_bias(bias_v, prof, grp.neuron)
    v_init = np.round(np.asarray(p.v_init, dtype=np.float64) / theta * th).astype(np.int64)
    v_reset = np.round(np.asarray(p.v_reset, dtype=np.float64) / theta * th).astype(np.int64)
    return bias, bias_v, bias_exp, v_init, v_reset


def _write_synapses(out: Graph, grp: _Group, targets, fits, th: int, prof: Profile) -> dict[str, Any]:
    """Replace every synapse of the group by its integer form (pools become convolutions); its report."""
    syn_rep = {}
    shift = grp.input_shift(prof)
    for s, t, (wi, e) in zip(grp.syns, targets, fits):
        tgt = t * th / 2**shift
        den = float(np.sqrt(np.sum(tgt**2)))
        err = float(np.sqrt(np.sum((wi - tgt) ** 2))) / den if den > 0 else 0.0
        lo, hi, sign = prof.mantissa_range(s.w)
        fmt = _weight_format(lo, hi, e)
        syn_rep[s.name] = {"exp": e, "sign": sign, "weight_error": err,
                           "max_abs_error": float(np.max(np.abs(wi - tgt))) / th * 2**shift}
        if s.unshift:
            syn_rep[s.name]["reads"] = "a synapse filter's current (jump 2^%d)" % s.unshift
        if isinstance(s.prim, P._Pool2d):
            out.nodes[s.name] = P.Conv2d(weight=wi, bias=None, stride=s.prim.stride_, padding=s.prim.padding,
                                         groups=s.groups, weight_format=fmt)
        elif isinstance(s.prim, P.Conv2d):  # (cropped to its live taps: `_live_taps`)
            out.replace(s.name, weight=wi, bias=None, weight_format=fmt, padding=s.prim.padding)
        else:
            out.replace(s.name, weight=wi, bias=None, weight_format=fmt)
    return syn_rep


def _scalar(a: np.ndarray) -> Any:
    a = np.asarray(a)
    if a.size and np.all(a == a.reshape(-1)[0]):
        return int(a.reshape(-1)[0])
    return a.astype(np.int64)



