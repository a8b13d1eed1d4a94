"""Small graphs exercising every part of the NEST/PyNN mapping (shared by the nest and pynn tests)."""

from __future__ import annotations

import numpy as np

from n3ml.ir import (IF, LI, LIF, Add, AvgPool2d, Concat, ConstantCurrent, Conv2d, CubaLIF, Delay, Dense, Flatten,
                     Graph, Input, Integrator, Output, Scale, SumPool2d)
from n3ml.ir.text import load

EXAMPLES = "examples/graphs"


def example(name: str, reset: str | None = None) -> Graph:
    """An example graph; with `reset`, every spiking neuron's reset mode replaced."""
    from pathlib import Path

    g = load(Path(__file__).parents[3] / EXAMPLES / f"{name}.n3ml")
    if reset is not None:
        for n, p in list(g.nodes.items()):
            if getattr(p, "spiking", False) and hasattr(p, "reset"):
                g.replace(n, reset=reset)
    return g


def lif_features(scheme: str = "exact", reset: str = "to-value") -> Graph:
    """v_leak, v_init, refractory, per-neuron thetas, bias, Scale, Add, Delay, Concat into one LIF layer."""
    rng = np.random.default_rng(3)
    g = Graph(name="lif_features", dt=0.5, scheme=scheme)
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.4, 0.4, (8, 6)), bias=rng.normal(0.05, 0.05, 8)), "x")
    g.add("d", Delay(steps=2), "x")
    g.add("fc_d", Dense(weight=rng.normal(0.0, 0.3, (8, 6))), "d")
    g.add("s", Scale(factor=np.linspace(0.5, 1.5, 8)), "fc_d")
    g.add("sum", Add(), "fc", "s")
    refr = 2 if reset == "to-value" else 0
    g.add("lif", LIF(tau=6.0, theta=np.linspace(0.8, 1.2, 8), v_leak=-0.1, v_init=0.3, v_reset=-0.2,
                     reset=reset, refractory=refr, r=3.0), "sum")
    g.add("fc2", Dense(weight=rng.normal(0.3, 0.5, (4, 8))), "lif")
    g.add("if2", IF(theta=0.9, reset=reset, v_reset=0.1 if reset == "to-value" else 0.0), "fc2")
    g.add("cat", Concat(), "lif", "if2")
    g.add("out", Output(), "cat")
    g.add("late", Delay(steps=3), "if2")
    g.add("out_late", Output(), "late")
    return g


def conv_features() -> Graph:
    """Conv2d with stride/padding/bias, SumPool and AvgPool, Flatten, IF with integer-valued ties."""
    rng = np.random.default_rng(4)
    g = Graph(name="conv_features", dt=1.0)
    g.add("x", Input(shape=(2, 6, 6)))
    w = rng.integers(-1, 3, (3, 2, 3, 3)).astype(np.float64)
    g.add("conv", Conv2d(weight=w, bias=np.array([0.5, 0.0, -0.5]), stride=(1, 1), padding=(1, 1)), "x")
    g.add("if1", IF(theta=2.0, reset="to-value"), "conv")
    g.add("pool", SumPool2d(kernel=(2, 2)), "if1")
    g.add("avg", AvgPool2d(kernel=(3, 3), stride=(3, 3)), "if1")
    g.add("if2", IF(theta=1.0, reset="to-value"), "pool")
    g.add("if3", IF(theta=0.25, reset="to-value"), "avg")
    g.add("flat", Flatten(), "if2")
    g.add("fc", Dense(weight=rng.normal(0.1, 0.3, (5, 27))), "flat")
    g.add("lif", LIF(tau=4.0, theta=0.7, reset="to-value"), "fc")
    g.add("out", Output(), "lif")
    g.add("out3", Output(), "if3")
    return g


def readouts() -> Graph:
    """LI and Integrator readouts (recorded voltages) behind a spiking layer."""
    rng = np.random.default_rng(5)
    g = Graph(name="readouts", dt=1.0)
    g.add("x", Input(shape=(5,)))
    g.add("fc", Dense(weight=rng.normal(0.5, 0.3, (6, 5))), "x")
    g.add("lif", LIF(tau=5.0, reset="to-value"), "fc")
    g.add("fc_li", Dense(weight=rng.normal(0.0, 1.0, (3, 6)), bias=np.array([0.1, 0.0, -0.2])), "lif")
    g.add("li", LI(tau=7.0, v_leak=0.5, v_init=0.5), "fc_li")
    g.add("fc_int", Dense(weight=rng.normal(0.0, 1.0, (2, 6))), "lif")
    g.add("acc", Integrator(r=0.5), "fc_int")
    g.add("out_li", Output(), "li")
    g.add("out_acc", Output(), "acc")
    return g


def analog_heads(scheme: str = "exact") -> Graph:
    """Analog outputs: a Dense and a Conv result read directly (SpikingJelly heads, with biases and a Delay),
    and Norse's LICell, an LI feeding an LI (the first as the current of one exponential-current cell)."""
    rng = np.random.default_rng(8)
    g = Graph(name="analog_heads", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(2, 4, 4)))
    g.add("conv", Conv2d(weight=rng.normal(0.5, 0.4, (3, 2, 3, 3)), bias=np.array([0.1, 0.0, -0.1])), "x")
    g.add("lif", LIF(tau=5.0, reset="to-value"), "conv")
    g.add("flat", Flatten(), "lif")
    g.add("head", Dense(weight=rng.normal(0.0, 1.0, (4, 12)), bias=np.array([0.1, 0.2, -0.3, 0.0])), "flat")
    g.add("late", Delay(steps=2), "head")
    g.add("syn", LI(tau=4.0), "head")
    g.add("mem", LI(tau=9.0, v_leak=0.2, v_init=0.2, r=1.5), "syn")
    g.add("out_head", Output(), "head")
    g.add("out_late", Output(), "late")
    g.add("out_conv", Output(), "conv")
    g.add("out_li", Output(), "mem")
    g.add("out_spikes", Output(), "lif")
    return g


