"""Run `n3ml` in-process on one fuzz case and classify what happened.

A case passes when the command exits 0, or 1 with one message and no traceback. It fails on an exception
escaping `n3ml.cli.main` (a traceback), exit 2 (the CLI's "internal error": a bug caught at the top), any
other status, a hang past the per-case timeout, or a round-trip failure (a graph that checks OK must print,
with `fmt`, a text that checks OK and prints back to itself).

Budgets: N3ML_FUZZ_BUDGET (cases, default the small CI budget), N3ML_FUZZ_SEED, N3ML_FUZZ_TIMEOUT (seconds
per command), N3ML_FUZZ_SAVE (a directory where failing inputs are kept for reproduction).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from n3ml.cli import main

ROOT = Path(__file__).parents[2]
FAILING = ("traceback", "internal", "hang", "status", "roundtrip")


def budget(default: int) -> int:
    return int(os.environ.get("N3ML_FUZZ_BUDGET", default))


def seed() -> int:
    return int(os.environ.get("N3ML_FUZZ_SEED", 1234))


def timeout() -> float:
    return float(os.environ.get("N3ML_FUZZ_TIMEOUT", 30))


class Hang(BaseException):
    """Raised by the per-case alarm; a BaseException so that no `except Exception` in n3ml swallows it."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | error | internal | traceback | hang | status | roundtrip
    rc: int | None
    out: str
    detail: str  # the error message, or the exception and its innermost frame

    @property
    def failed(self) -> bool:
        return self.kind in FAILING


def _on_alarm(signum, frame):
    raise Hang()


def run_cli(argv: list[str], limit: float | None = None) -> Outcome:
    """`n3ml ARGV` in this process, with stdout/stderr captured and a wall-clock limit."""
    limit = timeout() if limit is None else limit
    out, err = io.StringIO(), io.StringIO()
    env = {k: os.environ.pop(k) for k in ("N3ML_DEBUG", "N3ML_TRACEBACK") if k in os.environ}
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except Hang:
        return Outcome("hang", None, out.getvalue(), f"no answer within {limit:g} s")
    except BaseException as e:  # noqa: BLE001 -- anything escaping main is what the fuzzer looks for
        tb = traceback.extract_tb(e.__traceback__)
        last = f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else "?"
        return Outcome("traceback", None, out.getvalue(), f"{type(e).__name__}: {str(e)[:300]} (at {last})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.environ.update(env)
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    msg = next((ln for ln in lines if ": error:" in ln or ": internal error:" in ln), lines[-1] if lines else "")
    if rc == 0:
        return Outcome("ok", 0, out.getvalue(), "")
    if rc == 1 and "Traceback (most recent call last)" not in text:
        return Outcome("error", 1, out.getvalue(), msg[:300])
    if rc == 2:
        return Outcome("internal", 2, out.getvalue(), msg[:300])
    return Outcome("status", rc, out.getvalue(), text[-300:])


def roundtrip(path: Path) -> Outcome | None:
    """For a graph that checks OK: `fmt` prints a text that checks OK and prints back to itself.
    Returns the failing outcome, or None."""
    first = run_cli(["fmt", str(path)])
    if first.kind != "ok":
        return Outcome("roundtrip", first.rc, "", f"checks OK but fmt fails: {first.kind}: {first.detail}")
    again = path.with_name("roundtrip-" + path.name)
    again.write_text(first.out, encoding="utf-8")
    check = run_cli(["check", str(again)])
    if check.kind != "ok":
        return Outcome("roundtrip", check.rc, "", f"fmt's output does not check: {check.detail}")
    second = run_cli(["fmt", str(again)])
    if second.out != first.out:
        return Outcome("roundtrip", second.rc, "", "fmt of fmt's output differs from it")
    return None


@dataclass
class Tally:
    """Counts of outcomes per family, and the failures with what reproduces them."""

    counts: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, family: str, outcome: Outcome, case: str, files: dict[str, bytes] | None = None) -> None:
        self.counts[(family, outcome.kind)] += 1
        if outcome.failed:
            self.failures.append(f"[{family}] {case}: {outcome.kind}: {outcome.detail}")
            save = os.environ.get("N3ML_FUZZ_SAVE")
            if save and files:
                d = Path(save) / f"{family}-{len(self.failures):04d}"
                d.mkdir(parents=True, exist_ok=True)
                for name, data in files.items():
                    (d / name).write_bytes(data)
                (d / "CASE.txt").write_text(f"{case}\n{outcome.kind}: {outcome.detail}\n")

    def total(self, kind: str | None = None) -> int:
        return sum(n for (f, k), n in self.counts.items() if kind is None or k == kind)

    def table(self) -> str:
        fams = sorted({f for f, _ in self.counts})
        kinds = ["ok", "error", *FAILING]
        lines = [f"{'family':<14}" + "".join(f"{k:>11}" for k in kinds) + f"{'total':>9}"]
        for f in fams:
            row = [self.counts[(f, k)] for k in kinds]
            lines.append(f"{f:<14}" + "".join(f"{n:>11}" for n in row) + f"{sum(row):>9}")
        tot = [self.total(k) for k in kinds]
        lines.append(f"{'all':<14}" + "".join(f"{n:>11}" for n in tot) + f"{sum(tot):>9}")
        return "\n".join(lines)


@contextlib.contextmanager
def case_dir(base: Path):
    """A fresh directory per case, removed afterwards (cases never see each other's files)."""
    base.mkdir(parents=True, exist_ok=True)
    d = base / "case"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
