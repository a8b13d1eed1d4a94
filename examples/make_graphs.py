"""Build the bundled example graphs with the Python builder API and save them as .n3ml.

    python examples/make_graphs.py   # rewrites examples/graphs/*.n3ml (+ .npz sidecars)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from n3ml.ir import (IF, LIF, Add, Conv2d, CubaLIF, Delay, Dense, FixedCubaLIF, FixedPoint, Flatten, Graph, Input, LI,
                     Output, SumPool2d)
from n3ml.ir.text import save

HERE = Path(__file__).parent / "graphs"


def spiking_mlp(rng) -> Graph:
    g = Graph(name="spiking_mlp", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(16,), kind="spike"))
    g.add("fc1", Dense(weight=rng.normal(0.1, 0.3, (32, 16)), bias=np.full(32, 0.02)), "x")
    g.add("lif1", LIF(tau=10.0, theta=1.0, r=1 / (1 - np.exp(-0.1)), reset="subtract"), "fc1")
    g.add("fc2", Dense(weight=rng.normal(0.02, 0.1, (10, 32))), "lif1")
    g.add("lif2", LIF(tau=20.0, theta=1.0, r=1 / (1 - np.exp(-0.05)), reset="to-value", refractory=1), "fc2")
    g.add("out", Output(), "lif2")
    return g


def spiking_cnn(rng) -> Graph:
    g = Graph(name="spiking_cnn", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(1, 8, 8), kind="spike"))
    g.add("conv1", Conv2d(weight=rng.normal(0.3, 0.3, (4, 1, 3, 3)), padding=(1, 1)), "x")
    g.add("if1", IF(theta=1.0), "conv1")
    g.add("pool1", SumPool2d(kernel=(2, 2)), "if1")
    g.add("if2", IF(theta=1.5), "pool1")
    g.add("flat", Flatten(), "if2")
    g.add("fc", Dense(weight=rng.normal(0.0, 0.2, (10, 64))), "flat")
    g.add("lif_out", LIF(tau=5.0, theta=1.0, r=1 / (1 - np.exp(-0.2))), "fc")
    g.add("out", Output(), "lif_out")
    return g


def recurrent(rng) -> Graph:
    g = Graph(name="recurrent", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(8,), kind="spike"))
    g.add("fc_in", Dense(weight=rng.normal(0.4, 0.3, (12, 8))), "x")
    g.add("sum", Add(), "fc_in", "fc_rec")
    g.add("lif", LIF(tau=8.0, theta=1.0, r=1 / (1 - np.exp(-0.125))), "sum")
    g.add("loop", Delay(steps=1), "lif")
    g.add("fc_rec", Dense(weight=rng.normal(0.0, 0.3, (12, 12))), "loop")
    g.add("fc_out", Dense(weight=rng.normal(0.3, 0.3, (4, 12))), "lif")
    g.add("readout", LI(tau=10.0), "fc_out")
    g.add("spikes", Output(), "lif")
    g.add("out", Output(), "readout")
    return g


def cuba(rng) -> Graph:
    g = Graph(name="cuba", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(10,), kind="spike"))
    g.add("fc1", Dense(weight=rng.normal(0.05, 0.2, (20, 10))), "x")
    g.add("cuba1", CubaLIF(tau_syn=5.0, tau_mem=10.0, theta=1.0, r=1 / (1 - np.exp(-0.1)),
                           reset="to-value"), "fc1")
    g.add("fc2", Dense(weight=rng.normal(0.03, 0.15, (5, 20))), "cuba1")
    g.add("cuba2", CubaLIF(tau_syn=5.0, tau_mem=10.0, theta=1.0, r=1 / (1 - np.exp(-0.1)),
                           reset="to-value"), "fc2")
    g.add("out", Output(), "cuba2")
    return g


def quantized(rng) -> Graph:
    g = Graph(name="quantized", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(12,), kind="spike"))
    int8 = FixedPoint(bits=8, frac=0)
    g.add("fc1", Dense(weight=rng.integers(-40, 120, (16, 12)).astype(np.int64), weight_format=int8), "x")
    g.add("n1", FixedCubaLIF(du=4096, dv=256, theta=300 << 6, bias=0, reset="to-value"), "fc1")
    g.add("fc2", Dense(weight=rng.integers(-60, 127, (6, 16)).astype(np.int64), weight_format=int8), "n1")
    g.add("n2", FixedCubaLIF(du=1024, dv=410, theta=600 << 6, reset="to-value"), "fc2")
    g.add("out", Output(), "n2")
    return g


EXAMPLES = {"spiking_mlp": spiking_mlp, "spiking_cnn": spiking_cnn, "recurrent": recurrent, "cuba": cuba,
            "quantized": quantized}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for i, (name, fn) in enumerate(EXAMPLES.items()):
        g = fn(np.random.default_rng(i))
        g.verify()
        save(g, HERE / f"{name}.n3ml")
        print(f"wrote {HERE / name}.n3ml")


if __name__ == "__main__":
    main()
