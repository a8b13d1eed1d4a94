"""lava-dl netx HDF5 export (`n3ml convert MODEL --target lava -O netx=true`): OUT/network.net.

The file is written with h5py, following lava-dl 0.6.0's `lava/lib/dl/netx/hdf5.py` (`Network._create`,
`create_dense`, `create_conv`, `get_neuron_params`) and `netx/utils.py`, and is proven by lava-dl
itself: `make setup-lava-dl` builds .venv-lava-dl (lava-dl 0.6.0 beside torch 2.13 CPU,
scripts/setup_lava_dl.sh), where `netx_run.py` loads it with `netx.hdf5.Network`, runs it in Lava
fixed_pt and gives back spikes bit-identical to the executor and to n3ml's own Lava program
(tests/backends/lava/test_netx.py). Layout:

    /layer/<i>/type        b"input" | b"dense" | b"conv" | b"flatten"  (S10, shape (1,))
    /layer/<i>/shape       per-sample shape, C order (netx reverses it to Lava's W, H, C)
    /layer/<i>/weight      integer weights as the synapse applies them: Dense (out, in),
                           Conv (C_out, C_in/groups, KH, KW) cross-correlation (netx flips it)
    /layer/<i>/bias        neuron bias mantissa; netx uses bias_exp = 6 (state bias = bias << 6)
    /layer/<i>/stride, padding, dilation, groups      (conv; (H, W) order, netx reverses)
    /layer/<i>/neuron/type b"CUBA"; iDecay = du (netx passes du - 1 to Lava), vDecay = dv,
                           vThMant = vth (theta >> 6), refDelay = 1, gradedSpike = False

netx rescales each Dense matrix to Loihi's mantissa and exponent itself
(`optimize_weight_bits`) and clips mixed-sign weights to -256..254, so the file
holds the effective integers and weights outside that range are refused
(convolution weights go to Lava's Conv unchanged).
Only feed-forward chains fit: Input -> [Flatten] -> synapse -> neuron -> ...
`read` turns such a file back into an n3ml graph (used by the tests).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ...errors import N3mlError, UnsupportedError
from ...ir import prims as P
from ...ir.graph import Graph
from ...ir.profiles import LOIHI2
from .lower import lower

NETX_BIAS_EXP = 6  # netx files store the bias mantissa; its exponent is fixed by the format

LAYER_SYNAPSES = (P.Dense, P.Conv2d)
REPO = Path(__file__).resolve().parents[3]

# why a node cannot be a netx layer (netx files hold a chain of synapse + CUBA-neuron layers)
NOT_A_LAYER = {
    "Delay": "netx's only delay is a per-synapse axonal delay inside a dense layer (`delay`, DelayDense), which "
             "n3ml's netx export does not write; a Delay node has no netx layer",
    "SumPool2d": "netx's `pool` layer is a pooling synapse followed by its own CUBA neuron; an n3ml pool feeds the "
                 "next synapse directly, with no neuron between",
    "AvgPool2d": "netx's `pool`/`average` layers carry their own neuron (or are not read by netx.hdf5); an n3ml "
                 "pool feeds the next synapse directly",
    "Add": "netx holds a chain of layers; a sum of several inputs (skip or recurrent connection) is not a layer",
    "Scale": "netx has no scaling layer; fold the factor into the weights before quantizing",
    "Concat": "netx's `concat` layer is not read by lava-dl 0.6.0's netx.hdf5",
}


def lava_dl_python() -> Path:
    """The lava-dl venv's python: $N3ML_LAVA_DL_PYTHON, else .venv-lava-dl in the n3ml checkout."""
    env = os.environ.get("N3ML_LAVA_DL_PYTHON")
    exe = Path(env) if env else REPO / ".venv-lava-dl" / "bin" / "python"
    if not exe.exists():
        raise N3mlError(f"the lava-dl venv is missing ({exe} does not exist); run `make setup-lava-dl` "
                        "(or set N3ML_LAVA_DL_PYTHON)")
    return exe


def run_argv(path: Path) -> list[str]:
    """The command that runs netx file `path` with lava-dl's own netx.hdf5.Network in Lava (add --input/-o)."""
    return [str(lava_dl_python()), str(Path(__file__).with_name("netx_run.py")), str(path)]


