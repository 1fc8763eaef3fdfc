"""``benchmarks/bridges.py --quick``: the bridges' benchmark runs end to end and prints a row per
bridge (the rows' presence and shape only: no timing is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("reasoning_gym")
pytest.importorskip("textarena")

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS = ("chain_sum", "basic_arithmetic", "letter_counting", "spell_backward", "leg_counting")
NUMBER = r"-?\d+"


def run_benchmark(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run(
        [sys.executable, "benchmarks/bridges.py", *args],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_quick_run_prints_a_row_per_bridge():
    result = run_benchmark("--quick")
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert re.search(r"bridge\s+dataset/game\s+direct µs\s+rlenv µs\s+ratio\s+overhead µs", out)
    compared = [("reasoning-gym", name) for name in DATASETS] + [("textarena", "GuessTheNumber-v0")]
    for bridge, name in compared:
        row = rf"^{bridge}\s+{name}\s+{NUMBER}\s+{NUMBER}\s+\d+\.\d\dx\s+{NUMBER}$"
        assert re.search(row, out, re.MULTILINE), f"no row for {bridge} {name}:\n{out}"
    assert re.search(r"^dialogue\s+Retail-v0\s+-\s+\d+\s+-\s+-$", out, re.MULTILINE), out
    assert re.search(r"Retail-v0 \(absolute, no direct peer\).* \d+ µs per step", out), out
    assert re.search(r"GuessTheNumber-v0: \d+\.\d moves per episode", out), out


def test_an_unknown_dataset_fails_the_run():
    result = run_benchmark("--quick", "--datasets", "no_such_dataset")
    assert result.returncode != 0
    assert "no_such_dataset" in result.stderr
    assert "reasoning-gym" not in result.stdout  # no table printed for a run that failed
