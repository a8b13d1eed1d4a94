"""`n3ml convert -o OUT`: one writer per OUT, atomic --force, no stale temporaries, clear errors for bad -o."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from n3ml import outdir, registry
from n3ml.cli import main
from n3ml.commands.convert import _write_report

from .conftest import REPO

GRAPH = REPO / "examples" / "graphs" / "spiking_mlp.n3ml"


class SlowTarget:
    """A target whose emit announces itself, then waits: holds a convert inside the locked region."""

    name = "slow"
    options = {"who": "a label written to OUT/who", "wait": "seconds to wait after starting (default 10)",
               "fail": "true to raise after writing"}
    entered = threading.Event()
    release = threading.Event()

    def check(self, graph, options=None):
        pass

    def emit(self, graph, out_dir, *, steps=None, options=None):
        options = options or {}
        (Path(out_dir) / "who").write_text(options.get("who", "?"))
        (Path(out_dir) / "big").write_bytes(b"\0" * 4096)
        if options.get("fail"):
            raise registry.N3mlError("the slow target failed on purpose")
        if "marker" in options:  # for the subprocess test: say where the temporary is, then wait
            Path(options["marker"]).write_text(str(out_dir))
        SlowTarget.entered.set()
        SlowTarget.release.wait(float(options.get("wait", 10)))

    def run_argv(self, out_dir):
        return []


SlowTarget.options["marker"] = "file to write the temporary's path into"


@pytest.fixture
def slow(monkeypatch):
    monkeypatch.setitem(registry.TARGETS, "slow", f"{__name__}:SlowTarget")
    SlowTarget.entered.clear()
    SlowTarget.release.clear()
    yield
    SlowTarget.release.set()


def _convert(out: Path, *extra: str) -> int:
    return main(["convert", str(GRAPH), "-o", str(out), *extra])


def _beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_second_convert_on_the_same_out_fails_while_the_first_runs(slow, tmp_path, capsys):
    out = tmp_path / "out"
    rc: dict[str, int] = {}
    first = threading.Thread(target=lambda: rc.__setitem__("a", _convert(out, "--target", "slow", "-O", "who=A")))
    first.start()
    assert SlowTarget.entered.wait(30)
    for extra in ([], ["--force"]):
        assert _convert(out, "--target", "slow", "-O", "who=B", *extra) == 1
        err = capsys.readouterr().err
        assert f"another n3ml convert (pid {os.getpid()}) is writing it now" in err, err
    SlowTarget.release.set()
    first.join(30)
    assert rc == {"a": 0}
    assert (out / "who").read_text() == "A"
    assert _beside(out) == []  # no temporaries, and the lock file is gone
    assert _convert(out, "--target", "ir") == 1  # afterwards: OUT exists, so --force is needed
    assert "pass --force" in capsys.readouterr().err


def test_force_replaces_out_in_one_exchange(slow, tmp_path, monkeypatch):
    out = tmp_path / "out"
    SlowTarget.release.set()
    assert _convert(out, "--target", "slow", "-O", "who=old") == 0
    seen = []
    real = outdir.exchange

    def spy(a, b):
        done = real(a, b)
        seen.append((done, (Path(b) / "who").read_text(), (Path(a) / "who").read_text()))
        return done

    monkeypatch.setattr(outdir, "exchange", spy)
    assert _convert(out, "--target", "slow", "-O", "who=new", "--force") == 0
    assert seen == [(True, "new", "old")]  # one renameat2 swapped the trees: OUT was never missing
    assert (out / "who").read_text() == "new" and _beside(out) == []


def test_out_is_never_missing_during_repeated_force(tmp_path):
    out = tmp_path / "out"
    assert _convert(out, "--target", "ir") == 0
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if not (out / "model.n3ml").exists():
                missing.append(time.perf_counter())

    w = threading.Thread(target=watch)
    w.start()
    try:
        for _ in range(8):
            assert _convert(out, "--target", "ir", "--force") == 0
    finally:
        stop.set()
        w.join()
    assert missing == []
    assert _beside(out) == []


def test_force_and_noreplace_fall_back_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(outdir, "_renameat2", lambda src, dst, flags: False)
    out = tmp_path / "out"
    assert _convert(out, "--target", "ir") == 0
    assert _convert(out, "--target", "ir", "--force") == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.n3ml", "model.npz"]
    assert _beside(out) == []


def test_noreplace_never_clobbers_an_out_that_appears_meanwhile(slow, tmp_path, capsys):
    """Something other than n3ml (which would need the lock) creates OUT while the conversion runs."""
    out = tmp_path / "out"
    rc: dict[str, int] = {}
    t = threading.Thread(target=lambda: rc.__setitem__("a", _convert(out, "--target", "slow", "-O", "who=A")))
    t.start()
    assert SlowTarget.entered.wait(30)
    out.mkdir()
    (out / "precious").write_text("keep me")
    SlowTarget.release.set()
    t.join(30)
    assert rc == {"a": 1}
    assert "appeared while converting" in capsys.readouterr().err
    assert (out / "precious").read_text() == "keep me" and _beside(out) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    dead = _dead_pid()
    stale = [tmp_path / f".out.tmp-{dead}-abc123", tmp_path / f".out.old-{dead}-xyz"]
    for d in stale:
        d.mkdir()
        (d / "weights.npz").write_bytes(b"\0" * 100_000)
    live = tmp_path / f".out.tmp-{os.getppid()}-live"  # pytest's parent process is alive
    live.mkdir()
    other = tmp_path / f".other.tmp-{dead}-abc"  # another OUT's temporary: not ours to judge
    other.mkdir()
    assert _convert(out, "--target", "ir") == 0
    assert not any(d.exists() for d in stale)
    assert live.exists() and other.exists()


def test_a_run_killed_mid_write_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "tmp-path"
    code = ("import sys; from n3ml import registry; "
            f"registry.TARGETS['slow'] = 'tests.security.test_convert_output:SlowTarget'; "
            "from n3ml.cli import main; "
            f"sys.exit(main(['convert', {str(GRAPH)!r}, '-o', {str(out)!r}, '--target', 'slow', "
            f"'-O', 'marker={marker}', '-O', 'wait=120']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached emit"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    tmp = Path(marker.read_text())
    assert tmp.exists() and tmp.name.startswith(f".out.tmp-{proc.pid}-")
    assert not out.exists()
    assert _convert(out, "--target", "ir") == 0
    assert not tmp.exists() and out.is_dir()
    assert _beside(out) == []


def test_a_failing_emit_leaves_nothing(slow, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(out, "--target", "slow", "-O", "fail=1") == 1
    assert "failed on purpose" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ bad -o


def test_missing_parents_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    assert _convert(out, "--target", "ir") == 0
    assert (out / "model.n3ml").exists()


@pytest.mark.parametrize("case", ["out is a file", "parent is a file", "out is a symlink"])
def test_bad_outputs_are_one_line_errors(case, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = {"out is a file": tmp_path / "file", "parent is a file": tmp_path / "file" / "out",
           "out is a symlink": tmp_path / "link"}[case]
    if case == "out is a symlink":
        (tmp_path / "target").mkdir()
        out.symlink_to(tmp_path / "target")
    for extra in ([], ["--force"]):
        assert _convert(out, "--target", "ir", *extra) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(out) in err or str(out.parent) in err, err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_permission_denied_is_a_one_line_error(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert _convert(locked / "out", "--target", "ir") == 1
        err = capsys.readouterr().err
        assert "permission denied" in err.lower() and len(err.strip().splitlines()) == 1
    finally:
        locked.chmod(0o700)


def test_report_is_strict_json(tmp_path):
    path = tmp_path / "r.json"
    _write_report(str(path), {"gain": float("nan"), "scale": np.array([1.0, np.inf]), "n": np.int64(3)})

    def refuse(name):
        raise ValueError(name)

    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert doc == {"gain": None, "scale": [1.0, None], "n": 3}
    assert not math.isnan(doc["scale"][0])


def test_force_never_deletes_the_model_or_home(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert _convert(out, "--target", "ir") == 0
    model = out / "model.n3ml"  # convert the output again, into itself
    assert main(["convert", str(model), "-o", str(out), "--target", "ir", "--force"]) == 1
    assert "--force would delete" in capsys.readouterr().err and model.exists()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["convert", str(GRAPH), "-o", str(tmp_path), "--target", "ir", "--force"]) == 1
    err = capsys.readouterr().err
    assert "the home directory" in err and model.exists()
    monkeypatch.chdir(out)
    assert main(["convert", str(GRAPH), "-o", str(out), "--target", "ir", "--force"]) == 1
    assert "the working directory" in capsys.readouterr().err
