"""Spiking building blocks for PyTorch with the exact semantics of docs/semantics.md."""

from .surrogate import DEFAULT_SLOPES, SURROGATES, heaviside, spike_fn

__all__ = ["SURROGATES", "DEFAULT_SLOPES", "heaviside", "spike_fn"]
