"""Random neurons, parameters and inputs (hypothesis): n3ml.nn equals the reference interpreter bit for bit."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import n3ml.nn as snn
from n3ml.ir import prims as P
from tests.nn.test_modules import reference

CLASSES = [snn.IF, snn.LIF, snn.CubaLIF, snn.ALIF, snn.LI, snn.Integrator]


@st.composite
def cases(draw):
    cls = draw(st.sampled_from(CLASSES))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    per = draw(st.booleans())

    def val(lo, hi):
        return rng.uniform(lo, hi, n) if per else float(rng.uniform(lo, hi))

    kw = {}
    if cls in (snn.IF, snn.LIF, snn.CubaLIF, snn.ALIF):
        kw.update(theta=val(0.2, 1.5), v_reset=val(-0.5, 0.3), reset=draw(st.sampled_from(P.RESET_MODES)),
                  refractory=draw(st.integers(0, 3)))
    kw["v_init"] = val(-0.5, 0.5)
    if cls in (snn.LIF, snn.ALIF, snn.LI):
        kw.update(tau=val(0.5, 30.0), v_leak=val(-0.3, 0.3), r=val(0.2, 4.0))
    if cls is snn.CubaLIF:
        kw.update(tau_syn=val(0.5, 10.0), tau_mem=val(0.8, 30.0), v_leak=val(-0.3, 0.3), r=val(0.2, 4.0))
    if cls is snn.ALIF:
        kw.update(tau_adapt=val(1.0, 60.0), q=val(0.0, 1.0))
    if cls is snn.Integrator:
        kw.update(r=val(0.2, 2.0))
    scheme = draw(st.sampled_from(P.SCHEMES))
    dt = draw(st.sampled_from([0.25, 0.5, 1.0]))
    if cls not in (snn.IF, snn.Integrator):
        kw.update(dt=dt, scheme=scheme)
    x = rng.uniform(-1.0, 2.0, (draw(st.integers(1, 20)), draw(st.integers(1, 3)), *shape))
    return cls(**kw), x, kw.get("dt", 1.0), kw.get("scheme", "exact")


@settings(max_examples=40, deadline=None)
@given(cases())
def test_random_neurons_equal_reference(case):
    m, x, dt, scheme = case
    ref = reference(m, x, dt, scheme)
    out, _, rec = m.run(torch.from_numpy(x), record=True)
    np.testing.assert_array_equal(out.numpy(), ref.outputs["out"])
    np.testing.assert_array_equal(rec.v.numpy(), ref.states["n.v"])
    m.reset_state()
    steps = torch.stack([m.step(torch.from_numpy(x[t])) for t in range(len(x))])
    np.testing.assert_array_equal(steps.numpy(), ref.outputs["out"])
