"""NEST target: `n3ml convert MODEL --target nest -o OUT/` writes a standalone PyNEST program.

Lowering (IR -> NEST models, generators and delayed connections) lives in `lower.py`; `emit.py` writes
the network as data (`network.json` + `weights.npz`) beside `run.py`, a verbatim copy of the runtime
module `runtime.py`; docs/backends/nest.md documents the mapping.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...ir.graph import Graph
from .emit import emit_nest
from ..netlist import netlist_legality
from .lower import lower_ir_to_nest

__all__ = ["NestTarget", "lower_ir_to_nest", "emit_nest"]


class NestTarget:
    """The `nest` target (NEST 3.x, grid-based neuron models, resolution = the graph's dt)."""

    name = "nest"
    options: dict[str, str] = {}  # -O keys it reads: none
    legality = netlist_legality("nest")  # what it accepts and the passes that legalize (n3ml targets)
    summary = "standalone PyNEST program (run.py + network.json + weights.npz), exact IF/LIF/CubaLIF/ALIF/LI mapping"

    def check(self, graph: Graph, options: dict | None = None) -> None:
        """Raise UnsupportedError naming the node if the graph has no exact NEST form."""
        _no_options(options)
        lower_ir_to_nest(graph)

    def emit(self, graph: Graph, out_dir: Path, *, steps: int | None = None, options: dict | None = None) -> None:
        _no_options(options)
        emit_nest(lower_ir_to_nest(graph), Path(out_dir), steps=steps)

    def run_argv(self, out_dir: Path) -> list[str]:
        return [sys.executable, str(Path(out_dir) / "run.py")]


def _no_options(options: dict | None) -> None:
    from ..target_options import check_keys

    check_keys(NestTarget, options)
