"""`run`: the torch executor as a simulation engine (`n3ml simulate --engine torch`)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from ...errors import N3mlError
from ...ir.graph import Graph
from ...ir.interp import Result, check_integer_inputs, normalize_inputs
from .executor import compile
from .ops import numeric_array

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "double": torch.float64, "float": torch.float32}


def _host(v, what: str) -> np.ndarray:
    return numeric_array(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, what)


def run(graph: Graph, inputs, steps: int | None = None, *, record: Iterable[str] = (), device="cpu",
        dtype=None, fixed: bool | None = None) -> Result:
    """Run `graph` like `n3ml.ir.interp.run`, on the torch executor.

    Args:
        inputs: dict Input-name -> array (T, B, *shape) (numpy or torch), or one array.
        steps: number of steps (default: all of the input's T).
        record: nodes whose outputs and states are recorded.
        device: torch device ("cpu", "cuda", "cuda:1").
        dtype: torch dtype or its name; default float64 (bit-identical to the reference).
        fixed: integer arithmetic; default: True when the graph holds a FixedCubaLIF.
    Returns:
        `Result` of numpy arrays (float64, or int64 in fixed-point mode).
    """
    if dtype is None:
        dtype = torch.float64
    elif isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise N3mlError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
        dtype = _DTYPES[dtype]
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise N3mlError(f"device {device!r} requested but CUDA is not available here")
    data, _, _ = normalize_inputs(graph, {k: _host(v, f"input `{k}`") for k, v in inputs.items()}
                                  if isinstance(inputs, dict) else _host(inputs, "the input"), steps)
    exe = compile(graph, device=device, dtype=dtype, fixed=fixed)
    if exe.fixed:
        check_integer_inputs(data)
    with torch.no_grad():
        res = exe({k: torch.as_tensor(v) for k, v in data.items()}, record=list(record))
    outs, recorded = res if isinstance(res, tuple) else (res, {})

    def host(t: torch.Tensor) -> np.ndarray:
        a = t.detach().cpu().numpy()
        return a.astype(np.int64) if exe.fixed and a.dtype.kind in "iub" else a.astype(np.float64)

    return Result({k: host(v) for k, v in outs.items()}, {k: host(v) for k, v in recorded.items()})
