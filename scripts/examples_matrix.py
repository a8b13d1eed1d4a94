#!/usr/bin/env python3
"""Verify every example model under examples/ on every target, with no -p: the matrix of agreements.

    python scripts/examples_matrix.py [--steps 20] [--targets nest,pynn,lava,ir] [--check-only]

Each model goes through `n3ml verify MODEL --targets T --steps S` (the target's legalization runs on
its own); a cell is the lowest agreement over the model's outputs, or `refused` with the first line of
the reason. --check-only legalizes and checks without running the simulators (seconds). Exit status 1
when a target that accepts a model does not reproduce it 100%.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the example models a user would convert (sidecar .npz files and data are not models)
MODELS = sorted([*ROOT.glob("examples/graphs/*.n3ml"), ROOT / "examples/digits/digits_snn.n3ml",
                 ROOT / "examples/digits/digits_snn.pt2", *ROOT.glob("examples/ann_to_snn/*.onnx")])


def check_only(model: Path, target: str) -> str:
    from n3ml.errors import N3mlError
    from n3ml.loader import load_model
    from n3ml.passes.legalize import legalize_for
    from n3ml.registry import TARGETS, lookup

    t = lookup(TARGETS, target, "target")()
    try:
        g = legalize_for(t, load_model(str(model)), say=None)
        t.check(g, getattr(t, "verify_options", None))
    except N3mlError as e:
        return "refused: " + str(e).splitlines()[0]
    return "accepted"


def verify(model: Path, target: str, steps: int) -> str:
    from n3ml.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["verify", str(model), "--targets", target, "--steps", str(steps), "--batch", "2"])
    text = out.getvalue()
    refused = re.search(rf"^{re.escape(target)}: refused: (.*)$", text, re.M)
    if refused:
        return "refused: " + refused.group(1)
    rows = re.findall(rf"^{re.escape(target)}\s+\S+\s+(spike|analog)\s+([\d.]+)%", text, re.M)
    if not rows:
        return f"error (exit {rc})"
    return f"{min(float(a) for _, a in rows):.2f}%"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--targets", default="nest,pynn,lava,ir")
    ap.add_argument("--check-only", action="store_true")
    args = ap.parse_args(argv)
    targets = args.targets.split(",")
    bad = 0
    print("| model | " + " | ".join(targets) + " |")
    print("|---" * (len(targets) + 1) + "|")
    for model in MODELS:
        cells = []
        for t in targets:
            cell = check_only(model, t) if args.check_only else verify(model, t, args.steps)
            bad += cell.endswith("%") and cell != "100.00%" or cell.startswith("error")
            cells.append(cell if len(cell) < 120 else cell[:117] + "...")
        print(f"| {model.relative_to(ROOT)} | " + " | ".join(cells) + " |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
