#!/usr/bin/env python3
"""The real models of tests/frontends/corpus.py through `n3ml verify` on the hardware targets: the matrix.

    python scripts/real_models_matrix.py [--models a,b] [--targets nest,pynn,lava,lava-q] [--check-only]

Every model is built and traced as its author wrote it (the corpus: snnTorch, Norse, SpikingJelly), saved
as a .n3ml file and run through `n3ml verify MODEL --targets T --steps T_case --input X` on the input the
corpus feeds it (`pynn` runs on NEST; `lava-q` is Lava after `-p quantize{profile=loihi2,...}`: fixed_pt
against the quantized graph, analog inputs as graded integers round(16 x), readouts' voltages recorded
and compared too). A target that refuses a
model and names an approximating pass (`-p pool-after-neuron` for a max-pool of currents) is run again
with it: the cell then gives the agreement with the graph without the approximation, marked `~`
(`ann-to-snn`, a conversion of ANNs rather than an approximation of a spiking model, is never run: the
cell is the plain refusal).
A cell is the lowest agreement over the model's outputs, or `refused:` and the first line of the
reason. --check-only legalizes and checks without running a simulator (seconds per model). Exit 1
when a target that accepts a model exactly does not reproduce it 100%.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INPUT_SCALE = 16  # analog inputs in [0, 1) become graded integers 0..16 under quantize
QUANTIZE = f"quantize{{profile=loihi2,input_scale={INPUT_SCALE},readout=voltage}}"
REMEDY = re.compile(r"`-p ([a-z0-9-]+)` would legalize it \(approximation")
# remedies that are not approximations of a spiking model: ann-to-snn converts an ANN's activations into
# neurons; run on a graph that is already spiking it fails ("is already spiking"), so such a cell shows the
# target's plain refusal instead
CONVERSIONS = frozenset({"ann-to-snn"})


def readouts(graph) -> list[str]:
    """The readout neurons Outputs read: quantized (readout=voltage) they never fire, so their voltages are
    compared (`--record`), bit for bit in fixed point; an Output of a synapse value gets the readout
    `<synapse>_value` from quantize."""
    from n3ml.ir import prims as P

    srcs = [graph.inputs_of(o)[0] for o in graph.output_names]
    values = [f"{s}_value" for s in srcs if isinstance(graph.nodes[s], (P.Dense, P.Conv2d, P.AvgPool2d, P.Add))]
    return [s for s in srcs if isinstance(graph.nodes[s], P.Neuron) and not graph.nodes[s].spiking] + values


def verify(model: Path, target: str, steps: int, x_path: Path, pipeline: str = "",
           record: list[str] = ()) -> tuple[str, str]:
    """(cell, output) of one `n3ml verify` run."""
    from n3ml.cli import main

    name = "lava" if target == "lava-q" else target
    argv = ["verify", str(model), "--targets", name, "--steps", str(steps), "--input", str(x_path)]
    argv += [a for n in record for a in ("--record", n)]
    if target == "pynn":
        argv += ["-O", "pynn.simulator=nest"]
    if pipeline:
        argv += ["-p", pipeline]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    text = out.getvalue()
    refused = re.search(rf"^{name}: refused: (.*)$", text, re.M) or re.search(r"^(?:n3ml verify: )?error: (.*)$", text, re.M)
    if refused:
        return "refused: " + refused.group(1), text
    rows = re.findall(rf"^{name}\s+\S+\s+(spike|analog)\s+([\d.]+)%", text, re.M)
    if not rows:
        return f"error (exit {rc})", text
    return f"{min(float(a) for _, a in rows):.2f}%", text


def check_only(graph, target: str, pipeline: str) -> str:
    from n3ml.errors import N3mlError
    from n3ml.passes import PassManager, parse_pipeline
    from n3ml.passes.legalize import legalize_for
    from n3ml.registry import TARGETS, lookup

    t = lookup(TARGETS, "lava" if target == "lava-q" else target, "target")()
    try:
        g = PassManager(parse_pipeline(pipeline)).run(graph, {}) if pipeline else graph
        g = legalize_for(t, g, say=None)
        t.check(g, {"simulator": "nest"} if target == "pynn" else None)
    except N3mlError as e:
        return "refused: " + str(e).splitlines()[0]
    return "accepted"


def cell_for(case, graph, model: Path, target: str, work: Path, feed: dict, args) -> str:
    """One cell: the exact run, or the approximation the refusal names (marked ~)."""
    x_path = work / f"{case.name}-{target}.npz"
    data = {k: np.round(v * INPUT_SCALE) if target == "lava-q" and graph.nodes[k].kind != "spike" else v
            for k, v in feed.items()}
    np.savez(x_path, **data)
    base = QUANTIZE if target == "lava-q" else ""
    def run(p: str) -> str:
        if args.check_only:
            return check_only(graph, target, p)
        cell, text = verify(model, target, case.steps, x_path, p, readouts(graph) if target == "lava-q" else ())
        if args.verbose and cell.startswith("error"):
            print(f"--- {case.name} {target} -p {p!r}:\n{text[-2500:]}", file=sys.stderr)
        return cell

    # the target's own refusal of the graph as it is names the approximation, if one applies (also under
    # quantize, which refuses such a graph before legalization could name it)
    m = REMEDY.search(check_only(graph, "lava" if target == "lava-q" else target, ""))
    if not m or m.group(1) in CONVERSIONS:
        return run(base)
    approx = run(",".join(filter(None, [m.group(1), base])))
    return f"~{approx} (`-p {m.group(1)}`)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated corpus names (default: all)")
    ap.add_argument("--targets", default="nest,pynn,lava,lava-q")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print the verify output of cells that end in an error")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    from n3ml.frontends.torch import trace
    from n3ml.ir.text import save
    from tests.frontends import corpus

    targets = args.targets.split(",")
    wanted = set(filter(None, args.models.split(",")))
    bad = 0
    print("| model | " + " | ".join(targets) + " |")
    print("|---" * (len(targets) + 1) + "|", flush=True)
    with tempfile.TemporaryDirectory(prefix="n3ml-real-") as tmp:
        work = Path(tmp)
        for case in corpus.CASES:
            if wanted and case.name not in wanted:
                continue
            dtype = torch.float32 if case.f32_only else torch.float64
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                model = case.model(dtype)
                graph = trace(model, case.input_shape)
            path = save(graph, work / f"{case.name}.n3ml")
            feed = case.graph_input(graph, case.make_input(dtype))
            cells = []
            for t in targets:
                cell = cell_for(case, graph, path, t, work, feed, args)
                bad += cell.endswith("%") and not cell.startswith("~") and cell != "100.00%" or cell.startswith("error")
                cells.append(cell if len(cell) < 160 else cell[:157] + "...")
            print(f"| {case.name} | " + " | ".join(cells) + " |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
