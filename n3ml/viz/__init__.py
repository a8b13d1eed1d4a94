"""Pictures of n3ml graphs and of their activity.

- `render(graph, path, options)`: Graphviz drawing (.svg/.png/.pdf/.dot) of a graph.
- `plot_raster`, `plot_voltage`, `plot_rates`, `plot_result`: matplotlib figures of a
  recording (interpreter or executor `Result`, or a backend's `.npz`).
- `summarize(graph, ...)`: per-node counts and estimated synaptic operations.

Submodules are imported on first use, so `import n3ml.viz` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DotOptions": "dot", "to_dot": "dot", "dot_source": "dot", "render": "dot", "colour_of": "dot",
    "Recording": "activity", "load_recording": "activity", "plot_raster": "activity",
    "plot_voltage": "activity", "plot_rates": "activity", "plot_result": "activity",
    "Summary": "summary", "summarize": "summary", "format_summary": "summary", "measure_activity": "summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
