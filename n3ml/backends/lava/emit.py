"""Emission: a lowered `LavaNet` -> the Lava runtime (`runtime.py`, copied verbatim as run.py) and the
network it runs as data (network.json + weights.npz).

The program builds the network for the batch size of its input file (populations B times as wide,
block-diagonal weights), runs it with `Loihi2SimCfg` (`fixed_pt` for quantized graphs, `floating_pt`
otherwise), undoes Lava's synaptic latency and saves the outputs in the common .npz layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ..emission import Arrays, write_program
from ...ir.profiles import LOIHI2
from .lower import Conn, LavaNet, Pop, Probe
from .runtime import FORMAT, LIF_ARGS  # what the program reads: its own module, importable without Lava

RUNTIMES = {"run.py": ("n3ml.backends.lava", "runtime.py")}


def emit(net: LavaNet, out_dir: Path, *, steps: int | None, source: str) -> None:
    """Write run.py, network.json and weights.npz into `out_dir` (which exists and is empty).

    `source` (what the graph was converted from, the target option `source=`) is stored as a JSON
    string, like every name: nothing of the graph or the options becomes code.
    """
    arrays = Arrays()
    cfg = "fixed_pt" if net.fixed else "floating_pt"
    desc: dict[str, Any] = {
        "format": FORMAT, "graph": net.name, "source": source, "generated_by": f"n3ml {__version__}",
        "dt": float(net.dt), "run_cfg": cfg, "extra_steps": int(net.extra_steps), "default_steps": steps or None,
        "notes": ["Lava step = n3ml step + latency (Dense/Conv deliver their sums one step late); the outputs are "
                  "shifted back.", 'A value "@key" names an array in weights.npz.'],
        "populations": {n: _population(n, p, net.fixed, arrays) for n, p in net.pops.items()},
        "connections": [_connection(c, net, arrays) for c in net.conns],
        "outputs": {pr.output: _output(pr) for pr in net.probes if pr.var == "s"},
        "readouts": {pr.output: {"population": pr.pop, "latency": int(pr.latency)}
                     for pr in net.probes if pr.var == "v"},
    }
    write_program(out_dir, RUNTIMES, desc, arrays)


def _output(pr: Probe) -> dict[str, Any]:
    """A spike output: one population, or the parts of a Concat (concatenated along the per-sample `axis`)."""
    if not pr.parts:
        return {"population": pr.pop, "latency": int(pr.latency)}
    return {"parts": [{"population": pop, "latency": int(lat)} for pop, lat in pr.parts], "axis": int(pr.axis)}


def _population(n: str, pop: Pop, fixed: bool, arrays: Arrays) -> dict[str, Any]:
    layout = {"kind": pop.kind, "shape": list(pop.shape), "conv": bool(pop.conv), "latency": int(pop.latency)}
    if pop.kind == "bias":
        return {"note": "one spike every step from Lava step `latency` on (a current-based neuron's bias)",
                **layout, "graded": False}
    if pop.kind == "input" and pop.of:
        return {"note": f"Input `{pop.of}`'s data sent {pop.latency} step(s) later (it feeds a Conv on a path "
                        "shorter than its reader's other inputs)", **layout, "graded": bool(pop.graded), "of": pop.of}
    if pop.kind == "input":
        what = "analog values sent as graded spikes" if pop.graded else "spikes"
        return {"note": f"Input {list(pop.shape)}, {what} from a ring buffer", **layout, "graded": bool(pop.graded)}
    if pop.kind == "filter":
        return _filter(n, pop, layout, fixed, arrays)
    params = {}
    for k in LIF_ARGS:
        a = np.asarray(pop.params.get(k, 0))
        # per-neuron values go to weights.npz; one value stays a number (Lava broadcasts it)
        params[k] = arrays.add(f"{n}.{k}", a) if a.size > 1 else arrays.value(f"{n}.{k}", a.reshape(()))
    own = {"reset": pop.reset, "start": int(pop.start)} if pop.process == "N3mlLIF" else {}
    if pop.process == "N3mlLIF" and pop.input_shift != LOIHI2.input_shift:
        own["input_shift"] = int(pop.input_shift)
    if pop.adapt:  # threshold adaptation (N3mlLIF: an ALIF's in threshold units, a FixedCubaLIF's in integers)
        own["adapt"] = {k: arrays.add(f"{n}.{k}", np.asarray(v)) if np.size(v) > 1 else
                        arrays.value(f"{n}.{k}", np.asarray(v).reshape(())) for k, v in pop.adapt.items()}
    if pop.kind == "relay":
        return {"note": f"relay of `{pop.of}`'s spikes: fires one step after its input fired (u and v forget "
                        "every step, threshold below one spike); a chain of relays delays a Conv's source", **layout, "graded": False,
                "process": pop.process, "refractory": 0, "params": params, "v_scale": 1, "of": pop.of, **own}
    if fixed:
        what = "fixed-point (du register = du - 1, vth = theta >> 6)"
    elif np.isinf(float(np.asarray(pop.params.get("vth", 0)).reshape(-1)[0])):
        what = "LI readout that never fires (vth = +inf; du = 1: u is the step's input), n3ml voltage units"
    else:
        what = "float, threshold units"
    if pop.per_neuron_decay:
        what += ", per-neuron du/dv"
    if pop.adapt and fixed:
        what += ", adaptive threshold (vth << 6) + b' (b' = trunc(keep_b b >> 12), b = sat24(b' + q s))"
    elif pop.adapt:
        what += ", adaptive threshold vth + b (b' = a_b b, b = b' + q s)"
    if pop.refractory and pop.process == "N3mlLIF":
        what += f", refractory for {pop.refractory} step(s) after a spike (v held, u integrating)"
    if pop.start:
        what += f", holds its initial state for the {pop.start} step(s) before its input arrives"
    if fixed and pop.input_shift != LOIHI2.input_shift:
        what += f", input << {pop.input_shift} (it reads a synapse filter's current, 2^J >= 2^6 per spike)"
    unit_scale = np.size(pop.v_scale) == 1 and float(np.asarray(pop.v_scale).reshape(-1)[0]) == 1.0
    return {"note": f"neuron {list(pop.shape)}, {what}", **layout, "graded": bool(pop.graded),
            "process": pop.process, "refractory": int(pop.refractory), **own,
            "params": params,
            # n3ml voltage = Lava v * v_scale (floating_pt works in threshold units)
            "v_scale": 1 if unit_scale else arrays.add(f"{n}.v_scale", np.asarray(pop.v_scale, dtype=np.float64))}


def _filter(n: str, pop: Pop, layout: dict[str, Any], fixed: bool, arrays: Arrays) -> dict[str, Any]:
    """n3ml's N3mlSynapseFilter (runtime.py `filter_models`): its parameters, per neuron in weights.npz."""
    params = {k: arrays.add(f"{n}.{k}", np.asarray(v)) if np.size(v) > 1 else
              arrays.value(f"{n}.{k}", np.asarray(v).reshape(())) for k, v in pop.params.items()}
    what = ("v = sat(v + jump) on a spike, else trunc(v keep_v >> shift) (integers)" if fixed else
            "v = v - (1 - s) v leak + s")
    return {"note": f"synapse filter {list(pop.shape)}: {what}; sends v as graded spikes, holds v_init for the "
                    f"{pop.start} step(s) before its input arrives", **layout, "graded": True,
            "process": pop.process, "start": int(pop.start), "params": params, "v_scale": 1}


def _connection(c: Conn, net: LavaNet, arrays: Arrays) -> dict[str, Any]:
    entry = {"name": c.name, "op": c.op, "src": c.src, "dst": c.dst, "note": c.comment,
             "weight": arrays.add(f"{c.name}.weight", c.weight)}
    if c.op == "dense":
        if c.delay:
            entry["delay"] = int(c.delay)  # a DelayDense: every synapse `delay` steps more than a Dense
        if net.fixed:
            entry.update(weight_exp=c.args["weight_exp"], num_weight_bits=c.args["num_weight_bits"],
                         sign_mode=c.args["sign_mode"])
    else:
        entry.update({k: c.args[k] for k in ("padding", "stride", "dilation", "groups")})
    return entry
