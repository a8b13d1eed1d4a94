"""The input options shared by `simulate` and `verify` (an .npz file, or seeded random input), and the checks
that every array handed to an engine or a pass passes first: a bad value is refused here, naming the array,
instead of running into NaN membranes, silent truncation or a traceback deep inside numpy or torch.
"""

from __future__ import annotations

import decimal
import math

import numpy as np

from ..errors import N3mlError
from ..io import random_inputs, read_npz
from ..ir import budget

# numpy dtype kind -> why arrays of that kind are refused (bool, integers and floats are numbers)
_REFUSED_KINDS = {
    "c": "complex numbers (the engines compute with real values)",
    "U": "strings",
    "S": "byte strings",
    "O": "Python objects",
    "M": "datetimes",
    "m": "time deltas",
    "V": "structured records",
}
_EXACT_INT = 2 ** 53  # the largest integer range float64 holds exactly
INPUT_KINDS = ("spike", "analog")


def validate_array(name: str, arr, kind: str = "analog", *, where: str = "") -> np.ndarray:
    """Check one array of numbers and return it as native-endian float64 (values unchanged).

    Args:
        name: the array's name in messages (an Input node, a calibration key).
        kind: "spike" (values must be 0 or 1), "analog" (any finite number) or "calibration"
            (finite numbers, at least one sample).
        where: the file the array came from, for messages.
    Raises:
        N3mlError naming the array: non-numeric dtype, NaN/inf, integers float64 cannot hold, spikes not 0/1,
        an empty calibration batch.
    """
    at = f"{where}: " if where else ""
    a = np.asarray(arr)
    why = _REFUSED_KINDS.get(a.dtype.kind)
    if why is not None:
        raise N3mlError(f"{at}array `{name}` holds {why} (dtype {a.dtype}); give real numbers (float or int)")
    if a.dtype.kind in "iu" and a.size and (int(a.max()) > _EXACT_INT or int(a.min()) < -_EXACT_INT):
        raise N3mlError(f"{at}array `{name}` holds integers beyond ±2^53, which float64 cannot represent exactly")
    x = a.astype(np.float64)  # also turns big-endian data into native byte order, exactly
    if kind == "calibration" and (x.ndim == 0 or x.shape[0] == 0 or x.size == 0):
        raise N3mlError(f"{at}calibration array `{name}` is empty (shape {x.shape}); give at least one sample")
    if x.size and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise N3mlError(f"{at}array `{name}` holds {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}; "
                        "values must be finite numbers")
    if kind == "spike" and x.size and not np.isin(x, (0.0, 1.0)).all():
        bad = np.argwhere(~np.isin(x, (0.0, 1.0)))[0]
        raise N3mlError(f"{at}array `{name}` feeds a spike input but holds {x[tuple(bad)]:g} at index "
                        f"{tuple(int(i) for i in bad)}; spikes are 0 or 1 (declare the input analog for values)")
    return x


def validate_arrays(arrays: dict[str, np.ndarray], kind: str, where: str = "") -> dict[str, np.ndarray]:
    """`validate_array` over a dict (e.g. calibration data); an empty dict is refused."""
    if not arrays:
        raise N3mlError(f"{where or 'the data'}: holds no arrays")
    return {k: validate_array(k, v, kind, where=where) for k, v in arrays.items()}


# ------------------------------------------------------------------------- options


