"""Hypothesis fuzzing of the .n3ml text format: token-level mutations of every example graph.

A mutant must be refused with one located message (exit 1) or accepted; an accepted one must simulate and
survive the fmt round trip (harness.roundtrip). Derandomized with a fixed seed: CI sees the same cases on
every run; N3ML_FUZZ_BUDGET raises the number of examples (`make fuzz`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from .files import GRAPHS
from .harness import Tally, budget, roundtrip, run_cli
from .mutate import HOSTILE_TOKENS, VALUES, tokens, value_positions

# "value" swaps the value of a `key=value` for another well-formed one: those mutants parse, so they test
# the verifier, the printer (round trip) and the engines rather than the parser's syntax errors
EDITS = ("value", "value", "value", "delete", "insert", "replace", "duplicate", "swap")
TALLY = Tally()  # outcome counts over every example run in this process (printed by `make fuzz`)


@st.composite
def mutants(draw) -> tuple[Path, str, list]:
    src = draw(st.sampled_from(GRAPHS))
    toks = tokens(src.read_text(encoding="utf-8"))
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(EDITS))
        pos = draw(st.integers(0, 10 ** 6))
        tok = draw(st.sampled_from(VALUES) if op == "value" else
                   st.one_of(st.sampled_from(HOSTILE_TOKENS), st.sampled_from(toks), st.text(min_size=1, max_size=4)))
        edits.append((pos, op, tok))
    for i, op, tok in edits:
        values = value_positions(toks)
        if op == "value" and values:
            toks[values[i % len(values)]] = tok
            continue
        i %= len(toks)
        if op == "delete" and len(toks) > 1:
            del toks[i]
        elif op == "insert":
            toks.insert(i, tok)
        elif op in ("replace", "value"):
            toks[i] = tok
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap":
            j = (i * 7 + 3) % len(toks)
            toks[i], toks[j] = toks[j], toks[i]
    return src, "".join(toks), edits


@seed(20261201)
@settings(max_examples=budget(150), deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(mutants())
def test_mutated_text_never_tracebacks(case):
    src, text, edits = case
    d = Path(tempfile.mkdtemp(prefix="n3ml-fuzz-"))
    try:
        side = src.with_suffix(".npz")
        if side.exists():
            shutil.copy(side, d / side.name)
        path = d / src.name
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        out = run_cli(["check", str(path)])
        TALLY.add("text", out, f"{src.name} mutated by {edits!r}", {src.name: path.read_bytes()})
        assert not out.failed, f"check of {src.name} mutated by {edits}: {out.kind}: {out.detail}"
        if out.kind == "ok":
            rt = roundtrip(path)
            if rt is not None:
                TALLY.add("text-roundtrip", rt, f"{src.name} mutated by {edits!r}", {src.name: path.read_bytes()})
            assert rt is None, f"{src.name} mutated by {edits}: {rt.detail}"
            sim = run_cli(["simulate", str(path), "--steps", "2"])
            assert not sim.failed, f"simulate of {src.name} mutated by {edits}: {sim.kind}: {sim.detail}"
    finally:
        shutil.rmtree(d, ignore_errors=True)
