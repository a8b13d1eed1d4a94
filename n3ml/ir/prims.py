"""IR primitives: one frozen dataclass per operation.

Each primitive verifies its own fields (`verify`) and computes its output port
type from its input port types (`infer`). The discrete-time update each one
performs is normative and lives in ``docs/semantics.md``; the docstrings here
repeat the one-line equation. All times are in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from dataclasses import replace as dataclasses_replace
from typing import Any, ClassVar

import numpy as np

from .arrays import DTYPE_NAMES, to_text_dtype
from .neurons import DEFAULT_SURROGATE, SURROGATE_SLOPES, check_training, decay, gain  # noqa: F401 (re-exported)
from .types import FixedPoint, PortType, VerifyError

Param = Any  # float, int, or np.ndarray (per-neuron values)

RESET_MODES = ("subtract", "to-value", "none")
SCHEMES = ("exact", "euler")
OVERFLOW = ("wrap", "saturate")

REGISTRY: dict[str, type[Primitive]] = {}


def register(cls: type[Primitive]) -> type[Primitive]:
    REGISTRY[cls.__name__] = cls
    return cls


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _as_array(x: Param) -> np.ndarray:
    return np.asarray(x)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Primitive:
    """Base of all primitives. `arity` is the number of input ports (None: two or more)."""

    arity: ClassVar[int | None] = 1
    category: ClassVar[str] = "synapse"

    @property
    def op(self) -> str:
        return type(self).__name__

    def port_names(self, n_inputs: int) -> list[str]:
        if self.arity == 1:
            return ["in"]
        return [f"in{i}" for i in range(n_inputs)]

    def verify(self, name: str) -> None:
        """Check the primitive's own fields; raise VerifyError naming `name`."""

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def same_as(self, other: Primitive) -> bool:
        """Structural equality (arrays compared element-wise, bit-exact)."""
        if type(self) is not type(other):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                a, b = np.asarray(a), np.asarray(b)
                if a.shape != b.shape or a.dtype.kind != b.dtype.kind or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True


# --------------------------------------------------------------------- helpers


def _check_param(name: str, field: str, value: Param, *, positive: bool = False,
                 nonneg: bool = False, shape: tuple[int, ...] | None = None) -> None:
    if _is_num(value):
        arr = np.asarray(float(value))
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise VerifyError(f"`{field}` must be numeric, found dtype {value.dtype}", node=name)
        arr = value
        if shape is not None and arr.shape not in ((), shape) and arr.size != int(np.prod(shape)):
            raise VerifyError(
                f"`{field}` has shape {arr.shape}; expected a scalar or one value per neuron {shape}",
                node=name)
    else:
        raise VerifyError(f"`{field}` must be a number or an array, found {type(value).__name__}", node=name)
    if not np.all(np.isfinite(arr)):
        raise VerifyError(f"`{field}` must be finite, found {value!r}", node=name)
    if positive and not np.all(arr > 0):
        raise VerifyError(f"`{field}` must be > 0, found {_short(value)}", node=name)
    if nonneg and not np.all(arr >= 0):
        raise VerifyError(f"`{field}` must be >= 0, found {_short(value)}", node=name)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_values(prim: Primitive, name: str) -> None:
    """Every number a primitive holds, in every field (present and future), is finite and fits 64 bits.

    Runs before the primitive's own `verify`, so that per-field checks can rely on plain real
    numbers. It is generic on purpose: a NaN or an infinity has no meaning in any field, cannot be
    written in the text format, and silently turns simulations into NaN; an integer beyond 64 bits
    cannot be stored by numpy nor read back from the text.
    """
    cls = type(prim)
    names = _FIELD_NAMES.get(cls)
    if names is None:  # dataclasses.fields() is slow enough to matter on 200k-node graphs
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(prim))
    for f in names:
        _check_value(name, f, getattr(prim, f))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _check_value(name: str, field: str, v: Any) -> None:
    if isinstance(v, (bool, np.bool_)) or v is None or isinstance(v, (str, FixedPoint)):
        return
    if isinstance(v, (int, np.integer)):
        if not INT64_MIN <= int(v) <= INT64_MAX:
            raise VerifyError(f"`{field}` = {_short_int(int(v))} does not fit in a 64-bit integer", node=name)
    elif isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise VerifyError(f"`{field}` must be finite, found {float(v)!r}", node=name)
    elif isinstance(v, np.ndarray):
        if v.dtype.kind not in "iuf":
            raise VerifyError(f"`{field}` must be an array of real numbers, found dtype {v.dtype} "
                              "(complex, boolean, string, date, object and structured arrays are refused)",
                              node=name)
        if not v.dtype.isnative:  # torch refuses them and numpy code mixing byte orders is slow
            raise VerifyError(f"`{field}` has non-native byte order (dtype {v.dtype.str}); convert it with "
                              "arr.astype(arr.dtype.newbyteorder('='))", node=name)
        if v.dtype not in DTYPE_NAMES:  # must convert exactly to a dtype the text format writes
            try:
                to_text_dtype(v, field)
            except VerifyError as e:
                raise VerifyError(e.detail, node=name) from None
        if v.dtype.kind == "f":
            bad = ~np.isfinite(v)
            if bad.any():
                at = tuple(int(i) for i in np.argwhere(bad)[0])
                raise VerifyError(f"`{field}` must be finite, found {v[at]!r} at index {at} "
                                  f"({int(bad.sum())} non-finite value(s))", node=name)
    elif isinstance(v, tuple):
        for i, x in enumerate(v):
            _check_value(name, f"{field}[{i}]", x)


