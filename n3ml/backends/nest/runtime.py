#!/usr/bin/env python3
"""Run a network converted by `n3ml convert --target nest` on PyNEST 3.x.

    python run.py [--input X.npz] [--steps T] [--threads K] [-o OUT.npz]
    mpirun -np 4 python run.py ... [--threads K]   # a NEST built with MPI (and mpi4py); rank 0 writes OUT.npz

This file is the same for every network: the network is data beside it, `network.json` (tables in
NEST's terms: inputs, populations, connections, outputs) and `weights.npz` (their arrays), and
`netlist_runtime.py` reads them, the inputs and the command line. Every IR step t runs as NEST step
t + latency of the population: NEST delivers a spike one step after it is emitted, the IR in the same
step, so each population runs behind its sources and every connection delay is the difference of the
latencies. The outputs are shifted back to IR time. The mapping of the IR's neurons to NEST models is
explained in n3ml's docs/backends/nest.md.

n3ml ships this file as `n3ml/backends/nest/runtime.py`; it imports neither n3ml nor, until it runs,
NEST.
"""
import json
import os
import sys
import time

import numpy as np

if (__package__ or "").startswith("n3ml."):  # imported from the n3ml package (tests)
    from .. import netlist_runtime as rt
else:  # the emitted program (run as a script or as a module): netlist_runtime.py lies next to run.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import netlist_runtime as rt

FORMAT = "n3ml-nest/1"  # the network.json this program reads


def import_nest():
    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest

    return nest


# NEST parameters whose value is a list (gif_psc_exp's threshold and current components, n3ml_cell's leak per
# filter port): written as one number (the same single value for every neuron) or as an (n, k) array (k values
# per neuron)
LIST_PARAMS = ("q_sfa", "tau_sfa", "q_stc", "tau_stc", "filter_leak")


def per_node(params, n):
    """`params` as one dict per neuron if any value is per-neuron, else as it is. PyNEST spreads a dict of
    arrays over the neurons only when all of them live in this process; under MPI it would hand every
    neuron the whole array, so the program spreads it itself (NEST sets the dicts of its own neurons)."""
    lists = {k: np.asarray(v, dtype=float) for k, v in params.items() if k in LIST_PARAMS}
    params = {k: v for k, v in params.items() if k not in LIST_PARAMS}
    uniform = {k: [float(v)] for k, v in lists.items() if v.ndim == 0}
    uniform.update({k: [] for k, v in lists.items() if v.ndim == 2 and v.shape[1] == 0})
    rows = {k: v for k, v in lists.items() if k not in uniform}
    if not rows and not any(np.ndim(v) for v in params.values()):
        return {**params, **uniform}
    return [{**{k: (float(v[i]) if np.ndim(v) else v) for k, v in params.items()}, **uniform,
             **{k: [float(x) for x in v[i]] for k, v in rows.items()}} for i in range(n)]


def build(nest, net, sample, steps, threads):
    """Create the network for one input sample {name: (T, *shape)}; return the node collections."""
    dt = net.dt
    nest.ResetKernel()
    if hasattr(nest, "VerbosityLevel"):  # NEST >= 3.9
        nest.verbosity = nest.VerbosityLevel.WARNING
    else:
        nest.set_verbosity("M_WARNING")
    nest.set(resolution=dt, local_num_threads=threads, print_time=False)
    for source in net.spec.get("modules", []):  # n3ml's own cells: ResetKernel forgets a module's models
        nest.Install(rt.nest_module(net.here, source))
    nodes = {}
    for name, spec in net.inputs.items():
        x = sample[name].reshape(steps, -1)
        gens = nest.Create("spike_generator", x.shape[1])
        # the value of IR step t is emitted at NEST time (t + 1) * dt
        if spec["kind"] == "spike":
            gens.set([{"spike_times": (np.flatnonzero(x[:, i]) + 1.0) * dt} for i in range(x.shape[1])])
            parrots = nest.Create("parrot_neuron", x.shape[1])
            nest.Connect(gens, parrots, "one_to_one", syn_spec={"delay": dt})
            nodes[name] = parrots
        else:
            gens.set([{"spike_times": (np.flatnonzero(x[:, i]) + 1.0) * dt,
                       "spike_weights": x[np.flatnonzero(x[:, i]), i]} for i in range(x.shape[1])])
            nodes[name] = gens
    if net.clock:
        nodes["clock"] = nest.Create("spike_generator", params={"spike_times": np.arange(1.0, steps + 1) * dt})
    for name, spec in net.populations.items():
        params = {k: net.array(v) for k, v in spec["params"].items()}
        nodes[name] = nest.Create(spec["model"], spec["size"], params=per_node(params, spec["size"]))
    for c in net.spec["connections"]:
        key = c["key"]
        syn = {"synapse_model": "static_synapse", "weight": net.weights[key + "/w"], "delay": c["delay"] * dt}
        if c["rule"] == "all_to_all":
            nest.Connect(nodes[c["source"]], nodes[c["target"]], "all_to_all", syn_spec=syn)
        else:  # index arrays into the two populations, one synapse per entry
            pre = nodes[c["source"]][0].global_id + net.weights[key + "/pre"]
            post = nodes[c["target"]][0].global_id + net.weights[key + "/post"]
            syn["delay"] = np.full(pre.size, c["delay"] * dt)  # array-based Connect takes arrays only
            if "receptor" in c:  # filter ports of n3ml's own cell: one port per filtered source neuron
                syn["receptor_type"] = net.array(c["receptor"])
            nest.Connect(pre, post, "one_to_one", syn_spec=syn)
    return nodes


