"""The labelled equivalence cases (tests/verifiers/data/math_equivalence.jsonl) as a regression
suite: rlenv must agree with every label except the disagreements listed here, each with why."""

from __future__ import annotations

import json
from pathlib import Path

from rlenv.verifiers.math import is_equivalent

CASES = Path(__file__).parent / "data" / "math_equivalence.jsonl"

# (gold, pred) -> why rlenv's verdict differs from the label. Policy labels marked P.
KNOWN_DISAGREEMENTS = {
    (
        "33\\frac{1}{3}\\%",
        "\\frac{100}{3}",
    ): "P: a mixed number inside a percentage is not parsed as one",
    (
        "F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}",
        "F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k",
    ): "\\sum is not supported",
    (
        "(-\\infty,1)\\cup(1,\\infty)",
        "\\mathbb{R}\\setminus\\{1\\}",
    ): "P: set difference is not supported",
    ("3", "3 + 4 - 4 = 7 - 4"): "P: deliberate: an equation is not an answer (hack resistance)",
}


def _cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def test_the_labelled_set_is_big_and_balanced():
    cases = _cases()
    assert len(cases) >= 300
    assert sum(not case["equivalent"] for case in cases) >= 100
    assert all(case["source"] for case in cases)


def test_rlenv_agrees_with_every_label_but_the_listed_disagreements():
    disagreements = {
        (case["gold"], case["pred"])
        for case in _cases()
        if is_equivalent(case["gold"], case["pred"]) != case["equivalent"]
    }
    unexpected = disagreements - KNOWN_DISAGREEMENTS.keys()
    fixed = KNOWN_DISAGREEMENTS.keys() - disagreements
    assert not unexpected, f"new disagreements with the labels: {sorted(unexpected)}"
    assert not fixed, f"now agreeing, remove from KNOWN_DISAGREEMENTS: {sorted(fixed)}"


def test_no_false_accept_anywhere():
    false_accepts = [
        (case["gold"], case["pred"])
        for case in _cases()
        if not case["equivalent"] and is_equivalent(case["gold"], case["pred"])
    ]
    assert false_accepts == []
