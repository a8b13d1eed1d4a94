"""List the registered graph passes and their options."""

from __future__ import annotations

import dataclasses

from ..passes import PASSES, get_pass_class


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    for name in sorted(PASSES):
        cls = get_pass_class(name)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        print(f"{name:<18} {cls.summary}" + (f"  [{opts}]" if opts else ""))
    return 0
