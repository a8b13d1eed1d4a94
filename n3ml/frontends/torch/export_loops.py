"""Time loops that torch.export unrolled, folded back into one step.

A forward with a Python loop over the steps (snnTorch's tutorial form ``for step in range(T):
spk, mem = lif(fc(x), mem)``, Norse's ``for ts in range(seq_length): z, s = self.lif0(z, s)``)
exports as T copies of the body. export names every module call in `nn_module_stack` with its
call number (``L__self__lif1@3``), so the k-th call of each neuron module is step k. The
program is folded to its step 0:

- the input is a sequence when the body reads ``x[t]`` (``select(x, 0, t)`` for every t: the
  per-step input), else a static sample held for the T steps (`Input.hold`);
- per-step records become the step's value: ``torch.stack([o_0, ..., o_{T-1}])`` and an output
  buffer filled by ``buf[t] = o_t`` (``copy_(select(buf, 0, t), o_t)``) are replaced by o_0;
- then everything computed for steps 1..T-1 is dead and removed.

Each neuron module is rebuilt from its first call and checked against all T calls run in turn
(its state carried, as the converted graph carries it), and every step must repeat step 0's
operations, so a body that changes from step to step is refused rather than folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from ...errors import UnsupportedError

aten = torch.ops.aten


def source_line(node: fx.Node) -> str:
    """`, from file:line: code` of the user-level frame export recorded for `node` (empty if none)."""
    trace = (node.meta.get("stack_trace") or "").strip().splitlines()
    for i in range(len(trace) - 1, -1, -1):
        line = trace[i].strip()
        if line.startswith("File "):
            code = trace[i + 1].strip() if i + 1 < len(trace) else ""
            return f", from {line[5:]}: `{code}`"
    return ""



def call_index(node: fx.Node) -> int | None:
    """The call number of the innermost module an operation came from (None for the model's own forward)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    key, (path, _) = list(stack.items())[-1]
    if not path:
        return None
    m = re.search(r"@(\d+)$", str(key))
    return int(m.group(1)) if m else 0


@dataclass
class Loop:
    steps: int
    sequence: bool  # the input is (T, B, ...) read step by step; else a static sample held for T steps


def _steps(gm: fx.GraphModule, varying: set[fx.Node], x: fx.Node, steps: int) -> dict[fx.Node, int]:
    """Step of each input-dependent operation: its module call number, a tap's index, or its inputs' latest."""
    step: dict[fx.Node, int] = {}
    for n in gm.graph.nodes:
        if n not in varying or n.op != "call_function":
            continue
        s = max((step.get(a, -1) for a in n.all_input_nodes), default=-1)
        k = call_index(n)
        if k is not None:
            s = max(s, k)
        if n.target is aten.select.int and n.args[0] is x and n.args[1] == 0:
            s = max(s, int(n.args[2]) % steps)
        step[n] = s
    return step


def _signature(n: fx.Node, step: dict[fx.Node, int]) -> tuple:
    def norm(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return "node" if a in step else str(a.target) if a.op == "get_attr" else a.op
        if isinstance(a, (list, tuple)):
            return tuple(norm(v) for v in a)
        return a

    args = n.args[:2] if n.target is aten.select.int else n.args  # the tap's index is the step
    return (str(n.target), norm(args), norm(tuple(sorted(n.kwargs.items()))))


def fold(gm: fx.GraphModule, where: str, varying: set[fx.Node], calls: dict[str, list[list[fx.Node]]]) -> Loop:
    """Rewrite `gm` to its step 0 (see the module docstring); `calls` holds each neuron module's calls in order."""
    counts = {path: len(c) for path, c in calls.items()}
    steps = max(counts.values())
    if len(set(counts.values())) != 1:
        desc = ", ".join(f"`{p}` {c}x" for p, c in counts.items())
        raise UnsupportedError(f"{where}: the neuron modules are called different numbers of times ({desc}); n3ml "
                               "folds a time loop whose body calls every neuron module once per step")
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    step = _steps(gm, varying, x, steps)
    for path, cs in calls.items():
        for k, nodes in enumerate(cs):
            for n in nodes:
                step[n] = k
    # every step repeats step 0's operations (neuron internals apart: their first call also starts the state)
    inside = {n for cs in calls.values() for c in cs for n in c}
    records = (aten.stack.default, aten.copy_.default)  # per-step records are read by _records, not repeated
    body = [[n for n in gm.graph.nodes if step.get(n) == t and n not in inside and n.target not in records]
            for t in range(steps)]
    sig0 = [_signature(n, step) for n in body[0]]
    for t in range(1, steps):
        sig = [_signature(n, step) for n in body[t]]
        if sig != sig0 and not (t == steps - 1 and sig == sig0[:len(sig)]):
            first = next((i for i, (a, b) in enumerate(zip(sig, sig0)) if a != b), min(len(sig), len(sig0)))
            at = body[t][first] if first < len(body[t]) else body[t][-1] if body[t] else None

            what = f" (operation `{at.name}` {at.target}{source_line(at)})" if at is not None else ""
            raise UnsupportedError(f"{where}: step {t} of the unrolled time loop computes other operations than "
                                   f"step 0{what}; n3ml folds a loop whose body is the same at every step. "
                                   "Export the model's one-step forward instead")
    taps = [n for n in gm.graph.nodes if n.target is aten.select.int and n.args[0] is x and n.args[1] == 0]
    sequence = bool(taps)
    for n in taps:
        if step.get(n) == 0:
            n.replace_all_uses_with(x)
    _records(gm, step, steps, where)
    for n in [n for n in gm.graph.nodes if n.target is aten.copy_.default]:
        gm.graph.erase_node(n)
    gm.graph.eliminate_dead_code()
    for n in reversed(list(gm.graph.nodes)):  # assertions of later steps (not dead code to torch.fx)
        if step.get(n, -1) > 0 and not n.users:
            gm.graph.erase_node(n)
    gm.graph.eliminate_dead_code()
    left = sorted({step[n] for n in gm.graph.nodes if step.get(n, -1) > 0})
    if left:
        raise UnsupportedError(f"{where}: the program's outputs depend on steps {left} of the unrolled loop other "
                               "than through per-step records (torch.stack or buf[t] = ...); n3ml folds loops "
                               "whose outputs are records of every step")
    return Loop(steps, sequence)


def _records(gm: fx.GraphModule, step: dict[fx.Node, int], steps: int, where: str) -> None:
    """torch.stack of the steps and buffers filled step by step become the step-0 value."""
    for n in list(gm.graph.nodes):
        if n.target is aten.stack.default and n.args and isinstance(n.args[0], (list, tuple)):
            parts = list(n.args[0])
            if [step.get(p) for p in parts] == list(range(steps)) and (len(n.args) < 2 or n.args[1] == 0):
                n.replace_all_uses_with(parts[0])
    fills: dict[fx.Node, dict[int, fx.Node]] = {}
    for n in gm.graph.nodes:
        if n.target is aten.copy_.default:
            dst, src = n.args[0], n.args[1]
            if isinstance(dst, fx.Node) and dst.target is aten.select.int and dst.args[1] == 0:
                fills.setdefault(dst.args[0], {})[int(dst.args[2])] = src
    for buf, by_step in fills.items():
        if sorted(by_step) != list(range(steps)):
            raise UnsupportedError(f"{where}: buffer `{buf.name}` is filled at steps {sorted(by_step)} of "
                                   f"{steps}; n3ml folds a buffer written once at every step (buf[t] = o_t)")
        users = [u for u in buf.users if u.target not in (aten.select.int,)]
        for u in users:
            u.replace_input_with(buf, by_step[0])
