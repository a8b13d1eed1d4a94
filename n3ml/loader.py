"""Load a MODEL argument (any registered file type) into an IR graph."""

from __future__ import annotations

from pathlib import Path

from .errors import N3mlError
from .ir import Graph
from .registry import LOADERS, resolve


def load_model(path: str, **options) -> Graph:
    """Load `path` through the loader registered for its suffix."""
    p = Path(path)
    if not p.exists():
        raise N3mlError(f"{path}: no such file")
    if not p.is_file():  # a directory, or a FIFO whose open() would block forever
        raise N3mlError(f"{path}: not a regular file")
    suffix = "".join(p.suffixes[-1:]).lower()
    if suffix not in LOADERS:
        raise N3mlError(f"{path}: unknown model type {suffix or '(no suffix)'!r}; "
                        f"n3ml reads {', '.join(sorted(LOADERS))}")
    fn = resolve(LOADERS[suffix])
    return fn(str(p), **options) if options else fn(str(p))
