PY ?= python3.11
VENV ?= .venv
BIN = $(VENV)/bin
# The PseudoNetCDF check runs in an environment of its own (see tests/test_pseudonetcdf.py).
PNC_VENV ?= .venv-pnc

.PHONY: install lint format test test-all test-pnc bench bench-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -e '.[dev]'

lint:
	$(BIN)/ruff check service models tests bench
	$(BIN)/ruff format --check service models tests bench
	$(BIN)/mypy

format:
	$(BIN)/ruff format service models tests bench
	$(BIN)/ruff check --fix service models tests bench

# Fast: everything but the slow tests (training, twin archives, processes loading TensorFlow).
test:
	$(BIN)/python -m pytest -q

# Everything the main environment runs, as CI does (.ci/run).
test-all:
	$(BIN)/python -m pytest -q --run-slow

test-pnc:
	$(PY) -m venv $(PNC_VENV)
	$(PNC_VENV)/bin/pip install -e '.[pnc]'
	$(PNC_VENV)/bin/python -m pytest -q --run-pseudonetcdf tests/test_pseudonetcdf.py

# Every benchmark in one run (about 25 minutes, a 10-minute soak), written to docs/BENCHMARKS.md;
# needs wrk (apt-get install wrk) and makes the peer's environment in var/bench/ the first time.
bench:
	$(BIN)/python bench/report.py

# The same in about 2 minutes (short loads, a 20 s soak): checks the bench, not the figures.
bench-quick:
	$(BIN)/python bench/report.py --quick

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
