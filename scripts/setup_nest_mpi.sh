#!/usr/bin/env bash
# Build .venv-nest-mpi: NEST 3.10 compiled from its source distribution on the package index with MPI on
# (Debian's OpenMPI and mpi4py), for the emitted NEST program's MPI mode (issue 19, docs/backends/nest.md).
#
#   scripts/setup_nest_mpi.sh [VENV_DIR]      (default: .venv-nest-mpi beside this repository's Makefile)
#
# Why a build of its own: the nest-simulator wheel that `make setup-sim` installs is compiled without MPI
# (nest.NumProcesses is always 1 under mpirun: each rank would simulate the whole network). NEST's sdist is
# the same release built by its own CMake with -Dwith-mpi=ON, installed into its own venv (CMake's default
# prefix for PyNEST in a venv is the venv itself) so that the main venv keeps the wheel.
#
# Cached and idempotent: the sdist (sha256-pinned) and the CMake build tree are kept under $VENV/src, so a
# second run stops at once when the stamp exists and NEST reports 2 MPI processes under `mpirun -np 2`;
# an interrupted build resumes where make stopped. It builds under `nice -n 10` with -j$NEST_MPI_JOBS
# (default 2). The system packages (OpenMPI, GSL, Boost, ltdl) come from apt-get, which needs root.
#
# Only the NEST models that n3ml's emitted program creates are compiled (NEST's -Dwith-models; the full
# set of about 280 models takes hours on a small shared machine): the neuron models of the mapping
# (docs/backends/nest.md), the eprop synapses that eprop_iaf is built with, the devices and the static
# synapse. NEST_MPI_MODELS=full builds NEST's full model set instead.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.venv-nest-mpi}"
VENV="$(mkdir -p "$VENV" && cd "$VENV" && pwd)"
PY="${PYTHON:-python3}"
JOBS="${NEST_MPI_JOBS:-2}"
NEST_VERSION="3.10.0"
NEST_SHA256="8fbd7df4a3e941784d4b1d5825ded234bdc915238faac0982c62e4cb80134d52"
MODELS="${NEST_MPI_MODELS:-iaf_psc_delta;iaf_psc_exp;eprop_iaf;eprop_readout;eprop_synapse;\
eprop_learning_signal_connection;parrot_neuron;spike_generator;spike_recorder;multimeter;weight_recorder;static_synapse}"
MODELS_ID="$(sha1sum <<<"$MODELS" | cut -c1-8)"
STAMP="$VENV/.stamp-nest-$NEST_VERSION-mpi-$MODELS_ID"
SRC="$VENV/src"
APT_PACKAGES=(libopenmpi-dev openmpi-bin libgsl-dev libboost-dev libltdl-dev cmake g++ make)
# mpirun refuses root without these; harmless for other users
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

check() {
  # the one property this venv exists for: NEST sees both ranks
  [[ -x "$VENV/bin/python" ]] && command -v mpirun >/dev/null 2>&1 || return 1
  local out
  out="$(PYNEST_QUIET=1 timeout 120 mpirun -np 2 --oversubscribe "$VENV/bin/python" -c \
    "import nest; print('N3ML_NP', nest.NumProcesses())" 2>/dev/null)" || return 1
  [[ "$(grep -c 'N3ML_NP 2' <<<"$out")" == 2 ]]
}

if [[ -f "$STAMP" ]] && check; then
  exit 0
fi

start=$(date +%s)
echo "building NEST $NEST_VERSION with MPI in $VENV"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "error: NEST with MPI needs the system packages ${missing[*]}; install them with" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# PyNEST's build and run-time needs (cython to build it, numpy to run it) and mpi4py: its binary wheels
# (4.1) load the system's libmpi at run time, and they work with Debian's Open MPI 4.1 (checked below);
# compiling mpi4py from source instead takes longer than NEST's kernel on a small machine
"$VENV/bin/python" -m pip install -q "cython>=3.0.0" numpy matplotlib "mpi4py>=4.1,<5"
OMPI_OK="$(timeout 60 mpirun --oversubscribe -np 1 "$VENV/bin/python" -c \
  "from mpi4py import MPI; print(MPI.Get_library_version())" 2>&1 || true)"
if ! grep -q "Open MPI" <<<"$OMPI_OK"; then
  echo "error: mpi4py in $VENV does not run on this machine's Open MPI:" >&2
  echo "$OMPI_OK" >&2
  exit 1
fi

mkdir -p "$SRC"
TARBALL="$SRC/nest_simulator-$NEST_VERSION.tar.gz"
if [[ ! -f "$TARBALL" ]] || ! sha256sum --status -c <<<"$NEST_SHA256  $TARBALL"; then
  # only this package as a source distribution; its build requirements may come as wheels
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary nest-simulator \
    "nest-simulator==$NEST_VERSION" -d "$SRC"
fi
sha256sum --status -c <<<"$NEST_SHA256  $TARBALL" || {
  echo "error: $TARBALL does not have the sha256 of nest-simulator $NEST_VERSION's sdist" >&2; exit 1; }
[[ -d "$SRC/nest_simulator-$NEST_VERSION" ]] || tar -xzf "$TARBALL" -C "$SRC"

BUILD="$SRC/build-$MODELS_ID"  # one build tree per model list, so that changing it never mixes objects
if [[ "$MODELS" == full ]]; then MODEL_ARGS=(-Dwith-modelset=full); else MODEL_ARGS=(-Dwith-models="$MODELS"); fi
mkdir -p "$BUILD"
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake "${MODEL_ARGS[@]}" -S "$SRC/nest_simulator-$NEST_VERSION" -B "$BUILD" \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython_EXECUTABLE="$VENV/bin/python" \
    -Dwith-mpi=ON -Dwith-openmp=ON -Dwith-python=ON -Dwith-gsl=ON -Dwith-boost=ON \
    -Dwith-optimize=-O2 -Dwith-warning=OFF -Dwith-hdf5=OFF
fi
nice -n 10 cmake --build "$BUILD" -j "$JOBS"
cmake --install "$BUILD" >/dev/null

if ! check; then
  echo "error: NEST in $VENV does not report 2 processes under mpirun -np 2" >&2
  PYNEST_QUIET=1 mpirun -np 2 --oversubscribe "$VENV/bin/python" -c "import nest; print(nest.NumProcesses())" >&2 || true
  exit 1
fi
echo "$(( $(date +%s) - start ))" > "$VENV/.build-seconds"
touch "$STAMP"
echo "NEST $NEST_VERSION with MPI ready: $VENV/bin/python ($(cat "$VENV/.build-seconds") s)"
