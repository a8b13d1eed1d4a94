"""SpikeProp: error backpropagation on first-spike times (Bohte, Kok & La Poutre 2002).

Neurons follow the spike response model (SRM). Neuron j receives every
presynaptic neuron i through K synaptic terminals with delays d_k and weights
w_ijk; each presynaptic spike at t_i evokes the alpha-shaped response
``eps(s) = (s / tau) exp(1 - s / tau)`` for s > 0 (0 otherwise):

    u_j(t) = sum_i sum_k w_ijk eps(t - t_i - d_k)

and j fires once, at the first t_j with ``u_j(t_j) >= theta`` (SpikeProp uses
only the first spike). The loss is ``E = 1/2 sum_j (t_j - t_j^target)^2`` over
the output neurons. Linearising u around t_j (the paper's eq. 9-10) gives

    dt_j / dw_ijk = -eps(t_j - t_i - d_k) / (du_j/dt)(t_j)
    dt_j / dt_i   = -(du_j / dt_i)(t_j) / (du_j/dt)(t_j)

which the paper chains layer by layer (its deltas, eq. 12 and 17).
`SpikePropLayer` obtains exactly these derivatives from autograd through the
implicit-function identity ``t_j = stop(t_j) - (u_j(t_j) - theta) / stop(u_j'(t_j))``,
so any loss and optimiser can be used and several layers chain correctly. As in
the paper the slope ``u_j'(t_j)`` is bounded below (`min_slope`) to keep steps
finite near grazing threshold crossings.

Deviations from the paper, both documented in docs/learning.md: weights may be
negative (the paper fixes a sign per neuron), and a neuron that stays silent on
a sample whose loss needs it receives the gradient of ``theta - max_t u_j(t)``
(`silent_penalty`) so that it starts firing again; the paper has no remedy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import N3mlError
from ..ir.neurons import gain

__all__ = ["srm_kernel", "SpikePropLayer", "SpikePropNet", "spike_time_loss", "SpikePropResult", "fit",
           "class_targets", "spike_trains", "first_spike_times", "grid_spike_times"]


def srm_kernel(s: torch.Tensor, tau: float) -> torch.Tensor:
    """eps(s) = (s / tau) exp(1 - s / tau) for s > 0, else 0 (peak 1 at s = tau)."""
    pos = s > 0
    z = torch.where(pos, s, torch.zeros_like(s)) / tau
    return torch.where(pos, z * torch.exp(1.0 - z), torch.zeros_like(s))


def _srm_slope(s: torch.Tensor, tau: float) -> torch.Tensor:
    """d eps / ds = (1 / tau) exp(1 - s / tau) (1 - s / tau) for s > 0."""
    pos = s > 0
    z = torch.where(pos, s, torch.zeros_like(s)) / tau
    return torch.where(pos, torch.exp(1.0 - z) * (1.0 - z) / tau, torch.zeros_like(s))


class SpikePropLayer(nn.Module):
    """A layer of SRM neurons with `len(delays)` delayed terminals per connection.

    Args:
        n_in, n_out: neurons before and in this layer.
        delays: terminal delays d_k, ms (the paper: 1..16 ms).
        tau: time constant of eps, ms.
        theta: firing threshold.
        t_max: end of the simulated window, ms (neurons not firing before it are silent).
        dt: grid on which the first crossing is searched; the crossing is then refined
            by linear interpolation and one Newton step on the exact u.
        min_slope: lower bound of du/dt at the crossing (gradient stabiliser).
        init_scale: weights start uniform in [0, init_scale] (0: derive from fan-in).
        generator: torch generator for the weight initialisation.
    """

    def __init__(self, n_in: int, n_out: int, *, delays=tuple(range(1, 17)), tau: float = 7.0,
                 theta: float = 1.0, t_max: float = 30.0, dt: float = 0.1, min_slope: float = 0.1,
                 init_scale: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        if n_in < 1 or n_out < 1:
            raise N3mlError(f"SpikePropLayer needs n_in, n_out >= 1, found {n_in}, {n_out}")
        if tau <= 0 or theta <= 0 or t_max <= 0 or dt <= 0:
            raise N3mlError("SpikePropLayer: tau, theta, t_max and dt must be > 0, found "
                            f"tau={tau} theta={theta} t_max={t_max} dt={dt}")
        self.n_in, self.n_out = n_in, n_out
        self.tau, self.theta, self.t_max, self.dt, self.min_slope = tau, theta, t_max, dt, min_slope
        self.register_buffer("delays", torch.as_tensor(delays, dtype=torch.float32))
        k = len(self.delays)
        if init_scale <= 0:
            # a third of the inputs active, each terminal at ~half its peak: mean u peak ~ 2 theta
            init_scale = 4.0 * theta / (max(1.0, n_in / 3.0) * k * 0.5)
        w = torch.rand((n_out, n_in, k), generator=generator) * init_scale
        self.weight = nn.Parameter(w)

    def potential(self, t: torch.Tensor, t_in: torch.Tensor) -> torch.Tensor:
        """u_j at times t (B, G) or (B, J) for inputs t_in (B, I): returns (B, G, J) or per-neuron (B, J)."""
        s = t[:, :, None, None] - t_in[:, None, :, None] - self.delays  # (B, G, I, K)
        e = srm_kernel(s, self.tau).flatten(2)
        return e @ self.weight.flatten(1).T  # (B, G, J)

    def forward(self, t_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First spike times of this layer.

        Args:
            t_in: (B, n_in) presynaptic spike times, ms; inf for silent neurons.
        Returns:
            (t_out, u_peak): (B, n_out) spike times (inf where silent) and the
            maximum potential reached in the window (for the silent-neuron penalty).
        """
        if t_in.ndim != 2 or t_in.shape[1] != self.n_in:
            raise N3mlError(f"SpikePropLayer expects spike times (B, {self.n_in}), found {tuple(t_in.shape)}")
        silent_in = ~torch.isfinite(t_in)
        far = self.t_max + float(self.delays.max()) + 10 * self.tau
        t_in = torch.where(silent_in, torch.full_like(t_in, far), t_in)  # eps(t - far) = 0 in the window
        b = t_in.shape[0]
        grid = torch.arange(0.0, self.t_max + self.dt / 2, self.dt, device=t_in.device, dtype=t_in.dtype)
        with torch.no_grad():
            u = self.potential(grid.expand(b, -1), t_in)  # (B, G, J)
            above = u >= self.theta
            fired = above.any(dim=1)
            first = torch.where(fired, above.float().argmax(dim=1), torch.zeros_like(fired, dtype=torch.long))
            prev = (first - 1).clamp(min=0)
            u1 = u.gather(1, first[:, None]).squeeze(1)
            u0 = u.gather(1, prev[:, None]).squeeze(1)
            frac = torch.where(u1 > u0, (self.theta - u0) / (u1 - u0), torch.ones_like(u1)).clamp(0, 1)
            t_star = torch.where(first > 0, grid[prev] + frac * self.dt, grid[first])
            g_peak = u.argmax(dim=1)  # (B, J) grid index of the peak
        # exact potential and slope at the crossing, per neuron: (B, J)
        s = t_star[:, :, None, None] - t_in[:, None, :, None] - self.delays  # (B, J, I, K)
        w = self.weight[None]  # (1, J, I, K)
        u_star = (srm_kernel(s, self.tau) * w).sum(dim=(2, 3))
        slope = (_srm_slope(s, self.tau) * w).sum(dim=(2, 3)).detach().clamp(min=self.min_slope)
        t_out = t_star.detach() - (u_star - self.theta) / slope
        t_out = torch.where(fired, t_out, torch.full_like(t_out, math.inf))
        sp = grid[g_peak][:, :, None, None] - t_in[:, None, :, None] - self.delays
        u_peak = (srm_kernel(sp, self.tau) * w).sum(dim=(2, 3))
        return t_out, u_peak


