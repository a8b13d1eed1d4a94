"""Trace a model by running its Python forward on recording tensors (time loops, explicit state, glue).

torch.fx cannot follow a forward that loops over time (`for step in range(num_steps)`,
`for ts in range(x.shape[0])`), keeps neuron state in local variables
(`mem = lif.init_leaky()`, `z, s = self.lif(z, s)`), fills output buffers
(`out[ts] = v`) or moves the time axis (`x.unsqueeze(0).repeat(T, 1, 1, 1)`,
`x.permute(1, 0, 2)`, `.mean(0)`). This tracer runs the forward itself, once, on real
tensors under a `TorchFunctionMode` that records what each operation does to them:

* every traced tensor carries a `Sym`: the IR node giving its value at one step, the
  labels of its leading axes (`B` batch, `T` time, `1` a unit time axis made by
  `unsqueeze`) and, inside an unrolled loop, the step `t` it belongs to;
* operations are hash-consed: the same operation on the same nodes gives the same node,
  so a loop body run T times builds the per-step graph once and every later iteration
  finds the nodes of the first (the time axis of the loop becomes the graph's time axis);
* a neuron module called again must receive its own state from its previous call (or
  keep it itself); its output is then the same node one step later. Anything else
  (another module's state, a reset inside the loop, a different input) is refused;
* values collected over the loop (`torch.stack(rec)`, a buffer filled per step) must be
  the same node at every step, or the loop body is not the same at every step.

Modules with a converter are not entered: the library runs them (to keep the Python
state right) and their converter builds the IR. Library blocks without a converter
(SpikingJelly's `BasicBlock`, `MultiStepContainer`, ...) are entered like user code.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ...errors import UnsupportedError
from ...ir import Graph
from ...ir import prims as P
from .vocab import Context, State, Tensor, check_outputs, output_leaves, output_name

log = logging.getLogger(__name__)

BATCH = 2  # batch size of the recording run
STEPS = 3  # length of a (T, B, ...) input of the recording run
LONG_STEPS = 64  # retried when the forward indexes further steps (its own loop length)


# ----------------------------------------------------------------- values


@dataclass(frozen=True)
class Sym:
    """A traced tensor: IR node `node` per step; leading axes `lead`; `t` the loop step (None: every step)."""

    node: str
    lead: tuple[str, ...]
    t: int | None = None


@dataclass(frozen=True)
class Const:
    """A tensor computed without the input (a state initialiser, a preallocated buffer)."""

    zero: bool


@dataclass(frozen=True)
class StateOf:
    """A neuron's state after its call number `call` (0-based)."""

    owner: int
    path: str
    call: int
    state: State
    pop: Any = None  # the neuron population (state chain) it belongs to


@dataclass(frozen=True)
class StateSeq:
    """`torch.stack` of one neuron's states over the loop (a membrane record)."""

    state: State
    lead: tuple[str, ...]


@dataclass
class Buffer:
    """A preallocated tensor (`torch.zeros(T, B, n)`) whose steps are written inside the loop."""

    lead: tuple[str, ...]
    length: int
    filled: dict[int, Sym] = field(default_factory=dict)


@dataclass(frozen=True)
class Reduced:
    """A sequence reduced over time (`.mean(0)`, `.sum(0)`): an Output with that readout."""

    node: str
    how: str
    lead: tuple[str, ...]
    count: int = 0  # a running sum over a loop: the steps 0..count-1 added so far (0: a whole-sequence reduction)


@dataclass(frozen=True)
class Affine:
    """`c + f * x` of a traced 0/1 tensor `x` (SEW's `1.0 - s`): the IR has no constant source, so it is only
    usable as a factor of a product with another 0/1 tensor, where the constant term cancels."""

    sym: Sym
    c: float
    f: float


class NotRunnable(UnsupportedError):
    """The forward fails on every input layout tried."""


class Relayout(Exception):
    """The input layout guessed for the recording run is not the one the forward expects."""


@dataclass
class _Neuron:
    first_input: str
    explicit: bool  # the state was passed explicitly (initialised by the forward)
    calls: int
    value: Any  # the converter's result (Tensor / tuple with State)
    t0: int


# ------------------------------------------------------------ the recorder


