"""Graph passes: target-neutral transformations of the IR (see base.py)."""

from .base import PASSES, Pass, PassError, PassManager, get_pass_class, parse_pipeline, register_pass

__all__ = ["PASSES", "Pass", "PassError", "PassManager", "get_pass_class", "parse_pipeline", "register_pass"]
