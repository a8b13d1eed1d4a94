"""Run an emitted NIR file with a library's own NIR reader (the program `n3ml verify` runs for nir:*).

    python -m n3ml.backends.nir.run OUT_DIR --input X.npz --steps T -o OUT.npz

OUT_DIR holds model.nir and target.json (the reader convention, dt, input and output names). The
file is read with the reader's public entry point and default settings (snnTorch:
`snntorch.import_nir.import_from_nir`, Norse: `norse.torch.from_nir`, Sinabs: `sinabs.from_nir`, Spyx:
`spyx.nir.from_nir`, Rockpool: `rockpool.nn.modules.torch.nir.from_nir`; exact/euler: n3ml's own .nir
frontend and reference interpreter), run T steps on the whole batch, and the outputs saved as (T, B, *shape).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _torch_steps(module: Any, x: np.ndarray, stateful_call: bool) -> np.ndarray:
    import torch

    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            xt = torch.as_tensor(x[t], dtype=torch.float32)
            if stateful_call:
                y, state = module(xt, state)
            else:
                y = module(xt)
            if isinstance(y, tuple):
                y = y[0]
            if isinstance(y, dict):
                (y,) = y.values()
            outs.append(y.detach().double().numpy())
    return np.stack(outs)


def _snntorch(path: Path, manifest: dict, x: np.ndarray) -> np.ndarray:
    import nir
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the reader prints progress lines
        m = import_from_nir(nir.read(path, type_check=False))
    return _torch_steps(m, x, stateful_call=True)  # nirtorch keeps recurrent outputs in the returned state


def _norse(path: Path, manifest: dict, x: np.ndarray) -> np.ndarray:
    import nir
    import norse.torch as norse

    m = norse.from_nir(nir.read(path, type_check=False))
    return _torch_steps(m, x, stateful_call=True)


def _sinabs(path: Path, manifest: dict, x: np.ndarray) -> np.ndarray:
    import nir
    import sinabs
    import torch

    T, B = x.shape[:2]
    m = sinabs.from_nir(nir.read(path, type_check=False), batch_size=B)
    # Sinabs' *Squeeze layers take the whole run at once, batch and time folded into one axis (batch major)
    xs = torch.as_tensor(np.swapaxes(x, 0, 1).reshape(B * T, *x.shape[2:]), dtype=torch.float32)
    with torch.no_grad():
        y = m(xs)
    y = y[0] if isinstance(y, tuple) else y
    y = y.detach().double().numpy()
    return np.swapaxes(y.reshape(B, T, *y.shape[1:]), 0, 1)


def _spyx(path: Path, manifest: dict, x: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp
    import nir
    import spyx.nir

    _, y = spyx.nir.from_nir(nir.read(path, type_check=False), jnp.asarray(x, dtype=jnp.float32))
    return np.asarray(y, dtype=np.float64)


def _rockpool(path: Path, manifest: dict, x: np.ndarray) -> np.ndarray:
    import warnings

    import nir
    import torch
    from rockpool.nn.modules.torch.nir import from_nir

    with warnings.catch_warnings():  # Rockpool warns about its optional back-ends on import and build
        warnings.simplefilter("ignore")
        m = from_nir(nir.read(path, type_check=False))
        # Rockpool's modules take the whole run at once, (batch, time, *shape)
        with torch.no_grad():
            y = m(torch.as_tensor(np.swapaxes(x, 0, 1), dtype=torch.float32))
    y = y[0] if isinstance(y, tuple) else y
    return np.swapaxes(y.detach().double().numpy(), 0, 1)


READERS: dict[str, Callable[[Path, dict, np.ndarray], np.ndarray]] = {
    "snntorch": _snntorch, "norse": _norse, "sinabs": _sinabs, "spyx": _spyx, "rockpool": _rockpool}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--input", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    manifest = json.loads((out_dir / "target.json").read_text(encoding="utf-8"))
    with np.load(args.input, allow_pickle=False) as z:
        inputs = {k: z[k][: args.steps] for k in z.files}
    conv = manifest["convention"]
    path = out_dir / "model.nir"
    if conv in ("exact", "euler"):  # n3ml's own reading of the file
        from ...frontends.nir import load
        from ...ir.interp import run

        graph = load(str(path), dt=manifest["dt_ms"], nir_convention=conv)
        res = run(graph, {k: inputs[k] for k in graph.input_names}, args.steps)
        outs = {k: np.asarray(v) for k, v in res.outputs.items()}
    else:
        if len(manifest["inputs"]) != 1 or len(manifest["outputs"]) != 1:
            print(f"the {conv} reader runs graphs with one input and one output", file=sys.stderr)
            return 2
        y = READERS[conv](path, manifest, inputs[manifest["inputs"][0]])
        outs = {manifest["outputs"][0]: y}
    np.savez(args.output, **outs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
