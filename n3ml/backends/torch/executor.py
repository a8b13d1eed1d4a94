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
Inference can also be streamed in time chunks (`forward(chunk=...)`, automatic for large
runs), and `memory="lean"` trains holding packed spikes instead of activations (`lean.py`).
`forward(means=...)` returns nodes' time means summed while the run goes, without keeping
their sequences (what the conversion report and calibration need). An input held constant
over time (a stride-0 time axis, `x[None].expand(T, ...)`) is not copied T times: per-step
operations reading only such values run once on the B samples and hand the value on, held.
"""

from __future__ import annotations

import dataclasses
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
from .lean import chunked_segment, pack_saved, recompute, unpack
from .ops import IMPLS, Ctx, RunCtx, held_in_time, numeric_array

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
                 surrogate: str | None = None, slope: float | None = None, memory: str = "default"):
        super().__init__()
        if memory not in _MEMORY:
            raise N3mlError(f"memory must be one of {', '.join(_MEMORY)}, found {memory!r}")
        self.memory = memory
        types = graph.verify()
        if fixed is None:
            fixed = any(isinstance(p, (P.FixedCubaLIF, P.FixedSynapseFilter)) for p in graph.nodes.values())
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
        self._unit_of = {n: k for k, u in enumerate(self.units) for n in u.nodes}
        self._last_use = self._last_uses({})  # index of the last unit reading each node (freed after it)
        # neurons, batch-norms and Adds (their first input) whose input sequence is a fresh temporary read
        # by nobody else may overwrite it (a batch-norm's or Add's output is then such a temporary too)
        fresh = (P.Dense, P.Conv1d, P.Conv2d, P.Add, P.Scale, P.BatchNorm, P.MaxPool2d, P.AvgPool2d, P.SumPool2d)
        users: dict[str, int] = {}
        for e in graph.edges:
            users[e.src] = users.get(e.src, 0) + 1
        self._segments = self._plan_segments(graph, users) if memory == "lean" else {}

        def is_fresh(s):  # an Add of one input returns that input itself
            p = graph.nodes[s]
            return isinstance(p, fresh) and users[s] == 1 and not (isinstance(p, P.Add) and len(self.inputs_of[s]) < 2)

        self._may_own = {n: self.inputs_of[n][0] for n, p in graph.nodes.items()
                         if ((isinstance(p, (P.Neuron, P.BatchNorm)) and len(self.inputs_of[n]) == 1)
                             or (isinstance(p, P.Add) and len(self.inputs_of[n]) >= 2))  # Add: its first input
                         and is_fresh(self.inputs_of[n][0])}
        self.to(self.ctx.device)

    def _plan_segments(self, graph: Graph, users: dict[str, int]) -> dict[str, tuple[str, ...]]:
        """Lean mode: neuron -> the chain of stateless nodes feeding only it, ending with the neuron."""
        bulk = {u.nodes[0] for u in self.units if not u.cyclic}
        segs = {}
        for n, p in graph.nodes.items():
            if not isinstance(p, P.Neuron) or n not in bulk or len(self.inputs_of[n]) != 1:
                continue
            chain = [n]
            s = self.inputs_of[n][0]
            while (isinstance(graph.nodes[s], _RECOMPUTABLE) and s in bulk and users.get(s) == 1
                   and len(self.inputs_of[s]) == 1):
                chain.insert(0, s)
                s = self.inputs_of[s][0]
            if len(chain) > 1:  # a neuron alone would keep its input, as big as what it saves now
                segs[n] = tuple(chain)
        return segs

    def _last_uses(self, segs: dict[str, tuple[str, ...]]) -> dict[str, int]:
        """Index of the last unit reading each node; a segment's nodes read where its neuron runs."""
        at = {m: self._unit_of[tail] for tail, chain in segs.items() for m in chain}
        last: dict[str, int] = {}
        for n, k in self._unit_of.items():
            for s in self.inputs_of[n]:
                last[s] = max(last.get(s, -1), at.get(n, k))
        return last

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

    def forward(self, inputs, *, record: Iterable[str] = (), chunk: int | None = None, means: Iterable[str] = ()):
        """Run all steps.

        Args:
            inputs: dict Input-name -> tensor (T, B, *shape), or one tensor for a one-input graph.
            record: node names whose output sequences (and neuron states) to return as well.
            means: node names whose time mean (B, *shape) to return, in float64, accumulated while the
                run goes (each sequence is summed the moment it is computed, then freed as usual):
                no (T, B, ...) sequence is kept for them, and neurons keep their fused scans (recording
                a neuron's states makes it step). Returned under "node.mean".
            chunk: inference only: run the graph over `chunk` steps at a time, handing every
                node's state on to the next chunk, so that memory holds `chunk` steps of each
                sequence (plus the outputs and recorded values) instead of all T. Default: T when
                gradients are wanted, else chosen so that one chunk's sequences fit in
                `Executor.stream_bytes` (256 MiB).
        Returns:
            dict Output-name -> tensor (T, B, *shape); with `record` or `means`, a pair (outputs,
            recorded) where recorded maps "node" and "node.v" / ".i" / ".b" to (T, B, *shape) tensors
            and "node.mean" to (B, *shape) float64 tensors.
        """
        record, means = list(record), list(dict.fromkeys(means))
        for r in record + means:
            if r not in self.nodes:
                raise N3mlError(f"cannot record unknown node `{r}`")
        data, T, B = self._inputs(inputs)
        # sums over time, filled unit by unit (and chunk by chunk when streamed), divided by T at the end
        sums = {n: _TimeSum(self._sum_dtype(n, T)) for n in means}
        keep = set(self.output_names) | set(record)
        grad = torch.is_grad_enabled() and (any(p.requires_grad for p in self.parameters())
                                            or any(x.requires_grad for x in data.values()))
        size = self._chunk_size(chunk, T, B, grad)
        owned = {n for n, s in self._may_own.items() if s not in keep}
        if size >= T:
            run = RunCtx(T=T, B=B, data=data, owned=owned)
            if grad and self.memory == "lean":
                segs = {n: c for n, c in self._segments.items() if keep.isdisjoint(c)}
                segs = {n: c for n, c in segs.items() if set(means).isdisjoint(c[:-1])}  # means need the values
                with torch.autograd.graph.saved_tensors_hooks(pack_saved, unpack):
                    vals, rec = self._run(run, keep, record, segs, sums)
            else:
                vals, rec = self._run(run, keep, record, None, sums)
        else:  # streamed: the outputs and recorded values are filled chunk by chunk
            carry: dict = {}
            vals, rec = {}, {}
            for t0 in range(0, T, size):
                t1 = min(T, t0 + size)
                run = RunCtx(T=t1 - t0, B=B, data={k: x[t0:t1] for k, x in data.items()}, owned=owned,
                             t0=t0, carry=carry)
                got = self._run(run, keep, record, None, sums)
                for part, whole in zip(got, (vals, rec)):
                    for k, y in part.items():
                        if k not in whole:
                            whole[k] = y.new_empty((T, *y.shape[1:]))
                        whole[k][t0:t1] = y
        outs = {n: vals[n] for n in self.output_names}
        if not record and not means:
            return outs
        recorded = {f"{n}.mean": sums[n].mean(T, (B, *self.types[n].shape), self.ctx.device) for n in means}
        for r in record:
            recorded[r] = vals[r]
            for key in ("v", "i", "b"):
                if f"{r}.{key}" in rec:
                    recorded[f"{r}.{key}"] = rec[f"{r}.{key}"]
        return outs, recorded

    def _sum_dtype(self, n: str, T: int) -> torch.dtype:
        """What node `n`'s sum over T steps is accumulated in: a spiking neuron's 0/1 values in their own
        dtype while every count up to T is exact there (integers; float32 up to 2**24 steps), which is
        ~10x faster on CPU than float64 and gives the same float64 mean; everything else in float64."""
        p = self.graph.nodes[n]
        if isinstance(p, P.Neuron) and p.spiking:
            dt = self.ctx.dtype
            if not dt.is_floating_point or T <= 2 / torch.finfo(dt).eps:
                return dt
        return torch.float64

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

    def _run(self, run: RunCtx, keep: set[str], record: list[str], segs: dict | None = None,
             sums: dict[str, "_TimeSum"] | None = None):
        """Every unit over the run's steps; returns the kept sequences and the recorded states.
        `segs`: the lean-mode segments to run through `recompute` (neuron -> chain). `sums`: node ->
        its sum over time so far, for the nodes whose means are wanted (updated here)."""
        segs = segs or {}
        sums = {} if sums is None else sums
        want_states = set(record)
        deferred = {m for chain in segs.values() for m in chain[:-1]}  # evaluated with their neuron
        last = self._last_uses(segs) if segs else self._last_use
        frees: dict[int, list[str]] = {}
        for s, k in last.items():
            if s not in keep:
                frees.setdefault(k, []).append(s)
        vals: dict[str, torch.Tensor] = {}
        rec: dict[str, torch.Tensor] = {}
        for k, unit in enumerate(self.units):
            if unit.cyclic:
                self._run_cycle(unit, vals, run, want_states, rec)
            elif unit.nodes[0] in segs:
                chain = segs[unit.nodes[0]]
                params = [p for m in chain for p in self.nodes[m].parameters() if p.requires_grad]
                x = vals[self.inputs_of[chain[0]][0]]
                parts = self.nodes[chain[-1]].chunk_scan()
                if parts is None:
                    vals[chain[-1]] = recompute(lambda x, chain=chain: self._chain(chain, x, run), [x], params)
                else:  # IF/LIF: K steps at a time, forward and backward

                    def pre(xc, chain=chain):
                        return self._chain(chain[:-1], xc, RunCtx(T=xc.shape[0], B=run.B, data={}, owned=run.owned))

                    vals[chain[-1]] = chunked_segment(pre, parts[0], parts[1], self._lean_steps(chain, run), x,
                                                      params)
            elif unit.nodes[0] not in deferred:
                n = unit.nodes[0]
                states = {} if n in want_states and self.nodes[n].stateful else None
                vals[n] = self._bulk(n, [vals[s] for s in self.inputs_of[n]], run, states)
                for key, v in (states or {}).items():
                    rec[f"{n}.{key}"] = v
            for n in unit.nodes:  # now, before a reader may overwrite the sequence in place
                if n in sums and n in vals:
                    sums[n].add(vals[n])
            for s in frees.get(k, ()):  # free sequences nobody reads any more
                vals.pop(s, None)
        return {n: vals[n] for n in keep}, rec

    # lean mode: steps per chunk of a segment, so that one chunk's values take about this many bytes
    lean_chunk_bytes: int = 32 * 2**20

    def _lean_steps(self, chain: tuple[str, ...], run: RunCtx) -> int:
        item = torch.empty((), dtype=self.ctx.dtype).element_size()
        per_step = run.B * item * sum(int(np.prod(self.types[m].shape)) for m in chain)
        return max(1, min(run.T, self.lean_chunk_bytes // max(1, per_step)))

    def _bulk(self, n: str, xs: list[torch.Tensor], run: RunCtx, states: dict | None) -> torch.Tensor:
        op = self.nodes[n]
        try:
            if op.per_step and xs and all(held_in_time(x) for x in xs):
                # inputs held constant (the report's held image): one step's value, computed once on
                # the B samples -- the values a step-by-step run computes at every step -- and held
                y = op.bulk([x[:1] for x in xs], dataclasses.replace(run, T=1), states)
                return y.expand(run.T, *y.shape[1:])
            return op.bulk(xs, run, states)
        except N3mlError:
            raise
        except Exception as e:  # name the node whose evaluation failed
            raise ExecutionError(n, op.prim.op, str(e)) from e

    def _chain(self, chain: tuple[str, ...], x: torch.Tensor, run: RunCtx) -> torch.Tensor:
        for n in chain:
            x = self._bulk(n, [x], run, None)
        return x

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
                v = cur[src].to(dt)
                bufs[n].append(v.detach() if self.nodes[n].prim.detach else v)
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


class _TimeSum:
    """The running sum over time of one node's values, for `Executor.forward(means=...)`."""

    __slots__ = ("dtype", "total")

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.total: torch.Tensor | None = None

    def add(self, y: torch.Tensor) -> None:
        """Add the steps of `y` (T, B, ...) in order."""
        part = y[0] if y.shape[0] == 1 else y.sum(dim=0, dtype=self.dtype)  # one step: no reduction
        if self.total is None:
            self.total = part.to(self.dtype, copy=True)
        else:
            self.total.add_(part.to(self.dtype))

    def mean(self, T: int, shape: tuple, device) -> torch.Tensor:
        """The float64 mean; nan without any step (T == 0), like numpy's mean of nothing."""
        if self.total is None:
            return torch.full(shape, float("nan"), dtype=torch.float64, device=device)
        return self.total.to(torch.float64).div_(T)


# what lean mode runs again in the backward pass instead of keeping: stateless, cheap next to the neuron scan
_RECOMPUTABLE = (P.Dense, P.Conv1d, P.Conv2d, P.BatchNorm, P.Scale, P.SumPool2d, P.AvgPool2d, P.MaxPool2d,
                 P.Flatten, P.ReLU)
_MEMORY = ("default", "lean")


def _override(surrogate: str | None, slope: float | None):
    """The spike function replacing every neuron's own surrogate, or None to keep the graph's."""
    if surrogate is None and slope is None:
        return None
    return spike_fn(surrogate or DEFAULT_SURROGATE, slope)


def compile(graph: Graph, *, device="cpu", dtype: torch.dtype = torch.float32, fixed: bool | None = None,
            surrogate: str | None = None, slope: float | None = None, memory: str = "default") -> Executor:
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
        memory: "default", or "lean" for training: every neuron with the stateless nodes feeding only
            it (Dense/Conv, BatchNorm, pools, ...) keeps just its input, spikes packed to 1 bit, and is
            recomputed in the backward pass (same gradients, one more forward; n3ml.backends.torch.lean).
    Returns:
        An `nn.Module`; call it with inputs (T, B, *shape).
    """
    return Executor(graph, device=device, dtype=dtype, fixed=fixed, surrogate=surrogate, slope=slope, memory=memory)
