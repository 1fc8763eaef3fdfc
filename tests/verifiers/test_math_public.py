"""The math verifier against the public corpus (``tests/verifiers/data/public``): the figures
the docs state are floors this test keeps. Only aggregates are computed; no held-out case is
ever printed (a failure names dev cases only)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rlenv.verifiers.math import grade

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import math_corpus  # noqa: E402

pytestmark = pytest.mark.skipif(
    not math_corpus.corpus_files(), reason="no public corpus in tests/verifiers/data/public"
)


def _graded() -> list[tuple[dict, bool]]:
    cases = math_corpus.load_corpus()
    return [(case, grade(case["gold"], case["response"]).reward == 1.0) for case in cases]


def _accuracy(rows: list[tuple[dict, bool]]) -> float:
    return sum(accepted == case["expected"] for case, accepted in rows) / len(rows)


def test_accuracy_on_the_public_corpus_stays_above_the_stated_floors():
    rows = _graded()
    untagged = [(case, ok) for case, ok in rows if not case["policy"]]
    dev = [(case, ok) for case, ok in untagged if case["split"] == "dev"]
    heldout = [(case, ok) for case, ok in untagged if case["split"] == "heldout"]
    misses = [case["id"] for case, ok in dev if ok != case["expected"]]
    assert _accuracy(dev) >= 0.98, f"dev misses: {misses}"
    assert _accuracy(heldout) >= 0.97  # aggregate only: held-out cases stay unseen
    assert _accuracy(rows) >= 0.97


def test_no_false_accept_on_the_hack_cases_and_few_anywhere():
    rows = _graded()
    hacks = [
        case["id"] for case, ok in rows if case["category"] == "hack" and ok != case["expected"]
    ]
    assert not hacks
    false_accepts = [
        case for case, ok in rows if ok and not case["expected"] and not case["policy"]
    ]
    assert len(false_accepts) <= 3, [c["id"] for c in false_accepts if c["split"] == "dev"]
