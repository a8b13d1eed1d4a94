"""The agreement matrix of docs/nir.md: `python -m tests.nir.agreement [--steps 50 --batch 16]`.

Rows: where the NIR file comes from (n3ml's nir target writing for each reader; snnTorch's and Norse's
exporters on models built in each). Columns: who reads and runs it (snnTorch's and Norse's own NIR
readers, n3ml's frontend under each convention). Reference: the spikes of the model the file was
written from (n3ml's executor, or the exporting library running its own model). Each cell gives % of
identical spike entries (every step, sample and neuron) and the Pearson correlation of per-neuron spike
counts; `refused` where the writer or reader refuses the graph, naming the node.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from n3ml.backends.nir import NirTarget
from n3ml.backends.nir.lower import CONSUMERS
from n3ml.backends.nir.run import READERS
from n3ml.frontends.nir import load
from n3ml.ir.interp import run

from .models import MODELS, spikes

READER_COLS = ("snntorch", "norse", "sinabs", "spyx")
N3ML_COLS = ("exact", "euler", "snntorch", "norse", "sinabs", "spyx")


def metrics(ref: np.ndarray, got: np.ndarray) -> str:
    ref, got = np.asarray(ref) != 0, np.asarray(got) != 0
    same = 100.0 * float(np.mean(ref == got))
    T = ref.shape[0]
    a, b = ref.reshape(T, -1).sum(0), got.reshape(T, -1).sum(0)
    corr = 1.0 if np.array_equal(a, b) else (float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else float("nan"))
    return f"{same:.2f}% / {corr:.3f}"


def _read_run(path: Path, x: np.ndarray, steps: int, **opts) -> np.ndarray:
    g = load(str(path), **opts)
    return run(g, {g.input_names[0]: x}, steps).outputs[g.output_names[0]]


def _cell(fn) -> str:
    try:
        return fn()
    except Exception as e:  # a refusal or a reader's failure is the cell's content
        return f"refused ({type(e).__name__})" if "Unsupported" in type(e).__name__ else f"fails ({type(e).__name__})"


def subtract_mlp(seed: int = 4):
    """An MLP with subtract resets (what Sinabs runs): 20-16 LIF, 8 IF."""
    from n3ml.ir import Graph
    from n3ml.ir import prims as P

    rng = np.random.default_rng(seed)
    g = Graph(name="mlp_sub", dt=1.0, scheme="exact")
    g.add("x", P.Input(shape=(20,)))
    g.add("fc1", P.Dense(weight=rng.normal(0, 0.5, (16, 20))), "x")
    g.add("lif1", P.LIF(tau=5.0, r=4.0, theta=1.0, reset="subtract"), "fc1")
    g.add("fc2", P.Dense(weight=rng.normal(0, 0.8, (8, 16)), bias=np.zeros(8)), "lif1")
    g.add("if2", P.IF(theta=1.0, reset="subtract"), "fc2")
    g.add("out", P.Output(), "if2")
    return g


def n3ml_rows(steps: int, batch: int, tmp: Path) -> list[tuple[str, str, dict[str, str]]]:
    rows = []
    for model, build in {**MODELS, "mlp (subtract reset)": subtract_mlp}.items():
        graph = build()
        x = spikes(graph, steps, batch=batch, rate=0.4)
        ref = run(graph, x, steps).outputs["out"]
        cells: dict[str, str] = {}
        for reader in READER_COLS:
            def lib(reader=reader):
                d = tmp / f"n3ml-{model}-{reader}"
                d.mkdir()
                # readers without a writer of their own get the exact file (NIR's equations at dt = 1 ms)
                NirTarget().emit(graph, d, options={"convention": reader if reader in CONSUMERS else "exact"})
                return metrics(ref, READERS[reader](d / "model.nir", {}, x["x"]))
            cells[f"{reader} reader"] = _cell(lib)
        for conv in N3ML_COLS:
            def own(conv=conv):
                d = tmp / f"n3ml-{model}-{conv}-n3ml"
                d.mkdir()
                NirTarget().emit(graph, d, options={"convention": conv if conv in CONSUMERS else "exact"})
                dt = {"exact": graph.dt, "euler": graph.dt}.get(conv)
                return metrics(ref, _read_run(d / "model.nir", x["x"], steps, dt=dt, nir_convention=conv))
            cells[f"n3ml {conv}"] = _cell(own)
        rows.append(("n3ml (nir target for the column's reader)", model, cells))
    return rows


def _x(n_in: int, steps: int, batch: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, batch, n_in)) < 0.4).astype(np.float64)


def _steps(module, x: np.ndarray, call) -> np.ndarray:
    import torch

    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = call(module, torch.as_tensor(x[t], dtype=torch.float32), state)
            outs.append(y.double().numpy())
    return np.stack(outs)


def _snn_call(m, x, s):
    y = m(x)
    return (y[0] if isinstance(y, tuple) else y), None


def snntorch_models():
    import snntorch as snn
    import torch

    def leaky(n, beta, thr):
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.full((n,), thr), init_hidden=True,
                         reset_mechanism="zero", reset_delay=False)

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(20, 16), leaky(16, 0.8, 0.5), torch.nn.Linear(16, 8),
                              snn.Synaptic(alpha=torch.full((8,), 0.7), beta=torch.full((8,), 0.85),
                                           threshold=torch.full((8,), 0.5), init_hidden=True, output=True,
                                           reset_mechanism="zero", reset_delay=False))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), leaky(4 * 8 * 8, 0.75, 0.5), torch.nn.Flatten(),
                              torch.nn.Linear(256, 10), leaky(10, 0.9, 0.5))
    cnn[1] = snn.Leaky(beta=torch.full((4, 8, 8), 0.75), threshold=torch.full((4, 8, 8), 0.5), init_hidden=True,
                       reset_mechanism="zero", reset_delay=False)
    cnn[4].output = True
    rec = torch.nn.Sequential(torch.nn.Linear(10, 12),
                              snn.RLeaky(beta=torch.full((12,), 0.8), threshold=torch.full((12,), 0.5),
                                         linear_features=12, init_hidden=True, reset_mechanism="zero",
                                         reset_delay=False),
                              torch.nn.Linear(12, 6), leaky(6, 0.85, 0.4))
    rec[3].output = True
    with torch.no_grad():
        for net in (mlp, cnn, rec):
            for m in net:
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.weight.mul_(2.5)
    return {"mlp": (mlp, (20,)), "cnn": (cnn, (1, 8, 8)), "recurrent": (rec, (10,))}


def norse_models():
    import norse.torch as norse
    import torch

    def box(n, inv, th):
        return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full(n, inv), v_th=torch.full(n, th),
                                                       v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

    def cell(n, th):
        return norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.full(n, 200.0), tau_mem_inv=torch.full(n, 100.0),
                                                 v_th=torch.full(n, th), v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

    torch.manual_seed(1)
    mlp = norse.SequentialState(torch.nn.Linear(20, 16), box((16,), 200.0, 0.15), torch.nn.Linear(16, 8),
                                cell((8,), 0.1))
    cnn = norse.SequentialState(torch.nn.Conv2d(1, 4, 3, padding=1), box((4, 8, 8), 200.0, 0.15), torch.nn.Flatten(),
                                torch.nn.Linear(256, 10), box((10,), 100.0, 0.1))
    with torch.no_grad():
        for net in (mlp, cnn):
            for m in net:
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.weight.mul_(5.0)
    return {"mlp": (mlp, (20,)), "cnn": (cnn, (1, 8, 8))}


def exporter_rows(lib: str, steps: int, batch: int, tmp: Path) -> list[tuple[str, str, dict[str, str]]]:
    import nir
    import torch

    rows = []
    if lib == "snntorch":
        from snntorch.export_nir import export_to_nir

        models, call, dt = snntorch_models(), _snn_call, 0.1
    else:
        import norse.torch as norse

        models, call, dt = norse_models(), (lambda m, x, s: m(x, s)), 1.0
    for name, (net, shape) in models.items():
        x = _x(int(np.prod(shape)), steps, batch).reshape(steps, batch, *shape)
        want = _steps(net, x, call)
        sample = torch.zeros(1, *shape)
        path = tmp / f"{lib}-{name}.nir"
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                g = (export_to_nir(net, sample, ignore_dims=[0]) if lib == "snntorch" else norse.to_nir(net, sample))
            missing = [k for k, v in g.nodes.items() if v is None]
            if missing:  # the exporter has no NIR node for these modules
                raise ValueError(f"no NIR node for {', '.join(missing)}")
            nir.write(path, g)
        except Exception as e:
            rows.append((f"{lib} exporter (its model's spikes)", name, {"snntorch reader": f"export fails: {e}"}))
            continue
        cells: dict[str, str] = {}
        for reader in READER_COLS:
            cells[f"{reader} reader"] = _cell(lambda reader=reader: metrics(want, READERS[reader](path, {}, x)))
        for conv in N3ML_COLS:
            opts = {"nir_convention": conv}
            if conv in ("exact", "euler"):  # the norse column keeps Norse's default step, as its reader does
                opts["dt"] = dt
            cells[f"n3ml {conv}"] = _cell(lambda opts=opts: metrics(want, _read_run(path, x, steps, **opts)))
        rows.append((f"{lib} exporter (its model's spikes)", name, cells))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = n3ml_rows(args.steps, args.batch, tmp)
        for lib in ("snntorch", "norse"):
            rows += exporter_rows(lib, args.steps, args.batch, tmp)
    cols = [f"{r} reader" for r in READER_COLS] + [f"n3ml {c}" for c in N3ML_COLS]
    print("| written by | net | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for who, net, cells in rows:
        print(f"| {who} | {net} | " + " | ".join(cells.get(c, "-") for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
