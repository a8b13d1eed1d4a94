"""The vocabulary shared by the torch tracer (`trace.py`) and its converter tables (`lib_*.py`, `record.py`).

Traced values (`Tensor`, `State`, `Shape`, `Symbolic`), converter entries (`Entry`) and the
`Context` converters build the graph through. A leaf module: the tracer imports the tables and the
tables import this, so nothing imports back into the tracer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedError
from ...ir import Graph, VerifyError
from ...ir import neurons as N
from ...ir import prims as P
from ...ir.types import PortType


# ---------------------------------------------------------------- outputs


def output_leaves(out: Any) -> list[tuple[str, Any]]:
    """(name, value) of every leaf of a model's nested return value: dict keys and tuple/list positions joined
    by `_` (positions at the top level are `out0`, `out1`, ...); None leaves are skipped."""
    leaves: list[tuple[str, Any]] = []

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{key}_{k}" if key else str(k))
        elif isinstance(v, (tuple, list)):
            for i, x in enumerate(v):
                walk(x, f"{key}_{i}" if key else f"out{i}")
        elif v is not None:
            leaves.append((key, v))

    walk(out, "")
    return leaves


def output_name(key: str, count: int) -> str:
    """The Output node's name of leaf `key`: a model returning one tensor has the output `out`."""
    return "out" if count == 1 and key in ("", "out0") else key


def check_outputs(count: int, dropped: list[str], log: Any) -> None:
    """Warn about returned neuron states the IR does not expose; refuse a model returning no traced tensor."""
    if dropped:
        log.warning("the model also returns internal neuron state (%s); the IR outputs only spikes and readout "
                    "voltages, so these are not graph outputs", ", ".join(dropped))
    if not count:
        raise UnsupportedError("the model returns no tensor computed from its input")


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Tensor:
    """A traced tensor: the output of IR node `node`."""

    node: str


@dataclass(frozen=True)
class State:
    """A neuron's internal state returned by a module call; the IR does not expose it.

    `make`, where set, builds IR nodes giving this state as a value (e.g. the membrane of a
    non-resetting snnTorch Leaky is an LI readout) for a model that returns or records it.
    """

    owner: str
    what: str
    make: Callable[[], "Tensor"] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Shape:
    """``x.shape`` / ``x.size()`` of a traced tensor (leading batch/time axes are symbolic)."""

    of: Tensor


@dataclass(frozen=True)
class Symbolic:
    """A size that depends on the batch (or time) axis; only usable where a reshape keeps it."""

    what: str


# methods a subclass of a converted layer may define without changing what it computes (construction, printing,
# input checks); the SNN libraries' step-mode wrappers (SpikingJelly's layer.Conv2d, layer.BatchNorm2d, ...) also
# define a forward that only hands single steps or (T, B, ...) sequences to the torch layer's own forward
_INERT_METHODS = frozenset({"__init__", "extra_repr", "__repr__", "__setstate__", "_check_input_dim",
                            "reset_parameters", "_get_name"})
_STEP_DISPATCH = frozenset({"forward", "super_forward"})
_WRAPPER_ROOTS = frozenset({"spikingjelly", "snntorch", "norse"})


def own_methods(module: nn.Module, base: type) -> list[str]:
    """The methods that the classes between type(module) and `base` define beyond `_INERT_METHODS` (and beyond a
    library's step dispatch): a weight-standardized Conv2d's `get_weight`, a user's own `forward`."""
    found = []
    for c in type(module).__mro__:
        if c is base:
            break
        allowed = _INERT_METHODS | (_STEP_DISPATCH if c.__module__.split(".")[0] in _WRAPPER_ROOTS else frozenset())
        found += [f"{c.__qualname__}.{k}" for k, v in vars(c).items() if callable(v) and k not in allowed]
    return found


@dataclass(frozen=True)
class Entry:
    """A converter for one module type.

    convert(ctx, module, x, *args, **kwargs) -> value; `steps(module)` says whether the module
    runs "single" steps or "multi"-step sequences (None for stateless layers).
    """

    convert: Callable[..., Any]
    steps: Callable[[nn.Module], str | None] | None = None
    subclasses: bool | None = None  # also convert subclasses (default: stateless layers only)


# --------------------------------------------------------------- context


