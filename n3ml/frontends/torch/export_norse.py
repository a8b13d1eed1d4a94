"""Norse neurons inside torch.export programs (.pt2): the inlined Euler step read back into parameters.

torch.export inlines a Norse cell into ATen arithmetic: its parameters (`LIFParameters` &
co.) become lifted 0-d constant tensors and its `dt` a Python number. The step of
`norse.torch.functional` leaves anchors that do not depend on the order of the operations:

    dt * tau_mem_inv        a product (0-d constant, dt > 0)
    -dt * tau_syn_inv       a product (0-d constant, -dt)
    heaviside(v - v_th)     gt(sub(v, v_th), 0)
    z * v_reset             a product of the spikes and a 0-d constant (reset to value)

A setting with no anchor (v_leak, and any anchor a Norse version computes otherwise) is
searched among the region's 0-d constants. Every candidate is a real Norse module; the one
kept computes, on the program's own inputs, exactly the program's spikes and states (see
`export_peers`), and is then converted by `lib_norse` as in the fx path.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import torch
from torch import fx, nn

aten = torch.ops.aten
_GT = (aten.gt.Tensor, aten.gt.Scalar, aten.heaviside.default)
_TO_FLOAT = (aten.to.dtype, aten._to_copy.default, aten.type_as.default)
_MAX_CANDIDATES = 256


def _scalar(view: Any, a: Any) -> torch.Tensor | None:
    """The 0-d constant tensor `a` stands for, if it is one."""
    v = view.consts.get(a) if isinstance(a, fx.Node) else None
    return v if isinstance(v, torch.Tensor) and v.ndim == 0 and v.is_floating_point() else None


def _facts(view: Any) -> dict[str, list[torch.Tensor]]:
    """Candidate values of each Norse setting, best first, from the anchors of the region's step."""
    nodes = view.region.nodes
    found: dict[str, list[torch.Tensor]] = {"dt": [], "tau_mem_inv": [], "tau_syn_inv": [], "v_th": [],
                                            "v_reset": []}

    def note(key: str, v: torch.Tensor) -> None:
        if not any(torch.equal(v, u) for u in found[key]):
            found[key].append(v)

    spikes = set()
    for n in nodes:
        if n.target in _GT:
            spikes.add(n)
            diff = n.args[0]
            if isinstance(diff, fx.Node) and diff.target is aten.sub.Tensor and _scalar(view, diff.args[1]) is not None:
                note("v_th", _scalar(view, diff.args[1]))
        elif n.target in _TO_FLOAT and n.args and n.args[0] in spikes:
            spikes.add(n)
    for n in nodes:
        if n.target is not aten.mul.Tensor or len(n.args) != 2:
            continue
        a, b = n.args
        for c, other in ((a, b), (b, a)):
            v = _scalar(view, c)
            if v is None:
                continue
            if isinstance(other, float):
                note("dt", torch.tensor(abs(other), dtype=torch.float64))
                note("tau_mem_inv" if other > 0 else "tau_syn_inv", v)
            elif other in spikes:
                note("v_reset", v)
    values: list[torch.Tensor] = []
    near = dict.fromkeys(a for n in nodes for a in (n, *n.all_input_nodes))  # the region's own constants
    for n in near:
        v = view.consts.get(n)
        if isinstance(v, torch.Tensor) and v.ndim == 0 and v.is_floating_point() and \
                not any(torch.equal(v, u) for u in values):
            values.append(v)
    found["values"] = values
    return found


def _choices(found: dict[str, list[torch.Tensor]], keys: tuple[str, ...]) -> Iterator[dict[str, torch.Tensor]]:
    """Assignments of `keys`: each from its anchors, else from all 0-d constants (v_leak always from these)."""
    pools = [found.get(k) or found["values"] for k in keys]
    for combo in itertools.islice(itertools.product(*pools), _MAX_CANDIDATES):
        yield dict(zip(keys, combo))


def _dt(view: Any, found: dict[str, list[torch.Tensor]]) -> float:
    if len(found["dt"]) != 1:
        raise view.refuse(f"{len(found['dt'])} candidate time steps dt ({[float(d) for d in found['dt']]}) in the "
                          "cell's arithmetic", "one dt (the products dt * tau_mem_inv and -dt * tau_syn_inv)")
    return float(found["dt"][0])


def lif(klass: type, view: Any) -> Iterator[nn.Module]:
    from norse.torch import LIFParameters

    found = _facts(view)
    dt = _dt(view, found)
    view.region.multi = klass.__name__ == "LIF"
    for c in _choices(found, ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")):
        yield klass(p=LIFParameters(**{k: v.clone() for k, v in c.items()}), dt=dt)


def lif_box(klass: type, view: Any) -> Iterator[nn.Module]:
    from norse.torch import LIFBoxParameters
    from norse.torch.functional import reset as norse_reset

    found = _facts(view)
    dt = _dt(view, found)
    for c in _choices(found, ("tau_mem_inv", "v_leak", "v_th", "v_reset")):
        for method in (norse_reset.reset_value, norse_reset.reset_subtract):
            p = LIFBoxParameters(**{k: v.clone() for k, v in c.items()}, reset_method=method)
            yield klass(p=p, dt=dt)


def li(klass: type, view: Any) -> Iterator[nn.Module]:
    from norse.torch import LIParameters

    found = _facts(view)
    dt = _dt(view, found)
    view.region.multi = klass.__name__ == "LI"
    for c in _choices(found, ("tau_syn_inv", "tau_mem_inv", "v_leak")):
        p = LIParameters(**{k: v.clone() for k, v in c.items()})
        if klass.__name__ == "LILinearCell":
            w = view.attrs.get("input_weights")
            if w is None:
                raise view.refuse("an LILinearCell without its input_weights", "the cell's parameter input_weights")
            m = klass(int(w.shape[1]), int(w.shape[0]), p=p, dt=dt)
            with torch.no_grad():
                m.input_weights.copy_(w)
            yield m
        else:
            yield klass(p=p, dt=dt)


_M = "norse.torch.module."
REBUILD = {
    _M + "lif.LIFCell": lif,
    _M + "lif.LIF": lif,
    _M + "lif_box.LIFBoxCell": lif_box,
    _M + "leaky_integrator.LICell": li,
    _M + "leaky_integrator.LI": li,
    _M + "leaky_integrator.LILinearCell": li,
}
