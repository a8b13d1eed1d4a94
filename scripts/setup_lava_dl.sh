#!/usr/bin/env bash
# Build .venv-lava-dl: the Lava venv (scripts/setup_lava_venv.sh: lava-nc 0.10 with its one fix) plus
# lava-dl 0.6.0, so that lava-dl's own netx reader (`lava.lib.dl.netx.hdf5.Network`) can load the netx
# HDF5 files that n3ml writes (tests/backends/lava/test_netx.py, docs/backends/lava.md "netx").
#
#   scripts/setup_lava_dl.sh [VENV_DIR]      (default: .venv-lava-dl beside this repository's Makefile)
#
# lava-dl 0.6.0 declares Requires-Python <3.11 and pins torch 2.3 / torchvision 0.18 (and matplotlib,
# opencv, pillow, ninja, pytest<8, unittest2). n3ml never pulls another torch: lava-dl is installed with
# --no-deps and --ignore-requires-python, beside torch 2.13.0 CPU (the build on disk), and only the
# packages that `import lava.lib.dl.netx` really reaches are added: netx's hdf5.py imports
# `lava.lib.dl.slayer.neuron.rf`, which runs slayer's package __init__ (slayer.io and
# slayer.utils.stats import matplotlib). That __init__ also imports slayer.object_detection, a YOLO model
# zoo that needs torchvision, pillow and opencv and that netx never uses; torchvision's builds for torch
# 2.13 do not load beside the CPU torch ("operator torchvision::nms does not exist"), so this script makes
# that one import lazy (one source fix, like setup_lava_venv.sh's): `slayer.obd` is then imported on first
# use. ninja (slayer's CUDA kernels), pytest 7 and unittest2 are not imported on netx's path.
# The venv is separate so that .venv-lava (the Lava backend's tests) stays as it is, without torch.
#
# Idempotent: it stops at once when the stamp exists and netx imports.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.venv-lava-dl}"
LAVA_DL_VERSION="0.6.0"
STAMP="$VENV/.stamp-lava-dl-$LAVA_DL_VERSION"

check() {
  "$VENV/bin/python" -c "import lava.lib.dl.netx.hdf5, lava.proc.io.source" 2>/dev/null
}

if [[ -f "$STAMP" ]] && check; then
  exit 0
fi

bash "$ROOT/scripts/setup_lava_venv.sh" "$VENV"
# torch pinned: the CPU build on disk, nothing from CUDA; numpy and networkx kept at lava-nc's pins
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "numpy>=1.24.4,<2" "networkx<=2.8.7" "matplotlib>=3.5.2,<4"
"$VENV/bin/python" -m pip install -q --no-deps --ignore-requires-python "lava-dl==$LAVA_DL_VERSION"

# the one source fix: slayer's __init__ imports its object-detection zoo (torchvision) eagerly
"$VENV/bin/python" - <<'PYEOF'
import pathlib, sysconfig
path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "lava" / "lib" / "dl" / "slayer" / "__init__.py"
src = path.read_text()
old = "from . import object_detection as obd\n"
new = ("def __getattr__(name):  # n3ml setup_lava_dl.sh: the YOLO zoo needs torchvision; import it on first use\n"
       "    if name == 'obd':\n"
       "        from . import object_detection\n"
       "        return object_detection\n"
       "    raise AttributeError(name)\n")
if new in src:
    print(f"{path}: object_detection is already lazy")
elif old in src:
    path.write_text(src.replace(old, new, 1))
    print(f"{path}: made the object_detection import lazy")
else:
    raise SystemExit(f"{path}: cannot find slayer's object_detection import; is this lava-dl 0.6.0?")
PYEOF

if ! check; then
  echo "error: lava-dl's netx does not import in $VENV" >&2
  "$VENV/bin/python" -c "import lava.lib.dl.netx.hdf5" >&2 || true
  exit 1
fi
touch "$STAMP"
echo "lava-dl venv ready: $VENV/bin/python"
