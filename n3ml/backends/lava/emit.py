"""Emission: a lowered `LavaNet` -> a readable Lava script (run.py) plus weights.npz.

The script builds the network for the batch size of its input file (populations
B times as wide, block-diagonal weights), runs it with `Loihi2SimCfg`
(`fixed_pt` for quantized graphs, `floating_pt` otherwise), undoes Lava's
synaptic latency and saves the outputs in the common .npz layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .lower import LavaNet

HELPERS = '''
# ----------------------------------------------------------------------------- layouts
# n3ml arrays are (T, B, *shape) with shape (n,) or (C, H, W). A batch of B samples runs as one
# Lava network: a vector population has B*n neurons (sample-major); a population that a Conv reads
# or writes has Lava shape (W, H, B*C) (Lava's order, samples as channel groups).


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


def to_lava(x, shape, conv, steps):
    """(T, B, *shape) -> (*lava_shape, steps) source data, zero after T."""
    T, B = x.shape[:2]
    flat = np.zeros((int(np.prod(lava_shape(shape, conv, B))), steps), dtype=DTYPE)
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
'''


def _lit(v: Any) -> str:
    if isinstance(v, float) and not np.isfinite(v):
        return f'float("{v}")'  # a readout's threshold: +inf, never reached
    return repr(v)


def emit(net: LavaNet, out_dir: Path, *, steps: int | None, source: str) -> None:
    """Write run.py and weights.npz into `out_dir` (which exists and is empty)."""
    arrays: dict[str, np.ndarray] = {}
    L: list[str] = []
    cfg = "fixed_pt" if net.fixed else "floating_pt"
    L.append(f'"""Lava program for the n3ml graph `{net.name}` (emitted by `n3ml convert --target lava`).')
    L.append("")
    L.append(f"    python run.py [--input X.npz] [--steps T] [-o OUT.npz]     # Loihi2SimCfg({cfg})")
    L.append("")
    L.append(f"Source: {source}. dt = {net.dt} ms per step.")
    L.append("Inputs: one array (T, B, *shape) per Input node; outputs: one array (T, B, *shape) per Output node.")
    L.append("Lava's Dense/Conv deliver their sums one step late; each population below notes its latency")
    L.append("(Lava step = n3ml step + latency) and the outputs are shifted back, so they equal n3ml's.")
    L.append('"""')
    L.append("import argparse")
    L.append("import time")
    L.append("from pathlib import Path")
    L.append("")
    L.append("import numpy as np")
    L.append("from lava.magma.core.run_conditions import RunSteps")
    L.append("from lava.magma.core.run_configs import Loihi2SimCfg")
    L.append("from lava.proc.conv.process import Conv")
    L.append("from lava.proc.dense.process import Dense")
    L.append("from lava.proc.io.sink import RingBuffer as Sink")
    L.append("from lava.proc.io.source import RingBuffer as Source")
    L.append("from lava.proc.lif.process import LIF, LIFRefractory")
    L.append("from lava.proc.monitor.process import Monitor")
    L.append("from lava.utils.weightutils import SignMode")
    L.append("")
    L.append("HERE = Path(__file__).resolve().parent")
    L.append(f'RUN_CFG = "{cfg}"')
    L.append(f"DTYPE = {'np.int32' if net.fixed else 'np.float64'}")
    L.append(f"EXTRA_STEPS = {net.extra_steps}  # the largest output latency")
    inputs = {n: p for n, p in net.pops.items() if p.kind == "input"}
    L.append("INPUTS = {" + ", ".join(f'"{n}": ({tuple(p.shape)!r}, {p.conv})' for n, p in inputs.items()) + "}")
    L.append("OUTPUTS = {" + ", ".join(
        f'"{pr.output}": ("{pr.pop}", {tuple(net.pops[pr.pop].shape)!r}, {net.pops[pr.pop].conv}, {pr.latency})'
        for pr in net.probes if pr.var == "s") + "}  # spike output: (population, shape, conv layout, latency)")
    L.append("READOUTS = {" + ", ".join(f'"{pr.output}": ("{pr.pop}", {pr.latency})' for pr in net.probes
                                        if pr.var == "v")
             + "}  # voltage output (a readout LIF that never fires): (population, latency), read by a Monitor")
    L.append(f"DEFAULT_STEPS = {steps if steps else 'None'}")
    neurons = {n: p for n, p in net.pops.items() if p.kind == "neuron"}
    for n, p in neurons.items():
        if np.size(p.v_scale) > 1 or float(np.asarray(p.v_scale).reshape(-1)[0]) != 1.0:
            arrays[f"{n}.v_scale"] = np.asarray(p.v_scale, dtype=np.float64)
    L.append("NEURONS = {" + ", ".join(
        f'"{n}": ({tuple(p.shape)!r}, {p.conv}, {p.latency}, {(chr(34) + n + ".v_scale" + chr(34)) if f"{n}.v_scale" in arrays else None})'
        for n, p in neurons.items()) + "}  # recordable: (shape, conv layout, latency, voltage scale key)")
    L.append(HELPERS)
    L.append("")
    L.append("# ----------------------------------------------------------------------------- network")
    L.append("")
    L.append("")
    L.append("def build(data, B, steps):")
    L.append('    """Create and connect the processes; return them by n3ml node name and the output sinks."""')
    L.append('    W = np.load(HERE / "weights.npz")')
    L.append("    p = {}")
    for n, pop in net.pops.items():
        layout = f"({tuple(pop.shape)!r}, {pop.conv})"
        L.append(f"    lay_{n} = {layout}")
        if pop.kind == "input":
            what = "analog values sent as graded spikes" if pop.graded else "spikes"
            L.append(f"    # `{n}`: Input {pop.shape}, {what} from a ring buffer (latency 0)")
            L.append(f'    p["{n}"] = Source(data=to_lava(data["{n}"], *lay_{n}, steps))')
            continue
        prm = dict(pop.params)
        args = []
        for k in ("du", "dv", "vth", "bias_mant", "bias_exp", "u", "v"):
            v = prm.get(k, 0)
            a = np.asarray(v)
            if a.size > 1:
                key = f"{n}.{k}"
                arrays[key] = a
                args.append(f'{k}=per_neuron(W["{key}"], *lay_{n}, B)')
            else:
                val = a.reshape(()).item()
                args.append(f"{k}={_lit(val)}")
        cls = "LIF"
        if pop.refractory:
            cls = "LIFRefractory"
            args.append(f"refractory_period={pop.refractory}")
        if net.fixed:
            what = "fixed-point (du register = du - 1, vth = theta >> 6)"
        elif np.isinf(float(np.asarray(prm.get("vth", 0)).reshape(-1)[0])):
            what = "LI readout that never fires (vth = +inf; du = 1: u is the step's input), n3ml voltage units"
        else:
            what = "float, threshold units"
        L.append(f"    # `{n}`: neuron {pop.shape}, {what}; latency {pop.latency}")
        L.append(f'    p["{n}"] = {cls}(shape=lava_shape(*lay_{n}, B), {", ".join(args)}, name="{n}")')
    for c in net.conns:
        key = f"{c.name}.weight"
        arrays[key] = c.weight
        L.append(f"    # `{c.name}`: {c.src} -> {c.dst}" + (f"; {c.comment}" if c.comment else ""))
        if c.op == "dense":
            extra = ", num_message_bits=24" if net.pops[c.src].graded else ""
            if net.fixed:
                a = c.args
                extra += (f", weight_exp={a['weight_exp']}, num_weight_bits={a['num_weight_bits']}, "
                         f"sign_mode=SignMode.{a['sign_mode']}")
            L.append(f'    p["{c.name}"] = Dense(weights=dense_weights(W["{key}"], B, lay_{c.src}, lay_{c.dst}){extra}, '
                     f'name="{c.name}")')
            src_port = f'p["{c.src}"].s_out' + (".flatten()" if net.pops[c.src].conv else "")
            L.append(f'    {src_port}.connect(p["{c.name}"].s_in)')
            dst_port = f'p["{c.name}"].a_out' + (f".reshape(lava_shape(*lay_{c.dst}, B))"
                                                 if net.pops[c.dst].conv else "")
            L.append(f'    {dst_port}.connect(p["{c.dst}"].a_in)')
        else:
            g = c.args
            L.append(f'    p["{c.name}"] = Conv(weight=conv_weights(W["{key}"], B), '
                     f"input_shape=lava_shape(*lay_{c.src}, B), padding={g['padding']}, stride={g['stride']}, "
                     f"dilation={g['dilation']}, groups=B * {g['groups']}"
                     + (", num_message_bits=24" if net.pops[c.src].graded else "") + f", name=\"{c.name}\")")
            L.append(f'    p["{c.src}"].s_out.connect(p["{c.name}"].s_in)')
            L.append(f'    p["{c.name}"].a_out.connect(p["{c.dst}"].a_in)')
    L.append("    sinks = {}")
    L.append("    for out, (pop, shape, conv, _) in OUTPUTS.items():")
    L.append("        sinks[out] = Sink(shape=lava_shape(shape, conv, B), buffer=steps)")
    L.append('        p[pop].s_out.connect(sinks[out].a_in)')
    L.append("    return p, sinks")
    L.append('''

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=None, help="input .npz (default: zeros)")
    ap.add_argument("--steps", type=int, default=None, help="steps T (default: the input's T)")
    ap.add_argument("-o", "--output", type=Path, default=Path("out.npz"))
    ap.add_argument("--record", action="append", default=[], metavar="NODE",
                    help="record a neuron's voltage (and current in fixed_pt) as state/NODE.v, state/NODE.i")
    args = ap.parse_args(argv)
    record = [n for item in args.record for n in item.split(",") if n]
    for n in record:
        if n not in NEURONS:
            raise SystemExit(f"--record {n}: not a neuron of this program; neurons: {', '.join(NEURONS)}")
    data = {}
    if args.input is not None:
        with np.load(args.input) as f:
            data = {k: f[k] for k in INPUTS}
    T = args.steps or (next(iter(data.values())).shape[0] if data else DEFAULT_STEPS)
    if T is None:
        raise SystemExit("give --steps or --input")
    B = next(iter(data.values())).shape[1] if data else 1
    for name, (shape, _) in INPUTS.items():
        x = data.get(name, np.zeros((T, B) + shape))
        if x.shape[0] < T or tuple(x.shape[2:]) != shape:
            raise SystemExit(f"input `{name}`: expected (T>={T}, B, {shape}), found {x.shape}")
        data[name] = x[:T]
    steps = T + EXTRA_STEPS
    t0 = time.perf_counter()
    procs, sinks = build(data, B, steps)
    monitors = {}
    readouts = {}
    for out, (pop, lat) in READOUTS.items():
        readouts[out] = Monitor()
        readouts[out].probe(procs[pop].v, steps)
    for n in record:
        monitors[n] = {"v": Monitor()}
        monitors[n]["v"].probe(procs[n].v, steps)
        if RUN_CFG == "fixed_pt":  # Lava's u is n3ml's current i only in fixed point
            monitors[n]["i"] = Monitor()
            monitors[n]["i"].probe(procs[n].u, steps)
    first = next(iter(sinks.values())) if sinks else next(iter(procs.values()))
    first.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=RUN_CFG))
    try:
        result = {out: from_lava(np.asarray(s.data.get()), shape, conv, B, lat, T)
                  for (out, (_, shape, conv, lat)), s in zip(OUTPUTS.items(), sinks.values())}
        W = np.load(HERE / "weights.npz")
        for out, mon in readouts.items():
            pop, lat = READOUTS[out]
            shape, conv, _, scale_key = NEURONS[pop]
            data = mon.get_data()[procs[pop].name]["v"]
            result[out] = monitor_to_n3ml(data, shape, conv, B, lat, T, W[scale_key] if scale_key else 1)
        for n, mons in monitors.items():
            shape, conv, lat, scale_key = NEURONS[n]
            for var, mon in mons.items():
                scale = W[scale_key] if (var == "v" and scale_key) else 1
                data = mon.get_data()[procs[n].name]["u" if var == "i" else var]
                result[f"state/{n}.{var}"] = monitor_to_n3ml(data, shape, conv, B, lat, T, scale)
    finally:
        first.stop()  # Lava's runtime processes must end, also when reading back fails
    np.savez(args.output, **result)
    print(f"{RUN_CFG}: {T} steps (+{EXTRA_STEPS} for Lava's synaptic delay), batch {B}, "
          f"{time.perf_counter() - t0:.2f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
''')
    (out_dir / "run.py").write_text("\n".join(L))
    np.savez(out_dir / "weights.npz", **arrays)
    meta = {"target": "lava", "graph": net.name, "run_cfg": cfg, "dt_ms": net.dt,
            "latency": {n: p.latency for n, p in net.pops.items()},
            "outputs": {pr.output: {"population": pr.pop, "latency": pr.latency} for pr in net.probes}}
    (out_dir / "lava.json").write_text(json.dumps(meta, indent=2) + "\n")
