"""`make fuzz`: the fuzz suite with a longer budget, printing the outcome counts.

    N3ML_FUZZ_BUDGET=3000 python -m tests.fuzz      # cases for each fuzzer (files, text)

Failing inputs are kept under N3ML_FUZZ_SAVE (default fuzz-failures/); the exit status is 1 if any case
failed (a traceback, an internal error, a hang or a round-trip failure).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("N3ML_FUZZ_BUDGET", "3000")
os.environ.setdefault("N3ML_FUZZ_SAVE", "fuzz-failures")

from .files import families, fuzz_family, split  # noqa: E402 -- after the budget is set
from .harness import Tally, budget, seed  # noqa: E402
from . import test_text_fuzz  # noqa: E402


def main() -> int:
    n = budget(3000)
    tally = Tally()
    t0 = time.perf_counter()
    fams = families()
    share = split(n, fams)
    with tempfile.TemporaryDirectory(prefix="n3ml-fuzz-") as work:
        for fam in fams:
            t = time.perf_counter()
            fuzz_family(fam, share[fam.name], seed(), Path(work), tally)
            print(f"{fam.name}: {share[fam.name]} cases, {time.perf_counter() - t:.1f} s", file=sys.stderr,
                  flush=True)
    t = time.perf_counter()
    text_error = None
    try:
        test_text_fuzz.test_mutated_text_never_tracebacks()
    except Exception as e:  # noqa: BLE001 -- hypothesis re-raises the shrunk failure; report it with the rest
        text_error = e
    print(f"text: {test_text_fuzz.TALLY.total()} examples, {time.perf_counter() - t:.1f} s", file=sys.stderr)
    for key, count in test_text_fuzz.TALLY.counts.items():
        tally.counts[key] += count
    tally.failures += test_text_fuzz.TALLY.failures
    print(f"\nn3ml fuzz: seed {seed()}, budget {n} per fuzzer, {time.perf_counter() - t0:.0f} s\n")
    print(tally.table())
    failed = sum(tally.total(k) for k in ("traceback", "internal", "hang", "status", "roundtrip"))
    print(f"\ncases tried {tally.total()}, accepted {tally.total('ok')}, clean errors {tally.total('error')}, "
          f"failures {failed}")
    for f in tally.failures:
        print("FAIL", f)
    if text_error is not None:
        print(f"FAIL [text] hypothesis: {text_error}")
    return 1 if failed or text_error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
