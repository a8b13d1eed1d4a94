"""Surrogate spike functions: Heaviside forward, smooth derivative backward.

A spiking neuron emits ``s = H(v - theta)`` with the strict step
``H(x) = 1 if x > 0 else 0`` (docs/semantics.md §5: the threshold test is strict).
Its true derivative is zero almost everywhere, so training replaces it in the
backward pass by a surrogate ``sigma'(x)`` with a slope (sharpness) ``k``:

=================  ==============================================  =============
name               backward ``d s / d x``                          default ``k``
=================  ==============================================  =============
fast_sigmoid       ``1 / (1 + k |x|)^2``                           25
arctan             ``(k / 2) / (1 + (pi k x / 2)^2)``              2
triangle           ``k * max(0, 1 - k |x|)``                       1
rectangle          ``k * [|x| < 1 / (2k)]``                        1
straight_through   ``1`` (the gradient passes unchanged; k unused)  1
=================  ==============================================  =============

``fast_sigmoid`` is SuperSpike's (peak 1); ``arctan``, ``triangle`` and
``rectangle`` integrate to 1 over x, so their peak grows with k.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..ir.neurons import SURROGATE_SLOPES

__all__ = ["SURROGATES", "DEFAULT_SLOPES", "spike_fn", "heaviside"]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Strict step: 1 where x > 0, else 0, in x's dtype."""
    return (x > 0).to(x.dtype)


class _Surrogate(torch.autograd.Function):
    """Base: forward is the strict Heaviside step; subclasses define `grad(x, k)`."""

    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, x: torch.Tensor, k: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.k = k
        return heaviside(x)

    @classmethod
    def backward(cls, ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * cls.grad(x, ctx.k), None


class FastSigmoid(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return 1.0 / (1.0 + k * x.abs()) ** 2


class ArcTan(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return (k / 2.0) / (1.0 + (math.pi * k / 2.0 * x) ** 2)


class Triangle(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return k * torch.clamp(1.0 - k * x.abs(), min=0.0)


class Rectangle(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return k * (x.abs() < 0.5 / k).to(x.dtype)


class StraightThrough(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return torch.ones_like(x)


SURROGATES: dict[str, type[_Surrogate]] = {
    "fast_sigmoid": FastSigmoid,
    "arctan": ArcTan,
    "triangle": Triangle,
    "rectangle": Rectangle,
    "straight_through": StraightThrough,
}

# the default slopes are part of the model (the IR neurons carry surrogate and slope): one table, in the IR
DEFAULT_SLOPES: dict[str, float] = dict(SURROGATE_SLOPES)


class SpikeFn:
    """Callable ``f(v - theta) -> spikes`` with a surrogate gradient (picklable, printable)."""

    __slots__ = ("name", "slope", "_fn")

    def __init__(self, name: str, slope: float):
        self.name = name
        self.slope = float(slope)
        self._fn = SURROGATES[name]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn.apply(x, self.slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate derivative itself, evaluated at x (for plots and tests)."""
        return self._fn.grad(x, self.slope)

    def __repr__(self) -> str:
        return f"SpikeFn({self.name!r}, slope={self.slope})"

    def __reduce__(self):
        return (SpikeFn, (self.name, self.slope))


def spike_fn(name: str = "fast_sigmoid", slope: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The spike function `name` with sharpness `slope` (None: the surrogate's default).

    Args:
        name: one of ``SURROGATES``.
        slope: positive sharpness k of the surrogate derivative.
    Returns:
        A callable mapping ``v - theta`` to spikes (strict Heaviside forward,
        surrogate derivative backward).
    Raises:
        ValueError: unknown name or non-positive slope.
    """
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; supported: {', '.join(SURROGATES)}")
    k = DEFAULT_SLOPES[name] if slope is None else slope
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
        raise ValueError(f"surrogate slope must be a positive finite number, found {slope!r}")
    return SpikeFn(name, k)
