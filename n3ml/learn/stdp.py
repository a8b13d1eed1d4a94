"""Unsupervised digit recognition with STDP (Diehl & Cook 2015, Front. Comput. Neurosci. 9:99).

Network: Poisson input (rate proportional to pixel intensity) -> all-to-all
plastic excitatory synapses W -> a layer of LIF neurons with adaptive thresholds
and lateral inhibition (every spike inhibits all other excitatory neurons in the
next step; Diehl & Cook route it through a one-to-one inhibitory population,
which is the same thing with one more hop). Per step of length dt (the IR's
`exact` LIF with unscaled input, docs/semantics.md §5):

    I_t   = W^T x_t - w_inh (sum_k s_{t-1,k} - s_{t-1,j})             (current)
    v_t   = v_rest + a (v_{t-1} - v_rest) + I_t,  a = exp(-dt / tau)   (unless refractory)
    s_t   = [v_t > theta_0 + theta_j]; reset to v_reset, `refractory` steps
    theta_j += theta_plus s_j        (training only; theta_j decays with tau_theta)

Learning is pair-based trace STDP with soft bounds (`TraceSTDP`): a post spike
potentiates every synapse by its presynaptic trace (pre before post), a pre
spike depresses by the postsynaptic trace (post before pre). After each sample
the weights into every neuron are rescaled to sum to `w_sum` (normalisation).
Each sample is shown for `steps` steps from a reset state; when the layer
answers with fewer than `min_spikes` spikes the sample is shown again with the
input rate raised by `boost` (as in the paper).

Classification: every neuron is labelled with the class it answered most
strongly on (average spike count) on the training set; a test sample gets the
class whose neurons fire most on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import N3mlError
from ..ir.neurons import decay

__all__ = ["TraceSTDP", "STDPState", "DiehlCook", "DiehlCookConfig", "mnist_config"]


class STDPState(NamedTuple):
    x_pre: torch.Tensor  # (B, n_pre) presynaptic traces
    x_post: torch.Tensor  # (B, n_post) postsynaptic traces


class TraceSTDP:
    """Pair-based STDP with exponential traces and soft weight bounds.

    Per step: traces decay, ``x_pre += s_pre``; then

        dW_ij = eta_post * x_pre_i * s_post_j * (w_max - W_ij)^mu     (LTP, pre before post)
              - eta_pre  * s_pre_i * x_post_j * W_ij^mu                (LTD, post before pre)

    and finally ``x_post += s_post``. A pre and a post spike in the same step count
    as pre before post (in the IR a spike reaches the neuron in the same step).
    Updates are summed over the batch.

    Args:
        eta_pre, eta_post: learning rates of depression and potentiation.
        tau_pre, tau_post: trace time constants, ms.
        w_max: upper weight bound (weights stay in [0, w_max]).
        mu: soft-bound exponent (0: additive, 1: multiplicative).
        dt: step, ms.
    """

    def __init__(self, *, eta_pre: float = 1e-4, eta_post: float = 1e-2, tau_pre: float = 20.0,
                 tau_post: float = 20.0, w_max: float = 1.0, mu: float = 1.0, dt: float = 1.0):
        if tau_pre <= 0 or tau_post <= 0 or dt <= 0 or w_max <= 0:
            raise N3mlError(f"TraceSTDP: tau_pre, tau_post, dt, w_max must be > 0, found "
                            f"{tau_pre}, {tau_post}, {dt}, {w_max}")
        self.eta_pre, self.eta_post, self.w_max, self.mu = eta_pre, eta_post, w_max, mu
        self.a_pre, self.a_post = math.exp(-dt / tau_pre), math.exp(-dt / tau_post)

    def init_state(self, batch: int, n_pre: int, n_post: int, like: torch.Tensor) -> STDPState:
        z = dict(device=like.device, dtype=like.dtype)
        return STDPState(torch.zeros(batch, n_pre, **z), torch.zeros(batch, n_post, **z))

    def step(self, w: torch.Tensor, pre: torch.Tensor, post: torch.Tensor, state: STDPState
             ) -> tuple[torch.Tensor, STDPState]:
        """One step. w: (n_pre, n_post); pre (B, n_pre), post (B, n_post) spikes. Returns new (w, state)."""
        x_pre = self.a_pre * state.x_pre + pre
        x_post = self.a_post * state.x_post
        dw = torch.zeros_like(w)
        if bool(post.any()):
            bound = (self.w_max - w).clamp(min=0) ** self.mu if self.mu != 1 else (self.w_max - w)
            dw = dw + self.eta_post * (x_pre.T @ post) * bound
        if bool(pre.any()) and bool(x_post.any()):
            bound = w.clamp(min=0) ** self.mu if self.mu != 1 else w
            dw = dw - self.eta_pre * (pre.T @ x_post) * bound
        w = (w + dw).clamp(0.0, self.w_max)
        return w, STDPState(x_pre, x_post + post)


@dataclass
class DiehlCookConfig:
    """Parameters (times in ms). Defaults are tuned for 8x8 digits, not the paper's 28x28 MNIST."""

    n_exc: int = 400
    steps: int = 100  # presentation length per sample
    dt: float = 1.0
    rate: float = 0.2  # spike probability per step of a pixel of intensity 1
    tau: float = 20.0  # membrane time constant
    v_rest: float = 0.0
    v_reset: float = 0.0
    theta0: float = 6.0  # base threshold above v_rest
    refractory: int = 5  # steps
    w_inh: float = 20.0  # lateral inhibition per spike (strong: nearly winner-take-all)
    theta_plus: float = 0.2
    tau_theta: float = 1e7  # as in the paper: thresholds practically never relax
    w_sum: float = 6.4  # sum of the weights into each neuron after normalisation
    w_max: float = 1.0
    eta_pre: float = 1e-4
    eta_post: float = 1e-2
    tau_pre: float = 20.0
    tau_post: float = 20.0
    min_spikes: int = 3
    boost: float = 0.1  # extra rate per repetition
    max_repeats: int = 4


