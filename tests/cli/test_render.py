"""`n3ml render` on the examples: files written, options applied, missing Graphviz explained."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from n3ml.cli import main
from n3ml.ir.text import load

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples" / "graphs").glob("*.n3ml"))
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (make sysdeps)")


def node_titles(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "node"]


@needs_dot
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_render_svg_and_png(path, tmp_path, capsys):
    svg = tmp_path / f"{path.stem}.svg"
    assert main(["render", str(path), "-o", str(svg)]) == 0
    assert sorted(node_titles(svg)) == sorted(load(str(path)).nodes)
    png = tmp_path / f"{path.stem}.png"
    assert main(["render", str(path), "-o", str(png), "--lr", "--no-params"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 3000
    assert "wrote" in capsys.readouterr().err


def test_render_dot_options(tmp_path):
    path = ROOT / "examples/graphs/spiking_mlp.n3ml"
    out = tmp_path / "g.dot"
    assert main(["render", str(path), "-o", str(out), "--lr", "--no-params", "--no-edge-labels"]) == 0
    text = out.read_text()
    assert "rankdir=LR" in text and "tau=" not in text and "spike[32]" in text  # the shape stays in the box
    assert '"lif1" -> "fc2";' in text  # no edge label
    assert main(["render", str(path), "-o", str(out)]) == 0
    text = out.read_text()
    assert "rankdir=TB" in text and "tau=10 ms" in text and '"lif1" -> "fc2" [label="spike[32]"]' in text


def test_render_without_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    path = ROOT / "examples/graphs/cuba.n3ml"
    assert main(["render", str(path), "-o", str(tmp_path / "g.svg")]) == 1
    err = capsys.readouterr().err
    assert "n3ml render: error:" in err and "apt-get install graphviz" in err and "Traceback" not in err
    assert not (tmp_path / "g.svg").exists()
    assert main(["render", str(path), "-o", str(tmp_path / "g.dot")]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph cuba")


def test_render_errors(tmp_path, capsys):
    path = ROOT / "examples/graphs/cuba.n3ml"
    assert main(["render", str(path), "-o", str(tmp_path / "g.bmp")]) == 1
    assert "expected one of .svg, .png, .pdf, .dot" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "nope.n3ml"), "-o", str(tmp_path / "g.dot")]) == 1
    assert "no such file" in capsys.readouterr().err
