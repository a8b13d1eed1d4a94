"""NIR files written by snnTorch's and Norse's exporters, read by n3ml, run with the exporter's spikes
(or, where the library's own reader disagrees with its exporter, with that reader's spikes)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the nir package is not installed (make setup-nir)")
torch = pytest.importorskip("torch")

from n3ml.frontends.nir import load  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402

T = 25


def _x(n_in, batch=5, seed=0, rate=0.4):
    return (np.random.default_rng(seed).random((T, batch, n_in)) < rate).astype(np.float64)


def _steps(module, x, call):
    outs, state = [], None
    with torch.no_grad():
        for t in range(T):
            y, state = call(module, torch.as_tensor(x[t], dtype=torch.float32), state)
            outs.append(y.double().numpy())
    return np.stack(outs)


def _n3ml(path, x, **opts):
    g = load(str(path), **opts)
    return run(g, {g.input_names[0]: x}, T).outputs[g.output_names[0]]


# ------------------------------------------------------------------------------------------ snnTorch

def _snn_model(recurrent: bool):
    """reset_delay=False as snnTorch's reader builds its neurons: with the default (True) a zero-reset
    Synaptic/RLeaky also holds the membrane at 0 for the step after a spike, which the export drops."""
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")
    torch.manual_seed(0)
    h = 12
    hidden = (snn.RLeaky(beta=torch.full((h,), 0.8), threshold=torch.full((h,), 0.5), linear_features=h,
                         init_hidden=True, reset_mechanism="zero", reset_delay=False) if recurrent else
              snn.Synaptic(alpha=torch.full((h,), 0.7), beta=torch.full((h,), 0.85), threshold=torch.full((h,), 0.5),
                           init_hidden=True, reset_mechanism="zero", reset_delay=False))
    net = torch.nn.Sequential(torch.nn.Linear(10, h), hidden, torch.nn.Linear(h, 5),
                              snn.Leaky(beta=torch.full((5,), 0.9), threshold=torch.full((5,), 0.5), init_hidden=True,
                                        output=True, reset_mechanism="zero"))
    with torch.no_grad():
        net[0].weight.mul_(2.5)
        net[2].weight.mul_(2.5)
    return net


def _snn_call(m, x, state):
    y = m(x)
    return (y[0] if isinstance(y, tuple) else y), None


@pytest.mark.parametrize("recurrent", [False, True])
def test_snntorch_export_reads_with_the_models_spikes(tmp_path, recurrent):
    from snntorch.export_nir import export_to_nir

    net = _snn_model(recurrent)
    g = export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0])
    nir.write(tmp_path / "snn.nir", g)
    x = _x(10)
    want = _steps(net, x, _snn_call)
    assert want.sum() > 20
    # what the exporter wrote means the model under NIR's equations by forward Euler at snnTorch's dt = 0.1 ms
    np.testing.assert_array_equal(_n3ml(tmp_path / "snn.nir", x, dt=0.1, nir_convention="euler"), want)
    if not recurrent:
        np.testing.assert_array_equal(_n3ml(tmp_path / "snn.nir", x, nir_convention="snntorch"), want)


def test_snntorch_reader_of_its_own_recurrent_export(tmp_path):
    """snnTorch's reader runs its own RLeaky export differently from the model (the layer's input goes
    through W_rec); n3ml's snntorch convention reproduces the reader, not the model."""
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    net = _snn_model(True)
    g = export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0])
    nir.write(tmp_path / "r.nir", g)
    # in memory: read back from the file (nodes in HDF5's alphabetical order, `input` after `3`), snnTorch
    # 1.0's reader fails on its own recurrent export ('GraphModule' object has no attribute 'items')
    with contextlib.redirect_stdout(io.StringIO()):
        m = import_from_nir(g)
    x = _x(10)
    reader = _steps(m, x, lambda m, x, s: (lambda y: (y[0], y[1]))(m(x, s)))
    model = _steps(net, x, _snn_call)
    np.testing.assert_array_equal(_n3ml(tmp_path / "r.nir", x, nir_convention="snntorch"), reader)
    assert not np.array_equal(reader, model)


# --------------------------------------------------------------------------------------------- Norse

def _norse_call(m, x, state):
    return m(x, state)