def _short_int(n: int) -> str:
    # str() of a huge int is slow and refused past 4300 digits: describe it by its size instead
    return str(n) if abs(n) < 10**30 else f"{'-' if n < 0 else ''}<{n.bit_length()}-bit integer>"


def _short(v: Param) -> str:
    if isinstance(v, np.ndarray):
        return f"array with values in {v.min()!r}..{v.max()!r}" if v.size else "empty array"
    return repr(v)


def _check_int(name: str, field: str, value: Any, lo: int = 0) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise VerifyError(f"`{field}` must be an integer >= {lo}, found {value!r}", node=name)


def _check_choice(name: str, field: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:  # `in` on an array would compare element-wise
        raise VerifyError(f"`{field}` must be one of {', '.join(choices)}; found {value!r}", node=name)


def _pair(name: str, field: str, v: Any, lo: int) -> tuple[int, int]:
    if not (isinstance(v, tuple) and len(v) == 2):
        raise VerifyError(f"`{field}` must be a pair of integers, found {v!r}", node=name)
    for x in v:
        _check_int(name, field, x, lo)
    return v


# ------------------------------------------------------------------------- I/O


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Input(Primitive):
    """Graph input: y_t = x_t, the user's data at step t.

    `hold` > 0 records that the source model fed one static sample to every step of a run of
    `hold` steps (x_t = x for t < hold); the data is still given per step (a static array
    repeated `hold` times is the model's run).
    """

    arity: ClassVar[int | None] = 0
    category: ClassVar[str] = "io"
    shape: tuple[int, ...]
    kind: str = "spike"  # "spike" (0/1 events) or "analog"
    hold: int = 0  # steps the source model held one static sample for (0: a sequence input)

    def verify(self, name: str) -> None:
        try:
            PortType(shape=self.shape, kind=self.kind)  # raises on bad shape/kind
        except VerifyError as e:
            raise VerifyError(e.detail, node=name) from None
        if not self.shape:
            raise VerifyError("`shape` must have at least one dimension", node=name)
        if isinstance(self.hold, bool) or not isinstance(self.hold, int) or self.hold < 0:
            raise VerifyError(f"`hold` must be an integer >= 0, found {self.hold!r}", node=name)

    def port_names(self, n_inputs: int) -> list[str]:
        return []

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        try:
            return PortType(shape=tuple(self.shape), kind=self.kind)
        except VerifyError as e:
            raise VerifyError(e.detail, node=name) from None


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Output(Primitive):
    """Graph output: records its input x_t at every step.

    `reduce` records the readout the source model returned over the run's T steps:
    "none" (the sequence x_0..x_{T-1}), "mean" ((1/T) sum_t x_t) or "sum" (sum_t x_t).
    Engines return the per-step records either way; the reduction is applied by the reader.
    """

    category: ClassVar[str] = "io"
    reduce: str = "none"  # "none" | "mean" | "sum" over the steps of the run

    def verify(self, name: str) -> None:
        if not isinstance(self.reduce, str) or self.reduce not in ("none", "mean", "sum"):
            raise VerifyError(f"`reduce` must be one of none, mean, sum, found {self.reduce!r}", node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return ins[0]


# -------------------------------------------------------------------- synapses


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Dense(Primitive):
    """Fully connected synapse: y_t = W x_t + b (same step)."""

    weight: np.ndarray  # (out, in)
    bias: np.ndarray | None = None  # (out,), added at every step
    weight_format: FixedPoint | None = None  # storage format of integer weights (quantized graphs)

    def verify(self, name: str) -> None:
        w = self.weight
        if not isinstance(w, np.ndarray) or w.ndim != 2:
            raise VerifyError(f"`weight` must be a 2-D array (out, in), found {_desc(w)}", node=name)
        if not np.all(np.isfinite(w)):
            raise VerifyError("`weight` contains NaN or infinity", node=name)
        if self.bias is not None:
            b = self.bias
            if not isinstance(b, np.ndarray) or b.shape != (w.shape[0],):
                raise VerifyError(f"`bias` must have shape ({w.shape[0]},), found {_desc(b)}", node=name)
        _verify_weight_format(self, name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        n_in = self.weight.shape[1]
        if x.shape != (n_in,):
            raise VerifyError(f"expected input shape ({n_in},) for weight {self.weight.shape}, found "
                              f"{x.shape}", node=name, port="in")
        return PortType(shape=(self.weight.shape[0],), kind="analog", dtype=_wdtype(self.weight))


def _desc(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape}"
    return repr(x)


def _wdtype(w: np.ndarray) -> str:
    return "int" if w.dtype.kind in "iu" else "float"


def _verify_conv(prim, name: str, layout: str) -> None:
    """Checks shared by Conv1d and Conv2d: weight rank, groups, bias shape."""
    w, ndim = prim.weight, layout.count(",") + 1
    if not isinstance(w, np.ndarray) or w.ndim != ndim:
        raise VerifyError(f"`weight` must be {ndim}-D {layout}, found {_desc(w)}", node=name)
    if not np.all(np.isfinite(w)):
        raise VerifyError("`weight` contains NaN or infinity", node=name)
    _check_int(name, "groups", prim.groups, 1)
    if w.shape[0] % prim.groups:
        raise VerifyError(f"C_out={w.shape[0]} is not divisible by groups={prim.groups}", node=name)
    if prim.bias is not None and (not isinstance(prim.bias, np.ndarray) or prim.bias.shape != (w.shape[0],)):
        raise VerifyError(f"`bias` must have shape ({w.shape[0]},), found {_desc(prim.bias)}", node=name)
    _verify_weight_format(prim, name)


def _verify_weight_format(prim, name: str) -> None:
    """Integer weights declared as `m * 2**-frac` with a `bits`-bit mantissa m must be exactly that."""
    fmt, w = prim.weight_format, prim.weight
    if fmt is None:
        return
    if not isinstance(fmt, FixedPoint):
        raise VerifyError(f"`weight_format` must be a fixed-point format, found {fmt!r}", node=name)
    if w.dtype.kind not in "iu":
        raise VerifyError(f"`weight_format` {fmt} needs integer weights, found dtype {w.dtype}", node=name)
    if fmt.frac > 0:
        raise VerifyError(f"integer weights have no fractional bits: `weight_format` {fmt} must have frac <= 0",
                          node=name)
    step = 2 ** (-fmt.frac)
    m = w.astype(np.int64)
    if np.any(m % step):
        raise VerifyError(f"weights must be multiples of 2**{-fmt.frac} under `weight_format` {fmt}", node=name)
    m = m // step
    if m.size and (m.min() < fmt.min_int or m.max() > fmt.max_int):
        raise VerifyError(f"weight mantissas span {m.min()}..{m.max()}, outside {fmt.min_int}..{fmt.max_int} "
                          f"of `weight_format` {fmt}", node=name)


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Conv1d(Primitive):
    """1-D convolution (cross-correlation, as torch): y_t = W * x_t + b."""

    weight: np.ndarray  # (C_out, C_in/groups, K)
    bias: np.ndarray | None = None
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    weight_format: FixedPoint | None = None  # storage format of integer weights (quantized graphs)

    def verify(self, name: str) -> None:
        _verify_conv(self, name, "(C_out, C_in/groups, K)")
        _check_int(name, "stride", self.stride, 1)
        _check_int(name, "padding", self.padding, 0)
        _check_int(name, "dilation", self.dilation, 1)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        co, ci, k = self.weight.shape
        if len(x.shape) != 2 or x.shape[0] != ci * self.groups:
            raise VerifyError(f"expected input (C={ci * self.groups}, L), found {x.shape}", node=name, port="in")
        lo = _conv_out(x.shape[1], k, self.stride, self.padding, self.dilation)
        if lo < 1:
            raise VerifyError(f"input length {x.shape[1]} is too short for kernel {k}", node=name, port="in")
        return PortType(shape=(co, lo), kind="analog", dtype=_wdtype(self.weight))


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Conv2d(Primitive):
    """2-D convolution (cross-correlation, as torch), per sample (C, H, W): y_t = W * x_t + b."""

    weight: np.ndarray  # (C_out, C_in/groups, KH, KW)
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    weight_format: FixedPoint | None = None  # storage format of integer weights (quantized graphs)

    def verify(self, name: str) -> None:
        _verify_conv(self, name, "(C_out, C_in/groups, KH, KW)")
        _pair(name, "stride", self.stride, 1)
        _pair(name, "padding", self.padding, 0)
        _pair(name, "dilation", self.dilation, 1)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        co, ci, kh, kw = self.weight.shape
        if len(x.shape) != 3 or x.shape[0] != ci * self.groups:
            raise VerifyError(f"expected input (C={ci * self.groups}, H, W), found {x.shape}", node=name, port="in")
        ho = _conv_out(x.shape[1], kh, self.stride[0], self.padding[0], self.dilation[0])
        wo = _conv_out(x.shape[2], kw, self.stride[1], self.padding[1], self.dilation[1])
        if ho < 1 or wo < 1:
            raise VerifyError(f"input {x.shape} is too small for kernel {(kh, kw)}", node=name, port="in")
        return PortType(shape=(co, ho, wo), kind="analog", dtype=_wdtype(self.weight))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _Pool2d(Primitive):
    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None  # None: same as kernel
    padding: tuple[int, int] = (0, 0)

    @property
    def stride_(self) -> tuple[int, int]:
        return self.kernel if self.stride is None else self.stride

    def verify(self, name: str) -> None:
        _pair(name, "kernel", self.kernel, 1)
        if self.stride is not None:
            _pair(name, "stride", self.stride, 1)
        _pair(name, "padding", self.padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise VerifyError(f"padding {self.padding} must be at most half of kernel {self.kernel}", node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        if len(x.shape) != 3:
            raise VerifyError(f"expected input (C, H, W), found {x.shape}", node=name, port="in")
        s = self.stride_
        ho = _conv_out(x.shape[1], self.kernel[0], s[0], self.padding[0], 1)
        wo = _conv_out(x.shape[2], self.kernel[1], s[1], self.padding[1], 1)
        if ho < 1 or wo < 1:
            raise VerifyError(f"input {x.shape} is too small for kernel {self.kernel}", node=name, port="in")
        return PortType(shape=(x.shape[0], ho, wo), kind=self._out_kind(x), dtype=x.dtype)

    def _out_kind(self, x: PortType) -> str:
        return "analog"


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SumPool2d(_Pool2d):
    """Sum over each window (zero padding): y = sum_window x."""


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AvgPool2d(_Pool2d):
    """Mean over each window, padding counted: y = sum_window x / (kh*kw)."""

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        t = _Pool2d.infer(self, name, ins)
        return PortType(shape=t.shape, kind="analog", dtype="float")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MaxPool2d(_Pool2d):
    """Max over each window (padding = -inf); on spikes this is a logical OR."""

    def _out_kind(self, x: PortType) -> str:
        return x.kind


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Flatten(Primitive):
    """y = reshape(x, (-1,)) in C order."""

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        return PortType(shape=(x.size,), kind=x.kind, dtype=x.dtype, fixed=x.fixed)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scale(Primitive):
    """y = factor * x; factor a scalar or an array broadcastable to x's shape."""

    factor: Param = 1.0

    def verify(self, name: str) -> None:
        _check_param(name, "factor", self.factor)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        f = np.asarray(self.factor)
        try:
            out = np.broadcast_shapes(f.shape, x.shape)
        except ValueError:
            out = None
        if out != x.shape:
            raise VerifyError(f"`factor` of shape {f.shape} does not broadcast to input shape {x.shape}",
                              node=name, port="in")
        dtype = "int" if (x.dtype == "int" and f.dtype.kind in "iu") else "float"
        return PortType(shape=x.shape, kind="analog", dtype=dtype)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Add(Primitive):
    """y = x_0 + x_1 + ... (the only way several edges meet)."""

    arity: ClassVar[int | None] = None

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        first = ins[0]
        for i, x in enumerate(ins):
            if x.shape != first.shape:
                raise VerifyError(f"all inputs must have shape {first.shape}, found {x.shape}",
                                  node=name, port=f"in{i}")
        dtype = "int" if all(x.dtype == "int" for x in ins) else "float"
        return PortType(shape=first.shape, kind="analog", dtype=dtype)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Concat(Primitive):
    """y = concatenate(x_0, x_1, ..., axis) along a per-sample axis."""

    arity: ClassVar[int | None] = None
    axis: int = 0

    def verify(self, name: str) -> None:
        _check_int(name, "axis", self.axis, 0)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        first = ins[0]
        if self.axis >= len(first.shape):
            raise VerifyError(f"axis {self.axis} is out of range for input shape {first.shape}", node=name, port="in0")
        total = 0
        for i, x in enumerate(ins):
            rest = x.shape[: self.axis] + x.shape[self.axis + 1:]
            if len(x.shape) != len(first.shape) or rest != first.shape[: self.axis] + first.shape[self.axis + 1:]:
                raise VerifyError(f"inputs must agree on all axes but {self.axis}: expected "
                                  f"{first.shape} up to that axis, found {x.shape}", node=name, port=f"in{i}")
            total += x.shape[self.axis]
        shape = first.shape[: self.axis] + (total,) + first.shape[self.axis + 1:]
        kind = "spike" if all(x.kind == "spike" for x in ins) else "analog"
        dtype = "int" if all(x.dtype == "int" for x in ins) else "float"
        return PortType(shape=shape, kind=kind, dtype=dtype)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Delay(Primitive):
    """y_t = x_{t-steps} (zero for t < steps). The only way to close a cycle (steps >= 1).

    `detach` (training only, docs/semantics.md §5a): no gradient flows back through the delay, as for a
    peer's detached reset term (snnTorch's `mem_reset`)."""

    steps: int = 1
    detach: bool = False

    def verify(self, name: str) -> None:
        _check_int(name, "steps", self.steps, 0)
        if not isinstance(self.detach, (bool, np.bool_)):
            raise VerifyError(f"`detach` must be true or false; found {self.detach!r}", node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return ins[0]


# ------------------------------------------------------------ ANN operations
# Stateless analog operations that let a trained ANN enter the IR; the ann-to-snn
# pass replaces them (ReLU -> IF, BatchNorm folded, Softmax dropped at the output).


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReLU(Primitive):
    """y_t = max(x_t, 0)."""

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return PortType(shape=ins[0].shape, kind="analog", dtype=ins[0].dtype)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BatchNorm(Primitive):
    """Inference batch norm over per-sample axis 0 (channels): y = gamma (x - mean) / sqrt(var + eps) + beta."""

    mean: np.ndarray  # (C,)
    var: np.ndarray  # (C,)
    gamma: np.ndarray  # (C,)
    beta: np.ndarray  # (C,)
    eps: float = 1e-5

    def verify(self, name: str) -> None:
        c = None
        for f in ("mean", "var", "gamma", "beta"):
            v = getattr(self, f)
            if not isinstance(v, np.ndarray) or v.ndim != 1:
                raise VerifyError(f"`{f}` must be a 1-D array (channels), found {_desc(v)}", node=name)
            if c is not None and v.shape[0] != c:
                raise VerifyError(f"`{f}` has {v.shape[0]} channels, expected {c}", node=name)
            c = v.shape[0]
        if np.any(self.var < 0):
            raise VerifyError("`var` must be >= 0", node=name)
        _check_param(name, "eps", self.eps, nonneg=True)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        if x.shape[0] != self.mean.shape[0]:
            raise VerifyError(f"expected {self.mean.shape[0]} channels on axis 0, found shape {x.shape}",
                              node=name, port="in")
        return PortType(shape=x.shape, kind="analog")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Softmax(Primitive):
    """y = exp(x) / sum(exp(x)) over per-sample `axis` (ANN outputs only)."""

    axis: int = 0

    def verify(self, name: str) -> None:
        _check_int(name, "axis", self.axis, 0)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        if self.axis >= len(ins[0].shape):
            raise VerifyError(f"axis {self.axis} out of range for shape {ins[0].shape}", node=name, port="in")
        return PortType(shape=ins[0].shape, kind="analog")


# --------------------------------------------------------------------- neurons

_RULES = ("reset", "refractory", "detach_reset", "surrogate", "slope")  # neuron fields that are not numbers


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Neuron(Primitive):
    """Common fields of spiking neurons; see docs/semantics.md for the step order."""

    category: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True
    state_names: ClassVar[tuple[str, ...]] = ("v",)
    time_fields: ClassVar[tuple[str, ...]] = ()
    theta: Param = 1.0  # threshold; spike when v > theta (strict)
    v_reset: Param = 0.0  # value after a spike when reset == "to-value"
    reset: str = "subtract"  # "subtract" | "to-value" | "none"
    refractory: int = 0  # steps during which v is held after a spike
    v_init: Param = 0.0  # v before step 0
    # training semantics (docs/semantics.md §5a; no effect on the forward pass)
    detach_reset: bool = True  # no gradient flows through the reset
    surrogate: str = DEFAULT_SURROGATE  # backward of the spike: n3ml.nn.surrogate
    slope: float | None = None  # surrogate sharpness; None: the surrogate's default

    def __post_init__(self) -> None:
        # the surrogate's default slope spelled out is the default: one model, one canonical text
        if (self.slope is not None and isinstance(self.surrogate, str) and not isinstance(self.slope, np.ndarray)
                and SURROGATE_SLOPES.get(self.surrogate) == self.slope):  # (odd types are verify's to refuse)
            object.__setattr__(self, "slope", None)

    def _shape_params(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name not in _RULES)

    def verify(self, name: str) -> None:
        for f in self._shape_params():
            _check_param(name, f, getattr(self, f), positive=f in self.time_fields)
        if self.spiking:
            _check_choice(name, "reset", self.reset, RESET_MODES)
            _check_int(name, "refractory", self.refractory, 0)
        _check_choice(name, "surrogate", self.surrogate, tuple(SURROGATE_SLOPES))  # a str before any lookup
        problem = check_training(self.surrogate, self.slope, self.detach_reset)
        if problem:
            raise VerifyError(problem, node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        for f in self._shape_params():
            v = getattr(self, f)
            if isinstance(v, np.ndarray) and v.ndim and v.size not in (1, x.size):
                raise VerifyError(f"`{f}` has {v.size} values but the neuron has {x.size} "
                                  f"(input shape {x.shape})", node=name, port="in")
            # the engines broadcast a parameter against (batch, *shape): more axes than that cannot be
            if isinstance(v, np.ndarray) and v.ndim > len(x.shape) + 1:
                raise VerifyError(f"`{f}` has shape {v.shape}, more dimensions than the neuron's (batch, "
                                  f"*{x.shape}); give a scalar or one value per neuron", node=name, port="in")
        return PortType(shape=x.shape, kind="spike" if self.spiking else "analog")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IF(Neuron):
    """Integrate-and-fire: v_t = v_{t-1} + I_t; s_t = [v_t > theta]."""


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LIF(Neuron):
    """Leaky integrate-and-fire: v_t = v_leak + a (v_{t-1} - v_leak) + r g I_t."""

    time_fields: ClassVar[tuple[str, ...]] = ("tau",)
    tau: Param  # membrane time constant, ms
    v_leak: Param = 0.0
    r: Param = 1.0  # input resistance: input units -> voltage units


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CubaLIF(Neuron):
    """Current-based LIF: i_t = a_s i_{t-1} + I_t; v_t = v_leak + a_m (v_{t-1} - v_leak) + r g_m i_t."""

    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    time_fields: ClassVar[tuple[str, ...]] = ("tau_syn", "tau_mem")
    tau_syn: Param  # synaptic current time constant, ms
    tau_mem: Param  # membrane time constant, ms
    v_leak: Param = 0.0
    r: Param = 1.0


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ALIF(Neuron):
    """Adaptive LIF: threshold theta + b_t, b jumps by q at each spike and decays with tau_adapt."""

    state_names: ClassVar[tuple[str, ...]] = ("v", "b")
    time_fields: ClassVar[tuple[str, ...]] = ("tau", "tau_adapt")
    tau: Param  # membrane time constant, ms
    tau_adapt: Param  # threshold adaptation time constant, ms
    q: Param = 0.1  # threshold increment per spike
    v_leak: Param = 0.0
    r: Param = 1.0


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LI(Neuron):
    """Leaky integrator readout (no spikes): v_t = v_leak + a (v_{t-1} - v_leak) + r g I_t; y_t = v_t."""

    spiking: ClassVar[bool] = False
    time_fields: ClassVar[tuple[str, ...]] = ("tau",)
    tau: Param  # ms
    v_leak: Param = 0.0
    r: Param = 1.0

    def _shape_params(self) -> tuple[str, ...]:
        return ("tau", "v_leak", "r", "v_init")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Integrator(Neuron):
    """Perfect integrator readout (no spikes): v_t = v_{t-1} + r I_t; y_t = v_t."""

    spiking: ClassVar[bool] = False
    r: Param = 1.0

    def _shape_params(self) -> tuple[str, ...]:
        return ("r", "v_init")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class FixedCubaLIF(Neuron):
    """Integer current-based LIF (the form quantized graphs take; Loihi-compatible).

    u_t = ovf_u(trunc((2^D - du) u_{t-1} / 2^D) + (I_t << input_shift))
    v_t = ovf_v(trunc((2^D - dv) v_{t-1} / 2^D) + u_t + bias)
    s_t = [v_t > theta]; reset as for every neuron. trunc rounds toward zero.
    Threshold adaptation (q != 0; Norse's LSNN, n3ml's ALIF quantized), docs/semantics.md §6:
    b'_t = trunc((2^D - db) b_{t-1} / 2^D); s_t = [v_t > theta + b'_t]; b_t = sat(b'_t + q s_t).
    """

    state_names: ClassVar[tuple[str, ...]] = ("i", "v")
    du: Param  # current decay in units of 2^-decay_bits (0..2^decay_bits)
    dv: Param  # voltage decay in units of 2^-decay_bits
    bias: Param = 0  # constant added to v each step, state units
    db: Param = 0  # threshold adaptation decay in units of 2^-decay_bits (only read where q != 0)
    q: Param = 0  # threshold jump per spike, state units (0: no adaptation, the plain neuron)
    decay_bits: int = 12
    state_bits: int = 24
    input_shift: int = 6
    current_overflow: str = "wrap"
    voltage_overflow: str = "saturate"

    def _shape_params(self) -> tuple[str, ...]:
        return ("du", "dv", "bias", "theta", "v_reset", "v_init", "db", "q")

    def verify(self, name: str) -> None:
        Neuron.verify(self, name)
        _check_int(name, "decay_bits", self.decay_bits, 1)
        _check_int(name, "state_bits", self.state_bits, 2)
        _check_int(name, "input_shift", self.input_shift, 0)
        # the engines hold states in int64 and form (2^D - d) * state before shifting: that product
        # must not overflow, so state_bits + decay_bits <= 63; a unit input shifted past the state
        # range would always overflow
        if self.state_bits + self.decay_bits > 63:
            raise VerifyError(f"`state_bits` + `decay_bits` must be at most 63 (int64 arithmetic), found "
                              f"{self.state_bits} + {self.decay_bits}", node=name)
        if self.input_shift >= self.state_bits:
            raise VerifyError(f"`input_shift` must be less than `state_bits` ({self.state_bits}), found "
                              f"{self.input_shift}", node=name)
        lo, hi = -(2 ** (self.state_bits - 1)), 2 ** (self.state_bits - 1) - 1
        for f in ("theta", "v_reset", "v_init", "bias", "q"):
            v = np.asarray(getattr(self, f))
            if v.size and (v.min() < lo or v.max() > hi):
                raise VerifyError(f"`{f}` must lie in the {self.state_bits}-bit state range {lo}..{hi}, found "
                                  f"{_short(getattr(self, f))}", node=name)
        _check_choice(name, "current_overflow", self.current_overflow, OVERFLOW)
        _check_choice(name, "voltage_overflow", self.voltage_overflow, OVERFLOW)
        for f in self._shape_params():
            v = np.asarray(getattr(self, f))
            if v.dtype.kind == "f" and not np.all(v == np.round(v)):
                raise VerifyError(f"`{f}` must hold integers in a fixed-point neuron, found {_short(getattr(self, f))}",
                                  node=name)
        for f in ("du", "dv", "db"):
            v = np.asarray(getattr(self, f))
            if np.any(v < 0) or np.any(v > 2**self.decay_bits):
                raise VerifyError(f"`{f}` must lie in 0..{2**self.decay_bits}, found {_short(getattr(self, f))}",
                                  node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        (x,) = ins
        if x.dtype != "int" and x.kind != "spike":
            raise VerifyError("a fixed-point neuron needs integer input (quantize its synapses first), "
                              f"found {x}", node=name, port="in")
        return Neuron.infer(self, name, ins)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SynapseFilter(Neuron):
    """Spike-gated current (SpikingJelly's SynapseFilter; no spikes): v_t = v_{t-1} - (1 - s_t) v_{t-1} leak + s_t.

    The input must be 0/1 spikes s: a step with a spike adds 1 and does not decay, a step without one
    decays the current by the fraction `leak` (SpikingJelly's 1/tau, per step whatever dt). The output
    is the current v (analog), read by the synapses after it. docs/semantics.md §5b.
    """

    spiking: ClassVar[bool] = False
    leak: Param  # fraction of the current lost in a step without an input spike, 0..1

    def _shape_params(self) -> tuple[str, ...]:
        return ("leak", "v_init")

    def verify(self, name: str) -> None:
        Neuron.verify(self, name)
        if np.any(np.asarray(self.leak) < 0) or np.any(np.asarray(self.leak) > 1):
            raise VerifyError(f"`leak` must lie in 0..1 (the fraction of the current lost per step), found "
                              f"{_short(self.leak)}", node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        _spikes_in(name, ins[0], "its update multiplies the current by the input")
        return Neuron.infer(self, name, ins)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class FixedSynapseFilter(Neuron):
    """Integer spike-gated current (the form quantize gives a SynapseFilter; docs/semantics.md §6b):

    v_t = sat(v_{t-1} + jump)                      if s_t = 1
    v_t = trunc((2^D - d) v_{t-1} / 2^D)           if s_t = 0      (trunc rounds toward zero)

    Output: v (integers, sent on as graded values).
    """

    spiking: ClassVar[bool] = False
    d: Param  # decay in a step without a spike, units of 2^-decay_bits (0..2^decay_bits)
    jump: Param  # added on a spike, state units
    decay_bits: int = 12
    state_bits: int = 24

    def _shape_params(self) -> tuple[str, ...]:
        return ("d", "jump", "v_init")

    def verify(self, name: str) -> None:
        Neuron.verify(self, name)
        _check_int(name, "decay_bits", self.decay_bits, 1)
        _check_int(name, "state_bits", self.state_bits, 2)
        if self.state_bits + self.decay_bits > 63:
            raise VerifyError(f"`state_bits` + `decay_bits` must be at most 63 (int64 arithmetic), found "
                              f"{self.state_bits} + {self.decay_bits}", node=name)
        for f in self._shape_params():
            v = np.asarray(getattr(self, f))
            if v.dtype.kind == "f" and not np.all(v == np.round(v)):
                raise VerifyError(f"`{f}` must hold integers in a fixed-point filter, found {_short(getattr(self, f))}",
                                  node=name)
        lo, hi = -(2 ** (self.state_bits - 1)), 2 ** (self.state_bits - 1) - 1
        for f in ("jump", "v_init"):
            v = np.asarray(getattr(self, f))
            if v.size and (v.min() < lo or v.max() > hi):
                raise VerifyError(f"`{f}` must lie in the {self.state_bits}-bit state range {lo}..{hi}, found "
                                  f"{_short(getattr(self, f))}", node=name)
        d = np.asarray(self.d)
        if np.any(d < 0) or np.any(d > 2**self.decay_bits):
            raise VerifyError(f"`d` must lie in 0..{2**self.decay_bits}, found {_short(self.d)}", node=name)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        _spikes_in(name, ins[0], "its update selects by the input spike")
        return dataclasses_replace(Neuron.infer(self, name, ins), dtype="int")


def _spikes_in(name: str, x: PortType, why: str) -> None:
    if x.kind != "spike":
        raise VerifyError(f"a synapse filter reads 0/1 spikes ({why}), found {x}",
                          node=name, port="in")


# -------------------------------------------------------------------- encoders


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PoissonRate(Primitive):
    """s_t = [u_t < clip(gain x_t, 0, 1)], u_t ~ U[0,1) from numpy PCG64(seed)."""

    category: ClassVar[str] = "encoder"
    gain: float = 1.0
    seed: int = 0

    def verify(self, name: str) -> None:
        _check_param(name, "gain", self.gain, nonneg=True)
        _check_int(name, "seed", self.seed, 0)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return PortType(shape=ins[0].shape, kind="spike")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ConstantCurrent(Primitive):
    """Analog current: y_t = scale x_t + offset (drives neurons directly; a current source on targets)."""

    category: ClassVar[str] = "encoder"
    scale: float = 1.0
    offset: float = 0.0

    def verify(self, name: str) -> None:
        _check_param(name, "scale", self.scale)
        _check_param(name, "offset", self.offset)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return PortType(shape=ins[0].shape, kind="analog")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Latency(Primitive):
    """Time-to-first-spike: one spike per input presentation at step round_half_up((1 - x) (window - 1)).

    x is clipped to [0, 1]; x <= x_min gives no spike. The window restarts every `window` steps,
    using x at the window's first step.
    """

    category: ClassVar[str] = "encoder"
    window: int = 10  # steps
    x_min: float = 0.0

    def verify(self, name: str) -> None:
        _check_int(name, "window", self.window, 1)
        _check_param(name, "x_min", self.x_min)

    def infer(self, name: str, ins: list[PortType]) -> PortType:
        return PortType(shape=ins[0].shape, kind="spike")


NEURONS = tuple(c for c in REGISTRY.values() if issubclass(c, Neuron))
__all__ = [c for c in REGISTRY] + ["Primitive", "Neuron", "REGISTRY", "decay", "gain", "RESET_MODES", "SCHEMES"]
