"""Hypothesis strategies for random valid IR graphs (shared by the IR, executor and backend tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from n3ml.ir import (ALIF, IF, LI, LIF, Add, Concat, Conv2d, CubaLIF, Delay, Dense, Flatten, Graph, Input,
                     Integrator, MaxPool2d, Output, Scale, SumPool2d, AvgPool2d)

SPIKING = ("IF", "LIF", "CubaLIF", "ALIF")
ALL_NEURONS = SPIKING + ("LI", "Integrator")


def _param(rng, lo, hi, n, per_neuron):
    if per_neuron:
        return rng.uniform(lo, hi, n)
    return float(np.round(rng.uniform(lo, hi), 3))


def make_neuron(kind: str, rng: np.random.Generator, n: int, per_neuron: bool = False):
    common = dict(
        theta=_param(rng, 0.5, 1.5, n, per_neuron),
        reset=str(rng.choice(["subtract", "to-value", "none"])),
        v_reset=float(np.round(rng.uniform(-0.2, 0.2), 3)),
        refractory=int(rng.integers(0, 3)),
    )
    if kind == "IF":
        return IF(**common)
    if kind == "LIF":
        return LIF(tau=_param(rng, 2.0, 20.0, n, per_neuron), r=float(np.round(rng.uniform(1, 5), 3)), **common)
    if kind == "CubaLIF":
        return CubaLIF(tau_syn=_param(rng, 2.0, 10.0, n, per_neuron), tau_mem=float(np.round(rng.uniform(3, 20), 3)),
                       r=float(np.round(rng.uniform(1, 5), 3)), **common)
    if kind == "ALIF":
        return ALIF(tau=float(np.round(rng.uniform(3, 20), 3)), tau_adapt=float(np.round(rng.uniform(10, 50), 3)),
                    q=float(np.round(rng.uniform(0.0, 0.3), 3)), r=float(np.round(rng.uniform(1, 5), 3)), **common)
    if kind == "LI":
        return LI(tau=_param(rng, 2.0, 20.0, n, per_neuron))
    return Integrator(r=float(np.round(rng.uniform(0.1, 1.0), 3)))


@st.composite
def mlp_graphs(draw, max_layers: int = 3, neurons=ALL_NEURONS):
    """Random MLP-like graphs: optional recurrent loop, Scale, Concat branch, any neuron types."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    g = Graph(name="rand", dt=float(draw(st.sampled_from([0.5, 1.0, 2.0]))),
              scheme=draw(st.sampled_from(["exact", "euler"])))
    n_in = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["spike", "analog"]))
    g.add("x", Input(shape=(n_in,), kind=kind))
    prev, width = "x", n_in
    n_layers = draw(st.integers(1, max_layers))
    for i in range(n_layers):
        n = draw(st.integers(1, 6))
        w = rng.normal(0.4, 0.6, (n, width))
        bias = rng.normal(0, 0.1, n) if draw(st.booleans()) else None
        g.add(f"fc{i}", Dense(weight=w, bias=bias), prev)
        src = f"fc{i}"
        nk = draw(st.sampled_from(neurons if i < n_layers - 1 else neurons))
        if draw(st.integers(0, 3)) == 0 and nk in SPIKING:  # recurrent loop through a delay
            g.add(f"sum{i}", Add(), src, f"rec{i}")
            g.add(f"n{i}", make_neuron(nk, rng, n, draw(st.booleans())), f"sum{i}")
            g.add(f"d{i}", Delay(steps=draw(st.integers(1, 3))), f"n{i}")
            g.add(f"rec{i}", Dense(weight=rng.normal(0, 0.5, (n, n))), f"d{i}")
        else:
            g.add(f"n{i}", make_neuron(nk, rng, n, draw(st.booleans())), src)
        prev, width = f"n{i}", n
        choice = draw(st.integers(0, 5))
        if choice == 0:
            g.add(f"s{i}", Scale(factor=float(np.round(rng.uniform(0.5, 2), 3))), prev)
            prev = f"s{i}"
        elif choice == 1:
            g.add(f"dl{i}", Delay(steps=draw(st.integers(0, 2))), prev)
            g.add(f"cat{i}", Concat(), prev, f"dl{i}")
            prev, width = f"cat{i}", 2 * width
    g.add("out", Output(), prev)
    return g


