"""List every target: the primitives it accepts, its legalization pipeline and the remedies for the others.

    n3ml targets [NAME ...]

`n3ml convert` and `n3ml verify` run a target's pipeline (after any -p) before its check; a node still
illegal afterwards is refused with the target's reason and the pass that would legalize it, at its cost
(docs/targets.md).
"""

from __future__ import annotations

import textwrap

from ..errors import N3mlError
from ..registry import TARGETS, lookup


def add_arguments(p) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"targets to describe (default: all of "
                   f"{', '.join(sorted(TARGETS))})")


def describe(name: str, target) -> list[str]:
    """The lines printed for one target."""
    legality = getattr(target, "legality", None)
    summary = getattr(target, "summary", None) or (target.__doc__ or "").strip().splitlines()[0]
    lines = [f"{name}: {summary}"]
    if legality is None:
        return lines + ["  legal: decided by the target's own check (no table declared); no legalization"]
    wrap = dict(width=110, initial_indent="  ", subsequent_indent="      ")
    lines += textwrap.wrap("legal: " + ", ".join(legality.legal), **wrap)
    lines.append(f"  legalize: {', '.join(legality.pipeline) or '(nothing to do)'}")
    for op, remedies in legality.remedies.items():
        for r in remedies:
            on = "" if r.on == "any" else f" on {r.on} inputs"
            lines += textwrap.wrap(f"remedy: {op}{on} -> -p {r.pass_name} ({r.cost})", **wrap)
    return lines


def run(args) -> int:
    names = args.names or sorted(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise N3mlError(f"unknown target(s) {', '.join(unknown)}; available: {', '.join(sorted(TARGETS))}")
    blocks = []
    for name in names:
        try:
            target = lookup(TARGETS, name, "target")
        except N3mlError as e:  # a target whose simulator is missing is still listed
            blocks.append([f"{name}: {e}"])
            continue
        blocks.append(describe(name, target))
    print("\n\n".join("\n".join(b) for b in blocks))
    return 0
