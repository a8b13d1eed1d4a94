"""Emission of a lowered PyNN network: the PyNN runtime (`runtime.py`, copied verbatim as `run.py`) and
the network it runs as data (`network.json` + `weights.npz`, plain arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import __version__
from ..emission import Arrays, write_program
from ..netlist import OWN_CELL, OWN_CELL_SOURCE, inputs_data, netlist_description, outputs_data, populations_data
from .lower import SOURCE_LATENCY, PynnNetwork
from .runtime import FORMAT  # the description the program reads

DEFAULT_STEPS = 100
RUNTIMES = {"run.py": ("n3ml.backends.pynn", "runtime.py"),
            "netlist_runtime.py": ("n3ml.backends", "netlist_runtime.py")}


def emit_pynn(net: PynnNetwork, out_dir: Path, *, steps: int | None = None, simulator: str = "spiNNaker") -> None:
    """Write `run.py`, `netlist_runtime.py`, `network.json` and `weights.npz` into the (fresh, empty)
    directory `out_dir`."""
    nl = net.netlist
    arrays = Arrays()
    desc = netlist_description(nl, FORMAT, __version__, steps or DEFAULT_STEPS)
    desc["simulator"] = simulator  # the default PyNN backend (--simulator)
    desc["clock_latency"] = SOURCE_LATENCY
    desc["notes"] = [
        "The simulator's time step = dt (ms). Spike inputs and the clock (biases): SpikeSourceArray, a spike of",
        "IR step t at time (t + latency) * dt. Analog inputs (NEST only): NEST's spike_generator, the value of",
        "IR step t one event at (t + latency) * dt weighted by the value (spike_weights), no parrot.",
        "Populations: v_rest = 0, so v is the IR's v - v_leak; cm = 1 nF;",
        '"native:<model>" is a NEST model in NEST\'s units (runs on NEST only). A value "@key" names an array',
        'in weights.npz. Projections: FromListConnector of "<key>/pre", "<key>/post" (indices) and "<key>/w"',
        "(mV for IF_curr_delta, nA for IF_curr_exp; positive on excitatory, negative on inhibitory receptors).",
        'Receptor "port" (NEST only): synapses into filter ports of n3ml_cell (SpikingJelly\'s SynapseFilter), made',
        'with NEST\'s Connect, the port of each in "<key>/port", weights in IR units.',
    ]
    desc.update(inputs_data(nl))
    desc["populations"] = populations_data(nl, net.cells, arrays, lambda pop, cell: {
        "celltype": cell.celltype, "size": pop.size, "latency": int(pop.latency)})
    projections = []
    for i, pr in enumerate(net.projections):
        key = f"c{i}"
        arrays.add(key + "/pre", pr.pre)
        arrays.add(key + "/post", pr.post)
        arrays.add(key + "/w", np.asarray(pr.weights, np.float64))
        if pr.port is not None:
            arrays.add(key + "/port", np.asarray(pr.port, np.int64))
        projections.append({"source": pr.source, "target": pr.target, "delay": int(pr.delay),
                            "receptor": pr.receptor, "key": key, "note": f"{pr.comment}, {pr.weights.size} synapses"})
    desc["projections"] = projections
    desc["outputs"] = outputs_data(nl, net.cells, arrays)
    runtimes = dict(RUNTIMES)
    if any(c.celltype == f"native:{OWN_CELL}" for c in net.cells.values()):  # compiled and installed by the program
        runtimes[OWN_CELL_SOURCE] = ("n3ml.backends.nest", OWN_CELL_SOURCE)
        desc["modules"] = [OWN_CELL_SOURCE]
    write_program(out_dir, runtimes, desc, arrays)
