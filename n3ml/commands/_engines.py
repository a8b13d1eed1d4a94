"""The engines the command layer lends to graph passes (passes import no engine themselves).

Passes that simulate (normalize's report, conversion-report) read context["engines"] and
context["engine"]; this builds them from n3ml.registry.ENGINES, resolved lazily on first use.
"""

from __future__ import annotations

from typing import Any

from ..passes.base import Engine
from ..registry import ENGINES, resolve

_OPTIONS = {"reference": {}, "torch": {"device": "cpu", "dtype": "float64"}}  # float64: the interpreter's bits


def _lazy(spec: str):
    def run(*args: Any, **kwargs: Any):
        return resolve(spec)(*args, **kwargs)

    return run


_HELD = {"torch": _lazy("n3ml.commands._held:torch_held")}  # batched held-input runs (Engine.held)


def pass_context() -> dict[str, Any]:
    """{"engines": name -> Engine, "engine": the default (torch where it imports, else reference)}."""
    engines = {name: Engine(name, _lazy(spec), dict(_OPTIONS.get(name, {})), _HELD.get(name))
               for name, spec in ENGINES.items()}
    default = "reference"
    if "torch" in ENGINES:
        try:
            resolve(ENGINES["torch"])
            default = "torch"
        except Exception:  # noqa: BLE001 - any import problem means: not available here
            pass
    return {"engines": engines, "engine": default}