def _fname(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":
        return getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def _user_line() -> str:
    """file:line: code of the innermost frame outside torch and n3ml (where the user wrote the construct)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tdir = os.path.dirname(os.path.abspath(torch.__file__))
    for fr in reversed(traceback.extract_stack()):
        f = os.path.abspath(fr.filename)
        if f.startswith(here) or f.startswith(tdir) or "<" in fr.filename:
            continue
        return f"{fr.filename}:{fr.lineno}: {(fr.line or '').strip()}"
    return ""


_PASS = frozenset({"shape", "size", "dim", "ndim", "ndimension", "dtype", "device", "numel", "__len__", "__format__",
                   "__repr__", "is_floating_point", "requires_grad", "is_contiguous", "data_ptr", "element_size",
                   "get_device", "__hash__", "is_cuda", "layout", "names", "_version", "grad", "is_leaf",
                   "requires_grad_", "stride", "storage_offset", "is_complex", "nelement", "__reduce_ex__",
                   "__get__", "_is_view", "is_sparse", "is_quantized", "is_meta", "is_nested", "_base", "data"})
_CASTS = frozenset({"contiguous", "detach", "clone", "float", "double", "to", "type_as", "type", "half", "bfloat16",
                    "cpu", "cuda", "detach_", "float_", "requires_grad_"})


class Recorder(TorchFunctionMode):
    def __init__(self, ctx: Context, model: nn.Module, fresh: frozenset = frozenset()):
        super().__init__()
        self.ctx = ctx
        self.model = model
        self.fresh = fresh
        self.vals: dict[int, tuple[Any, Any]] = {}
        self.paused = 0
        self.memo: dict[Any, Any] = {}
        self.neurons: dict[Any, _Neuron] = {}  # neuron population (module, or explicit state chain) -> calls
        self.inits: dict[int, int] = {}  # module -> explicit state chains started
        self.sizes: dict[str, int] = {"B": BATCH}
        self.repeated_input = 0
        self.input_T = 0  # steps of a sequence input (a loop may read a prefix of them)
        self.stack: list[nn.Module] = []  # modules whose forward is running (for error locations)
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.materialized: dict[int, Tensor] = {}
        self.binary: set[str] = set()  # nodes built here whose values are 0/1 (products of spikes)

    # -------------------------------------------------------- bookkeeping
    def get(self, obj: Any) -> Any:
        e = self.vals.get(id(obj))
        return e[0] if e is not None and e[1] is obj else None

    def put(self, obj: Any, sym: Any) -> None:
        self.vals[id(obj)] = (sym, obj)

    def fail(self, what: str, supported: str | None = None) -> UnsupportedError:
        line = _user_line()
        err = self.ctx.unsupported(what, supported)
        if line:
            err = UnsupportedError(f"{err} (at {line})")
        return err

    def sym(self, obj: Any, what: str = "input") -> Sym:
        s = self.get(obj)
        if isinstance(s, Sym):
            return s
        if isinstance(s, StateOf):
            return self.state_value(s.state, ("B",))
        if isinstance(s, StateSeq):
            return self.state_value(s.state, s.lead)
        if isinstance(s, Buffer):
            return self.buffer_seq(s)
        if isinstance(s, Affine):
            raise self.fail(_CONSTANT_ADD, "tensor + tensor, tensor * constant, (1 - s) * spikes")
        if isinstance(s, Reduced) and s.how == "all":
            raise self.fail(f"{what} is a reduction over all axes (batch and time included) of a traced tensor",
                            "`.sum(0)`/`.mean(0)` over the time axis as the model's readout")
        if isinstance(s, Reduced):
            raise self.fail(f"{what} is a readout over time (`.{s.how}` of the time axis); only the model's output "
                            "may be reduced over time", "reductions over time as the last operation")
        raise self.fail(f"{what} is not computed from the model's input")

    def state_value(self, st: State, lead: tuple[str, ...]) -> Sym:
        if st.make is None:
            raise self.fail(f"the internal state `{st.what}` of `{st.owner}` is used as a value; the IR exposes only "
                            "a neuron's output (spikes, or the voltage of a non-spiking readout)")
        key = id(st.make)
        if key not in self.materialized:
            self.materialized[key] = st.make()
        return Sym(self.materialized[key].node, lead)

    def buffer_seq(self, b: Buffer) -> Sym:
        n = b.length
        nodes = {b.filled[t].node for t in b.filled}
        if not b.filled or sorted(b.filled) != list(range(n)) or len(nodes) != 1:
            raise self.fail(f"a buffer written per step holds steps {sorted(b.filled)} of {n} (from "
                            f"{len(nodes)} different computations); every step 0..T-1 must be written by the same "
                            "loop body")
        return Sym(nodes.pop(), b.lead)

    def tensor(self, s: Sym) -> Tensor:
        return Tensor(s.node)

    def is_binary(self, node: str) -> bool:
        """The node's values are 0 or 1 at every step (spikes, or a product of spikes built here)."""
        t = self.ctx.types.get(node)
        return node in self.binary or (t is not None and t.kind == "spike")

    def lead_n(self, lead: tuple[str, ...]) -> int:
        if lead in (("B",), ("TB",)):
            return 1
        if lead == ("T", "B"):
            return 2
        raise Relayout(f"a tensor with leading axes {'x'.join(lead)} reaches a layer; n3ml needs (B, ...) per step "
                       "or (T, B, ...) time-major sequences (permute/transpose to time-major first)")

    def merge_t(self, syms: list[Sym]) -> int | None:
        ts = {s.t for s in syms if s.t is not None}
        if len(ts) > 1:
            raise self.fail(f"an operation combines values of different steps {sorted(ts)} of the loop; n3ml maps "
                            "one loop iteration to one graph step", "values of the same step (or static values)")
        return ts.pop() if ts else None

    # ------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = _fname(func)
        if name in _PASS:
            return func(*args, **kwargs)
        leaves = _leaves((args, kwargs))
        tracked = [a for a in leaves if self.get(a) is not None and not isinstance(self.get(a), Const)]
        if not tracked:
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor) and not isinstance(out, nn.Parameter):
                self.put(out, Const(zero=bool(out.numel() == 0 or not torch.any(out != 0))))
            return out
        if self.stack:
            m = self.stack[-1]
            self.ctx.where = (f"operation `{name}` in module `{self.paths.get(id(m), '') or '(root)'}` "
                              f"({type(m).__module__}.{type(m).__qualname__})")
        h = OPS.get(name)
        if h is None:
            raise self.fail(f"`{name}` on a traced tensor is not supported", ", ".join(_supported_ops()))
        return h(self, func, args, kwargs)

    # ------------------------------------------------------------- modules
    def call_leaf(self, m: nn.Module, orig: Callable, args: tuple, kwargs: dict) -> Any:
        if self.paused:
            return orig(*args, **kwargs)
        path = self.paths.get(id(m), "")
        ctx = self.ctx
        entry = ctx.entry(m)
        ctx.where = f"module `{path or '(root)'}` ({type(m).__module__}.{type(m).__qualname__})"
        if entry is None:
            raise self.fail("this module type has no converter", ctx.supported_modules())
        params = list(inspect.signature(orig).parameters)
        allargs = list(args) + [kwargs[k] for k in params[len(args):] if k in kwargs]
        if not allargs:
            raise self.fail("called without an input")
        x, rest = allargs[0], allargs[1:]
        if isinstance(x, tuple) and len(x) == 2 and getattr(entry.convert, "takes_output_tuple", False):
            x = x[0]  # Norse's Lift given a neuron's (spikes, state): it uses the spikes
        kinds = [self.state_kind(s, m) for s in rest]  # before the call: it may update a state list in place
        quick = tuple(c for t in ctx.tables for c in getattr(t, "SHAPE_ONLY", ()))
        self.paused += 1
        try:
            if quick and isinstance(m, quick) and isinstance(x, torch.Tensor) and not rest:
                real = torch.zeros_like(x)  # its spikes' shape is all the rest of the forward needs
            else:
                real = orig(*args, **kwargs)
        finally:
            self.paused -= 1
        xs = self.get(x)
        if xs is None or isinstance(xs, Const):
            return real  # computed from constants only
        xs = self.sym(x)
        mode = entry.steps(m) if entry.steps is not None else None
        if mode is None and getattr(entry.convert, "carries_state", False):
            # a container that returns its children's state (Norse's SequentialState): a neuron of one step,
            # or of a whole sequence
            mode = "multi" if xs.lead == ("T", "B") else "single"
        if mode is None:
            if _tracked_any(self, rest):
                raise self.fail("a layer called with more than one traced tensor")
            key = ("module", id(m), xs.node, xs.lead)
            val = self.memo.get(key)
            # a 1-d pool of x.unsqueeze(1): the added axis is the pool's one channel (SNASNet's boost)
            inner = Sym(xs.node, xs.lead[:-1], xs.t) if xs.lead[-1:] == ("1",) and getattr(
                entry.convert, "channel_axis_1d", False) else xs
            if val is None:
                val = self._convert(m, path, entry, inner, ())
                self.memo[key] = val
            return self.bind(real, val, xs.lead, xs.t, m, path, 0)
        if mode == "encode":  # an encoder that holds a static input for its own number of steps
            if xs.lead != ("B",):
                raise self.fail(f"an encoder of a static input fed axes {'x'.join(xs.lead)}", "(B, ...) input")
            _set_T(self, int(entry.convert.held_steps(m)))
            xs, mode = Sym(xs.node, ("T", "B"), xs.t), "multi"
        want = ("B",) if mode == "single" else ("T", "B")
        if xs.lead != want:
            raise Relayout(f"module `{path}` runs {'one step' if mode == 'single' else 'a sequence'} but receives "
                           f"axes {'x'.join(xs.lead)}")
        return self._neuron_call(m, path, entry, mode, xs, kinds, real)

    def _population(self, m: nn.Module, kinds: list[tuple]) -> tuple[Any, set]:
        """The neuron population a call continues or starts: the module itself (state kept inside it) or an
        explicit state chain (`mem = lif.init_leaky()`: with explicit state the module is a function)."""
        own = {k[3] for k in kinds if k[0] == "own"}
        if any(k[0] == "other" for k in kinds) or (own and any(k[0] != "own" for k in kinds)) or len(own) > 1:
            what = next((k[1] for k in kinds if k[0] == "other"), "a mix of states")
            raise self.fail(f"it receives {what} as its state; a neuron receives None or a zero initial state "
                            "(init_leaky()) at its first call and the state its previous call returned afterwards",
                            "spk, mem = lif(cur, mem)")
        if own:  # an explicit state chain continues: the neuron population that returned this state
            return next(iter(own)), own
        if any(k[0] == "init" for k in kinds):  # a new chain
            self.inits[id(m)] = self.inits.get(id(m), 0) + 1
            return ("init", id(m), self.inits[id(m)]), own
        return ("module", id(m)), own

    def _neuron_call(self, m: nn.Module, path: str, entry: Any, mode: str, xs: Sym, kinds: list[tuple],
                     real: Any) -> Any:
        """A neuron's first call converts it; a later call must continue its state by one step."""
        pop, own = self._population(m, kinds)
        info = self.neurons.get(pop)
        if info is None:
            if own:
                raise self.fail("it receives the state of a call this trace did not see")
            explicit = pop[0] == "init"
            val = self._convert(m, path, entry, xs, (), fresh=pop in self.fresh)
            t0 = xs.t if xs.t is not None else 0
            self.neurons[pop] = _Neuron(xs.node, explicit, 1, val, t0)
            return self.bind(real, val, xs.lead, t0 if mode == "single" else None, m, path, 0, pop)
        if mode == "multi":
            raise self.fail("a sequence module called twice in one forward")
        if pop in self.fresh:
            raise self.fail("a neuron re-initialised at every call is also called in a loop")
        if info.explicit and not own:
            raise self.fail(f"call {info.calls + 1} passes no state although the first passed one")
        if not own and not _keeps_state(m):
            raise self.fail(f"call {info.calls + 1} passes no state, so the neuron restarts from its initial state "
                            "at every step; carry the state: `z, s = self.lif(z, s)`")
        if own and next(k[2] for k in kinds if k[0] == "own") != info.calls - 1:
            raise self.fail(f"call {info.calls + 1} receives the state of an earlier call, not of the previous one")
        if xs.node != info.first_input:
            raise self.fail(f"called again on a different input (call {info.calls + 1}); n3ml maps each neuron "
                            "state chain to one neuron population fed the same way at every step")
        t = info.t0 + info.calls
        if xs.t is not None and xs.t != t:
            raise self.fail(f"call {info.calls + 1} (step {t}) receives the input of step {xs.t}")
        info.calls += 1
        self.sizes["T"] = max(self.sizes.get("T", 0), info.calls)
        return self.bind(real, info.value, xs.lead, t, m, path, info.calls - 1, pop)

    def _convert(self, m: nn.Module, path: str, entry: Any, xs: Sym, rest: tuple, fresh: bool = False) -> Any:
        ctx = self.ctx
        lead = ctx.lead
        ctx.lead = self.lead_n(xs.lead)
        ctx.fresh = fresh
        self.paused += 1  # the converter's own tensor arithmetic (parameters) is not the model's
        try:
            return ctx.convert_module(m, path, Tensor(xs.node), *rest)
        finally:
            ctx.lead, ctx.fresh = lead, False
            self.paused -= 1

    def state_kind(self, s: Any, m: nn.Module) -> tuple:
        if s is None:
            return ("none", "None")
        tensors = [a for a in _leaves(s) if isinstance(a, torch.Tensor)]
        if not tensors:
            return ("none", "None")
        v = self.get(tensors[0])
        if isinstance(v, StateOf):
            if v.owner != id(m):
                return ("other", f"the state of module `{v.path}`")
            return ("own", "its own state", v.call, v.pop)
        if isinstance(v, Sym):  # the spikes a neuron returned, passed back as its state (RLeaky's spk)
            for pop, info in self.neurons.items():
                out = info.value[0] if isinstance(info.value, (tuple, list)) else info.value
                if pop[-1] is not None and _pop_module(pop) == id(m) and isinstance(out, Tensor) \
                        and out.node == v.node and v.t is not None:
                    return ("own", "its own spikes", v.t - info.t0, pop)
        if v is None or isinstance(v, Const):
            if all(not torch.any(t != 0) for t in tensors):
                return ("init", "a zero initial state")
            return ("other", "a non-zero constant initial state")
        return ("other", "a tensor computed from the input")

    def bind(self, real: Any, val: Any, lead: tuple[str, ...], t: int | None, m: nn.Module, path: str,
             call: int, pop: Any = None) -> Any:
        """Attach the converter's symbolic result `val` to the library's real result."""
        if isinstance(val, Tensor):
            for r in _leaves(real):
                if isinstance(r, torch.Tensor):
                    self.put(r, Sym(val.node, lead, t))
                    break
        elif isinstance(val, State):
            for r in _leaves(real):
                # a tensor that is both the output and part of the state (Norse's LI: v) stays the output
                if isinstance(r, torch.Tensor) and not isinstance(self.get(r), Sym):
                    self.put(r, StateOf(id(m), path, call, val, pop))
        elif isinstance(val, (tuple, list)) and isinstance(real, (tuple, list)) and len(real) == len(val):
            for r, v in zip(real, val):
                self.bind(r, v, lead, t, m, path, call, pop)
        elif isinstance(val, (tuple, list)) and val and isinstance(real, torch.Tensor):
            self.bind(real, val[0], lead, t, m, path, call, pop)
        return real

    # ------------------------------------------------------------ results
    def new(self, out: Any, node: str, lead: tuple[str, ...], t: int | None) -> Any:
        self.put(out, Sym(node, lead, t))
        return out

    def memo_node(self, key: Any, build: Callable[[], Tensor]) -> str:
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key].node


