"""The body of the emitted PyNN program (`run.py`); `emit.py` writes the network tables above it,
then the code every emitted program shares (`netlist.INPUT_CODE`, `netlist.PROGRAM_CODE`)."""

BODY = r'''

def import_simulator(name):
    # PyNN 0.13 still calls NEST APIs that NEST 3.10 flags as deprecated; its optional NEST extensions
    # (stochastic synapses) are not needed
    warnings.filterwarnings("ignore", message=r"\s*(.*deprecated|Provided for backward compat|Cannot find nest-config)")
    logging.getLogger("PyNN").setLevel(logging.ERROR)
    sim = importlib.import_module(f"pyNN.{name}")
    if name == "nest" and not hasattr(sim.IF_curr_delta, "variable_map"):
        # PyNN 0.13's NEST IF_curr_delta lacks the map of `v` to NEST's V_m (initial values, recording)
        sim.IF_curr_delta.variable_map = {"v": "V_m"}
    return sim


def build(sim, simulator, sample, steps):
    """Create the network for one input sample {name: (T, *shape)}; return the populations."""
    extra = {"spike_precision": "on_grid"} if simulator == "nest" else {}
    sim.setup(timestep=DT, min_delay=DT, **extra)
    pops = {}
    for name, spec in INPUTS.items():
        x = sample[name].reshape(steps, -1)
        # a spike of IR step t is emitted at time (t + latency) * DT
        times = [sim.Sequence((np.flatnonzero(x[:, i]) + spec["latency"]) * DT) for i in range(x.shape[1])]
        pops[name] = sim.Population(x.shape[1], sim.SpikeSourceArray(spike_times=times), label=name)
    if CLOCK:
        ticks = (np.arange(steps) + CLOCK_LATENCY) * DT
        pops["clock"] = sim.Population(1, sim.SpikeSourceArray(spike_times=ticks), label="clock")
    for name, spec in POPULATIONS.items():
        params = {k: array(v) for k, v in spec["params"].items()}
        if spec["celltype"].startswith("native:"):
            if simulator != "nest":
                sys.exit(f"population {name} uses NEST's {spec['celltype'][7:]}: run with --simulator nest")
            # PyNN 0.13 cannot pass per-neuron arrays to a native cell: those are set through NEST
            arrays = {k: v for k, v in params.items() if np.ndim(v)}
            cell = sim.native_cell_type(spec["celltype"][7:])(**{k: v for k, v in params.items() if not np.ndim(v)})
            pops[name] = sim.Population(spec["size"], cell, label=name)
            pops[name].node_collection.set(V_m=array(spec["v_init"]), **arrays)
        else:
            cell = getattr(sim, spec["celltype"])(**params)
            pops[name] = sim.Population(spec["size"], cell, initial_values={"v": array(spec["v_init"])}, label=name)
    for source, target, delay, receptor, key in PROJECTIONS:
        connections = np.column_stack([WEIGHTS[key + "/pre"], WEIGHTS[key + "/post"], WEIGHTS[key + "/w"]])
        sim.Projection(pops[source], pops[target], sim.FromListConnector(connections, column_names=["weight"]),
                       sim.StaticSynapse(delay=delay * DT), receptor_type=receptor)
    for source, what in recorded().items():
        pops[source].record(what)
    return pops


def collect(pops, steps):
    """Recorded spikes / voltages -> {output: (T, *shape)} in IR time."""
    traces = {}  # population -> (T, size): its spikes or v at IR steps 0..T-1
    for source, what in recorded().items():
        latency = POPULATIONS[source]["latency"] if source in POPULATIONS else INPUTS[source]["latency"]
        pop = pops[source]
        full = np.zeros((steps, pop.size))
        segment = pop.get_data(what).segments[0]
        if what == "spikes":
            for train in segment.spiketrains:
                t = np.rint(np.asarray(train.rescale("ms").magnitude) / DT).astype(int) - latency
                full[t[(t >= 0) & (t < steps)], int(train.annotations["source_index"])] = 1.0
        else:
            signal = segment.analogsignals[0]
            k = np.rint(np.asarray(signal.times.rescale("ms").magnitude) / DT).astype(int) - latency
            ok = (k >= 0) & (k < steps)
            full[k[ok]] = np.asarray(signal.magnitude)[ok]
        traces[source] = full
    return outputs(traces, steps)


def main(argv=None):
    args = parse_args(argv, lambda parser: parser.add_argument(
        "--simulator", choices=["nest", "spiNNaker", "brian2"], default=SIMULATOR,
        help=f"PyNN backend (default {SIMULATOR})"))
    steps = args.steps
    sim = import_simulator(args.simulator)
    data, batch = samples(args.input, steps)
    results = {name: np.zeros((steps, batch, *spec["shape"])) for name, spec in OUTPUTS.items()}
    for b in range(batch):  # one fresh network per sample: state does not carry over
        pops = build(sim, args.simulator, {n: x[:, b] for n, x in data.items()}, steps)
        sim.run((steps + HORIZON + 1) * DT)
        for name, y in collect(pops, steps).items():
            results[name][:, b] = y
        sim.end()
    save(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
