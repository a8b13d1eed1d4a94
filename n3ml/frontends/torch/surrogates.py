"""A peer's surrogate gradient written onto the IR neuron (docs/semantics.md §5a).

Each library table (`lib_snntorch`, `lib_norse`, `lib_spikingjelly`) reads its module's surrogate
into an `Exact` rule or, where n3ml has no surrogate with the same backward formula, an `Inexact`
description; `train` writes the rule onto the IR neuron, or keeps the IR's default and warns naming
the module and the surrogate. The forward pass never depends on it (the spikes stay identical); the
formulas and the peer-by-peer table are in `n3ml.nn.surrogate`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ...ir.neurons import DEFAULT_SURROGATE, SURROGATE_SLOPES
from .vocab import Context, Tensor

__all__ = ["Exact", "Inexact", "Rule", "slope_of", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Exact:
    """The IR's surrogate with the peer's backward formula, at slope k (None: the surrogate's default)."""

    surrogate: str
    slope: float | None = None


@dataclass(frozen=True, slots=True)
class Inexact:
    """A peer surrogate without an IR form, as the warning names it (e.g. "snntorch.surrogate.SSO")."""

    what: str


Rule = Union[Exact, Inexact]


def slope_of(value: Any) -> float | None:
    """A peer's surrogate parameter as an IR slope: a positive finite number, else None (no IR form)."""
    try:
        k = float(np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64))
    except (TypeError, ValueError):  # a per-neuron tensor or a non-number
        return None
    return k if math.isfinite(k) and k > 0 else None


def train(ctx: Context, neuron: Tensor | str, rule: Rule, *, detach_reset: bool | None = None) -> None:
    """Give the IR neuron `neuron` (a node built by the converter running in `ctx`) the peer's surrogate,
    and its `detach_reset` where given (whether the peer's reset lets the gradient through the spike)."""
    name = neuron.node if isinstance(neuron, Tensor) else neuron
    if detach_reset is not None:
        ctx.g.replace(name, detach_reset=bool(detach_reset))
    if isinstance(rule, Exact):
        ctx.g.replace(name, surrogate=rule.surrogate, slope=rule.slope)
        return
    default = DEFAULT_SURROGATE
    log.warning("%s: its surrogate gradient %s has no exact form in n3ml (n3ml.nn.surrogate: %s); the IR neuron "
                "`%s` trains with n3ml's default %s (k = %g) instead, so training the graph gives other gradients "
                "than the library (the forward pass is unchanged)", ctx.where, rule.what,
                ", ".join(SURROGATE_SLOPES), name, default, SURROGATE_SLOPES[default])
