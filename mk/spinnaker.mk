# sPyNNaker (SpiNNaker's PyNN backend) in its own venv, .venv-spinnaker, configured for a virtual SpiNN-5
# board (issue 13): the `pynn` target's program for SpiNNaker is mapped there (partitioning, placement,
# routing, data specifications; nothing runs without a board). Optional: not part of `make test`; the
# tests in tests/backends/pynn/test_spinnaker.py skip when the venv is absent. The stamp makes a second
# `make setup-spinnaker` free; docs/backends/pynn.md has the commands.
SPINNAKER_VENV  ?= .venv-spinnaker
SPINNAKER_STAMP := $(SPINNAKER_VENV)/.stamp-spynnaker-7.4.1-virtual-spin5

.PHONY: setup-spinnaker
setup-spinnaker: $(SPINNAKER_STAMP)

$(SPINNAKER_STAMP): scripts/setup_spynnaker_venv.sh
	PYTHON=$(PYTHON) bash scripts/setup_spynnaker_venv.sh $(SPINNAKER_VENV)
