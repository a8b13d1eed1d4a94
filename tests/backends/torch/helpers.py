"""Comparison of the torch executor against the reference interpreter."""

from __future__ import annotations

import numpy as np

from n3ml.backends.torch import run as torch_run
from n3ml.ir import interp


def assert_same_as_reference(graph, inputs, *, record=(), dtype=None, fixed=None):
    """Integer and spike values must be identical; analog float values too, up to the summation
    order of matmul/conv (numpy's BLAS and torch's kernels add in different orders), so those
    are compared to 1e-12 relative."""
    types = graph.verify()
    ref = interp.run(graph, inputs, record=record, fixed=fixed)
    got = torch_run(graph, inputs, record=record, dtype=dtype, fixed=fixed)
    assert set(got.outputs) == set(ref.outputs)
    assert set(got.states) == set(ref.states)
    for k, want in list(ref.outputs.items()) + list(ref.states.items()):
        have = got.outputs.get(k, got.states.get(k))
        node = k.split(".")[0]
        assert have.shape == want.shape, k
        assert have.dtype == want.dtype, (k, have.dtype, want.dtype)
        exact = want.dtype.kind in "iu" or ("." not in k and types[node].kind == "spike")
        if exact:
            assert np.array_equal(have, want), f"{k}: {np.sum(have != want)} of {want.size} values differ"
        else:
            np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-12, err_msg=k)
    return ref, got
