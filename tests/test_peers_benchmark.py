"""benchmarks/peers.py runs (a smoke run: its rows, not its numbers, which benchmarks measure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_peers_benchmark_prints_its_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--episodes", "5",
         "--rounds", "1", "--only", "rlenv,OpenEnv"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split("  ")[0] for line in result.stdout.splitlines()}
    assert {"rlenv TaskList, reset()", "rlenv task given, reset(options)"} <= rows, result.stdout
    assert "versions: rlenv" in result.stdout
