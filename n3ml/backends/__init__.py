"""Execution and code-generation backends. Each backend is one sub-package; see `n3ml.registry`."""
