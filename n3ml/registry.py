"""Registries of model loaders, simulation engines and targets, imported lazily.

A new frontend, engine or target is one module plus one line here; the CLI is
built from these tables.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import N3mlError

# file suffix -> "module:function(path, **options) -> Graph"
LOADERS: dict[str, str] = {
    ".n3ml": "n3ml.ir.text:load",
    ".onnx": "n3ml.frontends.onnx:load",
    ".nir": "n3ml.frontends.nir:load",
}
LOADERS.update({s: "n3ml.frontends.torch.load:load_" + k for s, k in
                ((".pt2", "pt2"), (".pt", "torch"), (".pth", "torch"), (".ts", "ts"))})

# engine name -> "module:function(graph, inputs, steps, *, record, device, dtype) -> Result"
ENGINES: dict[str, str] = {
    "reference": "n3ml.ir.interp:run",
    "torch": "n3ml.backends.torch:run",
}

# target name -> "module:Target". A Target has `name`; `check(graph, options=None)` raising UnsupportedError
# before anything is written; `emit(graph, out_dir, *, steps=None, options=None)`; `run_argv(out_dir)`, the
# command that runs the emitted program; and `records_states = True` if that program takes --record NODE.
TARGETS: dict[str, str] = {}
TARGETS["lava"] = "n3ml.backends.lava:LavaTarget"
TARGETS["nest"] = "n3ml.backends.nest:NestTarget"
TARGETS["pynn"] = "n3ml.backends.pynn:PynnTarget"
TARGETS["ir"] = "n3ml.backends.ir_target:IRTarget"
TARGETS.update({t: "n3ml.backends.nir:Nir" + ("_" + t[4:] if ":" in t else "Target") for t in ("nir", "nir:exact", "nir:euler", "nir:snntorch", "nir:norse", "nir:sinabs", "nir:spyx", "nir:rockpool")})


def resolve(spec: str) -> Any:
    mod, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod), attr)


def lookup(table: dict[str, str], key: str, what: str) -> Any:
    if key not in table:
        raise N3mlError(f"unknown {what} {key!r}; available: {', '.join(sorted(table)) or '(none)'}")
    try:
        return resolve(table[key])
    except ImportError as e:
        raise N3mlError(f"{what} {key!r} is not available here: {e}") from None
