"""Activity plots read back from the figure's data against the reference interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n3ml.cli import main
from n3ml.errors import N3mlError
from n3ml.ir import IF, LI, Dense, Graph, Input, Output
from n3ml.ir.interp import run
from n3ml.ir.text import load
from n3ml.viz import load_recording, plot_raster, plot_rates, plot_result, plot_voltage

ROOT = Path(__file__).parents[2]


def known_net() -> Graph:
    """x (3 spikes) -> W = 1.5 I -> IF(theta=1, subtract) -> 2 analog readouts."""
    g = Graph("known", dt=0.5)
    g.add("x", Input(shape=(3,)))
    g.add("fc", Dense(weight=1.5 * np.eye(3)), "x")
    g.add("n", IF(theta=1.0), "fc")
    g.add("spk", Output(), "n")
    g.add("ro", Dense(weight=np.ones((2, 3))), "n")
    g.add("li", LI(tau=4.0), "ro")
    g.add("out", Output(), "li")
    return g


def known_input() -> np.ndarray:
    x = np.zeros((8, 2, 3))
    x[[0, 1, 2, 5], 0, 0] = 1  # neuron 0 of sample 0: v = 1.5, 2.0, 2.5, 1.5, 1.5, 3.0 ...
    x[[3], 0, 2] = 1
    x[:, 1, 1] = 1  # sample 1: neuron 1 driven every step
    return x


def offsets(fig, node: str) -> np.ndarray:
    for ax in fig.axes:
        for c in ax.collections:
            if c.get_label() == node:
                return np.asarray(c.get_offsets())
    raise AssertionError(f"no raster of {node} in the figure")


def as_set(points) -> set[tuple[int, int]]:
    return {(int(t), int(i)) for t, i in points}


def test_raster_shows_the_interpreters_spikes_at_their_steps():
    g = known_net()
    res = run(g, known_input(), record=["n"])
    spikes = res.states["n"]
    # hand-computed for sample 0: v after input (subtract reset): 1.5 s, 2.0 s, 2.5 s, 1.5 s, 0.5, 2.0 s, 1.0, 1.0
    assert [int(t) for t in np.nonzero(spikes[:, 0, 0])[0]] == [0, 1, 2, 3, 5]
    fig = plot_raster(res, ["n"], graph=g)
    assert as_set(offsets(fig, "n")) == as_set(np.argwhere(spikes[:, 0]))
    assert as_set(offsets(fig, "n")) == {(0, 0), (1, 0), (2, 0), (3, 0), (5, 0), (3, 2)}
    fig1 = plot_raster(res, ["n"], graph=g, sample=1)
    assert as_set(offsets(fig1, "n")) == as_set(np.argwhere(spikes[:, 1]))


def test_raster_default_nodes_skip_outputs_that_repeat_a_recorded_node():
    g = known_net()
    res = run(g, known_input(), record=["n"])
    fig = plot_raster(res, graph=g)
    labels = [c.get_label() for ax in fig.axes for c in ax.collections]
    assert labels == ["n"]  # spk records n; out is analog
    fig = plot_raster(run(g, known_input()), graph=g)  # nothing recorded: the Output node stands for n
    assert as_set(offsets(fig, "spk")) == as_set(np.argwhere(run(g, known_input()).outputs["spk"][:, 0]))


def test_raster_from_npz_of_a_backend(tmp_path):
    g = known_net()
    res = run(g, known_input(), record=["n"])
    path = tmp_path / "out.npz"
    np.savez(path, **res.to_npz_dict())
    fig = plot_raster(str(path), ["n", "spk"])  # no graph: spiking is read from the values
    assert as_set(offsets(fig, "n")) == as_set(np.argwhere(res.states["n"][:, 0]))
    assert as_set(offsets(fig, "spk")) == as_set(np.argwhere(res.outputs["spk"][:, 0]))
    rec = load_recording(str(path))
    assert rec.spike_nodes() == ["spk", "n"] and "v" in rec.states["n"] and rec.dt is None


def test_voltage_traces_are_the_recorded_states():
    g = known_net()
    res = run(g, known_input(), record=["n"])
    fig = plot_voltage(res, "n", [0, 2], graph=g)
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_array_equal(lines["n[0]"].get_ydata(), res.states["n.v"][:, 0, 0])
    np.testing.assert_array_equal(lines["n[2]"].get_ydata(), res.states["n.v"][:, 0, 2])
    np.testing.assert_array_equal(lines["n[0]"].get_xdata(), np.arange(8))
    assert set(lines["theta"].get_ydata()) == {1.0}


def test_voltage_of_unrecorded_node_names_it():
    g = known_net()
    res = run(g, known_input())
    with pytest.raises(N3mlError, match=r"no state `n\.v`.*--record"):
        plot_voltage(res, "n", graph=g)
    with pytest.raises(N3mlError, match="neuron 7 is out of range"):
        plot_voltage(run(g, known_input(), record=["n"]), "n", [7], graph=g)


def test_rate_histogram_counts_every_neuron_in_hz():
    g = known_net()
    res = run(g, known_input(), record=["n"])
    fig = plot_rates(res, ["n"], graph=g, bins=5)
    (ax,) = fig.axes
    heights = np.array([p.get_height() for p in ax.patches])
    rates = res.states["n"].mean(axis=(0, 1)) * 1000.0 / g.dt  # dt = 0.5 ms
    expected, edges = np.histogram(rates, bins=5)
    np.testing.assert_array_equal(heights, expected)
    np.testing.assert_allclose([p.get_x() for p in ax.patches], edges[:-1])
    assert "Hz" in ax.get_xlabel()


def test_plot_result_writes_a_png_with_every_part(tmp_path):
    g = load(str(ROOT / "examples/graphs/recurrent.n3ml"))
    rng = np.random.default_rng(1)
    x = (rng.random((30, 1, 8)) < 0.3).astype(float)
    res = run(g, x, record=["lif"])
    path = tmp_path / "fig.png"
    fig = plot_result(g, res, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert as_set(offsets(fig, "lif")) == as_set(np.argwhere(res.states["lif"][:, 0]))
    traced = {ln.get_label() for ax in fig.axes for ln in ax.lines}
    assert {"lif[0]", "lif[4]", "out[3]", "theta"} <= traced and "lif[5]" not in traced
    hist = [ax for ax in fig.axes if ax.patches]
    assert len(hist) == 1 and sum(p.get_height() for p in hist[0].patches) == 12


def test_simulate_plot_option_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "sim.png"
    rc = main(["simulate", str(ROOT / "examples/graphs/spiking_mlp.n3ml"), "--steps", "20", "--record", "lif1",
               "--plot", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000


def test_bad_recordings_are_refused(tmp_path):
    with pytest.raises(N3mlError, match="no such file"):
        load_recording(str(tmp_path / "missing.npz"))
    with pytest.raises(N3mlError, match=r"expected \(T, B, \*shape\)"):
        load_recording({"out": np.zeros(5)})
    with pytest.raises(N3mlError, match="sample 3 is out of range"):
        plot_raster({"out": np.zeros((4, 2, 3))}, sample=3)


def test_raster_of_the_torch_executor_matches_the_interpreter():
    from n3ml.registry import ENGINES, resolve

    try:
        engine = resolve(ENGINES["torch"])
    except (KeyError, ImportError):
        pytest.skip("torch executor not available")
    g = known_net()
    ref = run(g, known_input(), record=["n"])
    res = engine(g, known_input(), 8, record=["n"])
    assert as_set(offsets(plot_raster(res, ["n"], graph=g), "n")) == as_set(np.argwhere(ref.states["n"][:, 0]))
    torch = pytest.importorskip("torch")
    as_tensors = {"spk": torch.as_tensor(ref.outputs["spk"])}
    assert as_set(offsets(plot_raster(as_tensors), "spk")) == as_set(np.argwhere(ref.outputs["spk"][:, 0]))
