"""Max-pooling without gradients runs as element-wise maxima of strided views (ops._max_windows) for
non-overlapping windows on CPU: the values of F.max_pool2d (which training keeps, for its indices)."""

import pytest
import torch
import torch.nn.functional as F

from n3ml.backends.torch.ops import _max_windows


@pytest.mark.parametrize("k", [(2, 2), (3, 3), (1, 2), (2, 1), (1, 1), (3, 2)])
@pytest.mark.parametrize("shape", [(3, 4, 28, 28), (2, 3, 7, 9), (2, 2, 5, 5)])
def test_max_windows_equal_max_pool2d(shape, k):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = float("nan")  # propagated like max_pool2d
    x[0, 1, :2, :2] = torch.tensor([[-0.0, 0.0], [0.0, -0.0]])
    x[1, 0] = (x[1, 0] > 0).float()  # spikes: ties in every window
    ref, got = F.max_pool2d(x, k, k), _max_windows(x, k)
    assert got.shape == ref.shape and got.is_contiguous()
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    assert torch.equal(got.nan_to_num(7.0), ref.nan_to_num(7.0))
    assert got.data_ptr() != x.data_ptr()


def test_executor_pool_equals_in_inference_and_training():
    from n3ml.backends.torch import compile
    from n3ml.ir import IF, Conv2d, Graph, Input, MaxPool2d, Output

    g = Graph(name="g", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(2, 10, 10), kind="analog"))
    w = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    g.add("conv", Conv2d(weight=w.numpy(), padding=(1, 1)), "x")
    g.add("if", IF(theta=0.5), "conv")
    g.add("pool", MaxPool2d(kernel=(2, 2)), "if")
    g.add("out", Output(), "pool")
    exe = compile(g, dtype=torch.float32)
    x = torch.rand(6, 3, 2, 10, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fast = exe(x)["out"]
    trained = exe(x)["out"]  # parameters need gradients: max_pool2d
    assert trained.requires_grad
    assert torch.equal(fast, trained.detach())
    assert 0 < float(fast.mean()) < 1
