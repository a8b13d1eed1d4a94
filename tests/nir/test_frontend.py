"""The .nir frontend: every NIR primitive, hand-computed traces, conventions, reset by NIR version, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the nir package is not installed (make setup-nir)")

from n3ml.errors import N3mlError, UnsupportedError  # noqa: E402
from n3ml.frontends.nir import from_nir, load  # noqa: E402
from n3ml.ir import prims as P  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402
from n3ml.loader import load_model  # noqa: E402


def _ones(n, v=1.0):
    return np.full(n, v)


def _chain(*nodes, shape):
    names = [f"n{i}" for i in range(len(nodes))]
    g = {"input": nir.Input(input_type={"input": np.array(shape)}), **dict(zip(names, nodes)),
         "output": nir.Output(output_type={"output": np.array([1])})}
    seq = ["input", *names, "output"]
    return nir.NIRGraph(nodes=g, edges=list(zip(seq, seq[1:])), type_check=False)


def _write(tmp_path, g, name="g.nir"):
    p = tmp_path / name
    nir.write(p, g)
    return p


def test_every_primitive_maps_to_the_ir(tmp_path):
    rng = np.random.default_rng(0)
    conv = _chain(nir.Conv2d(input_shape=np.array([6, 6]), weight=rng.normal(size=(2, 1, 3, 3)), stride=1, padding=1,
                             dilation=1, groups=1, bias=np.zeros(2)),
                  nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                  nir.AvgPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]), padding=np.array([0, 0])),
                  nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
                  nir.Affine(weight=rng.normal(size=(4, 18)), bias=np.zeros(4)),
                  nir.LIF(tau=_ones(4, 0.01), r=_ones(4), v_leak=_ones(4, 0.0), v_threshold=_ones(4),
                          v_reset=_ones(4, 0.)),
                  shape=[1, 6, 6])
    inner = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3])}),
                                "cuba": nir.CubaLIF(tau_syn=_ones(3, .005), tau_mem=_ones(3, .01), r=_ones(3),
                                                    v_leak=_ones(3, 0.), v_threshold=_ones(3), w_in=_ones(3)),
                                "o": nir.Output(output_type={"output": np.array([3])})},
                         edges=[("i", "cuba"), ("cuba", "o")], type_check=False)
    line = _chain(nir.Conv1d(input_shape=5, weight=rng.normal(size=(1, 2, 3)), stride=1, padding=0, dilation=1,
                             groups=1, bias=np.zeros(1)),
                  nir.Flatten(input_type={"input": np.array([1, 3])}, start_dim=0, end_dim=-1),
                  nir.Linear(weight=np.eye(3)), nir.Scale(scale=_ones(3, 2.0)), nir.Delay(delay=_ones(3, 0.002)),
                  nir.Threshold(threshold=_ones(3, 0.5)), nir.IF(r=_ones(3), v_threshold=_ones(3)),
                  nir.LI(tau=_ones(3, .01), r=_ones(3), v_leak=_ones(3, 0.)), nir.I(r=_ones(3)),
                  nir.CubaLI(tau_syn=_ones(3, .005), tau_mem=_ones(3, .01), r=_ones(3), v_leak=_ones(3, 0.)),
                  inner, shape=[2, 5])
    ops = []
    for k, g, shape in (("conv", conv, (1, 6, 6)), ("line", line, (2, 5))):
        graph = load(str(_write(tmp_path, g, f"{k}.nir")), dt=1.0, nir_convention="exact")
        ops += [p.op for p in graph.nodes.values()]
        x = np.random.default_rng(1).random((4, 2, *shape)) < 0.5
        (y,) = run(graph, {"input": x.astype(np.float64)}, 4).outputs.values()
        assert y.shape[:2] == (4, 2) and np.all(np.isfinite(y))
    for op in ("Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Dense", "LIF", "Conv1d", "Scale", "Delay", "IF", "LI",
               "Integrator", "CubaLIF", "Input", "Output"):
        assert op in ops, op
    graph = load(str(tmp_path / "line.nir"), dt=1.0, nir_convention="exact")
    assert graph.nodes["n4"].steps == 2  # 2 ms of delay at dt = 1 ms
    assert "n10_cuba" in graph.nodes  # the nested graph's node, inlined


def test_lif_exact_trace_is_hand_computed():
    # tau = 10 ms, dt = 1 ms, r = 2: v_t = a v + 2 (1 - a) I_t; reset to v_reset = 0.1 above theta = 1
    g = _chain(nir.LIF(tau=_ones(1, 0.01), r=_ones(1, 2.0), v_leak=_ones(1, 0.0), v_threshold=_ones(1, 1.0),
                       v_reset=_ones(1, 0.1)), shape=[1])
    graph = from_nir(g, dt=1.0, nir_convention="exact")
    x = np.full((6, 1, 1), 3.0)
    y = run(graph, {"input": x}, 6).outputs["output"][:, 0, 0]
    a, v, want = np.exp(-0.1), 0.0, []
    for _ in range(6):
        v = a * v + 2 * (1 - a) * 3.0
        s = v > 1.0
        want.append(float(s))
        v = 0.1 if s else v
    assert y.tolist() == want and sum(want) >= 2


def test_if_and_integrator_scale_by_r_dt_exact():
    # dv/dt = R I: over dt = 1 ms a held input adds R * 0.001 * I
    g = _chain(nir.I(r=_ones(2, 500.0)), shape=[2])
    graph = from_nir(g, dt=1.0, nir_convention="exact")
    y = run(graph, {"input": np.ones((3, 1, 2))}, 3).outputs["output"][:, 0, 0]
    assert np.allclose(y, [0.5, 1.0, 1.5])


def test_threshold_is_stateless_and_strict():
    for conv in ("exact", "euler"):
        g = _chain(nir.Threshold(threshold=_ones(1, 0.5)), shape=[1])
        graph = from_nir(g, dt=1.0, nir_convention=conv)
        x = np.array([0.6, 0.5, 0.2, 0.7, 0.4]).reshape(5, 1, 1)
        y = run(graph, {"input": x}, 5).outputs["output"][:, 0, 0]
        assert y.tolist() == [1, 0, 0, 1, 0]


def test_snntorch_and_norse_conventions_give_their_factors():
    lif = nir.LIF(tau=_ones(3, 1e-3), r=_ones(3, 10.0), v_leak=_ones(3, 0.0), v_threshold=_ones(3, 1.0),
                  v_reset=_ones(3, 0.0))
    g = from_nir(_chain(lif, shape=[3]), nir_convention="snntorch")
    p = g.nodes["n0"]
    assert g.dt == 0.1 and g.scheme == "euler"
    # snnTorch: beta = 1 - 1e-4 / 1e-3 = 0.9, unit gain, threshold / (r dt / tau) = 1 / 1
    assert np.isclose(P.decay(p.tau, g.dt, g.scheme), 0.9) and np.isclose(p.r * P.gain(p.tau, g.dt, "euler"), 1.0)
    assert np.isclose(p.theta, 1.0) and p.reset == "to-value"
    g = from_nir(_chain(lif, shape=[3]), nir_convention="norse", dt=0.5)
    p = g.nodes["n0"]
    assert p.r == 1.0 and np.isclose(P.decay(p.tau, 0.5, "euler"), 0.5)  # Norse ignores r; 1 - dt/tau


def test_snntorch_reads_if_as_leaky(caplog):
    g = _chain(nir.IF(r=_ones(2), v_threshold=_ones(2, 2.0)), shape=[2])
    with caplog.at_level(logging.WARNING):
        graph = from_nir(g, nir_convention="snntorch")
    p = graph.nodes["n0"]
    assert p.op == "LIF" and p.reset == "subtract" and np.isclose(P.decay(p.tau, graph.dt, "euler"), 0.9)
    assert "beta = 0.9" in caplog.text


def test_convention_refusals_name_the_node():
    g = _chain(nir.LI(tau=_ones(2, .01), r=_ones(2), v_leak=_ones(2, 0.)), shape=[2])
    with pytest.raises(UnsupportedError, match=r"`n0` \(LI\)"):
        from_nir(g, nir_convention="snntorch")
    with pytest.raises(UnsupportedError, match="unknown NIR convention 'spike'"):
        from_nir(g, dt=1.0, nir_convention="spike")
    with pytest.raises(N3mlError, match="fixes dt = 0.1 ms"):
        from_nir(_chain(nir.Linear(weight=np.eye(2)), shape=[2]), dt=1.0, nir_convention="snntorch")
    with pytest.raises(N3mlError, match="give --dt"):
        from_nir(g, nir_convention="exact")
    bad_delay = _chain(nir.Delay(delay=_ones(2, 0.0015)), shape=[2])
    with pytest.raises(UnsupportedError, match="not a whole number of steps"):
        from_nir(bad_delay, dt=1.0, nir_convention="exact")


def test_bad_file_is_one_error(tmp_path):
    p = tmp_path / "junk.nir"
    p.write_bytes(b"not hdf5")
    with pytest.raises(N3mlError, match="not a readable NIR file"):
        load_model(str(p), dt=1.0)


def _old_file(tmp_path, drop_v_reset: bool, version: str):
    import h5py

    g = _chain(nir.LIF(tau=_ones(1, 1e-3), r=_ones(1), v_leak=_ones(1, 0.), v_threshold=_ones(1),
                       v_reset=_ones(1, 0.)), shape=[1])
    p = _write(tmp_path, g, f"v{version}.nir")
    with h5py.File(p, "r+") as f:
        if drop_v_reset:
            del f["node/nodes/n0/v_reset"]
        del f["version"]
        f.create_dataset("version", data=version, dtype=h5py.string_dtype())
    return p


def test_reset_follows_the_nir_version(tmp_path, caplog):
    old = _old_file(tmp_path, True, "1.0.4")  # before the 2025 change: IF/LIF reset by subtraction
    with caplog.at_level(logging.WARNING):
        g = load(str(old), dt=1.0, nir_convention="exact")
    assert g.nodes["n0"].reset == "subtract" and "1.0.4" in caplog.text
    new = _old_file(tmp_path, False, "1.0.8")
    assert load(str(new), dt=1.0, nir_convention="exact").nodes["n0"].reset == "to-value"
    caplog.clear()
    ambiguous = _old_file(tmp_path, True, "1.0.6")  # a new file without v_reset: reset to 0, said so
    with caplog.at_level(logging.WARNING):
        g = load(str(ambiguous), dt=1.0, nir_convention="exact")
    assert g.nodes["n0"].reset == "to-value" and "stores no v_reset" in caplog.text


def _recurrent_nir():
    rng = np.random.default_rng(3)
    n = 4
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "w_in": nir.Affine(weight=rng.normal(size=(n, 3)), bias=np.zeros(n)),
             "lif": nir.LIF(tau=_ones(n, 0.005), r=_ones(n), v_leak=_ones(n, 0.), v_threshold=_ones(n, 0.3),
                            v_reset=_ones(n, 0.)),
             "w_rec": nir.Affine(weight=rng.normal(size=(n, n)), bias=np.full(n, 0.2)),
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_cycles_get_the_delay_each_reader_implies():
    exact = from_nir(_recurrent_nir(), dt=1.0, nir_convention="exact")
    # the recurrent synapse reads the previous step's spikes (bias from step 0)
    assert exact.nodes[exact.inputs_of("w_rec")[0]].op == "Delay"
    norse = from_nir(_recurrent_nir(), dt=1.0, nir_convention="norse")
    # nirtorch's executor: the synapse's output arrives one step late (no bias at step 0)
    assert norse.nodes[norse.inputs_of("w_rec")[0]].op == "LIF"
    assert any(p.op == "Delay" and norse.inputs_of(n) == ["w_rec"] for n, p in norse.nodes.items())


def test_convert_cli_reads_nir(tmp_path):
    from n3ml.cli import main

    p = _write(tmp_path, _recurrent_nir())
    out = tmp_path / "out"
    assert main(["convert", str(p), "--dt", "1", "--nir-convention", "euler", "--target", "ir", "-o", str(out)]) == 0
    assert (out / "model.n3ml").exists()
    assert main(["convert", str(p), "--target", "ir", "-o", str(tmp_path / "o2")]) == 1  # no --dt: one message


def test_lava_convention_is_refused_with_the_reason():
    g = _chain(nir.Affine(weight=np.ones((1, 2)), bias=np.zeros(1)), shape=[2])
    with pytest.raises(UnsupportedError, match="'lava' is not provided: lava-dl 0.6.0 has no NIR reader.*without "
                                               "loading the NIR weights"):
        from_nir(g, dt=1.0, nir_convention="lava")
