"""Convert a model (PyTorch, ONNX, .n3ml) for a target, optionally through a pass pipeline.

    n3ml convert MODEL --target ir -o OUT/ [--input-shape 1,28,28] [-p PIPELINE] [--force]

The output is written into a temporary directory next to OUT and renamed into
place once complete: on any error no OUT is left behind, and an existing OUT is
replaced only with --force, in one atomic swap. One run at a time writes an OUT
(a lock beside it); see n3ml/outdir.py.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import N3mlError
from ..backends.target_options import check_keys
from ..ir import Graph
from ..ir import prims as P
from ..loader import load_model
from ..outdir import OutputDir
from ..passes.legalize import legalize_for
from ..registry import TARGETS, lookup
from ._inputs import add_input_kind_argument


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a .n3ml, .onnx, .pt2, TorchScript (.ts/.pt) or state_dict "
                   "(.pt/.pth with --model) file")
    p.add_argument("--target", "-t", required=True, help=f"target: {', '.join(sorted(TARGETS))}")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory (must not exist unless "
                   "--force)")
    p.add_argument("--input-shape", metavar="SHAPE", help="per-sample input shape without batch/time, e.g. 1,28,28")
    add_input_kind_argument(p)
    p.add_argument("--dt", type=float, help="time step of the graph in ms (default: from the model, else 1.0)")
    p.add_argument("--nir-convention", help="whose reading of a .nir MODEL: exact, euler, snntorch, norse, sinabs, spyx, rockpool (docs/nir.md)")
    p.add_argument("--steps", "-T", type=int, help="number of time steps (for the passes and the emitted program)")
    p.add_argument("-p", "--pipeline", default="", help="passes to run, e.g. 'ann-to-snn,quantize{profile=loihi2}'")
    p.add_argument("--calibration", metavar="X.npz", help="calibration inputs for the passes (arrays by input name)")
    p.add_argument("--report", metavar="REPORT.json", help="write the passes' report as JSON")
    p.add_argument("--calibration-batch", type=int, default=0, metavar="B",
                   help="samples per batch for calibration and the report (default: as many as fit 512 MiB)")
    p.add_argument("--device", default="", help="device of the torch executor for the passes (cpu, cuda, cuda:1)")
    p.add_argument("--weights-dtype", choices=WEIGHT_DTYPES, default="source",
                   help="dtype of the stored synapse weights: source (default: float32 when every weight of "
                        "MODEL is float32, as the passes' float64 results rounded once), float32 or float64")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("--model", dest="model_class", metavar="package.module:ClassName",
                   help="the model class of a state_dict file")
    p.add_argument("--model-args", metavar="JSON", help="keyword arguments of --model's class, as a JSON object")
    p.add_argument("--unsafe-allow-pickle", action="store_true",
                   help="allow loading a fully pickled module (runs code from the file: only for trusted files)")
    p.add_argument("--target-option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="option for the target's emitter (repeatable)")


WEIGHT_DTYPES = ("source", "float32", "float64")
_WEIGHTS = (P.Dense, P.Conv1d, P.Conv2d)


def source_weight_dtype(graph: Graph) -> np.dtype | None:
    """float32 if every floating synapse weight of `graph` is float32 (a float32 model), else None."""
    dts = {np.asarray(a).dtype for p in graph.nodes.values() if isinstance(p, _WEIGHTS)
           for a in (p.weight, p.bias) if a is not None and np.asarray(a).dtype.kind == "f"}
    return np.dtype(np.float32) if dts == {np.dtype(np.float32)} else None


def store_weights(graph: Graph, dtype: np.dtype | None) -> Graph:
    """`graph` with its floating synapse weights and biases in `dtype` (None: unchanged). Passes compute
    in float64 (folding, rescaling); the result is rounded once here, and every engine and target then
    computes on exactly these stored values."""
    if dtype is None:
        return graph
    g = graph.copy()
    for n, p in graph.nodes.items():
        if not isinstance(p, _WEIGHTS):
            continue
        changes = {k: np.asarray(a).astype(dtype) for k, a in (("weight", p.weight), ("bias", p.bias))
                   if a is not None and np.asarray(a).dtype.kind == "f" and np.asarray(a).dtype != dtype}
        if changes:
            g.replace(n, **changes)
    return g


def parse_options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", key):
            raise N3mlError(f"--target-option expects KEY=VALUE with a KEY of letters, digits and _, found {item!r}")
        if key in out:
            raise N3mlError(f"--target-option {key} is given twice ({out[key]!r} and {value.strip()!r})")
        out[key] = value.strip()
    return out


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """'1,28,28' (or '1x28x28') -> (1, 28, 28)."""
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise N3mlError(f"--input-shape must be positive sizes separated by commas, like 1,28,28; found {text!r}")
    return shape


def load_any(args) -> Any:
    """Load MODEL with the options its loader takes (a .n3ml file takes none)."""
    suffix = Path(args.model).suffix.lower()
    options: dict[str, Any] = {}
    if suffix != ".n3ml":
        options = {"input_shape": parse_shape(args.input_shape), "dt": args.dt, "steps": args.steps, "model": args.model_class,
                   "model_args": args.model_args, "unsafe_allow_pickle": args.unsafe_allow_pickle,
                   "input_kind": args.input_kind, "nir_convention": args.nir_convention}
        options = {k: v for k, v in options.items() if v not in (None, False)}
    elif args.input_shape or args.model_class or args.model_args or args.input_kind:
        raise N3mlError(f"{args.model}: --input-shape, --input-kind, --model and --model-args apply to PyTorch/ONNX models, not "
                        ".n3ml files")
    return load_model(args.model, **options)


def _calibration(path: str | None) -> dict[str, np.ndarray] | None:
    if not path:
        return None
    from ..io import read_npz

    return read_npz(path)


def run(args) -> int:
    if args.steps is not None and args.steps < 1:
        raise N3mlError(f"--steps must be >= 1, found {args.steps}")
    if args.calibration_batch < 0:
        raise N3mlError(f"--calibration-batch must be >= 1 (or 0: automatic), found {args.calibration_batch}")
    target = lookup(TARGETS, args.target, "target")()
    options = check_keys(target, parse_options(args.target_option))  # a typo fails before the model loads
    keep = (args.model, args.calibration, args.report)  # --force must not delete these with the old OUT
    with OutputDir(Path(args.output), force=args.force, keep=keep) as tmp:  # locked: one writer per OUT
        from ..passes.base import Progress

        with Progress(f"load {Path(args.model).name}"):
            graph = load_any(args)
        wdt = {"source": source_weight_dtype(graph), "float32": np.dtype(np.float32),
               "float64": np.dtype(np.float64)}[args.weights_dtype]
        if args.dt is not None and Path(args.model).suffix.lower() == ".n3ml" and args.dt != graph.dt:
            raise N3mlError(f"{args.model} has dt={graph.dt:g} ms; --dt {args.dt:g} cannot change it (the time "
                            "constants are in ms)")
        report: dict[str, Any] = {}
        if args.pipeline.strip():
            from ..passes import PassManager

            from ._engines import pass_context

            context = {"calibration": _calibration(args.calibration), "steps": args.steps, "report": report,
                       "calibration_batch": args.calibration_batch, "report_batch": args.calibration_batch,
                       **pass_context()}
            if args.device:
                torch_engine = context["engines"].get("torch")
                if torch_engine is None:
                    raise N3mlError("--device needs the torch engine, which is not registered here")
                context["engines"]["torch"] = torch_engine._replace(options={**torch_engine.options,
                                                                             "device": args.device})
                context["engine"] = "torch"
            graph = PassManager.from_string(args.pipeline).run(graph, context)
        elif args.calibration:
            raise N3mlError("--calibration is used by passes; give a pipeline with -p")
        graph = legalize_for(target, graph)  # the target's canonical passes, after -p (docs/targets.md)
        graph = store_weights(graph, wdt)
        target.check(graph, options or None)
        with Progress(f"emit {args.target}"):
            target.emit(graph, tmp, steps=args.steps, options=options or None)
        if args.report:
            _write_report(args.report, report)
    n_nodes = len(graph.nodes)
    print(f"wrote {args.output} ({args.target}: {n_nodes} nodes, dt={graph.dt:g} ms, scheme={graph.scheme})")
    return 0


def _write_report(path: str, report: dict[str, Any]) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    # strict JSON: NaN/inf (a layer that never fires, a constant activation) become null, not `NaN`
    tmp.write_text(json.dumps(_finite(report), indent=2, default=_jsonable, allow_nan=False) + "\n",
                   encoding="utf-8")
    tmp.replace(p)


def _finite(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_finite(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return str(v)
