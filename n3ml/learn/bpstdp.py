"""BP-STDP: backpropagation approximated by STDP-like local updates
(Tavanaei & Maida 2019, Neurocomputing 330:39-47).

Integrate-and-fire neurons (no leak), reset to 0, in every layer:

    U_t = U_{t-1} + W s^{in}_t;   s_t = [U_t > theta];   U_t <- 0 where s_t = 1

The output layer is taught to fire in every window of `eps` steps when its
neuron is the label and to stay silent otherwise. At step t, with the
presynaptic window counts ``c_i(t) = sum_{t' = t-eps+1}^{t} s_i(t')``:

    xi_j(t)   = +1 if j is the label and fired in none of the last eps steps,
                -1 if j is not the label and fires at t,   0 otherwise
    dW_ji     = mu xi_j(t) c_i(t)                             (output layer)
    delta_h(t) = [c_h(t) > 0] sum_j xi_j(t) W_jh                (error backpropagated
    dW_hi     = mu delta_h(t) c_i(t)                             through the weights)

This is an STDP rule: a postsynaptic "should spike" event (xi = +1) potentiates
synapses whose presynaptic neuron fired just before (within eps), an unwanted
postsynaptic spike (xi = -1) depresses them. The derivative of the IF rate is
approximated by the hidden neuron's recent activity [c_h > 0], as in the paper.
Updates are applied every step, averaged over the mini-batch (the paper uses
batch 1). Prediction: the output neuron with the most spikes.
"""

from __future__ import annotations

import torch

from ..errors import N3mlError

__all__ = ["BPSTDPNet"]


class BPSTDPNet:
    """A feed-forward IF network trained by BP-STDP.

    Args:
        sizes: [n_in, hidden..., n_out].
        theta: firing threshold (all layers).
        eps: error window, steps.
        lr: learning rate mu.
        seed: weight initialisation seed; device/dtype of the weights.
    """

    def __init__(self, sizes: list[int], *, theta: float = 1.0, eps: int = 4, lr: float = 0.0005,
                 init_std: float | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        if len(sizes) < 2 or min(sizes) < 1:
            raise N3mlError(f"BPSTDPNet needs sizes [n_in, ..., n_out] >= 1, found {sizes}")
        if eps < 1 or theta <= 0:
            raise N3mlError(f"BPSTDPNet needs eps >= 1 and theta > 0, found eps={eps} theta={theta}")
        self.sizes, self.theta, self.eps, self.lr = list(sizes), theta, eps, lr
        g = torch.Generator(device=device).manual_seed(seed)
        self.weights = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            std = init_std if init_std is not None else (2.0 / a) ** 0.5 * theta
            self.weights.append(torch.randn((b, a), generator=g, device=device, dtype=dtype) * std)

    def _step_layers(self, x, vs, weights):
        spikes = [x]
        for k, w in enumerate(weights):
            v = vs[k] + spikes[-1] @ w.T
            s = (v > self.theta).to(v.dtype)
            vs[k] = torch.where(s > 0, torch.zeros_like(v), v)
            spikes.append(s)
        return spikes

    def run(self, spikes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Simulate (T, B, n_in) input spikes from rest; return output spikes (T, B, n_out).

        With labels (B,) the BP-STDP updates are applied at every step.
        """
        T, B, n = spikes.shape
        if n != self.sizes[0]:
            raise N3mlError(f"BPSTDPNet expects {self.sizes[0]} inputs per step, found {n}")
        dt = spikes.dtype
        weights = [w.to(dt) for w in self.weights]
        vs = [torch.zeros((B, m), device=spikes.device, dtype=dt) for m in self.sizes[1:]]
        outs = torch.empty((T, B, self.sizes[-1]), device=spikes.device, dtype=dt)
        learn = labels is not None
        if learn:
            target = torch.nn.functional.one_hot(labels, self.sizes[-1]).to(dt)
            hist = []  # spikes of all layers over the last eps steps
            window = None
        for t in range(T):
            layer_spikes = self._step_layers(spikes[t], vs, weights)
            outs[t] = layer_spikes[-1]
            if not learn:
                continue
            hist.append(layer_spikes)
            if window is None:
                window = [s.clone() for s in layer_spikes]
            else:
                window = [c + s for c, s in zip(window, layer_spikes)]
            if len(hist) > self.eps:
                old = hist.pop(0)
                window = [c - s for c, s in zip(window, old)]
            out_s, out_c = layer_spikes[-1], window[-1]
            xi = target * (out_c == 0).to(dt) - (1 - target) * out_s  # (B, n_out)
            if not bool(xi.any()):
                continue
            err = xi
            for k in range(len(weights) - 1, -1, -1):
                dw = err.T @ window[k] / B
                if k > 0:
                    err = (err @ weights[k]) * (window[k] > 0).to(dt)
                weights[k] = weights[k] + self.lr * dw
        if learn:
            self.weights = [w.to(self.weights[0].dtype) for w in weights]
        return outs

    def fit_epoch(self, x: torch.Tensor, y: torch.Tensor, *, steps: int, rate: float = 1.0, batch_size: int = 1,
                  generator: torch.Generator | None = None, progress=None) -> None:
        """One pass over rates x (N, n_in) in [0, 1] (Poisson-encoded with probability rate * x per step)."""
        from .encoders import poisson

        order = torch.randperm(len(x), generator=generator, device=x.device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            self.run(poisson(x[idx] * rate, steps, generator=generator), y[idx])
            if progress is not None:
                progress(len(idx))

    def predict(self, x: torch.Tensor, *, steps: int, rate: float = 1.0,
                generator: torch.Generator | None = None, batch_size: int = 512) -> torch.Tensor:
        """Class with the most output spikes (ties: lowest index)."""
        from .encoders import poisson

        preds = []
        for i in range(0, len(x), batch_size):
            out = self.run(poisson(x[i:i + batch_size] * rate, steps, generator=generator))
            preds.append(out.sum(dim=0).argmax(dim=1))
        return torch.cat(preds)

    def to_graph(self, *, name: str = "bpstdp"):
        """The trained network as an IR graph: spike Input `x` -> (Dense -> IF)* -> Output `out`."""
        from ..ir import IF, Dense, Graph, Input, Output

        g = Graph(name=name, dt=1.0, scheme="exact")
        g.add("x", Input(shape=(self.sizes[0],), kind="spike"))
        prev = "x"
        for k, w in enumerate(self.weights):
            g.add(f"fc{k + 1}", Dense(weight=w.detach().cpu().double().numpy()), prev)
            g.add(f"if{k + 1}", IF(theta=float(self.theta), reset="to-value", v_reset=0.0), f"fc{k + 1}")
            prev = f"if{k + 1}"
        g.add("out", Output(), prev)
        g.verify()
        return g

