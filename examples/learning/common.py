"""Shared plumbing of the learning examples: progress display and learning-curve figures.

On a terminal a tqdm bar shows the running accuracy; when the output goes to a file (a
log), the bar is off and the scripts print one line per epoch instead of hundreds of
redrawn bars.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "learning"


def interactive() -> bool:
    return sys.stderr.isatty()


def bar(total: int, desc: str):
    """A tqdm bar on a terminal, a silent stand-in otherwise (same update/set_postfix/close)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=not interactive())


def setup(seed: int) -> None:
    """One torch thread (the examples are measured on a shared 2-core machine) and fixed seeds."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)


def plot_curve(path: Path, title: str, series: dict[str, list[float]], *, xlabel: str = "epoch",
               ylabel: str = "accuracy (%)", paper: float | None = None, goal: float | None = None) -> Path:
    """Write a learning curve PNG: one line per series (values in %, or (xs, ys)), optional paper/goal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, ys in series.items():
        xs, ys = ys if isinstance(ys, tuple) else (list(range(1, len(ys) + 1)), ys)
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    if paper is not None:
        ax.axhline(paper, color="grey", ls="--", lw=1, label=f"paper {paper:g}% (full data)")
    if goal is not None:
        ax.axhline(goal, color="red", ls=":", lw=1, label=f"goal {goal:g}%")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"learning curve: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def save_for_verify(graph, name: str, inputs: dict, steps: int, *, targets: str = "nest") -> str:
    """Write the trained network's graph and test input under out/learning/ for `n3ml verify`.

    Returns (and prints) the command that runs the graph on `targets` (NEST by default) and
    compares its spikes with the executor's.
    """
    from n3ml.io import write_npz
    from n3ml.ir.text import save

    out = ROOT / "out" / "learning"
    out.mkdir(parents=True, exist_ok=True)
    save(graph, out / f"{name}.n3ml")
    write_npz(out / f"{name}_input.npz", {k: v for k, v in inputs.items()})
    cmd = (f"n3ml verify out/learning/{name}.n3ml --targets {targets} --steps {steps} "
           f"--input out/learning/{name}_input.npz")
    print(f"graph for the simulators: {cmd}")
    return cmd
