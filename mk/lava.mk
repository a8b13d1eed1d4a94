# The Lava venv (.venv-lava, lava-nc 0.10 with its numpy<2 pins) for the Lava backend and its tests (issue 6).
# scripts/setup_lava_venv.sh is idempotent; the stamps make a second `make` free.
# h5py goes into the main venv too: `n3ml convert --target lava -O netx=true` writes netx HDF5 with it.
LAVA_VENV  ?= .venv-lava
LAVA_STAMP := $(LAVA_VENV)/.stamp-lava-0.10.0-bytencoder-frozen
H5PY_STAMP := $(VENV)/.stamp-h5py

.PHONY: setup-lava
setup-lava: $(LAVA_STAMP) $(H5PY_STAMP)

$(LAVA_STAMP): scripts/setup_lava_venv.sh
	PYTHON=$(PYTHON) bash scripts/setup_lava_venv.sh $(LAVA_VENV)

$(H5PY_STAMP): $(STAMP)
	$(BIN)/python -c "import h5py" 2>/dev/null || $(BIN)/pip install -q h5py
	touch $@

TEST_DEPS += setup-lava

# Optional (not in `make test`): lava-dl 0.6.0 in a venv of its own (.venv-lava-dl), so that lava-dl's own
# netx reader loads the netx files n3ml writes (tests/backends/lava/test_netx.py skips without it).
# lava-dl pins torch 2.3; scripts/setup_lava_dl.sh installs it --no-deps beside torch 2.13.0 CPU and what
# netx's import really reaches (docs/backends/lava.md, "netx"). Cached by its stamp.
LAVA_DL_VENV  ?= .venv-lava-dl
LAVA_DL_STAMP := $(LAVA_DL_VENV)/.stamp-lava-dl-0.6.0

.PHONY: setup-lava-dl
setup-lava-dl: $(LAVA_DL_STAMP)

$(LAVA_DL_STAMP): scripts/setup_lava_dl.sh scripts/setup_lava_venv.sh
	PYTHON=$(PYTHON) bash scripts/setup_lava_dl.sh $(LAVA_DL_VENV)
