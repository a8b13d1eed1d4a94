"""ONNX frontend: read a trained ANN (``.onnx``) into the n3ml IR.

The ANN enters as stateless analog operations (Dense, Conv2d, ReLU, BatchNorm,
pools, Add, Concat, Softmax); the conversion passes (`fold-batchnorm`,
`ann-to-snn`, `normalize`) then turn it into a spiking network.
"""

from .loader import SUPPORTED_OPS, load, load_model_proto

__all__ = ["load", "load_model_proto", "SUPPORTED_OPS"]
