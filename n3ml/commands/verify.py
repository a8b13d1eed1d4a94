"""Convert a model for each target, run the emitted programs, and compare them with the executor.

    n3ml verify MODEL --targets nest,pynn --steps T [--input X.npz] [--batch B] [--seed S] [--min-agreement 1.0]
    n3ml verify MODEL -p "quantize{profile=loihi2,input_scale=16,readout=voltage}" --targets lava --steps T \
        --input X.npz --record readout

Every target runs in its own process (the program its `run_argv` names) on the same input; the table
gives, per target and output node, the spike-train agreement (identical spikes / spikes in either),
the spike-count agreement and correlation, and the first step at which the outputs diverge; -p runs a
pass pipeline on the model first (as `n3ml convert -p`), and --record NODE also compares NODE's states
(`state/NODE.v`, ...) for targets whose program takes --record (lava). The exit
status is 1 when an agreement is below --min-agreement or a target refuses the graph.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..backends.conformance import compare, format_table, run_program
from ..errors import N3mlError, UnsupportedError
from ..loader import load_model
from ..passes.legalize import legalize_for
from ..registry import ENGINES, TARGETS, lookup
from ._inputs import add_input_arguments, inputs_from_args, positive_float
from ..io import write_npz

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a .n3ml file or any model n3ml reads")
    p.add_argument("--targets", required=True, help=f"comma-separated targets ({', '.join(sorted(TARGETS))})")
    add_input_arguments(p)
    p.add_argument("--min-agreement", type=float, default=1.0,
                   help="fail below this spike-train agreement (0..1, default 1.0: identical)")
    p.add_argument("--engine", default=None,
                   help="reference engine (default: torch if available, else the reference interpreter)")
    p.add_argument("-O", "--target-option", action="append", default=[], metavar="TARGET.KEY=VALUE",
                   help="option passed to a target's emitter, e.g. pynn.simulator=nest (repeatable)")
    p.add_argument("--keep", metavar="DIR", help="keep the emitted programs and outputs under DIR/<target>")
    p.add_argument("--timeout", type=positive_float("--timeout"), default=600.0, help="seconds allowed to each program (default 600)")
    p.add_argument("-p", "--pipeline", default="", help="passes to run on the model before converting it, e.g. "
                   "'quantize{profile=loihi2,input_scale=16,readout=voltage}'")
    p.add_argument("--record", action="append", default=[], metavar="NODE",
                   help="also compare NODE's recorded states (programs that take --record, e.g. lava; repeatable)")
    p.add_argument("--nir-convention", help="whose reading of a .nir MODEL (docs/nir.md)")
    p.add_argument("--dt", type=float, help="time step in ms of a .nir MODEL")


def parse_target_options(items: list[str], targets: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {t: {} for t in targets}
    for item in items:
        key, eq, value = item.partition("=")
        target, dot, opt = key.partition(".")
        if not eq or not dot or not opt:
            raise N3mlError(f"--target-option expects TARGET.KEY=VALUE, found {item!r}")
        if target not in out:
            raise N3mlError(f"--target-option {item!r} names target {target!r}, which is not in --targets")
        out[target][opt] = value
    return out


def reference_engine(name: str | None):
    if name is not None:
        return name, lookup(ENGINES, name, "engine")
    if "torch" in ENGINES:
        try:
            return "torch", lookup(ENGINES, "torch", "engine")
        except N3mlError as e:  # torch missing: the interpreter is the same ground truth, only slower
            log.info("torch engine unavailable (%s); using the reference interpreter", e)
    return "reference", lookup(ENGINES, "reference", "engine")


def _targets(args) -> tuple[dict, dict]:
    """The targets named by --targets and their -O options, refused before anything runs."""
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not names:
        raise N3mlError("--targets names no target")
    targets = {n: lookup(TARGETS, n, "target")() for n in names}
    no_record = [n for n, t in targets.items() if not getattr(t, "records_states", False)]
    if args.record and no_record:  # refuse before anything runs, not after a program rejects the flag
        raise N3mlError(f"--record needs targets whose programs save neuron states (such as lava); "
                        f"not: {', '.join(no_record)}")
    return targets, parse_target_options(args.target_option, names)


def _pipeline(args, graph):
    """(graph to emit, graph the reference runs, pass report). An approximating pass is left out of the
    reference, so that the agreement measures the approximation."""
    if not args.pipeline.strip():
        return graph, graph, {}
    from ..passes import PassManager, parse_pipeline
    from ._engines import pass_context

    report: dict = {}
    passes = parse_pipeline(args.pipeline)
    exact = [p for p in passes if not getattr(p, "approximate", False)]
    ref_graph = None
    if len(exact) < len(passes):
        approx = ", ".join(p.name for p in passes if p not in exact)
        try:
            ref_graph = PassManager(exact).run(graph, {"steps": args.steps, "report": {}, **pass_context()})
            print(f"reference: the graph without {approx} (the agreement below measures the approximation)")
        except N3mlError as e:  # e.g. quantize refuses the graph without the approximation that makes it legal
            print(f"reference: the graph after the whole pipeline (without {approx} the pipeline fails: "
                  f"{str(e).splitlines()[0]}); the agreement below is the target's fidelity, not the approximation's")
    graph = PassManager(passes).run(graph, {"steps": args.steps, "report": report, **pass_context()})
    return graph, graph if ref_graph is None else ref_graph, report


def _check_quantized_inputs(args, inputs: dict, report: dict) -> None:
    scale = report.get("quantize", {}).get("input_scale")
    for k, v in inputs.items() if scale else ():
        if not np.array_equal(v, np.round(v)):  # a float 0..1 would be truncated to 0 in integer arithmetic
            raise N3mlError(f"{args.input or 'the random input'}: `{k}` holds non-integer values; the pipeline "
                            f"quantized analog inputs with input_scale={scale:g}, so give round({scale:g} * x)")


def _compare_target(args, name: str, ref, got: dict, types: dict, rows: list, failed: list) -> None:
    """Every output (and every recorded state) of one target's run against the reference."""
    pairs = []
    for out_name, y in ref.outputs.items():
        if out_name not in got:
            raise N3mlError(f"target {name}: the program saved no array `{out_name}`; found {sorted(got)}")
        pairs.append((out_name, y, got[out_name], types[out_name].kind))
    for key, y in ref.states.items():
        if "." not in key:  # the recorded node's output; programs save only its states (node.v, ...)
            continue
        if f"state/{key}" not in got:
            raise N3mlError(f"target {name}: the program saved no `state/{key}` (--record); found {sorted(got)}")
        pairs.append((f"state/{key}", y, got[f"state/{key}"], "analog"))
    for label, y, z, kind in pairs:
        c = compare(label, y, z, kind)
        rows.append((name, c))
        if c.agreement < args.min_agreement:
            failed.append(name)


