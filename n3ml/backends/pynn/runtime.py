#!/usr/bin/env python3
"""Run a network converted by `n3ml convert --target pynn` on PyNN 0.13.

    python run.py [--input X.npz] [--steps T] [--simulator nest|spiNNaker|brian2] [-o OUT.npz]
    XDG_CONFIG_HOME=CFG python run.py --simulator spiNNaker   # sPyNNaker; CFG/.spynnaker.cfg names the board

This file is the same for every network: the network is data beside it, `network.json` (tables in
PyNN's terms: inputs, populations, projections, outputs) and `weights.npz` (their arrays), and
`netlist_runtime.py` reads them, the inputs and the command line. Standard cells (IF_curr_delta,
IF_curr_exp, SpikeSourceArray) and connections from lists; a population of celltype "native:<model>"
(reset by subtraction through NEST's eprop_iaf) and an analog input (NEST's spike_generator with
spike_weights) run on NEST only. Every IR step t runs as simulator
step t + latency of the population: synapses deliver a spike one step after it is emitted, the IR in
the same step, so each population runs behind its sources and every delay is the difference of the
latencies. The outputs are shifted back. The mapping is explained in n3ml's docs/backends/pynn.md.

On sPyNNaker the program prints, after the first run, where the populations were placed (one JSON line
on stdout starting "spinnaker mapping:"). On a virtual board (`virtual_board = True`) sPyNNaker maps the
network (partitioning, placement, routing, data specifications) but cannot run it: the program then
stops after that line and writes no outputs.

n3ml ships this file as `n3ml/backends/pynn/runtime.py`; it imports neither n3ml nor, until it runs,
PyNN.
"""
import importlib
import json
import logging
import os
import sys
import warnings

import numpy as np

if (__package__ or "").startswith("n3ml."):  # imported from the n3ml package (tests)
    from .. import netlist_runtime as rt
else:  # the emitted program (run as a script or as a module): netlist_runtime.py lies next to run.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import netlist_runtime as rt

FORMAT = "n3ml-pynn/1"  # the network.json this program reads
SIMULATORS = ("nest", "spiNNaker", "brian2")


def import_simulator(name):
    os.environ.setdefault("PYNEST_QUIET", "1")
    # PyNN 0.13 still calls NEST APIs that NEST 3.10 flags as deprecated; its optional NEST extensions
    # (stochastic synapses) are not needed
    warnings.filterwarnings("ignore", message=r"\s*(.*deprecated|Provided for backward compat|Cannot find nest-config)")
    # native_cell_type("spike_generator") lists NEST's string parameters, which PyNN skips, each with a warning
    warnings.filterwarnings("ignore", message="Ignoring default NEST parameter")
    logging.getLogger("PyNN").setLevel(logging.ERROR)
    sim = importlib.import_module(f"pyNN.{name}")
    if name == "nest" and not hasattr(sim.IF_curr_delta, "variable_map"):
        # PyNN 0.13's NEST IF_curr_delta lacks the map of `v` to NEST's V_m (initial values, recording)
        sim.IF_curr_delta.variable_map = {"v": "V_m"}
    return sim


def analog_source(sim, simulator, name, x, start, dt):
    """An analog input (T, n) as NEST's native spike_generator: the value of IR step t is one event at time
    t * dt + start whose weight is the value (spike_weights multiply the projection's weights), as the nest
    target feeds it. PyNN relays every NEST stimulator through a parrot_neuron, which re-emits unit spikes
    and would drop the values; the generators are therefore the population itself (uses_parrot = False),
    and emit at `start` what a SpikeSourceArray's parrot would."""
    if simulator != "nest":
        sys.exit(f"input {name} is analog: PyNN's SpikeSourceArray emits unit spikes; run with --simulator nest")
    native = sim.native_cell_type("spike_generator")
    # PyNN would pass NEST's empty per-neuron lists back as defaults, which NEST refuses (an empty
    # spike_multiplicities does not cast to integers); they are set through NEST below
    defaults = {k: v for k, v in native.default_parameters.items() if not k.startswith("spike_")}
    generator = type("spike_generator", (native,), {"uses_parrot": False, "default_parameters": defaults})
    pop = sim.Population(x.shape[1], generator(), label=name)
    steps = [np.flatnonzero(x[:, i]) for i in range(x.shape[1])]  # a zero value sends no event
    # PyNN 0.13 cannot pass per-neuron arrays to a native cell: they are set through NEST
    pop.node_collection.set([{"spike_times": t * dt + start, "spike_weights": x[t, i]} for i, t in enumerate(steps)])
    return pop


