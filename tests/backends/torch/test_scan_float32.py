"""The fused scans in float32 (the benchmarks' and the conversion report's dtype) against the executor's
step path, n3ml.ir.neurons.step on torch with the coefficients as Python numbers: the inference loop
and the training loop (with h) give the same spikes and readouts, bit for bit, for every neuron and
reset that has a fused form."""

import dataclasses

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile

from .test_scan_vs_step import CASES, _neuron, _Run
from n3ml.ir import Dense, Graph, Input, Output


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("kind,reset", CASES)
def test_fused_scan_equals_the_step_path_in_float32(kind, reset, scalar, grad):
    rng = np.random.default_rng(11)
    n, T, B = 6, 50, 4
    prim = _neuron(kind, reset, rng, 1 if scalar else n)  # scalar: coefficients are Python numbers
    if scalar:
        prim = dataclasses.replace(prim, **{f.name: float(getattr(prim, f.name).reshape(-1)[0])
                                            for f in dataclasses.fields(prim) if isinstance(getattr(prim, f.name), np.ndarray)})
    g = Graph(name="g", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(5,), kind="analog"))
    g.add("fc", Dense(weight=rng.normal(0.3, 0.6, (n, 5))), "x")
    g.add("n", prim, "fc")
    g.add("out", Output(), "n")
    exe = compile(g, dtype=torch.float32)
    drive = torch.as_tensor(rng.normal(0.4, 1.0, (T, B, n)), dtype=torch.float32)
    with torch.no_grad():
        stepped = exe.nodes["n"].bulk([drive.clone()], _Run(T, B), {})
    x = drive.clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        fused = exe.nodes["n"].bulk([x * 1 if grad else x], _Run(T, B), None)
    assert torch.equal(fused.detach(), stepped)
    if kind not in ("LI", "Integrator"):
        assert 0 < float(stepped.sum()) < stepped.numel()
