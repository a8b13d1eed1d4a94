"""memory="lean": segments keep only their packed inputs and are recomputed in the backward pass;
outputs and gradients are the default mode's bit for bit, and far less is held for the backward."""

from pathlib import Path

import numpy as np
import pytest
import torch

from n3ml.backends.torch import compile
from n3ml.backends.torch.lean import pack, unpack, unpack_steps
from n3ml.errors import N3mlError
from n3ml.ir import IF, LIF, Add, BatchNorm, Conv2d, Dense, Flatten, Graph, Input, MaxPool2d, Output
from n3ml.ir.text import load

from .test_reference import _kitchen_sink

EXAMPLES = Path(__file__).parents[3] / "examples" / "graphs"


def csnn(c=4, seed=0):
    """A small SpikingJelly-style CSNN with a SEW residual: conv-BN-IF, max-pool, conv-BN-LIF (+ identity), dense."""
    rng = np.random.default_rng(seed)

    def bn(n):
        return BatchNorm(mean=rng.normal(0, .1, n), var=rng.uniform(.5, 2, n), gamma=rng.uniform(.5, 1.5, n),
                         beta=rng.normal(0, .1, n))

    g = Graph(name="csnn", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(1, 8, 8), kind="analog"))
    g.add("c1", Conv2d(weight=rng.normal(0.3, 0.5, (c, 1, 3, 3)), padding=(1, 1)), "x")
    g.add("b1", bn(c), "c1")
    g.add("s1", IF(reset="to-value", surrogate="arctan"), "b1")
    g.add("p1", MaxPool2d(kernel=(2, 2)), "s1")
    g.add("c2", Conv2d(weight=rng.normal(0.1, 0.4, (c, c, 3, 3)), bias=rng.normal(0, .1, c), padding=(1, 1)), "p1")
    g.add("b2", bn(c), "c2")
    g.add("s2", LIF(tau=2.0, theta=0.5, detach_reset=False), "b2")
    g.add("sew", Add(), "s2", "p1")  # values 0, 1, 2: packed as bytes
    g.add("f", Flatten(), "sew")
    g.add("fc", Dense(weight=rng.normal(0.05, 0.2, (5, c * 16))), "f")
    g.add("s3", IF(), "fc")
    g.add("out", Output(), "s3")
    return g