def mnist_config(**overrides) -> DiehlCookConfig:
    """Diehl & Cook's MNIST parameters translated to this layer's units.

    Their Brian model (conductance synapses, v_rest = -65 mV, threshold -52 mV + theta,
    tau_m = 100 ms, tau_ge = 1 ms, 5 ms refractory, theta_plus = 0.05 mV, weights summing to
    78 per neuron, w_max = 1, inhibition weight 17 onto a -100 mV reversal with tau_gi = 2 ms)
    becomes: an input spike through weight w raises v by about w * 65 mV * tau_ge / tau_m =
    0.65 w mV, so with weights in their units the threshold gap 13 mV is theta0 = 20, theta_plus
    = 0.05 / 0.65, and one inhibitory spike lowers v by about 17 * 35 mV * 2 / 100 / 0.65 = 18.
    Input: Poisson at 63.75 Hz for a white pixel (probability 0.06375 per 1 ms step: their rate
    is pixel / 8 * input_intensity Hz with input_intensity = 2), 350 ms per image, shown again
    with input_intensity one higher (+31.875 Hz for a white pixel) while fewer than 5 spikes
    answer.

    theta_plus is the paper's per-spike increment; with far fewer presentations than the
    paper's 3 x 60,000 the thresholds do not grow as far (their growth is theta_plus times the
    number of spikes, and tau_theta = 1e7 ms hardly lets them decay), which is why the MNIST
    example scales it (examples/learning/stdp_mnist5k.py, docs/learning.md).
    """
    c = dict(n_exc=400, steps=350, dt=1.0, rate=0.06375, tau=100.0, theta0=20.0, refractory=5, w_inh=18.0,
             theta_plus=0.05 / 0.65, tau_theta=1e7, w_sum=78.0, w_max=1.0, eta_pre=1e-4, eta_post=1e-2,
             tau_pre=20.0, tau_post=20.0, min_spikes=5, boost=0.031875, max_repeats=4)
    c.update(overrides)
    return DiehlCookConfig(**c)


