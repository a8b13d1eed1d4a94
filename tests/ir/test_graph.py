"""Graph verifier: each rule gives an error naming the node and port."""

import numpy as np
import pytest

from n3ml.ir import IF, LIF, Add, Delay, Dense, Graph, Input, Output, VerifyError
from n3ml.ir.interp import run


def base() -> Graph:
    g = Graph()
    g.add("x", Input(shape=(3,)))
    return g


def test_edge_to_unknown_node():
    g = base()
    g.add("n", IF(), "ghost")
    g.add("o", Output(), "n")
    with pytest.raises(VerifyError, match="node `n`, port `in`: input 0 refers to unknown node `ghost`"):
        g.verify()


def test_port_connected_twice_needs_add():
    g = base()
    g.add("n", IF(), "x")
    g.connect("x", "n", 0)
    g.add("o", Output(), "n")
    with pytest.raises(VerifyError, match="explicit Add"):
        g.verify()


def test_add_needs_two_inputs_of_one_shape():
    g = base()
    g.add("y", Input(shape=(4,)))
    g.add("s", Add(), "x", "y")
    g.add("o", Output(), "s")
    with pytest.raises(VerifyError, match="node `s`, port `in1`: all inputs must have shape"):
        g.verify()


def test_cycle_without_delay_and_with_zero_delay():
    g = base()
    g.add("s", Add(), "x", "d")
    g.add("n", IF(), "s")
    g.add("d", Delay(steps=0), "n")
    g.add("o", Output(), "n")
    with pytest.raises(VerifyError, match="cycle without a Delay"):
        g.verify()
    g.replace("d", steps=1)
    g.verify()


def test_delay_semantics_and_recurrence():
    g = base()
    g.add("d", Delay(steps=2), "x")
    g.add("o", Output(), "d")
    x = np.arange(15, dtype=float).reshape(5, 1, 3)
    y = run(g, x).outputs["o"]
    np.testing.assert_array_equal(y[2:], x[:3])
    assert not y[:2].any()


def test_negative_time_constant_and_bad_reset():
    g = base()
    g.add("n", LIF(tau=-1.0), "x")
    g.add("o", Output(), "n")
    with pytest.raises(VerifyError, match="node `n`: `tau` must be > 0"):
        g.verify()
    g.replace("n", tau=1.0, reset="explode")
    with pytest.raises(VerifyError, match="`reset` must be one of subtract, to-value, none"):
        g.verify()


def test_per_neuron_parameter_size_mismatch():
    g = base()
    g.add("n", IF(theta=np.ones(5)), "x")
    g.add("o", Output(), "n")
    with pytest.raises(VerifyError, match="`theta` has 5 values but the neuron has 3"):
        g.verify()


def test_duplicate_and_bad_names():
    g = base()
    with pytest.raises(VerifyError, match="already exists"):
        g.add("x", Input(shape=(1,)))
    with pytest.raises(VerifyError, match="identifiers"):
        g.add("bad name", Input(shape=(1,)))


def test_graph_needs_inputs_and_outputs():
    g = base()
    with pytest.raises(VerifyError, match="no Output"):
        g.verify()


def test_bad_dt():
    g = base()
    g.add("o", Output(), "x")
    g.dt = 0
    with pytest.raises(VerifyError, match="`dt` must be a positive"):
        g.verify()


def test_dense_weight_shape_error_names_node():
    g = base()
    g.add("fc", Dense(weight=np.ones((2, 4))), "x")
    g.add("o", Output(), "fc")
    with pytest.raises(VerifyError, match=r"node `fc`, port `in`: expected input shape \(4,\)"):
        g.verify()


def test_poisson_stream_is_the_documented_numpy_stream():
    from n3ml.ir import PoissonRate

    g = Graph()
    g.add("x", Input(shape=(4,), kind="analog"))
    g.add("p", PoissonRate(gain=1.0, seed=5), "x")
    g.add("o", Output(), "p")
    x = np.full((6, 2, 4), 0.3)
    y = run(g, x).outputs["o"]
    u = np.random.default_rng(5).random((6, 2, 4))
    np.testing.assert_array_equal(y, (u < 0.3).astype(float))


def test_latency_encoder_spikes_once_per_window():
    from n3ml.ir import Latency

    g = Graph()
    g.add("x", Input(shape=(3,), kind="analog"))
    g.add("l", Latency(window=5, x_min=0.05), "x")
    g.add("o", Output(), "l")
    x = np.broadcast_to(np.array([1.0, 0.5, 0.0]), (10, 1, 3))
    y = run(g, x).outputs["o"][:, 0]
    assert y[:, 0].nonzero()[0].tolist() == [0, 5]  # x = 1 -> first step of each window
    assert y[:, 1].nonzero()[0].tolist() == [2, 7]  # (1 - 0.5) * 4 = 2
    assert y[:, 2].sum() == 0  # below x_min


def test_fixed_point_graph_refuses_fractional_input():
    from pathlib import Path

    from n3ml.ir.text import load

    g = load(Path(__file__).parents[2] / "examples" / "graphs" / "quantized.n3ml")
    with pytest.raises(VerifyError, match="node `x`: a fixed-point graph takes integer input"):
        run(g, np.full((3, 1, 12), 0.5))  # would otherwise be truncated to 0 without a word
    run(g, np.ones((3, 1, 12)))  # 0/1 spikes are fine
