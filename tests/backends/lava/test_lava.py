"""The Lava backend: refusals up front, the emitted program, and bit-exact runs in the Lava venv.

The runs need .venv-lava (`make setup-lava`, which `make test` does); without it they are skipped
with the reason. Lava runs are slow to start (one OS process per Lava process): few steps, batch 3.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.lava import LavaTarget, lava_python
from n3ml.backends.lava.lower import lower
from n3ml.errors import N3mlError, UnsupportedError
from n3ml.ir import Graph, interp, prims as P
from n3ml.ir.text import load, save
from n3ml.passes.quantize import Quantize

GRAPHS = Path(__file__).resolve().parents[3] / "examples" / "graphs"

try:
    LAVA_PY, WHY = lava_python(), ""
except N3mlError as e:
    LAVA_PY, WHY = None, str(e)
needs_lava = pytest.mark.skipif(LAVA_PY is None, reason=WHY or "the Lava venv is missing")

VERIFY_ROW = r"^lava\s+(\S+)\s+(?:spike|analog)\s+([\d.]+)%"  # a row of `n3ml verify`: output, agreement


def verify_cli(tmp_path, graph: Graph, feed: dict, steps: int, pipeline: str = "", record=()) -> tuple[int, str]:
    """(exit code, printed table) of `n3ml verify MODEL --targets lava` (the CLI) on `graph` fed `feed`."""
    from n3ml.cli import main

    model = save(graph, tmp_path / "model.n3ml")
    np.savez(tmp_path / "x.npz", **feed)
    argv = ["verify", str(model), "--targets", "lava", "--steps", str(steps), "--input", str(tmp_path / "x.npz")]
    argv += (["-p", pipeline] if pipeline else []) + [a for n in record for a in ("--record", n)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue()


def lava_variant(name: str, quantized: bool, exp_max: int = -1) -> Graph:
    """Example graphs as Lava can run them: reset to 0 (Lava's LIF), no refractoriness and no LI readout
    in fixed_pt; `quantized` runs quantize{profile=loihi2}."""
    g = load(GRAPHS / f"{name}.n3ml")
    for n, p in list(g.nodes.items()):
        if isinstance(p, (P.IF, P.LIF, P.CubaLIF)):
            g.replace(n, reset="to-value", v_reset=0.0, **({"refractory": 0} if quantized else {}))
    if name == "recurrent" and quantized:
        for n in ("out", "readout", "fc_out"):
            g.remove(n)
    return Quantize(profile="loihi2", weight_exp_max=exp_max).apply(g) if quantized else g


def spikes(g: Graph, T: int, B: int, seed: int = 1, p: float = 0.3) -> dict[str, np.ndarray]:
    return {n: (np.random.default_rng(seed).random((T, B) + tuple(g.nodes[n].shape)) < p).astype(float)
            for n in g.input_names}


def run_lava(g: Graph, x: dict, tmp: Path) -> dict[str, np.ndarray]:
    t = LavaTarget()
    t.check(g)
    out = tmp / "prog"
    out.mkdir()
    t.emit(g, out)
    np.savez(tmp / "in.npz", **x)
    r = subprocess.run(t.run_argv(out) + ["--input", str(tmp / "in.npz"), "-o", str(tmp / "out.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp / "out.npz") as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------- without Lava


def test_missing_venv_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("N3ML_LAVA_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(N3mlError, match="make setup-lava"):
        LavaTarget().run_argv(tmp_path)


def test_refuses_a_nonzero_v_reset_naming_the_node_and_takes_subtract_with_refractory():
    g = load(GRAPHS / "spiking_mlp.n3ml")
    g.replace("lif1", reset="to-value", v_reset=0.2)
    with pytest.raises(UnsupportedError, match=r"node `lif1` \(LIF\).*resets v to 0.*v_reset=0.2"):
        LavaTarget().check(g)
    g.replace("lif1", reset="none", refractory=0)  # reset none: N3mlLIF keeps v (tests: test_latency.py)
    assert lower(g).pops["lif1"].process == "N3mlLIF"
    g.replace("lif1", reset="subtract", refractory=2)  # N3mlLIF's refractory period (tests: test_n3ml_lif.py)
    pop = lower(g).pops["lif1"]
    assert (pop.process, pop.reset, pop.refractory) == ("N3mlLIF", "subtract", 2)


def subtract_variant(name: str, quantized: bool) -> Graph:
    """Example graphs keeping their reset by subtraction (n3ml's N3mlLIF process); no refractoriness."""
    g = load(GRAPHS / f"{name}.n3ml")
    for n, p in list(g.nodes.items()):
        if isinstance(p, (P.IF, P.LIF, P.CubaLIF)):
            g.replace(n, refractory=0, **({"v_reset": 0.0} if p.reset == "to-value" else {}))
    return Quantize(profile="loihi2").apply(g) if quantized else g


def test_subtract_reset_is_emitted_only_where_needed(tmp_path):
    g = subtract_variant("spiking_mlp", quantized=True)
    LavaTarget().emit(g, tmp_path)
    desc = json.loads((tmp_path / "network.json").read_text())
    assert desc["populations"]["lif1"]["process"] == "N3mlLIF"  # reset subtract
    assert desc["populations"]["lif1"]["reset"] == "subtract"
    assert desc["populations"]["lif2"]["process"] == "LIF"  # reset to 0


def test_refuses_unsupported_primitive_naming_it():
    g = Graph(name="g")
    g.add("x", P.Input(shape=(1, 4, 4)))
    g.add("mp", P.MaxPool2d(kernel=(2, 2)), "x")
    g.add("out", P.Output(), "mp")
    with pytest.raises(UnsupportedError, match=r"node `mp` \(MaxPool2d\).*does not support"):
        LavaTarget().check(g)


def test_unequal_latencies_into_an_add_are_delayed_not_refused():
    """(Refused until Lava's DelayDense was used: tests/backends/lava/test_latency.py runs such graphs.)"""
    g = Graph(name="g")
    g.add("x", P.Input(shape=(3,)))
    g.add("fa", P.Dense(weight=np.ones((3, 3))), "x")
    g.add("n1", P.IF(reset="to-value"), "fa")
    g.add("fb", P.Dense(weight=np.ones((3, 3))), "n1")
    g.add("fc", P.Dense(weight=np.ones((3, 3))), "x")
    g.add("sum", P.Add(), "fb", "fc")
    g.add("n2", P.IF(reset="to-value"), "sum")
    g.add("out", P.Output(), "n2")
    LavaTarget().check(g)
    from n3ml.backends.lava.lower import lower
    assert {c.name: c.delay for c in lower(g).conns} == {"fa": 0, "fb": 0, "fc": 1}


def test_refuses_weights_beyond_8_bits():
    g = load(GRAPHS / "quantized.n3ml")
    g.replace("fc1", weight=g.nodes["fc1"].weight * 3, weight_format=None)  # undeclared, so Lava's check decides
    with pytest.raises(UnsupportedError, match=r"node `fc1`.*8-bit mantissa"):
        LavaTarget().check(g)


def test_emits_the_runtime_and_the_network_as_data(tmp_path):
    """run.py is the package's runtime module byte for byte; the network is network.json + weights.npz."""
    from n3ml.backends.lava import runtime

    g = lava_variant("spiking_cnn", quantized=True)
    LavaTarget().emit(g, tmp_path)
    assert (tmp_path / "run.py").read_bytes() == Path(runtime.__file__).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network.json", "run.py", "weights.npz"]
    desc = json.loads((tmp_path / "network.json").read_text())
    assert desc["format"] == runtime.FORMAT and desc["run_cfg"] == "fixed_pt" and desc["graph"] == g.name
    ops = {c["name"]: c["op"] for c in desc["connections"]}
    assert "conv" in ops.values() and ops["fc"] == "dense"
    (fc,) = [c for c in desc["connections"] if c["name"] == "fc"]
    assert fc["sign_mode"] in ("MIXED", "EXCITATORY", "INHIBITORY") and isinstance(fc["weight_exp"], int)
    assert {p["kind"] for p in desc["populations"].values()} == {"input", "neuron"}
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as w:
        assert w[fc["weight"][1:]].dtype.kind == "i"



@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("quantized", [True, False])
def test_512_channels_behind_convolutions_run_exactly(quantized, tmp_path):
    """A ResNet-18 stage 4 in miniature: 512-channel populations behind a 3x3 convolution and a depthwise
    window (512 groups), fixed_pt bit for bit and floating_pt spike for spike."""
    rng = np.random.default_rng(3)
    g = Graph(name="g")
    g.add("x", P.Input(shape=(64, 2, 2)))
    g.add("c", P.Conv2d(weight=rng.normal(0, 0.3, (512, 64, 3, 3)), padding=(1, 1)), "x")
    g.add("n", P.IF(theta=1.0, reset="to-value"), "c")
    g.add("sp", P.SumPool2d(kernel=(2, 2)), "n")
    g.add("m", P.IF(theta=0.5, reset="to-value"), "sp")
    g.add("out", P.Output(), "m")
    if quantized:
        g = Quantize(profile="loihi2").apply(g)
    x = spikes(g, T=3, B=1, p=0.4)
    ref = interp.run(g, x).outputs["out"]
    assert 0 < ref.sum() < ref.size, "all or no spikes prove nothing"
    np.testing.assert_array_equal(run_lava(g, x, tmp_path)["out"], ref)


# ------------------------------------------------------------------- with Lava

EXAMPLES = ["quantized", "cuba", "spiking_cnn", "spiking_mlp", "recurrent"]


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("name", EXAMPLES)
def test_fixed_pt_is_bit_identical_to_the_reference(name, tmp_path):
    g = load(GRAPHS / "quantized.n3ml") if name == "quantized" else lava_variant(name, quantized=True)
    x = spikes(g, T=25, B=3)
    ref = interp.run(g, x).outputs
    got = run_lava(g, x, tmp_path)
    try:
        from n3ml.backends.torch import run as torch_run
        exe = torch_run(g, x).outputs
    except ImportError:
        exe = ref
    for k in ref:
        assert ref[k].sum() > 0, "a test without spikes proves nothing"
        np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{name}:{k}")
        np.testing.assert_array_equal(exe[k], ref[k], err_msg=f"executor {name}:{k}")


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("name", ["spiking_mlp", "spiking_cnn"])
def test_subtract_reset_fixed_pt_bit_identical_floating_pt_identical(name, tmp_path):
    """n3ml's N3mlLIF process (reset subtract): fixed_pt bit for bit equal to the quantized graph, floating_pt equal too."""
    for quantized in (True, False):
        g = subtract_variant(name, quantized)
        assert any(getattr(p, "reset", "") == "subtract" for p in g.nodes.values())
        x = spikes(g, T=25, B=2)
        ref = interp.run(g, x).outputs
        (tmp_path / str(quantized)).mkdir()
        got = run_lava(g, x, tmp_path / str(quantized))
        for k in ref:
            assert ref[k].sum() > 0, "a test without spikes proves nothing"
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{name}:{k} quantized={quantized}")


@needs_lava
@pytest.mark.lava
@pytest.mark.parametrize("name", ["cuba", "spiking_cnn", "spiking_mlp", "recurrent"])
def test_floating_pt_agrees_with_the_reference(name, tmp_path):
    g = lava_variant(name, quantized=False)
    x = spikes(g, T=25, B=3)
    ref = interp.run(g, x).outputs
    got = run_lava(g, x, tmp_path)
    for k in ref:
        assert np.abs(ref[k]).sum() > 0
        if g.verify()[k].kind == "analog":  # an LI readout's voltage (recurrent's `out`)
            np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-9, err_msg=f"{name}:{k}")
            continue
        agree = float(np.mean(got[k] == ref[k]))
        assert agree >= 0.99, f"{name}:{k}: {agree:.4f} of spikes agree"


@needs_lava
@pytest.mark.lava
def test_bias_and_initial_voltage_survive_lavas_latency(tmp_path):
    g = lava_variant("spiking_mlp", quantized=False)  # fc1 has a bias
    for n in ("lif1", "lif2"):
        g.replace(n, v_init=0.4)
    q = lava_variant("spiking_mlp", quantized=True)
    for n in ("lif1", "lif2"):
        q.replace(n, v_init=int(q.nodes[n].theta) // 3)
    for i, graph in enumerate((g, q)):
        x = spikes(graph, T=20, B=2, seed=3)
        ref = interp.run(graph, x).outputs["out"]
        (tmp_path / str(i)).mkdir()
        got = run_lava(graph, x, tmp_path / str(i))["out"]
        assert np.mean(got == ref) >= (0.99 if i == 0 else 1.0)


@needs_lava
@pytest.mark.lava
def test_graded_input_and_recorded_states_are_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    g = Graph(name="graded")
    g.add("x", P.Input(shape=(6,), kind="analog"))  # graded spikes: integer payloads
    g.add("fc", P.Dense(weight=rng.integers(-50, 50, (4, 6)).astype(np.int64)), "x")
    g.add("n", P.FixedCubaLIF(du=3000, dv=300, theta=64 * 500, reset="to-value"), "fc")
    g.add("fc2", P.Dense(weight=rng.integers(-100, 120, (3, 4)).astype(np.int64)), "n")
    g.add("r", P.FixedCubaLIF(du=4096, dv=200, theta=(2**17 - 1) << 6, reset="to-value"), "fc2")
    g.add("out", P.Output(), "r")
    x = {"x": rng.integers(0, 17, (12, 2, 6)).astype(float)}
    ref = interp.run(g, x, record=["n", "r"])
    t = LavaTarget()
    (tmp_path / "p").mkdir()
    t.emit(g, tmp_path / "p")
    np.savez(tmp_path / "in.npz", **x)
    r = subprocess.run(t.run_argv(tmp_path / "p") + ["--input", str(tmp_path / "in.npz"), "--record", "n,r",
                                                     "-o", str(tmp_path / "o.npz")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz") as f:
        for k in ("n.v", "n.i", "r.v", "r.i"):
            assert np.abs(ref.states[k]).max() > 0
            np.testing.assert_array_equal(f[f"state/{k}"], ref.states[k], err_msg=k)


# ------------------------------------------------------- float readouts (LI) and analog inputs


def li_graph(**li) -> Graph:
    """Analog (C, H, W) input -> Conv2d -> LIF -> Flatten -> Dense (bias) -> LI readout; both are outputs."""
    rng = np.random.default_rng(5)
    g = Graph(name="li_float")
    g.add("x", P.Input(shape=(2, 5, 5), kind="analog"))
    g.add("conv", P.Conv2d(weight=rng.normal(0, 0.6, (3, 2, 3, 3)), padding=(1, 1)), "x")
    g.add("lif", P.LIF(tau=6.0, r=2.0, theta=1.0, reset="to-value"), "conv")
    g.add("flat", P.Flatten(), "lif")
    g.add("fc", P.Dense(weight=rng.normal(0, 0.5, (4, 75)), bias=rng.normal(0, 0.2, 4)), "flat")
    args = {"tau": 7.0, "v_leak": np.array([0.0, 0.3, -0.2, 0.1]), "r": np.array([1.0, 2.0, 0.5, 1.5]),
            "v_init": np.array([0.0, 0.5, -0.25, 1.0])}
    args.update(li)
    g.add("readout", P.LI(**args), "fc")
    g.add("spikes", P.Output(), "lif")
    g.add("out", P.Output(), "readout")
    return g


def test_li_readout_lowers_to_a_lif_that_never_fires():
    from n3ml.backends.lava.lower import lower

    g = li_graph()
    net = lower(g)
    li = g.nodes["readout"]
    a = P.decay(li.tau, g.dt, g.scheme)
    prm = net.pops["readout"].params
    assert prm["du"] == 1.0 and prm["vth"] == np.inf  # u is the step's input; v never exceeds +inf
    assert prm["dv"] == pytest.approx(1 - a, abs=0)
    np.testing.assert_allclose(prm["bias_mant"][[0, 2]], ((1 - a) * li.v_leak + li.r * P.gain(li.tau, g.dt, g.scheme)
                                                          * g.nodes["fc"].bias)[[0, 2]], rtol=1e-14)
    (fc,) = [c for c in net.conns if c.name == "fc"]
    np.testing.assert_allclose(fc.weight, g.nodes["fc"].weight * (li.r * P.gain(li.tau, g.dt, g.scheme))[:, None],
                               rtol=1e-14)
    assert [(p.output, p.var) for p in net.probes] == [("spikes", "s"), ("out", "v")]
    assert net.pops["x"].graded


def test_li_refusals_name_the_node():
    # (per-neuron tau is no refusal: n3ml's N3mlLIF process takes per-neuron decays)
    assert lower(li_graph(tau=np.array([5.0, 6.0, 7.0, 8.0]))).pops["readout"].process == "N3mlLIF"
    # a readout's voltage feeding a synapse (Lava's synapses carry spikes)
    g = li_graph()
    g.add("fc_next", P.Dense(weight=np.ones((2, 4))), "readout")
    g.add("n_next", P.LIF(tau=5.0, reset="to-value"), "fc_next")
    g.add("out_next", P.Output(), "n_next")
    with pytest.raises(UnsupportedError, match=r"node `fc_next` \(Dense\).*voltage of the readout `readout`"):
        LavaTarget().check(g)
    # a float LI readout in a fixed-point graph
    h = lava_variant("spiking_mlp", quantized=True)
    last = [n for n, p in h.nodes.items() if isinstance(p, P.FixedCubaLIF)][-1]
    h.add("fc_ro", P.Dense(weight=np.ones((2,) + tuple(h.verify()[last].shape))), last)
    h.add("ro", P.LI(tau=5.0), "fc_ro")
    h.add("ro_out", P.Output(), "ro")
    with pytest.raises(UnsupportedError, match=r"node `ro` \(LI\).*fixed-point.*readout=voltage"):
        LavaTarget().check(h)


@needs_lava
@pytest.mark.lava
def test_floating_pt_li_readout_and_analog_input_match_the_reference(tmp_path):
    """Analog pixels into a convolution (graded spikes), an LI readout with per-neuron r, v_leak and
    v_init read as its voltage, recorded too: spikes identical, voltages within float rounding."""
    g = li_graph()
    x = {"x": np.random.default_rng(2).random((10, 2, 2, 5, 5))}
    ref = interp.run(g, x, record=["readout"])
    t = LavaTarget()
    (tmp_path / "p").mkdir()
    t.emit(g, tmp_path / "p")
    desc = json.loads((tmp_path / "p" / "network.json").read_text())
    assert desc["run_cfg"] == "floating_pt" and desc["readouts"] == {"out": {"population": "readout", "latency": 2}}
    with np.load(tmp_path / "p" / "weights.npz", allow_pickle=False) as w:  # +inf: a 0-d array, not JSON
        assert np.isinf(w[desc["populations"]["readout"]["params"]["vth"][1:]])
    np.savez(tmp_path / "in.npz", **x)
    r = subprocess.run(t.run_argv(tmp_path / "p") + ["--input", str(tmp_path / "in.npz"), "--record", "readout",
                                                     "-o", str(tmp_path / "o.npz")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "o.npz") as f:
        got = {k: f[k] for k in f.files}
    assert 0 < ref.outputs["spikes"].sum() < ref.outputs["spikes"].size
    np.testing.assert_array_equal(got["spikes"], ref.outputs["spikes"])
    assert got["out"].shape == ref.outputs["out"].shape == (10, 2, 4)
    np.testing.assert_allclose(got["out"], ref.outputs["out"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["state/readout.v"], ref.states["readout.v"], rtol=0, atol=1e-12)
    assert np.abs(ref.outputs["out"][0, :, 1] - 0.5).max() > 1e-3  # v_init, v_leak and input all act


@needs_lava
@pytest.mark.lava
def test_legalization_folds_scale_and_chained_dense_and_ors_spike_maxpool(tmp_path):
    """Refused by the lowering as written; the lava target's legalization (fold-scales, merge-linear,
    maxpool-as-or) makes it run, with the spikes of the original graph."""
    from n3ml.passes.legalize import legalize_for

    rng = np.random.default_rng(3)
    g = Graph(name="legal")
    g.add("x", P.Input(shape=(2, 4, 4)))
    g.add("mp", P.MaxPool2d(kernel=(2, 2)), "x")
    g.add("flat", P.Flatten(), "mp")
    g.add("fc1", P.Dense(weight=rng.normal(0.3, 0.5, (6, 8))), "flat")
    g.add("s", P.Scale(factor=1.5), "fc1")
    g.add("fc2", P.Dense(weight=rng.normal(0.3, 0.5, (4, 6)), bias=np.full(4, 0.05)), "s")
    g.add("lif", P.LIF(tau=4.0, reset="subtract"), "fc2")
    g.add("out", P.Output(), "lif")
    with pytest.raises(UnsupportedError):
        LavaTarget().check(g)
    legal = legalize_for(LavaTarget(), g, say=None)
    assert {p.op for p in legal.nodes.values()} == {"Input", "SumPool2d", "IF", "Flatten", "Dense", "LIF", "Output"}
    x = spikes(g, T=25, B=2)
    ref = interp.run(g, x).outputs
    got = run_lava(legal, x, tmp_path)
    assert ref["out"].sum() > 0
    np.testing.assert_array_equal(got["out"], ref["out"])


def test_float_conv_bias_lowers_into_the_neuron_bias():
    """A Conv2d bias is spread over the neuron's (C, H, W) before it reaches the Lava bias (it once crashed
    with a broadcast error on every SpikingJelly/Norse CNN)."""
    from n3ml.backends.lava.lower import lower

    g = Graph(name="g")
    g.add("x", P.Input(shape=(1, 5, 5)))
    g.add("c", P.Conv2d(weight=np.ones((2, 1, 3, 3)), bias=np.array([0.25, -0.5])), "x")
    g.add("n", P.LIF(tau=4.0, theta=2.0, reset="to-value"), "c")
    g.add("out", P.Output(), "n")
    bias = lower(g).pops["n"].params["bias_mant"]
    assert np.shape(bias) == (2, 3, 3)
    assert np.all(np.sign(bias[0]) == 1) and np.all(np.sign(bias[1]) == -1)


@pytest.mark.parametrize("cin,cout,groups,k,stride,padding,dilation", [
    (3, 64, 1, 7, 2, 3, 1),  # a ResNet stem
    (256, 512, 1, 3, 2, 1, 1),  # a ResNet-18 stage 4 entry
    (512, 512, 512, 3, 2, 1, 1),  # a depthwise window of 512 channels (512 groups: -128 + 0 in Lava's int8)
    (6, 8, 2, 3, 1, 2, 2),  # a batch of 2 as groups, dilated
])
def test_runtime_conv_is_torchs_conv2d_in_lavas_layout(cin, cout, groups, k, stride, padding, dilation):
    """conv_wh, the convolution of n3ml's own Conv models (Lava's int8 `groups` stops at 127), on Lava's
    flipped (Cout, KW, KH, Cin/g) weights and (W, H, C) maps, is torch's conv2d."""
    import torch

    from n3ml.backends.lava import runtime

    rng = np.random.default_rng(0)
    x = (rng.random((cin, 9, 7)) < 0.3).astype(np.int64)
    w = rng.integers(-128, 128, (cout, cin // groups, k, k))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None].double(), torch.from_numpy(w).double(),
                                     stride=stride, padding=padding, dilation=dilation, groups=groups)[0]
    got = runtime.conv_wh(x.transpose(2, 1, 0), runtime.conv_weights(w, 1), (stride,) * 2, (padding,) * 2,
                          (dilation,) * 2, groups)
    np.testing.assert_array_equal(got, ref.numpy().transpose(2, 1, 0).astype(np.int64))


@needs_lava
@pytest.mark.lava
def test_a_batch_of_128_conv_channels_is_identical(tmp_path):
    """16 samples of 8 channels: a depthwise Conv of 128 groups, which Lava 0.10's own Conv models (int8
    `groups`: -128) deliver as zeros; n3ml's Conv models run it, in one network."""
    g = Graph(name="g")
    g.add("x", P.Input(shape=(8, 4, 4)))
    g.add("sp", P.SumPool2d(kernel=(2, 2)), "x")
    g.add("n", P.IF(theta=0.5, reset="to-value"), "sp")
    g.add("out", P.Output(), "n")
    x = spikes(g, T=4, B=16, p=0.2)
    ref = interp.run(g, x).outputs["out"]
    assert ref.sum() > 0
    np.testing.assert_array_equal(run_lava(g, x, tmp_path)["out"], ref)
