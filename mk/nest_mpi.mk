# NEST 3.10 built from its sdist with MPI (Debian's OpenMPI, mpi4py) in its own venv, .venv-nest-mpi
# (issue 19): the emitted NEST program under `mpirun`. Optional and slow (a C++ build, cached: built once
# per machine, resumed if interrupted); not part of `make test`. tests/backends/nest/test_mpi.py skips
# when it is absent. NEST_MPI_JOBS sets the build's parallelism (default 2); docs/backends/nest.md.
NEST_MPI_VENV ?= .venv-nest-mpi

.PHONY: setup-nest-mpi
setup-nest-mpi:
	PYTHON=$(PYTHON) bash scripts/setup_nest_mpi.sh $(NEST_MPI_VENV)
