"""Small ready-made spiking networks built from n3ml.nn (importable by `n3ml convert --model`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..ir import Graph
from ..ir import prims as P
from .modules import LI, LIF

__all__ = ["DigitsSNN"]


class DigitsSNN(nn.Module):
    """Linear(n_in -> hidden) + LIF + Linear(hidden -> n_out) + LI readout, for 8x8 digits.

    Input: analog currents (T, B, n_in) (direct encoding: the pixel values, repeated each
    step). Output: the readout voltages (T, B, n_out); the class is the argmax of their
    mean over time. Hidden neurons add their input unscaled (``r = 1 / g``, as snnTorch's
    ``beta`` form) and by default reset to ``v_reset = 0`` after a spike (the reset Lava's and
    Loihi 2's LIF implement, so the network converts to every target); the readout integrates
    with ``r = 1``.

    Args:
        n_in, hidden, n_out: layer sizes.
        tau: hidden membrane time constant (ms); tau_out: readout time constant (ms).
        theta: hidden threshold; dt: step (ms); scheme: "exact" or "euler".
        reset: the hidden layer's reset, "to-value" (v <- v_reset) or "subtract" (v <- v - theta);
        v_reset: the value "to-value" resets to.
        surrogate, slope: the hidden layer's surrogate gradient.
    """

    def __init__(self, n_in: int = 64, hidden: int = 128, n_out: int = 10, *, tau: float = 5.0,
                 tau_out: float = 10.0, theta: float = 1.0, dt: float = 1.0, scheme: str = "exact",
                 reset: str = "to-value", v_reset: float = 0.0, surrogate: str = "fast_sigmoid",
                 slope: float | None = None):
        super().__init__()
        r = float(1.0 / P.gain(tau, dt, scheme))
        self.fc1 = nn.Linear(n_in, hidden)
        self.lif1 = LIF(tau=tau, r=r, theta=theta, v_reset=v_reset, reset=reset, dt=dt, scheme=scheme,
                        surrogate=surrogate, slope=slope)
        self.fc2 = nn.Linear(hidden, n_out)
        self.readout = LI(tau=tau_out, dt=dt, scheme=scheme)
        self.dt, self.scheme = float(dt), scheme

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.fc2(self.lif1(self.fc1(x))))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class per sample: argmax over the time-averaged readout voltage."""
        return self(x).mean(0).argmax(-1)

    def to_graph(self, name: str = "digits_snn") -> Graph:
        """The network as an n3ml graph: Input `x` (analog) -> Dense -> LIF -> Dense -> LI -> Output `out`."""
        def dense(fc: nn.Linear) -> P.Dense:
            w = fc.weight.detach().cpu().double().numpy()
            b = fc.bias.detach().cpu().double().numpy() if fc.bias is not None else None
            return P.Dense(weight=np.ascontiguousarray(w), bias=b)

        g = Graph(name=name, dt=self.dt, scheme=self.scheme)
        g.add("x", P.Input(shape=(self.fc1.in_features,), kind="analog"))
        g.add("fc1", dense(self.fc1), "x")
        g.add("lif1", self.lif1.to_ir(), "fc1")
        g.add("fc2", dense(self.fc2), "lif1")
        g.add("readout", self.readout.to_ir(), "fc2")
        g.add("out", P.Output(), "readout")
        g.verify()
        return g
