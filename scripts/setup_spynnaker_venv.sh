#!/usr/bin/env bash
# Build .venv-spinnaker: sPyNNaker (the PyNN backend of SpiNNaker) in a virtualenv of its own, configured
# for a virtual SpiNN-5 board, so that the `pynn` target's program for SpiNNaker is really mapped here.
#
#   scripts/setup_spynnaker_venv.sh [VENV_DIR]      (default: .venv-spinnaker beside this repository's Makefile)
#
# Why a venv of its own: sPyNNaker pins its own PyNN, numpy and matplotlib ranges and brings the whole
# SpiNNaker tool chain (SpiNNUtilities, SpiNNMachine, SpiNNMan, PACMAN, SpiNNFrontEndCommon, spalloc).
# It needs no compiler: the ARM binaries for the board ship inside the wheel.
#
# The configuration: sPyNNaker reads one user file `.spynnaker.cfg` (from $XDG_CONFIG_HOME, ~/.config or
# ~; if there is none it writes a template into the home directory and stops). This script writes it into
# $VENV/spinnaker-config/.spynnaker.cfg and never into the home directory; run the program with
#   XDG_CONFIG_HOME=$VENV/spinnaker-config $VENV/bin/python OUT/run.py
# On that virtual board `sim.run` performs the whole mapping (partitioning, placement, routing, routing
# keys and tables, data-specification generation) and skips loading and execution; the emitted program
# then prints where every population was placed and writes no outputs (docs/backends/pynn.md).
#
# Idempotent: it stops at once when the stamp exists and `import pyNN.spiNNaker` works.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.venv-spinnaker}"
PY="${PYTHON:-python3}"
SPYNNAKER_VERSION="1!7.4.1"  # the newest release; installs on Python 3.11 with PyNN 0.13 and numpy 2
STAMP="$VENV/.stamp-spynnaker-7.4.1-virtual-spin5"
CFG_DIR="$VENV/spinnaker-config"

check() {
  "$VENV/bin/python" -c "import pyNN.spiNNaker, spynnaker, pacman, spinn_front_end_common" 2>/dev/null \
    && [[ -f "$CFG_DIR/.spynnaker.cfg" ]]
}

if [[ -f "$STAMP" ]] && check; then
  exit 0
fi

echo "building the sPyNNaker venv in $VENV (sPyNNaker $SPYNNAKER_VERSION)"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "sPyNNaker==$SPYNNAKER_VERSION"

mkdir -p "$CFG_DIR"
cat > "$CFG_DIR/.spynnaker.cfg" <<'EOF'
# Written by n3ml's scripts/setup_spynnaker_venv.sh: a virtual SpiNN-5 board (48 chips, version 5).
# sPyNNaker maps the network onto it (partitioning, placement, routing, data specifications) and skips
# loading and running, which need a board. For a real board set virtual_board = False and machine_name
# (or spalloc_server) instead.
[Machine]
virtual_board = True
version = 5

[Reports]
# placement_by_vertex_using_graph.rpt / placement_by_core_using_graph.rpt in reports/<run>/run_1/
write_application_graph_placer_report = True
# keep only the newest report folders of the directory the program runs in
max_reports_kept = 3
EOF

if ! check; then
  echo "error: the sPyNNaker venv in $VENV does not import pyNN.spiNNaker" >&2
  "$VENV/bin/python" -c "import pyNN.spiNNaker" >&2 || true
  exit 1
fi
touch "$STAMP"
echo "sPyNNaker venv ready: XDG_CONFIG_HOME=$CFG_DIR $VENV/bin/python OUT/run.py"
