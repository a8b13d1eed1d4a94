"""Pass infrastructure: passes as frozen dataclasses, a registry and a pipeline runner.

A pass has a kebab-case `name`, typed options (its dataclass fields) and
`apply(graph) -> Graph` (it returns a new graph and never edits its input).
Pipelines are strings: ``"fold-batchnorm,normalize{percentile=99.9},quantize{profile=loihi2}"``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

from ..errors import N3mlError
from ..ir import Graph, VerifyError

log = logging.getLogger(__name__)

# pass name -> "module:Class", imported lazily
PASSES: dict[str, str] = {}


class Engine(NamedTuple):
    """How a pass may run a graph, supplied by its caller (passes import no engine or target).

    `run(graph, inputs, steps, record=[...], **options)` has the signature of the engines in
    n3ml.registry.ENGINES and returns an `n3ml.ir.interp.Result`.

    `held`, where the engine offers it, runs a graph many times without recompiling and without
    handing back full sequences: `held(graph, **options)` returns `f(inputs {name: (B, *shape)},
    steps, record) -> (outputs {name: (T, B, *shape)}, means {node: (B, *shape)})` (numpy float64),
    every input held constant for `steps` steps, `means` the time mean of each recorded node. Passes
    that simulate batch after batch (calibration, the report) use it; without it they call `run`.
    """

    name: str
    run: Callable[..., Any]
    options: dict[str, Any] = {}
    held: Callable[..., Any] | None = None


class PassError(N3mlError):
    """A pass failed or left an invalid graph; the message says which pass, after which others."""


@dataclass(frozen=True, kw_only=True)
class Pass:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def apply(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        raise NotImplementedError


def register_pass(spec_name: str, target: str) -> None:
    PASSES[spec_name] = target


def get_pass_class(name: str) -> type[Pass]:
    if name not in PASSES:
        raise PassError(f"unknown pass {name!r}; available: {', '.join(sorted(PASSES)) or '(none)'}")
    mod, _, attr = PASSES[name].partition(":")
    return getattr(importlib.import_module(mod), attr)


_ITEM = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def parse_pipeline(text: str) -> list[Pass]:
    """Parse ``"a,b{k=v,k2=v2}"`` into configured pass objects."""
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PassError(f"cannot parse pipeline at column {pos + 1}: {text[pos:]!r}; "
                            "expected name or name{key=value,...}")
        name, opts = m.group(1), m.group(3)
        cls = get_pass_class(name)
        passes.append(_configure(cls, name, opts or ""))
        pos = m.end()
    return passes


def _configure(cls: type[Pass], name: str, opts: str) -> Pass:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in opts.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in fields:
            raise PassError(f"pass {name}: unknown option {item!r}; options: "
                            f"{', '.join(fields) or '(none)'}")
        kwargs[key] = _coerce(name, key, fields[key], raw.strip())
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise PassError(f"pass {name}: {e}") from None


def _coerce(pname: str, key: str, f: dataclasses.Field, raw: str) -> Any:
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if typ.startswith("bool"):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if typ.startswith("int"):
            return int(raw)
        if typ.startswith("float"):
            return float(raw)
    except ValueError:
        raise PassError(f"pass {pname}: option {key} expects {typ}, found {raw!r}") from None
    return raw


class Progress:
    """Progress of one step that may take long, on stderr: a tqdm bar on a terminal, else one line when
    the step ends -- in both cases only for a step that takes over a second.

    Use as a context manager; `update(n)` after each unit of work. `enabled=False` (the context's
    "progress" set to False) silences it.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", *, enabled: bool = True,
                 stream=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.t0 = time.perf_counter()
        self.bar = None
        if enabled and _isatty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, delay=1.0, leave=False,
                            dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.perf_counter() - self.t0
        if self.bar is not None:
            self.bar.close()
        if self.enabled and seconds > 1.0 and exc[0] is None:
            of = f" {self.done} {self.unit}" if self.total else ""
            print(f"{self.desc}:{of} {seconds:.1f} s", file=self.stream, flush=True)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(context: dict[str, Any] | None, desc: str, total: int | None = None, unit: str = "it") -> Progress:
    """A `Progress` for a pass step, silenced when context["progress"] is False."""
    return Progress(desc, total, unit, enabled=(context or {}).get("progress", True) is not False)


class PassManager:
    """Runs passes in order, verifying the graph after each one."""

    def __init__(self, passes: list[Pass], *, verify: bool = True):
        self.passes = passes
        self.verify = verify

    @classmethod
    def from_string(cls, pipeline: str, **kw) -> PassManager:
        return cls(parse_pipeline(pipeline), **kw)

    def run(self, graph: Graph, context: dict[str, Any] | None = None) -> Graph:
        context = {} if context is None else context
        done: list[str] = []
        for p in self.passes:
            after = f" after [{', '.join(done)}]" if done else " (first pass)"
            try:
                with progress(context, f"pass {p.name}"):  # one line on stderr when a pass takes > 1 s
                    graph = p.apply(graph, context)
                if self.verify:
                    graph.verify()
            except (VerifyError, N3mlError) as e:
                raise PassError(f"failed in {p.name}{after}: {e}") from e
            log.info("pass %s done (%d nodes)", p.name, len(graph.nodes))
            done.append(p.name)
        return graph
