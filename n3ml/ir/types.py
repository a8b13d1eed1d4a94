"""Port types of the n3ml IR: what travels along an edge at every time step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["spike", "analog"]
KINDS: tuple[str, ...] = ("spike", "analog")
DTYPES: tuple[str, ...] = ("float", "int")
MAX_ELEMENTS = 2**63 - 1  # the most elements one numpy array can address
MAX_DIMS = 32  # per-sample dimensions of a port


class VerifyError(ValueError):
    """A graph or primitive breaks a rule of the IR.

    The message names the node (and port) where the rule is broken, what was
    expected and what was found.
    """

    def __init__(self, message: str, *, node: str | None = None, port: str | None = None):
        where = ""
        if node is not None:
            where = f"node `{node}`" + (f", port `{port}`" if port else "") + ": "
        super().__init__(where + message)
        self.node = node
        self.port = port
        self.detail = message


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedPoint:
    """A fixed-point number format: value = integer * 2**-frac.

    `frac` may be negative, which gives a mantissa with a (shared) exponent:
    an 8-bit mantissa scaled by 2**e is ``FixedPoint(bits=8, frac=-e)``.
    """

    bits: int  # total bits including the sign bit
    frac: int  # fractional bits (negative = exponent)
    signed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            shown = self.bits if not isinstance(self.bits, int) or abs(self.bits) < 10**12 else "a huge integer"
            raise VerifyError(f"fixed-point bits must be an integer in 1..64, found {shown!r}")
        # |frac| <= 64: a 64-bit mantissa scaled beyond 2**64 (or below 2**-64) has no use, and the
        # verifier computes 2**|frac|, which must stay cheap for any file it is given
        if isinstance(self.frac, bool) or not isinstance(self.frac, int) or not -64 <= self.frac <= 64:
            shown = self.frac if not isinstance(self.frac, int) or abs(self.frac) < 10**12 else "a huge integer"
            raise VerifyError(f"fixed-point frac must be an integer in -64..64, found {shown!r}")

    @property
    def min_int(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    def __str__(self) -> str:
        return f"{'fixed' if self.signed else 'ufixed'}<{self.bits}, {self.frac}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortType:
    """Type of a port: per-sample shape (no batch, no time), dtype and kind."""

    shape: tuple[int, ...]
    kind: Kind = "analog"
    dtype: str = "float"
    fixed: FixedPoint | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in self.shape
        ):
            raise VerifyError(f"shape must be a tuple of positive integers, found {self.shape!r}")
        if len(self.shape) > MAX_DIMS:
            raise VerifyError(f"shape has {len(self.shape)} dimensions; at most {MAX_DIMS} (numpy arrays hold at "
                              "most 64, and the engines add time, batch and window dimensions)")
        if self.size > MAX_ELEMENTS:
            raise VerifyError(f"shape {self.shape} has {self.size} elements; numpy and torch address at most "
                              f"{MAX_ELEMENTS} (2**63-1)")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise VerifyError(f"port kind must be one of {KINDS}, found {self.kind!r}")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise VerifyError(f"dtype must be one of {DTYPES}, found {self.dtype!r}")

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        q = f" {self.fixed}" if self.fixed else ""
        return f"{self.kind}<{self.dtype}>[{dims}]{q}"