def _chain(graph: Graph) -> list[tuple[str, ...]]:
    """The graph as netx layers: ("input", x), ("flatten", f), (syn, neuron)...; refuse anything else."""
    if not any(isinstance(p, P.FixedCubaLIF) for p in graph.nodes.values()):
        raise UnsupportedError("netx export needs a fixed-point graph (run quantize{profile=loihi2} first)")
    ins, outs = graph.input_names, graph.output_names
    if len(ins) != 1 or len(outs) != 1:
        raise UnsupportedError(f"netx holds one input and one output; found inputs {ins}, outputs {outs}")
    layers: list[tuple[str, ...]] = [("input", ins[0])]
    cur = ins[0]
    while True:
        users = [u for u in graph.users_of(cur) if not isinstance(graph.nodes[u], P.Output)]
        if not users:
            break
        if len(users) != 1:
            raise UnsupportedError(f"node `{cur}` feeds {users}; netx holds a feed-forward chain only")
        (u,) = users
        p = graph.nodes[u]
        if isinstance(p, P.Flatten):
            layers.append(("flatten", u))
            cur = u
            continue
        if not isinstance(p, LAYER_SYNAPSES):
            raise UnsupportedError(f"node `{u}` ({p.op}): " + NOT_A_LAYER.get(
                p.op, "netx layers are Dense or Conv2d synapses followed by a CUBA neuron"))
        nxt = graph.users_of(u)
        if len(nxt) != 1 or not isinstance(graph.nodes[nxt[0]], P.FixedCubaLIF):
            found = ", ".join(f"`{n}` ({graph.nodes[n].op})" for n in nxt) or "nothing"
            raise UnsupportedError(f"node `{u}` ({p.op}): netx holds a feed-forward chain of synapse + FixedCubaLIF "
                                   f"layers; this synapse feeds {found}")
        nrn = nxt[0]
        layers.append((u, nrn))
        cur = nrn
    (src,) = graph.inputs_of(outs[0])
    if src != cur:
        raise UnsupportedError(f"node `{outs[0]}` (Output): netx's output is the last layer `{cur}`; found `{src}`")
    # the netx shape first (its reasons are netx's), then every Lava-exactness check
    if not lower(graph).fixed:
        raise UnsupportedError("netx export needs a fixed-point graph (run quantize{profile=loihi2} first)")
    return layers


def check(graph: Graph) -> None:
    for syn, nrn in (x for x in _chain(graph) if len(x) == 2 and x[0] not in ("input", "flatten")):
        _weights(syn, graph.nodes[syn])
        _neuron(nrn, graph.nodes[nrn])


def _weights(name: str, p) -> np.ndarray:
    w = np.asarray(p.weight).astype(np.int64)
    if isinstance(p, P.Conv2d):  # netx hands conv weights to Lava's Conv unchanged
        return w
    lo, hi = (0, 255) if w.min() >= 0 else ((-256, 0) if w.max() <= 0 else (-256, 254))
    if w.min() < lo or w.max() > hi:
        raise UnsupportedError(f"node `{name}` ({p.op}): netx clips weights of this sign to {lo}..{hi}; found "
                               f"{w.min()}..{w.max()} (quantize with weight_exp_max=1 for netx)")
    return w


def _neuron(name: str, p: P.FixedCubaLIF) -> dict[str, np.ndarray]:
    bias = np.asarray(p.bias, dtype=np.int64)
    if np.any(bias % (1 << NETX_BIAS_EXP)) or np.any(np.abs(bias >> NETX_BIAS_EXP) > LOIHI2.bias_mant_max):
        raise UnsupportedError(f"node `{name}`: netx's bias is a 13-bit mantissa << 6; found bias {p.bias!r}")
    if p.reset != "to-value" or np.any(np.asarray(p.v_reset) != 0):
        # the lava target runs subtract with n3ml's own process; netx builds Lava's LIF, which sets v to 0
        raise UnsupportedError(f"node `{name}`: netx's CUBA neurons (Lava's LIF) reset v to 0; found reset={p.reset}"
                               + (f" v_reset={p.v_reset}" if p.reset == "to-value" else ""))
    if int(getattr(p, "refractory", 0)) != 0:
        raise UnsupportedError(f"node `{name}`: netx's CUBA neurons have no refractory period (refDelay = 1)")
    if np.any(np.asarray(p.q) != 0):  # (the lava target runs it with n3ml's own process)
        raise UnsupportedError(f"node `{name}`: netx's CUBA neurons have a fixed threshold; found threshold "
                               f"adaptation q={p.q!r}, db={p.db!r} (an ALIF quantized: use the lava target)")
    if np.any(np.asarray(p.v_init) != 0):
        raise UnsupportedError(f"node `{name}`: netx neurons start at v = 0; found v_init {p.v_init!r}")
    return {"iDecay": int(np.max(p.du)), "vDecay": int(np.max(p.dv)), "vThMant": int(p.theta) >> LOIHI2.theta_shift,
            "bias": bias >> NETX_BIAS_EXP}


