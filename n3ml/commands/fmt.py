"""Print the canonical text of a graph (or rewrite the file in place with -w)."""

from __future__ import annotations

import sys

from ..ir.printer import dumps
from ..ir.text import load, save


def add_arguments(p) -> None:
    p.add_argument("model", metavar="FILE", help="a .n3ml file")
    p.add_argument("-w", "--write", action="store_true", help="rewrite FILE (and its weights sidecar) in place")


def run(args) -> int:
    graph, source = load(args.model, with_source=True)
    if args.write:
        save(graph, args.model)
        return 0
    text, _ = dumps(graph, sidecar=source.sidecar)
    sys.stdout.write(text)
    return 0
