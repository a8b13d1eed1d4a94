"""Port types of the n3ml IR: what travels along an edge at every time step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["spike", "analog"]
KINDS: tuple[str, ...] = ("spike", "analog")
DTYPES: tuple[str, ...] = ("float", "int")


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
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise VerifyError(f"fixed-point bits must be an integer in 1..64, found {self.bits!r}")
        if not isinstance(self.frac, int):
            raise VerifyError(f"fixed-point frac must be an integer, found {self.frac!r}")

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
        if self.kind not in KINDS:
            raise VerifyError(f"port kind must be one of {KINDS}, found {self.kind!r}")
        if self.dtype not in DTYPES:
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
