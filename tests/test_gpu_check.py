"""``benchmarks/gpu_check.py --smoke``: the prepared GPU check runs end to end on the CPU with
tiny shapes, so that it still works on the day a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_every_section_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out", str(tmp_path)],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    generation = results["generation"]
    assert {row["backend"] for row in generation} == {"loop", "hf", "hf-batch"}
    for row in generation:
        assert row["tokens"] == 4 * 8  # random weights: every sequence runs to the limit
        assert row["tokens_per_second"] > 0
    grpo = results["grpo"]
    assert len(grpo["steps"]) == 2 and grpo["median_train"] > 0
    assert results["trl"]["median_seconds"] > 0
    assert "skipped" in results["cuda_tests"]["summary"]  # no GPU here: the cuda tests skip
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| tiny | hf-batch | 4 | 32 |" in table and "rlenv / TRL:" in table
