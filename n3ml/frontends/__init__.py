"""Frontends: bring models from other tools into the n3ml IR.

Each frontend is one sub-package that registers its file loaders in
`n3ml.registry.LOADERS` and depends only on the IR (and `n3ml.nn` where torch is
involved), never on a backend. `n3ml.frontends.torch` traces PyTorch models
(n3ml.nn, snnTorch, Norse, SpikingJelly and plain torch layers).
"""
