#!/usr/bin/env python3
"""Run a network converted by `n3ml convert --target lava` on Lava 0.10 (Loihi2SimCfg).

    python run.py [--input X.npz] [--steps T] [--record NODE] [-o OUT.npz]

This file is the same for every network: the network is data beside it, `network.json` (populations
with their LIF parameters, Dense/Conv connections, outputs, the run configuration: `fixed_pt` for
quantized graphs, `floating_pt` otherwise) and `weights.npz` (the arrays it names). Inputs: one array
(T, B, *shape) per Input node; outputs: one array (T, B, *shape) per Output node. The network is built
for the batch size of the input (populations B times as wide, block-diagonal weights). Lava's
Dense/Conv deliver their sums one step late; each population has a latency (Lava step = n3ml step +
latency) and the outputs are shifted back, so they equal n3ml's. The mapping is explained in n3ml's
docs/backends/lava.md.

n3ml ships this file as `n3ml/backends/lava/runtime.py`; it imports neither n3ml nor, until it runs,
Lava (the layout functions below are plain numpy).
"""
import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "n3ml-lava/1"  # the network.json this program reads
LIF_ARGS = ("du", "dv", "vth", "bias_mant", "bias_exp", "u", "v")  # Lava LIF arguments, in this order
GRADED_BITS = 24  # num_message_bits of a connection whose source sends graded spikes (analog input)
# Lava 0.10's Conv models declare `groups` as int8 (lava/proc/conv/models.py), so 128 groups arrive as -128
# and the Conv sends zeros (256 as 0; 129..255 fail). n3ml's batch and depthwise convolutions (pools,
# identity synapses) need more groups: every Conv runs with n3ml's own model, `conv_models()`.


# ----------------------------------------------------------------------------- layouts
# n3ml arrays are (T, B, *shape) with shape (n,) or (C, H, W). A batch of B samples runs as one
# Lava network: a vector population has B*n neurons (sample-major); a population that a Conv reads
# or writes has Lava shape (W, H, B*C) (Lava's order, samples as channel groups).


def write_npz(path, arrays):
    """np.savez without its reserved names: an output may be called `file` or `allow_pickle`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)


def lava_shape(shape, conv, B):
    if conv:
        C, H, W_ = shape
        return (W_, H, B * C)
    return (B * int(np.prod(shape)),)


def lava_index(shape, conv, B):
    """(B, n) array: Lava flat index of sample b's n3ml flat (C order) index i."""
    n = int(np.prod(shape))
    if not conv:
        return np.arange(B * n).reshape(B, n)
    C, H, W_ = shape
    b, c, y, x = np.meshgrid(np.arange(B), np.arange(C), np.arange(H), np.arange(W_), indexing="ij")
    return ((x * H + y) * (B * C) + b * C + c).reshape(B, n)


def to_lava(x, shape, conv, steps, dtype):
    """(T, B, *shape) -> (*lava_shape, steps) source data, zero after T."""
    T, B = x.shape[:2]
    flat = np.zeros((int(np.prod(lava_shape(shape, conv, B))), steps), dtype=dtype)
    flat[lava_index(shape, conv, B).reshape(-1), :T] = x.reshape(T, -1).T
    return flat.reshape(lava_shape(shape, conv, B) + (steps,))


def from_lava(data, shape, conv, B, latency, T):
    """Sink data (*lava_shape, steps) -> (T, B, *shape), IR step t read at Lava step t + latency."""
    flat = data.reshape(-1, data.shape[-1])
    idx = np.arange(T) + latency
    out = np.zeros((T, B * int(np.prod(shape))), dtype=np.float64)
    ok = idx >= 0  # a negative latency (a Delay before an output) reads zeros at the start
    out[ok] = flat[lava_index(shape, conv, B).reshape(-1)][:, idx[ok]].T
    return out.reshape((T, B) + tuple(shape))


def dense_weights(w, B, src, dst):
    """Block-diagonal Lava weight matrix: sample b's outputs read sample b's inputs."""
    s_shape, s_conv = src
    d_shape, d_conv = dst
    si, di = lava_index(s_shape, s_conv, B), lava_index(d_shape, d_conv, B)
    out = np.zeros((di.size, si.size), dtype=w.dtype)
    for b in range(B):
        out[np.ix_(di[b], si[b])] = w
    return out


