"""The torch executor: any IR graph as a batched, differentiable `torch.nn.Module` (CPU or GPU).

`compile(graph)` returns an `Executor`; `run(graph, inputs)` is the simulation engine
registered as `torch` (`n3ml simulate FILE --engine torch`). See docs/executor.md.
"""

from .engine import run
from .executor import ExecutionError, Executor, compile
from .ops import IMPLS, impl

CompiledGraph = Executor

__all__ = ["compile", "run", "Executor", "CompiledGraph", "ExecutionError", "IMPLS", "impl"]
