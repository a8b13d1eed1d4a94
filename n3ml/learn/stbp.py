"""STBP: spatio-temporal backpropagation (Wu, Deng, Li, Zhu & Shi 2018, Front. Neurosci. 12:331).

Iterative LIF model of the paper (eq. 4-5), per layer n and step t:

    u^n_t = k_tau u^n_{t-1} (1 - o^n_{t-1}) + W^n o^{n-1}_t + b^n
    o^n_t = H(u^n_t - V_th)

which is the IR's LIF with ``a = exp(-dt / tau) = k_tau``, unscaled input
(``r = 1 / g``) and reset to 0 (docs/semantics.md §5). The loss is the mean squared
error between the output firing rates ``(1/T) sum_t o^N_t`` and the one-hot label
(eq. 9). Gradients flow through space (layers) and time (the u_{t-1} term and,
as in the paper, the reset factor ``1 - o``); the derivative of the step H is
replaced by the rectangular surrogate (eq. 14, the paper's h1)

    dH/du ~= (1 / a) [ |u - V_th| < a / 2 ]

which is `n3ml.nn.spike_fn("rectangle", slope=1 / a)`. The neurons are
`n3ml.nn.LIF` modules, so the trained network converts to the IR with `to_graph`.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from ..errors import N3mlError
from ..nn import LIF, TimeDistributed, repeat_time

__all__ = ["STBPNet", "STBPConvNet", "rate_mse", "bernoulli"]


def rate_mse(rates: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's loss: mean squared error between output rates (B, C) and one-hot labels."""
    target = nn.functional.one_hot(labels, rates.shape[-1]).to(rates.dtype)
    return ((rates - target) ** 2).sum(dim=-1).mean()


