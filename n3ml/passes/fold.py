"""Folding passes: `fold-batchnorm` and `fold-scales` merge per-channel affine maps into synapse weights.

Both preserve the graph's function exactly (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir import prims as P
from .base import Pass, PassError
from .cleanup import bypass

WEIGHTED = (P.Dense, P.Conv1d, P.Conv2d)


def _float_weights(name: str, prim: P.Primitive) -> None:
    if prim.weight.dtype.kind not in "f":
        raise PassError(f"node `{name}` ({prim.op}) has integer weights; fold before quantizing")


def _scale_rows(prim, k: np.ndarray):
    """Multiply output channel o of a Dense/Conv by k[o] (weight rows and bias)."""
    w = prim.weight * k.reshape(-1, *([1] * (prim.weight.ndim - 1)))
    b = None if prim.bias is None else prim.bias * k
    return w, b


def _per_channel(f: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """`f` broadcast to `shape`, as one value per channel (axis 0), or None if it varies within a channel."""
    full = np.broadcast_to(np.asarray(f, dtype=np.float64), shape).reshape(shape[0], -1)
    if not np.all(full == full[:, :1]):
        return None
    return full[:, 0].copy()


@dataclass(frozen=True, kw_only=True)
class FoldBatchNorm(Pass):
    """Fold each BatchNorm into the Dense/Conv right before it: W' = k W, b' = k (b - mean) + beta,
    k = gamma / sqrt(var + eps). A BatchNorm that does not follow a Dense/Conv used only by it is kept
    (an error with `strict=true`)."""

    name = "fold-batchnorm"
    summary = "fold BatchNorm into the preceding Dense/Conv"
    strict: bool = False

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        for n in list(g.nodes):
            p = g.nodes.get(n)
            if not isinstance(p, P.BatchNorm):
                continue
            (src,) = g.inputs_of(n)
            sp = g.nodes[src]
            if not isinstance(sp, WEIGHTED) or g.users_of(src) != [n]:
                if self.strict:
                    why = "it is not a Dense/Conv" if not isinstance(sp, WEIGHTED) else "it has other users"
                    raise PassError(f"cannot fold BatchNorm `{n}` into its input `{src}` ({sp.op}): {why}")
                continue
            _float_weights(src, sp)
            k = p.gamma / np.sqrt(p.var + p.eps)
            w, b = _scale_rows(sp, k)
            b0 = np.zeros(sp.weight.shape[0]) if sp.bias is None else sp.bias
            g.replace(src, weight=w, bias=(b0 - p.mean) * k + p.beta)
            bypass(g, n)
        return g


@dataclass(frozen=True, kw_only=True)
class FoldScales(Pass):
    """Fold Scale nodes into neighbouring synapses: a Scale after a Dense/Conv (its only user) scales the
    weight rows and bias; a Scale whose only user is a Dense/Conv scales the weight columns (input
    channels); consecutive Scales merge; Scales by 1 vanish. Factors must be per channel to fold into a Conv."""

    name = "fold-scales"
    summary = "fold Scale nodes into adjacent Dense/Conv weights"

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        g = graph.copy()
        changed = True
        while changed:
            changed = False
            types = g.verify()
            for n in list(g.nodes):
                p = g.nodes[n]
                if isinstance(p, P.Scale) and self._fold_one(g, n, p, types):
                    changed = True
                    break
        return g

    def _fold_one(self, g: Graph, n: str, p: P.Scale, types) -> bool:
        (src,) = g.inputs_of(n)
        sp = g.nodes[src]
        users = g.users_of(n)
        f = np.asarray(p.factor, dtype=np.float64)
        if types[src].shape == types[n].shape and np.all(f == 1):
            bypass(g, n)
            return True
        if isinstance(sp, P.Scale) and g.users_of(src) == [n]:
            g.replace(src, factor=np.asarray(sp.factor, dtype=np.float64) * f)
            bypass(g, n)
            return True
        if isinstance(sp, WEIGHTED) and g.users_of(src) == [n] and sp.weight.dtype.kind == "f":
            k = _per_channel(f, types[n].shape)
            if k is not None:
                w, b = _scale_rows(sp, k)
                g.replace(src, weight=w, bias=b)
                bypass(g, n)
                return True
        if len(users) == 1 and isinstance(g.nodes[users[0]], WEIGHTED):
            dst = users[0]
            dp = g.nodes[dst]
            if dp.weight.dtype.kind != "f":
                return False
            if isinstance(dp, P.Dense):
                cols = np.broadcast_to(f, types[n].shape).reshape(-1)
                g.replace(dst, weight=dp.weight * cols[None, :])
            else:
                k = _per_channel(f, types[n].shape)
                if k is None:
                    return False
                cig = dp.weight.shape[1]
                cog = dp.weight.shape[0] // dp.groups
                w = dp.weight.copy()
                for gi in range(dp.groups):
                    kk = k[gi * cig:(gi + 1) * cig].reshape(1, -1, *([1] * (w.ndim - 2)))
                    w[gi * cog:(gi + 1) * cog] *= kk
                g.replace(dst, weight=w)
            bypass(g, n)
            return True
        return False
