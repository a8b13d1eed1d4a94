"""The executor's low-memory training mode (`compile(graph, memory="lean")`).

In the default mode autograd keeps, for every layer, the synapse's input (spikes as float
values: 4 bytes each in float32), the batch-norm and pooling inputs or indices, and the
neuron scan's candidate voltage `v*` (4 bytes per neuron and step). In lean mode a *segment* -- a
neuron together with the chain of stateless nodes that feed only it (Dense/Conv, BatchNorm,
pools, Flatten, Scale, ReLU) -- runs without autograd and keeps only its inputs, packed:
spikes as 1 bit, small non-negative integers (a sum of spike trains) as 1 byte, anything else
as is (everything else autograd saves while a lean executor runs is packed the same way).
The backward pass unpacks them, runs the segment forward again with autograd (the synaptic
input and the membranes are recomputed) and backpropagates through it. The recomputation is
the forward's own operations on the same values, so the gradients are the default mode's bit
for bit; the price is one more forward pass of every segment.

A segment ending in an IF or LIF neuron (the spiking scan) also runs in time chunks of
`Executor.lean_chunk_bytes` (32 MiB) in both directions (`chunked_segment`): the forward keeps
the voltage at each chunk's start, the backward recomputes one chunk at a time from it and
continues the scan's gradient recurrence across chunks exactly; only the weight gradients
become sums over chunks (equal to rounding, tested to 1e-12 in float64). What stays whole are
the gradients that flow between segments (dL/d spikes over all T steps); where one layer's
gradients dominate a training step (a CNN whose first layer is its largest), lean mode cannot
go below them, and its packing and recomputation make it slightly heavier than the default
(figures in benchmarks/README.md).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["pack", "unpack", "unpack_steps", "recompute", "pack_saved", "chunked_segment"]

_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack(x: torch.Tensor) -> tuple:
    """`x` in the fewest bytes that give it back exactly: 1 bit per value for 0/1 values, 1 byte for
    integers 0..255, else `x` itself."""
    if not x.is_floating_point() or x.numel() == 0:
        return ("raw", x)
    if bool(((x == 0) | (x == 1)).all()):
        flat = x.reshape(-1) != 0
        pad = (-flat.numel()) % 8
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        bits = _BITS.to(x.device)
        return ("bits", (flat.view(-1, 8).to(torch.uint8) * bits).sum(1, dtype=torch.uint8), x.shape, x.dtype)
    if bool(((x >= 0) & (x <= 255) & (x == torch.round(x))).all()):
        return ("u8", x.to(torch.uint8), x.dtype)
    return ("raw", x)


def unpack(p: tuple) -> torch.Tensor:
    """The tensor `pack` was given (same values, shape and dtype; a new tensor)."""
    if p[0] == "raw":
        return p[1]
    if p[0] == "u8":
        return p[1].to(p[2])
    _, packed, shape, dtype = p
    bits = _BITS.to(packed.device)
    n = 1
    for s in shape:
        n *= s
    flat = (packed[:, None] & bits) != 0
    return flat.reshape(-1)[:n].reshape(shape).to(dtype)


def pack_saved(t: torch.Tensor) -> tuple:
    """`pack` for torch.autograd.graph.saved_tensors_hooks: what autograd keeps outside segments (a
    max-pool's input spikes, say) is packed too; parameters and other leaves are kept as they are."""
    return ("raw", t) if t.is_leaf else pack(t)


class _Recompute(torch.autograd.Function):
    """out = fn(*inputs) without a graph; the inputs saved packed; backward recomputes fn with autograd."""

    @staticmethod
    def forward(ctx, fn, n_in, *args):  # type: ignore[override]
        inputs, params = args[:n_in], args[n_in:]
        with torch.no_grad():
            out = fn(*inputs)
        ctx.fn, ctx.n_in = fn, n_in
        ctx.packs = [pack(x.detach()) for x in inputs]
        ctx.need = [x.requires_grad for x in inputs]
        # the packed tensors go through save_for_backward so that saved-tensor hooks (memory counters) see them
        ctx.save_for_backward(*[t for p in ctx.packs for t in p[1:2]])
        ctx.n_params = len(params)
        ctx.params = params
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        ctx.saved_tensors  # noqa: B018 -- marks the saved values as used (freed with the graph)
        inputs = [unpack(p).detach().requires_grad_(need) for p, need in zip(ctx.packs, ctx.need)]
        with torch.enable_grad():
            out = ctx.fn(*inputs)
        wrt = [x for x in inputs if x.requires_grad] + [p for p in ctx.params if p.requires_grad]
        grads = iter(torch.autograd.grad(out, wrt, g, allow_unused=True) if wrt else ())
        gin = [next(grads) if x.requires_grad else None for x in inputs]
        gpar = [next(grads) if p.requires_grad else None for p in ctx.params]
        return (None, None, *gin, *gpar)


def recompute(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], params: list[torch.Tensor]) -> torch.Tensor:
    """fn(*inputs), differentiable in `inputs` and `params` (the parameters fn reads), holding only the
    packed inputs between forward and backward."""
    return _Recompute.apply(fn, len(inputs), *inputs, *params)


