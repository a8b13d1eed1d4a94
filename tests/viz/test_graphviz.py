"""Graphviz drawings: real SVG/PNG/PDF/DOT files of every example, checked by content."""

from __future__ import annotations

import shutil
import struct
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydot
import pytest

from n3ml.errors import N3mlError
from n3ml.ir import LIF, Add, Delay, Dense, Graph, Input, Output
from n3ml.ir.text import load
from n3ml.viz import DotOptions, colour_of, dot_source, render

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples" / "graphs").glob("*.n3ml"))
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (make sysdeps)")


def svg_groups(path: Path, cls: str) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def title(g: ET.Element) -> str:
    return g.find(f"{SVG}title").text


def texts(g: ET.Element) -> list[str]:
    return [t.text or "" for t in g.iter(f"{SVG}text")]


def fill(g: ET.Element) -> str:
    for el in g:
        if el.tag in (f"{SVG}path", f"{SVG}polygon", f"{SVG}ellipse") and el.get("fill") not in (None, "none"):
            return el.get("fill")
    raise AssertionError(f"node {title(g)} has no filled shape")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def deep_graph(blocks: int = 66) -> Graph:
    """x -> 66 residual blocks (fc, res, lif) -> out: 200 nodes, 265 edges."""
    rng = np.random.default_rng(0)
    g = Graph("deep")
    prev = g.add("x", Input(shape=(8,)))
    for i in range(blocks):
        fc = g.add(f"blk{i}_fc", Dense(weight=rng.normal(size=(8, 8))), prev)
        a = g.add(f"blk{i}_res", Add(), fc, prev)
        prev = g.add(f"blk{i}_lif", LIF(tau=5.0), a)
    g.add("out", Output(), prev)
    return g


@needs_dot
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_svg_of_every_example(path, tmp_path):
    g = load(str(path))
    out = render(g, tmp_path / "g.svg")
    nodes = svg_groups(out, "node")
    assert sorted(title(n) for n in nodes) == sorted(g.nodes)  # one SVG node per IR node, by name
    assert len(svg_groups(out, "edge")) == len(g.edges)
    types = g.verify()
    for n in nodes:
        name = title(n)
        prim = g.nodes[name]
        lines = texts(n)
        assert lines[0] == f"{name} : {prim.op}"
        assert "x".join(map(str, types[name].shape)) in lines[1]
        assert fill(n) == colour_of(prim.op)
    edge_labels = {title(e): texts(e) for e in svg_groups(out, "edge")}
    for e in g.edges:
        shape = "x".join(map(str, types[e.src].shape))
        assert any(shape in t for t in edge_labels[f"{e.src}->{e.dst}"])


