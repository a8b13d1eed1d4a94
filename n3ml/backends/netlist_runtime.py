"""The part of the emitted NEST and PyNN programs that does not depend on the simulator.

`n3ml convert --target nest|pynn -o OUT/` copies this file verbatim to `OUT/netlist_runtime.py`, next to
the target's runtime (`OUT/run.py`) and the network it runs: `OUT/network.json` (the tables: inputs,
populations, connections, outputs) and `OUT/weights.npz` (the arrays those tables name as "@key",
read with allow_pickle=False). It reads the description, the inputs and the command line, applies the
IR's encoders (docs/semantics.md §7) and writes the outputs in IR time.

Standard library and numpy only: the emitted program runs without n3ml installed, so nothing here
imports n3ml.
"""

import argparse
import json
import os
import sys
import zipfile

import numpy as np

DESCRIPTION = "network.json"
WEIGHTS = "weights.npz"


class Network:
    """The tables of network.json; per-neuron arrays come from weights.npz.

    Attributes: `dt` (ms), `default_steps`, `horizon` (simulator steps run beyond T so that the latest
    population covers IR step T-1), `clock` (whether a source firing every step carries the biases),
    `data` (Input nodes: kind, shape), `inputs` (input populations), `populations` (neurons), `outputs`
    (Output nodes made of recorded parts), and `spec`, the whole description for the target's own tables.
    """

    def __init__(self, here, fmt):
        path = os.path.join(here, DESCRIPTION)
        if not os.path.isfile(path):
            sys.exit(f"{path} is missing: the program runs the network described next to it (n3ml convert -o DIR)")
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        if spec.get("format") != fmt:
            sys.exit(f"{path}: a network description of format {spec.get('format')!r}; this program reads {fmt!r} "
                     "(convert the model again)")
        with np.load(os.path.join(here, WEIGHTS), allow_pickle=False) as z:
            self.weights = {k: z[k] for k in z.files}
        self.spec = spec
        self.here = here
        self.dt = float(spec["dt"])
        self.default_steps = int(spec["default_steps"])
        self.horizon = int(spec["horizon"])
        self.clock = bool(spec["clock"])
        self.data = _shaped(spec["data"])
        self.inputs = _shaped(spec["inputs"])
        self.populations = spec["populations"]
        self.outputs = _shaped(spec["outputs"])

    def array(self, value):
        """A table value: numbers as they are; "@key" names an array of weights.npz (0-d: a number)."""
        if isinstance(value, str) and value.startswith("@"):
            a = self.weights[value[1:]]
            return a.item() if a.ndim == 0 else a
        return value

    def recorded(self):
        """Population -> what is recorded from it ("spikes", or its membrane voltage: "V_m" or "v")."""
        return {part["source"]: part["record"] for spec in self.outputs.values() for part in spec["parts"]}

    def latency(self, name):
        """Simulator step at which the population's output of IR step 0 appears."""
        return self.populations[name]["latency"] if name in self.populations else self.inputs[name]["latency"]


