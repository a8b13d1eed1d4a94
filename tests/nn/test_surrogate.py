import math
import pickle

import pytest
import torch

from n3ml.nn import SURROGATES, spike_fn

X = torch.tensor([-2.0, -0.6, -0.3, -0.1, -1e-3, 0.0, 1e-3, 0.1, 0.3, 0.6, 2.0], dtype=torch.float64)

FORMULAS = {
    "fast_sigmoid": lambda x, k: 1.0 / (1.0 + k * abs(x)) ** 2,
    "arctan": lambda x, k: (k / 2) / (1.0 + (math.pi * k * x / 2) ** 2),
    "triangle": lambda x, k: k * max(0.0, 1.0 - k * abs(x)),
    "rectangle": lambda x, k: k * (1.0 if abs(x) < 0.5 / k else 0.0),
    "straight_through": lambda x, k: 1.0,
    "sigmoid": lambda x, k: k / (2.0 + 2.0 * math.cosh(k * x)),  # = k sig(kx) (1 - sig(kx))
    "erf": lambda x, k: k / math.sqrt(math.pi) * math.exp(-(k * x) ** 2),
    "soft_sign": lambda x, k: 1.0 / (2 * k * (1 / k + abs(x)) ** 2),  # SpikingJelly's form
    "piecewise_exp": lambda x, k: k / 2 * math.exp(-k * abs(x)),
}


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("slope", [0.5, 2.0, 7.0])
def test_forward_is_strict_heaviside_and_backward_matches_formula(name, slope):
    f = spike_fn(name, slope)
    x = X.clone().requires_grad_(True)
    s = f(x)
    assert s.dtype == x.dtype
    assert s.tolist() == [1.0 if v > 0 else 0.0 for v in X.tolist()]  # 0 exactly does not spike
    w = torch.linspace(0.5, 1.5, len(X), dtype=torch.float64)  # upstream gradient is multiplied in
    (s * w).sum().backward()
    want = [wi * FORMULAS[name](xi, slope) for xi, wi in zip(X.tolist(), w.tolist())]
    # absolute error k * eps: sigmoid's 1 - sig(kx) (SpikingJelly's operations) cancels in the tails
    assert x.grad.tolist() == pytest.approx(want, rel=1e-12, abs=1e-15 * max(1.0, slope))


def test_default_slope_and_derivative_helper():
    f = spike_fn("fast_sigmoid")
    assert f.slope == 25.0
    assert torch.allclose(f.derivative(X), torch.tensor([FORMULAS["fast_sigmoid"](v, 25.0) for v in X.tolist()],
                                                        dtype=torch.float64))


def test_gradcheck_away_from_kinks():
    x = torch.tensor([-0.7, -0.2, 0.05, 0.4], dtype=torch.float64, requires_grad=True)
    for name in ("fast_sigmoid", "arctan"):
        f = spike_fn(name, 3.0)
        # numerical derivative of the forward is 0 here; compare the backward with the closed form instead
        (g,) = torch.autograd.grad(f(x).sum(), x)
        assert torch.allclose(g, f.derivative(x.detach()))


def test_unknown_name_lists_supported():
    with pytest.raises(ValueError) as e:
        spike_fn("sigmoidish")
    for name in SURROGATES:
        assert name in str(e.value)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "2"])
def test_bad_slope(bad):
    with pytest.raises(ValueError, match="slope"):
        spike_fn("arctan", bad)


def test_picklable():
    f = pickle.loads(pickle.dumps(spike_fn("triangle", 2.0)))
    assert (f.name, f.slope) == ("triangle", 2.0)


def test_every_surrogate_has_a_default_slope_in_the_ir():
    """The IR's table (verifier, text format) and the torch formulas name the same surrogates."""
    from n3ml.ir.neurons import SURROGATE_SLOPES
    assert set(SURROGATES) == set(SURROGATE_SLOPES) == set(FORMULAS)


# the step each smooth surrogate stands for rises by 1 in all: its mass over [-L, L], in closed form
MASS = {
    "arctan": lambda k, L: 2 / math.pi * math.atan(math.pi * k * L / 2),
    "sigmoid": lambda k, L: math.tanh(k * L / 2),
    "erf": lambda k, L: math.erf(k * L),
    "soft_sign": lambda k, L: 1 - 1 / (1 + k * L),
    "piecewise_exp": lambda k, L: 1 - math.exp(-k * L),
}


@pytest.mark.parametrize("name", sorted(MASS))
@pytest.mark.parametrize("slope", [0.5, 4.0])
def test_smooth_surrogates_are_densities_of_a_unit_step(name, slope):
    L = 3.0
    x = torch.linspace(-L, L, 600_001, dtype=torch.float64)
    area = torch.trapezoid(spike_fn(name, slope).derivative(x), x).item()
    assert area == pytest.approx(MASS[name](slope, L), abs=1e-8)
    assert MASS[name](slope, 1e9) == pytest.approx(1.0, abs=1e-8)


def test_sigmoid_is_finite_far_from_threshold():
    """k sig(kx) (1 - sig(kx)), not snnTorch's exp(-kx) / (1 + exp(-kx))^2, which is inf / inf = nan for kx << 0."""
    x = torch.tensor([-1e3, -50.0, 50.0, 1e3], dtype=torch.float64, requires_grad=True)
    spike_fn("sigmoid", 25.0)(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad >= 0).all()


@pytest.mark.parametrize("name", ["sigmoid", "erf", "soft_sign", "piecewise_exp"])
def test_peer_surrogates_travel_with_an_n3ml_neuron(name):
    """An n3ml.nn neuron with one of the peers' surrogates trains alike as a module and as its IR graph on the
    executor (fused scan and step-by-step form)."""
    import n3ml.nn as snn
    from .test_training_semantics import _check
    for record in (False, True):
        _check(snn.LIF(tau=3.0, r=2.0, surrogate=name, slope=1.5), record)
    ir = snn.LIF(tau=3.0, surrogate=name, slope=1.5).to_ir()
    assert (ir.surrogate, ir.slope) == (name, 1.5)
