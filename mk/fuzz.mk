# The fuzz suite with a longer budget (issue 14). `make test` runs it with a small fixed budget (under 60 s);
# `make fuzz FUZZ_BUDGET=10000` runs more mutants per fuzzer. Failing inputs are kept in fuzz-failures/.
FUZZ_BUDGET ?= 3000
FUZZ_SEED   ?= 1234

.PHONY: fuzz
fuzz: setup
	N3ML_FUZZ_BUDGET=$(FUZZ_BUDGET) N3ML_FUZZ_SEED=$(FUZZ_SEED) N3ML_FUZZ_SAVE=fuzz-failures PYNEST_QUIET=1 \
	  $(BIN)/python -m tests.fuzz
