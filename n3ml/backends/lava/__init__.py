"""Lava backend: `n3ml convert MODEL --target lava -o OUT/` writes OUT/run.py (a verbatim copy of the
runtime module `runtime.py`), OUT/network.json and OUT/weights.npz; `-O netx=true` also writes lava-dl's
netx HDF5 (network.net).

Lowering (`lower.py`) turns the graph into Lava populations and connections and
refuses what Lava cannot compute exactly; emission (`emit.py`) writes the network
as data. The program runs in the Lava venv (`make setup-lava`).
"""

from .target import LavaTarget, lava_python

__all__ = ["LavaTarget", "lava_python"]
