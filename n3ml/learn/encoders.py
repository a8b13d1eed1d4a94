"""Input encoders shared by the learning algorithms.

* `GaussianReceptiveFields` (Bohte, Kok & La Poutre 2002, section 4): each real
  feature is covered by `m` overlapping Gaussians; a strongly excited field fires
  early, a weakly excited one late or never.
* `poisson`: Bernoulli-per-step rate code (a Poisson process in discrete time).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import N3mlError

__all__ = ["GaussianReceptiveFields", "poisson"]


class GaussianReceptiveFields:
    """Population code of real features into first-spike times.

    For a feature with range [lo, hi] (fitted on training data) field
    i = 1..m has centre ``mu_i = lo + (2i - 3) / 2 * (hi - lo) / (m - 2)`` and width
    ``sigma = (hi - lo) / (beta (m - 2))``. A value x excites field i by
    ``r_i = exp(-(x - mu_i)^2 / (2 sigma^2))`` and the field fires once at
    ``t_i = round((1 - r_i) * t_max / resolution) * resolution`` ms; fields with
    ``t_i > t_cut`` stay silent (time = inf).

    Args:
        m: fields per feature (>= 3).
        t_max: latest possible spike time, ms.
        t_cut: fields later than this do not fire, ms.
        beta: width factor (1.5 in the paper).
        resolution: time grid of the encoded spikes, ms (the paper rounds to 1 ms).
    """

    def __init__(self, m: int = 12, t_max: float = 10.0, t_cut: float = 9.0, beta: float = 1.5,
                 resolution: float = 1.0):
        if m < 3:
            raise N3mlError(f"GaussianReceptiveFields needs m >= 3 fields per feature, found {m}")
        self.m, self.t_max, self.t_cut, self.beta, self.resolution = m, t_max, t_cut, beta, resolution
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> GaussianReceptiveFields:
        """Fit the per-feature ranges on training data (N, F)."""
        self.lo, self.hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
        self.hi = np.where(self.hi > self.lo, self.hi, self.lo + 1.0)
        return self

    def response(self, x: np.ndarray) -> np.ndarray:
        """Excitation r in [0, 1] of every field: (N, F) -> (N, F * m)."""
        if self.lo is None:
            raise N3mlError("GaussianReceptiveFields used before fit")
        span = self.hi - self.lo
        i = np.arange(1, self.m + 1)
        mu = self.lo[:, None] + (2 * i - 3) / 2 * span[:, None] / (self.m - 2)  # (F, m)
        sigma = span / (self.beta * (self.m - 2))
        r = np.exp(-((x[:, :, None] - mu[None]) ** 2) / (2 * sigma[None, :, None] ** 2))
        return r.reshape(len(x), -1)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Spike times (N, F * m) in ms, inf for silent fields."""
        t = (1.0 - self.response(x)) * self.t_max
        t = np.round(t / self.resolution) * self.resolution
        return np.where(t > self.t_cut, np.inf, t).astype(np.float32)


def poisson(rates: torch.Tensor, steps: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli spike trains: ``s_t = [u_t < clip(rates, 0, 1)]`` with fresh uniform u per step.

    Args:
        rates: spike probability per step, any shape; device and dtype follow it.
        steps: number of time steps T.
        generator: torch generator on rates' device (for reproducibility).
    Returns:
        Tensor (T, *rates.shape) of 0/1 in rates' dtype.
    """
    p = rates.clamp(0.0, 1.0)
    u = torch.rand((steps, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)
