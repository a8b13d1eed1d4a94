"""What a fixed-point target holds: its limits as data, in one place.

Read by the quantize pass (which fits a float graph into a profile) and by the Lava target (which
checks a fixed-point graph against Loihi 2 and writes its registers). Nothing else spells out
Loihi's bit widths, shifts or ranges. All limits are inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Profile", "PROFILES", "LOIHI2"]


@dataclass(frozen=True, kw_only=True)
class Profile:
    """A fixed-point target: weight storage, neuron registers and what its neurons can do."""

    name: str
    weight_bits: int = 8  # mantissa bits of a weight, sign included for mixed-sign layers
    mixed_sign_loses_bit: bool = True  # True: one-signed layers get an unsigned mantissa (0..255)
    weight_exp_max: int = 7  # shared per-layer exponent s in 0..weight_exp_max (W = m << s)
    decay_bits: int = 12  # decays du, dv are in units of 2^-decay_bits
    state_bits: int = 24  # current and voltage registers
    input_shift: int = 6  # synaptic input enters the current as I << input_shift
    theta_shift: int = 6  # theta = vth << theta_shift
    vth_max: int = 2**17 - 1  # threshold mantissa
    bias_mant_bits: int | None = 13  # signed mantissa of the neuron bias (None: any integer)
    bias_exp_max: int = 7
    du_min: int = 1  # smallest du (Lava's du register is du - 1 >= 0)
    dv_max: int = 2**12 - 1  # largest dv (Lava's dv register is 12 bits)
    resets: tuple[str, ...] = ("to-value",)
    v_reset_zero: bool = True  # to-value resets must go to 0
    refractory: bool = False  # whether its neurons can hold a refractory period (FixedCubaLIF.refractory)
    adaptation: bool = False  # whether its neurons can adapt their threshold (FixedCubaLIF.db, q)
    synapse_filter: bool = False  # whether it has a graded synapse filter (FixedSynapseFilter: a current that
    # decays only on steps without an input spike and sends its value to the synapses after it)
    current_overflow: str = "wrap"
    voltage_overflow: str = "saturate"
    headroom: float = 1.0  # fraction of the state range the worst-case current may use

    @property
    def one(self) -> int:
        """The decay unit 2^decay_bits (du = one forgets everything in one step)."""
        return 1 << self.decay_bits

    @property
    def state_max(self) -> int:
        """Largest value of a state register, 2^(state_bits - 1) - 1."""
        return (1 << (self.state_bits - 1)) - 1

    @property
    def bias_mant_max(self) -> int | None:
        """Largest |bias mantissa| (None: unbounded)."""
        return None if self.bias_mant_bits is None else (1 << (self.bias_mant_bits - 1)) - 1

    def neuron_fields(self) -> dict[str, object]:
        """The FixedCubaLIF fields this profile fixes."""
        return {"decay_bits": self.decay_bits, "state_bits": self.state_bits, "input_shift": self.input_shift,
                "current_overflow": self.current_overflow, "voltage_overflow": self.voltage_overflow}

    def mantissa_range(self, w: np.ndarray) -> tuple[int, int, str]:
        """(lo, hi, sign) of the weight mantissas of a layer with weights `w`: "excitatory",
        "inhibitory" or "mixed" (a mixed-sign layer loses one bit where `mixed_sign_loses_bit`)."""
        top = 1 << (self.weight_bits - 1)
        sign = "mixed" if (w.min() < 0 < w.max()) else ("inhibitory" if w.max() <= 0 else "excitatory")
        if not self.mixed_sign_loses_bit:
            return -(top - 1), top - 1, sign
        if w.min() >= 0:
            return 0, 2 * top - 1, "excitatory"
        if w.max() <= 0:
            return -(2 * top - 1), 0, "inhibitory"
        return -top, top - 1, "mixed"


PROFILES: dict[str, Profile] = {
    # Loihi 2 as lava-nc 0.10 models it: lava/proc/lif/models.py PyLifModelBitAcc,
    # lava/proc/dense/models.py PyDenseModelBitAcc
    # + reset by subtraction or none, a refractory period (v held, no spike, for `refractory` steps after
    # a spike while the current keeps integrating) and an adaptive threshold (b' = trunc((2^12 - db) b / 2^12),
    # spike when v > theta + b', b = b' + q s), through n3ml's own N3mlLIF process: Lava simulates it in
    # fixed_pt bit for bit; on a Loihi 2 chip it needs a custom neuron microcode model (Lava 0.10's
    # bit-accurate LIF has none of them)
    # A synapse filter (SpikingJelly's SynapseFilter) runs in n3ml's N3mlSynapseFilter process, sending its current
    # as graded spikes (Loihi 2 has graded spikes; on a chip it needs a custom neuron microcode model too)
    "loihi2": Profile(name="loihi2", resets=("to-value", "subtract", "none"), refractory=True, adaptation=True,
                      synapse_filter=True),
    # generic: symmetric int8 weights without exponent, int32 state, every reset mode, refractoriness, adaptation,
    # graded synapse filters
    "int8": Profile(name="int8", weight_bits=8, mixed_sign_loses_bit=False, weight_exp_max=0, state_bits=32,
                    input_shift=6, theta_shift=0, vth_max=2**30, bias_mant_bits=None, du_min=0, dv_max=1 << 12,
                    resets=("to-value", "subtract", "none"), v_reset_zero=False, refractory=True, adaptation=True,
                    synapse_filter=True),
}
LOIHI2 = PROFILES["loihi2"]