def _pop_module(pop: Any) -> int:
    return pop[1]


def _supported_ops() -> list[str]:
    """The operations worth naming in an error (no operator dunders, refusals or casts)."""
    return sorted(n for n, h in OPS.items() if not n.startswith("_") and getattr(h, "refuses", False) is False
                  and n not in _CASTS and not n.endswith("_"))


def _keeps_state(m: nn.Module) -> bool:
    """A neuron module that carries its state itself between calls (snnTorch, SpikingJelly), not Norse's cells."""
    return type(m).__module__.split(".")[0] != "norse"


def _leaves(obj: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(obj, (tuple, list)):
        for o in obj:
            out.extend(_leaves(o))
    elif isinstance(obj, dict):
        for o in obj.values():
            out.extend(_leaves(o))
    else:
        out.append(obj)
    return out


def _tracked_any(rec: Recorder, objs: Any) -> bool:
    return any(rec.get(a) is not None and not isinstance(rec.get(a), Const) for a in _leaves(objs))


def _sig(rec: Recorder, obj: Any) -> Any:
    if isinstance(obj, (tuple, list)):
        return tuple(_sig(rec, o) for o in obj)
    if isinstance(obj, torch.Tensor):
        s = rec.get(obj)
        if isinstance(s, Sym):
            return ("S", s.node, s.lead)
        return ("C", id(obj))
    try:
        hash(obj)
        return obj
    except TypeError:
        return ("O", id(obj))


# ------------------------------------------------------------ operations
# Each handler gets (recorder, func, args, kwargs), computes the real result with func and
# records what it means for the graph.


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _num(rec: Recorder, v: Any) -> Any:
    """A constant operand as a number or array (a traced operand is None)."""
    if isinstance(v, torch.Tensor):
        s = rec.get(v)
        if s is not None and not isinstance(s, Const):
            return None
        return v.detach().cpu().double().numpy()
    return v


def _const_factor(rec: Recorder, c: Any, s: Sym) -> Any:
    """A constant's value as a per-sample factor (leading axes of size 1 dropped)."""
    arr = np.asarray(c, dtype=np.float64)
    while arr.ndim > len(rec.ctx.types[s.node].shape):
        if arr.shape[0] != 1:
            raise rec.fail(f"a constant of shape {arr.shape} varies along the batch/time axes", "per-sample constants")
        arr = arr[0]
    return arr


def _binary(kind: str, swap: bool = False, inplace: bool = False):
    def h(rec: Recorder, func, args, kwargs):
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        alpha = kwargs.get("alpha", 1)
        out = func(*args, **kwargs)
        if swap:
            a, b = b, a
        ctx = rec.ctx
        sa = rec.get(a) if isinstance(a, torch.Tensor) else None
        sb = rec.get(b) if isinstance(b, torch.Tensor) else None
        ta = sa is not None and not isinstance(sa, Const)
        tb = sb is not None and not isinstance(sb, Const)
        target = args[0] if inplace else out
        acc = _accumulate(rec, kind, sa, sb) if ta and tb else None
        if acc is not None:  # `out += net(x)` in a loop over the steps: a sum readout
            rec.put(target, acc)
            return target
        if ta and tb:
            if kind == "mul" and (isinstance(sa, Affine) or isinstance(sb, Affine)):
                xa, xb = _factor(rec, sa, a), _factor(rec, sb, b)
                return _spike_product(rec, target, a, b, _broadcast_lead(rec, xa, xb), rec.merge_t([xa, xb]))
            xa, xb = rec.sym(a), rec.sym(b)
            lead = _broadcast_lead(rec, xa, xb)
            t = rec.merge_t([xa, xb])
            if kind == "mul":
                return _spike_product(rec, target, a, b, lead, t)
            if kind == "div":
                raise rec.fail("dividing two traced tensors; the IR's synapses are linear in their input",
                               "tensor / constant")
            if kind == "add":
                node = rec.memo_node(("add", xa.node, xb.node, alpha),
                                     lambda: ctx.add("add", P.Add(), Tensor(xa.node),
                                                     ctx.scale("scale", Tensor(xb.node), alpha)))
            else:
                node = rec.memo_node(("sub", xa.node, xb.node, alpha),
                                     lambda: ctx.add("sub", P.Add(), Tensor(xa.node),
                                                     ctx.scale("neg", Tensor(xb.node), -alpha)))
            return rec.new(target, node, lead, t)
        x, c, xfirst = (a, b, True) if ta else (b, a, False)
        xs = rec.sym(x)
        cv = _num(rec, c)
        if kind in ("add", "sub"):
            if not np.all(np.asarray(cv) == 0):
                if np.ndim(cv) == 0 and rec.is_binary(xs.node):  # `1.0 - s`: a factor of a spike product
                    c = float(cv) if kind == "add" or not xfirst else -float(cv)
                    f = -1.0 if kind == "sub" and not xfirst else 1.0
                    rec.put(target, Affine(xs, c, f))
                    return target
                raise rec.fail(_CONSTANT_ADD, "tensor + tensor, tensor * constant, (1 - s) * spikes")
            if kind == "sub" and not xfirst:  # 0 - x
                node = rec.memo_node(("neg", xs.node), lambda: ctx.scale("neg", Tensor(xs.node), -1.0))
                return rec.new(target, node, xs.lead, xs.t)
            return rec.new(target, xs.node, xs.lead, xs.t)
        if kind == "div" and not xfirst:
            raise rec.fail("dividing a constant by a traced tensor", "tensor / constant")
        f = _const_factor(rec, cv, xs)
        if kind == "div":
            f = 1.0 / f
        key = ("scale", xs.node, f.tobytes(), f.shape)
        node = rec.memo_node(key, lambda: ctx.scale("scale", Tensor(xs.node), f))
        return rec.new(target, node, xs.lead, xs.t)
    return h


_CONSTANT_ADD = ("adding a non-zero constant to a traced tensor that is not then multiplied by spikes: the IR has no "
                 "constant source; use a bias in a Linear/Conv layer")


def _factor(rec: Recorder, v: Any, obj: Any) -> Sym:
    return v.sym if isinstance(v, Affine) else rec.sym(obj)


def _spike_product(rec: Recorder, target: Any, a: Any, b: Any, lead: tuple[str, ...], t: int | None) -> Any:
    """(c1 + f1 x) * (c2 + f2 y) of 0/1 tensors x, y (SEW's AND `x * y`, IAND `x * (1 - y)`), exactly.

    For 0/1 values x y = x - relu(x - y) (and x x = x), so the product is the linear combination
    (c2 f1 + f1 f2) x + c1 f2 y - f1 f2 relu(x - y) + c1 c2 of IR nodes (Scale, Add, ReLU); every term
    is a small integer, so it is exact in any float dtype. A non-zero constant term c1 c2 is refused."""
    def parts(obj: Any) -> tuple[Sym, float, float]:
        v = rec.get(obj)
        if isinstance(v, Affine):
            return v.sym, v.c, v.f
        return rec.sym(obj), 0.0, 1.0

    (x, c1, f1), (y, c2, f2) = parts(a), parts(b)
    if not (rec.is_binary(x.node) and rec.is_binary(y.node)):
        raise rec.fail("multiplying two traced tensors that are not both 0/1 spikes (the IR's synapses are linear "
                       "in their input; a product of spikes is a logical AND, which it expresses)",
                       "tensor * constant, spikes * spikes (SEW AND), spikes * (1 - spikes) (SEW IAND)")
    if c1 * c2 != 0:
        raise rec.fail("a product of spike expressions with a constant term (the IR has no constant source)",
                       "spikes * spikes, spikes * (1 - spikes)")
    ctx = rec.ctx
    terms: dict[str, float] = {}
    if x.node == y.node:
        terms[x.node] = c2 * f1 + c1 * f2 + f1 * f2
    else:
        terms[x.node] = c2 * f1 + f1 * f2
        terms[y.node] = terms.get(y.node, 0.0) + c1 * f2
        if f1 * f2:
            d = rec.memo_node(("andnot", x.node, y.node), lambda: ctx.add(
                "andnot", P.ReLU(), rec.memo_node(("sub", x.node, y.node, 1), lambda: ctx.add(
                    "sub", P.Add(), Tensor(x.node), ctx.scale("neg", Tensor(y.node), -1.0)))))
            rec.binary.add(d)
            terms[d] = -f1 * f2
    parts_ = [(n, w) for n, w in terms.items() if w != 0]
    if not parts_:
        raise rec.fail("a product of spike expressions that is always 0")
    scaled = [rec.memo_node(("scale", n, np.float64(w).tobytes(), ()), lambda n=n, w=w: ctx.scale("scale", Tensor(n), w))
              for n, w in parts_]
    node = scaled[0] if len(scaled) == 1 else rec.memo_node(
        ("add", *scaled), lambda: ctx.add("and", P.Add(), *[Tensor(n) for n in scaled]))
    if all(v in (0.0, 1.0) for v in (c1, c1 + f1, c2, c2 + f2)):
        rec.binary.add(node)  # both factors are 0/1, so is their product
    return rec.new(target, node, lead, t)


def _accumulate(rec: Recorder, kind: str, sa: Any, sb: Any) -> Reduced | None:
    """Sum of consecutive steps of one value (a spike counter accumulated in the loop), else None."""
    if kind != "add":
        return None
    if isinstance(sb, Reduced) and not isinstance(sa, Reduced):
        sa, sb = sb, sa
    if isinstance(sa, Reduced) and sa.count and isinstance(sb, Sym) and sb.node == sa.node and sb.t == sa.count:
        return Reduced(sa.node, "sum", sa.lead, sa.count + 1)
    if isinstance(sa, Sym) and isinstance(sb, Sym) and sa.node == sb.node and sa.lead == sb.lead == ("B",) \
            and {sa.t, sb.t} == {0, 1}:
        return Reduced(sa.node, "sum", sa.lead, 2)
    return None


def _reduced_scale(kind: str):
    """`rate / T` or `rate * c` after a readout over time: scale before the readout (it commutes)."""
    inner = _binary(kind)

    def h(rec: Recorder, func, args, kwargs):
        a = args[0]
        r = rec.get(a) if isinstance(a, torch.Tensor) else None
        if isinstance(r, Reduced) and len(args) > 1 and _num(rec, args[1]) is not None:
            out = func(*args, **kwargs)
            f = np.asarray(_num(rec, args[1]), dtype=np.float64)
            f = 1.0 / f if kind == "div" else f
            node = rec.memo_node(("scale", r.node, f.tobytes(), f.shape),
                                 lambda: rec.ctx.scale("scale", Tensor(r.node), f))
            rec.put(out, Reduced(node, r.how, r.lead))
            return out
        return inner(rec, func, args, kwargs)
    return h


def _broadcast_lead(rec: Recorder, a: Sym, b: Sym) -> tuple[str, ...]:
    if a.lead == b.lead:
        return a.lead
    norm = {("1", "B"): ("T", "B")}
    la, lb = norm.get(a.lead, a.lead), norm.get(b.lead, b.lead)
    if la == lb:
        return la
    raise rec.fail(f"combining tensors with leading axes {'x'.join(a.lead)} and {'x'.join(b.lead)}")


def _neg(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    node = rec.memo_node(("neg", xs.node), lambda: rec.ctx.scale("neg", Tensor(xs.node), -1.0))
    return rec.new(out, node, xs.lead, xs.t)


def _cast(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    s = rec.get(args[0])
    rec.put(out, s)
    return out


def _zero_like(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    rec.put(out, Const(zero=not bool(torch.any(out != 0))))
    return out


def _lay(rec: Recorder, xs: Sym, fn: Callable[[], Tensor]) -> Tensor:
    ctx = rec.ctx
    lead = ctx.lead
    ctx.lead = rec.lead_n(xs.lead)
    try:
        return fn()
    finally:
        ctx.lead = lead


def _layer(key: str, build: Callable[..., Tensor]):
    """A functional layer on one traced tensor (the other arguments are constants)."""
    def h(rec: Recorder, func, args, kwargs):
        if _tracked_any(rec, (args[1:], kwargs)):
            raise rec.fail(f"`{key}` with more than one traced tensor")
        out = func(*args, **kwargs)
        xs = rec.sym(args[0])
        rest = args[1:]
        node = rec.memo_node((key, xs.node, xs.lead, _sig(rec, rest), _sig(rec, tuple(sorted(kwargs.items())))),
                             lambda: _lay(rec, xs, lambda: build(rec, Tensor(xs.node), *rest, **kwargs)))
        return rec.new(out, node, xs.lead, xs.t)
    return h


def _relu(rec, x, *a, **k):
    return rec.ctx.add("relu", P.ReLU(), x)


def _softmax(rec, x, dim=None, *a, **k):
    from . import lib_torch
    return lib_torch._softmax(rec.ctx, x, dim)


def _maxpool(rec, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    from . import lib_torch
    if return_indices or lib_torch._pair(dilation) != (1, 1):
        raise rec.fail("max_pool2d with dilation or return_indices", "dilation=1, return_indices=False")
    return lib_torch._pool(rec.ctx, P.MaxPool2d, x, kernel_size, stride, padding, ceil_mode)


def _avgpool(rec, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    from . import lib_torch
    if divisor_override is not None or (not count_include_pad and lib_torch._pair(padding) != (0, 0)):
        raise rec.fail("avg_pool2d with divisor_override or count_include_pad=False and padding",
                       "plain average pooling")
    return lib_torch._pool(rec.ctx, P.AvgPool2d, x, kernel_size, stride, padding, ceil_mode)


def _adaptive_avg2d(rec, x, output_size):
    from . import lib_torch
    return lib_torch.adaptive_avg_pool2d_node(rec.ctx, x, output_size)


def _adaptive_avg1d(rec, x, output_size):
    from . import lib_torch
    return lib_torch.avg_pool1d_node(rec.ctx, x, None, output_size)


def _avgpool1d(rec, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    from . import lib_torch
    if padding not in (0, (0,)) or ceil_mode:
        raise rec.fail("avg_pool1d with padding or ceil_mode", "avg_pool1d(x, k, k)")
    return lib_torch.avg_pool1d_node(rec.ctx, x, kernel_size, None, stride)


def _dropout(rec: Recorder, func, args, kwargs):
    training = _arg(args, kwargs, 2, "training", True)
    if training:
        raise rec.fail("dropout with training=True (F.dropout's default): it drops values at random",
                       "F.dropout(x, p, training=self.training) in eval mode")
    out = args[0].clone()
    rec.put(out, rec.get(args[0]))
    return out


# ----------------------------------------------------------- shape glue


def _sizes(rec: Recorder, lead: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(1 if a == "1" else rec.sizes["T"] * rec.sizes["B"] if a == "TB" else rec.sizes[a] for a in lead)


def _reshape(rec: Recorder, func, args, kwargs):
    x = args[0]
    xs = rec.sym(x)
    sample = rec.ctx.types[xs.node].shape
    want = args[1:] if len(args) > 1 else tuple(_arg(args, kwargs, 1, "shape", ()) or ())
    if len(want) == 1 and isinstance(want[0], (tuple, list, torch.Size)):
        want = tuple(want[0])
    size = int(np.prod(sample))
    b = rec.sizes["B"]
    if (_fname(func) in ("view", "reshape") and xs.lead == ("B",) and len(want) == 2 and isinstance(want[0], int)
            and want[0] not in (-1, b) and want[1] in (-1, size)):
        out = x.reshape(x.shape[0], -1)  # a literal batch size written in the model (`x.view(batch_size, -1)`)
    else:
        out = func(*args, **kwargs)
    return _interpret_shape(rec, xs, sample, tuple(out.shape), out)


def _interpret_shape(rec: Recorder, xs: Sym, sample: tuple[int, ...], shape: tuple[int, ...], out: Any) -> Any:
    """What a reshape of (lead + sample) into `shape` means: same sample, flattened sample, time/batch merge."""
    ctx = rec.ctx
    lead_sz = _sizes(rec, xs.lead)
    size = int(np.prod(sample))
    T, B = rec.sizes.get("T"), rec.sizes["B"]

    def flat(lead: tuple[str, ...]) -> Any:
        node = sample if len(sample) == 1 else None
        if node is not None:
            return rec.new(out, xs.node, lead, xs.t)
        n = rec.memo_node(("flatten", xs.node), lambda: ctx.add("flatten", P.Flatten(), Tensor(xs.node)))
        return rec.new(out, n, lead, xs.t)

    n = len(lead_sz)
    if shape[:n] == lead_sz and shape[n:] == sample:
        return rec.new(out, xs.node, xs.lead, xs.t)
    if shape[:n] == lead_sz and shape[n:] == (size,):
        return flat(xs.lead)
    if xs.lead == ("T", "B") and T is not None:
        if shape == (T * B, *sample):
            return rec.new(out, xs.node, ("TB",), xs.t)
        if shape == (T * B, size):
            return flat(("TB",))
    if xs.lead == ("TB",) and T is not None:
        if shape == (T, B, *sample):
            return rec.new(out, xs.node, ("T", "B"), xs.t)
        if shape == (T, B, size):
            return flat(("T", "B"))
    if xs.lead == ("B",) and shape == (1, B, *sample):
        return rec.new(out, xs.node, ("1", "B"), xs.t)
    raise rec.fail(f"reshape of a tensor with axes {'x'.join(xs.lead)} and per-sample shape {sample} to {shape}",
                   "reshapes that keep the batch/time axes and keep or flatten the per-sample axes")


def _flatten(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    return _interpret_shape(rec, xs, rec.ctx.types[xs.node].shape, tuple(out.shape), out)


def _axis(rec: Recorder, xs: Sym, d: int) -> int:
    nd = len(xs.lead) + len(rec.ctx.types[xs.node].shape)
    return d + nd if d < 0 else d


def _unsqueeze(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    d = _axis(rec, xs, _arg(args, kwargs, 1, "dim") if _arg(args, kwargs, 1, "dim") >= 0
              else _arg(args, kwargs, 1, "dim") + 1)
    if d <= len(xs.lead) and "T" not in xs.lead and "1" not in xs.lead:
        lead = xs.lead[:d] + ("1",) + xs.lead[d:]
        return rec.new(out, xs.node, lead, xs.t)
    raise rec.fail(f"unsqueeze({d}) of a tensor with axes {'x'.join(xs.lead)}",
                   "x.unsqueeze(0) to add a time axis")


def _squeeze(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    d = _arg(args, kwargs, 1, "dim")
    if d is not None:
        d = _axis(rec, xs, d)
        if d < len(xs.lead) and xs.lead[d] == "1":
            return rec.new(out, xs.node, xs.lead[:d] + xs.lead[d + 1:], xs.t)
    if tuple(out.shape) == tuple(args[0].shape):
        return rec.new(out, xs.node, xs.lead, xs.t)
    raise rec.fail(f"squeeze of a tensor with axes {'x'.join(xs.lead)} and per-sample shape "
                   f"{rec.ctx.types[xs.node].shape}", "squeezing a unit time axis")


def _repeat(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    reps = args[1:] if len(args) > 1 else kwargs.get("repeats", kwargs.get("size"))
    if len(reps) == 1 and isinstance(reps[0], (tuple, list, torch.Size)):
        reps = tuple(reps[0])
    reps = tuple(int(r) for r in reps)
    shape = tuple(out.shape)
    lead = list(xs.lead)
    off = len(shape) - len(args[0].shape)
    if off == 1 and "T" not in lead and "1" not in lead and all(r in (1, -1) for r in reps[1:]):
        lead = ["1"] + lead  # x.repeat(T, 1, ...) / x.expand(T, ...) adds the time axis in front
        xs = Sym(xs.node, tuple(lead), xs.t)
        class _Shape:  # the input as if unsqueezed first
            shape = (1, *args[0].shape)
        src = _Shape
    elif off:
        raise rec.fail("repeat/expand adding axes other than one leading time axis", "x.unsqueeze(0).repeat(T, 1, ...)")
    else:
        src = args[0]
    for i, a in enumerate(xs.lead):
        if a == "1" and shape[i] != 1:
            lead[i] = "T"
            _set_T(rec, shape[i])
        elif shape[i] != src.shape[i]:
            raise rec.fail(f"repeat/expand along the {a} axis", "repeating a unit time axis (x.unsqueeze(0))")
    if shape[len(lead):] != tuple(src.shape[len(lead):]):
        raise rec.fail("repeat/expand along per-sample axes", "repeating a unit time axis")
    if "T" in lead and xs.t is None and rec.ctx.g.nodes.get(xs.node) is not None \
            and isinstance(rec.ctx.g.nodes[xs.node], P.Input):
        rec.repeated_input = shape[lead.index("T")]
    return rec.new(out, xs.node, tuple(lead), xs.t)


def _set_T(rec: Recorder, n: int) -> None:
    if rec.input_T and n <= rec.input_T:
        return  # the forward's own loop reads the first n steps of the input sequence
    if rec.sizes.get("T") not in (None, n):
        raise rec.fail(f"two different numbers of steps ({rec.sizes['T']} and {n}) in one forward")
    rec.sizes["T"] = n


def _permute(rec: Recorder, func, args, kwargs):
    out = func(*args, **kwargs)
    xs = rec.sym(args[0])
    nd = args[0].dim()
    name = _fname(func)
    if name == "permute":
        dims = args[1:] if len(args) > 1 else kwargs["dims"]
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        perm = [d + nd if d < 0 else d for d in dims]
    else:
        a0 = _arg(args, kwargs, 1, "dim0")
        a1 = _arg(args, kwargs, 2, "dim1")
        a0, a1 = (a0 + nd if a0 < 0 else a0), (a1 + nd if a1 < 0 else a1)
        perm = list(range(nd))
        perm[a0], perm[a1] = perm[a1], perm[a0]
    n = len(xs.lead)
    if sorted(perm[:n]) != list(range(n)) or perm[n:] != list(range(n, nd)):
        raise rec.fail(f"permuting per-sample axes (permutation {perm} of a tensor with axes "
                       f"{'x'.join(xs.lead)} + per-sample {rec.ctx.types[xs.node].shape})",
                       "moving the time and batch axes only (e.g. x.permute(1, 0, 2) of a (B, T, F) sequence)")
    return rec.new(out, xs.node, tuple(xs.lead[p] for p in perm[:n]), xs.t)


def _lead_of_batch_time(rec: Recorder, xs: Sym) -> None:
    if xs.lead == ("B",) and xs.node in rec.ctx.g.nodes and isinstance(rec.ctx.g.nodes[xs.node], P.Input):
        raise Relayout("the forward indexes axis 0 of its input")


def _getitem(rec: Recorder, func, args, kwargs):
    x, idx = args[0], args[1]
    xs = rec.sym(x)
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        fill = len(xs.lead) + len(rec.ctx.types[xs.node].shape) - (len(idx) - 1)
        idx = idx[:k] + (slice(None),) * fill + idx[k + 1:]
    lead = list(xs.lead)
    t = xs.t
    keep = []
    for i, ix in enumerate(idx):
        if i < len(xs.lead):
            ax = xs.lead[i]
            if isinstance(ix, slice) and ix == slice(None):
                keep.append(ax)
                continue
            if ax in ("T", "1") and isinstance(ix, (int, torch.SymInt)) or (isinstance(ix, torch.Tensor)
                                                                             and ix.dim() == 0 and ax == "T"):
                ix = int(ix)
                step = ix + rec.sizes["T"] if ix < 0 else ix
                if ax == "T":
                    if t is not None:
                        raise rec.fail("indexing the time axis of a value of one step")
                    t = step
                continue
            if ax == "B":
                _lead_of_batch_time(rec, xs)
            raise rec.fail(f"indexing axis {i} ({ax}) with {ix!r}", "x[t] along the time axis, whole per-sample axes")
        if not (isinstance(ix, slice) and ix == slice(None)):
            raise rec.fail(f"indexing/slicing per-sample axis {i - len(xs.lead)} with {ix!r}",
                           "whole per-sample axes")
    keep.extend(lead[len(idx):])
    out = func(*args, **kwargs)
    return rec.new(out, xs.node, tuple(keep), t)


def _select(rec: Recorder, func, args, kwargs):
    """x.select(dim, i) (SpikingJelly's multi_step_forward): x[..., i] along one leading axis."""
    d, i = _arg(args, kwargs, 1, "dim"), _arg(args, kwargs, 2, "index")
    xs = rec.sym(args[0])
    d = _axis(rec, xs, d)
    idx = (slice(None),) * d + (i,)
    return _getitem(rec, lambda *a, **k: func(*args, **kwargs), (args[0], idx), {})


def _unbind(rec: Recorder, func, args, kwargs):
    x = args[0]
    xs = rec.sym(x)
    d = _arg(args, kwargs, 1, "dim", 0)
    outs = func(*args, **kwargs)
    if d < len(xs.lead) and xs.lead[d] == "T" and xs.t is None:
        lead = xs.lead[:d] + xs.lead[d + 1:]
        for t, o in enumerate(outs):
            rec.put(o, Sym(xs.node, lead, t))
        return outs
    if d < len(xs.lead) and xs.lead[d] == "B":
        _lead_of_batch_time(rec, xs)
    raise rec.fail(f"iterating/unbinding axis {d} of a tensor with axes {'x'.join(xs.lead)}",
                   "iterating over the time axis")


def _setitem(rec: Recorder, func, args, kwargs):
    buf, idx, val = args[0], args[1], args[2]
    b = rec.get(buf)
    vs = rec.sym(val, "the value written")
    idx = idx if isinstance(idx, tuple) else (idx,)
    if not isinstance(b, (Const, Buffer)):
        raise rec.fail("writing into a traced tensor", "writing per-step results into a preallocated buffer")
    if not isinstance(idx[0], int) or any(not (isinstance(i, slice) and i == slice(None)) for i in idx[1:]):
        raise rec.fail(f"writing into a buffer at {idx!r}", "buffer[t] = value (or buffer[t, :, ...])")
    t = idx[0]
    if vs.t is not None and vs.t != t:
        raise rec.fail(f"the value of step {vs.t} is written at index {t}")
    if vs.lead != ("B",):
        raise rec.fail(f"writing a value with axes {'x'.join(vs.lead)} into a buffer", "per-step values (B, ...)")
    func(*args, **kwargs)
    if isinstance(b, Const):
        b = Buffer(("T", "B"), int(buf.shape[0]))
        _set_T(rec, buf.shape[0])
        rec.put(buf, b)
    b.filled[t] = vs
    return None


def _stack(rec: Recorder, func, args, kwargs):
    items = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    out = func(*args, **kwargs)
    syms = [rec.get(i) for i in items]
    if all(isinstance(s, StateOf) for s in syms) and len({s.owner for s in syms}) == 1:
        first = syms[0]
        lead = ("T", "B") if dim == 0 else ("B", "T")
        rec.put(out, StateSeq(first.state, lead))
        _set_T(rec, len(items))
        return out
    ss = [rec.sym(i, "a stacked value") for i in items]
    nodes = [s.node for s in ss]
    if len(set(nodes)) != 1:
        k = next(i for i, n in enumerate(nodes) if n != nodes[0])
        raise rec.fail(f"the values stacked over time are computed differently at step 0 (`{nodes[0]}`) and step "
                       f"{k} (`{nodes[k]}`); the loop body must be the same at every step")
    ts = [s.t for s in ss]
    if any(t is not None for t in ts) and ts != list(range(ts[0] or 0, (ts[0] or 0) + len(ts))):
        raise rec.fail(f"stacking steps {ts}; stack the values of consecutive steps 0..T-1 in order")
    lead0 = ss[0].lead
    if lead0 != ("B",) or any(s.lead != lead0 for s in ss):
        raise rec.fail(f"stacking values with axes {'x'.join(lead0)}", "torch.stack of per-step values (B, ...)")
    _set_T(rec, len(items))
    d = dim + 2 + len(rec.ctx.types[ss[0].node].shape) if dim < 0 else dim
    if d not in (0, 1):
        raise rec.fail(f"stacking along per-sample axis {dim}", "torch.stack(records, dim=0) (or dim=1)")
    return rec.new(out, nodes[0], ("T", "B") if d == 0 else ("B", "T"), None)


def _cat(rec: Recorder, func, args, kwargs):
    items = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    ss = [rec.sym(i, "a concatenated value") for i in items]
    if len(ss) == 1:  # torch.cat of one tensor (records of one period): the tensor itself
        return rec.new(func(*args, **kwargs), ss[0].node, ss[0].lead, ss[0].t)
    lead = ss[0].lead
    if any(s.lead != lead for s in ss):
        raise rec.fail("concatenating tensors with different leading axes")
    d = dim + len(lead) + len(rec.ctx.types[ss[0].node].shape) if dim < 0 else dim
    if d < len(lead) and lead[d] == "1" and len({s.node for s in ss}) == 1:
        out = func(*args, **kwargs)
        _set_T(rec, len(items))
        return rec.new(out, ss[0].node, lead[:d] + ("T",) + lead[d + 1:], None)
    if d < len(lead):
        raise rec.fail(f"concatenation along the {lead[d]} axis", "concatenation along a per-sample axis")
    out = func(*args, **kwargs)
    t = rec.merge_t(ss)
    axis = d - len(lead)
    if len(ss) == 1:
        return rec.new(out, ss[0].node, lead, t)
    node = rec.memo_node(("cat", tuple(s.node for s in ss), axis),
                         lambda: rec.ctx.add("cat", P.Concat(axis=axis), *[Tensor(s.node) for s in ss]))
    return rec.new(out, node, lead, t)


def _reduce(how: str):
    def h(rec: Recorder, func, args, kwargs):
        out = func(*args, **kwargs)
        xs = rec.sym(args[0])
        d = _arg(args, kwargs, 1, "dim")
        if isinstance(d, (tuple, list)) and len(d) == 1:
            d = d[0]
        if d is None:  # a single number: only a Python decision on it can follow (refused where it happens)
            rec.put(out, Reduced(xs.node, "all", ()))
            return out
        if isinstance(d, int):
            d = _axis(rec, xs, d)
            if d < len(xs.lead) and xs.lead[d] == "T" and not _arg(args, kwargs, 2, "keepdim", False):
                rec.put(out, Reduced(xs.node, how, xs.lead[:d] + xs.lead[d + 1:]))
                return out
        raise rec.fail(f"`.{how}` over {d!r} of a tensor with axes {'x'.join(xs.lead)}",
                       f"`.{how}(0)` over the time axis as the model's readout")
    return h


def _extremum(rec: Recorder, func, args, kwargs):
    """`torch.max(x, 0)` / `x.amax(0)` over the time axis (Norse's mnist task decodes its voltages so): a readout
    the IR's Output has no form for; any other max/min is a decision on values."""
    d = _arg(args, kwargs, 1, "dim")
    s = rec.get(args[0])
    s = rec.sym(args[0]) if isinstance(s, (Buffer, StateSeq)) else s
    if isinstance(d, int) and isinstance(s, Sym) and _axis(rec, s, d) < len(s.lead) and s.lead[_axis(rec, s, d)] == "T":
        raise rec.fail(f"`{_fname(func)}` over the time axis as the readout: an n3ml Output reduces over time by "
                       "mean or sum only", "return the per-step values (e.g. the stacked voltages) and take the "
                                          "maximum outside the model, or use .mean(0)/.sum(0)")
    return _CONTROL(rec, func, args, kwargs)


def _bad(what: str, hint: str):
    def h(rec: Recorder, func, args, kwargs):
        raise rec.fail(what, hint)
    h.refuses = True
    return h


_CONTROL = _bad("a Python decision on a traced tensor's values (data-dependent control flow: `if`, `while`, "
                "`.item()`, comparisons)", "compute every step the same way; move decisions on values out of "
                                          "forward")

OPS: dict[str, Callable] = {
    **{n: _binary("add") for n in ("add", "__add__")},
    **{n: _binary("add", inplace=True) for n in ("add_", "__iadd__")},
    "__radd__": _binary("add", swap=True),
    **{n: _binary("sub") for n in ("sub", "__sub__", "subtract")},
    **{n: _binary("sub", inplace=True) for n in ("sub_", "__isub__")},
    "__rsub__": _binary("sub", swap=True), "rsub": _binary("sub", swap=True),
    **{n: _reduced_scale("mul") for n in ("mul", "__mul__", "multiply")},
    **{n: _binary("mul", inplace=True) for n in ("mul_", "__imul__")},
    "__rmul__": _binary("mul"),
    **{n: _reduced_scale("div") for n in ("div", "__truediv__", "true_divide", "divide")},
    **{n: _binary("div", inplace=True) for n in ("div_", "__itruediv__")},
    "__rtruediv__": _binary("div", swap=True),
    "neg": _neg, "__neg__": _neg,
    **{n: _cast for n in _CASTS},
    **{n: _zero_like for n in ("zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
                               "new_empty", "new_full")},
    **{n: _bad("random numbers drawn inside forward (a random spike encoder?): an n3ml graph is deterministic",
               "encode the input outside the model, or use n3ml.nn's PoissonRate encoder")
       for n in ("rand_like", "randn_like", "randint_like", "bernoulli", "bernoulli_", "poisson", "normal",
                 "uniform_", "normal_", "exponential_", "multinomial")},
    **{n: _layer("relu", _relu) for n in ("relu", "relu_")},
    **{n: _layer("softmax", _softmax) for n in ("softmax", "_softmax")},
    **{n: _layer("max_pool2d", _maxpool) for n in ("max_pool2d", "_max_pool2d")},
    "avg_pool2d": _layer("avg_pool2d", _avgpool),
    "adaptive_avg_pool2d": _layer("adaptive_avg_pool2d", _adaptive_avg2d),
    "adaptive_avg_pool1d": _layer("adaptive_avg_pool1d", _adaptive_avg1d),
    "avg_pool1d": _layer("avg_pool1d", _avgpool1d),
    **{n: _dropout for n in ("dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout")},
    **{n: _reshape for n in ("view", "reshape")},
    "flatten": _flatten,
    "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "repeat": _repeat, "expand": _repeat,
    **{n: _permute for n in ("permute", "transpose", "swapaxes", "swapdims")},
    "__getitem__": _getitem, "select": _select,
    "unbind": _unbind,
    "__setitem__": _setitem,
    "stack": _stack,
    **{n: _cat for n in ("cat", "concat", "concatenate")},
    "mean": _reduce("mean"), "sum": _reduce("sum"),
    **{n: _CONTROL for n in ("__bool__", "item", "tolist", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
                             "eq", "ne", "lt", "le", "gt", "ge", "nonzero", "__int__", "__float__", "__index__",
                             "all", "any", "argmax", "numpy")},
    **{n: _extremum for n in ("max", "min", "amax", "amin")},
}


# ------------------------------------------------------------------ driver


def is_leaf(ctx: Context, m: nn.Module) -> bool:
    """Modules the recorder does not enter: those with a converter, and library neurons without one."""
    if ctx.entry(m) is not None:
        return True
    opaque = tuple(c for t in ctx.tables for c in getattr(t, "OPAQUE", ()))
    if opaque and isinstance(m, opaque):
        return True
    if type(m).__module__.startswith("torch.nn") and not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return True  # torch's own layers (as torch.fx): one without a converter is refused by name
    return any(c in t.MODULES and t.MODULES[c].steps is not None for c in type(m).__mro__[1:] for t in ctx.tables)


def record(model: nn.Module, shape: tuple[int, ...], make_ctx: Callable[[], Context], *, input_kind: str,
           multi: bool) -> Graph:
    """Trace `model` by running its forward (see the module docstring); tries (B, ...) then (T, B, ...) input."""
    layouts = [("T", "B"), ("B",), ("B", "T")] if multi else [("B",), ("T", "B"), ("B", "T")]
    failures: list[tuple[int, int, Exception]] = []
    for i, lay in enumerate(layouts):
        progress = [0]
        # a loop over a fixed number of steps (`range(self.timesteps)`) may index past a short input
        for steps in ((STEPS, LONG_STEPS) if "T" in lay else (STEPS,)):
            try:
                graph, rec = _attempt(model, shape, make_ctx, lay, input_kind, frozenset(), progress, steps)
                fresh = _fresh(rec)
                if fresh:  # a per-step forward that initialises neuron state itself: reset every step
                    graph, rec = _attempt(model, shape, make_ctx, lay, input_kind, fresh, progress, steps)
                return graph
            except Relayout as e:
                failures.append((progress[0], 0, -i, e))
                if "IndexError" not in str(e):
                    break
            except UnsupportedError as e:  # ranks above a layout guess that got as far: it names the construct
                failures.append((progress[0], 1, -i, e))
                break
    # the layout the forward got furthest with is the one it was written for: report its problem
    err = max(failures, key=lambda f: f[:3])[3]
    if isinstance(err, Relayout):
        raise NotRunnable(f"cannot run {type(model).__name__}.forward on a (B, *input_shape) or "
                          f"(T, B, *input_shape) input: {err}")
    raise err


def _fresh(rec: Recorder) -> frozenset:
    """Neurons given an initial state inside a forward that computes one step (snnTorch tutorial 6)."""
    looped = any(n.calls > 1 for n in rec.neurons.values()) or "T" in rec.sizes
    if looped:
        return frozenset()
    return frozenset(k for k, n in rec.neurons.items() if n.explicit)


def _snapshot(model: nn.Module) -> list[tuple[nn.Module, dict]]:
    # shallow copies of the attribute dicts (keeping their types: hook dicts are weakly referenced)
    return [(m, {k: (copy.copy(v) if isinstance(v, dict) else v) for k, v in m.__dict__.items()})
            for m in model.modules()]


def _restore(saved: list[tuple[nn.Module, dict]]) -> None:
    for m, d in saved:
        m.__dict__.clear()
        m.__dict__.update(d)


def _attempt(model: nn.Module, shape: tuple[int, ...], make_ctx: Callable[[], Context], lay: tuple[str, ...],
             input_kind: str, fresh: frozenset, progress: list[int], steps: int = STEPS) -> tuple[Graph, Recorder]:
    """One recording run with input layout `lay`; progress[0] is set to the number of nodes built."""
    ctx = make_ctx()
    try:
        return _attempt_in(ctx, model, shape, lay, input_kind, fresh, steps)
    finally:
        progress[0] = len(ctx.g.nodes)


def _attempt_in(ctx: Context, model: nn.Module, shape: tuple[int, ...], lay: tuple[str, ...], input_kind: str,
                fresh: frozenset, steps: int) -> tuple[Graph, Recorder]:
    rec = Recorder(ctx, model, fresh)
    ctx.where = "the model's input"
    x_node = ctx.add("x", P.Input(shape=shape, kind=input_kind))
    if "T" in lay:
        rec.sizes["T"] = rec.input_T = steps
    g = torch.Generator().manual_seed(0)
    real_x = torch.rand(*_sizes(rec, lay), *shape, generator=g, dtype=ctx.dtype)
    rec.put(real_x, Sym(x_node.node, lay))
    saved = _snapshot(model)
    for m in model.modules():
        if is_leaf(ctx, m) and m is not model:
            orig = m.forward
            m.forward = (lambda m, orig: lambda *a, **k: rec.call_leaf(m, orig, a, k))(m, orig)
    extra = _extra_args(model)
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    def enter(m, args):
        if not rec.paused:
            rec.stack.append(m)

    def leave(m, args, out):
        if not rec.paused and rec.stack and rec.stack[-1] is m:
            rec.stack.pop()

    hooks = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        with torch.no_grad(), rec:
            out = model(real_x, **extra)
    except (UnsupportedError, Relayout):
        raise
    except Exception as e:  # the library itself failed on this layout (shapes), or the forward is not traceable
        raise Relayout(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    finally:
        for h in hooks:
            h.remove()
        _restore(saved)
    ctx.where = "the model's output"
    _outputs(rec, out)
    hold = rec.repeated_input or (rec.sizes.get("T", 0) if lay == ("B",) and "T" in rec.sizes else 0)
    if hold:
        ctx.g.nodes[x_node.node] = dataclasses.replace(ctx.g.nodes[x_node.node], hold=int(hold))
    _prune(ctx.g)
    return ctx.g, rec


def _extra_args(model: nn.Module) -> dict[str, Any]:
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    return {p.name: None for p in params
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _outputs(rec: Recorder, out: Any) -> None:
    flat: list[tuple[str, str, str]] = []
    dropped: list[str] = []
    for key, v in output_leaves(out):
        if isinstance(v, torch.Tensor):
            s = rec.get(v)
            if isinstance(s, Reduced):
                if s.how == "all":
                    rec.sym(v, "the model's output")  # refuses with the reason
                if s.count and s.count != rec.sizes.get("T"):
                    raise rec.fail(f"the model returns a sum over {s.count} of its {rec.sizes.get('T')} steps")
                flat.append((key, s.node, s.how))
            elif isinstance(s, (StateOf, StateSeq)):
                st = s.state
                if st.make is None:
                    dropped.append(f"{st.owner}.{st.what}")
                else:
                    flat.append((key, rec.sym(v).node, "none"))
            elif isinstance(s, (Sym, Buffer)):
                sym = rec.sym(v)
                if "T" not in sym.lead and sym.lead != ("B",):
                    raise rec.fail(f"the model returns a tensor with axes {'x'.join(sym.lead)}")
                flat.append((key, sym.node, "none"))
            else:
                raise rec.fail("the model returns a tensor not computed from its input")
        else:
            hint = (" (a neuron's state attribute such as `.v` read after the loop? The graph gives values at every "
                    "step: return the per-step outputs, e.g. torch.stack of a non-spiking readout's voltages)"
                    if isinstance(v, (int, float)) else "")
            raise rec.fail(f"the model returns {type(v).__name__}; n3ml outputs traced tensors only{hint}")
    check_outputs(len(flat), dropped, log)
    g = rec.ctx.g
    for key, node, how in flat:
        name = output_name(key, len(flat))
        if name in g.nodes:  # a module named like the output (Norse's `self.out`): the output keeps the name
            node = _rename(g, name, rec.ctx.reserve(name + "_node")) if node == name else node
            if name in g.nodes:
                _rename(g, name, rec.ctx.reserve(name + "_node"))
        rec.ctx.add(name, P.Output(reduce=how), Tensor(node), name=name)


def _rename(g: Graph, old: str, new: str) -> str:
    g.nodes = {(new if k == old else k): v for k, v in g.nodes.items()}
    g.edges = [dataclasses.replace(e, src=new if e.src == old else e.src, dst=new if e.dst == old else e.dst)
               for e in g.edges]
    return new


def _prune(g: Graph) -> None:
    """Drop nodes no Output depends on (computations the forward discarded, e.g. after a reset)."""
    keep: set[str] = set()
    todo = list(g.output_names) + [n for n, p in g.nodes.items() if isinstance(p, P.Input)]
    preds: dict[str, list[str]] = {}
    for e in g.edges:
        preds.setdefault(e.dst, []).append(e.src)
    while todo:
        n = todo.pop()
        if n in keep:
            continue
        keep.add(n)
        todo.extend(preds.get(n, []))
    for n in [n for n in g.nodes if n not in keep]:
        g.remove(n)
