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
sigmoid            ``k sig(kx) (1 - sig(kx))``, sig the logistic   4
erf                ``(k / sqrt(pi)) exp(-(k x)^2)``                2
soft_sign          ``k / (2 (1 + k |x|)^2)``                       2
piecewise_exp      ``(k / 2) exp(-k |x|)``                         1
=================  ==============================================  =============

``fast_sigmoid`` is SuperSpike's (peak 1); the others integrate to 1 over x
(``straight_through`` aside), so their peak grows with k.

The peers' surrogates, read from their sources (snnTorch 1.0, SpikingJelly
activation_based, Norse 1.1), as n3ml's with ``k`` = the peer's parameter. All three
evaluate the surrogate at the same x as n3ml, ``v - theta`` before the reset
(snnTorch ``mem - threshold``, SpikingJelly ``v - v_threshold``, Norse ``v - v_th``):

=================  =========================================  ====================================
n3ml               snnTorch ``spike_grad=``                   SpikingJelly ``surrogate_function=``
=================  =========================================  ====================================
fast_sigmoid       ``surrogate.fast_sigmoid(slope)``          ``SuperSpike(alpha=1)`` only (k = 1)
arctan             ``surrogate.atan(alpha)`` (the default)    ``ATan(alpha)``
triangle           --                                         ``PiecewiseQuadratic(alpha)``
rectangle          --                                         ``Rect(alpha)``
straight_through   ``surrogate.straight_through_estimator()`` ``DeterministicPass()``
sigmoid            ``surrogate.sigmoid(slope)``               ``Sigmoid(alpha)`` (the default, 4)
erf                --                                         ``Erf(alpha)``
soft_sign          --                                         ``SoftSign(alpha)``
piecewise_exp      --                                         ``PiecewiseExp(alpha)``
=================  =========================================  ====================================

Norse (``p.method``, ``p.alpha``): its default ``"super"`` computes ``1 / (|x| + 1)^2``
whatever ``alpha`` is (norse 1.1's SuperSpike never reads it), so it is ``fast_sigmoid``
with k = 1, not k = alpha = 100; ``"triangle"`` is ``alpha max(0, 1 - |x|)``, n3ml's
``triangle`` only for alpha = 1. SpikingJelly's ``SuperSpike(alpha)`` is alpha times
``fast_sigmoid`` with k = 1. snnTorch's ``triangular(threshold)`` is no triangle (its
backward is ``threshold`` below 0 and ``-threshold`` from 0 on). A surrogate outside these tables (or with a parameter they
do not cover) has no IR form: the frontends keep the IR's default and log a warning
naming the module and the surrogate (n3ml.frontends.torch.surrogates).
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


class Sigmoid(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        s = torch.sigmoid(k * x)  # not exp(-kx) / (1 + exp(-kx))^2: that is inf / inf for kx << 0
        return k * s * (1.0 - s)


class Erf(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return (k / math.sqrt(math.pi)) * torch.exp(-((k * x) ** 2))


class SoftSign(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return k / (2.0 * (1.0 + k * x.abs()) ** 2)


class PiecewiseExp(_Surrogate):
    @staticmethod
    def grad(x: torch.Tensor, k: float) -> torch.Tensor:
        return (k / 2.0) * torch.exp(-k * x.abs())


SURROGATES: dict[str, type[_Surrogate]] = {
    "fast_sigmoid": FastSigmoid,
    "arctan": ArcTan,
    "triangle": Triangle,
    "rectangle": Rectangle,
    "straight_through": StraightThrough,
    "sigmoid": Sigmoid,
    "erf": Erf,
    "soft_sign": SoftSign,
    "piecewise_exp": PiecewiseExp,
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