def int_option(flag: str, lo: int, hi: int | None = None):
    """An argparse type: a whole number in [lo, hi]. '1e3' is accepted as 1000; errors are N3mlErrors
    (exit 1 with one message, like every other bad input)."""

    def parse(text: str) -> int:
        try:
            d = decimal.Decimal(text.strip())  # exact: 1e23 is 10**23, not the float next to it
        except decimal.InvalidOperation:
            d = None
        if d is None or not d.is_finite() or d != d.to_integral_value() or d.adjusted() > 100:
            raise N3mlError(f"{flag} expects a whole number, found {text!r}")
        v = int(d)
        if v < lo or (hi is not None and v > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise N3mlError(f"{flag} must be {bound}, found {text}")
        return v

    parse.__name__ = "int"
    return parse


def unit_float(flag: str):
    """An argparse type: a probability in [0, 1] (NaN refused)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise N3mlError(f"{flag} expects a number in [0, 1], found {text!r}") from None
        if not 0.0 <= v <= 1.0:  # False for NaN too
            raise N3mlError(f"{flag} must lie in [0, 1], found {text}")
        return v

    parse.__name__ = "float"
    return parse


def positive_float(flag: str):
    """An argparse type: a finite number > 0 (a duration, a timeout)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise N3mlError(f"{flag} expects a number, found {text!r}") from None
        if not (v > 0 and math.isfinite(v)):
            raise N3mlError(f"{flag} must be a finite number > 0, found {text}")
        return v

    parse.__name__ = "float"
    return parse


steps_type = int_option("--steps", 1)
batch_type = int_option("--batch", 1)
seed_type = int_option("--seed", 0, 2 ** 64 - 1)
rate_type = unit_float("--rate")


def add_input_arguments(p, *, steps_required: bool = True) -> None:
    """The input options; with steps_required=False, --steps may be left out (see `resolve_steps`)."""
    p.add_argument("--steps", "-T", type=steps_type, required=steps_required, default=None,
                   help="number of time steps" + ("" if steps_required else
                                                  " (default: the steps the source model held a static --input "
                                                  "sample for (the Input's hold), or the T of a sequence file)"))
    p.add_argument("--input", metavar="X.npz", help="input arrays keyed by Input node name: (T, B, *shape), or "
                   "(B, *shape) held constant for --steps; default: seeded random input")
    p.add_argument("--batch", type=batch_type, default=1, help="batch size of the random input (default 1)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random input (>= 0, default 0)")
    p.add_argument("--rate", type=rate_type, default=0.2, help="spike probability of random spike input (0..1)")


def add_input_kind_argument(p) -> None:
    """`--input-kind spike|analog` for loaders of models whose input kind is not in the file."""
    p.add_argument("--input-kind", choices=INPUT_KINDS, default=None,
                   help="what the model's input carries: spike (0/1 events) or analog values (default analog)")


def inputs_from_args(args, graph, *, engine: str = "reference", device: str = "cpu") -> dict[str, np.ndarray]:
    """The run's inputs, each (steps, B, *shape) float64, checked; refused up front if the run cannot fit."""
    types = graph.verify()
    if getattr(args, "steps", None) is None:
        args.steps = resolve_steps(args, graph, types)
    if args.input:
        raw = read_npz(args.input)
        batch = None
        for n in graph.input_names:
            if n in raw:
                static = np.ndim(raw[n]) == len(types[n].shape) + 1
                batch = np.shape(raw[n])[0 if static else 1] if np.ndim(raw[n]) >= 2 else None
                break
        check_memory(graph, args.steps, batch or 1, record=_record(args), engine=engine, device=device)
        return held_inputs(graph, raw, args.steps, where=args.input)
    check_memory(graph, args.steps, args.batch, record=_record(args), engine=engine, device=device,
                 random_input=True)
    return random_inputs(graph, args.steps, args.batch, args.seed, args.rate)


def resolve_steps(args, graph, types=None) -> int:
    """The number of steps of a run given no --steps: the `hold` of every Input fed a static (B, *shape) array
    (how many steps the source model held one sample for, e.g. snnTorch's `for step in range(num_steps)` on a
    static image), or the T of every (T, B, *shape) sequence; they must agree. Anything else is refused with
    what to give instead."""
    types = types or graph.verify()
    held = {n: graph.nodes[n].hold for n in graph.input_names if getattr(graph.nodes[n], "hold", 0)}
    if not args.input:
        hint = "; ".join(f"the Input `{n}` was held for {h} steps by its source model: give --steps {h}, or an "
                         "--input file with a static (B, *shape) array" for n, h in held.items())
        raise N3mlError("--steps is required with random input" + (f" ({hint})" if hint else ""))
    raw = read_npz(args.input)
    steps: dict[str, int] = {}
    for n in graph.input_names:
        if n not in raw:
            continue
        nd = np.ndim(raw[n])
        if nd == len(types[n].shape) + 1:  # one static sample per batch entry
            if n not in held:
                raise N3mlError(f"{args.input}: array `{n}` is a static (B, *shape) sample, but the Input `{n}` "
                                "records no number of steps to hold it for (its source model took a sequence); "
                                "give --steps")
            steps[n] = held[n]
        elif nd == len(types[n].shape) + 2:
            steps[n] = int(np.shape(raw[n])[0])
    if not steps:
        raise N3mlError(f"{args.input}: holds none of the graph's inputs ({', '.join(graph.input_names)}) as a "
                        "(B, *shape) or (T, B, *shape) array, so the number of steps is unknown; give --steps")
    if len(set(steps.values())) > 1:
        raise N3mlError(f"{args.input}: the inputs call for different numbers of steps "
                        f"({', '.join(f'{n}: {t}' for n, t in steps.items())}); give --steps")
    if min(steps.values()) < 1:
        raise N3mlError(f"{args.input}: a sequence of 0 steps; give --steps")
    return next(iter(steps.values()))


def _record(args) -> list[str]:
    r = getattr(args, "record", None) or []
    return [n for n in r.split(",") if n] if isinstance(r, str) else list(r)


def held_inputs(graph, raw: dict[str, np.ndarray], steps: int, where: str = "") -> dict[str, np.ndarray]:
    """Check an input file's arrays against the Input nodes. An array of shape (B, *shape), one dimension less
    than an Input's (T, B, *shape), is a static input: the same values at every one of the `steps` steps."""
    out = {}
    for k, v in raw.items():
        prim = graph.nodes.get(k)
        if prim is None or prim.op != "Input":
            out[k] = v  # the engine names unknown inputs next to the graph's
            continue
        x = validate_array(k, v, prim.kind, where=where)
        if x.ndim == len(prim.shape) + 1 and tuple(x.shape[1:]) == tuple(prim.shape):
            x = np.broadcast_to(x[None], (steps, *x.shape)).copy()
        out[k] = x
    return out


# ------------------------------------------------------------------------- memory


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a run may still take: the host's (n3ml.ir.budget), or the free memory of a CUDA device;
    None if a CUDA driver cannot say."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # no CUDA, or a driver that cannot say: do not guess
            return None
    return budget.available_memory()


def estimate_bytes(graph, steps: int, batch: int, record=(), engine: str = "reference", *,
                   random_input: bool = False) -> int:
    """The memory a run needs at its peak, in bytes (exact Python integers: no overflow for absurd sizes).

    The IR's estimate (`n3ml.ir.budget`: inputs, outputs, one step of every node with its states, delay
    buffers, convolution windows; for the torch engine, which evaluates layer by layer, every node's whole
    sequence), plus what the command holds besides: the recorded nodes' sequences (a neuron's with up to
    three states), the second copy of every output made when the per-step results are stacked, and, for
    seeded random input, the float64 draws the spikes are made from.
    """
    types = graph.verify()

    def size(n: str) -> int:
        return math.prod(types[n].shape)

    values = sum(size(n) * (4 if graph.nodes[n].category == "neuron" else 1) for n in set(record) if n in types)
    values += sum(size(n) for n in graph.output_names)
    if random_input:
        values += sum(size(n) for n in graph.input_names)
    return budget.estimate_bytes(graph, steps, batch, traces=engine == "torch") + 8 * steps * batch * values


def check_memory(graph, steps: int, batch: int, *, record=(), engine: str = "reference", device: str = "cpu",
                 random_input: bool = False) -> None:
    """Refuse, with the estimate, a run that cannot fit in the free memory (before anything is allocated)."""
    need = estimate_bytes(graph, steps, batch, record, engine, random_input=random_input)
    free = available_bytes(device)
    if free is not None and need > free:
        raise N3mlError(f"this run would need about {budget.human(need)} ({steps} steps x batch {batch}, "
                        f"{engine} engine) but only {budget.human(free)} is available on {device}; "
                        "nothing was allocated: reduce --steps or --batch")


def check_device(device: str, engine: str) -> None:
    """Refuse a device torch does not know, or one this machine does not have, before loading anything."""
    if engine == "reference":
        return
    try:
        import torch
    except ImportError:
        return  # the engine lookup says torch is missing
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise N3mlError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise N3mlError(f"--device {device!r}: CUDA is not available here (use --device cpu)")
        if d.index is not None and d.index >= n:
            raise N3mlError(f"--device {device!r}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    elif d.type != "cpu":
        raise N3mlError(f"--device {device!r}: the torch engine runs on cpu or cuda, not {d.type}")
