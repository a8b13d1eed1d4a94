"""Conformance harness shared by all code-generating targets: run an emitted program in its own process
and compare its outputs with the executor's, output node by output node.

Metrics (docs/backends/nest.md, "Verification"):
* spike outputs: `agreement` = spikes present in both / spikes present in either (Jaccard over all
  (step, sample, neuron) events; 1 when both are silent); `count_agreement` = 1 - sum |c_ref - c| /
  sum max(c_ref, c) over per-neuron, per-sample spike counts; `count_corr` = Pearson correlation of those
  counts; `first_divergence` = first step at which the trains differ.
* analog outputs (LI / Integrator voltages): `agreement` = fraction of values equal within
  `atol + rtol |ref|`, `max_error` the largest absolute difference.
"""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import N3mlError

ATOL = 1e-9
RTOL = 1e-9


@dataclass
class Comparison:
    output: str
    kind: str  # "spike" or "analog"
    agreement: float
    count_agreement: float | None
    count_corr: float | None
    first_divergence: int | None
    n_ref: float  # spikes (or values) in the reference
    n_got: float
    max_error: float


def run_program(argv: list[str], input_path: Path, steps: int, out_path: Path, *,
                timeout: float | None = None, env: dict | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Run an emitted program: `argv + --input X --steps T -o OUT`; return its outputs and wall time (s)."""
    cmd = [*argv, "--input", str(input_path), "--steps", str(steps), "-o", str(out_path)]
    full_env = {**os.environ, "PYNEST_QUIET": "1", **(env or {})}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        raise N3mlError(f"`{' '.join(cmd)}` did not finish within {timeout} s") from None
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise N3mlError(f"`{' '.join(cmd)}` failed with exit status {proc.returncode}:\n{tail}")
    try:
        with np.load(out_path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, elapsed
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise N3mlError(f"{out_path}: the program wrote no readable .npz ({e})") from None


def compare(name: str, ref: np.ndarray, got: np.ndarray, kind: str) -> Comparison:
    """Compare one output (T, B, *shape) of the reference with a target's."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        raise N3mlError(f"output `{name}`: the target produced shape {got.shape}, the reference {ref.shape}")
    T = ref.shape[0]
    if kind == "spike":
        r, g = ref != 0, got != 0
        both, either = np.sum(r & g), np.sum(r | g)
        agreement = 1.0 if either == 0 else float(both / either)
        cr = r.reshape(T, -1).sum(axis=0)
        cg = g.reshape(T, -1).sum(axis=0)
        denom = np.maximum(cr, cg).sum()
        count_agreement = 1.0 if denom == 0 else float(1.0 - np.abs(cr - cg).sum() / denom)
        diff_steps = np.flatnonzero((r != g).reshape(T, -1).any(axis=1))
        return Comparison(name, kind, agreement, count_agreement, _corr(cr, cg),
                          int(diff_steps[0]) if diff_steps.size else None, float(r.sum()), float(g.sum()),
                          float(np.abs(ref - got).max(initial=0.0)))
    close = np.abs(ref - got) <= ATOL + RTOL * np.abs(ref)
    diff_steps = np.flatnonzero(~close.reshape(T, -1).all(axis=1))
    return Comparison(name, kind, float(close.mean()) if close.size else 1.0, None,
                      _corr(ref.ravel(), got.ravel()), int(diff_steps[0]) if diff_steps.size else None,
                      float(ref.size), float(got.size), float(np.abs(ref - got).max(initial=0.0)))


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2:
        return None
    if np.array_equal(a, b):
        return 1.0
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def format_table(rows: list[tuple[str, Comparison]]) -> str:
    """One line per (target, output): the figures `n3ml verify` prints."""
    head = ("target", "output", "kind", "agreement", "count agr.", "count corr.", "first div.", "ref / target",
            "max |err|")
    lines = [head]
    for target, c in rows:
        def pct(x):
            return "-" if x is None else f"{100 * x:.2f}%"
        counts = f"{c.n_ref:g} / {c.n_got:g}" if c.kind == "spike" else f"{c.n_ref:g} values"
        lines.append((target, c.output, c.kind, pct(c.agreement), pct(c.count_agreement),
                      "-" if c.count_corr is None else f"{c.count_corr:.4f}",
                      "-" if c.first_divergence is None else str(c.first_divergence), counts, f"{c.max_error:.3g}"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip() for r in lines)
