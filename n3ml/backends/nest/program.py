"""The body of the emitted PyNEST program (`run.py`); `emit.py` writes the network tables above it,
then the code every emitted program shares (`netlist.INPUT_CODE`, `netlist.PROGRAM_CODE`)."""

BODY = r'''

def build(sample, steps, threads):
    """Create the network for one input sample {name: (T, *shape)}; return the node collections."""
    nest.ResetKernel()
    if hasattr(nest, "VerbosityLevel"):  # NEST >= 3.9
        nest.verbosity = nest.VerbosityLevel.WARNING
    else:
        nest.set_verbosity("M_WARNING")
    nest.set(resolution=DT, local_num_threads=threads, print_time=False)
    nodes = {}
    for name, spec in INPUTS.items():
        x = sample[name].reshape(steps, -1)
        gens = nest.Create("spike_generator", x.shape[1])
        # the value of IR step t is emitted at NEST time (t + 1) * DT
        if spec["kind"] == "spike":
            gens.set([{"spike_times": (np.flatnonzero(x[:, i]) + 1.0) * DT} for i in range(x.shape[1])])
            parrots = nest.Create("parrot_neuron", x.shape[1])
            nest.Connect(gens, parrots, "one_to_one", syn_spec={"delay": DT})
            nodes[name] = parrots
        else:
            gens.set([{"spike_times": (np.flatnonzero(x[:, i]) + 1.0) * DT,
                       "spike_weights": x[np.flatnonzero(x[:, i]), i]} for i in range(x.shape[1])])
            nodes[name] = gens
    if CLOCK:
        nodes["clock"] = nest.Create("spike_generator", params={"spike_times": np.arange(1.0, steps + 1) * DT})
    for name, spec in POPULATIONS.items():
        params = {k: array(v) for k, v in spec["params"].items()}
        nodes[name] = nest.Create(spec["model"], spec["size"], params=params)
    for source, target, delay, rule, key in CONNECTIONS:
        syn = {"synapse_model": "static_synapse", "weight": WEIGHTS[key + "/w"], "delay": delay * DT}
        if rule == "all_to_all":
            nest.Connect(nodes[source], nodes[target], "all_to_all", syn_spec=syn)
        else:  # index arrays into the two populations, one synapse per entry
            pre = nodes[source][0].global_id + WEIGHTS[key + "/pre"]
            post = nodes[target][0].global_id + WEIGHTS[key + "/post"]
            syn["delay"] = np.full(pre.size, delay * DT)  # array-based Connect takes arrays only
            nest.Connect(pre, post, "one_to_one", syn_spec=syn)
    return nodes


def simulate(nodes, steps):
    """Record the outputs and run; membrane initial values are set when each population's IR time begins."""
    recorders = {}
    for source, what in recorded().items():
        if what == "spikes":
            recorders[source] = nest.Create("spike_recorder")
            nest.Connect(nodes[source], recorders[source])
        else:
            recorders[source] = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": DT})
            nest.Connect(recorders[source], nodes[source])
    now = 0
    for step in sorted({spec["latency"] - 1 for spec in POPULATIONS.values() if spec["v_init"] != 0.0}):
        nest.Simulate((step - now) * DT)
        now = step
        for name, spec in POPULATIONS.items():
            if spec["latency"] - 1 == step and spec["v_init"] != 0.0:
                nodes[name].set(V_m=array(spec["v_init"]))
    nest.Simulate((steps + HORIZON + 1 - now) * DT)
    return recorders


def gather(events, keys):
    """Events of all MPI ranks (each rank records its own neurons)."""
    if nest.NumProcesses() == 1:
        return [np.asarray(events[k]) for k in keys]
    from mpi4py import MPI

    parts = MPI.COMM_WORLD.allgather([np.asarray(events[k]) for k in keys])
    return [np.concatenate([p[i] for p in parts]) for i in range(len(keys))]


def collect(nodes, recorders, steps):
    """Recorded events -> {output: (T, *shape)} in IR time."""
    traces = {}  # population -> (T, size): its spikes or V_m at IR steps 0..T-1
    for source, what in recorded().items():
        first = nodes[source][0].global_id
        latency = POPULATIONS[source]["latency"] if source in POPULATIONS else INPUTS[source]["latency"]
        events = recorders[source].get("events")
        if what == "spikes":
            senders, times = gather(events, ["senders", "times"])
            values = np.ones(times.size)
        else:
            senders, times, values = gather(events, ["senders", "times", "V_m"])
        senders = senders.astype(int) - first
        t = np.rint(times / DT).astype(int) - latency
        ok = (t >= 0) & (t < steps)
        traces[source] = np.zeros((steps, len(nodes[source])))
        traces[source][t[ok], senders[ok]] = values[ok]
    return outputs(traces, steps)


def main(argv=None):
    args = parse_args(argv, lambda parser: parser.add_argument(
        "--threads", type=int, default=1, help="NEST threads per process (local_num_threads)"))
    steps = args.steps
    data, batch = samples(args.input, steps)
    results = {name: np.zeros((steps, batch, *spec["shape"])) for name, spec in OUTPUTS.items()}
    for b in range(batch):  # NEST cannot reset a network's state: one fresh kernel per sample
        t0 = time.perf_counter()
        nodes = build({n: x[:, b] for n, x in data.items()}, steps, args.threads)
        t1 = time.perf_counter()
        recorders = simulate(nodes, steps)
        if nest.Rank() == 0:
            print(f"sample {b}: build {t1 - t0:.3f} s, simulate {time.perf_counter() - t1:.3f} s "
                  f"({nest.num_connections} connections)", file=sys.stderr)
        for name, y in collect(nodes, recorders, steps).items():
            results[name][:, b] = y
    if nest.Rank() == 0:
        save(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
