"""n3ml.nn modules against the reference interpreter (bit-exact in float64) and hand-computed traces."""

import itertools

import numpy as np
import pytest
import torch

import n3ml.nn as snn
from n3ml.ir import Graph, interp
from n3ml.ir import prims as P

N, B, T = 6, 3, 32


def reference(module, x: np.ndarray, dt: float, scheme: str):
    """Run the module's to_ir() primitive alone in the reference interpreter; record its states."""
    g = Graph(dt=dt, scheme=scheme)
    g.add("x", P.Input(shape=x.shape[2:], kind="analog"))
    g.add("n", module.to_ir(), "x")
    g.add("out", P.Output(), "n")
    return interp.run(g, {"x": x}, record=["n"])


def per_neuron(rng, lo, hi):
    return rng.uniform(lo, hi, N)


def make(cls, reset, refractory, dt, scheme, rng, arrays):
    pick = (lambda lo, hi: per_neuron(rng, lo, hi)) if arrays else (lambda lo, hi: float(rng.uniform(lo, hi)))
    common = dict(theta=pick(0.6, 1.2), v_reset=pick(-0.3, 0.2), reset=reset, refractory=refractory,
                  v_init=pick(-0.2, 0.5))
    if cls is snn.IF:
        return cls(**common)
    if cls is snn.LIF:
        return cls(tau=pick(2.0, 10.0), v_leak=pick(-0.1, 0.1), r=pick(2.0, 5.0), dt=dt, scheme=scheme, **common)
    if cls is snn.CubaLIF:
        return cls(tau_syn=pick(2.0, 8.0), tau_mem=pick(3.0, 10.0), v_leak=pick(-0.1, 0.1), r=pick(0.5, 2.0),
                   dt=dt, scheme=scheme, **common)
    if cls is snn.ALIF:
        return cls(tau=pick(2.0, 10.0), tau_adapt=pick(5.0, 50.0), q=pick(0.05, 0.5), v_leak=pick(-0.1, 0.1),
                   r=pick(2.0, 5.0), dt=dt, scheme=scheme, **common)
    if cls is snn.LI:
        return cls(tau=pick(2.0, 20.0), v_leak=pick(-0.1, 0.1), r=pick(0.5, 2.0), v_init=pick(-0.2, 0.5),
                   dt=dt, scheme=scheme)
    return cls(r=pick(0.5, 2.0), v_init=pick(-0.2, 0.5))


SPIKING = [snn.IF, snn.LIF, snn.CubaLIF, snn.ALIF]
CASES = [(c, r, R, s, a) for c, r, R, s, a in itertools.product(SPIKING, P.RESET_MODES, (0, 2), P.SCHEMES, (0, 1))
         if not (c is snn.IF and s == "euler")]


@pytest.mark.parametrize("cls,reset,refractory,scheme,arrays", CASES,
                         ids=[f"{c.__name__}-{r}-R{R}-{s}-{'arr' if a else 'scal'}" for c, r, R, s, a in CASES])
def test_spiking_modules_equal_reference_bit_for_bit(cls, reset, refractory, scheme, arrays):
    rng = np.random.default_rng(CASES.index((cls, reset, refractory, scheme, arrays)))
    dt = 0.5 if arrays else 1.0
    m = make(cls, reset, refractory, dt, scheme, rng, arrays)
    x = rng.uniform(-0.2, 0.9, (T, B, N))
    ref = reference(m, x, dt, scheme)
    out, _, rec = m.run(torch.from_numpy(x), record=True)
    assert out.dtype == torch.float64
    spikes = out.numpy()
    assert 0 < spikes.sum() < spikes.size, "the case must exercise both spiking and silence"
    np.testing.assert_array_equal(spikes, ref.outputs["out"])
    np.testing.assert_array_equal(rec.v.numpy(), ref.states["n.v"])
    if cls is snn.CubaLIF:
        np.testing.assert_array_equal(rec.i.numpy(), ref.states["n.i"])
    if cls is snn.ALIF:
        np.testing.assert_array_equal(rec.b.numpy(), ref.states["n.b"])
    if refractory:  # a spike is followed by `refractory` silent steps
        for t in np.argwhere(spikes[:-refractory] > 0):
            assert spikes[t[0] + 1:t[0] + 1 + refractory, t[1], t[2]].sum() == 0


