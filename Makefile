PY ?= python3.11
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install lint format test test-all bench clean

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

test:
	$(BIN)/python -m pytest -q

test-all:
	$(BIN)/python -m pytest -q --run-slow

bench:
	$(BIN)/python bench/run.py
	$(BIN)/python bench/api_load.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
