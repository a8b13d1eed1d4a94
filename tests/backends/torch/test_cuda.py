"""Every engine path on CUDA, against the same run on the CPU (skipped without a GPU).

Paths: the step path (neurons with refractoriness, ALIF, cycles, recorded states), the fused scans
(IF/LIF/CubaLIF/LI/Integrator, forward and backward), the bulk convolution path, fixed-point mode
(integer synapses in exact float64 on CUDA), runs streamed in time chunks, and lean training mode.
Run them all with scripts/gpu_checks.sh.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile, run
from n3ml.ir import interp
from n3ml.ir.text import load

from ...strategies import random_inputs
from .test_lean import csnn
from .test_reference import _kitchen_sink

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

EXAMPLES = Path(__file__).parents[3] / "examples" / "graphs"


def _sink_inputs(T, device):
    rng = np.random.default_rng(0)
    x = {"img": rng.random((T, 2, 2, 6, 6)), "vec": rng.normal(0.5, 1, (T, 2, 6)),
         "seq": (rng.random((T, 2, 2, 9)) < 0.5).astype(float)}
    return {k: torch.as_tensor(v, device=device) for k, v in x.items()}


def _close(a, b, spikes):
    a, b = a.detach().cpu(), b.detach().cpu()
    if spikes:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_step_path_and_cycles_on_cuda_equal_the_cpu():
    # every primitive, all nodes recorded (neurons then run the step path), a cycle through a Delay
    g = _kitchen_sink()
    types = g.verify()
    with torch.no_grad():
        cpu = compile(g, dtype=torch.float64)(_sink_inputs(20, "cpu"), record=list(g.nodes))
        gpu = compile(g, dtype=torch.float64, device="cuda")(_sink_inputs(20, "cuda"), record=list(g.nodes))
    for part_c, part_g in zip(cpu, gpu):
        for k in part_c:
            node = k.split(".")[0]
            _close(part_g[k], part_c[k], "." not in k and types[node].kind == "spike")


@pytest.mark.parametrize("name", ["cuba", "spiking_mlp", "spiking_cnn"])
def test_fused_scans_forward_and_backward_on_cuda(name):
    g = load(EXAMPLES / f"{name}.n3ml")
    x = torch.as_tensor(random_inputs(g, 30, 4, seed=1)["x"])
    res = []
    for device in ("cpu", "cuda"):
        exe = compile(g, dtype=torch.float64, device=device)
        out = exe(x.to(device))["out"]
        (out * torch.linspace(0.5, 1.5, out.shape[-1], dtype=out.dtype, device=device)).sum().backward()
        res.append((out, {n: p.grad for n, p in exe.named_parameters()}))
    _close(res[1][0], res[0][0], True)
    for n, gc in res[0][1].items():
        _close(res[1][1][n], gc, False)


def test_fixed_point_on_cuda_is_bit_identical():
    g = load(EXAMPLES / "quantized.n3ml")
    x = random_inputs(g, 60, 4, seed=3)
    ref = interp.run(g, x, record=["n1", "n2"])
    got = run(g, x, record=["n1", "n2"], device="cuda")
    for k, v in list(ref.outputs.items()) + list(ref.states.items()):
        have = got.outputs.get(k, got.states.get(k))
        assert np.array_equal(have, v), k


def test_streamed_inference_on_cuda_equals_one_run():
    g = _kitchen_sink()
    exe = compile(g, dtype=torch.float64, device="cuda")
    x = _sink_inputs(24, "cuda")
    with torch.no_grad():
        whole, parts = exe(x), exe(x, chunk=5)
    for k in whole:
        assert torch.equal(whole[k], parts[k]), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lean_training_on_cuda_gives_the_default_gradients(dtype, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # the same kernels in both runs
    g = csnn(c=8)
    x = torch.rand(12, 4, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    grads = []
    for memory in ("default", "lean"):
        exe = compile(g, dtype=dtype, device="cuda", memory=memory)
        exe(x.to("cuda", dtype))["out"].sum().backward()
        grads.append({n: p.grad for n, p in exe.named_parameters()})
    for n in grads[0]:
        # the recomputation repeats the forward's kernels; float32 is compared to rounding in case a
        # library picks another algorithm for a smaller workspace, float64 exactly
        if dtype == torch.float64:
            assert torch.equal(grads[0][n], grads[1][n]), n
        else:
            torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6)
