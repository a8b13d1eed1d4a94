"""Target options (`-O KEY=VALUE`): each target declares the keys it reads as data, checked in one place.

A target class has `options: dict[str, str]` (key -> one-line help); an empty dict means it takes
none. An unknown key is an error that lists the known ones, never silently ignored: a misspelt
`-O simulater=nest` would otherwise emit for the default simulator. Values are strings; the target
checks each value it reads (`flag`, `choice`, `label` below), so none reaches emitted files unchecked.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import N3mlError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def known(target: Any) -> dict[str, str] | None:
    """The options `target` declares, or None for a target that declares nothing (it checks its own)."""
    return getattr(target, "options", None)


def check_keys(target: Any, options: dict[str, Any] | None) -> dict[str, Any]:
    """`options` (possibly None) as a dict; N3mlError for a key the target does not declare."""
    options = dict(options or {})
    declared = known(target)
    if declared is None:
        return options
    name = getattr(target, "name", type(target).__name__)
    unknown = sorted(k for k in options if k not in declared)
    if unknown and not declared:
        raise N3mlError(f"target {name} takes no options (-O); found {', '.join(unknown)}")
    if unknown:
        listing = "; ".join(f"{k}: {h}" for k, h in sorted(declared.items()))
        raise N3mlError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for target {name}; "
                        f"known: {listing}")
    return options


def flag(target: str, key: str, value: Any, default: bool = False) -> bool:
    """A yes/no option: true/false, yes/no, on/off, 1/0."""
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise N3mlError(f"{target} option {key}={value!r}: expected true or false")


def choice(target: str, key: str, value: Any, allowed: tuple[str, ...] | list[str], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise N3mlError(f"{target} option {key}={value!r}; expected one of {', '.join(allowed)}")
    return value


_LABEL = re.compile(r"[^\x00-\x1f\x7f\"'\\]{0,200}")


def label(target: str, key: str, value: Any, default: str) -> str:
    """A short free-text label that emitted files carry (a comment, a JSON field): one line of at most
    200 characters, without quotes, backslashes or control characters, so that it cannot end a string
    or comment of the file it lands in, whatever the emitter does with it."""
    if value is None:
        return default
    text = str(value)
    if not _LABEL.fullmatch(text) or not text.isprintable():
        raise N3mlError(f"{target} option {key}: expected one line of at most 200 characters without quotes, "
                        f"backslashes or control characters; found {text[:60]!r}")
    return text
