#!/usr/bin/env bash
# Build .venv-lava: a dedicated virtualenv with lava-nc 0.10 for the Lava backend (n3ml/backends/lava).
#
#   scripts/setup_lava_venv.sh [VENV_DIR]      (default: .venv-lava beside this repository's Makefile)
#
# Why a venv of its own: lava-nc 0.10 pins numpy<2 and networkx<=2.8.7 (n3ml's venv has numpy 2) and
# declares Requires-Python <3.11. It runs on 3.11 after one fix: in lava/magma/compiler/var_model.py the
# dataclass `ByteEncoder` is used as the default value of other dataclasses' fields, which Python 3.11
# rejects ("mutable default ... use default_factory") unless ByteEncoder is hashable. Nothing mutates a
# ByteEncoder, so this script makes it `@dataclass(frozen=True)`.
#
# The script is idempotent: it stops at once when the stamp file exists and `import lava.proc.lif.process`
# works. lava-dl is not installed: it pins torch 2.3 (n3ml uses torch 2.13 and must never pull another
# torch); the backend writes lava-dl's netx HDF5 files with h5py itself.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.venv-lava}"
PY="${PYTHON:-python3}"
LAVA_VERSION="0.10.0"
STAMP="$VENV/.stamp-lava-$LAVA_VERSION-bytencoder-frozen"

check() {
  "$VENV/bin/python" -c "import lava.proc.lif.process, lava.proc.dense.process, lava.proc.conv.process, \
lava.proc.io.source, lava.proc.io.sink, lava.proc.monitor.process, h5py" 2>/dev/null
}

if [[ -f "$STAMP" ]] && check; then
  exit 0
fi

echo "building the Lava venv in $VENV (lava-nc $LAVA_VERSION)"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# lava-nc's own dependencies, with its pins, then lava-nc itself without its Python-version check
"$VENV/bin/python" -m pip install -q "numpy>=1.24.4,<2" "networkx<=2.8.7" "asteval>=0.9.31,<0.10" \
  "scipy>=1.10.1,<2" "scikit-learn>=1.5,<2" "h5py>=3.7,<4"
"$VENV/bin/python" -m pip install -q --no-deps --ignore-requires-python "lava-nc==$LAVA_VERSION"

# the one source fix; a second run finds it applied and changes nothing
"$VENV/bin/python" - <<'PYEOF'
import pathlib, sysconfig
# found by path: importing lava.magma.compiler.var_model is exactly what fails before the fix
path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "lava" / "magma" / "compiler" / "var_model.py"
src = path.read_text()
old, new = "@dataclass\nclass ByteEncoder:", "@dataclass(frozen=True)\nclass ByteEncoder:"
if new in src:
    print(f"{path}: ByteEncoder is already frozen")
elif old in src:
    path.write_text(src.replace(old, new, 1))
    print(f"{path}: made ByteEncoder frozen=True")
else:
    raise SystemExit(f"{path}: cannot find the ByteEncoder dataclass to patch; is this lava-nc 0.10?")
PYEOF

if ! check; then
  echo "error: the Lava venv in $VENV does not import lava.proc.lif.process after the fix" >&2
  "$VENV/bin/python" -c "import lava.proc.lif.process" >&2 || true
  exit 1
fi
touch "$STAMP"
echo "Lava venv ready: $VENV/bin/python"