def unpack_steps(p: tuple, t0: int, t1: int) -> torch.Tensor:
    """Steps t0..t1-1 (axis 0) of the tensor `pack` was given, unpacking only their bytes."""
    if p[0] == "raw":
        return p[1][t0:t1]
    if p[0] == "u8":
        return p[1][t0:t1].to(p[2])
    _, packed, shape, dtype = p
    per = 1
    for s in shape[1:]:
        per *= s
    b0, b1 = (t0 * per) // 8, -(-(t1 * per) // 8)
    off = t0 * per - 8 * b0
    bits = (packed[b0:b1, None] & _BITS.to(packed.device)) != 0
    return bits.reshape(-1)[off: off + (t1 - t0) * per].reshape(t1 - t0, *shape[1:]).to(dtype)


class _ChunkedSegment(torch.autograd.Function):
    """A segment ending in an IF/LIF neuron, run `K` steps at a time in both directions.

    Forward (no graph): per chunk, the stateless chain `pre` on the chunk's input, the neuron's
    input term `prep`, the scan from the voltage the previous chunk left (kept: one (B, ...)
    tensor per chunk). Backward, chunks in reverse: the chunk's packed input unpacked, `pre` and
    `prep` recomputed with autograd, the scan rerun from its kept voltage to get v*, the scan's
    gradient recurrence continued from the later chunk's dL/dv* (scan.scan_backward: the same
    values as one pass over all steps), and autograd through `pre` for the parameters and input.
    Memory holds K steps of the segment instead of T; the weight gradients are sums over chunks
    (equal to one pass's to rounding, ~1e-16 relative in float64)."""

    @staticmethod
    def forward(ctx, pre, prep, scan, K, x, *params):  # type: ignore[override]
        from .scan import _spiking_loop

        T = x.shape[0]
        v0, kw = scan
        out, v, ckpts = None, v0, []
        with torch.no_grad():
            for t0 in range(0, T, K):
                t1 = min(T, t0 + K)
                xin = prep(pre(x[t0:t1]))
                ckpts.append(v)
                # (not out=xin: a chain of views, a Flatten say, would write into the segment's input)
                o, v = _spiking_loop(xin, v, kw["a"], kw["v_leak"], kw["theta"], kw["reset"], kw["v_reset"], None)
                if out is None:
                    out = o.new_empty((T, *o.shape[1:]))
                out[t0:t1] = o
        ctx.pre, ctx.prep, ctx.scan, ctx.K, ctx.T = pre, prep, scan, K, T
        ctx.pack = pack(x.detach())
        ctx.need = x.requires_grad
        ctx.ckpts = ckpts
        ctx.params = params
        ctx.save_for_backward(ctx.pack[1])  # seen by saved-tensor hooks (memory counters)
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    def backward(ctx, gs):  # type: ignore[override]
        from .scan import _spiking_loop, scan_backward

        ctx.saved_tensors  # noqa: B018
        if gs is None:
            return (None,) * (5 + len(ctx.params))
        _, kw = ctx.scan
        cfg = (kw["a"], kw["theta"], kw["reset"], kw["v_reset"], kw["spike"], kw["detach"])
        T, K = ctx.T, ctx.K
        params = [p for p in ctx.params if p.requires_grad]
        gpar: list = [None] * len(params)
        gin = None
        g = None
        for k in range((T + K - 1) // K - 1, -1, -1):
            t0, t1 = k * K, min(T, k * K + K)
            xc = unpack_steps(ctx.pack, t0, t1).detach().requires_grad_(ctx.need)
            with torch.enable_grad():
                xin = ctx.prep(ctx.pre(xc))
            vs = torch.empty_like(xin)
            with torch.no_grad():
                _spiking_loop(xin.detach(), ctx.ckpts[k], kw["a"], kw["v_leak"], kw["theta"], kw["reset"],
                              kw["v_reset"], vs)
            gx, g = scan_backward(vs, gs[t0:t1], cfg, g, out=vs)  # vs is ours: the gradient goes over it
            del vs
            wrt = ([xc] if ctx.need else []) + params
            if not wrt:
                continue
            grads = list(torch.autograd.grad(xin, wrt, gx, allow_unused=True))
            if ctx.need:
                gc = grads.pop(0)
                if gin is None:
                    gin = torch.zeros((T, *gc.shape[1:]), dtype=gc.dtype, device=gc.device)
                gin[t0:t1] = gc
            for i, gp in enumerate(grads):
                if gp is not None:  # in place: a large weight's gradient exists once, not once per chunk
                    gpar[i] = gp if gpar[i] is None else gpar[i].add_(gp)
        it = iter(gpar)
        return (None, None, None, None, gin, *[next(it) if p.requires_grad else None for p in ctx.params])


def chunked_segment(pre, prep, scan, K: int, x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """Spikes of a segment `pre` -> `prep` -> spiking scan, holding K steps at a time (see _ChunkedSegment).

    Args:
        pre: the segment's stateless chain, (K, B, ...) input -> (K, B, ...) synaptic input.
        prep: the neuron's scaling of that input (r g x), differentiable.
        scan: (v0, dict a, v_leak, theta, reset, v_reset, spike, detach) of the neuron.
        K: steps per chunk; x: the segment's input (T, B, ...); params: the parameters `pre` reads.
    """
    return _ChunkedSegment.apply(pre, prep, scan, K, x, *params)
