"""The `ir` target: the graph itself, as OUT/model.n3ml plus its OUT/model.npz weights sidecar.

Any n3ml tool reads it back; `run_argv` runs it with `n3ml simulate` (reference interpreter).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError
from ..ir import Graph, VerifyError
from ..ir.text import save
from ..ir import prims as P
from ..passes.legalize import Legality
from .target_options import check_keys


class IRTarget:
    """Write the graph in the n3ml text format; every valid graph is supported."""

    name = "ir"
    filename = "model.n3ml"
    options: dict[str, str] = {}  # -O keys it reads: none
    legality = Legality("ir", {op: "written as it is" for op in P.REGISTRY}, "")  # every primitive, no passes

    def check(self, graph: Graph, options: dict[str, Any] | None = None) -> None:
        check_keys(self, options)
        try:
            graph.verify()
        except VerifyError as e:
            raise UnsupportedError(f"the graph is not valid IR: {e}") from None

    def emit(self, graph: Graph, out_dir: Path, *, steps: int | None = None,
             options: dict[str, Any] | None = None) -> None:
        self.check(graph, options)
        save(graph, Path(out_dir) / self.filename)

    def run_argv(self, out_dir: Path) -> list[str]:
        return [sys.executable, "-m", "n3ml", "simulate", str(Path(out_dir) / self.filename)]