def simulate(nest, net, nodes, steps):
    """Record the outputs and run; membrane initial values are set when each population's IR time begins."""
    dt = net.dt
    recorders = {}
    for source, what in net.recorded().items():
        if what == "spikes":
            recorders[source] = nest.Create("spike_recorder")
            nest.Connect(nodes[source], recorders[source])
        else:
            recorders[source] = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": dt})
            nest.Connect(recorders[source], nodes[source])
    now = 0
    for step in sorted({spec["latency"] - 1 for spec in net.populations.values() if spec["v_init"] != 0.0}):
        nest.Simulate((step - now) * dt)
        now = step
        for name, spec in net.populations.items():
            if spec["latency"] - 1 == step and spec["v_init"] != 0.0:
                nodes[name].set(per_node({"V_m": net.array(spec["v_init"])}, spec["size"]))
    nest.Simulate((steps + net.horizon + 1 - now) * dt)
    return recorders


def gather(nest, events, keys):
    """Events of all MPI ranks: NEST distributes the neurons over the ranks and each rank's recorder holds
    the events of its own neurons, so every rank takes the union (the same on each)."""
    if nest.NumProcesses() == 1:
        return [np.asarray(events[k]) for k in keys]
    from mpi4py import MPI

    parts = MPI.COMM_WORLD.allgather([np.asarray(events[k]) for k in keys])
    return [np.concatenate([p[i] for p in parts]) for i in range(len(keys))]


def ranks_summary(nest, net, nodes, threads):
    """Under MPI, one line for rank 0 to print: processes, threads, and how many neurons of each
    population each rank owns (NEST deals them round-robin over the virtual processes)."""
    from mpi4py import MPI

    local = {name: len(nest.GetLocalNodeCollection(nodes[name])) for name in net.populations}
    per_rank = MPI.COMM_WORLD.allgather(local)
    owned = {name: [counts[name] for counts in per_rank] for name in net.populations}
    return f"MPI: {nest.NumProcesses()} processes x {threads} threads; neurons per rank: {json.dumps(owned)}"


def count_connections(nest):
    """Connections of the whole network (each rank holds those onto its own neurons)."""
    if nest.NumProcesses() == 1:
        return nest.num_connections
    from mpi4py import MPI

    return MPI.COMM_WORLD.allreduce(nest.num_connections)


def collect(nest, net, nodes, recorders, steps):
    """Recorded events -> {output: (T, *shape)} in IR time."""
    traces = {}  # population -> (T, size): its spikes or V_m at IR steps 0..T-1
    for source, what in net.recorded().items():
        first = nodes[source][0].global_id
        events = recorders[source].get("events")
        if what == "spikes":
            senders, times = gather(nest, events, ["senders", "times"])
            values = np.ones(times.size)
        else:
            senders, times, values = gather(nest, events, ["senders", "times", "V_m"])
        senders = senders.astype(int) - first
        t = np.rint(times / net.dt).astype(int) - net.latency(source)
        ok = (t >= 0) & (t < steps)
        traces[source] = np.zeros((steps, len(nodes[source])))
        traces[source][t[ok], senders[ok]] = values[ok]
    return rt.outputs(net, traces, steps)


def main(argv=None, here=None):
    """Run the network described next to this file (or in the directory `here`) and save its outputs."""
    net = rt.Network(here or os.path.dirname(os.path.abspath(__file__)), FORMAT)
    args = rt.parse_args(net, argv, f"PyNEST program for the n3ml graph `{net.spec['graph']}`",
                         lambda parser: parser.add_argument(
                             "--threads", type=int, default=1, help="NEST threads per process (local_num_threads)"))
    steps = args.steps
    nest = import_nest()
    data, batch = rt.samples(net, args.input, steps)
    results = {name: np.zeros((steps, batch, *spec["shape"])) for name, spec in net.outputs.items()}
    for b in range(batch):  # NEST cannot reset a network's state: one fresh kernel per sample
        t0 = time.perf_counter()
        nodes = build(nest, net, {n: x[:, b] for n, x in data.items()}, steps, args.threads)
        built = time.perf_counter()
        if b == 0 and nest.NumProcesses() > 1:
            summary = ranks_summary(nest, net, nodes, args.threads)
            if nest.Rank() == 0:
                print(summary, file=sys.stderr)
        t1 = time.perf_counter()
        recorders = simulate(nest, net, nodes, steps)
        t2 = time.perf_counter()
        connections = count_connections(nest)
        if nest.Rank() == 0:
            print(f"sample {b}: build {built - t0:.3f} s, simulate {t2 - t1:.3f} s ({connections} connections)",
                  file=sys.stderr)
        for name, y in collect(nest, net, nodes, recorders, steps).items():
            results[name][:, b] = y
    if nest.Rank() == 0:
        rt.save(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
