"""Which form of the LIF recurrence is cheapest? (the design measurement behind n3ml's `spiking_scan`)

Times forward+backward of the membrane loop alone (the synaptic input x (T, B, N) is given):
  autograd loop  -- the per-step update written with torch ops (the executor's step path)
  jit.script     -- the same loop compiled by TorchScript; the surrogate gradient enters through
                    the straight-through form s = H(h) + (f(h) - f(h).detach()), f' = fast sigmoid
  fused Function -- n3ml.backends.torch.scan.spiking_scan: loop without autograd, one saved tensor,
                    a linear backward recurrence in cache-sized chunks

Run: .venv/bin/python benchmarks/loop_variants.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from n3ml.backends.torch.scan import spiking_scan
from n3ml.nn import spike_fn

A, THETA, K = 0.9, 1.0, 25.0
SPIKE = spike_fn("fast_sigmoid", K)


def autograd_loop(x):
    v = torch.zeros_like(x[0])
    out = []
    for xt in x.unbind(0):  # unbind: x[t] would make the backward O(T^2) (a full-size zero grad per step)
        v = A * v + xt
        s = SPIKE(v - THETA)
        v = v - THETA * s
        out.append(s)
    return torch.stack(out)


@torch.jit.script
def _jit_loop(x: torch.Tensor, a: float, theta: float, k: float) -> torch.Tensor:
    v = torch.zeros_like(x[0])
    out = []
    for xt in x.unbind(0):
        v = a * v + xt
        h = v - theta
        f = h / (1.0 + k * h.abs())  # d f/dh = 1 / (1 + k|h|)^2, the fast sigmoid
        s = (h > 0).to(h.dtype) + (f - f.detach())
        v = v - theta * s
        out.append(s)
    return torch.stack(out)


def jit_loop(x):
    return _jit_loop(x, A, THETA, K)


def fused(x):
    return spiking_scan(x, torch.zeros((), dtype=x.dtype), a=A, theta=THETA, reset="subtract", spike=SPIKE)


def median_time(fn, x, repeats):
    ts = []
    for _ in range(repeats + 1):
        xi = x.detach().clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(xi).sum().backward()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [(200, 16, 256), (100, 16, 4096)] if args.quick else [(1000, 16, 256), (500, 16, 4096)]
    for T, B, N in sizes:
        x = torch.randn(T, B, N, generator=torch.Generator().manual_seed(0)) * 0.5
        ref = fused(x.clone().requires_grad_(True))
        assert torch.equal(ref, autograd_loop(x)) and torch.equal(ref, jit_loop(x))
        print(f"T={T} B={B} N={N}: LIF loop forward+backward, median ms")
        for name, fn in [("autograd loop", autograd_loop), ("jit.script", jit_loop), ("fused Function", fused)]:
            print(f"  {name:<15} {median_time(fn, x, args.repeats) * 1e3:9.1f}")


if __name__ == "__main__":
    main()