def _ident(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "n"
    return s if re.match(r"[A-Za-z_]", s) else "n_" + s


class Context:
    """What converters use to build the graph: node creation, shapes, parameter conversion."""

    def __init__(self, graph: Graph, *, lead: int, dtype: torch.dtype):
        self.g = graph
        self.types: dict[str, PortType] = {}
        self.lead = lead  # leading non-sample axes of traced tensors: 1 (B) or 2 (T, B)
        self.dtype = dtype  # floating dtype of the model's parameters (for threshold nudges)
        self.where = "the model"
        self.path = ""
        self.tables: list[Any] = []
        self.fresh = False  # the neuron being converted restarts from its initial state at every step
        self._reserved: set[str] = set()  # names handed out by reserve() (nodes may be added later)

    # ---------------------------------------------------------- errors
    def unsupported(self, what: str, supported: str | None = None) -> UnsupportedError:
        msg = f"{self.where}: {what}"
        if supported:
            msg += f"; supported: {supported}"
        return UnsupportedError(msg)

    # ------------------------------------------------------------ nodes
    def reserve(self, base: str) -> str:
        """A fresh node name derived from `base` (module path or op)."""
        n = self.g.fresh_name(_ident(base), self._reserved)
        self._reserved.add(n)
        return n

    def add(self, base: str, prim: P.Primitive, *inputs: Tensor | str, name: str | None = None) -> Tensor:
        name = name or self.reserve(base)
        srcs = [i.node if isinstance(i, Tensor) else i for i in inputs]
        try:
            prim.verify(name)
            self.g.add(name, prim, *srcs)
            known = [self.types[s] for s in srcs if s in self.types]
            if len(known) == len(srcs) or (isinstance(prim, P.Add) and known):
                self.types[name] = prim.infer(name, known)
        except VerifyError as e:
            raise self.unsupported(f"cannot build {prim.op}: {e}") from None
        return Tensor(name)

    def type(self, x: Tensor) -> PortType:
        return self.types[x.node]

    def shape(self, x: Tensor) -> tuple[int, ...]:
        return self.types[x.node].shape

    def tensor(self, v: Any, what: str = "input") -> Tensor:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, State):
            raise self.unsupported(f"{what} is the internal state `{v.what}` of `{v.owner}`, which the IR does not "
                                   "expose (only a neuron's output: spikes, or the voltage of a readout)")
        raise self.unsupported(f"{what} must be a traced tensor, found {type(v).__name__} {v!r:.60}")

    def scale(self, base: str, x: Tensor, factor: Any) -> Tensor:
        f = self.param(factor, self.shape(x), "factor")
        if np.all(np.asarray(f) == 1.0):
            return x
        return self.add(base, P.Scale(factor=f), x)

    # ------------------------------------------------------- parameters
    def param(self, value: Any, shape: tuple[int, ...], what: str) -> float | np.ndarray:
        """A scalar or per-neuron parameter as the IR stores it (float, or float64 array of `shape`)."""
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().double().numpy()
        arr = np.asarray(value, dtype=np.float64)
        if arr.size == 1:
            return float(arr.reshape(()))
        try:
            full = np.broadcast_to(arr, shape)
        except ValueError:
            raise self.unsupported(f"parameter `{what}` of shape {arr.shape} does not broadcast to the neurons' "
                                   f"shape {shape}") from None
        if np.all(full == full.flat[0]):
            return float(full.flat[0])
        return np.array(full, dtype=np.float64)  # a writable copy, C order

    def at_or_above(self, theta: Any) -> Any:
        """The largest threshold below `theta` in the model's dtype: `v > theta'` is `v >= theta` there."""
        np_dtype = np.float32 if self.dtype in (torch.float32, torch.float16, torch.bfloat16) else np.float64
        t = np.nextafter(np.asarray(theta, dtype=np_dtype), np_dtype(-np.inf)).astype(np.float64)
        return float(t) if t.ndim == 0 else t

    def tau_for(self, a: Any, what: str) -> Any:
        """The time constant (ms) whose per-step decay is `a` under the graph's dt and scheme."""
        a = np.asarray(a, dtype=np.float64)
        dt = self.g.dt
        if np.any(a >= 1.0):
            raise self.unsupported(f"decay `{what}` must be below 1 for every neuron (or exactly 1 for all: no leak), "
                                   f"found max {a.max()!r}")
        if self.g.scheme == "exact":
            if np.any(a <= 0):
                raise self.unsupported(f"decay `{what}` must be > 0 under scheme=exact, found min {a.min()!r}; "
                                       "convert with scheme euler")
        tau = N.tau_of_decay(a, dt, self.g.scheme)
        return float(tau) if tau.ndim == 0 else tau

    # ---------------------------------------------------------- neurons
    def neuron(self, base: str, x: Tensor, *, a: Any = 1.0, k: Any = 1.0, theta: Any = 1.0, reset: str = "subtract",
               v_reset: Any = 0.0, v_leak: Any = 0.0, v_init: Any = 0.0, refractory: int = 0,
               spiking: bool = True, detach_reset: bool = True, name: str | None = None) -> Tensor:
        """A first-order neuron ``v* = v_leak + a (v - v_leak) + k I``: LIF/IF (spiking) or LI/Integrator.

        ``detach_reset`` is the source library's training rule (whether gradients flow through the reset)."""
        shape = self.shape(x)
        pa = self.param(a, shape, "decay")
        pk = self.param(k, shape, "input gain")
        common = dict(v_init=self.param(v_init, shape, "v_init"))
        if spiking:
            common.update(theta=self.param(theta, shape, "threshold"), v_reset=self.param(v_reset, shape, "v_reset"),
                          reset=reset, refractory=refractory, detach_reset=bool(detach_reset))
        if np.all(np.asarray(pa) == 1.0):
            if spiking:
                x = self.scale(base + "_gain", x, pk)
                return self.add(base, P.IF(**common), x, name=name)
            return self.add(base, P.Integrator(r=pk, **common), x, name=name)
        tau = self.tau_for(pa, "decay")
        r = np.asarray(pk) / P.gain(tau, self.g.dt, self.g.scheme)
        r = float(r) if np.ndim(r) == 0 else r
        cls = P.LIF if spiking else P.LI
        return self.add(base, cls(tau=tau, v_leak=self.param(v_leak, shape, "v_leak"), r=r, **common), x, name=name)

    def cuba(self, base: str, x: Tensor, *, a_syn: Any, a_mem: Any, k: Any, theta: Any, reset: str,
             v_reset: Any = 0.0, v_leak: Any = 0.0, v_init: Any = 0.0, refractory: int = 0,
             name: str | None = None) -> Tensor:
        """i = a_syn i + I; v* = v_leak + a_mem (v - v_leak) + k i (a CubaLIF)."""
        shape = self.shape(x)
        tau_syn = self.tau_for(self.param(a_syn, shape, "synaptic decay"), "synaptic decay")
        tau_mem = self.tau_for(self.param(a_mem, shape, "membrane decay"), "membrane decay")
        r = np.asarray(self.param(k, shape, "input gain")) / P.gain(tau_mem, self.g.dt, self.g.scheme)
        prim = P.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, v_leak=self.param(v_leak, shape, "v_leak"),
                         r=float(r) if np.ndim(r) == 0 else r, theta=self.param(theta, shape, "threshold"),
                         v_reset=self.param(v_reset, shape, "v_reset"), reset=reset, refractory=refractory,
                         v_init=self.param(v_init, shape, "v_init"))
        return self.add(base, prim, x, name=name)

    # ------------------------------------------------------ sub-modules
    def convert_module(self, module: nn.Module, path: str, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Convert one module call (also used by containers for their children)."""
        entry = self.entry(module)
        outer = self.where, self.path
        self.where = f"module `{path or '(root)'}` ({type(module).__module__}.{type(module).__qualname__})"
        self.path = path
        try:
            if entry is None:
                raise self.no_converter(module)
            return entry.convert(self, module, x, *args, **kwargs)
        finally:
            self.where, self.path = outer

    def entry(self, module: nn.Module) -> Entry | None:
        """The converter of `module`'s class; a subclass of a neuron type (whose dynamics may differ) has none, nor
        a subclass of a layer that computes with methods of its own (`own_methods`)."""
        found = self._inherited(module)
        if found is None:
            return None
        cls, e = found
        if cls is type(module):
            return e
        inherit = e.subclasses if e.subclasses is not None else e.steps is None
        # an entry that declares its subclasses knows them; the default (stateless layers) checks what they add
        return e if inherit and (e.subclasses or not own_methods(module, cls)) else None

    def _inherited(self, module: nn.Module) -> tuple[type, Entry] | None:
        for cls in type(module).__mro__:
            for t in self.tables:
                e = t.MODULES.get(cls)
                if e is not None:
                    return cls, e
        return None

    def no_converter(self, module: nn.Module) -> UnsupportedError:
        """Why `module` has no converter: a subclass whose own methods may compute otherwise, or an unknown type."""
        found = self._inherited(module)
        extra = own_methods(module, found[0]) if found is not None and found[0] is not type(module) else []
        if extra:
            return self.unsupported(
                f"a subclass of {found[0].__module__}.{found[0].__qualname__} that computes with methods of its own "
                f"({', '.join(extra)}), which the converter of {found[0].__name__} would ignore",
                "the layer itself, or a converter for the subclass")
        return self.unsupported("this module type has no converter", self.supported_modules())

    def supported_modules(self) -> str:
        names = sorted({f"{c.__module__.split('.')[0]}.{c.__name__}" for t in self.tables for c in t.MODULES})
        return ", ".join(names)
