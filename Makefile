# n3ml set-up and entry points. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-$(shell cat pyproject.toml | sha1sum | cut -c1-10)

# Backends' set-up targets (simulators, peer libraries, the Lava venv) add themselves here from mk/*.mk.
TEST_DEPS := setup sysdeps

.PHONY: setup sysdeps demo test
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU build on disk; anything else would pull GBs of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.stamp-*; touch $@

sysdeps:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing Graphviz (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) || \
	  echo "warning: could not install graphviz; rendering tests will be skipped"; }
	@command -v g++ >/dev/null 2>&1 || { \
	  echo "installing g++ (apt-get): the NEST programs compile n3ml's own cell (n3ml_cell.cpp)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null) || \
	  echo "warning: could not install g++; tests of n3ml's own NEST cell will be skipped"; }

-include mk/*.mk

demo: setup sysdeps setup-sim setup-lava
	PYNEST_QUIET=1 $(BIN)/python examples/demo.py

test: $(TEST_DEPS)
	PYNEST_QUIET=1 $(BIN)/python -m pytest -q -p no:cacheprovider
