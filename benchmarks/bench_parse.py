"""Parse + verify (and print) time of .n3ml text against its size: the verifier and the parser are linear.

A chain of Delay nodes (the shape of the file that took 17.8 s at 20k nodes and over 100 s at 200k
before the fix), and the same chain written backwards (worst order for type inference).

    python benchmarks/bench_parse.py [--sizes 10000,50000,200000] [--lark]

--lark also times lark's LALR parser alone on each text (the parser of record, used for every
text the fast path hands back, e.g. any text with an error).
"""

from __future__ import annotations

import argparse
import gc
import time

from n3ml.ir.printer import dumps
from n3ml.ir.text import _PARSER, parse


def chain(n: int, backwards: bool = False) -> str:
    order = reversed(range(n)) if backwards else range(n)
    body = [f"  d{i} = Delay({'d%d' % (i - 1) if i else 'x'}, steps=1)" for i in order]
    return ("n3ml 1\ngraph g() {\n  x = Input(shape=(2,))\n" + "\n".join(body)
            + f"\n  out = Output(d{n - 1})\n}}\n")


def timed(fn):
    """(wall seconds, CPU seconds of this process, result): on a shared machine the CPU time is
    what the wall time would be without the other processes."""
    gc.collect()  # start each timing from a collected heap, as a fresh `n3ml check` process does
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000,200000")
    ap.add_argument("--lark", action="store_true", help="also time lark's parser alone")
    args = ap.parse_args()
    print(f"{'nodes':>8} {'order':>9} {'MB':>6} {'parse+verify s':>15} {'(cpu s)':>8} {'cpu us/node':>12} "
          f"{'print s':>8} {'(cpu s)':>8}" + (f" {'lark alone s':>13} {'(cpu s)':>8}" if args.lark else ""))
    for n in (int(s) for s in args.sizes.split(",")):
        for backwards in (False, True):
            text = chain(n, backwards)
            t_parse, c_parse, g = timed(lambda: parse(text))
            t_print, c_print, _ = timed(lambda: dumps(g))
            row = (f"{n:>8} {'backward' if backwards else 'forward':>9} {len(text) / 1e6:>6.1f} {t_parse:>15.2f} "
                   f"{c_parse:>8.2f} {1e6 * c_parse / n:>12.1f} {t_print:>8.2f} {c_print:>8.2f}")
            if args.lark:
                t_lark, c_lark, _ = timed(lambda: _PARSER.parse(text))
                row += f" {t_lark:>13.2f} {c_lark:>8.2f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
