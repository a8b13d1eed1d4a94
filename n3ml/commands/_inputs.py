"""The input options shared by `simulate` and `verify`: an .npz file, or seeded random input."""

from __future__ import annotations

import numpy as np

from ..io import random_inputs, read_npz


def add_input_arguments(p) -> None:
    p.add_argument("--steps", "-T", type=int, required=True, help="number of time steps")
    p.add_argument("--input", metavar="X.npz", help="input arrays (T, B, *shape) keyed by Input node name; "
                   "default: seeded random input")
    p.add_argument("--batch", type=int, default=1, help="batch size of the random input (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--rate", type=float, default=0.2, help="spike probability of random spike input")


def inputs_from_args(args, graph) -> dict[str, np.ndarray]:
    if args.input:
        return read_npz(args.input)
    return random_inputs(graph, args.steps, args.batch, args.seed, args.rate)
