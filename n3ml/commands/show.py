"""Print a table of a model's nodes with neurons, synapses, parameters and synaptic operations per step."""

from __future__ import annotations

import json

from ..errors import N3mlError
from ..loader import load_model
from ._inputs import int_option, unit_float, batch_type, check_memory, seed_type


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a .n3ml file or any model n3ml reads")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--rates", metavar="FILE.npz",
                     help="measured activity: an .npz from `n3ml simulate -o` (record the synapses' sources "
                          "with --record) or a backend's output")
    src.add_argument("--simulate", metavar="T", type=int_option("--simulate", 1),
                     help="measure rates by running the reference interpreter for T steps on random input")
    p.add_argument("--rate", type=unit_float("--rate"), default=None,
                   help="spikes per neuron per step assumed where nothing is measured "
                        "(default 0.1 when nothing is measured)")
    p.add_argument("--input-rate", type=unit_float("--input-rate"), default=0.2,
                   help="spike probability of the random input of --simulate (default 0.2)")
    p.add_argument("--batch", type=batch_type, default=1, help="batch size of the random input of --simulate")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random input of --simulate")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args) -> int:
    from ..viz.summary import format_summary, measure_activity, summarize

    graph = load_model(args.model)
    recording, note = None, ""
    if args.rates:
        recording, note = args.rates, f"from {args.rates}"
    elif args.simulate is not None:
        if args.simulate < 1:
            raise N3mlError(f"--simulate needs a number of steps >= 1, found {args.simulate}")
        check_memory(graph, args.simulate, args.batch, random_input=True)
        recording = measure_activity(graph, args.simulate, batch=args.batch, seed=args.seed,
                                     input_rate=args.input_rate)
        note = f"reference interpreter, {args.simulate} steps of random input (rate {args.input_rate:g})"
    s = summarize(graph, recording, rate=args.rate, note=note)
    if args.json:
        print(json.dumps(s.to_dict(), indent=1))
    else:
        print(format_summary(s))
    return 0
