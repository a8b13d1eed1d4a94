"""Spiking building blocks for PyTorch with the exact semantics of docs/semantics.md.

Modules take sequences (T, B, ...) and mix with ordinary torch layers; their dynamics are the
pure step functions of `n3ml.nn.functional`; `to_ir()` gives each module's IR primitive.
"""

from . import functional
from .modules import (ALIF, IF, LI, LIF, ConstantCurrent, CubaLIF, EncoderModule, Integrator, Latency,
                      NeuronModule, PoissonRate, Recurrent, SynapseFilter, TimeDistributed, repeat_time)
from .surrogate import DEFAULT_SLOPES, SURROGATES, heaviside, spike_fn

__all__ = ["IF", "LIF", "CubaLIF", "ALIF", "LI", "Integrator", "SynapseFilter", "PoissonRate", "ConstantCurrent",
           "Latency", "Recurrent", "TimeDistributed", "repeat_time", "NeuronModule", "EncoderModule", "functional",
           "SURROGATES", "DEFAULT_SLOPES", "heaviside", "spike_fn"]
