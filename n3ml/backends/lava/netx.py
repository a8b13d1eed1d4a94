"""lava-dl netx HDF5 export (placeholder until written)."""

from __future__ import annotations

from pathlib import Path

from ...errors import UnsupportedError
from ...ir.graph import Graph


def check(graph: Graph) -> None:
    raise UnsupportedError("netx export is not written yet")


def write(graph: Graph, path: Path) -> None:
    check(graph)