def grid_times(simulator, pop, steps, dt):
    """On NEST, PyNN sends a SpikeSourceArray through a parrot (delay min_delay = dt) and gives its generator
    `times - min_delay`: that float difference put some spikes a step late (IR steps 1, 4, 39, 42, ... of a
    0.1 ms grid). The generators get the grid products (k - 1) * dt instead, as the nest target writes them."""
    if simulator == "nest":
        pop.node_collection_source.set([{"spike_times": (np.asarray(k, np.float64) - 1.0) * dt} for k in steps])


# NEST parameters whose value is a list (gif_psc_exp's threshold and current components, n3ml_cell's leak per
# filter port): one number (the same single value for every neuron) or an (n, k) array (k values per neuron)
LIST_PARAMS = ("q_sfa", "tau_sfa", "q_stc", "tau_stc", "filter_leak")


def per_neuron_lists(lists, n):
    """One dict of list-valued NEST parameters per neuron (for NodeCollection.set)."""
    rows = {k: np.full((n, 1), float(v)) if np.ndim(v) == 0 else np.asarray(v, dtype=float) for k, v in lists.items()}
    return [{k: [float(x) for x in v[i]] for k, v in rows.items()} for i in range(n)]


def build(sim, simulator, net, sample, steps):
    """Create the network for one input sample {name: (T, *shape)}; return the populations."""
    dt = net.dt
    extra = {"spike_precision": "on_grid"} if simulator == "nest" else {}
    if simulator != "spiNNaker":  # PyNN's default max_delay is 10 ms; sPyNNaker sizes its delays itself
        extra["max_delay"] = max([p["delay"] for p in net.spec["projections"]] + [1]) * dt
    sim.setup(timestep=dt, min_delay=dt, **extra)
    if net.spec.get("modules"):  # n3ml's own NEST cells, after setup (whose ResetKernel forgets a module's models)
        if simulator != "nest":
            sys.exit("this network uses n3ml's own NEST cell: run with --simulator nest")
        import nest

        for source in net.spec["modules"]:
            nest.Install(rt.nest_module(net.here, source))
    pops = {}
    # per-neuron spike times: PyNN's Sequence; sPyNNaker has none and takes plain lists
    sequence = getattr(sim, "Sequence", None) or (lambda t: [float(v) for v in t])
    for name, spec in net.inputs.items():
        x = sample[name].reshape(steps, -1)
        if spec["kind"] == "analog":
            pops[name] = analog_source(sim, simulator, name, x, spec["latency"] * dt, dt)
            continue
        # a spike of IR step t is emitted at time (t + latency) * dt
        times = [sequence((np.flatnonzero(x[:, i]) + spec["latency"]) * dt) for i in range(x.shape[1])]
        pops[name] = sim.Population(x.shape[1], sim.SpikeSourceArray(spike_times=times), label=name)
        grid_times(simulator, pops[name], [np.flatnonzero(x[:, i]) + spec["latency"] for i in range(x.shape[1])], dt)
    if net.clock:
        ticks = (np.arange(steps) + net.spec["clock_latency"]) * dt
        pops["clock"] = sim.Population(1, sim.SpikeSourceArray(spike_times=ticks), label="clock")
        grid_times(simulator, pops["clock"], [np.arange(steps) + net.spec["clock_latency"]], dt)
    for name, spec in net.populations.items():
        params = {k: net.array(v) for k, v in spec["params"].items()}
        if spec["celltype"].startswith("native:"):
            if simulator != "nest":
                sys.exit(f"population {name} uses NEST's {spec['celltype'][7:]}: run with --simulator nest")
            # PyNN 0.13 cannot pass per-neuron arrays to a native cell, nor NEST's list-valued parameters
            # (gif_psc_exp's threshold components): the parameters are set through NEST, all in one call (NEST
            # checks them together: V_reset < V_th holds only for the pair, not against a default)
            lists = {k: params.pop(k) for k in LIST_PARAMS if k in params}
            pops[name] = sim.Population(spec["size"], sim.native_cell_type(spec["celltype"][7:])(), label=name)
            pops[name].node_collection.set(V_m=net.array(spec["v_init"]), **params)
            if lists:
                pops[name].node_collection.set(per_neuron_lists(lists, spec["size"]))
        else:
            cell = getattr(sim, spec["celltype"])(**params)
            pops[name] = sim.Population(spec["size"], cell, initial_values={"v": net.array(spec["v_init"])},
                                        label=name)
    for p in net.spec["projections"]:
        key = p["key"]
        if p["receptor"] == "port":
            filter_ports(simulator, pops, p, net.weights, dt)
            continue
        connections = np.column_stack([net.weights[key + "/pre"], net.weights[key + "/post"],
                                       net.weights[key + "/w"]])
        sim.Projection(pops[p["source"]], pops[p["target"]],
                       sim.FromListConnector(connections, column_names=["weight"]),
                       sim.StaticSynapse(delay=p["delay"] * dt), receptor_type=p["receptor"])
    for source, what in net.recorded().items():
        pops[source].record(what)
    return pops