def conv_weights(w, B):
    """torch (Cout, Cin/g, KH, KW) cross-correlation -> Lava (B*Cout, KW, KH, Cin/g) convolution."""
    return np.tile(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1), (B, 1, 1, 1)).copy()


def conv_wh(x, weight, stride, padding, dilation, groups):
    """Lava's Conv (lava/proc/conv/utils.py conv_scipy) on one step: x (W, H, Cin), weight (Cout, KW, KH,
    Cin/groups), a true convolution (the kernel flipped) in Lava's (W, H, C) order, all taps in one einsum:
    out[x, y, k] = sum_{i, j, c} xpad[x sx + i dx, y sy + j dy, g cg + c] weight[k, KW-1-i, KH-1-j, c]."""
    cout, kw, kh, cg = weight.shape
    (sx, sy), (px, py), (dx, dy) = stride, padding, dilation
    xp = np.pad(x, ((px, px), (py, py), (0, 0)))
    wo = (xp.shape[0] - dx * (kw - 1) - 1) // sx + 1
    ho = (xp.shape[1] - dy * (kh - 1) - 1) // sy + 1
    taps = np.stack([xp[i * dx:i * dx + sx * (wo - 1) + 1:sx, j * dy:j * dy + sy * (ho - 1) + 1:sy]
                     for i in range(kw) for j in range(kh)]).reshape(kw * kh, wo, ho, groups, cg)
    wf = weight[:, ::-1, ::-1, :].reshape(groups, cout // groups, kw * kh, cg)
    return np.einsum("twhgc,gktc->whgk", taps, wf, optimize=True).reshape(wo, ho, cout)


def monitor_to_n3ml(data, shape, conv, B, latency, T, scale=1):
    """Monitor data (steps, *lava_shape) -> (T, B, *shape) in n3ml units."""
    out = from_lava(np.moveaxis(np.asarray(data), 0, -1), shape, conv, B, latency, T)
    return out * np.asarray(scale).reshape(shape if np.size(scale) > 1 else ())


def per_neuron(v, shape, conv, B):
    """A scalar or per-neuron (n3ml C order) parameter as a Lava array."""
    v = np.asarray(v)
    if v.size == 1:
        return v.reshape(()).item()
    full = np.zeros(int(np.prod(lava_shape(shape, conv, B))), dtype=v.dtype)
    full[lava_index(shape, conv, B).reshape(-1)] = np.tile(np.broadcast_to(v.reshape(-1), (int(np.prod(shape)),)), B)
    return full.reshape(lava_shape(shape, conv, B))


# ----------------------------------------------------------------------------- the network description


class Network:
    """network.json (populations, connections, outputs) and the arrays of weights.npz it names as "@key"."""

    def __init__(self, here):
        here = Path(here)
        path = here / "network.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: the program runs the network described next to it "
                             "(n3ml convert -o DIR)")
        spec = json.loads(path.read_text(encoding="utf-8"))
        if spec.get("format") != FORMAT:
            raise SystemExit(f"{path}: a network description of format {spec.get('format')!r}; this program "
                             f"reads {FORMAT!r} (convert the model again)")
        with np.load(here / "weights.npz", allow_pickle=False) as z:
            self.weights = {k: z[k] for k in z.files}
        self.spec = spec
        self.run_cfg = spec["run_cfg"]
        self.dtype = np.int32 if self.run_cfg == "fixed_pt" else np.float64
        self.extra_steps = int(spec["extra_steps"])  # the largest output latency
        self.default_steps = spec["default_steps"]
        # JSON has lists only: shapes become tuples again (they are compared with array shapes)
        self.pops = {n: {**p, "shape": tuple(p["shape"])} for n, p in spec["populations"].items()}
        self.conns = spec["connections"]
        # spike outputs through Sinks: {output: {"population", "latency"}}, or {"parts": [those], "axis"} (a Concat)
        self.outputs = spec["outputs"]
        self.readouts = spec["readouts"]  # voltage outputs (a readout LIF that never fires), through a Monitor

    def layout(self, name):
        """(n3ml shape, conv layout) of a population."""
        return self.pops[name]["shape"], self.pops[name]["conv"]

    def value(self, v):
        """A table value: numbers as they are; "@key" names an array of weights.npz (0-d: a number)."""
        if isinstance(v, str) and v.startswith("@"):
            a = self.weights[v[1:]]
            return a.reshape(()).item() if a.ndim == 0 else a
        return v

    @property
    def inputs(self):
        """The Input nodes (not their later copies, which replay an Input's data)."""
        return {n: p for n, p in self.pops.items() if p["kind"] == "input" and "of" not in p}

    @property
    def neurons(self):
        """The populations --record takes: neurons and synapse filters."""
        return {n: p for n, p in self.pops.items() if p["kind"] in ("neuron", "filter")}


