# The Lava venv (.venv-lava, lava-nc 0.10 with its numpy<2 pins) for the Lava backend and its tests (issue 6).
# scripts/setup_lava_venv.sh is idempotent; the stamp inside the venv makes a second `make` free.
LAVA_VENV  ?= .venv-lava
LAVA_STAMP := $(LAVA_VENV)/.stamp-lava-0.10.0-bytencoder-frozen

.PHONY: setup-lava
setup-lava: $(LAVA_STAMP)

$(LAVA_STAMP): scripts/setup_lava_venv.sh
	PYTHON=$(PYTHON) bash scripts/setup_lava_venv.sh $(LAVA_VENV)

TEST_DEPS += setup-lava
