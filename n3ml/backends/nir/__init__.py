"""The `nir` target: `n3ml convert X --target nir -O convention=snntorch -o OUT` writes OUT/model.nir.

The file is written for one consumer (`-O convention=<reader>`, or the target names `nir:exact`, `nir:euler`,
`nir:snntorch`, `nir:norse`, `nir:sinabs`, `nir:spyx`, `nir:rockpool`): the reader of that library runs it with
the spikes of n3ml's executor (Sinabs and Rockpool: while no neuron fires twice in a step), or the graph is
refused naming the node it cannot express. `n3ml verify --targets nir:snntorch,nir:norse` runs the file with
the library's own NIR reader (`run.py`) and compares.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from ...errors import N3mlError
from ...ir import Graph
from .. import target_options as opt
from .lower import APPROXIMATE, CONSUMERS, lower

MANIFEST = "target.json"
log = logging.getLogger(__name__)


class NirTarget:
    """NIR 1.0 (HDF5, `nir.write`) for one reader convention."""

    name = "nir"
    convention = "exact"
    filename = "model.nir"
    options = {"convention": f"the reader the file is written for: {', '.join(CONSUMERS)} (default: the target "
                             "name's suffix, else exact)"}

    def _consumer(self, options: dict[str, Any] | None) -> str:
        options = opt.check_keys(self, options)
        return opt.choice(self.name, "convention", options.get("convention"), CONSUMERS, self.convention)

    def check(self, graph: Graph, options: dict[str, Any] | None = None) -> None:
        _need_nir()
        lower(graph, self._consumer(options))

    def emit(self, graph: Graph, out_dir: Path, *, steps: int | None = None,
             options: dict[str, Any] | None = None) -> None:
        import nir

        consumer = self._consumer(options)
        g = lower(graph, consumer)
        if consumer in APPROXIMATE:
            log.warning("nir:%s is an approximation: %s fires floor(v / theta) spikes per step where n3ml fires one%s "
                        "(docs/nir.md)", consumer, consumer.capitalize(),
                        ", and clips IF membranes at -theta" if consumer == "sinabs" else "")
        out_dir = Path(out_dir)
        nir.write(out_dir / self.filename, g)
        manifest = {"convention": consumer, "dt_ms": graph.dt, "inputs": graph.input_names,
                    "outputs": graph.output_names, "steps": steps}
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def run_argv(self, out_dir: Path) -> list[str]:
        return [sys.executable, "-m", "n3ml.backends.nir.run", str(out_dir)]


def _need_nir() -> None:
    try:
        import nir  # noqa: F401
    except ImportError:
        raise N3mlError("the nir target needs the `nir` package (pip install 'n3ml[nir]')") from None


def _for(consumer: str) -> type[NirTarget]:
    return type(f"Nir_{consumer}", (NirTarget,), {"name": f"nir:{consumer}", "convention": consumer,
                                                  "__doc__": f"NIR written for and run by the {consumer} reader."})


Nir_exact, Nir_euler, Nir_snntorch, Nir_norse, Nir_sinabs, Nir_spyx, Nir_rockpool = (
    _for(c) for c in ("exact", "euler", "snntorch", "norse", "sinabs", "spyx", "rockpool"))