# ----------------------------------------------------------------------------- network


def make_population(lava, net, name, data, B, steps):
    """The Lava process of one population: a ring-buffer source for an Input (or for a later copy of one), a
    LIF for a neuron or a relay."""
    pop = net.pops[name]
    lay = net.layout(name)
    if pop["kind"] == "input":  # spikes, or analog values sent as graded spikes
        x = data[pop.get("of", name)]
        if pop["latency"]:  # a copy of an Input sent `latency` steps later (it feeds a Conv on a short path)
            x = np.concatenate([np.zeros((pop["latency"],) + x.shape[1:], x.dtype), x])[:steps]
        return lava.Source(data=to_lava(x, *lay, steps, net.dtype))
    if pop["kind"] == "bias":  # one spike per sample and step, from Lava step `latency` on
        ones = np.zeros(lava_shape(*lay, B) + (steps,), dtype=net.dtype)
        ones[..., max(0, pop["latency"]):] = 1
        return lava.Source(data=ones)
    if pop["kind"] == "filter":  # n3ml's N3mlSynapseFilter: a current sent on as graded spikes
        args = {k: per_neuron(net.value(v), *lay, B) for k, v in pop["params"].items()}
        return lava.filters()[0](shape=lava_shape(*lay, B), **args, start=int(pop["start"]), name=name)
    args = {}
    for k in LIF_ARGS:
        v = net.value(pop["params"][k])
        args[k] = per_neuron(v, *lay, B) if np.ndim(v) else v
    if pop["process"] == "LIFRefractory":
        args["refractory_period"] = pop["refractory"]
    if pop["process"] == "N3mlLIF":
        # a_b, q (floating_pt) or keep_b, q (fixed_pt)
        adapt = {k: per_neuron(net.value(v), *lay, B) for k, v in pop.get("adapt", {}).items()}
        return lava.own()[0](shape=lava_shape(*lay, B), **args, reset=pop["reset"], start=int(pop["start"]),
                             refractory=int(pop["refractory"]), input_shift=int(pop.get("input_shift", 6)),
                             **adapt, name=name)
    process = {"LIF": lava.LIF, "LIFRefractory": lava.LIFRefractory}[pop["process"]]
    return process(shape=lava_shape(*lay, B), **args, name=name)


def connect(lava, net, c, p, B):
    """Create connection `c` (Dense or Conv) between two created populations of `p`."""
    w = net.value(c["weight"])
    src, dst = c["src"], c["dst"]
    graded = {"num_message_bits": GRADED_BITS} if net.pops[src]["graded"] else {}
    if c["op"] == "dense":
        fixed = {}
        if "weight_exp" in c:
            fixed = {"weight_exp": c["weight_exp"], "num_weight_bits": c["num_weight_bits"],
                     "sign_mode": lava.SignMode[c["sign_mode"]]}
        weights = dense_weights(w, B, net.layout(src), net.layout(dst))
        if c.get("delay", 0):  # the extra steps that make this path as long as the neuron's other inputs
            proc = lava.DelayDense(weights=weights, delays=np.full(weights.shape, c["delay"], dtype=np.int64),
                                   **graded, **fixed, name=c["name"])
        else:
            proc = lava.Dense(weights=weights, **graded, **fixed, name=c["name"])
        (p[src].s_out.flatten() if net.pops[src]["conv"] else p[src].s_out).connect(proc.s_in)
        (proc.a_out.reshape(lava_shape(*net.layout(dst), B)) if net.pops[dst]["conv"] else proc.a_out).connect(
            p[dst].a_in)
    else:
        proc = lava.Conv(weight=conv_weights(w, B), input_shape=lava_shape(*net.layout(src), B),
                         padding=tuple(c["padding"]), stride=tuple(c["stride"]), dilation=tuple(c["dilation"]),
                         groups=B * c["groups"], **graded, name=c["name"])
        p[src].s_out.connect(proc.s_in)
        proc.a_out.connect(p[dst].a_in)
    return proc