def test_norse_export_reads_as_norse_reads_it(tmp_path):
    norse = pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")
    torch.manual_seed(1)
    p = norse.LIFBoxParameters(tau_mem_inv=torch.full((12,), 200.0), v_th=torch.full((12,), 0.15),
                               v_leak=torch.zeros(12), v_reset=torch.zeros(12))
    q = norse.LIFBoxParameters(tau_mem_inv=torch.full((5,), 100.0), v_th=torch.full((5,), 0.1),
                               v_leak=torch.zeros(5), v_reset=torch.zeros(5))
    net = norse.SequentialState(torch.nn.Linear(10, 12), norse.LIFBoxCell(p), torch.nn.Linear(12, 5),
                                norse.LIFBoxCell(q))
    with torch.no_grad():
        net[0].weight.mul_(5.0)
        net[2].weight.mul_(5.0)
    nir.write(tmp_path / "norse.nir", norse.to_nir(net, torch.zeros(1, 10)))
    x = _x(10, seed=1)
    want = _steps(net, x, _norse_call)
    assert want.sum() > 20
    # Norse 1.1's exporter writes tau = dt / tau_mem_inv = dt * tau_mem (5e-6 s for 5 ms): its own reader
    # then steps with dt / tau = 200, not 0.2. n3ml's norse reading reproduces that reader...
    reader = _steps(norse.from_nir(nir.read(tmp_path / "norse.nir", type_check=False)), x, _norse_call)
    np.testing.assert_array_equal(_n3ml(tmp_path / "norse.nir", x, dt=1.0, nir_convention="norse"), reader)
    assert not np.array_equal(reader, want)
    # ...and NIR's equations by Euler with the step that undoes the extra factor dt (1e-3 s * 1e-3 s = 1e-3 ms)
    # reproduce the model
    np.testing.assert_array_equal(_n3ml(tmp_path / "norse.nir", x, dt=1e-3, nir_convention="euler"), want)


# ---------------------------------------------------------------------------------------------- Spyx

def test_spyx_reading_of_snntorch_and_norse_files(tmp_path):
    """Spyx reads LIF with the spike of step t taken from the membrane of step t-1 and an undecayed
    subtract reset; n3ml's spyx convention reproduces its reader on other libraries' files."""
    pytest.importorskip("spyx.nir", reason="Spyx is not installed (make setup-nir-readers)")
    from snntorch.export_nir import export_to_nir

    from n3ml.backends.nir.run import READERS

    net = _snn_model(False)
    nir.write(tmp_path / "s.nir", export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0]))
    x = _x(10)
    want = READERS["spyx"](tmp_path / "s.nir", {}, x)
    assert want.sum() > 20
    np.testing.assert_array_equal(_n3ml(tmp_path / "s.nir", x, nir_convention="spyx"), want)


# -------------------------------------------------------------------------------------------- Sinabs

def test_sinabs_reading_is_exact_until_a_multi_spike(tmp_path):
    """Sinabs counts tau in steps and fires floor(v / theta) spikes per step; the IR emits at most one,
    so n3ml's sinabs reading equals Sinabs' reader up to each neuron's first multi-spike."""
    pytest.importorskip("sinabs", reason="Sinabs is not installed (make setup-nir-readers)")
    from n3ml.backends.nir.run import READERS

    rng = np.random.default_rng(0)
    n = 12
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([10])}),
                            "fc": nir.Affine(weight=rng.normal(0, 0.25, (n, 10)), bias=np.zeros(n)),
                            "lif": nir.LIF(tau=np.full(n, 5.0), r=np.ones(n), v_leak=np.zeros(n),
                                           v_threshold=np.ones(n), v_reset=np.zeros(n)),
                            "output": nir.Output(output_type={"output": np.array([n])})},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    nir.write(tmp_path / "s.nir", g)
    x = _x(10)
    want = READERS["sinabs"](tmp_path / "s.nir", {}, x)
    got = _n3ml(tmp_path / "s.nir", x, dt=1.0, nir_convention="sinabs")
    multi = np.cumsum(want > 1, axis=0) > 0
    assert want.sum() > 20 and (~multi).sum() > want.size // 2
    np.testing.assert_array_equal(np.where(multi, 0, got), np.where(multi, 0, want))


# -------------------------------------------------------------------------------------------- Rockpool