@pytest.mark.parametrize("cls", [snn.LI, snn.Integrator])
@pytest.mark.parametrize("scheme", P.SCHEMES)
def test_readout_modules_equal_reference(cls, scheme):
    rng = np.random.default_rng(7)
    m = make(cls, None, 0, 0.25, scheme, rng, True)
    x = rng.normal(size=(T, B, N))
    ref = reference(m, x, 0.25, scheme)
    out = m(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(out, ref.outputs["out"])


def test_step_api_equals_forward_and_reset_state():
    rng = np.random.default_rng(3)
    m = make(snn.ALIF, "subtract", 1, 1.0, "exact", rng, True)
    x = torch.from_numpy(rng.uniform(0, 1, (T, B, N)))
    full = m(x)
    for _ in range(2):  # reset_state makes the second pass start again from v_init
        m.reset_state()
        steps = torch.stack([m.step(x[t]) for t in range(T)])
        assert torch.equal(steps, full)
    assert m.state.v.shape == (B, N)


def test_multidimensional_neurons_take_flat_per_neuron_params():
    rng = np.random.default_rng(4)
    theta = rng.uniform(0.5, 1.0, 2 * 3 * 4)
    m = snn.LIF(tau=5.0, theta=theta)
    x = rng.uniform(0, 1, (T, B, 2, 3, 4))
    np.testing.assert_array_equal(m(torch.from_numpy(x)).numpy(), reference(m, x, 1.0, "exact").outputs["out"])
    with pytest.raises(ValueError, match="5 values but the layer has 24 neurons"):
        snn.LIF(theta=np.ones(5))(torch.zeros(T, B, 2, 3, 4))


# ------------------------------------------------------------ hand-computed traces


def trace(m, inputs):
    x = torch.tensor(inputs, dtype=torch.float64).reshape(-1, 1, 1)
    s, _, rec = m.run(x, record=True)
    return s.flatten().tolist(), rec.v.flatten().tolist()


def test_if_subtract_trace():
    s, v = trace(snn.IF(theta=1.0), [0.625] * 5)
    assert s == [0, 1, 0, 1, 1]  # 0.625, 1.25 -> .25, .875, 1.5 -> .5, 1.125 -> .125
    assert v == [0.625, 0.25, 0.875, 0.5, 0.125]


def test_strict_threshold_equal_does_not_fire():
    s, v = trace(snn.IF(theta=1.0, reset="to-value", v_reset=-0.5), [0.5, 0.5, 0.25, 0.5])
    assert s == [0, 0, 1, 0]  # v == theta exactly at step 1 stays silent
    assert v == [0.5, 1.0, -0.5, 0.0]


def test_if_refractory_trace():
    s, v = trace(snn.IF(theta=0.5, refractory=2), [1.0] * 7)
    # spike, two held steps, spike again at t + R + 1
    assert s == [1, 0, 0, 1, 0, 0, 1]
    assert v == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.5]


def test_lif_euler_trace():
    # euler, tau = 2 ms, dt = 1 ms: a = 0.5, g = 0.5; r = 2 gives unit input gain
    s, v = trace(snn.LIF(tau=2.0, r=2.0, theta=1.5, scheme="euler", reset="none"), [1.0] * 4)
    assert v == [1.0, 1.5, 1.75, 1.875]
    assert s == [0, 0, 1, 1]


def test_lif_exact_factors_and_leak():
    m = snn.LIF(tau=4.0, v_leak=0.5, theta=10.0, dt=2.0)
    a = np.exp(-0.5)
    s, v = trace(m, [0.0, 1.0])
    assert v[0] == 0.5 + a * (0.0 - 0.5)
    assert v[1] == 0.5 + a * (v[0] - 0.5) + 1.0 * (1.0 - a) * 1.0


def test_cuba_lif_current_enters_same_step():
    s, v = trace(snn.CubaLIF(tau_syn=2.0, tau_mem=2.0, r=2.0, scheme="euler", theta=100.0), [1.0, 0.0, 0.0])
    # i = 1, .5, .25 ; v = 0.5*v + i
    assert v == [1.0, 1.0, 0.75]


def test_alif_threshold_adapts():
    m = snn.ALIF(tau=2.0, tau_adapt=2.0, q=0.5, r=2.0, scheme="euler", theta=0.5, reset="to-value")
    x = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64).reshape(-1, 1, 1)
    s, _, rec = m.run(x, record=True)
    # t0: b'=0, v=1 > .5 spike -> v=0, b=.5 ; t1: b'=.25, v=1 > .75 spike -> b=.75
    # t2: b'=.375, v=1 > .875 spike -> b=.875 ; t3: b'=.4375, v=1 > .9375 spike
    assert s.flatten().tolist() == [1, 1, 1, 1]
    assert rec.b.flatten().tolist() == [0.5, 0.75, 0.875, 0.9375]
    s, _, rec = snn.ALIF(tau=2.0, tau_adapt=2.0, q=2.0, r=2.0, scheme="euler", theta=0.5).run(x, record=True)
    # subtract reset by theta + b': t0 v=1 > .5 -> v=.5, b=2 ; t1 b'=1, v=1.25 < 1.5 ;
    # t2 b'=.5, v=1.625 > 1 -> v=.625, b=2.5 ; t3 b'=1.25, v=1.3125 < 1.75
    assert s.flatten().tolist() == [1, 0, 1, 0]
    assert rec.v.flatten().tolist() == [0.5, 1.25, 0.625, 1.3125]
    assert rec.b.flatten().tolist() == [2.0, 1.0, 2.5, 1.25]


