"""Writing an emitted program: runtime modules copied verbatim, the network as data.

A code-generating target (nest, pynn, lava) ships its runtime as an ordinary module of this package
(`n3ml/backends/<target>/runtime.py`, linted and imported by the tests without the simulator). `emit`
copies it unchanged to `OUT/run.py`, next to the network it runs: `OUT/network.json` (tables of
numbers and names) and `OUT/weights.npz` (plain arrays, read with allow_pickle=False). Nothing the user
supplies (node names, graph names, target options) becomes code: it reaches the program as JSON strings.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

DESCRIPTION = "network.json"
WEIGHTS = "weights.npz"


class Arrays:
    """The arrays of weights.npz, and the JSON value that stands for each parameter in the description."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, key: str, a: Any) -> str:
        """Store `a` under `key`; return its reference "@key" (how the runtimes' `array()` finds it)."""
        if key in self.arrays:
            raise ValueError(f"weights.npz key {key!r} used twice")  # an emitter bug, not bad input
        self.arrays[key] = np.asarray(a)
        return "@" + key

    def value(self, key: str, v: Any) -> Any:
        """A number for scalars and uniform float arrays, else "@key" with the array stored.

        Non-finite numbers (a readout's threshold of +inf) are stored as 0-d arrays: strict JSON has no
        spelling for them, and the runtimes turn a 0-d array back into the same Python float.
        """
        a = np.asarray(v)
        if a.ndim == 0 or (a.size and a.dtype.kind == "f" and np.all(a == a.reshape(-1)[0])):
            x = a.reshape(-1)[0].item()
            if isinstance(x, float) and not math.isfinite(x):
                return self.add(key, np.float64(x))
            return x
        return self.add(key, a)


def runtime_source(package: str, name: str = "runtime.py") -> bytes:
    """The bytes of a runtime module of this package, as the emitted program gets them."""
    return (resources.files(package) / name).read_bytes()


def write_program(out_dir: Path, runtimes: dict[str, tuple[str, str]], description: dict, arrays: Arrays) -> None:
    """Write the program into the (fresh, empty) directory `out_dir`.

    Args:
        runtimes: file name in out_dir -> (package, module file) copied verbatim, e.g.
            {"run.py": ("n3ml.backends.nest", "runtime.py")}.
        description: the network as JSON data (strict JSON: no NaN or infinity).
    """
    out_dir = Path(out_dir)
    for dest, (package, name) in runtimes.items():
        (out_dir / dest).write_bytes(runtime_source(package, name))
    (out_dir / DESCRIPTION).write_text(dumps(_plain(description)) + "\n", encoding="utf-8")
    np.savez(out_dir / WEIGHTS, **arrays.arrays)


def dumps(x: Any, indent: str = "") -> str:
    """Strict JSON (no NaN or infinity, ASCII), one item per line, but a list of numbers on one line:
    shapes and conv geometry stay readable. Every string goes through json.dumps (escaped)."""
    inner = indent + "  "
    if isinstance(x, dict) and x:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(x, list) and x and any(isinstance(v, (dict, list, str)) for v in x):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in x) + "\n" + indent + "]"
    return json.dumps(x, allow_nan=False)


def _plain(x: Any) -> Any:
    """numpy scalars and tuples as JSON's numbers and lists (json.dumps knows only Python's)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)) and np.ndim(x) == 0:
        return x.item()
    return x
