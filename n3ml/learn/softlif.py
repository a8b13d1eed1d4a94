"""Soft LIF: train an ANN with a smoothed LIF rate, run it with spiking LIF neurons
(Hunsberger & Eliasmith 2015, "Spiking deep networks with LIF neurons", arXiv:1510.08829).

A LIF neuron (``tau_rc dv/dt = -v + j``, threshold 1, reset to 0, refractory
period ``tau_ref``) driven by a constant current j fires at the rate

    r(j) = 1 / (tau_ref + tau_rc log(1 + 1 / (j - 1)))   for j > 1, else 0.

Its derivative is unbounded at j = 1, so the ANN is trained with the soft LIF rate,
where ``(j - 1)_+`` is replaced by the softplus ``rho(x) = gamma log(1 + exp(x / gamma))``:

    r_soft(j) = 1 / (tau_ref + tau_rc log(1 + 1 / rho(j - 1)))

(smooth, and r_soft -> r as gamma -> 0). Rates are in spikes per ms (times in ms)
and multiplied by `amplitude` so that activations are O(1).

Conversion (`to_graph`): every SoftLIF becomes an IR `LIF` with ``tau = tau_rc``,
``r = 1`` (so ``v <- a v + (1 - a) j``, the exact solution for a current held over
the step), threshold 1, reset to 0 and ``round(tau_ref / dt)`` refractory steps. A
spike is one event per step, so a synapse that reads spikes gets the weight
``W * amplitude / dt`` (its time average is then ``W * amplitude * r``, the ANN's
input). The first layer receives the analog input as a constant current, the last
Dense layer's output is averaged over time as the logits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import N3mlError, UnsupportedError

__all__ = ["SoftLIF", "lif_rate", "soft_lif_rate", "DigitsCNN", "MNISTCNN", "to_graph"]


def lif_rate(j: torch.Tensor, tau_rc: float = 20.0, tau_ref: float = 2.0) -> torch.Tensor:
    """Exact LIF rate (spikes / ms) for constant current j (threshold 1)."""
    jm = (j - 1.0).clamp(min=0.0)
    safe = torch.where(jm > 0, jm, torch.ones_like(jm))
    r = 1.0 / (tau_ref + tau_rc * torch.log1p(1.0 / safe))
    return torch.where(jm > 0, r, torch.zeros_like(r))


def soft_lif_rate(j: torch.Tensor, tau_rc: float = 20.0, tau_ref: float = 2.0, gamma: float = 0.02) -> torch.Tensor:
    """Soft LIF rate (spikes / ms): ``(j - 1)_+`` replaced by ``gamma softplus((j - 1) / gamma)``."""
    rho = gamma * nn.functional.softplus((j - 1.0) / gamma)
    # log(1 + 1/rho) = log1p(rho) - log(rho): no 1/rho**2 in the gradient, which overflows
    # float32 far below threshold; there softplus underflows and the clamp gives rate ~0
    rho = rho.clamp(min=1e-30)
    return 1.0 / (tau_ref + tau_rc * (torch.log1p(rho) - torch.log(rho)))


class SoftLIF(nn.Module):
    """Activation ``amplitude * r_soft(j)`` (training) or ``amplitude * r(j)`` (``hard=True``).

    Args:
        tau_rc: membrane time constant, ms.
        tau_ref: refractory period, ms.
        gamma: softplus smoothing (0 < gamma; the paper uses ~0.02 in units of the threshold).
        amplitude: output scale (ms per spike); 1 / max rate keeps activations <= 1.
        noise: standard deviation of Gaussian noise added to the output while training
            (``self.training``), in output units: the paper trains with noise so that the
            network tolerates the variability of spike-based rate estimates. 0: none.
    """

    def __init__(self, tau_rc: float = 20.0, tau_ref: float = 2.0, gamma: float = 0.02, amplitude: float = 2.0,
                 noise: float = 0.0):
        super().__init__()
        if tau_rc <= 0 or tau_ref < 0 or gamma <= 0 or amplitude <= 0 or noise < 0:
            raise N3mlError(f"SoftLIF needs tau_rc > 0, tau_ref >= 0, gamma > 0, amplitude > 0, noise >= 0; found "
                            f"{tau_rc}, {tau_ref}, {gamma}, {amplitude}, {noise}")
        self.tau_rc, self.tau_ref, self.gamma, self.amplitude = tau_rc, tau_ref, gamma, amplitude
        self.noise = noise
        self.hard = False

    def forward(self, j: torch.Tensor) -> torch.Tensor:
        if self.hard:
            return self.amplitude * lif_rate(j, self.tau_rc, self.tau_ref)
        r = self.amplitude * soft_lif_rate(j, self.tau_rc, self.tau_ref, self.gamma)
        if self.training and self.noise > 0:
            r = r + self.noise * torch.randn_like(r)
        return r

    def extra_repr(self) -> str:
        return (f"tau_rc={self.tau_rc}, tau_ref={self.tau_ref}, gamma={self.gamma}, amplitude={self.amplitude}, "
                f"noise={self.noise}")


class DigitsCNN(nn.Sequential):
    """Conv(1->c1, 3x3) SoftLIF AvgPool2 Conv(c1->c2, 3x3) SoftLIF AvgPool2 Flatten Linear(->10), for 8x8 digits."""

    def __init__(self, c1: int = 16, c2: int = 32, n_out: int = 10, **soft):
        super().__init__(
            nn.Conv2d(1, c1, 3, padding=1), SoftLIF(**soft), nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), SoftLIF(**soft), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(c2 * 2 * 2, n_out))
        # start every neuron at its threshold (j = 1), where the rate curve is steep: with
        # torch's default biases most start far below it, silent and without gradient
        for m in self:
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.bias, 1.0)


class MNISTCNN(nn.Sequential):
    """Conv(1->c1, 5x5) SoftLIF AvgPool2 Conv(c1->c2, 3x3) SoftLIF AvgPool2 Flatten Linear(->10), for 28x28 MNIST.

    A LeNet-sized network: every layer converts with `to_graph`, and its spiking run over
    1,000 test images fits the examples' CPU budget.
    """

    def __init__(self, c1: int = 16, c2: int = 32, n_out: int = 10, **soft):
        super().__init__(
            nn.Conv2d(1, c1, 5, padding=2), SoftLIF(**soft), nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), SoftLIF(**soft), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(c2 * 7 * 7, n_out))
        # neurons start at threshold (as in DigitsCNN), and He-initialised weights give the
        # currents a spread around it: with torch's default (smaller) weights on 28x28 inputs
        # every neuron sits near j = 1, the features barely differ, and training stalls at chance
        # for epochs (measured: 10 % after 2 epochs on 1,000 images; 80 % with He init)
        for m in self:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.bias, 1.0)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def to_graph(model: nn.Sequential, input_shape: tuple[int, ...], *, dt: float = 0.5, name: str = "softlif",
             tau_syn: float | None = None):
    """The spiking version of a Sequential of Conv2d / Linear / AvgPool2d / Flatten / SoftLIF.

    Input `x` (analog, the ANN's input, held every step); Output `out`: the last
    layer's output at every step (average it over time for the logits).

    tau_syn (ms): a first-order synapse in front of every neuron, as in the paper's spiking
    runs (a low-pass of ~5 ms on every connection): each SoftLIF becomes a `CubaLIF` whose
    current ``i <- a_s i + I`` enters with ``r = 1 - a_s``, so a constant input reaches the
    same steady state (and rate) as without it while spike trains are smoothed. None: `LIF`.

    Raises:
        UnsupportedError: a layer other than those listed, or a SoftLIF followed by
            no synapse (its spikes would leave the network unweighted).
    """
    from ..ir import LIF, AvgPool2d, Conv2d, CubaLIF, Dense, Flatten, Graph, Input, Output
    from ..ir.neurons import decay

    if tau_syn is not None and not tau_syn > 0:
        raise N3mlError(f"to_graph: tau_syn must be > 0 ms (or None), found {tau_syn}")

    g = Graph(name=name, dt=dt, scheme="exact")
    g.add("x", Input(shape=tuple(input_shape), kind="analog"))
    prev, scale = "x", 1.0  # scale: factor the next synapse's weights need (1 on analog input)
    for k, layer in enumerate(model):
        n = f"{type(layer).__name__.lower()}{k}"
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                raise UnsupportedError(f"layer {k} (Conv2d): only numeric zero padding converts")
            w = layer.weight.detach().cpu().double().numpy() * scale
            b = None if layer.bias is None else layer.bias.detach().cpu().double().numpy()
            g.add(n, Conv2d(weight=w, bias=b, stride=_pair(layer.stride), padding=_pair(layer.padding),
                            dilation=_pair(layer.dilation), groups=layer.groups), prev)
            scale = 1.0
        elif isinstance(layer, nn.Linear):
            w = layer.weight.detach().cpu().double().numpy() * scale
            b = None if layer.bias is None else layer.bias.detach().cpu().double().numpy()
            g.add(n, Dense(weight=np.ascontiguousarray(w), bias=b), prev)
            scale = 1.0
        elif isinstance(layer, nn.AvgPool2d):
            if layer.ceil_mode or not layer.count_include_pad and layer.padding:
                raise UnsupportedError(f"layer {k} (AvgPool2d): ceil_mode / count_include_pad=False do not convert")
            g.add(n, AvgPool2d(kernel=_pair(layer.kernel_size), stride=_pair(layer.stride or layer.kernel_size),
                               padding=_pair(layer.padding)), prev)
        elif isinstance(layer, nn.Flatten):
            g.add(n, Flatten(), prev)
        elif isinstance(layer, SoftLIF):
            refr = int(round(layer.tau_ref / dt))
            if not math.isclose(refr * dt, layer.tau_ref, rel_tol=1e-9, abs_tol=1e-12):
                raise UnsupportedError(f"layer {k} (SoftLIF): tau_ref = {layer.tau_ref} ms is not a whole number "
                                       f"of steps of dt = {dt} ms")
            if tau_syn is None:
                neuron = LIF(tau=float(layer.tau_rc), r=1.0, theta=1.0, reset="to-value", v_reset=0.0,
                             refractory=refr)
            else:
                neuron = CubaLIF(tau_syn=float(tau_syn), tau_mem=float(layer.tau_rc),
                                 r=float(1.0 - decay(tau_syn, dt, "exact")), theta=1.0, reset="to-value",
                                 v_reset=0.0, refractory=refr)
            g.add(n, neuron, prev)
            scale = layer.amplitude / dt
        else:
            raise UnsupportedError(f"layer {k} ({type(layer).__name__}) has no spiking equivalent here; "
                                   "supported: Conv2d, Linear, AvgPool2d, Flatten, SoftLIF")
        prev = n
    if scale != 1.0:
        raise UnsupportedError("the model ends in a SoftLIF; end it with a Linear or Conv2d readout")
    g.add("out", Output(), prev)
    g.verify()
    return g
