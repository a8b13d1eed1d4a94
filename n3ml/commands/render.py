"""Draw a model as a Graphviz picture (.svg, .png, .pdf) or write its .dot source."""

from __future__ import annotations

import sys
import time

from ..loader import load_model


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a .n3ml file or any model n3ml reads")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="FILE.svg, FILE.png, FILE.pdf (need Graphviz's `dot`) or FILE.dot")
    p.add_argument("--lr", action="store_true", help="lay the graph out left to right (default top to bottom)")
    p.add_argument("--no-params", action="store_true",
                   help="boxes show name, type and shape only (no neuron parameters or quantization)")
    p.add_argument("--no-edge-labels", action="store_true", help="do not label edges with tensor types")
    p.add_argument("--clusters", choices=("auto", "prefix", "none"), default="auto",
                   help="group nodes sharing a name prefix into boxes: auto (graphs of more than 16 nodes), "
                        "prefix (always), none")
    p.add_argument("--format", choices=("svg", "png", "pdf", "dot"),
                   help="output format (default: from the file's suffix)")


def run(args) -> int:
    from ..viz.dot import DotOptions, render

    graph = load_model(args.model)
    options = DotOptions(rankdir="LR" if args.lr else "TB", params=not args.no_params, clusters=args.clusters,
                         edge_labels=not args.no_edge_labels)
    t0 = time.perf_counter()
    path = render(graph, args.output, options, fmt=args.format)
    print(f"wrote {path} ({len(graph.nodes)} nodes, {len(graph.edges)} edges, "
          f"{time.perf_counter() - t0:.2f} s)", file=sys.stderr)
    return 0
