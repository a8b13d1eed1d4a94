"""Print the canonical text of a graph (or rewrite the file in place with -w)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..errors import N3mlError
from ..ir.printer import dumps
from ..ir.text import load


def add_arguments(p) -> None:
    p.add_argument("model", metavar="FILE", help="a .n3ml file")
    p.add_argument("-w", "--write", action="store_true",
                   help="rewrite FILE in place (only the text: its weights file is left as it is)")


def run(args) -> int:
    graph, source = load(args.model, with_source=True)
    # the text only, with the sidecar references it was read with: fmt never writes a weights file,
    # so the graph keeps pointing at the file (and the keys) it names, whatever that file is called
    text, _ = dumps(graph, sidecar=source.sidecar, refs=source.refs)
    if args.write:
        _replace_text(Path(args.model), text)
        return 0
    sys.stdout.write(text)
    return 0


def _replace_text(path: Path, text: str) -> None:
    """Write `text` over `path` atomically (a temporary beside it, renamed over it), keeping its mode.

    A symbolic link is followed: the file it points to is rewritten, the link stays a link.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise N3mlError(f"{path}: cannot rewrite ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise N3mlError(f"{path}: cannot rewrite ({e.strerror or e})") from None
