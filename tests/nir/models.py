"""Small IR networks (MLP, CNN, recurrent) that every NIR reader can express: the agreement matrix of
docs/nir.md and the tests use them. Weights are random (seeded) so that no membrane sits exactly on a
threshold, where float32 readers and the float64 executor may round differently."""

from __future__ import annotations

import numpy as np

from n3ml.ir import Graph
from n3ml.ir import prims as P


def _w(rng, *shape, scale=1.0):
    return rng.normal(0.0, scale / np.sqrt(shape[-1] if len(shape) == 2 else np.prod(shape[1:])), shape)


def mlp(seed: int = 0, n_in: int = 20, hidden: int = 16, n_out: int = 8) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="mlp", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(n_in,)))
    g.add("fc1", P.Dense(weight=_w(rng, hidden, n_in, scale=2.5), bias=rng.normal(0, 0.1, hidden)), "x")
    g.add("lif1", P.LIF(tau=5.0, r=1.0, theta=0.5, reset="to-value"), "fc1")
    g.add("fc2", P.Dense(weight=_w(rng, n_out, hidden, scale=3.0)), "lif1")
    g.add("lif2", P.CubaLIF(tau_syn=3.0, tau_mem=6.0, r=2.0, theta=0.4, reset="to-value"), "fc2")
    g.add("out", P.Output(), "lif2")
    g.verify()
    return g


def cnn(seed: int = 1) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="cnn", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(1, 8, 8)))
    g.add("conv", P.Conv2d(weight=_w(rng, 4, 1, 3, 3, scale=2.0), bias=rng.normal(0, 0.1, 4), padding=(1, 1)),
          "x")
    g.add("lif1", P.LIF(tau=4.0, r=1.0, theta=0.5, reset="to-value"), "conv")
    g.add("flat", P.Flatten(), "lif1")
    g.add("fc", P.Dense(weight=_w(rng, 10, 256, scale=3.0), bias=rng.normal(0, 0.1, 10)), "flat")
    g.add("lif2", P.LIF(tau=8.0, r=1.5, theta=0.5, reset="to-value"), "fc")
    g.add("out", P.Output(), "lif2")
    g.verify()
    return g


def recurrent(seed: int = 2, n_in: int = 10, hidden: int = 12, n_out: int = 6) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="recurrent", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(n_in,)))
    g.add("fc_in", P.Dense(weight=_w(rng, hidden, n_in, scale=2.5), bias=rng.normal(0, 0.1, hidden)), "x")
    g.add("sum", P.Add(), "fc_in", "fc_rec")
    g.add("lif", P.LIF(tau=6.0, r=1.0, theta=0.5, reset="to-value"), "sum")
    g.add("loop", P.Delay(steps=1), "lif")
    g.add("fc_rec", P.Dense(weight=_w(rng, hidden, hidden, scale=1.5), bias=rng.normal(0, 0.05, hidden)), "loop")
    g.add("fc_out", P.Dense(weight=_w(rng, n_out, hidden, scale=3.0)), "lif")
    g.add("lif_out", P.LIF(tau=5.0, r=1.0, theta=0.4, reset="to-value"), "fc_out")
    g.add("out", P.Output(), "lif_out")
    g.verify()
    return g


def mlp_subtract(seed: int = 4) -> Graph:
    """An MLP with subtract resets (what Sinabs runs): 20-16 LIF, 8 IF."""
    rng = np.random.default_rng(seed)
    g = Graph(name="mlp_sub", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(20,)))
    g.add("fc1", P.Dense(weight=rng.normal(0, 0.5, (16, 20))), "x")
    g.add("lif1", P.LIF(tau=5.0, r=4.0, theta=1.0, reset="subtract"), "fc1")
    g.add("fc2", P.Dense(weight=rng.normal(0, 0.8, (8, 16)), bias=np.zeros(8)), "lif1")
    g.add("if2", P.IF(theta=1.0, reset="subtract"), "fc2")
    g.add("out", P.Output(), "if2")
    g.verify()
    return g


def cuba_subtract(recurrent: bool = False, seed: int = 5) -> Graph:
    """CubaLIF layers with subtract reset, leak and non-unit gains (what Rockpool's LIFTorch runs): 10-12-5,
    the hidden layer recurrent when `recurrent`."""
    rng = np.random.default_rng(seed)
    g = Graph(name="cuba_rec" if recurrent else "cuba", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(10,)))
    g.add("fc", P.Dense(weight=rng.normal(0, 0.35, (12, 10)), bias=rng.normal(0, 0.05, 12)), "x")
    cuba = P.CubaLIF(tau_syn=3.0, tau_mem=6.0, r=1.5, v_leak=0.1, theta=1.0, reset="subtract")
    if recurrent:
        g.add("sum", P.Add(), "fc", "fc_rec")
        g.add("lif", cuba, "sum")
        g.add("loop", P.Delay(steps=1), "lif")
        g.add("fc_rec", P.Dense(weight=rng.normal(0, 0.2, (12, 12)), bias=rng.normal(0, 0.02, 12)), "loop")
    else:
        g.add("lif", cuba, "fc")
    g.add("fc2", P.Dense(weight=rng.normal(0, 1.3 if recurrent else 1.0, (5, 12))), "lif")
    g.add("lif2", P.CubaLIF(tau_syn=2.0, tau_mem=8.0, r=1.0, theta=0.8, reset="subtract"), "fc2")
    g.add("out", P.Output(), "lif2")
    g.verify()
    return g


MODELS = {"mlp": mlp, "cnn": cnn, "recurrent": recurrent}


def spikes(graph: Graph, steps: int, batch: int = 4, seed: int = 0, rate: float = 0.3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.random((steps, batch, *graph.nodes[n].shape)) < rate).astype(np.float64)
            for n in graph.input_names}
