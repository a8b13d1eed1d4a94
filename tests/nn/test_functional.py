import numpy as np
import pytest
import torch

from n3ml.nn import functional as F
from n3ml.nn import LIF, spike_fn


def test_step_is_pure_and_matches_module():
    torch.manual_seed(0)
    x = torch.rand(10, 2, 5, dtype=torch.float64) * 2
    p = F.LIFParams(tau=3.0, theta=0.7, reset="to-value", refractory=1, spike=spike_fn("arctan"))
    state, outs = None, []
    for t in range(10):
        before = None if state is None else state.v.clone()
        s, new = F.lif_step(x[t], state, p)
        if before is not None:
            assert torch.equal(state.v, before)  # the old state is not modified in place
        state = new
        outs.append(s)
    m = LIF(tau=3.0, theta=0.7, reset="to-value", refractory=1, surrogate="arctan")
    assert torch.equal(torch.stack(outs), m(x))


def test_coefficients_follow_ir_decay_and_gain():
    x = torch.zeros(1, 3, dtype=torch.float64)
    for scheme, a, g in (("exact", np.exp(-0.25), 1 - np.exp(-0.25)), ("euler", 0.75, 0.25)):
        c = F.coefficients(F.LIFParams(tau=4.0, r=2.0, dt=1.0, scheme=scheme), x)
        assert c.a == a and c.rg == 2.0 * g
    with pytest.raises(ValueError, match="scheme must be one of exact, euler"):
        F.coefficients(F.LIFParams(scheme="rk4"), x)
    with pytest.raises(ValueError, match="must be > 0 ms"):
        F.coefficients(F.LIFParams(tau=np.array([1.0, 0.0, 2.0])), x)


def test_initial_state_and_integrator():
    x = torch.ones(2, 3)
    st = F.initial_state(F.CubaLIFParams(v_init=0.5), x)
    assert st.v.tolist() == [[0.5] * 3] * 2 and st.i.abs().sum() == 0
    v, st = F.integrator_step(x, None, F.IntegratorParams(r=0.5, v_init=1.0))
    v, st = F.integrator_step(x, st, F.IntegratorParams(r=0.5, v_init=1.0))
    assert v.tolist() == [[2.0] * 3] * 2
