# NEST and PyNN for the nest/pynn backends and `n3ml verify` (issue 5).
# Their pins agree with n3ml's (numpy 2, matplotlib), so they go into the main venv; the
# pip wheel of NEST is built without MPI. The stamp makes a second run free.
SIM_STAMP := $(VENV)/.stamp-sim-nest3.10.0-pynn0.13.0

.PHONY: setup-sim
setup-sim: $(SIM_STAMP)

$(SIM_STAMP): $(STAMP)
	$(BIN)/pip install -q nest-simulator==3.10.0 PyNN==0.13.0
	PYNEST_QUIET=1 $(BIN)/python -c "import nest, pyNN.nest" >/dev/null
	touch $@

TEST_DEPS += setup-sim
