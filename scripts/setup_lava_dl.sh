#!/usr/bin/env bash
# Build .venv-lava-dl: the Lava venv (scripts/setup_lava_venv.sh: lava-nc 0.10 with its one fix) plus
# lava-dl 0.6.0, so that lava-dl's own netx reader (`lava.lib.dl.netx.hdf5.Network`) can load the netx
# HDF5 files that n3ml writes (tests/backends/lava/test_netx.py, docs/backends/lava.md "netx").
#
#   scripts/setup_lava_dl.sh [VENV_DIR]      (default: .venv-lava-dl beside this repository's Makefile)
#
# lava-dl 0.6.0 declares Requires-Python <3.11 and pins torch 2.3 / torchvision 0.18 (and matplotlib,
# opencv, pillow, ninja, pytest<8, unittest2). n3ml never pulls another torch: lava-dl is installed with
# --no-deps and --ignore-requires-python, beside torch 2.13.0 CPU and torchvision 0.28.0 (the pair on
# disk), and only the packages that `import lava.lib.dl.netx` really reaches are added: netx's hdf5.py
# imports `lava.lib.dl.slayer.neuron.rf`, which runs slayer's package __init__ (slayer.io and
# slayer.utils.stats import matplotlib; slayer.object_detection imports torchvision, pillow and
# opencv). ninja (slayer's CUDA kernels), pytest 7 and unittest2 are not imported on that path.
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
# torch and torchvision named together and pinned: the CPU builds on disk, nothing from CUDA
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "torchvision==0.28.0" "numpy>=1.24.4,<2" \
  "networkx<=2.8.7" "matplotlib>=3.5.2,<4" "pillow>=10" "opencv-python-headless>=4.8.1.78,<5"
"$VENV/bin/python" -m pip install -q --no-deps --ignore-requires-python "lava-dl==$LAVA_DL_VERSION"

if ! check; then
  echo "error: lava-dl's netx does not import in $VENV" >&2
  "$VENV/bin/python" -c "import lava.lib.dl.netx.hdf5" >&2 || true
  exit 1
fi
touch "$STAMP"
echo "lava-dl venv ready: $VENV/bin/python"
