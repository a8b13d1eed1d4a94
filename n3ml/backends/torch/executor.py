"""Compile an IR graph into a `torch.nn.Module` that runs all T steps at once.

Plan (made once, at compile time):

* The graph's strongly connected components (edges through Delays included) are put in
  topological order. A component of one node without a self-loop is a *bulk* unit: its
  whole output sequence (T, B, *shape) is computed at once from its inputs' sequences.
  Stateless synapses fold (T, B) into one batch axis, so a Dense layer is ONE matmul
  for the whole run; neurons run their recurrence as a fused scan (`scan.py`).
* A component with a cycle (closed through a Delay) is a *cyclic* unit: its nodes run
  step by step, in the order of docs/semantics.md §2, reading the inputs from outside
  the cycle as slices of already computed sequences.

Values of a node are freed after their last use, so memory holds only live sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import networkx as nx
import numpy as np
import torch
from torch import nn

from ...errors import N3mlError, UnsupportedError
from ...ir import prims as P
from ...ir.graph import Graph
from ...ir.neurons import DEFAULT_SURROGATE
from ...nn import spike_fn
from .ops import IMPLS, Ctx, RunCtx, numeric_array

__all__ = ["compile", "Executor", "ExecutionError"]


class ExecutionError(N3mlError):
    """A node failed while the executor ran it; the message names the node and its op."""

    def __init__(self, node: str, op: str, detail: str, step: int | None = None):
        at = f" at step {step}" if step is not None else ""
        super().__init__(f"while executing node `{node}` ({op}){at}: {detail}")
        self.node = node


@dataclass(frozen=True)
class _Unit:
    nodes: tuple[str, ...]  # evaluation order
    cyclic: bool


def _plan(graph: Graph) -> list[_Unit]:
    full = graph.to_networkx()
    index = {n: i for i, n in enumerate(graph.nodes)}
    cond = nx.condensation(full)
    members = cond.graph["mapping"]  # node -> component id
    comps: dict[int, list[str]] = {}
    for n, c in members.items():
        comps.setdefault(c, []).append(n)
    order = list(nx.lexicographical_topological_sort(cond, key=lambda c: min(index[n] for n in comps[c])))
    topo = graph.topo_order()
    pos = {n: i for i, n in enumerate(topo)}
    units = []
    for c in order:
        ns = sorted(comps[c], key=lambda n: pos[n])
        cyclic = len(ns) > 1 or full.has_edge(ns[0], ns[0])
        units.append(_Unit(tuple(ns), cyclic))
    return units


class Executor(nn.Module):
    """An IR graph compiled for torch. Call it with the inputs; get the Output nodes' sequences.

    Synapse weights are trainable `nn.Parameter`s (under `nodes.<name>.weight/bias`);
    `to_graph()` writes them back into a copy of the IR graph.
    """

    def __init__(self, graph: Graph, *, device="cpu", dtype: torch.dtype = torch.float32, fixed: bool | None = None,
                 surrogate: str | None = None, slope: float | None = None):
        super().__init__()
        types = graph.verify()
        if fixed is None:
            fixed = any(isinstance(p, P.FixedCubaLIF) for p in graph.nodes.values())
        if not fixed and dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise N3mlError(f"dtype must be a floating-point torch dtype, found {dtype}")
        self.graph = graph.copy()
        self.fixed = bool(fixed)
        self.ctx = Ctx(device=torch.device(device), dtype=torch.int64 if fixed else dtype, fixed=self.fixed,
                       spike=_override(surrogate, slope), dt=float(graph.dt), scheme=graph.scheme)
        self.types = types
        self.inputs_of = {n: graph.inputs_of(n) for n in graph.nodes}
        self.input_names = graph.input_names
        self.output_names = graph.output_names
        self.nodes = nn.ModuleDict()
        for n, prim in graph.nodes.items():
            cls = IMPLS.get(type(prim))
            if cls is None:
                raise UnsupportedError(f"node `{n}`: the torch executor has no implementation of {prim.op}; "
                                       f"supported: {', '.join(sorted(c.__name__ for c in IMPLS))}")
            ins = [types[s] for s in self.inputs_of[n]]
            try:
                self.nodes[n] = cls(n, prim, self.ctx, ins, types[n])
            except N3mlError as e:  # e.g. a weight array that is not real numbers: name the node
                raise N3mlError(f"node `{n}` ({prim.op}): {e}") from None
        self.units = _plan(graph)
        # index of the last unit reading each node (values are freed after it)
        self._last_use: dict[str, int] = {}
        for k, u in enumerate(self.units):
            for n in u.nodes:
                for s in self.inputs_of[n]:
                    self._last_use[s] = max(self._last_use.get(s, -1), k)
        # neurons whose input sequence is a fresh temporary read by nobody else may overwrite it
        fresh = (P.Dense, P.Conv1d, P.Conv2d, P.Add, P.Scale)
        users: dict[str, int] = {}
        for e in graph.edges:
            users[e.src] = users.get(e.src, 0) + 1
        self._may_own = {n: self.inputs_of[n][0] for n, p in graph.nodes.items()
                         if isinstance(p, P.Neuron) and isinstance(graph.nodes[self.inputs_of[n][0]], fresh)
                         and users[self.inputs_of[n][0]] == 1}
        self.to(self.ctx.device)

    # ------------------------------------------------------------------ inputs
    def _inputs(self, inputs) -> tuple[dict[str, torch.Tensor], int, int]:
        names = self.input_names
        if isinstance(inputs, (torch.Tensor, np.ndarray)):
            if len(names) != 1:
                raise N3mlError(f"the graph has inputs {names}; pass a dict of tensors by name")
            inputs = {names[0]: inputs}
        if not isinstance(inputs, Mapping):
            raise N3mlError(f"inputs must be a tensor or a dict name -> tensor, found {type(inputs).__name__}")
        missing = [n for n in names if n not in inputs]
        extra = [n for n in inputs if n not in names]
        if missing or extra:
            raise N3mlError(f"inputs must be exactly the graph's Input nodes {names}; "
                            f"missing {missing}, unknown {extra}")
        out, TB = {}, None
        for n in names:
            x = inputs[n]
            x = torch.as_tensor(x if isinstance(x, torch.Tensor) else numeric_array(x, f"input `{n}`"),
                                device=self.ctx.device)
            shape = tuple(self.graph.nodes[n].shape)
            if x.dim() != len(shape) + 2 or tuple(x.shape[2:]) != shape:
                raise N3mlError(f"node `{n}`: input data must have shape (T, B, {', '.join(map(str, shape))}), "
                                f"found {tuple(x.shape)}")
            if TB is None:
                TB = tuple(x.shape[:2])
            elif tuple(x.shape[:2]) != TB:
                raise N3mlError(f"node `{n}`: all inputs must share (T, B) = {TB}, found {tuple(x.shape[:2])}")
            out[n] = x
        return out, TB[0], TB[1]

    # ----------------------------------------------------------------- running
    # Inference runs whose sequences would hold more than this many bytes are streamed in time chunks.
    stream_bytes: int = 256 * 2**20

    def forward(self, inputs, *, record: Iterable[str] = (), chunk: int | None = None):
        """Run all steps.

        Args:
            inputs: dict Input-name -> tensor (T, B, *shape), or one tensor for a one-input graph.
            record: node names whose output sequences (and neuron states) to return as well.
            chunk: inference only: run the graph over `chunk` steps at a time, handing every
                node's state on to the next chunk, so that memory holds `chunk` steps of each
                sequence (plus the outputs and recorded values) instead of all T. Default: T when
                gradients are wanted, else chosen so that one chunk's sequences fit in
                `Executor.stream_bytes` (256 MiB).
        Returns:
            dict Output-name -> tensor (T, B, *shape); with `record`, a pair (outputs, recorded)
            where recorded maps "node" and "node.v" / ".i" / ".b" to (T, B, *shape) tensors.
        """
        record = list(record)
        for r in record:
            if r not in self.nodes:
                raise N3mlError(f"cannot record unknown node `{r}`")
        data, T, B = self._inputs(inputs)
        keep = set(self.output_names) | set(record)
        grad = torch.is_grad_enabled() and (any(p.requires_grad for p in self.parameters())
                                            or any(x.requires_grad for x in data.values()))
        size = self._chunk_size(chunk, T, B, grad)
        owned = {n for n, s in self._may_own.items() if s not in keep}
        if size >= T:
            vals, rec = self._run(RunCtx(T=T, B=B, data=data, owned=owned), keep, record)
        else:  # streamed: the outputs and recorded values are filled chunk by chunk
            carry: dict = {}
            vals, rec = {}, {}
            for t0 in range(0, T, size):
                t1 = min(T, t0 + size)
                run = RunCtx(T=t1 - t0, B=B, data={k: x[t0:t1] for k, x in data.items()}, owned=owned,
                             t0=t0, carry=carry)
                got = self._run(run, keep, record)
                for part, whole in zip(got, (vals, rec)):
                    for k, y in part.items():
                        if k not in whole:
                            whole[k] = y.new_empty((T, *y.shape[1:]))
                        whole[k][t0:t1] = y
        outs = {n: vals[n] for n in self.output_names}
        if not record:
            return outs
        recorded = {}
        for r in record:
            recorded[r] = vals[r]
            for key in ("v", "i", "b"):
                if f"{r}.{key}" in rec:
                    recorded[f"{r}.{key}"] = rec[f"{r}.{key}"]
        return outs, recorded

    def _chunk_size(self, chunk, T: int, B: int, grad: bool) -> int:
        if chunk is None:
            if grad or T == 0:
                return T
            item = torch.empty((), dtype=self.ctx.dtype).element_size()
            per_step = B * item * sum(int(np.prod(t.shape)) for t in self.types.values())
            return max(1, min(T, self.stream_bytes // max(1, per_step)))
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise N3mlError(f"chunk must be a positive number of steps, found {chunk!r}")
        if grad and chunk < T:
            raise N3mlError("chunk streams a run in time for inference only (call it under torch.no_grad()); "
                            "training keeps every step for the backward pass")
        return chunk

    def _run(self, run: RunCtx, keep: set[str], record: list[str]):
        """Every unit over the run's steps; returns the kept sequences and the recorded states."""
        want_states = set(record)
        vals: dict[str, torch.Tensor] = {}
        rec: dict[str, torch.Tensor] = {}
        for k, unit in enumerate(self.units):
            if unit.cyclic:
                self._run_cycle(unit, vals, run, want_states, rec)
            else:
                n = unit.nodes[0]
                op = self.nodes[n]
                states = {} if n in want_states and op.stateful else None
                try:
                    vals[n] = op.bulk([vals[s] for s in self.inputs_of[n]], run, states)
                except N3mlError:
                    raise
                except Exception as e:  # name the node whose evaluation failed
                    raise ExecutionError(n, op.prim.op, str(e)) from e
                for key, v in (states or {}).items():
                    rec[f"{n}.{key}"] = v
            for n in unit.nodes:  # free sequences nobody reads any more
                for s in self.inputs_of[n]:
                    if self._last_use.get(s) == k and s not in keep:
                        vals.pop(s, None)
        return {n: vals[n] for n in keep}, rec

    def _run_cycle(self, unit: _Unit, vals, run: RunCtx, want_states, rec) -> None:
        nodes = unit.nodes
        delays = [n for n in nodes if isinstance(self.nodes[n].prim, P.Delay) and self.nodes[n].prim.steps >= 1]
        dt = self.ctx.dtype
        carry = run.carried(f"cycle/{nodes[0]}")  # streamed runs: the buffers and states of the last chunk
        if carry:
            bufs, states = carry["bufs"], carry["states"]
        else:
            bufs = {n: [torch.zeros((run.B, *self.types[n].shape), dtype=dt, device=self.ctx.device)]
                    * self.nodes[n].prim.steps for n in delays}
            states = {n: self.nodes[n].init_state(run) for n in nodes}
            if carry is not None:
                carry.update(bufs=bufs, states=states)
        srec = {n: {} if n in want_states and self.nodes[n].stateful else None for n in nodes}
        seqs: dict[str, list[torch.Tensor]] = {n: [] for n in nodes}
        # outside inputs as per-step tensors (unbind: indexing [t] would make the backward O(T^2))
        outside = {s: vals[s].unbind(0) for n in nodes for s in self.inputs_of[n] if s not in nodes}
        for t in range(run.T):
            cur = {n: bufs[n][0] for n in delays}
            for n in nodes:
                if n in bufs:
                    continue
                op = self.nodes[n]
                xs = [cur[s] if s in cur else outside[s][t] for s in self.inputs_of[n]]
                try:
                    cur[n] = op.step(xs, t, states[n], run, srec[n])
                except N3mlError:
                    raise
                except Exception as e:
                    raise ExecutionError(n, op.prim.op, str(e), step=run.t0 + t) from e
            for n in delays:
                src = self.inputs_of[n][0]
                bufs[n].pop(0)
                bufs[n].append(cur[src].to(dt))
            for n in nodes:
                seqs[n].append(cur[n])
        for n in nodes:
            vals[n] = torch.stack(seqs[n]) if run.T else torch.zeros((0, run.B, *self.types[n].shape), dtype=dt, device=self.ctx.device)
            for key, v in (srec[n] or {}).items():
                rec[f"{n}.{key}"] = torch.stack(v)

    # ------------------------------------------------------------------ export
    def to_graph(self) -> Graph:
        """A copy of the compiled graph holding the current (trained) weights."""
        g = self.graph.copy()
        for n, op in self.nodes.items():
            prim = op.to_prim()
            if prim is not g.nodes[n]:
                g.nodes[n] = prim
        return g

    def extra_repr(self) -> str:
        cyc = sum(len(u.nodes) for u in self.units if u.cyclic)
        return (f"graph={self.graph.name!r}, dtype={self.ctx.dtype}, fixed={self.fixed}, "
                f"units={len(self.units)}, nodes_in_cycles={cyc}")


def _override(surrogate: str | None, slope: float | None):
    """The spike function replacing every neuron's own surrogate, or None to keep the graph's."""
    if surrogate is None and slope is None:
        return None
    return spike_fn(surrogate or DEFAULT_SURROGATE, slope)


def compile(graph: Graph, *, device="cpu", dtype: torch.dtype = torch.float32, fixed: bool | None = None,
            surrogate: str | None = None, slope: float | None = None) -> Executor:
    """Compile `graph` into an `Executor` module.

    Args:
        graph: a verified-or-verifiable IR graph.
        device: torch device for parameters and computation.
        dtype: floating dtype of values (float64 reproduces the reference interpreter exactly).
        fixed: integer (int64) arithmetic of docs/semantics.md §6; default: True when the
            graph holds a FixedCubaLIF.
        surrogate, slope: a surrogate gradient (n3ml.nn.spike_fn) for every neuron, replacing the
            graph's: by default each neuron trains with its own `surrogate`, `slope` and `detach_reset`
            (the n3ml.nn module it came from), so the executor's gradients are the module's.
    Returns:
        An `nn.Module`; call it with inputs (T, B, *shape).
    """
    return Executor(graph, device=device, dtype=dtype, fixed=fixed, surrogate=surrogate, slope=slope)
