"""`-O KEY=VALUE`: every target declares its keys; unknown keys and bad values are errors; values that reach
emitted files cannot change the emitted code."""

from __future__ import annotations

import ast
import json
import re

import pytest

from n3ml.cli import main
from n3ml.errors import N3mlError
from n3ml.ir.text import load
from n3ml.registry import TARGETS, lookup

from .conftest import REPO

DIGITS = REPO / "examples" / "digits" / "digits_snn.n3ml"  # LIF reset to value, LI readout: every target takes it


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_declares_its_options(name):
    target = lookup(TARGETS, name, "target")()
    assert isinstance(target.options, dict)
    assert all(isinstance(k, str) and isinstance(h, str) and h for k, h in target.options.items())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_an_unknown_key_is_refused_by_check_listing_the_known_ones(name):
    """check() is what `n3ml verify` calls with its -O TARGET.KEY=VALUE options."""
    target = lookup(TARGETS, name, "target")()
    with pytest.raises(N3mlError) as e:
        target.check(load(DIGITS), {"no_such_option": "1"})
    msg = str(e.value)
    assert "no_such_option" in msg and name in msg
    assert all(k in msg for k in target.options) if target.options else "takes no options" in msg


@pytest.mark.parametrize("argv, message", [
    (["--target", "lava", "-O", "netz=true"], "unknown option netz for target lava; known: netx: .*source: "),
    (["--target", "pynn", "-O", "simulater=nest"], "unknown option simulater for target pynn; known: simulator"),
    (["--target", "nest", "-O", "x=1"], "target nest takes no options"),
    (["--target", "ir", "-O", "x=1", "-O", "y=2"], "target ir takes no options.*x, y"),
    (["--target", "lava", "-O", "netx=maybe"], "netx='maybe': expected true or false"),
    (["--target", "pynn", "-O", "simulator=loihi"], "simulator='loihi'; expected one of"),
    (["--target", "lava", "-O", "netx=1", "-O", "netx=0"], "netx is given twice"),
    (["--target", "lava", "-O", "=1"], "expects KEY=VALUE"),
    (["--target", "lava", "-O", "source"], "expects KEY=VALUE"),
])
def test_bad_options_are_one_line_errors_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(DIGITS), "-o", str(out), *argv]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func))
    return names


def test_a_source_that_breaks_out_of_a_docstring_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    hostile = f'""" ; import os; os.system("touch {marker}") ; """'
    assert main(["convert", str(DIGITS), "--target", "lava", "-o", str(tmp_path / "out"), "-O",
                 f"source={hostile}"]) == 1
    assert "lava option source" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["x ; import os ; os.system(1) #", "a {b} %s ${HOME} $(id) <script>"])
def test_an_allowed_source_is_data_in_the_emitted_program(source, tmp_path):
    out = tmp_path / "out"
    assert main(["convert", str(DIGITS), "--target", "lava", "-o", str(out), "-O", f"source={source}"]) == 0
    for py in out.glob("*.py"):
        text = py.read_text()
        tree = ast.parse(text)
        compile(text, str(py), "exec")
        assert not any("system" in c for c in _calls(tree)), py
        assert source not in text  # it lives in a data file, not in code
    assert source in json.dumps(json.loads((out / "network.json").read_text()))