@st.composite
def conv_graphs(draw):
    """Random small convolutional graphs with pooling."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    g = Graph(name="conv", dt=1.0, scheme=draw(st.sampled_from(["exact", "euler"])))
    c = draw(st.integers(1, 2))
    h = draw(st.integers(4, 7))
    g.add("x", Input(shape=(c, h, h), kind="spike"))
    co = draw(st.integers(1, 3))
    groups = 1 if c == 1 or co % c else draw(st.sampled_from([1, c]))
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k // 2))
    stride = draw(st.integers(1, 2 if h + 2 * pad - k >= 2 else 1))  # the 2x2 pool needs >= 2x2
    g.add("conv", Conv2d(weight=rng.normal(0.3, 0.5, (co * groups if groups > 1 else co, c // groups, k, k)),
                         bias=rng.normal(0, 0.1, co * groups if groups > 1 else co) if draw(st.booleans()) else None,
                         stride=(stride, stride), padding=(pad, pad), groups=groups), "x")
    g.add("n0", make_neuron(draw(st.sampled_from(SPIKING)), rng, 1), "conv")
    pool = draw(st.sampled_from([SumPool2d, AvgPool2d, MaxPool2d]))
    g.add("pool", pool(kernel=(2, 2), stride=(1, 1)), "n0")
    g.add("flat", Flatten(), "pool")
    from n3ml.ir import infer_types

    nflat = infer_types(g)["flat"].shape[0]
    g.add("fc", Dense(weight=rng.normal(0.2, 0.4, (3, nflat))), "flat")
    g.add("n1", make_neuron(draw(st.sampled_from(SPIKING)), rng, 3), "fc")
    g.add("out", Output(), "n1")
    return g


def random_inputs(graph: Graph, T: int, B: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for n in graph.input_names:
        p = graph.nodes[n]
        shape = (T, B, *p.shape)
        out[n] = (rng.random(shape) < 0.4).astype(float) if p.kind == "spike" else rng.random(shape) * 2
    return out


@st.composite
def fixed_graphs(draw):
    """Random quantized graphs: integer Dense weights, FixedCubaLIF neurons with small state registers
    (so that wrap and saturation happen), an optional recurrent loop through a Delay."""
    from n3ml.ir import FixedCubaLIF

    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    g = Graph(name="fixed", dt=1.0, scheme="exact")
    n_in = draw(st.integers(1, 6))
    g.add("x", Input(shape=(n_in,), kind="spike"))
    prev, width = "x", n_in
    for i in range(draw(st.integers(1, 2))):
        n = draw(st.integers(1, 6))
        D = draw(st.integers(2, 12))
        S = draw(st.integers(8, 24))
        k = draw(st.integers(0, 6))
        w = rng.integers(-(2 ** (S - k - 2)), 2 ** (S - k - 2), (n, width)).astype(np.int64)
        neuron = FixedCubaLIF(
            du=draw(st.integers(0, 2**D)), dv=rng.integers(0, 2**D + 1, n) if draw(st.booleans()) else
            draw(st.integers(0, 2**D)), bias=int(rng.integers(-(2 ** (S - 4)), 2 ** (S - 4))),
            theta=int(rng.integers(1, 2 ** (S - 2))), v_reset=int(rng.integers(-8, 8)),
            reset=draw(st.sampled_from(["subtract", "to-value", "none"])), refractory=draw(st.integers(0, 2)),
            decay_bits=D, state_bits=S, input_shift=k,
            current_overflow=draw(st.sampled_from(["wrap", "saturate"])),
            voltage_overflow=draw(st.sampled_from(["wrap", "saturate"])))
        g.add(f"fc{i}", Dense(weight=w), prev)
        if draw(st.booleans()):
            g.add(f"sum{i}", Add(), f"fc{i}", f"rec{i}")
            g.add(f"n{i}", neuron, f"sum{i}")
            g.add(f"d{i}", Delay(steps=draw(st.integers(1, 2))), f"n{i}")
            g.add(f"rec{i}", Dense(weight=rng.integers(-(2 ** (S - k - 2)), 2 ** (S - k - 2), (n, n))), f"d{i}")
        else:
            g.add(f"n{i}", neuron, f"fc{i}")
        prev, width = f"n{i}", n
    g.add("out", Output(), prev)
    return g
