# byzmpi: two commands on a fresh machine.
#   make demo   creates .venv when missing, installs, runs the quickstart on 9 ranks, prints the summary
#   make test   the test suite (CI runs this through .ci/run)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
NP      ?= 9
STAMP   := $(VENV)/.byzmpi-installed

# The Open MPI wheel on a small machine: run as root, oversubscribe cores, skip the slow ofi probe.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export PRTE_MCA_rmaps_default_mapping_policy := :oversubscribe
export OMPI_MCA_btl := ^ofi
export OMP_NUM_THREADS := 1

.PHONY: demo test install clean bench

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/byzmpi run -n $(NP) configs/quickstart.toml
	$(VENV)/bin/byzmpi report runs/quickstart.h5

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/round_overhead.py

clean:
	rm -rf runs .pytest_cache
