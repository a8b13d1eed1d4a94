"""Every module of n3ml imports on its own, and the module import graph has no cycle.

The graph counts every import statement, including those inside functions (found with ast), so two
modules that reach each other through a function-local import are a cycle too: shared names belong
in a leaf module both import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "n3ml"
# modules that need an optional simulator to import (they are the emitted programs' runtimes)
OPTIONAL = {"nest", "pyNN", "lava", "spinnaker"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        if p.name == "__main__.py":  # runs the command line when imported
            continue
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mod: str, path: Path) -> set[str]:
    """n3ml modules imported anywhere in `mod` (top level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(mod, is_pkg, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in MODULES:  # `import n3ml.ir.prims as P` names a module; attributes do not
                n = n.rpartition(".")[0]
            if n and n.startswith("n3ml") and n != mod:
                found.add(n)
    return found


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for mod, path in MODULES.items():
        g.add_node(mod)
        for dep in _imports(mod, path):
            # importing a.b.c runs a and a.b first: a package's own __init__ is not a dependency cycle
            if not mod.startswith(dep + "."):
                g.add_edge(mod, dep)
    return g


def test_the_import_graph_is_acyclic():
    g = import_graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles in n3ml: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:10])


def test_the_ir_imports_nothing_else_of_n3ml_and_no_torch():
    for mod, path in MODULES.items():
        if mod.startswith("n3ml.ir"):
            deps = _imports(mod, path)
            assert all(d.startswith("n3ml.ir") or d == "n3ml.errors" for d in deps), (mod, deps)
            text = path.read_text()
            assert "import torch" not in text and "from torch" not in text, mod


def test_passes_do_not_import_engines_or_targets():
    for mod, path in MODULES.items():
        if mod.startswith("n3ml.passes"):
            deps = _imports(mod, path)
            bad = [d for d in deps if d.startswith(("n3ml.backends", "n3ml.frontends", "n3ml.registry", "n3ml.nn"))]
            assert not bad, f"{mod} imports {bad}: passes stay target-neutral"


def test_every_module_imports_in_isolation():
    """One interpreter imports every module by itself: before each, every n3ml module is dropped from sys.modules."""
    script = (
        "import importlib, sys, traceback\n"
        "mods = sys.argv[1:]\n"
        "failed = []\n"
        "for m in mods:\n"
        "    for k in [k for k in sys.modules if k == 'n3ml' or k.startswith('n3ml.')]:\n"
        "        del sys.modules[k]  # third-party extensions stay: they cannot be imported twice\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        f"        if e.name and e.name.split('.')[0] in {sorted(OPTIONAL)!r}:\n"
        "            continue\n"
        "        failed.append(f'{m}: {e!r}')\n"
        "    except Exception as e:\n"
        "        failed.append(f'{m}: {e!r}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, *MODULES], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


@pytest.mark.parametrize("mod", ["n3ml.ir", "n3ml.ir.neurons", "n3ml.passes", "n3ml.cli"])
def test_key_modules_import_in_a_fresh_interpreter(mod):
    r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
