"""Held-input runs on the torch executor for the passes: compile once, run batch after batch, and hand
back only what the passes keep (each recorded node's time mean, the outputs), so that a batch's full
(T, B, ...) sequences never leave the device nor reach numpy.

`n3ml.passes.base.Engine.held` has this signature; `_engines.pass_context` lends it with the torch
engine (passes import no engine themselves).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import N3mlError
from ..ir import Graph

_DTYPES = ("float32", "float64")


def torch_held(graph: Graph, *, device: str = "cpu", dtype: str = "float64", **_: Any):
    """A function `(inputs {name: (B, *shape)}, steps, record) -> (outputs {name: (T, B, *shape)},
    means {node: (B, *shape)})`, numpy float64, running `graph` compiled once on `device` in `dtype`
    with every input held for `steps` steps."""
    import torch

    from ..backends.torch import compile

    if dtype not in _DTYPES:
        raise N3mlError(f"held runs compute in {' or '.join(_DTYPES)}, found dtype {dtype!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise N3mlError(f"device {device!r} requested but CUDA is not available here")
    tdt = getattr(torch, dtype)
    exe = compile(graph, device=device, dtype=tdt)
    dev = torch.device(device)

    def host(t) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    def run(inputs: dict[str, np.ndarray], steps: int, record: list[str]):
        # the held input is one (B, ...) tensor expanded over time: no T copies on the host
        data = {k: torch.as_tensor(np.asarray(v), device=dev).to(tdt)[None].expand(steps, *v.shape)
                for k, v in inputs.items()}
        with torch.no_grad():
            res = exe(data, means=list(record))  # time means summed on the fly: no (T, B, ...) record
            outs, rec = res if isinstance(res, tuple) else (res, {})
            means = {n: host(rec[f"{n}.mean"]) for n in record}
            outputs = {k: host(v) for k, v in outs.items()}
        return outputs, means

    return run
