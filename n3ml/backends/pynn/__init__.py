"""PyNN target: `n3ml convert MODEL --target pynn -o OUT/` writes a standalone PyNN 0.13 program.

The program imports `pyNN.spiNNaker` by default (`--simulator nest|spiNNaker|brian2`, or the emit option
`simulator`); emitting for SpiNNaker first checks the board's limits (`lower.SPINNAKER`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...ir.graph import Graph
from ..netlist import netlist_legality
from ..target_options import check_keys, choice
from .emit import emit_pynn
from .lower import SIMULATORS, SPINNAKER, check_spinnaker, lower_ir_to_pynn, spinnaker_cores

__all__ = ["PynnTarget", "lower_ir_to_pynn", "emit_pynn", "check_spinnaker", "spinnaker_cores", "SPINNAKER"]


class PynnTarget:
    """The `pynn` target. Options: simulator = spiNNaker (default) | nest | brian2."""

    name = "pynn"
    summary = "standalone PyNN script (standard cells, list connectors); SpiNNaker limits checked"
    options = {"simulator": "PyNN backend the script imports by default: spiNNaker, nest or brian2"}
    legality = netlist_legality("pynn")  # what it accepts and the passes that legalize (n3ml targets)
    verify_options = {"simulator": "nest"}  # `n3ml verify` runs PyNN on the locally installed NEST

    def check(self, graph: Graph, options: dict | None = None) -> None:
        """Raise UnsupportedError naming the node if PyNN's standard cells cannot express the graph
        (and, for simulator=spiNNaker, if it exceeds the board's limits)."""
        simulator = self._simulator(options)
        net = lower_ir_to_pynn(graph, simulator)
        if simulator == "spiNNaker":
            check_spinnaker(net, float(graph.dt))

    def emit(self, graph: Graph, out_dir: Path, *, steps: int | None = None, options: dict | None = None) -> None:
        simulator = self._simulator(options)
        net = lower_ir_to_pynn(graph, simulator)
        if simulator == "spiNNaker":
            check_spinnaker(net, float(graph.dt))
        emit_pynn(net, Path(out_dir), steps=steps, simulator=simulator)

    def run_argv(self, out_dir: Path) -> list[str]:
        return [sys.executable, str(Path(out_dir) / "run.py")]

    @classmethod
    def _simulator(cls, options: dict | None) -> str:
        options = check_keys(cls, options)
        return choice("pynn", "simulator", options.get("simulator"), SIMULATORS, "spiNNaker")