def _train(g, memory, x, chunk_bytes=None):
    exe = compile(g, dtype=torch.float64, memory=memory)
    if chunk_bytes is not None:
        exe.lean_chunk_bytes = chunk_bytes
    x = x.clone().requires_grad_(True)
    saved = {}

    def keep(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        out = exe(x)
    ((out["out"] * torch.linspace(0.5, 1.5, out["out"].shape[-1], dtype=torch.float64)).sum()).backward()
    grads = {n: p.grad for n, p in exe.named_parameters()}
    return exe, out["out"].detach(), grads, x.grad, sum(saved.values())


@pytest.mark.parametrize("make", [csnn, lambda: load(EXAMPLES / "spiking_cnn.n3ml")], ids=["csnn", "spiking_cnn"])
def test_lean_gradients_are_the_default_modes_bit_for_bit(make):
    g = make()
    x = torch.as_tensor(np.random.default_rng(1).random((12, 3, 1, 8, 8)) * 1.5)
    exe, out, grads, gx, saved = _train(g, "default", x)
    lexe, lout, lgrads, lgx, lsaved = _train(g, "lean", x)
    assert lexe._segments and all(len(c) > 1 for c in lexe._segments.values())
    assert torch.equal(out, lout) and out.sum() > 0
    assert set(grads) == set(lgrads)
    for n in grads:
        assert torch.equal(grads[n], lgrads[n]), n
        assert grads[n].abs().sum() > 0, n  # gradients reach every layer
    assert torch.equal(gx, lgx)
    assert lsaved < saved / 4, (lsaved, saved)


def test_lean_mode_on_every_primitive_with_recording():
    # cycles, recorded nodes (kept out of segments), encoders: the same outputs and gradients
    g = _kitchen_sink()
    rng = np.random.default_rng(0)
    x = {"img": torch.as_tensor(rng.random((16, 2, 2, 6, 6))), "vec": torch.as_tensor(rng.normal(0.5, 1, (16, 2, 6))),
         "seq": torch.as_tensor((rng.random((16, 2, 2, 9)) < 0.5).astype(float))}
    res = []
    for memory in ("default", "lean"):
        exe = compile(g, dtype=torch.float64, memory=memory)
        outs, rec = exe(x, record=["ifn"])
        sum(o.sum() for o in outs.values()).backward()
        res.append((outs, rec, {n: p.grad for n, p in exe.named_parameters()}))
    assert compile(g, memory="lean")._segments  # something was planned as a segment
    for a, b in zip(res[0], res[1]):
        for k in a:
            assert (a[k] is None and b[k] is None) or torch.equal(a[k], b[k]), k


def test_lean_inference_is_the_ordinary_run():
    g = csnn()
    x = torch.rand(6, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = compile(g, memory="lean")(x)["out"]
    assert torch.equal(a, compile(g)(x)["out"])


@pytest.mark.parametrize("x", [
    (torch.rand(3, 5, 7) < 0.3).float(),                      # spikes: 1 bit each
    torch.randint(0, 3, (4, 9)).double(),                      # spike counts: 1 byte each
    torch.randn(6, 2),                                         # analog: kept
    torch.zeros(0, 3),
])
def test_pack_gives_back_the_same_tensor(x):
    p = pack(x)
    y = unpack(p)
    assert y.dtype == x.dtype and y.shape == x.shape and torch.equal(x, y)
    if x.numel() and bool(((x == 0) | (x == 1)).all()):
        assert p[1].numel() == -(-x.numel() // 8) and p[1].dtype == torch.uint8


def test_memory_option_is_checked():
    with pytest.raises(N3mlError, match="memory must be one of default, lean, found 'small'"):
        compile(csnn(), memory="small")


def test_in_place_batch_norm_and_scan_give_the_same_gradients():
    # recording the convolutions and batch-norms keeps them from being overwritten in place
    g = csnn()
    x = torch.as_tensor(np.random.default_rng(3).random((10, 2, 1, 8, 8)) * 1.5)
    grads = []
    for record in ([], ["c1", "b1", "c2", "b2"]):
        exe = compile(g, dtype=torch.float64)
        out = exe(x, record=record)
        (out[0] if record else out)["out"].sum().backward()
        grads.append({n: p.grad for n, p in exe.named_parameters()})
    assert exe._may_own["b1"] == "c1" and exe._may_own["s1"] == "b1"
    for n in grads[0]:
        assert torch.equal(grads[0][n], grads[1][n]), n


@pytest.mark.parametrize("chunk_bytes", [1, 3000])
def test_lean_segments_in_time_chunks_give_the_default_gradients(chunk_bytes):
    # one step (or a few) per chunk, forward and backward: the scan's gradient recurrence carries
    # across chunks exactly; weight gradients are sums over chunks (equal to rounding)
    g = csnn()
    x = torch.as_tensor(np.random.default_rng(1).random((12, 3, 1, 8, 8)) * 1.5)
    _, out, grads, gx, saved = _train(g, "default", x)
    lexe, lout, lgrads, lgx, _ = _train(g, "lean", x, chunk_bytes)
    run = type("R", (), {"T": 12, "B": 3})
    assert all(lexe._lean_steps(c, run) < 12 for c in lexe._segments.values())
    assert lexe.nodes["s2"].chunk_scan() is not None  # LIF and IF run chunked
    assert torch.equal(out, lout)
    for n in grads:
        torch.testing.assert_close(lgrads[n], grads[n], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(lgx, gx, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(5, 3, 7), (4, 2, 8), (6, 1, 1)])
def test_unpack_steps_reads_any_step_range(shape):
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(2)) < 0.4).double()
    p = pack(x)
    for t0 in range(shape[0]):
        for t1 in range(t0 + 1, shape[0] + 1):
            assert torch.equal(unpack_steps(p, t0, t1), x[t0:t1])
    counts = x * 3
    assert torch.equal(unpack_steps(pack(counts), 1, 3), counts[1:3])