def cuba_features(scheme: str = "exact") -> Graph:
    """CubaLIF in a recurrent loop through a 2-step Delay (iaf_psc_exp); through 1 step it is n3ml's own cell."""
    rng = np.random.default_rng(6)
    g = Graph(name="cuba_features", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.4, 0.4, (7, 6)), bias=np.full(7, 0.01)), "x")
    g.add("sum", Add(), "fc", "rec")
    g.add("cuba", CubaLIF(tau_syn=4.0, tau_mem=9.0, theta=1.0, v_init=0.2, refractory=1, reset="to-value"),
          "sum")
    g.add("loop", Delay(steps=2), "cuba")
    g.add("rec", Dense(weight=rng.normal(0.0, 0.4, (7, 7))), "loop")
    g.add("out", Output(), "cuba")
    return g


def analog_input() -> Graph:
    """An analog input through ConstantCurrent (nest only: PyNN's spike sources carry no values)."""
    g = Graph(name="analog_input", dt=1.0)
    g.add("x", Input(shape=(4,), kind="analog"))
    g.add("cc", ConstantCurrent(scale=0.6, offset=0.05), "x")
    g.add("lif", LIF(tau=3.0, theta=0.5, reset="to-value", r=2.0), "cc")
    g.add("out", Output(), "lif")
    return g


def run_emitted(target, graph: Graph, inputs: dict, out_dir, *, steps: int, options=None, extra=()) -> dict:
    """Emit `graph` for `target` into `out_dir`, run the program on `inputs`, return its outputs."""
    import subprocess

    out_dir.mkdir(parents=True, exist_ok=True)
    target.emit(graph, out_dir, steps=steps, options=options)
    x_path = out_dir / "x.npz"
    np.savez(x_path, **inputs)
    cmd = [*target.run_argv(out_dir), "--input", str(x_path), "--steps", str(steps), "-o", str(out_dir / "o.npz"),
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    with np.load(out_dir / "o.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def assert_same_outputs(graph: Graph, inputs: dict, got: dict) -> dict:
    """Spike outputs identical to the reference interpreter, voltages equal to rounding; returns spike counts."""
    from n3ml.ir.interp import run

    ref = run(graph, inputs)
    types = graph.verify()
    counts = {}
    for name, want in ref.outputs.items():
        assert got[name].shape == want.shape, name
        if types[name].kind == "spike":
            np.testing.assert_array_equal(got[name], want, err_msg=f"output {name}")
            counts[name] = int(want.sum())
        else:
            np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-9, err_msg=f"output {name}")
    return counts


def encoders() -> Graph:
    """PoissonRate and Latency encoders of analog inputs (their random stream is part of the semantics)."""
    from n3ml.ir import Latency, PoissonRate

    rng = np.random.default_rng(8)
    g = Graph(name="encoders", dt=1.0)
    g.add("x", Input(shape=(6,), kind="analog"))
    g.add("img", Input(shape=(4,), kind="analog"))
    g.add("px", PoissonRate(gain=0.8, seed=11), "x")
    g.add("lat", Latency(window=7, x_min=0.1), "img")
    g.add("fc", Dense(weight=rng.normal(0.5, 0.3, (5, 6))), "px")
    g.add("fc_l", Dense(weight=rng.normal(0.6, 0.3, (5, 4))), "lat")
    g.add("sum", Add(), "fc", "fc_l")
    g.add("lif", LIF(tau=4.0, theta=0.8, reset="to-value"), "sum")
    g.add("out", Output(), "lif")
    g.add("spikes_in", Output(), "px")
    return g


def spike_maxpool() -> Graph:
    """MaxPool2d over spikes (an OR), with padding, feeding a layer and recorded."""
    from n3ml.ir import MaxPool2d

    rng = np.random.default_rng(9)
    g = Graph(name="spike_maxpool", dt=1.0)
    g.add("x", Input(shape=(2, 6, 6)))
    g.add("conv", Conv2d(weight=rng.normal(0.4, 0.4, (3, 2, 3, 3)), padding=(1, 1)), "x")
    g.add("if1", IF(theta=1.0, reset="to-value"), "conv")
    g.add("mp", MaxPool2d(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), "if1")
    g.add("mpx", MaxPool2d(kernel=(2, 2)), "x")
    g.add("flat", Flatten(), "mp")
    g.add("fc", Dense(weight=rng.normal(0.2, 0.3, (4, 27))), "flat")
    g.add("lif", LIF(tau=5.0, reset="to-value"), "fc")
    g.add("out", Output(), "lif")
    g.add("out_mp", Output(), "mp")
    g.add("out_mpx", Output(), "mpx")
    return g


def verify_corpus_on_nest_and_pynn(case, graph: Graph, tmp_path, capsys) -> str:
    """`n3ml verify --targets nest,pynn` (PyNN on NEST) of a corpus graph on its corpus input; asserts it exits 0
    and returns what it printed."""
    import torch

    from n3ml.cli import main
    from n3ml.ir.text import save

    model = save(graph, tmp_path / "m.n3ml")
    np.savez(tmp_path / "x.npz", **case.graph_input(graph, case.make_input(torch.float64)))
    argv = ["verify", str(model), "--targets", "nest,pynn", "--steps", str(case.steps), "--input",
            str(tmp_path / "x.npz"), "-O", "pynn.simulator=nest"]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    text = capsys.readouterr()
    text = text.out + text.err
    assert rc in (0, None), text[-3000:]
    return text