def _run_target(args, name: str, target, graph, opts: dict, work: Path, x_path: Path) -> dict | None:
    """Legalize, check, emit and run one target; None (after saying why) when the target refuses the graph."""
    try:
        tgraph = legalize_for(target, graph, say=lambda line: print(f"{name}: {line}"))
        target.check(tgraph, opts or None)
    except UnsupportedError as e:
        print(f"{name}: refused: {e}")
        return None
    out_dir = work / name
    if out_dir.exists() and any(out_dir.iterdir()):
        raise N3mlError(f"{out_dir} exists and is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    target.emit(tgraph, out_dir, steps=args.steps, options=opts or None)
    t_emit = time.perf_counter() - t0
    record = [a for n in args.record for a in ("--record", n)]
    got, t_run = run_program(target.run_argv(out_dir) + record, x_path, args.steps, work / f"{name}-out.npz",
                             timeout=args.timeout)
    print(f"{name}: emitted in {t_emit:.2f} s, ran in {t_run:.2f} s ({out_dir if args.keep else 'temp'})")
    return got


def run(args) -> int:
    if args.steps < 1:
        raise N3mlError(f"--steps must be >= 1, found {args.steps}")
    if not 0.0 <= args.min_agreement <= 1.0:
        raise N3mlError(f"--min-agreement must lie in [0, 1], found {args.min_agreement}")
    targets, options = _targets(args)
    nir_opts = {k: v for k, v in (("dt", args.dt), ("nir_convention", args.nir_convention)) if v is not None}
    if nir_opts and Path(args.model).suffix.lower() != ".nir":
        raise N3mlError("--dt and --nir-convention apply to .nir models")
    graph, ref_graph, report = _pipeline(args, load_model(args.model, **nir_opts))
    engine_name, engine = reference_engine(args.engine)
    inputs = inputs_from_args(args, graph, engine=engine_name)
    _check_quantized_inputs(args, inputs, report)
    t0 = time.perf_counter()
    ref = engine(ref_graph, inputs, args.steps, record=args.record)
    print(f"reference: {engine_name} engine, {args.steps} steps, batch "
          f"{next(iter(ref.outputs.values())).shape[1] if ref.outputs else 0}, "
          f"{time.perf_counter() - t0:.2f} s")
    types = graph.verify()
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="n3ml-verify-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        x_path = work / "input.npz"
        write_npz(str(x_path), {k: v[: args.steps] for k, v in inputs.items()})
        for name, target in targets.items():
            opts = {**getattr(target, "verify_options", {}), **options[name]}
            got = _run_target(args, name, target, graph, opts, work, x_path)
            if got is None:
                failed.append(name)
            else:
                _compare_target(args, name, ref, got, types, rows, failed)
    if rows:
        print(format_table(rows))
    if failed:
        print(f"FAILED: {', '.join(dict.fromkeys(failed))} below agreement {args.min_agreement:g} or refused",
              file=sys.stderr)
        return 1
    return 0
