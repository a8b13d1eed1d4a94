"""The executor's low-memory training mode (`compile(graph, memory="lean")`).

In the default mode autograd keeps, for every layer, the synapse's input (spikes as float
values: 4 bytes each in float32), the batch-norm and pooling inputs or indices, and the
neuron scan's `h = v* - theta` (4 bytes per neuron and step). In lean mode a *segment* -- a
neuron together with the chain of stateless nodes that feed only it (Dense/Conv, BatchNorm,
pools, Flatten, Scale, ReLU) -- runs without autograd and keeps only its inputs, packed:
spikes as 1 bit, small non-negative integers (a sum of spike trains) as 1 byte, anything else
as is (everything else autograd saves while a lean executor runs is packed the same way).
The backward pass unpacks them, runs the segment forward again with autograd (the synaptic
input and the membranes are recomputed) and backpropagates through it. The recomputation is
the forward's own operations on the same values, so the gradients are the default mode's bit
for bit; the price is one more forward pass of every segment. What lean mode does not lower
(yet) is the transient of one segment's backward, which spans all T steps of that layer: the
peak of a training step falls only where the saved activations of all layers outweigh it
(deep networks, long sequences; measured in benchmarks/README.md).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["pack", "unpack", "recompute", "pack_saved"]

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
