"""NIR frontend: `n3ml convert model.nir --dt 1 --nir-convention snntorch ...`, `load_model("model.nir")`.

A NIR file holds continuous-time equations and no time step; `dt` (ms) and the reader convention
(`conventions.CONVENTIONS`: which library's reading of the file to reproduce) make it one discrete
network. docs/nir.md has the mapping and each convention's equations.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...errors import N3mlError
from ...ir import Graph
from .conventions import CONVENTIONS, convention
from .reader import FileFacts, read_graph

__all__ = ["load", "from_nir", "CONVENTIONS", "file_facts"]

log = logging.getLogger(__name__)

_NEURONS_WITH_RESET = (b"IF", b"LIF", b"CubaLIF")


def file_facts(path: str) -> FileFacts:
    """The writer's NIR version and the nodes that store v_reset, read from the HDF5 file itself."""
    import h5py

    found: set[str] = set()

    def walk(group: Any, prefix: str) -> None:
        t = group["type"][()] if "type" in group else None
        if t == b"NIRGraph" and "nodes" in group:
            for k, sub in group["nodes"].items():
                walk(sub, prefix + k + ".")
        elif t in _NEURONS_WITH_RESET and "v_reset" in group:
            found.add(prefix[:-1])

    with h5py.File(path, "r") as f:
        version = f["version"][()] if "version" in f else None
        if isinstance(version, bytes):
            version = version.decode("utf8")
        walk(f["node"], "")
    return FileFacts(version=version, with_v_reset=frozenset(found), from_file=True, path=str(path))


def _dt_for(conv, dt: float | None, source: str) -> float:
    if conv.dt_ms is not None:
        if dt is not None and abs(dt - conv.dt_ms) > 1e-12 * conv.dt_ms:
            raise N3mlError(f"{source}: the {conv.name} convention fixes dt = {conv.dt_ms:g} ms ({conv.library} "
                            f"reads NIR with that step); --dt {dt:g} contradicts it")
        return conv.dt_ms
    if dt is not None:
        return float(dt)
    if conv.default_dt_ms is not None:
        log.warning("%s: no --dt given; using %g ms, %s's default step for NIR", source, conv.default_dt_ms,
                    conv.library)
        return conv.default_dt_ms
    raise N3mlError(f"{source}: a NIR file stores no time step; give --dt (ms) to read it as {conv.name}")


def from_nir(g: Any, *, dt: float | None = None, nir_convention: str | None = None, name: str = "main",
             facts: FileFacts | None = None, source: str = "<NIR graph>", input_kind: str | None = None) -> Graph:
    """Convert an in-memory nir.NIRGraph (see `load`)."""
    conv = convention(nir_convention)
    return read_graph(g, conv, dt_ms=_dt_for(conv, dt, source), name=name, facts=facts,
                      input_kind=input_kind or "spike")


def load(path: str, *, dt: float | None = None, nir_convention: str | None = None, name: str | None = None,
         input_kind: str | None = None, **options) -> Graph:
    """Read the NIR file at `path` into an IR graph.

    Args:
        dt: the time step in ms (required unless the convention fixes it: snntorch, 0.1 ms).
        nir_convention: whose reading of NIR to reproduce (`CONVENTIONS`); default exact (NIR's own
            equations, with a warning that a convention was chosen).
        name: graph name (default: from the file name).
        input_kind: what the Input nodes carry, spike (default: NIR graphs are spiking networks) or analog.
    Raises:
        N3mlError: unreadable file, no dt; UnsupportedError: nodes the convention cannot read, all listed.
    """
    options.pop("steps", None)  # a run-time setting shared by all loaders
    if options:
        raise N3mlError(f"{path}: option(s) {', '.join(sorted(options))} do not apply to NIR files "
                        "(they take dt, nir_convention, input_kind)")
    try:
        import nir
    except ImportError:
        raise N3mlError(f"{path}: reading NIR needs the `nir` package (pip install 'n3ml[nir]')") from None
    try:
        facts = file_facts(path)
        # no NIR type check: snnTorch's and Norse's files count Flatten's axes with the batch, which nir's
        # inference does not; the IR verifier checks every shape after the reading
        g = nir.read(path, type_check=False)
    except Exception as e:  # h5py/nir raise OSError, KeyError, ValueError, AssertionError on bad files
        raise N3mlError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    if nir_convention is None:
        log.warning("%s: no --nir-convention given; reading NIR's equations as written (exact), which no "
                    "library does exactly: see docs/nir.md", path)
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in Path(path).stem) or "main"
    if not (stem[0].isalpha() or stem[0] == "_"):
        stem = "g_" + stem
    return from_nir(g, dt=dt, nir_convention=nir_convention, name=name or stem, facts=facts, source=path,
                    input_kind=input_kind)
