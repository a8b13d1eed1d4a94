"""Emission of a lowered NEST network: the PyNEST runtime (`runtime.py`, copied verbatim as `run.py`) and
the network it runs as data (`network.json` + `weights.npz`, plain arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import __version__
from ..emission import Arrays, write_program
from ..netlist import OWN_CELL, OWN_CELL_SOURCE, inputs_data, netlist_description, outputs_data, populations_data
from .lower import NestNetwork
from .runtime import FORMAT  # the description the program reads

DEFAULT_STEPS = 100
RUNTIMES = {"run.py": ("n3ml.backends.nest", "runtime.py"),
            "netlist_runtime.py": ("n3ml.backends", "netlist_runtime.py")}


def emit_nest(net: NestNetwork, out_dir: Path, *, steps: int | None = None) -> None:
    """Write `run.py`, `netlist_runtime.py`, `network.json` and `weights.npz` into the (fresh, empty)
    directory `out_dir`."""
    nl = net.netlist
    arrays = Arrays()
    desc = netlist_description(nl, FORMAT, __version__, steps or DEFAULT_STEPS)
    desc["notes"] = [
        "NEST resolution = dt (ms). Spike inputs: spike_generator -> parrot_neuron (latency 2); analog inputs",
        "and the clock (biases): spike_generators whose events carry the value as weight (latency 1).",
        "Populations: E_L = 0 and C_m = 1, so V_m is the IR's v - v_leak; v_init is set at NEST step latency - 1.",
        'A value "@key" names an array in weights.npz. Connections: one nest.Connect each; all_to_all: weight',
        'matrix "<key>/w" (targets x sources); one_to_one: index arrays "<key>/pre", "<key>/post" and weights;',
        '"receptor": the receptor port of each synapse (filter ports of n3ml_cell, SpikingJelly\'s SynapseFilter).',
    ]
    desc.update(inputs_data(nl))
    desc["populations"] = populations_data(nl, net.cells, arrays, lambda pop, cell: {
        "model": cell.model, "size": pop.size, "arrival": int(pop.arrival), "latency": int(pop.latency)})
    connections = []
    for i, c in enumerate(net.connections):
        key = f"c{i}"
        arrays.add(key + "/w", np.asarray(c.weights, np.float64))
        if c.rule == "one_to_one":
            arrays.add(key + "/pre", c.pre)
            arrays.add(key + "/post", c.post)
        row = {"source": c.source, "target": c.target, "delay": int(c.delay), "rule": c.rule, "key": key,
               "note": f"{c.comment}, {c.n_synapses} synapses"}
        if c.receptor is not None:  # into filter ports of n3ml_cell: the port (receptor_type) of each synapse
            row["receptor"] = arrays.add(key + "/receptor", np.asarray(c.receptor, np.int64))
        connections.append(row)
    desc["connections"] = connections
    desc["outputs"] = outputs_data(nl, net.cells, arrays)
    runtimes = dict(RUNTIMES)
    if any(c.model == OWN_CELL for c in net.cells.values()):  # compiled and installed by the program
        runtimes[OWN_CELL_SOURCE] = ("n3ml.backends.nest", OWN_CELL_SOURCE)
        desc["modules"] = [OWN_CELL_SOURCE]
    write_program(out_dir, runtimes, desc, arrays)