def build(lava, net, data, B, steps):
    """Create and connect the processes; return them by n3ml node name and the output sinks."""
    p = {name: make_population(lava, net, name, data, B, steps) for name in net.pops}
    for c in net.conns:  # (not kept in p: the readout of a synapse's value is a population of its name)
        connect(lava, net, c, p, B)
    sinks = {}  # one Sink per population an output reads (a Concat's parts: several)
    for out, spec in net.outputs.items():
        sinks[out] = []
        for part in parts(spec):
            sinks[out].append(lava.Sink(shape=lava_shape(*net.layout(part["population"]), B), buffer=steps))
            p[part["population"]].s_out.connect(sinks[out][-1].a_in)
    return p, sinks


def parts(spec):
    """The populations of a spike output: its own, or the parts of a Concat."""
    return spec.get("parts", [spec])


def own_models():
    """n3ml's own Lava process, N3mlLIF: Lava's LIF with five additions, each used only where a population needs
    it (network.json names the process "N3mlLIF"; everything else runs Lava's own LIF):

    * its reset (`reset`): "subtract" (v -= threshold after a spike, n3ml's reset "subtract"), "none" (v is kept:
      a neuron that spikes as long as v stays above threshold) or "zero" (Lava's v = 0);
    * per-neuron decays: `du` and `dv` are arrays of the population's shape (Lava's LIF has one per process);
    * a start step (`start`): for Lava steps 1..start the neuron holds its initial u and v and sends no spike.
      Its inputs arrive `latency` steps late; holding through those steps is what lets a neuron with a bias or
      an initial voltage start exactly at IR step 0 when no start voltage survives the wait (the lowering
      prefers that start voltage, with Lava's plain LIF);
    * a refractory period (`refractory` R > 0), n3ml's (docs/semantics.md): while the counter c > 0, v keeps its
      value of the step before and the neuron sends no spike, but u integrates its input; c = R after a spike,
      else max(c - 1, 0). (Lava's LIFRefractory is floating_pt only and freezes v the same way but never masks
      a spike: the lowering uses it only for a reset to 0, where the two agree);
    * threshold adaptation (`adapt`): floating_pt (n3ml's ALIF): b' = a_b b, the threshold is vth + b', then
      b = b' + q s (b and q in threshold units, as v); fixed_pt (n3ml's FixedCubaLIF with db, q): integers,
      b' = sign(b keep_b) (|b keep_b| >> 12) with keep_b = 2^12 - db, the threshold is (vth << 6) + b', then
      b = b' + q s saturated to 24 bits like v;
    * an input shift other than Lava's 6 (`input_shift`, fixed_pt): a neuron reading a synapse filter's current
      (N3mlSynapseFilter below), which carries 2^J >= 2^6 per spike already, adds its input to u unshifted.

    The models are Lava's, subclassed: the fixed_pt model runs PyLifModelBitAcc's update (24-bit wrapped u,
    saturated v, v > vth << 6, elementwise in the decays) and subtracts that effective threshold, which is the
    IR's fixed-point step bit for bit; the floating_pt model subtracts vth (+ b') (1: floating_pt works in
    threshold units). Defined only when a network needs it. On a Loihi 2 chip these additions need a custom
    neuron microcode model (n3ml's docs/backends/lava.md).

    Returns (N3mlLIF, {"floating_pt": model, "fixed_pt": model}).
    """
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat
    from lava.proc.lif.process import LIF

    class N3mlLIF(LIF):
        """Lava's LIF with a choice of reset, per-neuron du/dv, a start step, a refractory period and threshold
        adaptation (proc_params and Vars)."""

        def __init__(self, *, shape, du=0, dv=0, reset="zero", start=0, refractory=0, a_b=None, q=None,
                     keep_b=None, input_shift=6, **kwargs):
            super().__init__(shape=shape, du=0, dv=0, reset=str(reset), start=int(start),
                             refractory=int(refractory), adapt=q is not None, input_shift=int(input_shift), **kwargs)
            self.du = Var(shape=shape, init=np.broadcast_to(du, shape).copy())  # one per neuron
            self.dv = Var(shape=shape, init=np.broadcast_to(dv, shape).copy())
            self.c = Var(shape=shape, init=np.zeros(shape, np.int32))  # refractory steps left
            self.b = Var(shape=shape, init=np.zeros(shape))  # threshold adaptation
            self.a_b = Var(shape=shape, init=np.broadcast_to(0.0 if a_b is None else a_b, shape).astype(float))
            self.q = Var(shape=shape, init=np.broadcast_to(0.0 if q is None else q, shape).astype(float))
            keep_b = np.broadcast_to(0 if keep_b is None else keep_b, shape).astype(np.int64)
            self.keep_b = Var(shape=shape, init=keep_b)  # fixed_pt: 2^12 - db

    def step(model, fixed):
        """One spiking phase: hold (no dynamics, no spike) until the start step; then Lava's sub-threshold
        update and n3ml's firing stage (adapted threshold, refractoriness, reset, counter) in the IR's order."""
        a_in = model.a_in.recv()  # read every step, also while holding
        prm = model.proc_params
        if model.time_step <= prm["start"]:
            model.s_out.send(np.zeros(model.v.shape, dtype=bool))
            return
        if fixed:
            model.act_shift = prm["input_shift"]  # (Lava's 6, or 0 behind a synapse filter)
            model.scale_bias()
            if not model.isthrscaled:
                model.scale_threshold()
            thr = model.effective_vth
        else:
            thr = model.vth
        held = model.v.copy()
        model.subthr_dynamics(activation_in=a_in)
        if prm["adapt"] and fixed:  # b' = trunc(b keep_b / 2^12), in int64 (the product exceeds 32 bits)
            kept = model.b.astype(np.int64) * model.keep_b
            model.b[:] = np.sign(kept) * np.right_shift(np.abs(kept), model.decay_shift)
            thr = thr + model.b
        elif prm["adapt"]:
            model.b[:] = model.a_b * model.b
            thr = thr + model.b
        s = model.v > thr
        if prm["refractory"]:
            refr = model.c > 0
            model.v[refr] = held[refr]
            s &= ~refr
        if prm["reset"] == "subtract":
            model.v[:] = np.where(s, model.v - thr, model.v)
        elif prm["reset"] == "zero":
            model.v[s] = 0
        if prm["refractory"]:
            model.c[:] = np.where(s, prm["refractory"], np.maximum(model.c - 1, 0))
        if prm["adapt"] and fixed:  # saturated like v: clip to +-(2^23 - 1)
            lim = model.max_uv_val - 1
            model.b[:] = np.clip(model.b + model.q * s, -lim, lim)
        elif prm["adapt"]:
            model.b[:] = model.b + model.q * s
        model.s_out.send(s)

    @implements(proc=N3mlLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyN3mlLIFFloat(PyLifModelFloat):
        implements_process = None  # Lava's @implements refuses to re-bind the parent's LIF otherwise
        du: np.ndarray = LavaPyType(np.ndarray, float)
        dv: np.ndarray = LavaPyType(np.ndarray, float)
        c: np.ndarray = LavaPyType(np.ndarray, np.int32)
        b: np.ndarray = LavaPyType(np.ndarray, float)
        a_b: np.ndarray = LavaPyType(np.ndarray, float)
        q: np.ndarray = LavaPyType(np.ndarray, float)
        keep_b: np.ndarray = LavaPyType(np.ndarray, np.int64)  # (fixed_pt's; unused here)

        def run_spk(self):
            step(self, fixed=False)

    @implements(proc=N3mlLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("bit_accurate_loihi", "fixed_pt")
    class PyN3mlLIFBitAcc(PyLifModelBitAcc):
        implements_process = None
        du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
        dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
        c: np.ndarray = LavaPyType(np.ndarray, np.int32)
        b: np.ndarray = LavaPyType(np.ndarray, np.int64)  # integer adaptation in state units (24 bits used)
        a_b: np.ndarray = LavaPyType(np.ndarray, float)  # (floating_pt's; unused here)
        q: np.ndarray = LavaPyType(np.ndarray, np.int64)
        keep_b: np.ndarray = LavaPyType(np.ndarray, np.int64)

        def run_spk(self):
            step(self, fixed=True)

    return N3mlLIF, {"floating_pt": PyN3mlLIFFloat, "fixed_pt": PyN3mlLIFBitAcc}


def filter_models():
    """n3ml's own Lava process N3mlSynapseFilter (SpikingJelly's SynapseFilter; n3ml's SynapseFilter and
    FixedSynapseFilter, docs/semantics.md §5b, §6b): a current that decays only on steps without an input spike
    and sends its value every step as a graded spike to the synapses after it (their num_message_bits > 0).
    Its input s is 0/1 from the population it filters, through an identity Dense (one step, as any synapse).

    * floating_pt: v = v - (1 - s) v leak + s, the IR's operations in its order (float64, bit for bit);
    * fixed_pt: v = sat(v + jump) where s = 1, else trunc(v keep_v / 2^shift) (toward zero; keep_v = 2^shift
      - d), saturated to `state_bits`, integers as n3ml.ir.neurons.step_fixed_synapse_filter.

    For Lava steps 1..start (its latency: its input has not arrived yet) it holds v_init and sends zeros. Lava
    has no such neuron: on a Loihi 2 chip it needs a custom neuron microcode model (graded spikes exist there).

    Returns (N3mlSynapseFilter, {"floating_pt": model, "fixed_pt": model}).
    """
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class N3mlSynapseFilter(AbstractProcess):
        """A spike-gated current per neuron: leak (floating_pt) or keep_v, jump, shift, state_bits (fixed_pt)."""

        def __init__(self, *, shape, v=0, leak=0.0, keep_v=0, jump=0, shift=12, state_bits=24, start=0, name=None):
            super().__init__(shape=shape, shift=int(shift), state_bits=int(state_bits), start=int(start), name=name)
            self.a_in = InPort(shape=shape)
            self.s_out = OutPort(shape=shape)
            self.v = Var(shape=shape, init=np.broadcast_to(v, shape).copy())
            self.leak = Var(shape=shape, init=np.broadcast_to(leak, shape).astype(float))
            self.keep_v = Var(shape=shape, init=np.broadcast_to(keep_v, shape).astype(np.int64))
            self.jump = Var(shape=shape, init=np.broadcast_to(jump, shape).astype(np.int64))

    def held(model):
        """Lava steps 1..start: the input has not arrived; v stays v_init and nothing is sent."""
        if model.time_step <= model.proc_params["start"]:
            model.s_out.send(np.zeros(model.v.shape, dtype=model.v.dtype))
            return True
        return False

    @implements(proc=N3mlSynapseFilter, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyN3mlSynapseFilterFloat(PyLoihiProcessModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        v: np.ndarray = LavaPyType(np.ndarray, float)
        leak: np.ndarray = LavaPyType(np.ndarray, float)
        keep_v: np.ndarray = LavaPyType(np.ndarray, np.int64)  # (fixed_pt's; unused here)
        jump: np.ndarray = LavaPyType(np.ndarray, np.int64)

        def run_spk(self):
            s = self.a_in.recv()
            if held(self):
                return
            self.v[:] = self.v - (1 - s) * self.v * self.leak + s  # n3ml.ir.neurons.step_synapse_filter
            self.s_out.send(self.v)

    @implements(proc=N3mlSynapseFilter, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("bit_accurate_loihi", "fixed_pt")
    class PyN3mlSynapseFilterFixed(PyLoihiProcessModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        v: np.ndarray = LavaPyType(np.ndarray, np.int64)  # (the product v keep_v passes 32 bits)
        leak: np.ndarray = LavaPyType(np.ndarray, float)  # (floating_pt's; unused here)
        keep_v: np.ndarray = LavaPyType(np.ndarray, np.int64)
        jump: np.ndarray = LavaPyType(np.ndarray, np.int64)

        def run_spk(self):
            s = self.a_in.recv()
            if held(self):
                return
            lim = (1 << (self.proc_params["state_bits"] - 1)) - 1
            kept = self.v * self.keep_v
            decayed = np.sign(kept) * np.right_shift(np.abs(kept), self.proc_params["shift"])
            self.v[:] = np.where(s > 0, np.clip(self.v + self.jump, -lim, lim), decayed)
            self.s_out.send(self.v.astype(np.int32))

    return N3mlSynapseFilter, {"floating_pt": PyN3mlSynapseFilterFloat, "fixed_pt": PyN3mlSynapseFilterFixed}


def conv_models():
    """n3ml's models of Lava's own Conv process: Lava's PyConvModelFloat/PyConvModelFixed with `groups` (and
    the kernel geometry) held as int32 instead of int8, and `conv_wh` instead of one scipy convolve2d per
    (out, in) channel pair (28x faster for 512 -> 512 channels). fixed_pt: integer sums wrapped to 24 bits
    as Lava's (its float64 sums are exact integers), bit for bit; floating_pt: float64, the additions in
    another order. Selected for every Conv through exception_proc_model_map; Lava's files stay as they are.

    Returns {"floating_pt": model, "fixed_pt": model}.
    """
    from lava.magma.core.model.py.type import LavaPyType
    from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat

    def run_spk(self):
        if self.a_buf is None:
            self.a_buf = np.zeros(self.a_out.shape)
        self.a_out.send(self.a_buf)  # the previous step's sum, as Lava's
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        acc = np.int64 if self.weight.dtype.kind == "i" else np.float64
        a = conv_wh(s_in.astype(acc), self.weight.astype(acc), tuple(self.stride), tuple(self.padding),
                    tuple(self.dilation), int(self.groups[0]))
        self.a_buf = self.clamp_precision(a.astype(self.weight.dtype))

    wide = {k: LavaPyType(np.ndarray, np.int32, precision=32)
            for k in ("kernel_size", "stride", "padding", "dilation", "groups")}
    # (no @implements: they inherit Lava's binding to Conv and its tags; run_chunk maps Conv to them)
    return {cfg: type(name, (base,), {**wide, "run_spk": run_spk}) for cfg, name, base in
            (("floating_pt", "N3mlConvFloat", PyConvModelFloat), ("fixed_pt", "N3mlConvFixed", PyConvModelFixed))}


def import_lava():
    """The Lava classes the program uses, as attributes of one namespace."""
    from types import SimpleNamespace

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF, LIFRefractory
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    made = {}  # n3ml's own process and Conv models, made on first use (only networks that need them)

    def own():
        if "lif" not in made:
            made["lif"] = own_models()
        return made["lif"]

    def conv():
        if "conv" not in made:
            made["conv"] = conv_models()
        return made["conv"]

    def filters():
        if "filter" not in made:
            made["filter"] = filter_models()
        return made["filter"]

    return SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Conv=Conv, Dense=Dense,
                           DelayDense=DelayDense, Sink=Sink, Source=Source, LIF=LIF, LIFRefractory=LIFRefractory,
                           Monitor=Monitor, SignMode=SignMode, own=own, conv=conv, filters=filters)


# ----------------------------------------------------------------------------- running


def parse_args(net, argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=None, help="input .npz (default: zeros)")
    ap.add_argument("--steps", type=int, default=None, help="steps T (default: the input's T)")
    ap.add_argument("-o", "--output", type=Path, default=Path("out.npz"))
    ap.add_argument("--record", action="append", default=[], metavar="NODE",
                    help="record a neuron's voltage (and current in fixed_pt) as state/NODE.v, state/NODE.i")
    args = ap.parse_args(argv)
    args.record = [n for item in args.record for n in item.split(",") if n]
    for n in args.record:
        if n not in net.neurons:
            raise SystemExit(f"--record {n}: not a neuron of this program; neurons: {', '.join(net.neurons)}")
    return args


def read_inputs(net, path, steps):
    """Input arrays (T, B, *shape) by Input node name (zeros without --input), T and B."""
    data = {}
    if path is not None:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in net.inputs}
    T = steps or (next(iter(data.values())).shape[0] if data else net.default_steps)
    if T is None:
        raise SystemExit("give --steps or --input")
    B = next(iter(data.values())).shape[1] if data else 1
    for name, pop in net.inputs.items():
        shape = pop["shape"]
        x = data.get(name, np.zeros((T, B) + shape))
        if x.shape[0] < T or tuple(x.shape[2:]) != shape:
            raise SystemExit(f"input `{name}`: expected (T>={T}, B, {shape}), found {x.shape}")
        data[name] = x[:T]
    return data, T, B


def probe(lava, net, procs, record, steps):
    """Monitors of the readouts' voltages and of the recorded neurons (v; u, n3ml's current, in fixed_pt)."""
    readouts = {}
    for out, spec in net.readouts.items():
        readouts[out] = lava.Monitor()
        readouts[out].probe(procs[spec["population"]].v, steps)
    monitors = {}
    for n in record:
        monitors[n] = {"v": lava.Monitor()}
        monitors[n]["v"].probe(procs[n].v, steps)
        if net.run_cfg == "fixed_pt" and net.pops[n]["kind"] == "neuron":  # Lava's u is n3ml's i in fixed point
            monitors[n]["i"] = lava.Monitor()
            monitors[n]["i"].probe(procs[n].u, steps)
    return readouts, monitors


def read_back(net, procs, sinks, readouts, monitors, B, T):
    """The outputs and recorded states {name: (T, B, *shape)} in n3ml time and units."""
    result = {}
    for out, spec in net.outputs.items():
        got = [from_lava(np.asarray(s.data.get()), *net.layout(part["population"]), B, part["latency"], T)
               for part, s in zip(parts(spec), sinks[out])]
        result[out] = np.concatenate(got, axis=2 + spec.get("axis", 0))  # (T, B, *shape)
    for out, mon in readouts.items():
        pop = net.readouts[out]["population"]
        data = mon.get_data()[procs[pop].name]["v"]
        result[out] = monitor_to_n3ml(data, *net.layout(pop), B, net.readouts[out]["latency"], T,
                                      net.value(net.pops[pop]["v_scale"]))
    for n, mons in monitors.items():
        for var, mon in mons.items():
            scale = net.value(net.pops[n]["v_scale"]) if var == "v" else 1
            data = mon.get_data()[procs[n].name]["u" if var == "i" else var]
            result[f"state/{n}.{var}"] = monitor_to_n3ml(data, *net.layout(n), B, net.pops[n]["latency"], T, scale)
    return result


def run_chunk(lava, net, data, B, T, record):
    """Build, run and read back one network for B samples {name: (T, B, *shape)}."""
    steps = T + net.extra_steps
    procs, sinks = build(lava, net, data, B, steps)
    readouts, monitors = probe(lava, net, procs, record, steps)
    first = next(iter(sinks.values()))[0] if sinks else next(iter(procs.values()))
    # Lava 0.10 maps process instances to models in exception_proc_model_map: n3ml's own processes go there
    own = {procs[n]: lava.own()[1][net.run_cfg] for n, p in net.pops.items() if p.get("process") == "N3mlLIF"}
    own.update({procs[n]: lava.filters()[1][net.run_cfg] for n, p in net.pops.items() if p["kind"] == "filter"})
    if any(c["op"] == "conv" for c in net.conns):  # (keyed by the class: every Conv process)
        own[lava.Conv] = lava.conv()[net.run_cfg]
    first.run(condition=lava.RunSteps(num_steps=steps),
              run_cfg=lava.Loihi2SimCfg(select_tag=net.run_cfg, exception_proc_model_map=own or None))
    try:
        return read_back(net, procs, sinks, readouts, monitors, B, T)
    finally:
        first.stop()  # Lava's runtime processes must end, also when reading back fails


def main(argv=None, here=None):
    """Run the network described next to this file (or in the directory `here`) and save its outputs."""
    net = Network(here or Path(__file__).resolve().parent)
    args = parse_args(net, argv)
    data, T, B = read_inputs(net, args.input, args.steps)
    lava = import_lava()
    t0 = time.perf_counter()
    result = run_chunk(lava, net, data, B, T, args.record)
    write_npz(args.output, result)
    relays = sum(p["kind"] == "relay" or "of" in p for p in net.pops.values())
    delayed = sum(bool(c.get("delay", 0)) for c in net.conns)
    equalized = f", {relays} relay population(s), {delayed} delayed Dense" if relays or delayed else ""
    print(f"{net.run_cfg}: {T} steps (+{net.extra_steps} for Lava's synaptic delay){equalized}, batch {B}, "
          f"{time.perf_counter() - t0:.2f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