def _rockpool_net(scale_in, scale_out, recurrent=False):
    """A Rockpool 3.1 network (LinearTorch + LIFTorch, its CubaLIF) built and exported by Rockpool itself."""
    pytest.importorskip("rockpool.nn.modules.torch.nir", reason="Rockpool is not installed (make setup-nir-readers)")
    import warnings

    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = Sequential(LinearTorch((10, 12), has_bias=True),
                         LIFTorch(12, tau_mem=0.02, tau_syn=0.01, dt=1e-3, has_rec=recurrent),
                         LinearTorch((12, 5)), LIFTorch(5, tau_mem=0.01, tau_syn=0.005, dt=1e-3))
    with torch.no_grad():
        net[0].weight.mul_(scale_in)
        net[0].bias.mul_(0.3)
        net[2].weight.mul_(scale_out)
    return net


def _rockpool_run(net, x):
    y = net(torch.as_tensor(np.swapaxes(x, 0, 1), dtype=torch.float32))[0]
    return np.swapaxes(y.detach().double().numpy(), 0, 1)


def test_rockpool_export_reads_as_rockpool_reads_it(tmp_path):
    """Rockpool's reader takes dt = min(tau_mem / (1 + r)) from what its exporter wrote (r = tau e^(-dt/tau)/dt),
    which is not the model's dt, so its reader does not rerun its model; n3ml's rockpool convention reproduces the
    reader (identical while no neuron fires two spikes in a step, which Rockpool can and the IR cannot)."""
    pytest.importorskip("rockpool.nn.modules.torch.nir", reason="Rockpool is not installed (make setup-nir-readers)")
    from rockpool.nn.modules.torch.nir import to_nir

    from n3ml.backends.nir.run import READERS

    x = _x(10, batch=4, seed=2)
    net = _rockpool_net(0.1, 0.6)
    nir.write(tmp_path / "rp.nir", to_nir(net, torch.zeros(1, 10)))
    reader = READERS["rockpool"](tmp_path / "rp.nir", {}, x)
    assert reader.sum() > 5 and reader.max() == 1
    np.testing.assert_array_equal(_n3ml(tmp_path / "rp.nir", x, dt=1.0, nir_convention="rockpool"), reader)
    # the dt Rockpool reads back is not its model's: 0.99877 ms for tau_mem = 20 ms
    g = nir.read(tmp_path / "rp.nir", type_check=False)
    lif = next(v for v in g.nodes.values() if type(v).__name__ == "CubaLIF")
    assert abs(float(np.min(lif.tau_mem / (1 + lif.r))) - 1e-3) > 1e-7
    # a strong drive: several spikes in a step, where the single-spike reading departs
    strong = _rockpool_net(1.0, 1.0)
    nir.write(tmp_path / "rp2.nir", to_nir(strong, torch.zeros(1, 10)))
    multi = READERS["rockpool"](tmp_path / "rp2.nir", {}, x)
    assert multi.max() > 1
    assert not np.array_equal(_n3ml(tmp_path / "rp2.nir", x, dt=1.0, nir_convention="rockpool"), multi)


