"""The `lava` and `lava-netx` targets (the interface of `n3ml convert` and `n3ml verify`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import N3mlError
from ...ir.graph import Graph
from ...passes.legalize import FOLD_BN, FOLD_SCALE, MAXPOOL_CURRENT, MAXPOOL_SPIKES, SYNAPSE_PER_NEURON, Legality
from .. import target_options as opt
from . import emit as _emit
from . import netx as _netx
from .lower import lower

REPO = Path(__file__).resolve().parents[3]
HOW = ("build it with `make setup-lava` (or `scripts/setup_lava_venv.sh`), or point N3ML_LAVA_PYTHON at a "
       "Python that imports lava-nc 0.10")


LEGALITY = Legality(
    "lava",
    {"Input": "a RingBuffer of (graded) spikes", "Output": "a Sink of spikes, or a Monitor of a readout's v",
     "Dense": "a Dense process (one per synapse, feeding one neuron population)",
     "Conv2d": "a Conv process", "SumPool2d": "a depthwise Conv of ones", "AvgPool2d": "a depthwise Conv (float)",
     "Flatten": "a reshape of the layout",
     "Add": "several synapses into one population (shorter paths delayed: DelayDense, relay populations)",
     "Delay": "absorbed by the latency of the synapse it feeds (a DelayDense where it is longer)",
     "Concat": "a Dense reading it is split by source population; an Output reading it, one Sink per part",
     "IF": "LIF (du=1, dv=0)", "LIF": "LIF", "CubaLIF": "LIF with a current",
     "FixedCubaLIF": "LIF, fixed_pt (n3ml's N3mlLIF where it adapts its threshold: q != 0)",
     "ALIF": "n3ml's N3mlLIF with an adaptive threshold (floating_pt)",
     "LI": "a never-firing LIF whose v a Monitor reads (floating_pt), or the current of the neuron it feeds",
     "SynapseFilter": "n3ml's N3mlSynapseFilter (floating_pt): its current sent as graded spikes",
     "FixedSynapseFilter": "n3ml's N3mlSynapseFilter (fixed_pt, integers): its current sent as graded spikes"},
    "Lava's processes are LIF populations joined by Dense/Conv synapses; a neuron reads one synapse (or an Add "
    "of synapses) of spikes",
    SYNAPSE_PER_NEURON,
    # no `-p ann-to-snn` remedy for a ReLU (as on NEST/PyNN): that conversion is for ANNs, and a ReLU left in a
    # spiking graph is not an ANN activation; the reason names both
    {"BatchNorm": (FOLD_BN,), "Scale": (FOLD_SCALE,), "MaxPool2d": (MAXPOOL_SPIKES, MAXPOOL_CURRENT)},
    {"MaxPool2d": "a Lava synapse cannot take a maximum", "Scale": "a Scale left after fold-scales has no "
     "Dense/Conv beside it to fold into", "Integrator": "Lava's LIF always decays (dv > 0 is needed for a readout)",
     "ReLU": "an analog activation has no LIF-population form (a ReLU of spikes that is always 0 or 1, SEW's IAND "
             "relu(x - y), is made a gate neuron by spike-gates; an ANN without spiking neurons is converted by "
             "`-p ann-to-snn`, an approximation by rate coding, docs/conversion.md)"},
)


def lava_python() -> Path:
    """The Lava venv's python: $N3ML_LAVA_PYTHON, else .venv-lava in the n3ml checkout."""
    env = os.environ.get("N3ML_LAVA_PYTHON")
    exe = Path(env) if env else REPO / ".venv-lava" / "bin" / "python"
    if not exe.exists():
        raise N3mlError(f"the Lava venv is missing ({exe} does not exist); {HOW}")
    return exe


class LavaTarget:
    """Lava 0.10 (Loihi2SimCfg): fixed_pt for quantized graphs, floating_pt otherwise."""

    name = "lava"
    legality = LEGALITY  # what it accepts and the passes that legalize (n3ml targets)
    records_states = True  # run.py takes --record NODE and saves state/NODE.v, state/NODE.i
    options = {"netx": "true to also write lava-dl's netx HDF5 (network.net); default false",
               "source": "a one-line note of what the graph was converted from, kept in the emitted files"}

    def check(self, graph: Graph, options: dict[str, Any] | None = None) -> None:
        netx, _ = _read(options, graph)
        lower(graph)
        if netx:
            _netx.check(graph)

    def emit(self, graph: Graph, out_dir: Path, *, steps: int | None = None,
             options: dict[str, Any] | None = None) -> None:
        netx, source = _read(options, graph)
        net = lower(graph)
        if netx:
            _netx.check(graph)
        out_dir = Path(out_dir)
        _emit.emit(net, out_dir, steps=steps, source=source)
        if netx:
            _netx.write(graph, out_dir / "network.net")

    def run_argv(self, out_dir: Path) -> list[str]:
        return [str(lava_python()), str(Path(out_dir) / "run.py")]


def _read(options: dict[str, Any] | None, graph: Graph) -> tuple[bool, str]:
    """(netx, source) from the -O options, each value checked: source lands in the emitted files."""
    options = opt.check_keys(LavaTarget, options)
    return (opt.flag("lava", "netx", options.get("netx")),
            opt.label("lava", "source", options.get("source"), f"graph `{graph.name}`"))
