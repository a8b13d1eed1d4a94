"""Memory estimates made before allocating: a run or a weights file that needs more memory than
the machine has is refused with the estimate, instead of being killed (or swapping) half-way.

`estimate_bytes(graph, steps, batch)` is what a simulation of `graph` allocates beyond the graph's
own weights; `ensure_fits(nbytes, what)` refuses what does not fit in the memory available now.
"""

from __future__ import annotations

import os

import numpy as np

from .types import VerifyError

ITEM = 8  # bytes per value: the engines compute in float64 / int64 unless told otherwise


def available_memory() -> int:
    """Bytes of memory available now: MemAvailable from /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1  # unknown: do not refuse on a guess


def human(nbytes: int) -> str:
    """1536 -> '1.5 KiB'; exact Python ints of any size."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    x, i = float(nbytes), 0
    while x >= 1024 and i < len(units) - 1:
        x, i = x / 1024, i + 1
    if i == len(units) - 1 and x >= 1024:
        return f"about 2**{nbytes.bit_length() - 1} bytes"
    return f"{nbytes} bytes" if i == 0 else f"{x:.1f} {units[i]}"


def ensure_fits(nbytes: int, what: str) -> None:
    """Raise VerifyError if `nbytes` exceed the memory available now.

    Args:
        nbytes: the estimate (a Python int; may be astronomically large).
        what: what needs it, for the message ("simulating graph `g` for 10 steps").
    """
    avail = available_memory()
    if nbytes > avail:
        raise VerifyError(f"{what} would need about {human(nbytes)} of memory, more than the "
                          f"{human(avail)} available; nothing was allocated")


def estimate_bytes(graph, steps: int, batch: int, *, traces: bool = False) -> int:
    """Bytes a simulation of `graph` over `steps` steps of `batch` samples allocates (an estimate).

    Counts the input arrays (steps x batch per Input), the recorded outputs (steps x batch per
    Output), one step's values and neuron states of every node, Delay buffers and the window
    copies of convolutions/pools. With `traces`, every node's whole sequence is kept (an engine
    that evaluates the graph layer by layer over all steps). Weights are not counted: they are
    already in memory. Exact Python integers: a shape of 10**10 neurons gives 8e10, not an overflow.

    Args:
        graph: a verified Graph.
        steps, batch: the run's length and batch size (non-negative ints).
    Returns:
        the estimate in bytes.
    """
    types = graph.verify()
    total = 0
    for name, prim in graph.nodes.items():
        size = types[name].size
        step_bytes = batch * size * ITEM
        op = prim.op
        if op in ("Input", "Output") or traces:
            total += steps * step_bytes
        total += step_bytes  # this step's value
        states = getattr(prim, "state_names", ())
        if states:
            total += (len(states) + 1) * step_bytes  # states and the refractory counter
            if op == "FixedCubaLIF" and np.any(np.asarray(prim.q) != 0):
                total += step_bytes  # the adaptive threshold b (docs/semantics.md §6a)
        if op == "Delay":
            kept = min(int(prim.steps), steps)
            total += prim.steps * ITEM + kept * step_bytes  # the buffer's slots, the values it holds
        if op in ("Conv1d", "Conv2d"):
            k = 1
            for d in prim.weight.shape[2:]:
                k *= int(d)
            c_out, c_in = int(prim.weight.shape[0]), int(prim.weight.shape[1]) * int(prim.groups)
            total += batch * (size // c_out) * c_in * k * ITEM  # every output position's input window
        elif op in ("SumPool2d", "AvgPool2d", "MaxPool2d"):
            total += step_bytes * int(prim.kernel[0]) * int(prim.kernel[1])
    return total


def check_simulation(graph, steps: int, batch: int, *, traces: bool = False) -> int:
    """`estimate_bytes`, refused with the estimate when it exceeds the memory available; returns it."""
    need = estimate_bytes(graph, steps, batch, traces=traces)
    ensure_fits(need, f"simulating graph `{graph.name}` for {steps} step(s) of batch {batch}")
    return need
