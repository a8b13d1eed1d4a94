"""Synapse and structural ops of the interpreter against torch.nn.functional."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from n3ml.ir import AvgPool2d, Concat, Conv1d, Conv2d, Graph, Input, MaxPool2d, Output, SumPool2d
from n3ml.ir.interp import run


def one(prim, shape, x, *extra):
    g = Graph()
    g.add("x", Input(shape=shape, kind="analog"))
    g.add("n", prim, "x", *extra)
    g.add("o", Output(), "n")
    return run(g, x).outputs["o"]


@pytest.mark.parametrize("stride,pad,dil,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 1, 1, 4)])
def test_conv2d_matches_torch(stride, pad, dil, groups):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 7, 6))
    w = rng.normal(size=(4, 4 // groups, 3, 3))
    b = rng.normal(size=4)
    y = one(Conv2d(weight=w, bias=b, stride=(stride, stride), padding=(pad, pad), dilation=(dil, dil), groups=groups),
            (4, 7, 6), x)
    ref = F.conv2d(torch.tensor(x.reshape(6, 4, 7, 6)), torch.tensor(w), torch.tensor(b), stride, pad, dil, groups)
    np.testing.assert_allclose(y.reshape(ref.shape), ref.numpy(), rtol=1e-10, atol=1e-12)


def test_conv1d_matches_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 2, 2, 9))
    w = rng.normal(size=(3, 2, 3))
    y = one(Conv1d(weight=w, stride=2, padding=1, dilation=2), (2, 9), x)
    ref = F.conv1d(torch.tensor(x.reshape(4, 2, 9)), torch.tensor(w), None, 2, 1, 2)
    np.testing.assert_allclose(y.reshape(ref.shape), ref.numpy(), rtol=1e-10)


def test_pools_match_torch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 2, 3, 6, 6))
    t = torch.tensor(x.reshape(2, 3, 6, 6))
    y = one(MaxPool2d(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), (3, 6, 6), x)
    np.testing.assert_array_equal(y.reshape(2, 3, 3, 3), F.max_pool2d(t, 3, 2, 1).numpy())
    y = one(AvgPool2d(kernel=(2, 2), stride=(1, 1), padding=(1, 1)), (3, 6, 6), x)
    np.testing.assert_allclose(y.reshape(2, 3, 7, 7), F.avg_pool2d(t, 2, 1, 1, count_include_pad=True).numpy())
    y = one(SumPool2d(kernel=(2, 2)), (3, 6, 6), x)
    np.testing.assert_allclose(y.reshape(2, 3, 3, 3), 4 * F.avg_pool2d(t, 2).numpy())


def test_concat_axis():
    g = Graph()
    g.add("a", Input(shape=(2, 3), kind="analog"))
    g.add("b", Input(shape=(2, 1), kind="analog"))
    g.add("c", Concat(axis=1), "a", "b")
    g.add("o", Output(), "c")
    xa, xb = np.ones((1, 1, 2, 3)), np.zeros((1, 1, 2, 1))
    y = run(g, {"a": xa, "b": xb}).outputs["o"]
    assert y.shape == (1, 1, 2, 4) and y[..., 3].sum() == 0