# ------------------------------------------------------------------- encoders


def encoder_reference(enc, x):
    g = Graph()
    g.add("x", P.Input(shape=x.shape[2:], kind="analog"))
    g.add("e", enc.to_ir(), "x")
    g.add("out", P.Output(), "e")
    return interp.run(g, {"x": x}).outputs["out"]


@pytest.mark.parametrize("enc", [snn.PoissonRate(gain=0.8, seed=11), snn.ConstantCurrent(scale=1.5, offset=-0.25),
                                 snn.Latency(window=5, x_min=0.1), snn.Latency(window=4)],
                         ids=["poisson", "current", "latency5", "latency4"])
def test_encoders_equal_reference_in_forward_and_step(enc):
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.2, 1.3, (13, B, 2, 3))
    ref = encoder_reference(enc, x)
    xt = torch.from_numpy(x)
    np.testing.assert_array_equal(enc(xt).numpy(), ref)
    enc.reset_state()
    np.testing.assert_array_equal(torch.stack([enc.step(xt[t]) for t in range(len(x))]).numpy(), ref)
    if not isinstance(enc, snn.ConstantCurrent):
        assert 0 < ref.sum() < ref.size


def test_poisson_stream_is_the_numpy_draw():
    x = torch.full((4, 2, 3), 0.5, dtype=torch.float64)
    u = np.random.default_rng(9).random((4, 2, 3))
    assert np.array_equal(snn.PoissonRate(seed=9)(x).numpy(), (u < 0.5).astype(float))


# ------------------------------------------------------------- torch behaviour


def test_float32_and_dtype_follow_input():
    m = snn.CubaLIF(tau_syn=3.0, tau_mem=np.full(N, 8.0))
    x = torch.rand(T, B, N)
    out = m(x)
    assert out.dtype == torch.float32 and out.device == x.device
    ref = reference(m, x.double().numpy(), 1.0, "exact").outputs["out"]
    assert np.mean(out.numpy() == ref) > 0.99  # float32 may flip a spike at a near-tie


def test_gradients_flow_to_inputs_and_learnable_params():
    m = snn.LIF(tau=np.full(N, 5.0), theta=1.0, learnable=("tau", "theta"))
    assert {n for n, _ in m.named_parameters()} == {"tau", "theta"}
    x = torch.rand(T, B, N, requires_grad=True)
    m(x * 2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert m.tau.grad.abs().sum() > 0 and m.theta.grad.abs() > 0
    assert isinstance(m.to_ir().tau, np.ndarray) and isinstance(m.to_ir().theta, float)


def test_buffers_are_saved_and_errors_are_clear():
    m = snn.LIF(theta=np.linspace(0.5, 1.5, N))
    assert "theta" in m.state_dict()
    with pytest.raises(ValueError, match="cannot learn"):
        snn.LIF(learnable=("tau_mem",))
    with pytest.raises(ValueError, match="reset must be one of subtract, to-value, none"):
        snn.IF(reset="zero")
    with pytest.raises(ValueError, match="unknown surrogate"):
        snn.LIF(surrogate="nope")
    with pytest.raises(ValueError, match=r"expected a sequence of shape \(T, B, ...\)"):
        snn.LIF()(torch.zeros(5))


def test_time_distributed_and_linear_between_neurons():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    net = torch.nn.Sequential(snn.TimeDistributed(conv), snn.LIF(tau=4.0), torch.nn.Flatten(2),
                              torch.nn.Linear(2 * 5 * 5, 3), snn.LI(tau=5.0))
    x = snn.repeat_time(torch.rand(B, 1, 5, 5), 7)
    y = net(x)
    assert y.shape == (7, B, 3)
    # TimeDistributed equals applying the layer step by step
    assert torch.allclose(net[0](x)[4], conv(x[4]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float64_equals_cpu():
    rng = np.random.default_rng(8)
    m = make(snn.ALIF, "subtract", 1, 1.0, "exact", rng, True)
    x = torch.from_numpy(rng.uniform(-0.2, 0.9, (T, B, N)))
    out = m.to("cuda")(x.to("cuda"))
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), m.cpu()(x))