def write(graph: Graph, path: Path) -> None:
    """Write `graph` as a netx HDF5 file at `path` (refusing what netx cannot hold exactly)."""
    try:
        import h5py
    except ImportError as e:  # h5py comes with the Lava venv; the main venv may lack it
        raise N3mlError(f"netx export needs h5py ({e}); pip install h5py") from None
    check(graph)
    types = graph.verify()
    with h5py.File(path, "w") as f:
        grp = f.create_group("layer")
        for i, layer in enumerate(_chain(graph)):
            h = grp.create_group(str(i))
            kind = layer[0] if layer[0] in ("input", "flatten") else (
                "dense" if isinstance(graph.nodes[layer[0]], P.Dense) else "conv")
            h.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
            if kind in ("input", "flatten"):
                h.create_dataset("shape", data=np.array(types[layer[1]].shape))
                continue
            syn, nrn = layer
            p = graph.nodes[syn]
            h.create_dataset("shape", data=np.array(types[nrn].shape))
            h.create_dataset("weight", data=_weights(syn, p))
            if kind == "dense":
                h.create_dataset("inFeatures", data=p.weight.shape[1])
                h.create_dataset("outFeatures", data=p.weight.shape[0])
            else:
                h.create_dataset("stride", data=np.array(p.stride))
                h.create_dataset("padding", data=np.array(p.padding))
                h.create_dataset("dilation", data=np.array(p.dilation))
                h.create_dataset("groups", data=p.groups)
            prm = _neuron(nrn, graph.nodes[nrn])
            if np.any(prm["bias"]):
                h.create_dataset("bias", data=np.broadcast_to(prm["bias"], types[nrn].shape).copy())
            h.create_dataset("neuron/type", (1,), "S10", [b"CUBA"])
            for k in ("iDecay", "vDecay", "vThMant"):
                h.create_dataset(f"neuron/{k}", data=prm[k])
            h.create_dataset("neuron/refDelay", data=1)
            h.create_dataset("neuron/gradedSpike", data=False)


def read(path: Path, *, dt: float = 1.0) -> Graph:
    """A netx HDF5 file (CUBA neurons; input, flatten, dense, conv layers) as an n3ml graph."""
    import h5py

    g = Graph(name=Path(path).stem.replace("-", "_").replace(".", "_") or "netx", dt=dt)
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        prev = None
        for i in range(len(layers)):
            h = layers[str(i)]
            kind = h["type"][0].decode("ascii")
            if kind == "input":
                prev = g.add(f"l{i}_input", P.Input(shape=tuple(int(s) for s in h["shape"][()])))
            elif kind == "flatten":
                prev = g.add(f"l{i}_flatten", P.Flatten(), prev)
            elif kind in ("dense", "conv"):
                w = h["weight"][()].astype(np.int64)
                if kind == "dense":
                    syn = P.Dense(weight=w)
                else:
                    pair = lambda k: tuple(int(v) for v in np.broadcast_to(h[k][()], (2,)))  # noqa: E731
                    syn = P.Conv2d(weight=w.reshape(w.shape[:4]), stride=pair("stride"), padding=pair("padding"),
                                   dilation=pair("dilation"), groups=int(h["groups"][()]))
                s = g.add(f"l{i}_{kind}", syn, prev)
                n = h["neuron"]
                if n["type"][0].decode("ascii") not in ("CUBA", "LOIHI"):
                    raise N3mlError(f"{path}: layer {i}: only CUBA neurons are read; found {n['type'][0]!r}")
                bias = (h["bias"][()].astype(np.int64) << NETX_BIAS_EXP) if "bias" in h else 0
                if isinstance(bias, np.ndarray) and np.all(bias == bias.reshape(-1)[0]):
                    bias = int(bias.reshape(-1)[0])
                prev = g.add(f"l{i}_neuron", P.FixedCubaLIF(
                    du=int(n["iDecay"][()]), dv=int(n["vDecay"][()]), theta=int(n["vThMant"][()]) << LOIHI2.theta_shift, bias=bias,
                    reset="to-value", v_reset=0), s)
            else:
                raise N3mlError(f"{path}: layer {i}: netx layer type {kind!r} is not read by n3ml")
        g.add("out", P.Output(), prev)
    g.verify()
    return g
