# byzmpi: two commands on a fresh machine.
#   make demo   creates .venv when missing, installs, runs the quickstart on 9 ranks, prints the summary
#   make test   the test suite (CI runs this through .ci/run)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
NP      ?= 9
STAMP   := $(VENV)/.byzmpi-installed

# The MPI environment defaults (run as root, oversubscribe, skip the slow ofi probe) live in one
# place, byzmpi/launch.py: `byzmpi run -n`, the tests' conftest and the scripts all use it.

.PHONY: demo test install clean bench lint

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

# style and types: ruff (lint + format check) everywhere, mypy (strict on the core packages, see pyproject)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/round_overhead.py

clean:
	rm -rf runs .pytest_cache
