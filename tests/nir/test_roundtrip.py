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
