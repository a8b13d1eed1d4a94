"""Run a graph for T steps and save the output spikes (and recorded states) to an .npz."""

from __future__ import annotations

import sys

import numpy as np

from ..errors import N3mlError
from ..io import write_npz
from ..loader import load_model
from ..registry import ENGINES, lookup
from ._inputs import add_input_arguments, check_device, inputs_from_args


def add_arguments(p) -> None:
    p.add_argument("model", metavar="FILE", help="a .n3ml file or any model n3ml reads")
    add_input_arguments(p, steps_required=False)
    p.add_argument("--engine", default="reference", help=f"simulation engine: {', '.join(sorted(ENGINES))}")
    p.add_argument("--device", default="cpu", help="torch device for --engine torch (cpu, cuda, cuda:1)")
    p.add_argument("--dtype", default=None, choices=["float64", "float32"],
                   help="value dtype for --engine torch (default float64, identical to the reference)")
    p.add_argument("--record", default="", help="comma-separated nodes whose outputs and states to record")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="where to save outputs (and recorded states)")
    p.add_argument("--plot", metavar="OUT.png", help="also write a raster/voltage figure")


def run(args) -> int:
    engine = lookup(ENGINES, args.engine, "engine")
    check_device(args.device, args.engine)
    graph = load_model(args.model)
    inputs = inputs_from_args(args, graph, engine=args.engine, device=args.device)
    record = [r for r in args.record.split(",") if r]
    kwargs = {"record": record}
    if args.engine != "reference":
        kwargs["device"] = args.device
        if args.dtype:
            kwargs["dtype"] = args.dtype
    elif args.device != "cpu" or args.dtype:
        raise N3mlError("--device and --dtype apply to --engine torch only")
    bar = None
    if args.engine == "reference" and sys.stderr.isatty():  # the step-by-step interpreter can take a while
        from tqdm import tqdm

        bar = tqdm(total=args.steps, unit="step", desc="simulate", leave=False)
        kwargs["progress"] = lambda done, total: bar.update(done - bar.n)
    try:
        result = engine(graph, inputs, args.steps, **kwargs)
    finally:
        if bar is not None:
            bar.close()
    if args.output:
        write_npz(args.output, result.to_npz_dict())
    for name, arr in result.outputs.items():
        total = float(np.asarray(arr).sum())
        print(f"{name}: shape {tuple(arr.shape)}, sum {total:g}", file=sys.stderr if args.output else sys.stdout)
    if args.plot:
        from ..viz import plot_result

        plot_result(graph, result, args.plot)
    return 0