@needs_dot
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_png_and_pdf_of_every_example(path, tmp_path):
    g = load(str(path))
    data = render(g, tmp_path / "g.png").read_bytes()
    w, h = png_size(data)
    assert len(data) > 5000 and w > 100 and h > 100 * (len(g.nodes) // 3)
    pdf = render(g, tmp_path / "g.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and len(pdf) > 2000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_dot_source_parses_back(path, tmp_path):
    g = load(str(path))
    out = render(g, tmp_path / "g.dot")
    (parsed,) = pydot.graph_from_dot_data(out.read_text())
    names = [n.get_name().strip('"') for n in parsed.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    assert sorted(names) == sorted(g.nodes)
    assert len(parsed.get_edges()) == len(g.edges)
    shapes = {n.get_name().strip('"'): n.get("shape") for n in parsed.get_nodes()}
    for name in g.input_names:
        assert shapes[name] == "invhouse"
    for name in g.output_names:
        assert shapes[name] == "house"


@needs_dot
def test_recurrent_edge_is_dashed_back_edge(tmp_path):
    g = load(str(ROOT / "examples/graphs/recurrent.n3ml"))
    out = render(g, tmp_path / "r.svg")
    edges = {title(e): e for e in svg_groups(out, "edge")}
    loop = edges["loop->fc_rec"]
    assert loop.find(f"{SVG}path").get("stroke-dasharray")
    assert any("z^-1" in t for t in texts(loop))
    solid = [e for t, e in edges.items() if t != "loop->fc_rec"]
    assert not any(e.find(f"{SVG}path").get("stroke-dasharray") for e in solid)
    src = dot_source(g)
    assert "constraint=false" in src.split('"loop" -> "fc_rec"')[1].splitlines()[0]


def test_feedforward_delay_is_dashed_but_not_a_back_edge():
    g = Graph("ff")
    g.add("x", Input(shape=(3,)))
    g.add("d", Delay(steps=2), "x")
    g.add("out", Output(), "d")
    line = [ln for ln in dot_source(g).splitlines() if ln.startswith('"d" -> "out"')][0]
    assert "dashed" in line and "constraint=false" not in line


@needs_dot
def test_params_and_quantization_in_boxes(tmp_path):
    g = load(str(ROOT / "examples/graphs/quantized.n3ml"))
    out = render(g, tmp_path / "q.svg")
    box = {title(n): " | ".join(texts(n)) for n in svg_groups(out, "node")}
    n1 = g.nodes["n1"]
    assert f"du={n1.du}, dv={n1.dv} /2^{n1.decay_bits}" in box["n1"]
    assert f"theta={n1.theta}" in box["n1"] and f"int{n1.state_bits} state" in box["n1"]
    w = g.nodes["fc1"].weight
    assert f"{g.nodes['fc1'].weight_format} [{w.min()}, {w.max()}]" in box["fc1"]  # declared format
    g.replace("fc1", weight_format=None)
    box = {title(n): " | ".join(texts(n)) for n in svg_groups(render(g, tmp_path / "q2.svg"), "node")}
    bits = next(b for b in range(1, 65) if -(2 ** (b - 1)) <= w.min() and w.max() < 2 ** (b - 1))
    assert f"int{bits} [{w.min()}, {w.max()}]" in box["fc1"]  # format inferred from the values
    mlp = load(str(ROOT / "examples/graphs/spiking_mlp.n3ml"))
    src = dot_source(mlp)
    assert "tau=20 ms" in src and "refractory 1 steps" in src and "reset to 0" in src
    bare = dot_source(mlp, DotOptions(params=False))
    assert "tau=" not in bare and "theta" not in bare and "lif2 : LIF" in bare


@needs_dot
def test_left_to_right_layout(tmp_path):
    g = load(str(ROOT / "examples/graphs/spiking_mlp.n3ml"))

    def wh(p):
        root = ET.parse(p).getroot()
        return float(root.get("width").rstrip("pt")), float(root.get("height").rstrip("pt"))

    w, h = wh(render(g, tmp_path / "tb.svg"))
    assert h > 2 * w
    w, h = wh(render(g, tmp_path / "lr.svg", DotOptions(rankdir="LR")))
    assert w > 2 * h


def test_colours_are_stable_per_type():
    assert colour_of("LIF") == colour_of("LIF") != colour_of("Dense")
    assert colour_of("SomeFutureOp") == colour_of("SomeFutureOp")
    a = dot_source(load(str(ROOT / "examples/graphs/spiking_mlp.n3ml")))
    b = dot_source(load(str(ROOT / "examples/graphs/cuba.n3ml")))
    col = f'fillcolor="{colour_of("Dense")}"'
    assert a.count(col) == 2 and b.count(col) == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dot_keywords_as_node_names():
    g = Graph("kw")
    g.add("node", Input(shape=(2,)))
    g.add("edge", Dense(weight=np.eye(2)), "node")
    g.add("graph", Output(), "edge")
    (parsed,) = pydot.graph_from_dot_data(dot_source(g))
    assert sorted(n.get_name().strip('"') for n in parsed.get_nodes() if n.get_name().startswith('"')) == \
        ["edge", "graph", "node"]
    assert len(parsed.get_edges()) == 2


@needs_dot
def test_200_nodes_under_5_seconds_with_clusters(tmp_path):
    g = deep_graph()
    assert len(g.nodes) == 200
    t0 = time.perf_counter()
    out = render(g, tmp_path / "deep.svg")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"rendering 200 nodes took {elapsed:.2f} s"
    assert len(svg_groups(out, "node")) == 200 and len(svg_groups(out, "edge")) == len(g.edges)
    clusters = svg_groups(out, "cluster")
    assert sorted(title(c) for c in clusters) == sorted(f"cluster_blk{i}" for i in range(66))
    flat = render(g, tmp_path / "flat.svg", DotOptions(clusters="none"))
    assert svg_groups(flat, "cluster") == []


def test_small_graphs_are_not_clustered_unless_asked():
    g = load(str(ROOT / "examples/graphs/spiking_cnn.n3ml"))
    assert "subgraph" not in dot_source(g)
    src = dot_source(g, DotOptions(clusters="prefix"))
    # conv1, if1 and pool1 share the block index 1; if2 is the only node of block 2, so it stays outside
    assert "subgraph cluster_idx1" in src and 'label="block 1"' in src and "cluster_idx2" not in src
    block = src.split("subgraph cluster_idx1")[1].split("}")[0]
    assert sorted(ln.split()[0].strip('"') for ln in block.splitlines() if ln.startswith('"')) == \
        ["conv1", "if1", "pool1"]


def test_missing_dot_gives_install_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    g = load(str(ROOT / "examples/graphs/cuba.n3ml"))
    for suffix in ("svg", "png", "pdf"):
        with pytest.raises(N3mlError, match="apt-get install graphviz"):
            render(g, tmp_path / f"g.{suffix}")
        assert not (tmp_path / f"g.{suffix}").exists()
    assert "->" in render(g, tmp_path / "g.dot").read_text()  # .dot needs no Graphviz


def test_unknown_format_is_refused(tmp_path):
    g = load(str(ROOT / "examples/graphs/cuba.n3ml"))
    with pytest.raises(N3mlError, match=r"\.svg, \.png, \.pdf, \.dot"):
        render(g, tmp_path / "g.jpg")


def test_an_adaptive_fixed_point_neuron_shows_its_threshold_jump_and_decay():
    from n3ml.ir import budget
    from n3ml.ir.text import parse

    text = """n3ml 1
graph g(dt=1.0ms) {{
  x = Input(shape=(3,), kind="spike")
  d = Dense(x, weight=tensor<i64>(3, 3)[1, 2, 3, 4, 5, 6, 7, 8, 9])
  n = FixedCubaLIF(d, du=4096, dv=100, theta=640{extra})
  y = Output(n)
}}
"""
    plain, adaptive = parse(text.format(extra="")), parse(text.format(extra=", db=205, q=1280"))
    assert "adapt q=1280, db=205 /2^12" in dot_source(adaptive)
    assert "adapt" not in dot_source(plain)
    # the memory estimate counts the threshold state b (one value per neuron and sample)
    grow = budget.estimate_bytes(adaptive, steps=4, batch=2) - budget.estimate_bytes(plain, steps=4, batch=2)
    assert grow == 2 * 3 * budget.ITEM
