"""Parse and verify a model; print a one-line summary or a located error."""

from __future__ import annotations

from ..loader import load_model


def add_arguments(p) -> None:
    p.add_argument("model", metavar="FILE", help="a .n3ml file (or any model type n3ml reads)")


def run(args) -> int:
    g = load_model(args.model)
    types = g.verify()
    n_neurons = sum(types[n].size for n, p in g.nodes.items() if p.category == "neuron")
    print(f"{args.model}: ok: graph {g.name}, {len(g.nodes)} nodes, {len(g.edges)} edges, "
          f"{n_neurons} neurons, dt={g.dt} ms, scheme={g.scheme}")
    return 0
