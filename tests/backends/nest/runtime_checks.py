"""Checks shared by the tests of the emitted runtimes (nest, pynn, lava): each runtime is an ordinary
module of the package that imports without its simulator and without n3ml, and that the emitted
program runs with n3ml made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from n3ml.ir import LIF, Dense, Graph, Input, Output
from n3ml.ir import graph as graph_module

SIMULATORS = ("nest", "pyNN", "lava", "mpi4py", "spinn_front_end_common", "spinn_utilities")  # only inside functions
BLOCK = "import sys\nfor _m in {mods!r}:\n    sys.modules[_m] = None  # `import _m` raises ImportError\n"

# A name that would break out of any string literal, comment or docstring of generated code, and run
# code if it did: the payload writes the file `marker`.
def hostile(marker: Path) -> str:
    return f"x\"\"\"'''\\\n__import__('pathlib').Path({str(marker)!r}).write_text('pwned')  # \"\n#"


def lint(path: Path) -> list[str]:
    """Problems of a runtime module: syntax, any import of n3ml, a simulator imported at module level,
    an import it never uses, a line over 120 characters."""
    src = path.read_text()
    tree = ast.parse(src, str(path))
    compile(src, str(path), "exec")
    problems = []
    top_level = {id(n) for n in ast.walk(tree) if not _in_function(tree, n)}
    imported: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [(a.name, a.asname or a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # the shared netlist_runtime, in-package twin of the copy beside run.py
                if [a.name for a in node.names] != ["netlist_runtime"] or node.module is not None:
                    problems.append(f"line {node.lineno}: relative import other than `from .. import netlist_runtime`")
                mods = [("netlist_runtime", a.asname or a.name) for a in node.names]
            else:
                mods = [(node.module, a.asname or a.name) for a in node.names]
        else:
            continue
        for module, bound in mods:
            root = module.split(".")[0]
            if root == "n3ml":
                problems.append(f"line {node.lineno}: imports n3ml ({module})")
            if root in SIMULATORS and id(node) in top_level:
                problems.append(f"line {node.lineno}: imports the simulator module {module} at module level")
            imported[bound] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    problems += [f"line {line}: `{name}` imported but unused" for name, line in imported.items() if name not in used]
    problems += [f"line {i}: {len(line)} characters" for i, line in enumerate(src.splitlines(), 1) if len(line) > 120]
    return problems


def _in_function(tree: ast.AST, target: ast.AST) -> bool:
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(n is target for n in ast.walk(fn)):
            return True
    return False


def import_without(modules: list[str], code: str = "") -> subprocess.CompletedProcess:
    """Import the runtime `modules` in a fresh interpreter where no simulator can be imported."""
    prog = BLOCK.format(mods=SIMULATORS) + "".join(f"import {m}\n" for m in modules) + code
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120)


def run_without_n3ml(program: Path, args: list[str], python: str = sys.executable, cwd: Path | None = None,
                     block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the emitted `program` (its __main__) with n3ml (and the modules `block`) made unimportable."""
    prog = (BLOCK.format(mods=("n3ml", *block)) + "import runpy\n"
            f"sys.argv = [{str(program)!r}, *{args!r}]\n"
            f"runpy.run_path({str(program)!r}, run_name='__main__')\n")
    return subprocess.run([python, "-c", prog], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
def any_names(monkeypatch):
    """Let the graph take names the IR refuses, to show that the emitter would not depend on that."""
    class Anything:
        @staticmethod
        def match(_name):
            return True

    monkeypatch.setattr(graph_module, "NAME_RE", Anything)


def hostile_graph(bad: str) -> Graph:
    rng = np.random.default_rng(4)
    g = Graph(name=bad + "g", dt=1.0)
    g.add(bad + "in", Input(shape=(5,)))
    g.add(bad + "fc", Dense(weight=rng.normal(0.5, 0.4, (3, 5)), bias=np.full(3, 0.05)), bad + "in")
    g.add(bad + "lif", LIF(tau=4.0, theta=0.6, reset="to-value"), bad + "fc")
    g.add(bad + "out", Output(), bad + "lif")
    return g