def write_npz(path, arrays):
    """np.savez without its reserved names: an output may be called `file` or `allow_pickle`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)


def _shaped(table):
    """JSON has lists only: shapes become tuples again (they are compared with array shapes)."""
    return {name: {**spec, "shape": tuple(spec["shape"])} if "shape" in spec else spec
            for name, spec in table.items()}


def read_inputs(net, path, steps):
    """Input arrays (T, B, *shape) keyed by Input node name; default: the random input of `n3ml simulate`
    (Bernoulli(0.2) spikes or U[0, 1) values from numpy's PCG64(seed 0), batch 1)."""
    if path is None:
        rng = np.random.default_rng(0)
        data = {}
        for name, spec in net.data.items():
            shape = (steps, 1, *spec["shape"])
            data[name] = (rng.random(shape) < 0.2).astype(float) if spec["kind"] == "spike" else rng.random(shape)
        return data
    with np.load(path, allow_pickle=False) as z:
        missing = [n for n in net.data if n not in z.files]
        if missing:
            sys.exit(f"{path}: no array for input node(s) {missing}; found {z.files}")
        data = {n: np.asarray(z[n], dtype=float) for n in net.data}
    for name, x in data.items():
        if x.shape[2:] != net.data[name]["shape"] or x.shape[0] < steps:
            sys.exit(f"{path}: input `{name}` must have shape (T >= {steps}, B, "
                     f"{', '.join(map(str, net.data[name]['shape']))}), found {x.shape}")
    return {n: x[:steps] for n, x in data.items()}


def encode(spec, x):
    """The IR's encoders over the whole (T, B, *shape) input: PoissonRate draws its uniform numbers once,
    numpy PCG64(seed); Latency emits one spike per window at round_half_up((1 - x) (window - 1))."""
    enc = spec["encoder"]
    if enc is None:
        return x
    if enc["type"] == "poisson":
        u = np.random.default_rng(enc["seed"]).random(x.shape)
        return (u < np.clip(enc["gain"] * x, 0.0, 1.0)).astype(float)
    out = np.zeros_like(x)
    window = enc["window"]
    for t0 in range(0, x.shape[0], window):
        v = np.clip(x[t0], 0.0, 1.0)
        at = np.floor((1.0 - v) * (window - 1) + 0.5)
        for k in range(min(window, x.shape[0] - t0)):
            out[t0 + k] = (at == k) & (v > enc["x_min"])
    return out


def parse_args(net, argv, description, add_options):
    """--input, --steps and -o, with the simulator's own options added by `add_options(parser)` in between;
    args.steps is resolved: --steps, else the input's T, else the description's default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", metavar="X.npz", help="input arrays (T, B, *shape) keyed by Input node name")
    parser.add_argument("--steps", "-T", type=int, default=None,
                        help=f"time steps (default {net.default_steps} or the input's T)")
    add_options(parser)
    parser.add_argument("-o", "--output", metavar="OUT.npz", default="out.npz", help="where to save the outputs")
    args = parser.parse_args(argv)
    if args.steps is None and args.input:
        with np.load(args.input, allow_pickle=False) as z:
            args.steps = int(z[next(iter(net.data))].shape[0]) if net.data else net.default_steps
    args.steps = args.steps or net.default_steps
    return args


def samples(net, path, steps):
    """The data of every input population {name: (T, B, *shape)}, encoded, and the batch size B."""
    sources = read_inputs(net, path, steps)
    batch = next(iter(sources.values())).shape[1] if sources else 1
    return {name: encode(spec, sources[spec["source"]]) for name, spec in net.inputs.items()}, batch


def outputs(net, traces, steps):
    """Recorded traces {population: (T, size)} in IR time -> {output: (T, *shape)}."""
    out = {}
    for name, spec in net.outputs.items():
        y = np.zeros((steps, int(np.prod(spec["shape"]))))
        for part in spec["parts"]:
            x = traces[part["source"]]
            x = x if part["cols"] is None else x[:, net.array(part["cols"])]
            if part["record"] != "spikes":
                x = x + net.array(part["v_offset"])
            rows = slice(None) if part["rows"] is None else net.array(part["rows"])
            y[part["shift"]:, rows] = x[: steps - part["shift"]]
        out[name] = y.reshape(steps, *spec["shape"])
    return out


def save(results, path):
    """Write the outputs {name: (T, B, *shape)} to `path` atomically and summarise them on stderr."""
    tmp = path + ".tmp.npz"
    write_npz(tmp, results)
    os.replace(tmp, path)
    for name, y in results.items():
        print(f"{name}: shape {y.shape}, sum {y.sum():g}", file=sys.stderr)


# ------------------------------------------------------------------ n3ml's own NEST cell (n3ml_cell.cpp)

MODULE_CACHE = "N3ML_NEST_MODULE_CACHE"  # where built modules are kept (default ~/.cache/n3ml/nest-modules)


def module_key(source, kernel):
    """The cache key of the module built from `source` against the NEST kernel library `kernel`: the source, the
    library's bytes and its path. The module links to that file by path (rpath): one built for another NEST
    install, even a byte-identical one, would load a second kernel into the process (std::bad_alloc)."""
    import hashlib

    with open(source, "rb") as f:
        code = f.read()
    with open(kernel, "rb") as f:
        lib = hashlib.sha256(f.read()).digest()
    return hashlib.sha256(code + lib + os.path.realpath(kernel).encode()).hexdigest()[:16]


def nest_module(here, name):
    """The path (for nest.Install) of n3ml's NEST cell module compiled from the C++ file `name` next to the
    program (directory `here`) against the NEST this Python imports, built once per source and NEST and kept
    in the cache.

    The module links against NEST's own `nestkernel_api` library and uses its headers (the pip wheel ships
    both); the C++ ABI is the kernel's (the wheel is built with the old one, a source build with the new).
    """
    import glob
    import importlib.util
    import re
    import shutil
    import subprocess

    if os.path.basename(name) != name or not name.endswith(".cpp"):
        sys.exit(f"network.json: module {name!r} is not a C++ file next to the program")
    source = os.path.join(here, name)
    if not os.path.isfile(source):
        sys.exit(f"{source} is missing: the network uses n3ml's own NEST cell, whose source lies next to the program")
    spec = importlib.util.find_spec("nest")
    if spec is None or not spec.origin:
        sys.exit("this network uses n3ml's own NEST cell (n3ml_cell.cpp), built against NEST: NEST is not installed")
    nest_dir = os.path.dirname(spec.origin)
    include = os.path.join(nest_dir, "include", "nest")
    kernels = sorted(glob.glob(os.path.join(nest_dir, "nestkernel_api*.so")))
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    missing = [what for what, ok in (("a C++ compiler (g++, or CXX)", compiler),
                                      (f"NEST's headers ({include})", os.path.isdir(include)),
                                      (f"NEST's kernel library (nestkernel_api*.so in {nest_dir})", kernels)) if not ok]
    if missing:
        sys.exit("this network uses n3ml's own NEST cell (n3ml_cell.cpp), compiled once against the NEST it runs "
                 "on; missing: " + "; ".join(missing))
    kernel = kernels[0]
    with open(kernel, "rb") as f:
        lib = f.read()
    key = module_key(source, kernel)
    cache = os.environ.get(MODULE_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "n3ml", "nest-modules")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, f"n3ml_cell-{key}.so")
    if not os.path.isfile(target):
        # NEST's own symbols name std::string as `St7__cxx11...` under the new ABI (the wheel's bundled
        # libstdc++ defines such names either way, so only symbols of namespace nest tell)
        abi = "1" if re.search(rb"_ZN\w*4nest\w*St7__cxx11", lib) else "0"
        tmp = f"{target}.{os.getpid()}.tmp"
        cmd = [compiler, "-std=c++20", "-O2", "-DNDEBUG", "-fPIC", "-shared", "-fopenmp",
               f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-I", include, source, "-o", tmp, kernel,
               f"-Wl,-rpath,{os.path.dirname(kernel)}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"building n3ml's NEST cell failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
        os.replace(tmp, target)  # atomic: a concurrent run sees the whole module or none
    return target[: -len(".so")]

