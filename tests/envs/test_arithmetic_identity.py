"""``rlenv/Arithmetic-v0`` poses the same tasks and gives the same verdicts as before its
issue-22 speed-ups (generator, ``Task`` construction, box extraction, math fast path)."""

from __future__ import annotations

import pytest
from arithmetic_identity import recorded, task_digest, verdicts

# sha256 of every task (id, prompt, answer and its type, metadata) of seeds 0..2,000 at
# levels 1-5, computed by arithmetic_identity.task_digest() on commit 943dd8a (before the
# speed-ups), from /tmp with PYTHONPATH pointing at `git archive 943dd8a rlenv envs`.
TASK_DIGEST = "feb162af2cdbeaaf04c21bb3ad3783430eeae4281c112a49fefdfc5906dbe8c4"


def test_tasks_are_byte_identical_to_before():
    assert task_digest() == TASK_DIGEST


@pytest.fixture(scope="module")
def pairs():
    return recorded(), verdicts()


def test_the_labelled_set_covers_right_wrong_and_malformed(pairs):
    before, _ = pairs
    rewards = {(row[0], row[3]["reward"]) for row in before}
    assert {("boxed", 1.0), ("boxed", 0.0), ("weighted", 0.25), ("unboxed", 1.0)} <= rewards
    reasons = {row[3]["reason"] for row in before}
    assert "wrong: fraction not in lowest terms" in reasons
    assert "format not met" in reasons
    assert len(before) > 6000


def test_every_verdict_is_identical_to_before(pairs):
    # rows recorded by `python tests/envs/arithmetic_identity.py` on commit 943dd8a; then 132
    # rows re-recorded on purpose by the fix of the lowest-terms rule's sign blind spot
    # (tests/verifiers/test_math.py::test_lowest_terms_whatever_the_sign): answers such as
    # \boxed{-14/2}, \boxed{\frac{-14}{2}}, \boxed{\frac{7}{-1}}, \boxed{\frac{-6}{-1}} went
    # from correct to "fraction not in lowest terms"; every other row is as on 943dd8a.
    before, now = pairs
    assert len(now) == len(before)
    for old, new in zip(before, now, strict=True):
        assert new == old
