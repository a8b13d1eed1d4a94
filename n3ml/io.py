"""Arrays in and out of `.npz` files (the common layout of docs/semantics.md §8), and default inputs."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import N3mlError
from .ir import Graph


def read_npz(path: str | os.PathLike, what: str = ".npz file") -> dict[str, np.ndarray]:
    """All arrays of an .npz (never unpickling objects); a clear N3mlError for a missing or corrupt file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise N3mlError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise N3mlError(f"{path}: not a readable {what} ({e})") from None


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a half-written file never appears under `path`."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, p)


def random_inputs(graph: Graph, steps: int, batch: int = 1, seed: int = 0, rate: float = 0.2) -> dict[str, np.ndarray]:
    """The default input of `simulate`/`verify`/`show`: Bernoulli(rate) spikes, or U[0,1) analog values,
    from numpy PCG64(seed), one array (steps, batch, *shape) per Input node."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in graph.input_names:
        prim = graph.nodes[n]
        shape = (steps, batch, *prim.shape)
        out[n] = (rng.random(shape) < rate).astype(np.float64) if prim.kind == "spike" else rng.random(shape)
    return out
