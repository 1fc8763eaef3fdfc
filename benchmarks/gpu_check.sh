#!/usr/bin/env bash
# The GPU check's one run on a GPU machine (issue 19). Prepare here with `make gpu-wheels`
# (the wheels the machine lacks, rlenv's own among them, in .whl/), then with the device tool:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It installs the wheels into /tmp/site (nothing can be downloaded there) and runs
# benchmarks/gpu_check.py, writing gpu_check.json, gpu_check.md and log.txt to $OUT.
set -euo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || true
python3 benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/log.txt"
