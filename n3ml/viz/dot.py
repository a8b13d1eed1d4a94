"""Graphviz drawings of n3ml graphs: one box per node, edges labelled with port types.

`to_dot` builds a `pydot.Dot` (no external program needed); `render` writes it as
.dot text or runs Graphviz's `dot` program for .svg, .png and .pdf.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np
import pydot

from ..errors import N3mlError
from ..ir import prims as P
from ..ir.graph import Graph
from ..ir.types import PortType

FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = ("install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
                "`conda install graphviz`, or `make sysdeps`; writing FILE.dot needs no Graphviz")
AUTO_CLUSTER_NODES = 16  # graphs larger than this are grouped by name prefix unless told otherwise

# Fill colours per node type. Fixed so that a type has the same colour in every drawing;
# types not listed get one from PALETTE chosen by a hash of the type name (stable across runs).
COLOURS: dict[str, str] = {
    "Input": "#d9f0d3", "Output": "#f4cae4",
    "Dense": "#c6dbef", "Conv1d": "#9ecae1", "Conv2d": "#9ecae1",
    "SumPool2d": "#e5d8bd", "AvgPool2d": "#e5d8bd", "MaxPool2d": "#decbe4",
    "Flatten": "#f0f0f0", "Scale": "#fddaec", "Add": "#ffffcc", "Concat": "#fff2ae", "Delay": "#fdd0a2",
    "ReLU": "#e0ecf4", "BatchNorm": "#e0ecf4", "Softmax": "#e0ecf4",
    "IF": "#fcbba1", "LIF": "#fc9272", "CubaLIF": "#fb6a4a", "ALIF": "#ef8a62",
    "LI": "#bcbddc", "Integrator": "#bcbddc", "FixedCubaLIF": "#fdae6b",
    "SynapseFilter": "#c7e9c0", "FixedSynapseFilter": "#c7e9c0",
    "PoissonRate": "#b3de69", "ConstantCurrent": "#ccebc5", "Latency": "#b3de69",
}
PALETTE = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9",
           "#bc80bd", "#ccebc5", "#ffed6f")


def colour_of(op: str) -> str:
    """The fill colour of a node type (the same in every drawing)."""
    if op in COLOURS:
        return COLOURS[op]
    return PALETTE[zlib.crc32(op.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class DotOptions:
    """How to draw a graph.

    Attributes:
        rankdir: "TB" (top to bottom) or "LR" (left to right).
        params: show neuron parameters, kernel sizes and quantization formats in the boxes.
        clusters: "auto" (group by name prefix when the graph has more than 16 nodes),
            "prefix" (always group), "none".
        edge_labels: label edges with the tensor type travelling on them.
    """

    rankdir: str = "TB"
    params: bool = True
    clusters: str = "auto"
    edge_labels: bool = True

    def __post_init__(self) -> None:
        if self.rankdir not in ("TB", "LR"):
            raise N3mlError(f"rankdir must be TB or LR, found {self.rankdir!r}")
        if self.clusters not in ("auto", "prefix", "none"):
            raise N3mlError(f"clusters must be auto, prefix or none, found {self.clusters!r}")


# ---------------------------------------------------------------- node labels


def _fmt(v: Any) -> str:
    """A parameter value in a few characters: scalars as %g, arrays by their range."""
    if isinstance(v, np.ndarray):
        if v.size == 0:
            return "[]"
        lo, hi = v.min(), v.max()
        return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _int_bits(w: np.ndarray) -> int:
    """Bits of the smallest signed integer type holding every value of `w`."""
    lo, hi = (int(w.min()), int(w.max())) if w.size else (0, 0)
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def _weights(w: np.ndarray, bias: np.ndarray | None, fmt=None) -> list[str]:
    dims = "x".join(map(str, w.shape))
    if fmt is not None:  # the declared storage format of a quantized layer
        line = f"W {dims} {fmt}" + (f" [{_fmt(w.min())}, {_fmt(w.max())}]" if w.size else "")
    elif w.dtype.kind in "iu":
        q = f"int{_int_bits(w)} [{_fmt(w.min())}, {_fmt(w.max())}]" if w.size else "int"
        line = f"W {dims} {q}"
    else:
        line = f"W {dims}"
    out = [line]
    if bias is not None:
        out.append(f"bias {bias.shape[0]}" + (f" int{_int_bits(bias)}" if bias.dtype.kind in "iu" else ""))
    return out


def _desc_dense(p: P.Dense) -> list[str]:
    return _weights(p.weight, p.bias, p.weight_format)


def _desc_conv(p: P.Conv1d | P.Conv2d) -> list[str]:
    out = _weights(p.weight, p.bias, p.weight_format)
    extra = []
    for label, v, default in (("stride", p.stride, 1), ("pad", p.padding, 0), ("dil", p.dilation, 1)):
        vals = v if isinstance(v, tuple) else (v,)
        if any(x != default for x in vals):
            extra.append(f"{label} {'x'.join(map(str, vals))}")
    if p.groups != 1:
        extra.append(f"groups {p.groups}")
    if extra:
        out.append(", ".join(extra))
    return out


def _pair(t: tuple[int, int]) -> str:
    return f"{t[0]}x{t[1]}"


def _desc_pool(p: P._Pool2d) -> list[str]:
    out = f"kernel {_pair(p.kernel)}"
    if p.stride is not None and p.stride != p.kernel:
        out += f", stride {_pair(p.stride)}"
    if p.padding != (0, 0):
        out += f", pad {_pair(p.padding)}"
    return [out]


def _desc_neuron(p: P.Neuron) -> list[str]:
    lines = []
    taus = [f"{f}={_fmt(getattr(p, f))} ms" for f in p.time_fields]
    if taus:
        lines.append(", ".join(taus))
    if p.spiking:
        th = f"theta={_fmt(p.theta)}"
        reset = p.reset if p.reset != "to-value" else f"to {_fmt(p.v_reset)}"
        lines.append(f"{th}, reset {reset}")
        if p.refractory:
            lines.append(f"refractory {p.refractory} steps")
    extra = []
    for f in ("v_leak", "r", "q"):
        if hasattr(p, f):
            v = getattr(p, f)
            default = 1.0 if f == "r" else 0.0
            if isinstance(v, np.ndarray) or v != default or f == "q":
                extra.append(f"{f}={_fmt(v)}")
    if extra:
        lines.append(", ".join(extra))
    return lines


def _desc_fixed(p: P.FixedCubaLIF) -> list[str]:
    lines = [f"du={_fmt(p.du)}, dv={_fmt(p.dv)} /2^{p.decay_bits}",
             f"theta={_fmt(p.theta)}, reset {p.reset if p.reset != 'to-value' else 'to ' + _fmt(p.v_reset)}"]
    if np.any(np.asarray(p.bias) != 0):
        lines.append(f"bias={_fmt(p.bias)}")
    lines.append(f"int{p.state_bits} state, in<<{p.input_shift}")
    lines.append(f"overflow u:{p.current_overflow} v:{p.voltage_overflow}")
    if p.refractory:
        lines.append(f"refractory {p.refractory} steps")
    if np.any(np.asarray(p.q) != 0):  # the threshold adapts (docs/semantics.md §6a)
        lines.append(f"adapt q={_fmt(p.q)}, db={_fmt(p.db)} /2^{p.decay_bits}")
    return lines


def _desc_fields(*names: str) -> Callable[[P.Primitive], list[str]]:
    def describe(p: P.Primitive) -> list[str]:
        return [", ".join(f"{n}={_fmt(getattr(p, n))}" for n in names)]
    return describe


def _desc_none(p: P.Primitive) -> list[str]:
    return []


def _desc_input(p: P.Input) -> list[str]:
    return [] if p.kind == "spike" else ["analog"]


# Primitive type -> lines describing its parameters; looked up along the MRO.
DESCRIBE: dict[type, Callable[[Any], list[str]]] = {
    P.Input: _desc_input,
    P.Output: _desc_none,
    P.Dense: _desc_dense,
    P.Conv1d: _desc_conv,
    P.Conv2d: _desc_conv,
    P._Pool2d: _desc_pool,
    P.Flatten: _desc_none,
    P.Scale: _desc_fields("factor"),
    P.Add: _desc_none,
    P.Concat: _desc_fields("axis"),
    P.Delay: lambda p: [f"{p.steps} step" + ("s" if p.steps != 1 else "")],
    P.ReLU: _desc_none,
    P.BatchNorm: lambda p: [f"{p.mean.shape[0]} channels"],
    P.Softmax: _desc_fields("axis"),
    P.FixedCubaLIF: _desc_fixed,
    P.SynapseFilter: lambda p: [f"leak={_fmt(p.leak)} without a spike, +1 with one"],
    P.FixedSynapseFilter: lambda p: [f"d={_fmt(p.d)} /2^{p.decay_bits} without a spike, +{_fmt(p.jump)} with one",
                                     f"int{p.state_bits} state"],
    P.Neuron: _desc_neuron,
    P.PoissonRate: _desc_fields("gain", "seed"),
    P.ConstantCurrent: _desc_fields("scale", "offset"),
    P.Latency: lambda p: [f"window {p.window} steps, x_min={_fmt(p.x_min)}"],
}


def describe(prim: P.Primitive) -> list[str]:
    """Short lines naming the parameters of `prim` (empty for parameterless nodes)."""
    for cls in type(prim).__mro__:
        if cls in DESCRIBE:
            return DESCRIBE[cls](prim)
    # a primitive added after this table: list its scalar fields
    return [", ".join(f"{k}={_fmt(v)}" for k, v in prim.params().items() if not isinstance(v, np.ndarray))]


def port_label(t: PortType) -> str:
    """`spike[4x8x8]`, `analog[10]`, `int[16]`, with the fixed-point format when there is one."""
    dims = "x".join(map(str, t.shape))
    kind = "spike" if t.kind == "spike" else ("int" if t.dtype == "int" else "analog")
    return f"{kind}[{dims}]" + (f" {t.fixed}" if t.fixed else "")


def node_label(name: str, prim: P.Primitive, t: PortType, params: bool = True) -> str:
    lines = [f"{name} : {prim.op}", port_label(t)]
    if params:
        lines += [s for s in describe(prim) if s]
    return "\n".join(lines)


# ------------------------------------------------------------------- clusters


def _prefix(name: str) -> str | None:
    """Group of a node by its name: `blk3_lif` -> `blk3`, `conv2` -> `2` (the block index)."""
    head, sep, _ = name.rpartition("_")
    if sep and head:
        return head
    stem = name.rstrip("0123456789")
    if stem and stem != name:
        return "#" + name[len(stem):]
    return None


def clusters_of(graph: Graph) -> dict[str, list[str]]:
    """Groups of two or more nodes sharing a name prefix, never the whole graph."""
    groups: dict[str, list[str]] = {}
    for n in graph.nodes:
        k = _prefix(n)
        if k is not None:
            groups.setdefault(k, []).append(n)
    out = {k: v for k, v in groups.items() if 2 <= len(v) < len(graph.nodes)}
    return out


# ---------------------------------------------------------------------- build


def _q(name: str) -> str:
    # always quote: node names such as `node`, `edge` or `graph` are DOT keywords
    return f'"{name}"'


def back_edges(graph: Graph) -> set[int]:
    """Indices of the edges that leave a Delay of >= 1 step and close a cycle (recurrent edges)."""
    full = graph.to_networkx()
    comp = {}
    for i, scc in enumerate(nx.strongly_connected_components(full)):
        for n in scc:
            comp[n] = i
    out = set()
    for i, e in enumerate(graph.edges):
        p = graph.nodes[e.src]
        if isinstance(p, P.Delay) and p.steps >= 1 and comp[e.src] == comp[e.dst]:
            out.add(i)
    return out


def to_dot(graph: Graph, options: DotOptions | None = None) -> pydot.Dot:
    """The graph as a pydot.Dot (verifies it first; raises VerifyError on a broken graph)."""
    o = options or DotOptions()
    types = graph.verify()
    dot = pydot.Dot(graph.name, graph_type="digraph")
    dot.set("rankdir", o.rankdir)
    dot.set("label", f"{graph.name}  (dt={graph.dt:g} ms, {graph.scheme})")
    dot.set("labelloc", "t")
    dot.set("fontname", "Helvetica")
    dot.set("newrank", "true")
    dot.set_node_defaults(shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="8", color="#555555")

    use_clusters = o.clusters == "prefix" or (o.clusters == "auto" and len(graph.nodes) > AUTO_CLUSTER_NODES)
    member: dict[str, pydot.Subgraph] = {}
    if use_clusters:
        used: set[str] = set()
        for k, names in clusters_of(graph).items():
            label = f"block {k[1:]}" if k.startswith("#") else k
            cid = "idx" + k[1:] if k.startswith("#") else k
            while cid in used:  # a prefix may spell another group's id (`idx1_a` beside `conv1`)
                cid += "_"
            used.add(cid)
            sub = pydot.Cluster(cid, label=label, style="rounded,dashed", color="#888888", fontsize="10")
            dot.add_subgraph(sub)
            for n in names:
                member[n] = sub

    for name, prim in graph.nodes.items():
        attrs = {"label": node_label(name, prim, types[name], o.params), "fillcolor": colour_of(prim.op)}
        if isinstance(prim, P.Input):
            attrs.update(shape="invhouse", style="filled,bold", penwidth="2")
        elif isinstance(prim, P.Output):
            attrs.update(shape="house", style="filled,bold", penwidth="2", peripheries="2")
        elif isinstance(prim, P.Delay):
            attrs.update(style="rounded,filled,dashed")
        member.get(name, dot).add_node(pydot.Node(_q(name), **attrs))

    back = back_edges(graph)
    for i, e in enumerate(graph.edges):
        attrs: dict[str, str] = {}
        if o.edge_labels:
            attrs["label"] = port_label(types[e.src])
        src = graph.nodes[e.src]
        if i in back:
            # recurrent: drawn against the flow without pulling the layout backwards
            attrs.update(style="dashed", color="#d62728", fontcolor="#d62728", constraint="false", penwidth="1.5")
            attrs["label"] = f"z^-{src.steps} " + attrs.get("label", "")
        elif isinstance(src, P.Delay) and src.steps >= 1:
            attrs.update(style="dashed", color="#ff7f0e")
        dst = graph.nodes[e.dst]
        if dst.arity is None:
            attrs["headlabel"] = str(e.dst_port)
        dot.add_edge(pydot.Edge(_q(e.src), _q(e.dst), **attrs))
    return dot


def dot_source(graph: Graph, options: DotOptions | None = None) -> str:
    return to_dot(graph, options).to_string()


def find_dot() -> str:
    """Path of Graphviz's `dot` program; N3mlError saying how to install it when missing."""
    exe = shutil.which("dot")
    if exe is None:
        raise N3mlError(f"Graphviz's `dot` program was not found on PATH; {INSTALL_HINT}")
    return exe


def format_of(path: str | os.PathLike, fmt: str | None = None) -> str:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise N3mlError(f"{path}: cannot write format {fmt or '(no suffix)'!r}; expected one of "
                        f"{', '.join('.' + f for f in FORMATS)}")
    return fmt


def render(graph: Graph, path: str | os.PathLike, options: DotOptions | None = None, *,
           fmt: str | None = None, timeout: float = 120.0) -> Path:
    """Draw `graph` into `path` (.svg, .png, .pdf through Graphviz; .dot as text).

    The file is written atomically: on any error nothing appears under `path`.
    Returns the path written.
    """
    path = Path(path)
    fmt = format_of(path, fmt)
    source = dot_source(graph, options)
    if fmt == "dot":
        data = source.encode()
    else:
        exe = find_dot()
        try:
            proc = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise N3mlError(f"Graphviz took more than {timeout:g} s to lay out graph {graph.name}; "
                            "try --no-params, or write .dot") from None
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip()
            raise N3mlError(f"Graphviz failed to write {fmt} for graph {graph.name}: {msg}")
        data = proc.stdout
    write_atomic(path, data)
    return path



def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, so a half-written file never appears."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