def test_rockpool_refuses_lif_li_and_reads_nested_recurrent_layers(tmp_path):
    """Rockpool 3.1's reader fails on nir.LIF (it reads node.tau_mem) and truncates LI's tau to whole seconds;
    the convention refuses both with that reason. A nested CubaLIF + Linear graph is its recurrent layer."""
    pytest.importorskip("rockpool.nn.modules.torch.nir", reason="Rockpool is not installed (make setup-nir-readers)")
    from n3ml.backends.nir.run import READERS
    from n3ml.errors import UnsupportedError

    n = 4
    lif = nir.LIF(tau=np.full(n, .01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": lif,
                            "output": nir.Output(output_type={"output": np.array([n])})},
                     edges=[("input", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(UnsupportedError, match="node `lif`: Rockpool 3.1.0's NIR reader fails on every nir.LIF: "
                                               "it reads `node.tau_mem`"):
        from_nir_ = __import__("n3ml.frontends.nir", fromlist=["from_nir"]).from_nir
        from_nir_(g, dt=1.0, nir_convention="rockpool")
    rng = np.random.default_rng(3)
    cuba = nir.CubaLIF(tau_syn=np.full(n, .01), tau_mem=np.full(n, .02), r=np.full(n, 19.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), w_in=np.ones(n))
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": cuba,
                              "w_rec": nir.Affine(weight=rng.normal(0, 0.004, (n, n)), bias=np.full(n, 0.5)),
                              "output": nir.Output(output_type={"output": np.array([n])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    top = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([6])}),
                              "fc": nir.Affine(weight=rng.normal(0, 0.03, (n, 6)), bias=np.zeros(n)), "rec": sub,
                              "output": nir.Output(output_type={"output": np.array([n])})},
                       edges=[("input", "fc"), ("fc", "rec"), ("rec", "output")], type_check=False)
    nir.write(tmp_path / "rec.nir", top)
    x = _x(6, batch=3, seed=4)
    want = READERS["rockpool"](tmp_path / "rec.nir", {}, x)
    assert want.sum() > 5 and want.max() == 1
    np.testing.assert_array_equal(_n3ml(tmp_path / "rec.nir", x, dt=1.0, nir_convention="rockpool"), want)


# ------------------------------------------------------------- graphs built with nir's own constructors

def _constructed(reader: str):
    """A chain built with the `nir` package's constructors holding every primitive `reader` reads (but
    convolutions and pools, which test_target's CNN covers): Affine, Linear and each neuron it reads."""
    rng = np.random.default_rng(7)
    n, m = 12, 6

    def ones(k, v=1.0):
        return np.full(k, v)

    lif = nir.LIF(tau=ones(n, 2e-3), r=ones(n, 20.0), v_leak=ones(n, 0.0), v_threshold=ones(n, 1.0),
                  v_reset=ones(n, 0.0))
    cuba = nir.CubaLIF(tau_syn=ones(m, 2e-3), tau_mem=ones(m, 5e-3), r=ones(m, 50.0), v_leak=ones(m, 0.0),
                       v_threshold=ones(m, 1.0), v_reset=ones(m, 0.0), w_in=ones(m, 20.0))
    if reader == "sinabs":  # time constants in steps; its IF clips at -theta (not read exactly): LIF twice
        lif = nir.LIF(tau=ones(n, 5.0), r=ones(n), v_leak=ones(n, 0.0), v_threshold=ones(n, 1.0))
        cuba = nir.LIF(tau=ones(m, 8.0), r=ones(m), v_leak=ones(m, 0.0), v_threshold=ones(m, 1.0))
    if reader == "rockpool":
        lif = nir.CubaLIF(tau_syn=ones(n, 1e-2), tau_mem=ones(n, 2e-2), r=ones(n, 19.0), v_leak=ones(n, 0.0),
                          v_threshold=ones(n, 1.0), w_in=ones(n))
        cuba = nir.CubaLIF(tau_syn=ones(m, 5e-3), tau_mem=ones(m, 1e-2), r=ones(m, 9.0), v_leak=ones(m, 0.0),
                           v_threshold=ones(m, 1.0), w_in=ones(m))
    scale = {"snntorch": 0.4, "norse": 2.5, "sinabs": 0.35, "spyx": 1.0, "rockpool": 0.08}[reader]
    second = nir.Affine(weight=rng.normal(0, scale * 2, (m, n)), bias=np.zeros(m)) if reader == "sinabs" else \
        nir.Linear(weight=rng.normal(0, scale * 2, (m, n)))
    nodes = {"input": nir.Input(input_type={"input": np.array([10])}),
             "fc1": nir.Affine(weight=rng.normal(0, scale, (n, 10)), bias=rng.normal(0, 0.02, n)),
             "n1": lif, "fc2": second, "n2": cuba, "output": nir.Output(output_type={"output": np.array([m])})}
    seq = ["input", "fc1", "n1", "fc2", "n2", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(seq, seq[1:])), type_check=False)


READER_MODULES = {"snntorch": "snntorch", "norse": "norse.torch", "sinabs": "sinabs", "spyx": "spyx.nir",
                  "rockpool": "rockpool.nn.modules.torch.nir"}


