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