def filter_ports(simulator, pops, p, weights, dt):
    """Synapses into the filter ports of n3ml's own NEST cell (SpikingJelly's SynapseFilter: the receiving cell keeps
    one filter state per filtered source neuron): PyNN's receptor_type is one name per projection, so they are made
    with NEST's array Connect, one port (receptor_type) per synapse, weights in the cell's (IR) units."""
    if simulator != "nest":
        sys.exit(f"population {p['target']} keeps filter ports of n3ml's own NEST cell: run with --simulator nest")
    import nest

    key = p["key"]
    pre = pops[p["source"]].node_collection[0].global_id + weights[key + "/pre"]
    post = pops[p["target"]].node_collection[0].global_id + weights[key + "/post"]
    nest.Connect(pre, post, "one_to_one", syn_spec={
        "synapse_model": "static_synapse", "weight": weights[key + "/w"], "delay": np.full(pre.size, p["delay"] * dt),
        "receptor_type": weights[key + "/port"]})


def collect(net, pops, steps):
    """Recorded spikes / voltages -> {output: (T, *shape)} in IR time."""
    traces = {}  # population -> (T, size): its spikes or v at IR steps 0..T-1
    for source, what in net.recorded().items():
        latency = net.latency(source)
        pop = pops[source]
        full = np.zeros((steps, pop.size))
        segment = pop.get_data(what).segments[0]
        if what == "spikes":
            for train in segment.spiketrains:
                t = np.rint(np.asarray(train.rescale("ms").magnitude) / net.dt).astype(int) - latency
                full[t[(t >= 0) & (t < steps)], int(train.annotations["source_index"])] = 1.0
        else:
            signal = segment.analogsignals[0]
            k = np.rint(np.asarray(signal.times.rescale("ms").magnitude) / net.dt).astype(int) - latency
            ok = (k >= 0) & (k < steps)
            full[k[ok]] = np.asarray(signal.magnitude)[ok]
        traces[source] = full
    return rt.outputs(net, traces, steps)


def spinnaker_mapping():
    """What sPyNNaker made of the network in the last run: cores per population label (PACMAN's
    placements; delay extensions are "<source>_delayed"), the chips they are on, the system cores
    (monitors, packet gatherers) beside them, routing-table entries, and whether the board is virtual."""
    from spinn_front_end_common.data import FecDataView
    from spinn_utilities.config_holder import get_config_bool

    cores, chips, system = {}, set(), 0
    for placement in FecDataView.iterate_placemements():
        app = placement.vertex.app_vertex
        if app is None or not app.label:  # a system core of the tool chain, not of the network
            system += 1
            continue
        cores[app.label] = cores.get(app.label, 0) + 1
        chips.add((placement.x, placement.y))
    machine = FecDataView.get_machine()
    tables = FecDataView.get_uncompressed().routing_tables
    return {"virtual_board": bool(get_config_bool("Machine", "virtual_board")), "cores": cores,
            "cores_used": sum(cores.values()), "chips_used": len(chips), "system_cores": system,
            "machine_chips": machine.n_chips, "machine_cores": sum(c.n_placable_processors for c in machine.chips),
            "routing_entries": sum(t.number_of_entries for t in tables)}


def main(argv=None, here=None):
    """Run the network described next to this file (or in the directory `here`) and save its outputs."""
    net = rt.Network(here or os.path.dirname(os.path.abspath(__file__)), FORMAT)
    default = net.spec["simulator"]
    args = rt.parse_args(net, argv, f"PyNN program for the n3ml graph `{net.spec['graph']}`",
                         lambda parser: parser.add_argument(
                             "--simulator", choices=list(SIMULATORS), default=default,
                             help=f"PyNN backend (default {default})"))
    steps = args.steps
    sim = import_simulator(args.simulator)
    data, batch = rt.samples(net, args.input, steps)
    results = {name: np.zeros((steps, batch, *spec["shape"])) for name, spec in net.outputs.items()}
    for b in range(batch):  # one fresh network per sample: state does not carry over
        pops = build(sim, args.simulator, net, {n: x[:, b] for n, x in data.items()}, steps)
        sim.run((steps + net.horizon + 1) * net.dt)
        if args.simulator == "spiNNaker" and b == 0:
            mapping = spinnaker_mapping()
            print("spinnaker mapping: " + json.dumps(mapping, sort_keys=True), flush=True)
            if mapping["virtual_board"]:
                sim.end()
                print("virtual SpiNNaker board: the network was partitioned, placed and routed and its data "
                      "specifications written; nothing runs without a board, so no outputs are written",
                      file=sys.stderr)
                return 0
        for name, y in collect(net, pops, steps).items():
            results[name][:, b] = y
        sim.end()
    rt.save(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
