"""The n3ml graph IR: primitives, graphs, verifier, text format and reference interpreter.

This package depends only on numpy, lark and networkx.
"""

from .graph import SCHEMA_VERSION, Edge, Graph, infer_types
from .prims import *  # noqa: F401,F403
from .prims import REGISTRY, Neuron, Primitive, decay, gain
from .types import FixedPoint, PortType, VerifyError

__all__ = ["Graph", "Edge", "SCHEMA_VERSION", "infer_types", "Primitive", "Neuron", "REGISTRY",
           "FixedPoint", "PortType", "VerifyError", "decay", "gain", *REGISTRY]
