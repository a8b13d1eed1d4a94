"""Arrays in and out of `.npz` files (the common layout of docs/semantics.md §8), and default inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import N3mlError
from .ir import Graph
from .ir.sidecar import Sidecar, SidecarError


def read_npz(path: str | os.PathLike, what: str = ".npz file") -> dict[str, np.ndarray]:
    """All arrays of an .npz, read as the weights sidecar is (`n3ml.ir.sidecar`): regular files only
    (a FIFO would block forever), nothing unpickled, each array's header checked against the bytes
    the archive holds and against the memory available before it is read.

    Numeric arrays come back in native byte order (big-endian ones are converted exactly); other
    dtypes are returned as they are for the caller to judge; object arrays are refused.
    Raises N3mlError with the file name and the reason.
    """
    try:
        with Sidecar(path, convert=_native) as z:
            return {k: z[k] for k in z.array_keys()}
    except SidecarError as e:
        reason = str(e)
        if reason == "does not exist":
            raise N3mlError(f"{path}: no such file") from None
        if reason.startswith(("is ", "does ", "cannot ")):  # about the file itself
            reason = "it " + reason
        raise N3mlError(f"{path}: not a readable {what}: {reason}") from None


def _native(arr: np.ndarray, key: str) -> np.ndarray:
    """Byte order made native (exactly); which dtypes a use accepts is the caller's to say, naming
    the array (`simulate` refuses strings in an input, calibration refuses NaN, ...)."""
    if arr.dtype.kind in "iufcb" and not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


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
