"""The NIR agreement matrix of docs/nir.md: `python scripts/nir_matrix.py [--steps 50 --batch 16]`.

Rows: where the NIR file comes from: n3ml's nir target writing for the column's reader (on the IR
networks of tests/nir/models.py), and the exporters of snnTorch, Norse, Sinabs, Rockpool and Spyx on
models built in each library. Columns: who reads and runs it: each library's own NIR reader, n3ml's
.nir frontend under each reader convention (run by n3ml's reference interpreter), and, for the n3ml
rows, n3ml's own backends (NEST, PyNN, Lava) running the IR graph the file was written from.
Reference: the spikes of the model the file was written from (n3ml's executor; the exporting library
running its own model). Cell: % identical spike entries (every step, sample and neuron) / Pearson
correlation of per-neuron, per-sample spike counts; `refused` where the writer or reader refuses the
graph naming the node, `fails` where the library's reader raises, `-` where the column does not apply.
Libraries that are not installed give `absent` cells (make setup-peers, make setup-nir-readers).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from n3ml.backends.nir import NirTarget  # noqa: E402
from n3ml.backends.nir.run import READERS  # noqa: E402
from n3ml.frontends.nir import from_nir, load  # noqa: E402
from n3ml.ir.interp import run  # noqa: E402
from tests.nir.models import MODELS, cuba_subtract, mlp_subtract, spikes  # noqa: E402

LIBS = ("snntorch", "norse", "sinabs", "spyx", "rockpool")
CONVENTIONS = ("exact", "euler", "snntorch", "norse", "sinabs", "spyx", "rockpool")
BACKENDS = ("nest", "pynn", "lava")
IMPORTS = {"snntorch": "snntorch", "norse": "norse.torch", "sinabs": "sinabs", "spyx": "spyx.nir",
           "rockpool": "rockpool.nn.modules.torch.nir"}


def have(lib: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            __import__(IMPORTS[lib])
        return True
    except Exception:
        return False


def metrics(ref: np.ndarray, got: np.ndarray) -> str:
    ref, got = np.asarray(ref) != 0, np.asarray(got) != 0
    if ref.shape != got.shape:
        return f"shape {got.shape}"
    same = 100.0 * float(np.mean(ref == got))
    T = ref.shape[0]
    a, b = ref.reshape(T, -1).sum(0), got.reshape(T, -1).sum(0)
    corr = 1.0 if np.array_equal(a, b) else (float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else float("nan"))
    return f"{same:.2f}% / {corr:.3f}"


def cell(fn: Callable[[], str]) -> str:
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return fn()
    except Exception as e:  # a refusal or a reader's failure is the cell's content
        return "refused" if "Unsupported" in type(e).__name__ else f"fails ({type(e).__name__})"


def _read_run(g: Any, x: np.ndarray, steps: int, **opts) -> np.ndarray:
    graph = load(str(g), **opts) if isinstance(g, (str, Path)) else from_nir(g, **opts)
    return run(graph, {graph.input_names[0]: x}, steps).outputs[graph.output_names[0]]


# ------------------------------------------------------------------------------------ n3ml's rows

def _backend(name: str, graph, x: dict, steps: int, tmp: Path) -> np.ndarray:
    from n3ml.backends.conformance import run_program
    from n3ml.passes.legalize import legalize_for
    from n3ml.registry import TARGETS, lookup

    target = lookup(TARGETS, name, "target")()
    opts = getattr(target, "verify_options", None)  # what `n3ml verify` runs it with (PyNN: on NEST)
    tgraph = legalize_for(target, graph, say=None)
    target.check(tgraph, opts)
    out = tmp / name
    out.mkdir(parents=True)
    target.emit(tgraph, out, steps=steps, options=opts)
    np.savez(tmp / f"{name}-x.npz", **x)
    got, _ = run_program(target.run_argv(out), tmp / f"{name}-x.npz", steps, tmp / f"{name}-y.npz", timeout=900)
    return got["out"]


def n3ml_rows(steps: int, batch: int, tmp: Path, backends: bool) -> list[tuple[str, str, dict[str, str]]]:
    nets: dict[str, Callable] = {**MODELS, "MLP, subtract reset (LIF, IF)": mlp_subtract,
                                 "CubaLIF, subtract reset": cuba_subtract,
                                 "CubaLIF, subtract, recurrent": lambda: cuba_subtract(True)}
    rows = []
    for model, build in nets.items():
        graph = build()
        x = spikes(graph, steps, batch=batch, rate=0.4)
        ref = run(graph, x, steps).outputs["out"]
        cells: dict[str, str] = {}

        def emit(conv: str, tag: str) -> Path:
            d = tmp / f"n3ml-{graph.name}-{conv}-{tag}"
            d.mkdir()
            NirTarget().emit(graph, d, options={"convention": conv})
            return d / "model.nir"

        for lib in LIBS:
            cells[f"{lib} reader"] = (cell(lambda lib=lib: metrics(ref, READERS[lib](emit(lib, "lib"), {}, x["x"])))
                                      if have(lib) else "absent")
        for conv in CONVENTIONS:
            # exact/euler need the step; the library conventions keep their reader's own
            dt = {"dt": graph.dt} if conv in ("exact", "euler") else {}
            cells[f"n3ml {conv}"] = cell(lambda conv=conv, dt=dt: metrics(ref, _read_run(
                emit(conv, "n3ml"), x["x"], steps, nir_convention=conv, **dt)))
        for b in BACKENDS if backends else ():
            cells[b] = cell(lambda b=b: metrics(ref, _backend(b, graph, x, steps, tmp / f"{graph.name}-{b}")))
        rows.append(("n3ml", model, cells))
    return rows


# -------------------------------------------------------------------------------- exporters' rows
# Each builder returns {net: (run(x) -> spikes (T, B, n_out), nir graph, input shape, dt_ms for exact/euler)}.

def _torch_steps(call, x: np.ndarray) -> np.ndarray:
    import torch

    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = call(torch.as_tensor(x[t], dtype=torch.float32), state)
            outs.append(y.double().numpy())
    return np.stack(outs)


def snntorch_models() -> dict:
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    def leaky(shape, beta, thr, output=False):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr), init_hidden=True,
                         reset_mechanism="zero", reset_delay=False, output=output)

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(20, 16), leaky((16,), 0.8, 0.5), torch.nn.Linear(16, 8),
                              snn.Synaptic(alpha=torch.full((8,), 0.7), beta=torch.full((8,), 0.85),
                                           threshold=torch.full((8,), 0.5), init_hidden=True, output=True,
                                           reset_mechanism="zero", reset_delay=False))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), leaky((4, 8, 8), 0.75, 0.5), torch.nn.Flatten(),
                              torch.nn.Linear(256, 10), leaky((10,), 0.9, 0.5, output=True))
    rec = torch.nn.Sequential(torch.nn.Linear(10, 12),
                              snn.RLeaky(beta=torch.full((12,), 0.8), threshold=torch.full((12,), 0.5),
                                         linear_features=12, init_hidden=True, reset_mechanism="zero",
                                         reset_delay=False),
                              torch.nn.Linear(12, 6), leaky((6,), 0.85, 0.4, output=True))
    out = {}
    for name, net, shape in (("MLP", mlp, (20,)), ("CNN", cnn, (1, 8, 8)), ("recurrent", rec, (10,))):
        with torch.no_grad():
            for m in net:
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.weight.mul_(2.5)

        def call(x, s, net=net):
            y = net(x)
            return (y[0] if isinstance(y, tuple) else y), None

        out[name] = (lambda x, call=call: _torch_steps(call, x), export_to_nir(net, torch.zeros(1, *shape),
                                                                                ignore_dims=[0]), shape, 0.1)
    return out


def norse_models() -> dict:
    import norse.torch as norse
    import torch

    def box(n, inv, th):
        return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full(n, inv), v_th=torch.full(n, th),
                                                       v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

    def cell_(n, th):
        return norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.full(n, 200.0), tau_mem_inv=torch.full(n, 100.0),
                                                 v_th=torch.full(n, th), v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

    torch.manual_seed(1)
    mlp = norse.SequentialState(torch.nn.Linear(20, 16), box((16,), 200.0, 0.15), torch.nn.Linear(16, 8),
                                cell_((8,), 0.1))
    cnn = norse.SequentialState(torch.nn.Conv2d(1, 4, 3, padding=1), box((4, 8, 8), 200.0, 0.15),
                                torch.nn.Flatten(), torch.nn.Linear(256, 10), box((10,), 100.0, 0.1))
    out = {}
    for name, net, shape in (("MLP", mlp, (20,)), ("CNN", cnn, (1, 8, 8))):
        with torch.no_grad():
            for m in net:
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.weight.mul_(5.0)
        g = norse.to_nir(net, torch.zeros(1, *shape))
        missing = [k for k, v in g.nodes.items() if v is None]
        if missing:  # Norse has no NIR node for these modules (torch.nn.Flatten)
            g = RuntimeError(f"no NIR node for {', '.join(missing)}")
        out[name] = (lambda x, net=net: _torch_steps(lambda xt, s: net(xt, s), x), g, shape, 1.0)
    return out


def sinabs_models(batch: int) -> dict:
    """Linear-LIF-Linear-LIF with norm_input=False (what Sinabs' reader builds; with the default
    norm_input=True the exporter writes the same file for a different model)."""
    import sinabs
    import sinabs.layers as sl
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), sl.LIFSqueeze(tau_mem=5.0, batch_size=batch, norm_input=False),
                              torch.nn.Linear(16, 8), sl.LIFSqueeze(tau_mem=8.0, batch_size=batch, norm_input=False))
    with torch.no_grad():
        net[0].weight.mul_(1.2)
        net[2].weight.mul_(2.0)
    g = sinabs.to_nir(net, torch.zeros(batch, 20))

    def go(x, net=net):
        for m in net:
            if hasattr(m, "reset_states"):
                m.reset_states()
        T, B = x.shape[:2]
        with torch.no_grad():
            y = net(torch.as_tensor(np.swapaxes(x, 0, 1).reshape(B * T, -1), dtype=torch.float32))
        return np.swapaxes(y.double().numpy().reshape(B, T, -1), 0, 1)

    return {"MLP": (go, g, (20,), 1.0)}


def rockpool_models() -> dict:
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    out = {}
    for name, rec in (("MLP", False), ("recurrent", True)):
        torch.manual_seed(0)
        net = Sequential(LinearTorch((20, 16), has_bias=True),
                         LIFTorch(16, tau_mem=0.02, tau_syn=0.01, dt=1e-3, has_rec=rec),
                         LinearTorch((16, 8)), LIFTorch(8, tau_mem=0.01, tau_syn=0.005, dt=1e-3))
        with torch.no_grad():
            net[0].weight.mul_(0.1)
            net[0].bias.mul_(0.3)
            net[2].weight.mul_(0.4)
            if rec:
                net[1].w_rec.mul_(0.05)

        def go(x, net=net):
            with torch.no_grad():
                y = net(torch.as_tensor(np.swapaxes(x, 0, 1), dtype=torch.float32))[0]
            return np.swapaxes(y.double().numpy(), 0, 1)

        out[name] = (go, to_nir(net, torch.zeros(1, 20)), (20,), 1.0)
    return out


def spyx_models() -> dict:
    import jax.numpy as jnp
    import spyx.nir as sxn
    import spyx.nn as sx
    from flax import nnx

    rngs = nnx.Rngs(0)
    net = sx.Sequential(nnx.Linear(20, 16, rngs=rngs), sx.LIF((16,), beta=0.8, rngs=rngs), nnx.Linear(16, 8, rngs=rngs),
                        sx.LIF((8,), beta=0.9, rngs=rngs))
    g = sxn.to_nir(net, {"input": np.array([20])}, {"output": np.array([8])}, dt=1)

    def go(x):
        y, _ = sxn.run(net, jnp.asarray(x, dtype=jnp.float32))
        return np.asarray(y, dtype=np.float64)

    return {"MLP": (go, g, (20,), 1000.0)}


def exporter_rows(lib: str, steps: int, batch: int, tmp: Path) -> list[tuple[str, str, dict[str, str]]]:
    import nir

    builders = {"snntorch": snntorch_models, "norse": norse_models, "sinabs": lambda: sinabs_models(batch),
                "rockpool": rockpool_models, "spyx": spyx_models}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        models = builders[lib]()
    rows = []
    for name, (model_run, g, shape, dt) in models.items():
        who = f"{lib} exporter"
        if isinstance(g, Exception):
            rows.append((who, name, {f"{LIBS[0]} reader": f"export fails: {g}"}))
            continue
        x = (np.random.default_rng(0).random((steps, batch, *shape)) < 0.4).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model_run(x)
        path: Any = tmp / f"{lib}-{name}.nir"
        try:
            nir.write(path, g)
        except Exception:  # Sinabs' exporter writes 0-d torch tensors, which nir.write cannot store
            path = g
        cells: dict[str, str] = {}
        for reader in LIBS:
            def lib_run(reader=reader):
                if isinstance(path, Path):
                    return metrics(want, READERS[reader](path, {}, x))
                return metrics(want, _in_memory(reader, path, x))
            in_memory_only = not isinstance(path, Path) and reader != "sinabs"
            cells[f"{reader} reader"] = ("no file" if in_memory_only else cell(lib_run)) if have(reader) else "absent"
        for conv in CONVENTIONS:
            opts: dict[str, Any] = {"nir_convention": conv}
            if conv in ("exact", "euler"):  # the library conventions keep their reader's own step
                opts["dt"] = dt
            src = path if isinstance(path, Path) else _numpy_graph(path)
            cells[f"n3ml {conv}"] = cell(lambda opts=opts, src=src: metrics(want, _read_run(src, x, steps, **opts)))
        rows.append((who + ("" if isinstance(path, Path) else " (in memory)"), name, cells))
    return rows


def _numpy_graph(g):
    import torch

    g = copy.deepcopy(g)
    for node in g.nodes.values():
        for k, v in list(vars(node).items()):
            if isinstance(v, torch.Tensor):
                setattr(node, k, v.detach().numpy())
    return g


def _in_memory(reader: str, g, x: np.ndarray) -> np.ndarray:
    """A reader on an in-memory graph (the file could not be written): Sinabs' own reader only."""
    if reader != "sinabs":
        raise RuntimeError("the exporter's graph could not be written to a file")
    import sinabs
    import torch

    T, B = x.shape[:2]
    m = sinabs.from_nir(g, batch_size=B)
    with torch.no_grad():
        y = m(torch.as_tensor(np.swapaxes(x, 0, 1).reshape(B * T, *x.shape[2:]), dtype=torch.float32))
    y = (y[0] if isinstance(y, tuple) else y).double().numpy()
    return np.swapaxes(y.reshape(B, T, *y.shape[1:]), 0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-backends", action="store_true", help="skip the NEST/PyNN/Lava columns")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = n3ml_rows(args.steps, args.batch, tmp, not args.no_backends)
        for lib in LIBS:
            if have(lib):
                rows += exporter_rows(lib, args.steps, args.batch, tmp)
    cols = [f"{r} reader" for r in LIBS] + [f"n3ml {c}" for c in CONVENTIONS] + list(BACKENDS)
    print("| written by | net | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for who, net, cells in rows:
        print(f"| {who} | {net} | " + " | ".join(cells.get(c, "-") for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
