"""The fused scans (scan.py) against the one definition of the neuron update, n3ml.ir.neurons.step.

On random inputs and parameters, in float64: the fused forward equals `step` run on numpy (the
reference interpreter's arithmetic) bit for bit, and equals `step` run on torch (the executor's
step path), outputs and recorded voltages alike.
"""

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile
from n3ml.backends.torch.ops import RunCtx
from n3ml.ir import IF, LI, LIF, CubaLIF, Dense, Graph, Input, Integrator, Output
from n3ml.ir import neurons as N


def _neuron(kind, reset, rng, n):
    per = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731 - per-neuron values
    return {
        "IF": lambda: IF(theta=per(0.5, 1.5), v_reset=float(rng.uniform(-0.2, 0.2)), reset=reset,
                         v_init=per(-0.5, 0.5)),
        "LIF": lambda: LIF(tau=per(2, 20), r=per(0.5, 4), v_leak=float(rng.uniform(-0.3, 0.3)), theta=per(0.5, 2),
                           v_reset=per(-0.3, 0.3), reset=reset),
        "CubaLIF": lambda: CubaLIF(tau_syn=per(1.5, 8), tau_mem=per(2, 20), r=per(0.5, 4), theta=1.0, reset=reset,
                                   v_leak=0.1),
        "LI": lambda: LI(tau=per(2, 20), v_leak=per(-1, 1), r=per(0.5, 2), v_init=0.4),
        "Integrator": lambda: Integrator(r=per(0.1, 1.0), v_init=per(-1, 1)),
    }[kind]()


CASES = [(k, r) for k in ("IF", "LIF", "CubaLIF") for r in ("subtract", "to-value", "none")] + [
    ("LI", "none"), ("Integrator", "none")]  # readouts have no reset


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scheme", ["exact", "euler"])
@pytest.mark.parametrize("kind,reset", CASES)
def test_fused_scan_equals_the_shared_step_bit_for_bit(kind, reset, scheme, seed):
    rng = np.random.default_rng(seed)
    n, T, B = 7, 40, 3
    prim = _neuron(kind, reset, rng, n)
    g = Graph(name="g", dt=float(rng.uniform(0.5, 2.0)), scheme=scheme)
    g.add("x", Input(shape=(5,), kind="analog"))
    g.add("fc", Dense(weight=rng.normal(0.3, 0.6, (n, 5))), "x")
    g.add("n", prim, "fc")
    g.add("out", Output(), "n")
    x = rng.normal(0.4, 1.0, (T, B, 5))
    exe = compile(g, dtype=torch.float64)
    with torch.no_grad():
        drive = exe.nodes["fc"].bulk([torch.as_tensor(x)], None, None).clone()
        fused = exe.nodes["n"].bulk([drive.clone()], _Run(T, B), None)  # the fused scan (no recording)
        stepped = exe.nodes["n"].bulk([drive.clone()], _Run(T, B), {})  # n3ml.ir.neurons.step on torch
    # n3ml.ir.neurons.step on numpy, from the same synaptic drive
    k = N.discretize(prim, g.dt, g.scheme)
    k = k._replace(**{f: (v.reshape(n) if isinstance(v, np.ndarray) and v.size == n else v)
                      for f in N.ARRAYS if (v := getattr(k, f)) is not None})
    st = N.State(v=np.broadcast_to(k.v_init, (B, n)).astype(np.float64), i=np.zeros((B, n)), b=np.zeros((B, n)))
    ref = []
    for t in range(T):
        out, st = N.step(N.NUMPY, k, st, drive[t].numpy())
        ref.append(out)
    ref = np.stack(ref)
    assert np.array_equal(fused.numpy(), ref)
    assert torch.equal(fused, stepped)
    if kind not in ("LI", "Integrator"):
        assert 0 < ref.sum() < ref.size  # the test exercises spikes and silence


def _Run(T, B):
    """The per-call context a neuron's bulk() reads (sizes; no other node owns its input)."""
    return RunCtx(T=T, B=B, data={})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["arctan", "fast_sigmoid", "triangle", "rectangle", "straight_through"])
def test_scratch_surrogate_derivatives_equal_the_modules_bit_for_bit(name, dtype):
    from n3ml.backends.torch.scan import surrogate_derivative
    from n3ml.nn import spike_fn

    x = torch.cat([torch.randn(20000, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 3,
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e30, float("inf")], dtype=dtype)])
    for k in (None, 0.3, 7.1):
        f = spike_fn(name, k)
        assert torch.equal(surrogate_derivative(f, x, torch.empty_like(x)), f.derivative(x))