@pytest.mark.parametrize("reader", list(READER_MODULES))
def test_constructed_graph_runs_as_each_reader_runs_it(tmp_path, reader):
    """Each library's own reader and n3ml's reading under that library's convention give the same spikes on
    a graph written with nir's constructors (not by any exporter)."""
    pytest.importorskip(READER_MODULES[reader], reason=f"{reader} is not installed")
    from n3ml.backends.nir.run import READERS

    nir.write(tmp_path / "c.nir", _constructed(reader))
    x = _x(10, batch=8, seed=3)
    want = READERS[reader](tmp_path / "c.nir", {}, x)
    assert want.sum() > 10
    if reader in ("sinabs", "rockpool"):
        assert want.max() == 1  # no multi-spike: the single-spike reading is exact here
    np.testing.assert_array_equal(_n3ml(tmp_path / "c.nir", x, nir_convention=reader), want)


# ------------------------------------------------------------------------ Sinabs' and Spyx's exporters

def test_sinabs_export_reads_with_the_models_spikes():
    """sinabs.to_nir on a model built in Sinabs, read as Sinabs reads it, gives the model's spikes until a
    neuron fires twice in a step (Sinabs' MultiSpike; the IR fires once). Sinabs writes its LIF parameters as
    0-d torch tensors, which nir.write (1.0.8) cannot store ('Scalar datasets don't support chunk/filter
    options'), so the graph is read in memory."""
    sinabs = pytest.importorskip("sinabs", reason="Sinabs is not installed (make setup-nir-readers)")
    import copy

    import sinabs.layers as sl

    from n3ml.frontends.nir import from_nir

    B = 8
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 12), sl.LIFSqueeze(tau_mem=5.0, batch_size=B, norm_input=False),
                              torch.nn.Linear(12, 5), sl.LIFSqueeze(tau_mem=8.0, batch_size=B, norm_input=False))
    with torch.no_grad():
        net[0].weight.mul_(1.8)
        net[2].weight.mul_(6.0)
    x = _x(10, batch=B, seed=5)
    with torch.no_grad():  # Sinabs' Squeeze layers take batch and time folded (batch major)
        h = net[1](net[0](torch.as_tensor(np.swapaxes(x, 0, 1).reshape(B * T, 10), dtype=torch.float32)))
        y = net[3](net[2](h))
    def steps(a):
        return np.swapaxes(a.double().numpy().reshape(B, T, -1), 0, 1)
    want, hidden = steps(y), steps(h)
    # from the first step where any neuron of a sample fires twice, that sample is left out
    multi = np.cumsum((hidden > 1).any(-1) | (want > 1).any(-1), axis=0)[..., None] > 0
    g = copy.deepcopy(sinabs.to_nir(net, torch.zeros(B, 10)))
    for node in g.nodes.values():
        for k, v in list(vars(node).items()):
            if isinstance(v, torch.Tensor):
                setattr(node, k, v.detach().numpy())
    back = from_nir(g, nir_convention="sinabs", dt=1.0)
    got = run(back, {back.input_names[0]: x}, T).outputs[back.output_names[0]]
    assert np.where(multi, 0, want).sum() > 10 and multi.mean() < 0.5
    np.testing.assert_array_equal(np.where(multi, 0, got), np.where(multi, 0, want))


def test_spyx_export_reads_with_the_models_spikes(tmp_path):
    """spyx.nir.to_nir on a model built in Spyx (flax nnx), written to a file: n3ml's spyx reading gives the
    model's spikes (the spike of step t from the membrane of step t-1, dt = 1 s)."""
    pytest.importorskip("spyx.nir", reason="Spyx is not installed (make setup-nir-readers)")
    import jax.numpy as jnp
    import spyx.nir as sxn
    import spyx.nn as sx
    from flax import nnx

    rngs = nnx.Rngs(0)
    net = sx.Sequential(nnx.Linear(10, 12, rngs=rngs), sx.LIF((12,), beta=0.8, rngs=rngs),
                        nnx.Linear(12, 5, rngs=rngs), sx.LIF((5,), beta=0.9, rngs=rngs))
    x = _x(10, batch=4, seed=6)
    want = np.asarray(sxn.run(net, jnp.asarray(x, dtype=jnp.float32))[0], dtype=np.float64)
    assert want.sum() > 10
    nir.write(tmp_path / "spyx.nir", sxn.to_nir(net, {"input": np.array([10])}, {"output": np.array([5])}, dt=1))
    np.testing.assert_array_equal(_n3ml(tmp_path / "spyx.nir", x, nir_convention="spyx"), want)