class STBPNet(nn.Module):
    """A fully connected spiking network trained with STBP.

    Input: analog values (B, n_in), presented as a constant current for `steps` steps
    (the paper's first layer also receives intensities directly). Output: spikes
    (T, B, n_out); class = highest rate.

    Args:
        sizes: [n_in, hidden..., n_out].
        steps: time window T.
        k_tau: per-step membrane decay (0 < k_tau < 1).
        v_th: threshold.
        a: width of the rectangular surrogate.
    """

    def __init__(self, sizes: list[int], *, steps: int = 8, k_tau: float = 0.5, v_th: float = 0.5,
                 a: float = 1.0):
        super().__init__()
        if len(sizes) < 2 or min(sizes) < 1:
            raise N3mlError(f"STBPNet needs sizes [n_in, ..., n_out] >= 1, found {sizes}")
        if not 0.0 < k_tau < 1.0 or v_th <= 0 or a <= 0 or steps < 1:
            raise N3mlError(f"STBPNet needs 0 < k_tau < 1, v_th > 0, a > 0, steps >= 1; found "
                            f"k_tau={k_tau} v_th={v_th} a={a} steps={steps}")
        self.sizes, self.steps = list(sizes), steps
        tau = -1.0 / math.log(k_tau)  # ms, with dt = 1 ms
        r = 1.0 / (1.0 - k_tau)  # r g = 1: the input is added unscaled
        self.fcs = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.lifs = nn.ModuleList(
            LIF(tau=tau, r=r, theta=v_th, reset="to-value", v_reset=0.0, dt=1.0, scheme="exact",
                surrogate="rectangle", slope=1.0 / a, detach_reset=False) for _ in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_in) analog inputs -> (T, B, n_out) output spikes."""
        h = repeat_time(x, self.steps)
        for fc, lif in zip(self.fcs, self.lifs):
            h = lif(fc(h))
        return h

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).mean(dim=0)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.rates(x).argmax(dim=-1)

    def to_graph(self, *, name: str = "stbp"):
        """IR graph: analog Input `x` -> (Dense -> LIF)* -> Output `out` (spikes)."""
        from ..ir import Dense, Graph, Input, Output

        g = Graph(name=name, dt=1.0, scheme="exact")
        g.add("x", Input(shape=(self.sizes[0],), kind="analog"))
        prev = "x"
        for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs), start=1):
            g.add(f"fc{k}", Dense(weight=fc.weight.detach().cpu().double().numpy(),
                                  bias=fc.bias.detach().cpu().double().numpy()), prev)
            g.add(f"lif{k}", lif.to_ir(), f"fc{k}")
            prev = f"lif{k}"
        g.add("out", Output(), prev)
        g.verify()
        return g


def bernoulli(x: torch.Tensor, steps: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's input coding: every step, each pixel spikes with probability equal to its intensity.

    (B, ...) intensities in [0, 1] -> (T, B, ...) spikes, on x's device and dtype.
    """
    u = torch.rand((steps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < x.clamp(0.0, 1.0)).to(x.dtype)


def _parse_layer(spec: str) -> tuple[str, int, int]:
    """'32C3' -> ("conv", 32, 3); 'AP2' -> ("pool", 0, 2); '128' -> ("fc", 128, 0)."""
    s = spec.strip().upper()
    if s.startswith("AP") and s[2:].isdigit():
        return "pool", 0, int(s[2:])
    if "C" in s:
        c, k = s.split("C", 1)
        if c.isdigit() and k.isdigit():
            return "conv", int(c), int(k)
    if s.isdigit():
        return "fc", int(s), 0
    raise N3mlError(f"STBPConvNet: cannot read layer {spec!r}; expected NC<k> (conv), AP<k> (average pool) "
                    "or N (fully connected), e.g. '32C3-AP2-32C3-AP2-128-10'")


class STBPConvNet(nn.Sequential):
    """A convolutional spiking network of the paper's iterative LIF neurons, trained with STBP.

    Built from a layer string in the paper's notation (after the input size), e.g. Wu et al.'s
    MNIST network ``"32C3-AP2-32C3-AP2-128-10"``: NC<k> is a k x k convolution with N maps
    (zero padding k // 2, so the map keeps its size), AP<k> a k x k average pool, N a fully
    connected layer. Every convolution and fully connected layer is followed by LIF neurons
    (same neuron as `STBPNet`); pooling acts on spikes. Input: spikes (T, B, C, H, W)
    (see `bernoulli`); output: spikes (T, B, n_out). Modules are n3ml.nn layers, so the
    network converts with the torch frontend (`to_graph`).

    Args:
        layers: the layer string.
        input_shape: (C, H, W).
        k_tau, v_th, a: as in `STBPNet`.
    """

    def __init__(self, layers: str, input_shape: tuple[int, int, int] = (1, 28, 28), *, k_tau: float = 0.2,
                 v_th: float = 0.5, a: float = 1.0):
        if not 0.0 < k_tau < 1.0 or v_th <= 0 or a <= 0:
            raise N3mlError(f"STBPConvNet needs 0 < k_tau < 1, v_th > 0, a > 0; found k_tau={k_tau} v_th={v_th} a={a}")
        tau, r = -1.0 / math.log(k_tau), 1.0 / (1.0 - k_tau)

        def lif() -> LIF:
            return LIF(tau=tau, r=r, theta=v_th, reset="to-value", v_reset=0.0, dt=1.0, scheme="exact",
                       surrogate="rectangle", slope=1.0 / a, detach_reset=False)

        c, h, w = input_shape
        mods: list[tuple[str, nn.Module]] = []
        flat, k_syn = False, 0
        for spec in layers.split("-"):
            kind, n, k = _parse_layer(spec)
            if kind == "conv":
                if flat:
                    raise N3mlError(f"STBPConvNet: convolution {spec!r} after a fully connected layer")
                k_syn += 1
                mods += [(f"conv{k_syn}", TimeDistributed(nn.Conv2d(c, n, k, padding=k // 2))), (f"lif{k_syn}", lif())]
                c = n
            elif kind == "pool":
                if flat or h % k or w % k:
                    raise N3mlError(f"STBPConvNet: pool {spec!r} needs a {h}x{w} map divisible by {k}")
                mods.append((f"pool{k_syn}", TimeDistributed(nn.AvgPool2d(k))))
                h, w = h // k, w // k
            else:
                if not flat:
                    mods.append(("flatten", TimeDistributed(nn.Flatten())))
                    c, flat = c * h * w, True
                k_syn += 1
                mods += [(f"fc{k_syn}", nn.Linear(c, n)), (f"lif{k_syn}", lif())]
                c = n
        if not flat:
            raise N3mlError(f"STBPConvNet: {layers!r} must end with a fully connected layer")
        super().__init__(OrderedDict(mods))
        self.layers, self.input_shape, self.n_out = layers, tuple(input_shape), c

    @torch.no_grad()
    def predict(self, spikes: torch.Tensor) -> torch.Tensor:
        """(T, B, C, H, W) input spikes -> class with the highest output rate."""
        return self(spikes).mean(dim=0).argmax(dim=-1)

    def to_graph(self, *, name: str = "stbp_cnn"):
        """IR graph through the torch frontend: spike Input `x` -> (Conv2d -> LIF -> AvgPool2d)* -> ... -> `out`."""
        from ..frontends.torch.trace import trace

        return trace(self, self.input_shape, input_kind="spike", name=name)