# resets `to_graph` can emit; every first spike is followed by a refractory period as long
# as the window, so both give the SRM's single spike
_GRAPH_RESETS = ("to-value", "none")


class SpikePropNet(nn.Module):
    """A feed-forward stack of `SpikePropLayer`s (sizes[0] inputs ... sizes[-1] outputs)."""

    def __init__(self, sizes: list[int], *, generator: torch.Generator | None = None, **layer_kw):
        super().__init__()
        if len(sizes) < 2:
            raise N3mlError(f"SpikePropNet needs at least [n_in, n_out], found {sizes}")
        self.layers = nn.ModuleList(SpikePropLayer(a, b, generator=generator, **layer_kw)
                                    for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, t_in: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns output spike times (B, n_out) and each layer's peak potentials."""
        peaks = []
        t = t_in
        for layer in self.layers:
            t, p = layer(t)
            peaks.append(p)
        return t, peaks

    def predict(self, t_in: torch.Tensor) -> torch.Tensor:
        """Class = the output neuron that fires first (ties: lowest index; all silent: 0)."""
        with torch.no_grad():
            t, _ = self(t_in)
        return t.argmin(dim=1)

    def to_graph(self, *, dt: float = 0.1, name: str = "spikeprop", reset: str = "to-value"):
        """The network as an IR graph sampling the SRM on a grid of step dt (ms).

        The alpha kernel is a `CubaLIF` with ``tau_syn = tau_mem = tau``: an input
        arriving at step m adds ``r g (n - m + 1) a^(n - m)`` to v at step n, which is
        ``eps((n - m + 1) dt)`` for ``r g = (dt / tau) e^(1 - dt / tau)``; so a terminal
        of delay d becomes ``Delay(d / dt + 1) -> Dense(W[:, :, k])``, the K terminals
        meet in an `Add`, and v equals u_j(t) at every grid point exactly. A refractory
        period of `window / dt` steps (window = the last layer's t_max) keeps each
        neuron to its first spike. Input `x`: spike trains (T, B, n_in), see
        `spike_trains`. Output `out`: the output layer's spikes. Spike times in the
        graph are those of the model rounded up to the grid (hidden spikes too, so
        output times may differ by a few steps).

        Args:
            dt: the grid step, ms; every delay must be a whole number of steps.
            reset: what v does after the spike, "to-value" (v_reset = 0, the default)
                or "none" (the SRM's literal form: u_j keeps summing its inputs).
                Both give the same spikes on runs of up to `window / dt + 1` steps: the
                refractory period holds the neuron from its first spike to past the
                end of the window, so the reset is never seen. NEST, PyNN and Lava
                have no neuron without a reset and refuse "none".
        Returns:
            the verified `Graph`.
        """
        from ..ir import Add, CubaLIF, Delay, Dense, Graph, Input, Output

        if reset not in _GRAPH_RESETS:
            raise N3mlError(f"SpikePropNet.to_graph: reset must be one of {_GRAPH_RESETS}, found {reset!r}")
        g = Graph(name=name, dt=dt, scheme="exact")
        g.add("x", Input(shape=(self.layers[0].n_in,), kind="spike"))
        refractory = int(math.ceil(self.layers[-1].t_max / dt))
        prev = "x"
        for n, layer in enumerate(self.layers, start=1):
            steps = [d / dt for d in layer.delays.tolist()]
            if any(abs(s - round(s)) > 1e-6 for s in steps):
                raise N3mlError(f"layer {n}: delays {layer.delays.tolist()} ms are not whole multiples of dt = {dt} ms")
            w = layer.weight.detach().cpu().double().numpy()
            terms = []
            for k, s in enumerate(steps):
                g.add(f"l{n}_d{k}", Delay(steps=int(round(s)) + 1), prev)
                terms.append(g.add(f"l{n}_w{k}", Dense(weight=np.ascontiguousarray(w[:, :, k])), f"l{n}_d{k}"))
            g.add(f"l{n}_sum", Add(), *terms)
            # the SRM kernel's peak-normalised input through the CubaLIF's own gain (n3ml.ir.neurons)
            r = (dt / layer.tau) * math.exp(1.0 - dt / layer.tau) / float(gain(float(layer.tau), dt, "exact"))
            prev = g.add(f"l{n}", CubaLIF(tau_syn=float(layer.tau), tau_mem=float(layer.tau), r=r,
                                          theta=float(layer.theta), reset=reset, v_reset=0.0,
                                          refractory=refractory),
                         f"l{n}_sum")
        g.add("out", Output(), prev)
        g.verify()
        return g


def spike_trains(t_in: torch.Tensor, dt: float, steps: int) -> np.ndarray:
    """Spike times (B, n) in ms (inf = silent) -> one spike per neuron on a grid: (steps, B, n) float64."""
    t = t_in.detach().cpu().double().numpy()
    idx = np.where(np.isfinite(t), np.round(t / dt), -1).astype(np.int64)
    if np.any(np.isfinite(t) & (np.abs(idx * dt - t) > 1e-6)):
        raise N3mlError(f"input spike times must lie on the grid of dt = {dt} ms")
    out = np.zeros((steps, *t.shape))
    b, j = np.nonzero((idx >= 0) & (idx < steps))
    out[idx[b, j], b, j] = 1.0
    return out


def grid_spike_times(net: SpikePropNet, t_in: torch.Tensor, dt: float) -> list[np.ndarray]:
    """The model's own first-spike times, layer by layer, on the grid of `net.to_graph(dt)`.

    Each layer runs the model's `forward` (in float64) on the previous layer's times as the
    graph has them, and its times are rounded up to the grid (a spike at step n is the
    first grid point at or after the crossing). Returns one (B, n_l) array per layer, ms,
    inf where silent: the spike times the graph must show.
    """
    out = []
    t = t_in.detach().double()
    with torch.no_grad():
        for layer in net.layers:
            t_exact, _ = copy.deepcopy(layer).double()(t)
            steps = torch.ceil(t_exact / dt - 1e-9)  # inf stays inf
            t = steps * dt
            out.append(t.cpu().numpy())
    return out


def first_spike_times(spikes: np.ndarray, dt: float) -> np.ndarray:
    """(T, B, n) spike trains -> time of each neuron's first spike (B, n), inf if none."""
    fired = spikes.any(axis=0)
    return np.where(fired, spikes.argmax(axis=0) * dt, np.inf)


def spike_time_loss(t_out: torch.Tensor, t_target: torch.Tensor, u_peak: torch.Tensor, theta: float,
                    silent_penalty: float = 1.0) -> torch.Tensor:
    """``1/2 sum_j (t_j - t_j^target)^2`` over firing outputs, mean over the batch, plus
    ``silent_penalty * (theta - u_peak_j)`` for outputs that stay silent."""
    fired = torch.isfinite(t_out)
    err = torch.where(fired, t_out - t_target, torch.zeros_like(t_out))
    dead = torch.where(fired, torch.zeros_like(u_peak), theta - u_peak)
    return (0.5 * (err**2).sum(dim=1) + silent_penalty * dead.sum(dim=1)).mean()


@dataclass
class SpikePropResult:
    losses: list[float]
    train_accuracy: list[float]


def _hidden_penalty(net: SpikePropNet, t_hidden_peaks: list[torch.Tensor], times: list[torch.Tensor]) -> torch.Tensor:
    total = 0.0
    for layer, peak, t in zip(net.layers[:-1], t_hidden_peaks[:-1], times):
        dead = ~torch.isfinite(t)
        total = total + torch.where(dead, layer.theta - peak, torch.zeros_like(peak)).mean()
    return total


def fit(net: SpikePropNet, t_in: torch.Tensor, t_target: torch.Tensor, labels: torch.Tensor, *, epochs: int,
        lr: float = 0.01, batch_size: int = 16, silent_penalty: float = 1.0,
        generator: torch.Generator | None = None, progress=None) -> SpikePropResult:
    """Train `net` by SpikeProp gradients with Adam on (input times, target output times).

    Args:
        t_in: (N, n_in) input spike times, ms (inf = silent).
        t_target: (N, n_out) desired output spike times, ms.
        labels: (N,) classes, for the reported training accuracy (first spike wins).
        progress: optional callable(epoch, loss, accuracy) called after every epoch.
    Returns:
        Per-epoch mean loss and training accuracy.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = len(t_in)
    out = SpikePropResult([], [])
    theta = net.layers[-1].theta
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=generator).to(t_in.device)
        total, correct = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            t = t_in[idx]
            hidden_times = []
            peaks = []
            for layer in net.layers:
                t, p = layer(t)
                hidden_times.append(t)
                peaks.append(p)
            loss = spike_time_loss(t, t_target[idx], peaks[-1], theta, silent_penalty)
            loss = loss + silent_penalty * _hidden_penalty(net, peaks, hidden_times)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((t.detach().argmin(dim=1) == labels[idx]).sum())
        out.losses.append(total / n)
        out.train_accuracy.append(correct / n)
        if progress is not None:
            progress(epoch, out.losses[-1], out.train_accuracy[-1])
    return out


def class_targets(labels: torch.Tensor, n_classes: int, t_true: float, t_false: float) -> torch.Tensor:
    """Target times: the labelled output fires at t_true, every other at t_false."""
    t = torch.full((len(labels), n_classes), t_false, dtype=torch.float32, device=labels.device)
    t[torch.arange(len(labels)), labels] = t_true
    return t

