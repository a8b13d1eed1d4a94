"""PyTorch frontend: trace n3ml.nn, snnTorch, Norse, SpikingJelly and plain torch models into the IR.

`trace(module, input_shape)` gives a Graph; `load(path, **options)` reads model files
(.pt2, TorchScript .ts/.pt, state_dicts with --model, pickles behind an opt-in).
"""

from .trace import trace

__all__ = ["trace"]