class DiehlCook:
    """The Diehl & Cook excitatory layer with its STDP and label assignment.

    The state lives in torch tensors on `device` (CPU or GPU); every method
    follows that device.
    """

    def __init__(self, n_in: int, config: DiehlCookConfig | None = None, *, seed: int = 0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.cfg = c = config or DiehlCookConfig()
        if n_in < 1 or c.n_exc < 1 or c.steps < 1:
            raise N3mlError(f"DiehlCook needs n_in, n_exc, steps >= 1, found {n_in}, {c.n_exc}, {c.steps}")
        self.n_in = n_in
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.weight = torch.rand((n_in, c.n_exc), generator=self.gen, device=device, dtype=dtype) * 0.3 * c.w_max
        self.normalize()
        self.theta = torch.zeros(c.n_exc, device=device, dtype=dtype)  # adaptive part
        self.rule = TraceSTDP(eta_pre=c.eta_pre, eta_post=c.eta_post, tau_pre=c.tau_pre, tau_post=c.tau_post,
                              w_max=c.w_max, dt=c.dt)
        self.labels: torch.Tensor | None = None
        self.decay = float(decay(c.tau, c.dt, "exact"))  # the IR LIF's own factor (n3ml.ir.neurons)

    # ------------------------------------------------------------ dynamics
    def normalize(self) -> None:
        """Rescale the weights into every neuron to sum to w_sum."""
        s = self.weight.sum(dim=0, keepdim=True).clamp(min=1e-12)
        self.weight = (self.weight * (self.cfg.w_sum / s)).clamp(max=self.cfg.w_max)

    def run(self, spikes: torch.Tensor, *, learn: bool = False) -> torch.Tensor:
        """Simulate (T, B, n_in) input spikes from a reset state; return (T, B, n_exc) spikes.

        With learn=True (B must be 1) STDP and threshold adaptation are applied online.
        """
        c = self.cfg
        T, B, n = spikes.shape
        if n != self.n_in:
            raise N3mlError(f"DiehlCook expects {self.n_in} inputs per step, found {n}")
        if learn and B != 1:
            raise N3mlError(f"online STDP learning runs one sample at a time, found batch {B}")
        if learn:
            return self._run_learning(spikes)
        w = self.weight.to(spikes.dtype)
        theta = self.theta.to(spikes.dtype)
        v = torch.full((B, c.n_exc), c.v_rest, device=spikes.device, dtype=spikes.dtype)
        cnt = torch.zeros((B, c.n_exc), device=spikes.device, dtype=torch.long)
        s = torch.zeros_like(v)
        out = torch.empty((T, B, c.n_exc), device=spikes.device, dtype=spikes.dtype)
        for t in range(T):
            x = spikes[t]
            inh = c.w_inh * (s.sum(dim=1, keepdim=True) - s)
            i_t = x @ w - inh
            cand = c.v_rest + self.decay * (v - c.v_rest) + i_t
            refr = cnt > 0
            v = torch.where(refr, v, cand)
            s = ((v > c.v_rest + c.theta0 + theta) & ~refr).to(v.dtype)
            v = torch.where(s > 0, torch.full_like(v, c.v_reset), v)
            cnt = torch.where(s > 0, torch.full_like(cnt, c.refractory), (cnt - 1).clamp(min=0))
            out[t] = s
        return out

    def _run_learning(self, spikes: torch.Tensor) -> torch.Tensor:
        """`run(learn=True)` for one sample, touching only the synapses of the inputs that spike.

        The same arithmetic as `TraceSTDP.step` on the dense matrices (the test compares them):
        both updates are computed from the weights before the step, LTD on the rows of the
        inputs that spike, LTP on the columns of the neurons that fire. With sparse Poisson
        input (a few of 784 pixels per step) this is what makes the paper's 350 ms
        presentations affordable. One sample is a strictly sequential loop of small
        vector operations, so it runs in numpy on the CPU (a torch call costs ~10x a numpy
        call at this size; measured: 270 vs 45 us per step for 784 x 400); the weights and
        thresholds go back to their device at the end.
        """
        c, rule = self.cfg, self.rule
        T, _, n = spikes.shape
        w = self.weight.detach().to("cpu", spikes.dtype).numpy().copy()
        theta = self.theta.detach().to("cpu", spikes.dtype).numpy().copy()
        ftype = w.dtype.type
        v = np.full(c.n_exc, c.v_rest, dtype=w.dtype)
        cnt = np.zeros(c.n_exc, dtype=np.int64)
        x_pre = np.zeros(n, dtype=w.dtype)
        x_post = np.zeros(c.n_exc, dtype=w.dtype)
        out = np.zeros((T, c.n_exc), dtype=w.dtype)
        a_theta = ftype(math.exp(-c.dt / c.tau_theta))
        a_pre, a_post, decay_ = ftype(rule.a_pre), ftype(rule.a_post), ftype(self.decay)
        eta_pre, eta_post, w_max = ftype(rule.eta_pre), ftype(rule.eta_post), ftype(rule.w_max)
        v_rest, thr = ftype(c.v_rest), ftype(c.v_rest + c.theta0)
        w_inh, theta_plus = ftype(c.w_inh), ftype(c.theta_plus)
        nz = spikes[:, 0].nonzero().cpu().numpy()
        active = np.split(nz[:, 1], np.cumsum(np.bincount(nz[:, 0], minlength=T))[:-1])
        fired = np.zeros(0, dtype=np.int64)  # the neurons that fired in the previous step
        posted = False  # x_post is 0 until the first output spike
        for t in range(T):
            idx = active[t]
            i_t = w[idx].sum(0) if len(idx) else np.zeros(c.n_exc, dtype=w.dtype)
            if len(fired):  # inhibition from every other neuron that fired one step earlier
                i_t -= w_inh * ftype(len(fired))
                i_t[fired] += w_inh
            cand = v_rest + decay_ * (v - v_rest) + i_t
            refr = cnt > 0
            v = np.where(refr, v, cand)
            fired = np.flatnonzero((v > thr + theta) & ~refr)
            np.subtract(cnt, 1, out=cnt, where=refr)
            if len(fired):
                v[fired] = c.v_reset
                cnt[fired] = c.refractory
                out[t, fired] = 1.0
            # STDP (TraceSTDP.step): pre traces include this step's input, post traces not yet its spikes
            x_pre *= a_pre
            if len(idx):
                x_pre[idx] += 1.0
            x_post *= a_post
            ltd = None
            if len(idx) and posted:
                rows = w[idx]
                ltd = eta_pre * x_post[None, :] * (np.clip(rows, 0, None) ** rule.mu if rule.mu != 1 else rows)
            if len(fired):
                cols = w[:, fired]
                bound = np.clip(w_max - cols, 0, None) ** rule.mu if rule.mu != 1 else w_max - cols
                w[:, fired] = np.clip(cols + eta_post * x_pre[:, None] * bound, 0.0, w_max)
            if ltd is not None:
                w[idx] = np.clip(w[idx] - ltd, 0.0, w_max)
            theta *= a_theta
            if len(fired):
                x_post[fired] += 1.0
                theta[fired] += theta_plus
                posted = True
        dev = self.weight.device
        self.weight = torch.from_numpy(w).to(dev, self.weight.dtype)
        self.theta = torch.from_numpy(theta).to(dev, self.theta.dtype)
        return torch.from_numpy(out)[:, None].to(spikes.device)

    def encode(self, x: torch.Tensor, rate: float | None = None) -> torch.Tensor:
        """Poisson spike trains (T, B, n_in) for intensities x (B, n_in) in [0, 1]."""
        from .encoders import poisson

        return poisson(x * (self.cfg.rate if rate is None else rate), self.cfg.steps, generator=self.gen)

    # ------------------------------------------------------------ training
    def train_epoch(self, x: torch.Tensor, progress=None) -> int:
        """One unsupervised pass over x (N, n_in) in random order; returns the number of repeats.

        Afterwards `train_counts` (N, n_exc) holds every sample's spike counts during its
        (last) presentation in this epoch, in the order of x: Diehl & Cook assign the labels
        from these responses recorded while learning, without a separate pass.
        """
        c = self.cfg
        repeats = 0
        order = torch.randperm(len(x), generator=self.gen, device=x.device)
        self.train_counts = torch.zeros((len(x), c.n_exc), device=x.device, dtype=self.weight.dtype)
        for k, i in enumerate(order.tolist()):
            rate = c.rate
            for _ in range(c.max_repeats + 1):
                out = self.run(self.encode(x[i:i + 1], rate), learn=True)
                self.normalize()
                if out.sum() >= c.min_spikes:
                    break
                rate += c.boost
                repeats += 1
            self.train_counts[i] = out[:, 0].sum(dim=0)
            if progress is not None:
                progress(k)
        return repeats

    def counts(self, x: torch.Tensor, batch_size: int = 256, *, boost: bool = True) -> torch.Tensor:
        """Spike counts (N, n_exc) for x (N, n_in), frozen weights and thresholds.

        With boost (as in the paper, also at test time) samples answered by fewer than
        `min_spikes` spikes are shown again with the rate raised by `boost`.
        """
        c = self.cfg
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            cnt = self.run(self.encode(xb)).sum(dim=0)
            rate = c.rate
            for _ in range(c.max_repeats if boost else 0):
                low = cnt.sum(dim=1) < c.min_spikes
                if not bool(low.any()):
                    break
                rate += c.boost
                cnt[low] = self.run(self.encode(xb[low], rate)).sum(dim=0)
            outs.append(cnt)
        return torch.cat(outs)

    def assign_labels(self, counts: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
        """Label every neuron with the class of its highest mean response (training data only)."""
        resp = torch.zeros((n_classes, counts.shape[1]), device=counts.device, dtype=counts.dtype)
        for k in range(n_classes):
            m = y == k
            if bool(m.any()):
                resp[k] = counts[m].mean(dim=0)
        self.labels = resp.argmax(dim=0)
        self.n_classes = n_classes
        return self.labels

    def classify(self, counts: torch.Tensor) -> torch.Tensor:
        """Class whose assigned neurons fire most on average (classes without neurons score 0)."""
        if self.labels is None:
            raise N3mlError("DiehlCook.classify needs assign_labels first")
        score = torch.zeros((counts.shape[0], self.n_classes), device=counts.device, dtype=counts.dtype)
        for k in range(self.n_classes):
            m = self.labels == k
            if bool(m.any()):
                score[:, k] = counts[:, m].mean(dim=1)
        return score.argmax(dim=1)

    # ------------------------------------------------------------ to the IR
    def to_graph(self, *, name: str = "diehl_cook", seed: int = 0, poisson_input: bool = True):
        """The trained (frozen) network as an n3ml IR graph.

        Input `x`: pixel intensities (analog) encoded by a PoissonRate node when
        poisson_input, else the Input takes spikes directly. Output `spikes`: the
        excitatory spikes. Thresholds are frozen at theta0 + theta_j. The graph is one
        presentation at the base rate; showing weakly answered samples again at a higher
        rate (`counts`) is a loop around it on the host.
        """
        from ..ir import LIF, Add, Delay, Dense, Graph, Input, Output, PoissonRate
        from ..ir.prims import gain

        c = self.cfg
        g = Graph(name=name, dt=c.dt, scheme="exact")
        if poisson_input:
            g.add("x", Input(shape=(self.n_in,), kind="analog"))
            g.add("enc", PoissonRate(gain=float(c.rate), seed=seed), "x")
            src = "enc"
        else:
            g.add("x", Input(shape=(self.n_in,), kind="spike"))
            src = "x"
        w = self.weight.detach().cpu().double().numpy()
        g.add("ff", Dense(weight=np.ascontiguousarray(w.T)), src)
        inh = -c.w_inh * (np.ones((c.n_exc, c.n_exc)) - np.eye(c.n_exc))
        g.add("sum", Add(), "ff", "inh")
        theta = c.v_rest + c.theta0 + self.theta.detach().cpu().double().numpy()
        g.add("exc", LIF(tau=float(c.tau), v_leak=float(c.v_rest), v_init=float(c.v_rest),
                         r=float(1.0 / gain(c.tau, c.dt, "exact")), theta=theta, reset="to-value",
                         v_reset=float(c.v_reset), refractory=int(c.refractory)), "sum")
        g.add("loop", Delay(steps=1), "exc")
        g.add("inh", Dense(weight=inh), "loop")
        g.add("spikes", Output(), "exc")
        g.verify()
        return g
