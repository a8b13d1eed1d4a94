"""Run a netx HDF5 file with lava-dl's own reader, `lava.lib.dl.netx.hdf5.Network`, in Lava (fixed_pt).

    <lava-dl python> netx_run.py NETWORK.net --input X.npz -o Y.npz [--steps T]

This file runs in the lava-dl venv (scripts/setup_lava_dl.sh), which has no n3ml: it imports numpy
and Lava only. X.npz holds one array (T, B, *shape) in n3ml's layout (channels first); netx's
processes are laid out in reverse (W, H, C), so each sample is transposed on the way in and out.
netx builds one Lava network per sample (no batch axis), so the samples run one after the other.

Timing: every netx layer is a Dense/Conv synapse feeding a Lava LIF, and Lava's synapses deliver
their sums one step late, so layer k's spikes of n3ml step t appear at Lava step t + k. The output is
read at t + L (L = the number of weight layers in the file) and saved as n3ml's (T, B, *shape).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

WEIGHT_LAYERS = (b"dense", b"conv")


def weight_layers(path: str) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return sum(f["layer"][k]["type"][0] in WEIGHT_LAYERS for k in f["layer"])


def run_sample(path: str, x: np.ndarray, latency: int) -> np.ndarray:
    """x: (T, *shape) in n3ml's layout -> the output spikes (T, *out_shape), n3ml's layout."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    T = x.shape[0]
    net = netx.hdf5.Network(net_config=path)
    rev = (0,) + tuple(range(x.ndim - 1, 0, -1))  # (T, C, H, W) -> (T, W, H, C)
    data = np.moveaxis(np.transpose(x, rev), 0, -1)
    data = np.concatenate([data, np.zeros(data.shape[:-1] + (latency,))], axis=-1)  # let the last step through
    src = Source(data=data)
    sink = Sink(shape=net.out.shape, buffer=T + latency)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=T + latency), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = np.asarray(sink.data.get())
    finally:
        net.stop()
    out = np.moveaxis(out, -1, 0)[latency:latency + T]  # (T, *lava_out)
    return np.transpose(out, (0,) + tuple(range(out.ndim - 1, 0, -1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("network")
    ap.add_argument("--input", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--steps", type=int)
    args = ap.parse_args(argv)
    with np.load(args.input, allow_pickle=False) as z:
        if len(z.files) != 1:
            print(f"{args.input}: netx has one input; found arrays {z.files}", file=sys.stderr)
            return 2
        x = z[z.files[0]]
    if args.steps:
        x = x[: args.steps]
    latency = weight_layers(args.network)
    y = np.stack([run_sample(args.network, x[:, b], latency) for b in range(x.shape[1])], axis=1)
    np.savez(args.output, out=y)
    return 0


if __name__ == "__main__":
    sys.exit(main())
